/*
 * pass0_super.c -- pass 0: the superblock and its backup.
 *
 * Design notes
 *
 * The primary (block 0) is used if it passes its header checks (magic,
 * checksum with the seed it carries, block number), its seed is the crc32c
 * of its UUID, and its geometry is consistent (the rules of
 * vol_check_super, plus: every group, the last one included, holds its
 * metadata and at least one data block).  Otherwise the backup in the
 * device's last block is used, and the repair rewrites the primary from
 * it.  With a good primary the backup (at block_count - 1) must pass the
 * same header checks, carry backup = 1 and equal the primary in every
 * other field; the repair rewrites it from the primary.
 *
 * No usable superblock, an unsupported version or feature, or a device
 * smaller than the volume is an operational error (exit 8): nothing else
 * can be checked.
 *
 * Once a superblock is chosen this pass sets up what later passes share:
 * the geometry (f->g), the block cache (seeded with the volume's checksum
 * seed), the group table, the computed usage bitmaps (with the blocks
 * before the first group and the backup superblock marked used), and the
 * hash context for directory names.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsck.h"
#include "pfs_fs.h"
#include "pfs_util.h"

/* Why a superblock image at blkno is unusable, or NULL. */
static const char *header_problem(const uint8_t *blk, uint64_t blkno)
{
	const struct pfs_super *sb = (const struct pfs_super *)blk;
	bool zero = true;

	if (le32_to_cpu(sb->hdr.magic) != PFS_MAGIC_SUPER) {
		for (size_t i = 0; i < PFS_BLOCK_SIZE && zero; i++)
			zero = blk[i] == 0;
		return zero ? "missing" : "bad magic";
	}
	uint32_t seed = (uint32_t)le64_to_cpu(sb->csum_seed);
	const char *why = pfs_meta_problem(blk, blkno, PFS_MAGIC_SUPER, seed);
	if (why)
		return why;
	if (seed != pfs_crc32c(0, sb->uuid, PFS_UUID_SIZE))
		return "bad checksum seed";
	return NULL;
}

/*
 * Why the geometry of sb is unusable on a device of dev_blocks blocks, or
 * NULL.  *fatal is set when no other copy can help (an unsupported version
 * or feature, a device smaller than the volume).
 */
static const char *geometry_problem(const struct pfs_super *sb, uint64_t dev_blocks,
				    char *buf, size_t n, bool *fatal)
{
	uint64_t nblocks = le64_to_cpu(sb->block_count);
	uint32_t slots = le32_to_cpu(sb->max_slots);
	uint32_t bpg = le32_to_cpu(sb->blocks_per_group);
	uint32_t ipg = le32_to_cpu(sb->inodes_per_group);
	uint32_t itb = le32_to_cpu(sb->inode_table_blocks);
	uint32_t ngroups = le32_to_cpu(sb->group_count);
	uint64_t sts = le64_to_cpu(sb->slot_table_start);
	uint64_t js = le64_to_cpu(sb->journal_start);
	uint64_t jb = le64_to_cpu(sb->journal_blocks);
	uint64_t gs = le64_to_cpu(sb->group_start);
	uint32_t incompat = le32_to_cpu(sb->feature_incompat);
	uint32_t ro_compat = le32_to_cpu(sb->feature_ro_compat);

	*fatal = false;
	if (le32_to_cpu(sb->version) != PFS_FORMAT_VERSION) {
		*fatal = true;
		snprintf(buf, n, "format version %u is not supported",
			 le32_to_cpu(sb->version));
		return buf;
	}
	if (incompat & ~PFS_FEATURE_INCOMPAT_SUPP) {
		*fatal = true;
		snprintf(buf, n, "unsupported incompatible features 0x%x",
			 incompat & ~PFS_FEATURE_INCOMPAT_SUPP);
		return buf;
	}
	if (ro_compat & ~PFS_FEATURE_RO_COMPAT_SUPP) {
		*fatal = true;
		snprintf(buf, n, "unsupported read-only features 0x%x",
			 ro_compat & ~PFS_FEATURE_RO_COMPAT_SUPP);
		return buf;
	}
	if (le32_to_cpu(sb->block_size) != PFS_BLOCK_SIZE)
		return "bad block size";
	if (slots == 0 || slots > PFS_MAX_SLOTS)
		return "bad slot count";
	if (bpg < 64 || bpg > PFS_BITMAP_BITS)
		return "bad blocks per group";
	if (ipg == 0 || ipg % PFS_INODES_PER_BLOCK || ipg > PFS_BITMAP_BITS ||
	    itb != ipg / PFS_INODES_PER_BLOCK)
		return "bad inodes per group";
	if (ngroups == 0)
		return "no groups";
	if (le64_to_cpu(sb->root_ino) != PFS_ROOT_INO)
		return "bad root inode number";
	if (nblocks < 4 || jb == 0 || jb > nblocks)
		return "bad block counts";
	if (sts < 2 || js < sts + 2ull * slots || js > nblocks ||
	    gs < js + jb * slots || gs >= nblocks)
		return "overlapping areas";
	if (gs + (uint64_t)(ngroups - 1) * bpg >= nblocks - 1)
		return "groups beyond the end of the volume";
	uint64_t last = gs + (uint64_t)(ngroups - 1) * bpg;
	uint64_t last_nb = PFS_MIN((uint64_t)bpg, nblocks - 1 - last);
	if (last_nb <= PFS_GROUP_META_BLOCKS + (uint64_t)itb)
		return "last group too small";
	if (nblocks > dev_blocks) {
		*fatal = true;
		snprintf(buf, n, "volume has %llu blocks but the device only %llu",
			 (unsigned long long)nblocks, (unsigned long long)dev_blocks);
		return buf;
	}
	return NULL;
}

/* Do two superblocks agree apart from the backup flag and the header? */
static bool supers_equal(const struct pfs_super *a, const struct pfs_super *b)
{
	struct pfs_super x, y;

	memcpy(&x, a, sizeof(x));
	memcpy(&y, b, sizeof(y));
	x.hdr.crc = y.hdr.crc = 0;
	x.hdr.blkno = y.hdr.blkno = 0;
	x.backup = y.backup = 0;
	return memcmp(&x, &y, sizeof(x)) == 0;
}

/* Queue a copy of f->sb for block blk with the given backup flag. */
static int write_super(struct fsck *f, uint64_t blk, uint32_t backup)
{
	struct pfs_super *sb;
	struct buf *b;
	int err = fsck_dev_rebuild(f, blk, &b);

	if (err)
		return err;
	sb = buf_data(b);
	memcpy(sb, &f->sb, sizeof(*sb));
	sb->backup = cpu_to_le32(backup);
	buf_put(b);
	return 0;
}

static void decode_geometry(struct fsck *f)
{
	const struct pfs_super *sb = &f->sb;
	struct fsck_geo *g = &f->g;

	g->nblocks = le64_to_cpu(sb->block_count);
	g->slot_table_start = le64_to_cpu(sb->slot_table_start);
	g->journal_start = le64_to_cpu(sb->journal_start);
	g->journal_blocks = le64_to_cpu(sb->journal_blocks);
	g->group_start = le64_to_cpu(sb->group_start);
	g->nslots = le32_to_cpu(sb->max_slots);
	g->ngroups = le32_to_cpu(sb->group_count);
	g->bpg = le32_to_cpu(sb->blocks_per_group);
	g->ipg = le32_to_cpu(sb->inodes_per_group);
	g->itb = le32_to_cpu(sb->inode_table_blocks);
	g->meta = PFS_GROUP_META_BLOCKS + g->itb;
	g->ninodes = (uint64_t)g->ngroups * g->ipg;
	g->seed = (uint32_t)le64_to_cpu(sb->csum_seed);
}

/* Everything later passes need once the superblock is known. */
static int setup(struct fsck *f)
{
	struct pfs_fs *hc;
	int err;

	decode_geometry(f);
	err = fsck_dev_cache(f);
	if (err)
		return err;
	f->groups = calloc(f->g.ngroups, sizeof(*f->groups));
	f->slots = calloc(f->g.nslots, sizeof(*f->slots));
	hc = calloc(1, sizeof(*hc));
	f->hash_ctx = hc;
	if (!f->groups || !f->slots || !hc)
		return fsck_fail(f, -ENOMEM, "setting up");
	memcpy(hc->hash_seed, f->sb.hash_seed, PFS_HASH_SEED_SIZE);
	for (uint32_t g = 0; g < f->g.ngroups; g++) {
		uint64_t first = fsck_group_first(f, g);
		f->groups[g].nblocks =
			(uint32_t)PFS_MIN((uint64_t)f->g.bpg, f->g.nblocks - 1 - first);
	}
	err = fsck_claims_init(f);
	if (!err)
		err = fsck_bmap_init(&f->iused, f->g.ninodes);
	if (err)
		return fsck_fail(f, err, "allocating the usage bitmaps");
	/* Superblock, block 1, slot table, journals; the backup. */
	fsck_bmap_set_range(&f->used, 0, f->g.group_start);
	fsck_bmap_set(&f->used, f->g.nblocks - 1);
	return 0;
}

/* The primary is unusable: fall back to the backup in the last block. */
static int use_backup(struct fsck *f, uint8_t *blk, const char *pwhy, bool pmagic)
{
	uint64_t dev_last = bio_nblocks(f->dev) - 1;
	const char *bwhy;
	char gbuf[128];
	bool fatal = false;
	int err = fsck_dev_read(f, dev_last, blk);

	if (err)
		return err;
	bwhy = header_problem(blk, dev_last);
	if (!bwhy) {
		bwhy = geometry_problem((const struct pfs_super *)blk,
					bio_nblocks(f->dev), gbuf, sizeof(gbuf), &fatal);
		if (!bwhy && le64_to_cpu(((const struct pfs_super *)blk)->block_count) !=
			     dev_last + 1)
			bwhy = "not at the end of the volume";
	}
	if (bwhy) {
		if (!pmagic && le32_to_cpu(((const struct pfs_super *)blk)->hdr.magic) !=
			       PFS_MAGIC_SUPER) {
			fsck_fail(f, 0, "not a peerfs volume (no superblock found)");
			return -EINVAL;
		}
		fsck_fail(f, 0, "no usable superblock (primary: %s; backup: %s)",
			  pwhy, bwhy);
		return -EUCLEAN;
	}
	memcpy(&f->sb, blk, sizeof(f->sb));
	f->sb.backup = 0;
	err = setup(f);
	if (err)
		return err;
	if (fsck_problem(f, FSCK_FIX_ASK, "superblock: %s, using the backup", pwhy))
		return write_super(f, 0, 0);
	return 0;
}

/* With a good primary: check the backup at block_count - 1. */
static int check_backup(struct fsck *f, uint8_t *blk)
{
	uint64_t last = f->g.nblocks - 1;
	const struct pfs_super *bsb = (const struct pfs_super *)blk;
	const char *why;
	int err = fsck_dev_read(f, last, blk);

	if (err)
		return err;
	why = header_problem(blk, last);
	if (!why && le32_to_cpu(bsb->backup) != 1)
		why = "backup flag not set";
	if (!why && !supers_equal(bsb, &f->sb))
		why = "differs from the primary";
	if (why && fsck_problem(f, FSCK_FIX_SAFE, "backup superblock: %s", why))
		return write_super(f, last, 1);
	return 0;
}

int fsck_pass0_super(struct fsck *f)
{
	uint8_t *blk = aligned_alloc(PFS_BLOCK_SIZE, PFS_BLOCK_SIZE);
	const struct pfs_super *psb = (const struct pfs_super *)blk;
	const char *pwhy;
	char gbuf[128];
	bool fatal = false;
	int err;

	if (!blk)
		return fsck_fail(f, -ENOMEM, "reading the superblock");
	err = fsck_dev_read(f, 0, blk);
	if (err)
		goto out_free;
	pwhy = header_problem(blk, 0);
	if (!pwhy) {
		pwhy = geometry_problem(psb, bio_nblocks(f->dev), gbuf, sizeof(gbuf),
					&fatal);
		if (pwhy && fatal) {
			fsck_fail(f, 0, "superblock: %s", pwhy);
			err = -EINVAL;
			goto out_free;
		}
	}
	if (pwhy) {
		bool pmagic = le32_to_cpu(psb->hdr.magic) == PFS_MAGIC_SUPER;
		err = use_backup(f, blk, pwhy, pmagic);
		goto out_free;
	}
	memcpy(&f->sb, blk, sizeof(f->sb));
	err = setup(f);
	if (err)
		goto out_free;
	if (le32_to_cpu(f->sb.backup) != 0) {
		if (fsck_problem(f, FSCK_FIX_ASK, "superblock: backup flag set in the primary")) {
			f->sb.backup = 0;
			err = write_super(f, 0, 0);
			if (err)
				goto out_free;
		} else {
			f->sb.backup = 0;
		}
	}
	err = check_backup(f, blk);
out_free:
	free(blk);
	return err;
}
