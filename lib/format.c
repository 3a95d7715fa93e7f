/*
 * format.c -- computing the layout of a new volume and writing it.
 *
 * format_layout() is pure arithmetic on the block count and the
 * parameters.  format_write() writes the volume in three steps, each ended
 * by a flush, so that a format interrupted at any point leaves no valid
 * superblock behind:
 *   1. both superblock locations are overwritten with zeros;
 *   2. the slot table, the journals, block 1 and every group are written;
 *   3. the primary and the backup superblock are written.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>
#include <sodium.h>

#include "pfs_mkfs.h"
#include "pfs_util.h"

#define FMT_DEFAULT_BPI         16384u
#define FMT_MIN_BPI             1024u
#define FMT_MAX_BPI             (64u << 20)
#define FMT_MIN_BPG             64u
#define FMT_JOURNAL_DEFAULT     ((16u << 20) / PFS_BLOCK_SIZE)  /* 4096 */
#define FMT_JOURNAL_MIN         256u
#define FMT_MIN_DATA_BLOCKS     64u   /* in the whole volume */
#define FMT_MIN_LAST_DATA       16u   /* data blocks of a short last group */
#define FMT_ZERO_CHUNK          (1u << 20)

/* Messages built at run time for *why. */
static __thread char fmt_why[192];

/* Geometry derived from the block count and the parameters. */
struct geom {
	uint32_t slots;
	uint64_t journal_blocks;
	uint64_t journal_start;
	uint64_t group_start;
	uint32_t bpg;
	uint32_t ipg;
	uint32_t itb;
	uint64_t group_count;
	uint64_t data_blocks;
};

/* Parameters with the defaults filled in. */
struct lparams {
	uint32_t slots;
	uint64_t journal_blocks;        /* 0: default for the size */
	uint32_t bpg;
	uint32_t bpi;
};

static uint32_t inodes_for_group(uint32_t bpg, uint32_t bpi)
{
	uint64_t n = PFS_DIV_ROUND_UP((uint64_t)bpg * PFS_BLOCK_SIZE, bpi);

	n = PFS_DIV_ROUND_UP(n, PFS_INODES_PER_BLOCK) * PFS_INODES_PER_BLOCK;
	if (n < PFS_INODES_PER_BLOCK)
		n = PFS_INODES_PER_BLOCK;
	if (n > PFS_BITMAP_BITS)
		n = PFS_BITMAP_BITS / PFS_INODES_PER_BLOCK * PFS_INODES_PER_BLOCK;
	return (uint32_t)n;
}

/*
 * The geometry of a volume of n blocks.  -ENOSPC if it cannot hold the
 * slot table, the journals and at least FMT_MIN_DATA_BLOCKS data blocks;
 * -EINVAL if the inode table leaves a full group too few data blocks, or
 * the group count does not fit in 32 bits.
 */
static int compute_geom(uint64_t n, const struct lparams *lp, struct geom *g)
{
	memset(g, 0, sizeof(*g));
	g->slots = lp->slots;
	if (lp->journal_blocks) {
		g->journal_blocks = lp->journal_blocks;
	} else {
		/* A quarter of the device at most, in whole MiB. */
		uint64_t jb = n / 4 / lp->slots / FMT_JOURNAL_MIN * FMT_JOURNAL_MIN;
		g->journal_blocks = PFS_MAX(PFS_MIN(jb, (uint64_t)FMT_JOURNAL_DEFAULT),
					    (uint64_t)FMT_JOURNAL_MIN);
	}
	g->journal_start = 2 + 2 * (uint64_t)lp->slots;
	if (g->journal_blocks > n || g->journal_start > n)
		return -ENOSPC;
	uint64_t jtotal = g->journal_blocks * lp->slots;  /* <= 256 * n */
	if (jtotal > n - g->journal_start)
		return -ENOSPC;
	g->group_start = g->journal_start + jtotal;
	if (g->group_start + 1 >= n)
		return -ENOSPC;

	uint64_t area = n - 1 - g->group_start;
	/* A volume smaller than one group gets a single group that fills
	 * it, with an inode table sized for that group. */
	g->bpg = (uint32_t)PFS_MIN((uint64_t)lp->bpg, area);
	g->ipg = inodes_for_group(g->bpg, lp->bpi);
	g->itb = g->ipg / PFS_INODES_PER_BLOCK;
	uint32_t meta = PFS_GROUP_META_BLOCKS + g->itb;
	if (meta + FMT_MIN_LAST_DATA > g->bpg)
		return g->bpg < lp->bpg ? -ENOSPC : -EINVAL;

	uint64_t full = area / g->bpg, rem = area % g->bpg;
	g->group_count = full;
	g->data_blocks = full * (g->bpg - meta);
	if (rem >= meta + FMT_MIN_LAST_DATA) {
		g->group_count++;
		g->data_blocks += rem - meta;
	}
	if (g->group_count == 0 || g->data_blocks < FMT_MIN_DATA_BLOCKS)
		return -ENOSPC;
	if (g->group_count > UINT32_MAX)
		return -EINVAL;
	return 0;
}

/* The smallest block count compute_geom accepts (0 if none is found). */
static uint64_t min_blocks(const struct lparams *lp)
{
	struct geom g;
	uint64_t jb = lp->journal_blocks ? lp->journal_blocks : FMT_JOURNAL_MIN;
	uint64_t n = 2 + 2 * (uint64_t)lp->slots + jb * lp->slots + 2;
	/* A fit needs at most a few groups of FMT_MIN_LAST_DATA data
	 * blocks beyond the journals; the bound keeps the search finite. */
	uint64_t limit = n + 8 * (uint64_t)PFS_BITMAP_BITS;

	for (; n < limit; n++)
		if (compute_geom(n, lp, &g) == 0)
			return n;
	return 0;
}

static int fill_params(const struct pfs_format_params *p, struct lparams *lp,
		       const char **why)
{
	lp->slots = p->slots ? p->slots : PFS_DEFAULT_SLOTS;
	if (lp->slots > PFS_MAX_SLOTS) {
		snprintf(fmt_why, sizeof(fmt_why),
			 "%u node slots requested, at most %u are supported",
			 lp->slots, PFS_MAX_SLOTS);
		*why = fmt_why;
		return -EINVAL;
	}
	lp->journal_blocks = PFS_DIV_ROUND_UP(p->journal_bytes, PFS_BLOCK_SIZE);
	if (p->journal_bytes && lp->journal_blocks < FMT_JOURNAL_MIN) {
		snprintf(fmt_why, sizeof(fmt_why),
			 "journal size %llu bytes is below the minimum of %u KiB",
			 (unsigned long long)p->journal_bytes,
			 FMT_JOURNAL_MIN * PFS_BLOCK_SIZE / 1024);
		*why = fmt_why;
		return -EINVAL;
	}
	lp->bpg = p->blocks_per_group ? p->blocks_per_group : PFS_BITMAP_BITS;
	if (lp->bpg < FMT_MIN_BPG || lp->bpg > PFS_BITMAP_BITS) {
		snprintf(fmt_why, sizeof(fmt_why),
			 "%u blocks per group is outside %u..%u", lp->bpg,
			 FMT_MIN_BPG, (unsigned)PFS_BITMAP_BITS);
		*why = fmt_why;
		return -EINVAL;
	}
	lp->bpi = p->bytes_per_inode ? p->bytes_per_inode : FMT_DEFAULT_BPI;
	if (lp->bpi < FMT_MIN_BPI || lp->bpi > FMT_MAX_BPI) {
		snprintf(fmt_why, sizeof(fmt_why),
			 "%u bytes per inode is outside %u..%u", lp->bpi,
			 FMT_MIN_BPI, FMT_MAX_BPI);
		*why = fmt_why;
		return -EINVAL;
	}
	return 0;
}

static void explain_failure(uint64_t nblocks, const struct lparams *lp,
			    const struct geom *g, int err)
{
	if (err == -EINVAL && g->group_count > UINT32_MAX) {
		snprintf(fmt_why, sizeof(fmt_why),
			 "device too large: %llu blocks make more than 2^32 groups",
			 (unsigned long long)nblocks);
		return;
	}
	if (err == -EINVAL) {
		snprintf(fmt_why, sizeof(fmt_why),
			 "%u bytes per inode is too small for groups of %u blocks: "
			 "the inode table (%u blocks) leaves fewer than %u data blocks",
			 lp->bpi, g->bpg, g->itb, FMT_MIN_LAST_DATA);
		return;
	}
	uint64_t need = min_blocks(lp);
	if (need == 0) {
		snprintf(fmt_why, sizeof(fmt_why),
			 "device too small: %llu blocks cannot hold %u slots "
			 "and groups of %u blocks", (unsigned long long)nblocks,
			 lp->slots, lp->bpg);
		return;
	}
	if (lp->journal_blocks) {
		struct lparams dflt = *lp;
		struct geom dg;
		dflt.journal_blocks = 0;
		if (compute_geom(nblocks, &dflt, &dg) == 0) {
			snprintf(fmt_why, sizeof(fmt_why),
				 "journals of %llu blocks for %u slots do not fit: "
				 "device has %llu blocks, need at least %llu",
				 (unsigned long long)lp->journal_blocks, lp->slots,
				 (unsigned long long)nblocks,
				 (unsigned long long)need);
			return;
		}
	}
	snprintf(fmt_why, sizeof(fmt_why),
		 "device too small: %llu blocks, need at least %llu",
		 (unsigned long long)nblocks, (unsigned long long)need);
}

int format_layout(uint64_t nblocks, const struct pfs_format_params *p,
		  struct pfs_super *sb, const char **why)
{
	static const char *unused_why;
	struct lparams lp;
	struct geom g;
	int ret;

	if (!why)
		why = &unused_why;
	*why = NULL;
	ret = fill_params(p, &lp, why);
	if (ret < 0)
		return ret;
	ret = compute_geom(nblocks, &lp, &g);
	if (ret < 0) {
		explain_failure(nblocks, &lp, &g, ret);
		*why = fmt_why;
		return ret;
	}

	memset(sb, 0, sizeof(*sb));
	sb->hdr.magic = cpu_to_le32(PFS_MAGIC_SUPER);
	sb->version = cpu_to_le32(PFS_FORMAT_VERSION);
	sb->block_size = cpu_to_le32(PFS_BLOCK_SIZE);
	sb->feature_compat = cpu_to_le32(PFS_FEATURE_COMPAT_NONE);
	sb->feature_ro_compat = cpu_to_le32(PFS_FEATURE_RO_COMPAT_NONE);
	sb->feature_incompat = cpu_to_le32(PFS_FEATURE_INCOMPAT_UNDO_JOURNAL |
					   PFS_FEATURE_INCOMPAT_EXTENTS |
					   PFS_FEATURE_INCOMPAT_HASHDIR);
	sb->max_slots = cpu_to_le32(g.slots);
	sb->block_count = cpu_to_le64(nblocks);
	if (p->uuid)
		memcpy(sb->uuid, p->uuid, PFS_UUID_SIZE);
	memcpy(sb->label, p->label, strnlen(p->label, PFS_LABEL_MAX));
	sb->slot_table_start = cpu_to_le64(2);
	sb->journal_start = cpu_to_le64(g.journal_start);
	sb->journal_blocks = cpu_to_le64(g.journal_blocks);
	sb->group_start = cpu_to_le64(g.group_start);
	sb->group_count = cpu_to_le32((uint32_t)g.group_count);
	sb->blocks_per_group = cpu_to_le32(g.bpg);
	sb->inodes_per_group = cpu_to_le32(g.ipg);
	sb->inode_table_blocks = cpu_to_le32(g.itb);
	sb->root_ino = cpu_to_le64(PFS_ROOT_INO);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Writing                                                              */
/* ------------------------------------------------------------------ */

static void seal_block(void *blk, uint64_t blkno, uint32_t seed)
{
	struct pfs_blk_hdr *h = blk;

	h->blkno = cpu_to_le64(blkno);
	h->crc = 0;
	h->crc = cpu_to_le32(pfs_crc32c(seed, blk, PFS_BLOCK_SIZE));
}

static void seal_inode(struct pfs_inode *di, uint32_t seed)
{
	di->crc = 0;
	di->crc = cpu_to_le32(pfs_crc32c(seed, di, sizeof(*di)));
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int write_blocks(int fd, uint64_t blk, const void *buf, size_t nblk)
{
	return pwrite_all(fd, buf, nblk * PFS_BLOCK_SIZE, blk * PFS_BLOCK_SIZE);
}

static int write_zeros(int fd, uint64_t off, uint64_t len)
{
	size_t chunk = (size_t)PFS_MIN(len, (uint64_t)FMT_ZERO_CHUNK);
	void *zero;
	int ret = 0;

	if (!len)
		return 0;
	zero = calloc(1, chunk);
	if (!zero)
		return -ENOMEM;
	while (len) {
		size_t n = (size_t)PFS_MIN(len, (uint64_t)chunk);
		ret = pwrite_all(fd, zero, n, off);
		if (ret < 0)
			break;
		off += n;
		len -= n;
	}
	free(zero);
	return ret;
}

/* Make blocks [blk, blk+nblk) read as zeros: a punched hole in a file, a
 * zero-out request on a block device, plain writes where neither works. */
static int zero_blocks(int fd, bool is_blkdev, uint64_t blk, uint64_t nblk)
{
	uint64_t off = blk * PFS_BLOCK_SIZE, len = nblk * PFS_BLOCK_SIZE;

	if (!nblk)
		return 0;
	if (is_blkdev) {
		uint64_t range[2] = { off, len };
		if (ioctl(fd, BLKZEROOUT, range) == 0)
			return 0;
		if (errno != EOPNOTSUPP && errno != ENOTTY && errno != EINVAL)
			return -errno;
	} else {
		if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)off, (off_t)len) == 0)
			return 0;
		if (errno != EOPNOTSUPP && errno != ENOSYS)
			return -errno;
	}
	return write_zeros(fd, off, len);
}

static int device_bytes(int fd, uint64_t *bytes, bool *is_blkdev)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, bytes) < 0)
			return -errno;
		*is_blkdev = true;
		return 0;
	}
	if (S_ISREG(st.st_mode)) {
		*bytes = (uint64_t)st.st_size;
		*is_blkdev = false;
		return 0;
	}
	return -ENOTBLK;
}

static int write_slots(int fd, const struct pfs_super *sb, uint32_t seed)
{
	uint32_t nslots = le32_to_cpu(sb->max_slots);
	uint64_t start = le64_to_cpu(sb->slot_table_start);
	uint64_t js = le64_to_cpu(sb->journal_start);
	uint64_t jb = le64_to_cpu(sb->journal_blocks);
	uint8_t *buf = calloc(2 * (size_t)nslots, PFS_BLOCK_SIZE);
	int ret;

	if (!buf)
		return -ENOMEM;
	for (uint32_t s = 0; s < nslots; s++) {
		uint8_t *hbblk = buf + (size_t)2 * s * PFS_BLOCK_SIZE;
		uint8_t *slblk = hbblk + PFS_BLOCK_SIZE;
		struct pfs_heartbeat *hb = (struct pfs_heartbeat *)hbblk;
		struct pfs_slot *sl = (struct pfs_slot *)slblk;

		hb->hdr.magic = cpu_to_le32(PFS_MAGIC_HEARTBEAT);
		hb->slot = cpu_to_le32(s);
		seal_block(hbblk, start + 2 * (uint64_t)s, seed);

		sl->hdr.magic = cpu_to_le32(PFS_MAGIC_SLOT);
		sl->slot = cpu_to_le32(s);
		sl->state = cpu_to_le32(PFS_SLOT_FREE);
		sl->journal_start = cpu_to_le64(js + (uint64_t)s * jb);
		sl->journal_blocks = cpu_to_le64(jb);
		sl->reg_status = cpu_to_le32(PFS_REG_INACTIVE);
		seal_block(slblk, start + 2 * (uint64_t)s + 1, seed);
	}
	ret = write_blocks(fd, start, buf, 2 * (size_t)nslots);
	free(buf);
	return ret;
}

static void set_bits(uint8_t *map, uint32_t from, uint32_t to)
{
	for (uint32_t i = from; i < to; i++)
		map[i / 8] |= (uint8_t)(1u << (i % 8));
}

static void make_root_inode(struct pfs_inode *di, const struct pfs_format_params *p,
			    uint64_t now_ns, uint32_t seed)
{
	uint64_t sec = now_ns / 1000000000ull;
	uint32_t nsec = (uint32_t)(now_ns % 1000000000ull);
	uint32_t perm = p->root_mode ? (p->root_mode & 07777) : 0755;

	memset(di, 0, sizeof(*di));
	di->magic = cpu_to_le16(PFS_MAGIC_INODE);
	di->version = cpu_to_le16(1);
	di->ino = cpu_to_le64(PFS_ROOT_INO);
	di->mode = cpu_to_le32(S_IFDIR | perm);
	di->uid = cpu_to_le32(p->root_uid);
	di->gid = cpu_to_le32(p->root_gid);
	di->nlink = cpu_to_le32(2);
	di->atime_sec = di->mtime_sec = di->ctime_sec = di->btime_sec =
		cpu_to_le64(sec);
	di->atime_nsec = di->mtime_nsec = di->ctime_nsec = di->btime_nsec =
		cpu_to_le32(nsec);
	di->generation = cpu_to_le64(1);
	di->parent = cpu_to_le64(PFS_ROOT_INO);
	di->tree_root = 0;
	seal_inode(di, seed);
}

static int write_groups(int fd, bool is_blkdev, const struct pfs_super *sb,
			const struct pfs_format_params *p, uint64_t now_ns,
			uint32_t seed, const char **why)
{
	uint64_t n = le64_to_cpu(sb->block_count);
	uint64_t gs = le64_to_cpu(sb->group_start);
	uint32_t ngroups = le32_to_cpu(sb->group_count);
	uint32_t bpg = le32_to_cpu(sb->blocks_per_group);
	uint32_t ipg = le32_to_cpu(sb->inodes_per_group);
	uint32_t itb = le32_to_cpu(sb->inode_table_blocks);
	uint32_t meta = PFS_GROUP_META_BLOCKS + itb;
	uint8_t *buf = malloc((size_t)PFS_GROUP_META_BLOCKS * PFS_BLOCK_SIZE);
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	for (uint32_t g = 0; g < ngroups; g++) {
		uint64_t first = gs + (uint64_t)g * bpg;
		uint32_t nb = (uint32_t)PFS_MIN((uint64_t)bpg, n - 1 - first);
		uint8_t *dblk = buf;
		uint8_t *bblk = buf + PFS_BLOCK_SIZE;
		uint8_t *iblk = buf + 2 * PFS_BLOCK_SIZE;
		struct pfs_group_desc *gd = (struct pfs_group_desc *)dblk;

		memset(buf, 0, (size_t)PFS_GROUP_META_BLOCKS * PFS_BLOCK_SIZE);
		gd->hdr.magic = cpu_to_le32(PFS_MAGIC_GROUP);
		gd->group = cpu_to_le32(g);
		gd->nblocks = cpu_to_le32(nb);
		gd->free_blocks = cpu_to_le32(nb - meta);
		gd->ninodes = cpu_to_le32(ipg);
		gd->free_inodes = cpu_to_le32(g == 0 ? ipg - 1 : ipg);
		gd->ndirs = cpu_to_le32(g == 0 ? 1 : 0);
		gd->block_bitmap = cpu_to_le64(first + 1);
		gd->inode_bitmap = cpu_to_le64(first + 2);
		gd->inode_table = cpu_to_le64(first + 3);
		seal_block(dblk, first, seed);

		((struct pfs_blk_hdr *)bblk)->magic = cpu_to_le32(PFS_MAGIC_BBITMAP);
		set_bits(bblk + PFS_BITMAP_OFFSET, 0, meta);
		set_bits(bblk + PFS_BITMAP_OFFSET, nb, PFS_BITMAP_BITS);
		seal_block(bblk, first + 1, seed);

		((struct pfs_blk_hdr *)iblk)->magic = cpu_to_le32(PFS_MAGIC_IBITMAP);
		if (g == 0)
			set_bits(iblk + PFS_BITMAP_OFFSET, 0, 1);
		set_bits(iblk + PFS_BITMAP_OFFSET, ipg, PFS_BITMAP_BITS);
		seal_block(iblk, first + 2, seed);

		ret = write_blocks(fd, first, buf, PFS_GROUP_META_BLOCKS);
		if (ret < 0) {
			*why = "writing a group descriptor and bitmaps";
			goto out_free;
		}
		ret = zero_blocks(fd, is_blkdev, first + 3, itb);
		if (ret < 0) {
			*why = "zeroing an inode table";
			goto out_free;
		}
	}

	/* The root directory: inode 0 of group 0, first inode-table block. */
	memset(buf, 0, PFS_BLOCK_SIZE);
	make_root_inode((struct pfs_inode *)buf, p, now_ns, seed);
	ret = write_blocks(fd, gs + 3, buf, 1);
	if (ret < 0)
		*why = "writing the root directory inode";
out_free:
	free(buf);
	return ret;
}

static int flush_dev(int fd)
{
	if (fdatasync(fd) < 0)
		return -errno;
	return 0;
}

int format_write(int fd, uint64_t nblocks, const struct pfs_format_params *p,
		 const uint8_t key[PFS_KEY_BYTES], struct pfs_super *sb_out,
		 const char **why)
{
	static const char *unused_why;
	struct pfs_super sb;
	uint8_t *blk;
	uint64_t dev_bytes;
	bool is_blkdev;
	int ret;

	if (!why)
		why = &unused_why;
	ret = format_layout(nblocks, p, &sb, why);
	if (ret < 0)
		return ret;
	ret = key_init();
	if (ret < 0) {
		*why = "initialising libsodium";
		return ret;
	}
	ret = device_bytes(fd, &dev_bytes, &is_blkdev);
	if (ret < 0) {
		*why = ret == -ENOTBLK ? "not a regular file or a block device"
				       : "reading the device size";
		return ret;
	}
	if (dev_bytes / PFS_BLOCK_SIZE < nblocks) {
		if (is_blkdev) {
			snprintf(fmt_why, sizeof(fmt_why),
				 "device has %llu blocks, fewer than %llu",
				 (unsigned long long)(dev_bytes / PFS_BLOCK_SIZE),
				 (unsigned long long)nblocks);
			*why = fmt_why;
			return -ENOSPC;
		}
		if (ftruncate(fd, (off_t)(nblocks * PFS_BLOCK_SIZE)) < 0) {
			*why = "extending the image file";
			return -errno;
		}
	}

	blk = calloc(1, PFS_BLOCK_SIZE);
	if (!blk)
		return -ENOMEM;

	uint64_t now_ns = pfs_now_real_ns();
	if (!p->uuid)
		uuid_generate_random16(sb.uuid);
	randombytes_buf(sb.hash_seed, PFS_HASH_SEED_SIZE);
	uint32_t seed = pfs_crc32c(0, sb.uuid, PFS_UUID_SIZE);
	sb.csum_seed = cpu_to_le64(seed);
	key_check_value(key, sb.uuid, sb.key_check);
	sb.create_time = cpu_to_le64(now_ns / 1000000000ull);

	/* Step 1: no valid superblock while the rest is being written. */
	ret = write_blocks(fd, 0, blk, 1);
	if (ret == 0)
		ret = write_blocks(fd, nblocks - 1, blk, 1);
	if (ret == 0)
		ret = flush_dev(fd);
	if (ret < 0) {
		*why = "clearing the old superblocks";
		goto out_free;
	}

	/* Step 2: block 1, slots, journals, groups. */
	ret = write_blocks(fd, 1, blk, 1);
	if (ret < 0) {
		*why = "writing block 1";
		goto out_free;
	}
	ret = write_slots(fd, &sb, seed);
	if (ret < 0) {
		*why = "writing the slot table";
		goto out_free;
	}
	ret = zero_blocks(fd, is_blkdev, le64_to_cpu(sb.journal_start),
			  le64_to_cpu(sb.journal_blocks) * le32_to_cpu(sb.max_slots));
	if (ret < 0) {
		*why = "zeroing the journals";
		goto out_free;
	}
	ret = write_groups(fd, is_blkdev, &sb, p, now_ns, seed, why);
	if (ret < 0)
		goto out_free;
	ret = flush_dev(fd);
	if (ret < 0) {
		*why = "flushing the device";
		goto out_free;
	}

	/* Step 3: the superblocks make the volume valid. */
	memcpy(blk, &sb, sizeof(sb));
	seal_block(blk, 0, seed);
	if (sb_out)
		memcpy(sb_out, blk, sizeof(*sb_out));
	ret = write_blocks(fd, 0, blk, 1);
	if (ret < 0) {
		*why = "writing the superblock";
		goto out_free;
	}
	((struct pfs_super *)blk)->backup = cpu_to_le32(1);
	seal_block(blk, nblocks - 1, seed);
	ret = write_blocks(fd, nblocks - 1, blk, 1);
	if (ret < 0) {
		*why = "writing the backup superblock";
		goto out_free;
	}
	ret = flush_dev(fd);
	if (ret < 0)
		*why = "flushing the device";
out_free:
	free(blk);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Finding an existing volume                                           */
/* ------------------------------------------------------------------ */

static bool super_valid(const uint8_t *blk, uint64_t blkno)
{
	const struct pfs_super *sb = (const struct pfs_super *)blk;
	uint8_t copy[PFS_BLOCK_SIZE];

	if (le32_to_cpu(sb->hdr.magic) != PFS_MAGIC_SUPER ||
	    le64_to_cpu(sb->hdr.blkno) != blkno ||
	    le32_to_cpu(sb->block_size) != PFS_BLOCK_SIZE)
		return false;
	uint32_t seed = (uint32_t)le64_to_cpu(sb->csum_seed);
	if (seed != pfs_crc32c(0, sb->uuid, PFS_UUID_SIZE))
		return false;
	memcpy(copy, blk, PFS_BLOCK_SIZE);
	((struct pfs_blk_hdr *)copy)->crc = 0;
	return pfs_crc32c(seed, copy, PFS_BLOCK_SIZE) == le32_to_cpu(sb->hdr.crc);
}

/* Read block blkno: 1 if read whole, 0 if the device ends before it. */
static int read_block(int fd, uint64_t blkno, uint8_t *buf)
{
	size_t got = 0;

	while (got < PFS_BLOCK_SIZE) {
		ssize_t n = pread(fd, buf + got, PFS_BLOCK_SIZE - got,
				  (off_t)(blkno * PFS_BLOCK_SIZE + got));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return 0;
		got += (size_t)n;
	}
	return 1;
}

int format_read_super(int fd, struct pfs_super *sb)
{
	uint64_t bytes;
	bool is_blkdev;
	uint8_t *blk = malloc(PFS_BLOCK_SIZE);
	int ret;

	if (!blk)
		return -ENOMEM;
	ret = read_block(fd, 0, blk);
	if (ret < 0)
		goto out_free;
	if (ret == 1 && super_valid(blk, 0))
		goto found;

	ret = device_bytes(fd, &bytes, &is_blkdev);
	if (ret < 0)
		goto out_free;
	uint64_t last = bytes / PFS_BLOCK_SIZE;
	ret = -ENOENT;
	if (last < 2)
		goto out_free;
	last--;
	ret = read_block(fd, last, blk);
	if (ret < 0)
		goto out_free;
	if (ret == 1 && super_valid(blk, last) &&
	    le64_to_cpu(((struct pfs_super *)blk)->block_count) == last + 1)
		goto found;
	ret = -ENOENT;
	goto out_free;

found:
	memcpy(sb, blk, sizeof(*sb));
	ret = 0;
out_free:
	free(blk);
	return ret;
}
