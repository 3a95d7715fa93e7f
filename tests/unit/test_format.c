/*
 * test_format.c -- the on-disk structures, crc32c, volume layout,
 * format_write/format_read_super on image files, key files and UUIDs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "pfs_format.h"
#include "pfs_key.h"
#include "pfs_mkfs.h"
#include "pfs_util.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

static const char *tmp_dir(void)
{
	const char *d = getenv("TMPDIR");
	return d && *d ? d : "/tmp";
}

/* A new empty image file of the given size; its name is unlinked at once
 * so nothing is left behind. */
static int make_image(uint64_t bytes)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/pfs-test-XXXXXX", tmp_dir());
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(ftruncate(fd, (off_t)bytes), 0);
	return fd;
}

static void read_blk(int fd, uint64_t blkno, void *buf)
{
	ssize_t n = pread(fd, buf, PFS_BLOCK_SIZE, (off_t)(blkno * PFS_BLOCK_SIZE));
	assert_int_equal(n, PFS_BLOCK_SIZE);
}

static void write_blk(int fd, uint64_t blkno, const void *buf)
{
	ssize_t n = pwrite(fd, buf, PFS_BLOCK_SIZE, (off_t)(blkno * PFS_BLOCK_SIZE));
	assert_int_equal(n, PFS_BLOCK_SIZE);
}

/* The metadata block check, computed independently of the library. */
static bool meta_ok(const void *blk, uint64_t blkno, uint32_t magic, uint32_t seed)
{
	uint8_t copy[PFS_BLOCK_SIZE];
	const struct pfs_blk_hdr *h = blk;

	if (le32_to_cpu(h->magic) != magic || le64_to_cpu(h->blkno) != blkno)
		return false;
	memcpy(copy, blk, sizeof(copy));
	((struct pfs_blk_hdr *)copy)->crc = 0;
	return pfs_crc32c(seed, copy, sizeof(copy)) == le32_to_cpu(h->crc);
}

static bool inode_crc_ok(const struct pfs_inode *di, uint32_t seed)
{
	struct pfs_inode copy = *di;

	copy.crc = 0;
	return pfs_crc32c(seed, &copy, sizeof(copy)) == le32_to_cpu(di->crc);
}

static bool all_zero(const void *buf, size_t len)
{
	const uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static bool bit_set(const uint8_t *blk, uint32_t i)
{
	return blk[PFS_BITMAP_OFFSET + i / 8] & (1u << (i % 8));
}

static uint32_t bits_set(const uint8_t *blk, uint32_t from, uint32_t to)
{
	uint32_t n = 0;

	for (uint32_t i = from; i < to; i++)
		n += bit_set(blk, i);
	return n;
}

/* Blocks in group g of the volume described by sb. */
static uint32_t group_nblocks(const struct pfs_super *sb, uint32_t g)
{
	uint64_t n = le64_to_cpu(sb->block_count);
	uint64_t first = le64_to_cpu(sb->group_start) +
			 (uint64_t)g * le32_to_cpu(sb->blocks_per_group);
	return (uint32_t)PFS_MIN((uint64_t)le32_to_cpu(sb->blocks_per_group),
				 n - 1 - first);
}

/* Invariants every layout must satisfy. */
static void check_layout(uint64_t n, const struct pfs_format_params *p,
			 const struct pfs_super *sb)
{
	uint32_t slots = le32_to_cpu(sb->max_slots);
	uint64_t js = le64_to_cpu(sb->journal_start);
	uint64_t jb = le64_to_cpu(sb->journal_blocks);
	uint64_t gs = le64_to_cpu(sb->group_start);
	uint32_t ngroups = le32_to_cpu(sb->group_count);
	uint32_t bpg = le32_to_cpu(sb->blocks_per_group);
	uint32_t ipg = le32_to_cpu(sb->inodes_per_group);
	uint32_t itb = le32_to_cpu(sb->inode_table_blocks);
	uint32_t meta = PFS_GROUP_META_BLOCKS + itb;

	assert_int_equal(le32_to_cpu(sb->hdr.magic), PFS_MAGIC_SUPER);
	assert_int_equal(le64_to_cpu(sb->block_count), n);
	assert_int_equal(slots, p->slots ? p->slots : PFS_DEFAULT_SLOTS);
	assert_int_equal(le64_to_cpu(sb->slot_table_start), 2);
	assert_int_equal(js, 2 + 2 * (uint64_t)slots);
	assert_true(jb >= 256);
	if (p->journal_bytes) {
		assert_int_equal(jb, PFS_DIV_ROUND_UP(p->journal_bytes, PFS_BLOCK_SIZE));
	} else {
		assert_true(jb <= 4096);
		assert_true(jb == 256 || jb * slots <= n / 4);
	}
	assert_int_equal(gs, js + jb * slots);
	assert_true(bpg >= 64 && bpg <= PFS_BITMAP_BITS);
	if (p->blocks_per_group)
		assert_true(bpg <= p->blocks_per_group);
	assert_int_equal(ipg % 16, 0);
	assert_true(ipg >= 16 && ipg <= PFS_BITMAP_BITS);
	assert_int_equal(itb, ipg / 16);
	assert_true(ngroups >= 1);
	assert_int_equal(le64_to_cpu(sb->root_ino), PFS_ROOT_INO);

	uint64_t data = 0, end = gs;
	for (uint32_t g = 0; g < ngroups; g++) {
		uint64_t first = gs + (uint64_t)g * bpg;
		uint32_t nb = group_nblocks(sb, g);
		assert_int_equal(first, end);           /* contiguous */
		assert_true(first >= js + jb * slots);  /* after the journals */
		assert_true(nb >= meta + 16);
		if (g + 1 < ngroups)
			assert_int_equal(nb, bpg);
		end = first + nb;
		data += nb - meta;
	}
	assert_true(end <= n - 1);                     /* before the backup */
	/* What is left before the backup could not have held a group. */
	assert_true(n - 1 - end < meta + 16);
	assert_true(data >= 64);
}

/* ------------------------------------------------------------------ */
/* Structures and crc32c                                                */
/* ------------------------------------------------------------------ */

static void test_struct_layout(void **state)
{
	assert_int_equal(sizeof(struct pfs_blk_hdr), 32);
	assert_int_equal(sizeof(struct pfs_super), 512);
	assert_int_equal(sizeof(struct pfs_heartbeat), 128);
	assert_int_equal(sizeof(struct pfs_slot), 256);
	assert_int_equal(sizeof(struct pfs_group_desc), 128);
	assert_int_equal(sizeof(struct pfs_inode), 256);
	assert_int_equal(sizeof(struct pfs_bt_node), 48);
	assert_int_equal(sizeof(struct pfs_xattr_blk), 40);
	assert_int_equal(PFS_BITMAP_BITS, 32512);
	assert_int_equal(PFS_INLINE_EXTENTS, 4);

	assert_int_equal(offsetof(struct pfs_blk_hdr, crc), 4);
	assert_int_equal(offsetof(struct pfs_blk_hdr, blkno), 8);
	assert_int_equal(offsetof(struct pfs_super, version), 32);
	assert_int_equal(offsetof(struct pfs_super, uuid), 64);
	assert_int_equal(offsetof(struct pfs_super, label), 80);
	assert_int_equal(offsetof(struct pfs_super, slot_table_start), 144);
	assert_int_equal(offsetof(struct pfs_super, group_count), 176);
	assert_int_equal(offsetof(struct pfs_super, csum_seed), 208);
	assert_int_equal(offsetof(struct pfs_super, key_check), 216);
	assert_int_equal(offsetof(struct pfs_super, hash_seed), 248);
	assert_int_equal(offsetof(struct pfs_super, backup), 264);
	assert_int_equal(offsetof(struct pfs_slot, generation), 40);
	assert_int_equal(offsetof(struct pfs_slot, journal_start), 64);
	assert_int_equal(offsetof(struct pfs_slot, reg_status), 112);
	assert_int_equal(offsetof(struct pfs_slot, hostname), 128);
	assert_int_equal(offsetof(struct pfs_heartbeat, time_ns), 56);
	assert_int_equal(offsetof(struct pfs_group_desc, free_blocks), 44);
	assert_int_equal(offsetof(struct pfs_group_desc, inode_table), 80);
	assert_int_equal(offsetof(struct pfs_inode, crc), 4);
	assert_int_equal(offsetof(struct pfs_inode, mode), 16);
	assert_int_equal(offsetof(struct pfs_inode, atime_nsec), 80);
	assert_int_equal(offsetof(struct pfs_inode, generation), 96);
	assert_int_equal(offsetof(struct pfs_inode, parent), 128);
	assert_int_equal(offsetof(struct pfs_inode, tree_root), 136);
	assert_int_equal(offsetof(struct pfs_inode, inline_area), 160);
	assert_int_equal(offsetof(struct pfs_bt_node, next), 40);
	assert_int_equal(offsetof(struct pfs_dirent, name), 10);
	assert_int_equal(offsetof(struct pfs_xattr_ent, data), 3);
}

static void test_crc32c_vectors(void **state)
{
	uint8_t buf[64];

	assert_int_equal(pfs_crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(pfs_crc32c(0, "", 0), 0);
	assert_int_equal(pfs_crc32c(0, "a", 1), 0xC1D04330u);
	/* RFC 3720 (iSCSI) B.4 vectors. */
	memset(buf, 0, 32);
	assert_int_equal(pfs_crc32c(0, buf, 32), 0x8A9136AAu);
	memset(buf, 0xff, 32);
	assert_int_equal(pfs_crc32c(0, buf, 32), 0x62A8AB43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	assert_int_equal(pfs_crc32c(0, buf, 32), 0x46DD794Eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	assert_int_equal(pfs_crc32c(0, buf, 32), 0x113FDB5Cu);

	/* Continuation equals one pass, at every split and alignment. */
	for (int i = 0; i < 64; i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	uint32_t whole = pfs_crc32c(0, buf, 64);
	for (size_t cut = 0; cut <= 64; cut++)
		assert_int_equal(pfs_crc32c(pfs_crc32c(0, buf, cut), buf + cut, 64 - cut),
				 whole);
	assert_int_equal(pfs_crc32c(pfs_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
}

/* ------------------------------------------------------------------ */
/* Layout                                                               */
/* ------------------------------------------------------------------ */

static void test_layout_too_small(void **state)
{
	struct pfs_format_params p = { 0 };
	struct pfs_super sb;
	const char *why = NULL;
	unsigned long long have, need;

	assert_int_equal(format_layout(256, &p, &sb, &why), -ENOSPC);
	assert_non_null(why);
	assert_int_equal(sscanf(why, "device too small: %llu blocks, need at least %llu",
				&have, &need), 2);
	assert_int_equal(have, 256);
	/* The stated minimum is exact. */
	assert_int_equal(format_layout(need, &p, &sb, &why), 0);
	check_layout(need, &p, &sb);
	assert_int_equal(format_layout(need - 1, &p, &sb, &why), -ENOSPC);
	assert_non_null(strstr(why, "device too small"));

	for (uint64_t n = 0; n < 8; n++) {
		why = NULL;
		assert_int_equal(format_layout(n, &p, &sb, &why), -ENOSPC);
		assert_non_null(why);
	}

	/* One slot needs much less. */
	p.slots = 1;
	assert_int_equal(format_layout(200, &p, &sb, &why), -ENOSPC);
	assert_int_equal(sscanf(why, "device too small: %llu blocks, need at least %llu",
				&have, &need), 2);
	assert_true(need < 1024);
	assert_int_equal(format_layout(need, &p, &sb, &why), 0);
	check_layout(need, &p, &sb);
}

static void test_layout_sizes(void **state)
{
	struct pfs_format_params p = { 0 };
	struct pfs_super sb;
	const char *why;

	/* 64 MiB: 2 MiB journals, one group filling the rest. */
	assert_int_equal(format_layout(16384, &p, &sb, &why), 0);
	check_layout(16384, &p, &sb);
	assert_int_equal(le64_to_cpu(sb.journal_blocks), 512);
	assert_int_equal(le32_to_cpu(sb.group_count), 1);
	assert_int_equal(le32_to_cpu(sb.max_slots), PFS_DEFAULT_SLOTS);

	/* 1 GiB: full 16 MiB journals, full-size groups. */
	assert_int_equal(format_layout(262144, &p, &sb, &why), 0);
	check_layout(262144, &p, &sb);
	assert_int_equal(le64_to_cpu(sb.journal_blocks), 4096);
	assert_int_equal(le32_to_cpu(sb.blocks_per_group), PFS_BITMAP_BITS);
	assert_int_equal(le32_to_cpu(sb.inodes_per_group), 8128);
	assert_int_equal(le32_to_cpu(sb.inode_table_blocks), 508);
	assert_int_equal(le32_to_cpu(sb.feature_incompat),
			 PFS_FEATURE_INCOMPAT_UNDO_JOURNAL |
			 PFS_FEATURE_INCOMPAT_EXTENTS | PFS_FEATURE_INCOMPAT_HASHDIR);

	/* Odd sizes, slot counts, group sizes and inode densities. */
	static const uint64_t sizes[] = {
		2137, 4099, 9973, 16383, 16385, 65537, 99991, 262143, 262145,
		1000003, 4194304 + 17, 268435456ull + 12345,
	};
	static const uint32_t slot_counts[] = { 1, 2, 3, 8, 17, 64 };
	static const uint32_t bpgs[] = { 0, 64, 100, 1024, 4097, 32512 };
	static const uint32_t bpis[] = { 0, 1024, 4096, 65536, 1u << 26 };
	for (size_t a = 0; a < PFS_ARRAY_SIZE(sizes); a++)
		for (size_t b = 0; b < PFS_ARRAY_SIZE(slot_counts); b++)
			for (size_t c = 0; c < PFS_ARRAY_SIZE(bpgs); c++)
				for (size_t d = 0; d < PFS_ARRAY_SIZE(bpis); d++) {
					struct pfs_format_params q = { 0 };
					/* Keep the group walk of check_layout short. */
					if (bpgs[c] && sizes[a] / bpgs[c] > 1000000)
						continue;
					q.slots = slot_counts[b];
					q.blocks_per_group = bpgs[c];
					q.bytes_per_inode = bpis[d];
					why = NULL;
					int r = format_layout(sizes[a], &q, &sb, &why);
					if (r == 0) {
						check_layout(sizes[a], &q, &sb);
					} else {
						assert_int_equal(r, -ENOSPC);
						assert_non_null(why);
					}
				}
}

static void test_layout_groups(void **state)
{
	struct pfs_format_params p = { 0 };
	struct pfs_super sb;
	const char *why;

	/* 2 slots, 256-block journals (n < 2048), groups of 100 blocks with
	 * 16 inodes: meta = 4, so a remainder >= 20 becomes a group. */
	p.slots = 2;
	p.blocks_per_group = 100;
	p.bytes_per_inode = 65536;
	uint64_t gs = 2 + 4 + 512;
	/* area = n - 1 - gs: 3 full groups plus a remainder of 19: dropped. */
	uint64_t n = gs + 1 + 300 + 19;
	assert_int_equal(format_layout(n, &p, &sb, &why), 0);
	check_layout(n, &p, &sb);
	assert_int_equal(le64_to_cpu(sb.group_start), gs);
	assert_int_equal(le32_to_cpu(sb.inodes_per_group), 16);
	assert_int_equal(le32_to_cpu(sb.group_count), 3);
	/* ... 20: kept as a short last group. */
	assert_int_equal(format_layout(n + 1, &p, &sb, &why), 0);
	check_layout(n + 1, &p, &sb);
	assert_int_equal(le32_to_cpu(sb.group_count), 4);
	assert_int_equal(group_nblocks(&sb, 3), 20);

	/* A device smaller than one group: a single group filling it. */
	p.blocks_per_group = 0;
	p.bytes_per_inode = 0;
	assert_int_equal(format_layout(gs + 1 + 1000, &p, &sb, &why), 0);
	check_layout(gs + 1 + 1000, &p, &sb);
	assert_int_equal(le32_to_cpu(sb.group_count), 1);
	assert_int_equal(le32_to_cpu(sb.blocks_per_group), 1000);
	assert_int_equal(le32_to_cpu(sb.inodes_per_group), 256);

	/* Just over one full group: the small remainder is dropped. */
	p.slots = 1;
	p.journal_bytes = 1u << 20;
	assert_int_equal(format_layout(2 + 2 + 256 + PFS_BITMAP_BITS + 100 + 1, &p,
				       &sb, &why), 0);
	assert_int_equal(le32_to_cpu(sb.group_count), 1);
	assert_int_equal(le32_to_cpu(sb.blocks_per_group), PFS_BITMAP_BITS);
}

static void test_layout_params(void **state)
{
	struct pfs_format_params p = { 0 };
	struct pfs_super sb;
	const char *why;

	p.slots = PFS_MAX_SLOTS + 1;
	why = NULL;
	assert_int_equal(format_layout(1u << 20, &p, &sb, &why), -EINVAL);
	assert_non_null(why);
	p.slots = PFS_MAX_SLOTS;
	assert_int_equal(format_layout(1u << 20, &p, &sb, &why), 0);
	check_layout(1u << 20, &p, &sb);
	assert_int_equal(le32_to_cpu(sb.max_slots), PFS_MAX_SLOTS);

	memset(&p, 0, sizeof(p));
	p.blocks_per_group = 63;
	assert_int_equal(format_layout(1u << 20, &p, &sb, &why), -EINVAL);
	p.blocks_per_group = PFS_BITMAP_BITS + 1;
	assert_int_equal(format_layout(1u << 20, &p, &sb, &why), -EINVAL);
	p.blocks_per_group = 0;
	p.bytes_per_inode = 512;
	assert_int_equal(format_layout(1u << 20, &p, &sb, &why), -EINVAL);
	p.bytes_per_inode = 0;
	p.journal_bytes = 4096;          /* below the 1 MiB minimum */
	assert_int_equal(format_layout(1u << 20, &p, &sb, &why), -EINVAL);

	/* An explicit journal size is used as given, past a quarter. */
	p.journal_bytes = 64u << 20;
	assert_int_equal(format_layout(262144, &p, &sb, &why), 0);
	check_layout(262144, &p, &sb);
	assert_int_equal(le64_to_cpu(sb.journal_blocks), 16384);
	/* ... and refused with a reason when it does not fit. */
	p.journal_bytes = 128u << 20;
	why = NULL;
	assert_int_equal(format_layout(262144, &p, &sb, &why), -ENOSPC);
	assert_non_null(why);
	assert_non_null(strstr(why, "journals of 32768 blocks"));
	/* A journal size that is not a whole number of blocks rounds up. */
	p.journal_bytes = (1u << 20) + 1;
	assert_int_equal(format_layout(262144, &p, &sb, &why), 0);
	assert_int_equal(le64_to_cpu(sb.journal_blocks), 257);

	/* The label and a given UUID are copied. */
	memset(&p, 0, sizeof(p));
	uint8_t uuid[16];
	for (int i = 0; i < 16; i++)
		uuid[i] = (uint8_t)(0xa0 + i);
	p.uuid = uuid;
	snprintf(p.label, sizeof(p.label), "shared-data");
	assert_int_equal(format_layout(262144, &p, &sb, &why), 0);
	assert_memory_equal(sb.uuid, uuid, 16);
	assert_string_equal(sb.label, "shared-data");
}

/* ------------------------------------------------------------------ */
/* Writing and reading back                                             */
/* ------------------------------------------------------------------ */

static void verify_image(int fd, uint64_t n, const struct pfs_format_params *p,
			 const uint8_t key[PFS_KEY_BYTES], const struct pfs_super *ret_sb)
{
	uint8_t *blk = malloc(PFS_BLOCK_SIZE);
	uint8_t *blk2 = malloc(PFS_BLOCK_SIZE);
	struct pfs_super sb, bk;
	uint8_t kc[32];

	assert_non_null(blk);
	assert_non_null(blk2);

	/* Superblock and backup. */
	read_blk(fd, 0, blk);
	memcpy(&sb, blk, sizeof(sb));
	assert_memory_equal(&sb, ret_sb, sizeof(sb));
	uint32_t seed = pfs_crc32c(0, sb.uuid, 16);
	assert_int_equal(le64_to_cpu(sb.csum_seed), seed);
	assert_true(meta_ok(blk, 0, PFS_MAGIC_SUPER, seed));
	assert_true(all_zero(blk + sizeof(sb), PFS_BLOCK_SIZE - sizeof(sb)));
	assert_int_equal(le32_to_cpu(sb.version), PFS_FORMAT_VERSION);
	assert_int_equal(le32_to_cpu(sb.block_size), PFS_BLOCK_SIZE);
	assert_int_equal(le32_to_cpu(sb.feature_incompat), PFS_FEATURE_INCOMPAT_SUPP);
	assert_int_equal(le32_to_cpu(sb.feature_compat), 0);
	assert_int_equal(le32_to_cpu(sb.feature_ro_compat), 0);
	assert_int_equal(le32_to_cpu(sb.backup), 0);
	assert_true(le64_to_cpu(sb.create_time) > 1600000000ull);
	assert_false(all_zero(sb.hash_seed, sizeof(sb.hash_seed)));
	assert_false(all_zero(sb.uuid, sizeof(sb.uuid)));
	if (p->uuid)
		assert_memory_equal(sb.uuid, p->uuid, 16);
	assert_int_equal(strncmp(sb.label, p->label, PFS_LABEL_MAX), 0);
	key_check_value(key, sb.uuid, kc);
	assert_memory_equal(sb.key_check, kc, 32);
	check_layout(n, p, &sb);

	read_blk(fd, n - 1, blk2);
	memcpy(&bk, blk2, sizeof(bk));
	assert_true(meta_ok(blk2, n - 1, PFS_MAGIC_SUPER, seed));
	assert_int_equal(le32_to_cpu(bk.backup), 1);
	bk.backup = 0;
	bk.hdr.blkno = sb.hdr.blkno;
	bk.hdr.crc = sb.hdr.crc;
	assert_memory_equal(&bk, &sb, sizeof(sb));

	read_blk(fd, 1, blk);
	assert_true(all_zero(blk, PFS_BLOCK_SIZE));

	/* Slots and journals. */
	uint32_t slots = le32_to_cpu(sb.max_slots);
	uint64_t sts = le64_to_cpu(sb.slot_table_start);
	uint64_t js = le64_to_cpu(sb.journal_start);
	uint64_t jb = le64_to_cpu(sb.journal_blocks);
	for (uint32_t s = 0; s < slots; s++) {
		const struct pfs_heartbeat *hb = (const void *)blk;
		const struct pfs_slot *sl = (const void *)blk;

		read_blk(fd, sts + 2 * s, blk);
		assert_true(meta_ok(blk, sts + 2 * s, PFS_MAGIC_HEARTBEAT, seed));
		assert_int_equal(le32_to_cpu(hb->slot), s);
		assert_int_equal(le64_to_cpu(hb->generation), 0);
		assert_int_equal(le64_to_cpu(hb->seq), 0);

		read_blk(fd, sts + 2 * s + 1, blk);
		assert_true(meta_ok(blk, sts + 2 * s + 1, PFS_MAGIC_SLOT, seed));
		assert_int_equal(le32_to_cpu(sl->slot), s);
		assert_int_equal(le32_to_cpu(sl->state), PFS_SLOT_FREE);
		assert_int_equal(le64_to_cpu(sl->generation), 0);
		assert_int_equal(le64_to_cpu(sl->journal_start), js + s * jb);
		assert_int_equal(le64_to_cpu(sl->journal_blocks), jb);
		assert_int_equal(le64_to_cpu(sl->orphan_head), 0);
		assert_int_equal(le32_to_cpu(sl->journal_dirty), 0);
		assert_int_equal(sl->hostname[0], 0);
	}
	for (uint64_t b = js; b < js + jb * slots; b++) {
		read_blk(fd, b, blk);
		assert_true(all_zero(blk, PFS_BLOCK_SIZE));
	}

	/* Groups. */
	uint64_t gs = le64_to_cpu(sb.group_start);
	uint32_t ngroups = le32_to_cpu(sb.group_count);
	uint32_t bpg = le32_to_cpu(sb.blocks_per_group);
	uint32_t ipg = le32_to_cpu(sb.inodes_per_group);
	uint32_t itb = le32_to_cpu(sb.inode_table_blocks);
	uint32_t meta = PFS_GROUP_META_BLOCKS + itb;
	uint64_t free_blocks = 0, free_inodes = 0, ndirs = 0;
	for (uint32_t g = 0; g < ngroups; g++) {
		uint64_t first = gs + (uint64_t)g * bpg;
		uint32_t nb = group_nblocks(&sb, g);
		struct pfs_group_desc gd;

		read_blk(fd, first, blk);
		assert_true(meta_ok(blk, first, PFS_MAGIC_GROUP, seed));
		memcpy(&gd, blk, sizeof(gd));
		assert_int_equal(le32_to_cpu(gd.group), g);
		assert_int_equal(le32_to_cpu(gd.nblocks), nb);
		assert_int_equal(le32_to_cpu(gd.ninodes), ipg);
		assert_int_equal(le64_to_cpu(gd.block_bitmap), first + 1);
		assert_int_equal(le64_to_cpu(gd.inode_bitmap), first + 2);
		assert_int_equal(le64_to_cpu(gd.inode_table), first + 3);
		assert_int_equal(le32_to_cpu(gd.ndirs), g == 0 ? 1 : 0);

		read_blk(fd, first + 1, blk);
		assert_true(meta_ok(blk, first + 1, PFS_MAGIC_BBITMAP, seed));
		assert_int_equal(bits_set(blk, 0, meta), meta);
		assert_int_equal(bits_set(blk, meta, nb), 0);
		assert_int_equal(bits_set(blk, nb, PFS_BITMAP_BITS),
				 PFS_BITMAP_BITS - nb);
		assert_int_equal(le32_to_cpu(gd.free_blocks),
				 nb - bits_set(blk, 0, nb));

		read_blk(fd, first + 2, blk);
		assert_true(meta_ok(blk, first + 2, PFS_MAGIC_IBITMAP, seed));
		assert_int_equal(bits_set(blk, 0, ipg), g == 0 ? 1 : 0);
		if (g == 0)
			assert_true(bit_set(blk, 0));
		assert_int_equal(bits_set(blk, ipg, PFS_BITMAP_BITS),
				 PFS_BITMAP_BITS - ipg);
		assert_int_equal(le32_to_cpu(gd.free_inodes),
				 ipg - bits_set(blk, 0, ipg));

		for (uint32_t t = 0; t < itb; t++) {
			read_blk(fd, first + 3 + t, blk);
			if (g == 0 && t == 0)
				assert_true(all_zero(blk + PFS_INODE_SIZE,
						     PFS_BLOCK_SIZE - PFS_INODE_SIZE));
			else
				assert_true(all_zero(blk, PFS_BLOCK_SIZE));
		}
		free_blocks += le32_to_cpu(gd.free_blocks);
		free_inodes += le32_to_cpu(gd.free_inodes);
		ndirs += le32_to_cpu(gd.ndirs);
	}
	assert_int_equal(free_inodes, (uint64_t)ngroups * ipg - 1);
	assert_int_equal(ndirs, 1);
	uint64_t last_end = gs + (uint64_t)(ngroups - 1) * bpg + group_nblocks(&sb, ngroups - 1);
	assert_int_equal(free_blocks, last_end - gs - (uint64_t)ngroups * meta);

	/* The root directory. */
	struct pfs_inode root;
	read_blk(fd, gs + 3, blk);
	memcpy(&root, blk, sizeof(root));
	assert_true(inode_crc_ok(&root, seed));
	assert_int_equal(le16_to_cpu(root.magic), PFS_MAGIC_INODE);
	assert_int_equal(le16_to_cpu(root.version), 1);
	assert_int_equal(le64_to_cpu(root.ino), PFS_ROOT_INO);
	assert_int_equal(le32_to_cpu(root.mode),
			 S_IFDIR | (p->root_mode ? p->root_mode : 0755));
	assert_int_equal(le32_to_cpu(root.uid), p->root_uid);
	assert_int_equal(le32_to_cpu(root.gid), p->root_gid);
	assert_int_equal(le32_to_cpu(root.nlink), 2);
	assert_int_equal(le64_to_cpu(root.size), 0);
	assert_int_equal(le64_to_cpu(root.blocks), 0);
	assert_int_equal(le64_to_cpu(root.generation), 1);
	assert_int_equal(le64_to_cpu(root.parent), PFS_ROOT_INO);
	assert_int_equal(le64_to_cpu(root.tree_root), 0);
	assert_int_equal(le32_to_cpu(root.flags), 0);
	assert_int_equal(le64_to_cpu(root.xattr_blk), 0);
	assert_int_equal(le64_to_cpu(root.atime_sec), le64_to_cpu(sb.create_time));
	assert_int_equal(le64_to_cpu(root.mtime_sec), le64_to_cpu(root.atime_sec));
	assert_int_equal(le64_to_cpu(root.ctime_sec), le64_to_cpu(root.atime_sec));
	assert_int_equal(le64_to_cpu(root.btime_sec), le64_to_cpu(root.atime_sec));
	assert_int_equal(le32_to_cpu(root.mtime_nsec), le32_to_cpu(root.atime_nsec));
	assert_true(le32_to_cpu(root.atime_nsec) < 1000000000u);

	free(blk);
	free(blk2);
}

static void test_format_write_default(void **state)
{
	struct pfs_format_params p = { 0 };
	struct pfs_super sb;
	uint8_t key[PFS_KEY_BYTES];
	const char *why = NULL;
	uint64_t n = 16384;                 /* 64 MiB */

	assert_int_equal(key_init(), 0);
	key_generate(key);
	int fd = make_image(n * PFS_BLOCK_SIZE);
	/* Old contents everywhere must not survive where it matters. */
	uint8_t *junk = malloc(PFS_BLOCK_SIZE);
	memset(junk, 0x5a, PFS_BLOCK_SIZE);
	for (uint64_t b = 0; b < n; b += 61)
		write_blk(fd, b, junk);
	write_blk(fd, n - 1, junk);
	free(junk);

	snprintf(p.label, sizeof(p.label), "test volume");
	assert_int_equal(format_write(fd, n, &p, key, &sb, &why), 0);
	verify_image(fd, n, &p, key, &sb);
	close(fd);
}

static void test_format_write_groups(void **state)
{
	struct pfs_format_params p = { 0 };
	struct pfs_super sb;
	uint8_t key[PFS_KEY_BYTES];
	uint8_t uuid[16];
	const char *why = NULL;
	uint64_t n = 12288;                 /* 48 MiB */

	key_generate(key);
	uuid_generate_random16(uuid);
	p.slots = 2;
	p.blocks_per_group = 1024;
	p.bytes_per_inode = 4096;
	p.root_uid = 1000;
	p.root_gid = 100;
	p.root_mode = 01777;
	p.uuid = uuid;
	/* The file starts short: format_write extends it. */
	int fd = make_image(4096);
	assert_int_equal(format_write(fd, n, &p, key, &sb, &why), 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, n * PFS_BLOCK_SIZE);
	assert_true(le32_to_cpu(sb.group_count) > 2);
	/* The last group is shorter than the others. */
	assert_true(group_nblocks(&sb, le32_to_cpu(sb.group_count) - 1) < 1024);
	verify_image(fd, n, &p, key, &sb);
	close(fd);

	/* Too small: refused before anything is written. */
	fd = make_image(100 * PFS_BLOCK_SIZE);
	why = NULL;
	assert_int_equal(format_write(fd, 100, &p, key, &sb, &why), -ENOSPC);
	assert_non_null(why);
	uint8_t blk[PFS_BLOCK_SIZE];
	read_blk(fd, 0, blk);
	assert_true(all_zero(blk, sizeof(blk)));
	close(fd);
}

static void test_read_super(void **state)
{
	struct pfs_format_params p = { 0 };
	struct pfs_super sb, found;
	uint8_t key[PFS_KEY_BYTES];
	uint8_t zero[PFS_BLOCK_SIZE] = { 0 };
	const char *why;
	uint64_t n = 4096;

	key_generate(key);
	p.slots = 2;
	int fd = make_image(n * PFS_BLOCK_SIZE);
	assert_int_equal(format_read_super(fd, &found), -ENOENT);
	assert_int_equal(format_write(fd, n, &p, key, &sb, &why), 0);

	assert_int_equal(format_read_super(fd, &found), 0);
	assert_memory_equal(&found, &sb, sizeof(sb));

	/* The primary is gone: the backup is found. */
	write_blk(fd, 0, zero);
	assert_int_equal(format_read_super(fd, &found), 0);
	assert_int_equal(le32_to_cpu(found.backup), 1);
	assert_memory_equal(found.uuid, sb.uuid, 16);
	assert_int_equal(le64_to_cpu(found.hdr.blkno), n - 1);

	/* A corrupt primary (bad crc) also falls back to the backup. */
	uint8_t blk[PFS_BLOCK_SIZE];
	memset(blk, 0, sizeof(blk));
	memcpy(blk, &sb, sizeof(sb));
	blk[100] ^= 1;
	write_blk(fd, 0, blk);
	assert_int_equal(format_read_super(fd, &found), 0);
	assert_int_equal(le32_to_cpu(found.backup), 1);

	/* Neither copy: nothing found. */
	write_blk(fd, n - 1, zero);
	assert_int_equal(format_read_super(fd, &found), -ENOENT);

	/* The backup only counts in the last block of the device. */
	memset(blk, 0, sizeof(blk));
	memcpy(blk, &sb, sizeof(sb));
	write_blk(fd, 0, blk);             /* restore the primary */
	assert_int_equal(format_read_super(fd, &found), 0);
	assert_int_equal(ftruncate(fd, (off_t)((n + 8) * PFS_BLOCK_SIZE)), 0);
	write_blk(fd, 0, zero);
	assert_int_equal(format_read_super(fd, &found), -ENOENT);
	close(fd);

	/* Tiny and empty files hold nothing. */
	fd = make_image(0);
	assert_int_equal(format_read_super(fd, &found), -ENOENT);
	close(fd);
	fd = make_image(100);
	assert_int_equal(format_read_super(fd, &found), -ENOENT);
	close(fd);
}

/* ------------------------------------------------------------------ */
/* Keys and UUIDs                                                       */
/* ------------------------------------------------------------------ */

static char *make_tmpdir(void)
{
	char *d = malloc(4096);

	snprintf(d, 4096, "%s/pfs-key-XXXXXX", tmp_dir());
	assert_non_null(mkdtemp(d));
	return d;
}

static void remove_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char sub[4096];

	if (!d) {
		unlink(path);
		return;
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
		remove_tree(sub);
	}
	closedir(d);
	rmdir(path);
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void write_text(const char *path, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

static void test_key_file_roundtrip(void **state)
{
	char *dir = make_tmpdir();
	char keydir[4200], path[4300], tmp[4400];
	uint8_t uuid[16], uuid2[16], key[PFS_KEY_BYTES], key2[PFS_KEY_BYTES];
	char u[37];
	struct stat st;

	assert_int_equal(key_init(), 0);
	uuid_generate_random16(uuid);
	key_generate(key);
	uuid_format(uuid, u);

	/* Default path from $PEERFS_KEYDIR; missing directories made 0700. */
	snprintf(keydir, sizeof(keydir), "%s/a/keys/", dir);
	setenv("PEERFS_KEYDIR", keydir, 1);
	key_default_path(uuid, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s/a/keys/%s.key", dir, u);
	assert_string_equal(path, tmp);
	unsetenv("PEERFS_KEYDIR");
	key_default_path(uuid, tmp, sizeof(tmp));
	assert_int_equal(strncmp(tmp, PFS_KEYDIR_DEFAULT "/", strlen(PFS_KEYDIR_DEFAULT) + 1), 0);

	assert_int_equal(key_file_read(path, uuid2, key2), -ENOENT);
	assert_int_equal(key_file_write(path, uuid, key, 0), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	snprintf(keydir, sizeof(keydir), "%s/a/keys", dir);
	assert_int_equal(stat(keydir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(count_entries(keydir), 1);  /* no temporary left */

	memset(uuid2, 0, sizeof(uuid2));
	memset(key2, 0, sizeof(key2));
	assert_int_equal(key_file_read(path, uuid2, key2), 0);
	assert_memory_equal(uuid2, uuid, 16);
	assert_memory_equal(key2, key, PFS_KEY_BYTES);

	/* The text is exactly the documented format. */
	char text[256], hex[65];
	int fd = open(path, O_RDONLY);
	ssize_t len = read(fd, text, sizeof(text) - 1);
	close(fd);
	assert_true(len > 0);
	text[len] = '\0';
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", key[i]);
	char expect[256];
	snprintf(expect, sizeof(expect), "peerfs-key 1\nuuid %s\nkey %s\n", u, hex);
	assert_string_equal(text, expect);

	/* No overwrite unless asked. */
	key_generate(key2);
	assert_int_equal(key_file_write(path, uuid, key2, 0), -EEXIST);
	assert_int_equal(key_file_read(path, uuid2, key2), 0);
	assert_memory_equal(key2, key, PFS_KEY_BYTES);
	key_generate(key2);
	assert_int_equal(key_file_write(path, uuid, key2, 1), 0);
	uint8_t key3[PFS_KEY_BYTES];
	assert_int_equal(key_file_read(path, uuid2, key3), 0);
	assert_memory_equal(key3, key2, PFS_KEY_BYTES);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	/* Staging: nothing at the final name until commit. */
	char path2[4300];
	snprintf(path2, sizeof(path2), "%s/staged.key", keydir);
	assert_int_equal(key_file_stage(path2, uuid, key, tmp, sizeof(tmp)), 0);
	assert_int_equal(access(path2, F_OK), -1);
	assert_int_equal(access(tmp, F_OK), 0);
	key_file_discard(tmp);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(key_file_stage(path2, uuid, key, tmp, sizeof(tmp)), 0);
	assert_int_equal(key_file_commit(tmp, path2, 0), 0);
	assert_int_equal(key_file_read(path2, uuid2, key3), 0);
	assert_memory_equal(key3, key, PFS_KEY_BYTES);
	/* Commit refuses an existing file unless overwriting. */
	assert_int_equal(key_file_stage(path2, uuid, key2, tmp, sizeof(tmp)), 0);
	assert_int_equal(key_file_commit(tmp, path2, 0), -EEXIST);
	assert_int_equal(key_file_commit(tmp, path2, 1), 0);
	assert_int_equal(key_file_read(path2, uuid2, key3), 0);
	assert_memory_equal(key3, key2, PFS_KEY_BYTES);
	assert_int_equal(count_entries(keydir), 2);
	/* A name too long for the buffer. */
	assert_int_equal(key_file_stage(path2, uuid, key, tmp, 8), -ENAMETOOLONG);

	remove_tree(dir);
	free(dir);
}

static void test_key_file_malformed(void **state)
{
	char *dir = make_tmpdir();
	char path[4300];
	uint8_t uuid[16], key[PFS_KEY_BYTES];
	const char *u = "0123abcd-4567-4def-89ab-cdef01234567";
	const char *hex = "00112233445566778899aabbccddeeff"
			  "00112233445566778899AABBCCDDEEFF";
	char good[256];

	snprintf(path, sizeof(path), "%s/k.key", dir);
	snprintf(good, sizeof(good), "peerfs-key 1\nuuid %s\nkey %s\n", u, hex);
	write_text(path, good, strlen(good));
	assert_int_equal(key_file_read(path, uuid, key), 0);
	assert_int_equal(key[0], 0x00);
	assert_int_equal(key[17], 0x11);
	assert_int_equal(key[31], 0xff);
	/* No final newline is fine too. */
	write_text(path, good, strlen(good) - 1);
	assert_int_equal(key_file_read(path, uuid, key), 0);

	char bad[9][256];
	snprintf(bad[0], 256, "peerfs-key 2\nuuid %s\nkey %s\n", u, hex);
	snprintf(bad[1], 256, "peerfs-key 1\nuuid %.35s\nkey %s\n", u, hex);
	snprintf(bad[2], 256, "peerfs-key 1\nuuid %s\nkey %.62s\n", u, hex);
	snprintf(bad[3], 256, "peerfs-key 1\nuuid %s\nkey %.63sg\n", u, hex);
	snprintf(bad[4], 256, "peerfs-key 1\nuuid %s\nkey %s00\n", u, hex);
	snprintf(bad[5], 256, "peerfs-key 1\nuuid %s\nkey %s\nextra\n", u, hex);
	snprintf(bad[6], 256, "peerfs-key 1\nkey %s\nuuid %s\n", hex, u);
	snprintf(bad[7], 256, "peerfs-key 1\nuuid  %s\nkey %s\n", u, hex);
	snprintf(bad[8], 256, "peerfs-key 1\nuuid %s\n", u);
	pfs_log_set_level(-1);
	for (size_t i = 0; i < PFS_ARRAY_SIZE(bad); i++) {
		write_text(path, bad[i], strlen(bad[i]));
		assert_int_equal(key_file_read(path, uuid, key), -EINVAL);
	}
	write_text(path, "", 0);
	assert_int_equal(key_file_read(path, uuid, key), -EINVAL);
	char nul[] = "peerfs-key 1\0uuid";
	write_text(path, nul, sizeof(nul));
	assert_int_equal(key_file_read(path, uuid, key), -EINVAL);
	char *huge = malloc(8192);
	memset(huge, 'a', 8192);
	write_text(path, huge, 8192);
	free(huge);
	assert_int_equal(key_file_read(path, uuid, key), -EINVAL);
	/* A directory is not a key file. */
	assert_int_equal(key_file_read(dir, uuid, key), -EINVAL);
	pfs_log_set_level(PFS_LOG_INFO);

	remove_tree(dir);
	free(dir);
}

static void test_key_derivation(void **state)
{
	uint8_t key[PFS_KEY_BYTES], key2[PFS_KEY_BYTES];
	uint8_t uuid[16], uuid2[16];
	uint8_t a[32], b[32];

	key_generate(key);
	memcpy(key2, key, sizeof(key));
	key2[31] ^= 0x80;
	uuid_generate_random16(uuid);
	memcpy(uuid2, uuid, 16);
	uuid2[0] ^= 1;

	key_check_value(key, uuid, a);
	key_check_value(key, uuid, b);
	assert_memory_equal(a, b, 32);                  /* deterministic */
	key_check_value(key2, uuid, b);
	assert_memory_not_equal(a, b, 32);              /* another key */
	key_check_value(key, uuid2, b);
	assert_memory_not_equal(a, b, 32);              /* another volume */
	assert_memory_not_equal(a, key, 32);

	key_derive_slot(key, 0, 1, a);
	key_derive_slot(key, 0, 1, b);
	assert_memory_equal(a, b, 32);
	key_derive_slot(key, 1, 1, b);
	assert_memory_not_equal(a, b, 32);
	key_derive_slot(key, 0, 2, b);
	assert_memory_not_equal(a, b, 32);
	key_derive_slot(key2, 0, 1, b);
	assert_memory_not_equal(a, b, 32);
	key_check_value(key, uuid, b);
	assert_memory_not_equal(a, b, 32);

	/* Fixed vectors, computed independently from the definitions (BLAKE2b
	 * with salt = le64 subkey id and personal = context, as crypto_kdf
	 * does): key = 00 01 .. 1f, uuid = 10 11 .. 1f. */
	static const char check_hex[] =
		"9a7c0bf1fc499ddb0fbc7076e89b7779cae90996ec3d3523d8cacafd94ccc15f";
	static const char slot3_gen7_hex[] =
		"409be34355d89c6f66463d6844ba1872288e065da16ee762df2e94e49af01f89";
	uint8_t vk[PFS_KEY_BYTES], vu[16];
	char hex[65];
	for (int i = 0; i < 32; i++)
		vk[i] = (uint8_t)i;
	for (int i = 0; i < 16; i++)
		vu[i] = (uint8_t)(0x10 + i);
	key_check_value(vk, vu, a);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", a[i]);
	assert_string_equal(hex, check_hex);
	key_derive_slot(vk, 3, 7, a);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", a[i]);
	assert_string_equal(hex, slot3_gen7_hex);
}

static void test_uuid(void **state)
{
	uint8_t u[16], v[16];
	char s[37];

	for (int i = 0; i < 100; i++) {
		uuid_generate_random16(u);
		assert_int_equal(u[6] >> 4, 4);
		assert_int_equal(u[8] & 0xc0, 0x80);
		uuid_format(u, s);
		assert_int_equal(strlen(s), 36);
		assert_int_equal(s[8], '-');
		assert_int_equal(s[13], '-');
		assert_int_equal(s[14], '4');
		for (int k = 0; k < 36; k++)
			assert_true(s[k] == '-' || (s[k] >= '0' && s[k] <= '9') ||
				    (s[k] >= 'a' && s[k] <= 'f'));
		assert_int_equal(uuid_parse16(s, v), 0);
		assert_memory_equal(u, v, 16);
	}
	uuid_generate_random16(v);
	assert_memory_not_equal(u, v, 16);

	for (int i = 0; i < 16; i++)
		u[i] = (uint8_t)(i * 17);
	uuid_format(u, s);
	assert_string_equal(s, "00112233-4455-6677-8899-aabbccddeeff");
	assert_int_equal(uuid_parse16("00112233-4455-6677-8899-AABBCCDDEEFF", v), 0);
	assert_memory_equal(u, v, 16);

	assert_int_equal(uuid_parse16("", v), -EINVAL);
	assert_int_equal(uuid_parse16("00112233-4455-6677-8899-aabbccddeef", v), -EINVAL);
	assert_int_equal(uuid_parse16("00112233-4455-6677-8899-aabbccddeeff0", v), -EINVAL);
	assert_int_equal(uuid_parse16("0011223344-55-6677-8899-aabbccddeeff", v), -EINVAL);
	assert_int_equal(uuid_parse16("00112233-4455-6677-8899-aabbccddeefg", v), -EINVAL);
	assert_int_equal(uuid_parse16("001122334455667788990aabbccddeeff000", v), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_struct_layout),
		cmocka_unit_test(test_crc32c_vectors),
		cmocka_unit_test(test_layout_too_small),
		cmocka_unit_test(test_layout_sizes),
		cmocka_unit_test(test_layout_groups),
		cmocka_unit_test(test_layout_params),
		cmocka_unit_test(test_format_write_default),
		cmocka_unit_test(test_format_write_groups),
		cmocka_unit_test(test_read_super),
		cmocka_unit_test(test_key_file_roundtrip),
		cmocka_unit_test(test_key_file_malformed),
		cmocka_unit_test(test_key_derivation),
		cmocka_unit_test(test_uuid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
