/*
 * pass2_groups.c -- pass 2: group descriptors and bitmaps, structurally.
 *
 * For every group: the descriptor, block bitmap and inode bitmap must
 * pass their header checks; the descriptor's fields that follow from the
 * geometry (index, flags, nblocks, ninodes, where the bitmaps and the
 * inode table are) must match it; the block bitmap must mark the group's
 * own metadata used and every bit past nblocks set, the inode bitmap every
 * bit past inodes_per_group.  The group's metadata blocks enter the
 * computed usage here.
 *
 * Nothing is rewritten in this pass: an accepted fix only flags the block
 * (desc_rebuild, bbm_rewrite, ibm_rewrite), and pass 5 writes it from the
 * computed truth.  The counts (free blocks, free inodes, directories) are
 * compared in pass 5 too.
 */
#include <errno.h>
#include <stdlib.h>

#include "fsck.h"
#include "pfs_util.h"

static void check_field(struct fsck *f, uint32_t g, const char *name,
			uint64_t have, uint64_t want)
{
	if (have == want)
		return;
	if (fsck_problem(f, FSCK_FIX_SAFE, "group %u: descriptor: %s is %llu, expected %llu",
			 g, name, (unsigned long long)have, (unsigned long long)want))
		f->groups[g].desc_rebuild = true;
}

static int check_desc(struct fsck *f, uint32_t g, uint8_t *blk)
{
	struct fsck_group *gr = &f->groups[g];
	uint64_t first = fsck_group_first(f, g);
	const struct pfs_group_desc *d = (const struct pfs_group_desc *)blk;
	const char *why;
	int err = fsck_dev_read(f, first, blk);

	if (err)
		return err;
	why = pfs_meta_problem(blk, first, PFS_MAGIC_GROUP, f->g.seed);
	if (why) {
		gr->desc_rebuild = fsck_problem(f, FSCK_FIX_SAFE, "group %u: descriptor: %s",
						g, why);
		return 0;
	}
	gr->desc_ok = true;
	gr->free_blocks = le32_to_cpu(d->free_blocks);
	gr->free_inodes = le32_to_cpu(d->free_inodes);
	gr->ndirs = le32_to_cpu(d->ndirs);
	check_field(f, g, "group", le32_to_cpu(d->group), g);
	check_field(f, g, "flags", le32_to_cpu(d->flags), 0);
	check_field(f, g, "nblocks", le32_to_cpu(d->nblocks), gr->nblocks);
	check_field(f, g, "ninodes", le32_to_cpu(d->ninodes), f->g.ipg);
	check_field(f, g, "block_bitmap", le64_to_cpu(d->block_bitmap), first + 1);
	check_field(f, g, "inode_bitmap", le64_to_cpu(d->inode_bitmap), first + 2);
	check_field(f, g, "inode_table", le64_to_cpu(d->inode_table), first + 3);
	return 0;
}

/* Are bits [from, to) of an on-disk bitmap all set? */
static bool bits_set(const uint8_t *blk, uint32_t from, uint32_t to)
{
	for (uint32_t i = from; i < to; i++)
		if (!fsck_disk_bit(blk, i))
			return false;
	return true;
}

static int check_bitmap(struct fsck *f, uint32_t g, uint8_t *blk, bool inodes)
{
	struct fsck_group *gr = &f->groups[g];
	uint64_t bno = fsck_group_first(f, g) + (inodes ? 2 : 1);
	const char *what = inodes ? "inode bitmap" : "block bitmap";
	bool *ok = inodes ? &gr->ibm_ok : &gr->bbm_ok;
	bool *rewrite = inodes ? &gr->ibm_rewrite : &gr->bbm_rewrite;
	uint32_t limit = inodes ? f->g.ipg : gr->nblocks;
	const char *why;
	int err = fsck_dev_read(f, bno, blk);

	if (err)
		return err;
	why = pfs_meta_problem(blk, bno, inodes ? PFS_MAGIC_IBITMAP : PFS_MAGIC_BBITMAP,
			       f->g.seed);
	if (why) {
		*rewrite = fsck_problem(f, FSCK_FIX_SAFE, "group %u: %s: %s", g, what, why);
		return 0;
	}
	*ok = true;
	if (!inodes && !bits_set(blk, 0, f->g.meta) &&
	    fsck_problem(f, FSCK_FIX_SAFE, "group %u: block bitmap: group metadata "
			 "marked free", g))
		*rewrite = true;
	if (!bits_set(blk, limit, PFS_BITMAP_BITS) &&
	    fsck_problem(f, FSCK_FIX_SAFE, inodes ?
			 "group %u: inode bitmap: bits past the last inode are clear" :
			 "group %u: block bitmap: bits past the end of the group are clear",
			 g))
		*rewrite = true;
	return 0;
}

int fsck_pass2_groups(struct fsck *f)
{
	uint8_t *blk = aligned_alloc(PFS_BLOCK_SIZE, PFS_BLOCK_SIZE);
	int err = 0;

	if (!blk)
		return fsck_fail(f, -ENOMEM, "checking the groups");
	for (uint32_t g = 0; g < f->g.ngroups && !err; g++) {
		fsck_bmap_set_range(&f->used, fsck_group_first(f, g), f->g.meta);
		err = check_desc(f, g, blk);
		if (!err)
			err = check_bitmap(f, g, blk, false);
		if (!err)
			err = check_bitmap(f, g, blk, true);
		fsck_progress(f, 2, g + 1, f->g.ngroups);
	}
	fsck_progress_end(f);
	free(blk);
	return err;
}
