/*
 * tree.c -- the bt_ops through which repairs change an inode's B+tree:
 * node blocks come from and go back to the computed block usage, changed
 * nodes are marked dirty in the block cache.
 *
 * The tree reports node blocks allocated and freed in ft->dblocks; the
 * caller adds that to the inode's block count when it stores the new root
 * (fsck_dir_sync, or the extent repairs of pass 3).
 */
#include "fsck.h"

static int ft_alloc(void *arg, uint64_t goal, uint64_t *blk)
{
	struct fsck_tree *ft = arg;
	int err = fsck_alloc_block(ft->f, ft->t.owner, goal, blk);

	if (!err)
		ft->dblocks++;
	return err;
}

static int ft_free(void *arg, uint64_t blk)
{
	struct fsck_tree *ft = arg;

	fsck_unclaim(ft->f, ft->t.owner, blk, 1);
	ft->dblocks--;
	return 0;
}

static int ft_dirty(void *arg, struct buf *b)
{
	struct fsck_tree *ft = arg;

	fsck_dev_dirty(ft->f, b);
	return 0;
}

static const struct bt_ops fsck_bt_ops = {
	.alloc = ft_alloc,
	.free = ft_free,
	.dirty = ft_dirty,
};

void fsck_tree_init(struct fsck *f, struct fsck_tree *ft, uint64_t owner,
		    uint16_t type, uint64_t root)
{
	ft->t.bc = f->bc;
	ft->t.ops = &fsck_bt_ops;
	ft->t.arg = ft;
	ft->t.owner = owner;
	ft->t.type = type;
	ft->t.root = root;
	ft->f = f;
	ft->dblocks = 0;
}
