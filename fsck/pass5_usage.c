/*
 * pass5_usage.c -- pass 5: the computed block and inode usage against the
 * bitmaps, and the group descriptors' counts.
 *
 * Design notes
 *
 * For each group the expected block bitmap is the computed usage of its
 * blocks (group metadata included) with every bit past nblocks set; the
 * expected inode bitmap is the computed inode usage with every bit past
 * inodes_per_group set.  A readable bitmap is compared over the data area
 * (resp. the group's inodes) and the differences reported as runs; the
 * group metadata and tail bits were checked in pass 2.  Accepted runs are
 * corrected in place; a bitmap flagged in pass 2 (unreadable or damaged in
 * structure, fix accepted) is rewritten whole.
 *
 * The descriptor's counts follow fs/alloc.c A1: free_blocks and
 * free_inodes are the clear bits among the first nblocks (ipg) bits,
 * ndirs the directories in use in the group.  A descriptor flagged in
 * pass 2 is rebuilt from the geometry and these counts.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsck.h"
#include "pfs_util.h"

/* What a bit of a group bitmap should be, and what it is. */
struct cmp {
	struct fsck *f;
	uint32_t g;
	bool inodes;
	const char *unit;       /* "block" / "inode" */
	const char *units;      /* "blocks" / "inodes" */
	uint64_t base;          /* number of bit 0 in messages */
};

static bool expected_bit(const struct cmp *c, uint32_t i)
{
	struct fsck *f = c->f;

	if (c->inodes)
		return i >= f->g.ipg ||
		       fsck_bmap_test(&f->iused, (uint64_t)c->g * f->g.ipg + i);
	if (i >= f->groups[c->g].nblocks)
		return true;
	return fsck_bmap_test(&f->used, fsck_group_first(f, c->g) + i);
}

static bool report_run(const struct cmp *c, uint32_t from, uint32_t to, bool want)
{
	unsigned long long a = c->base + from, b = c->base + to - 1;
	const char *what;

	if (c->inodes)
		what = want ? "in use, but marked free in the bitmap" :
			      "marked used in the bitmap, but free";
	else
		what = want ? "in use, but marked free in the bitmap" :
			      "marked used in the bitmap, but not in use";
	if (from + 1 == to)
		return fsck_problem(c->f, FSCK_FIX_SAFE, "%s %llu: %s", c->unit, a, what);
	return fsck_problem(c->f, FSCK_FIX_SAFE, "%s %llu-%llu: %s", c->units, a, b, what);
}

/* Compare bits [from, to) of bitmap blk with the truth; fix accepted runs.
 * True if blk changed. */
static bool compare_bits(const struct cmp *c, uint8_t *blk, uint32_t from, uint32_t to)
{
	bool changed = false;
	uint32_t i = from;

	while (i < to) {
		bool want = expected_bit(c, i);
		if (fsck_disk_bit(blk, i) == want) {
			i++;
			continue;
		}
		uint32_t j = i + 1;
		while (j < to && expected_bit(c, j) == want && fsck_disk_bit(blk, j) != want)
			j++;
		if (report_run(c, i, j, want)) {
			for (uint32_t k = i; k < j; k++)
				fsck_disk_bit_set(blk, k, want);
			changed = true;
		}
		i = j;
	}
	return changed;
}

static int check_bitmap(struct fsck *f, uint32_t g, bool inodes)
{
	struct fsck_group *gr = &f->groups[g];
	uint64_t bno = fsck_group_first(f, g) + (inodes ? 2 : 1);
	uint32_t magic = inodes ? PFS_MAGIC_IBITMAP : PFS_MAGIC_BBITMAP;
	bool ok = inodes ? gr->ibm_ok : gr->bbm_ok;
	bool rewrite = inodes ? gr->ibm_rewrite : gr->bbm_rewrite;
	struct cmp c = {
		.f = f, .g = g, .inodes = inodes,
		.unit = inodes ? "inode" : "block",
		.units = inodes ? "inodes" : "blocks",
		.base = inodes ? (uint64_t)g * f->g.ipg + 1 : fsck_group_first(f, g),
	};
	struct buf *b;
	int err;

	if (rewrite) {
		err = fsck_dev_rebuild(f, bno, &b);
		if (err)
			return err;
		uint8_t *blk = buf_data(b);
		((struct pfs_blk_hdr *)blk)->magic = cpu_to_le32(magic);
		for (uint32_t i = 0; i < PFS_BITMAP_BITS; i++)
			fsck_disk_bit_set(blk, i, expected_bit(&c, i));
		buf_put(b);
		return 0;
	}
	if (!ok)
		return 0;
	err = bcache_read(f->bc, bno, BUF_META, magic, &b);
	if (err)
		return fsck_fail(f, err, "reading block %llu", (unsigned long long)bno);
	if (compare_bits(&c, buf_data(b), inodes ? 0 : f->g.meta,
			 inodes ? f->g.ipg : gr->nblocks))
		fsck_dev_dirty(f, b);
	buf_put(b);
	return 0;
}

static void rebuild_desc(struct fsck *f, uint32_t g, struct pfs_group_desc *d,
			 uint32_t fb, uint32_t fi, uint32_t nd)
{
	uint64_t first = fsck_group_first(f, g);

	memset(d, 0, PFS_BLOCK_SIZE);
	d->hdr.magic = cpu_to_le32(PFS_MAGIC_GROUP);
	d->group = cpu_to_le32(g);
	d->nblocks = cpu_to_le32(f->groups[g].nblocks);
	d->free_blocks = cpu_to_le32(fb);
	d->ninodes = cpu_to_le32(f->g.ipg);
	d->free_inodes = cpu_to_le32(fi);
	d->ndirs = cpu_to_le32(nd);
	d->block_bitmap = cpu_to_le64(first + 1);
	d->inode_bitmap = cpu_to_le64(first + 2);
	d->inode_table = cpu_to_le64(first + 3);
}

static int check_desc(struct fsck *f, uint32_t g, uint32_t ndirs)
{
	struct fsck_group *gr = &f->groups[g];
	uint64_t first = fsck_group_first(f, g);
	uint64_t ibase = (uint64_t)g * f->g.ipg;
	uint32_t fb = gr->nblocks - (uint32_t)fsck_bmap_count(&f->used, first,
							      first + gr->nblocks);
	uint32_t fi = f->g.ipg - (uint32_t)fsck_bmap_count(&f->iused, ibase,
							   ibase + f->g.ipg);
	bool bfix = false, ifix = false, dfix = false;
	struct pfs_group_desc *d;
	struct buf *b;
	int err;

	if (gr->desc_rebuild) {
		err = fsck_dev_rebuild(f, first, &b);
		if (err)
			return err;
		rebuild_desc(f, g, buf_data(b), fb, fi, ndirs);
		buf_put(b);
		return 0;
	}
	if (!gr->desc_ok)
		return 0;
	if (gr->free_blocks != fb)
		bfix = fsck_problem(f, FSCK_FIX_SAFE,
				    "group %u: free blocks count is %u, counted %u",
				    g, gr->free_blocks, fb);
	if (gr->free_inodes != fi)
		ifix = fsck_problem(f, FSCK_FIX_SAFE,
				    "group %u: free inodes count is %u, counted %u",
				    g, gr->free_inodes, fi);
	if (gr->ndirs != ndirs)
		dfix = fsck_problem(f, FSCK_FIX_SAFE,
				    "group %u: directory count is %u, counted %u",
				    g, gr->ndirs, ndirs);
	if (!bfix && !ifix && !dfix)
		return 0;
	err = bcache_read(f->bc, first, BUF_META, PFS_MAGIC_GROUP, &b);
	if (err)
		return fsck_fail(f, err, "reading block %llu", (unsigned long long)first);
	d = buf_data(b);
	if (bfix)
		d->free_blocks = cpu_to_le32(fb);
	if (ifix)
		d->free_inodes = cpu_to_le32(fi);
	if (dfix)
		d->ndirs = cpu_to_le32(ndirs);
	fsck_dev_dirty(f, b);
	buf_put(b);
	return 0;
}

int fsck_pass5_usage(struct fsck *f)
{
	uint32_t *ndirs = calloc(f->g.ngroups, sizeof(*ndirs));
	int err = 0;

	if (!ndirs)
		return fsck_fail(f, -ENOMEM, "counting directories");
	for (size_t i = 0; i < f->itab.n; i++) {
		const struct fsck_ino *r = &f->itab.v[i];
		if (!(r->state & FI_CLEARED) && S_ISDIR(r->mode))
			ndirs[(r->ino - 1) / f->g.ipg]++;
	}
	for (uint32_t g = 0; g < f->g.ngroups && !err; g++) {
		err = check_bitmap(f, g, false);
		if (!err)
			err = check_bitmap(f, g, true);
		if (!err)
			err = check_desc(f, g, ndirs[g]);
		fsck_progress(f, 5, g + 1, f->g.ngroups);
	}
	fsck_progress_end(f);
	free(ndirs);
	return err;
}
