/*
 * pfs_btree.h -- B+tree over 4 KiB slotted-page nodes (struct pfs_bt_node
 * in pfs_format.h), keyed by le64 with variable-length values.  It backs
 * file extent maps (unique keys) and directory indexes (keys are name
 * hashes, duplicates allowed).
 *
 * The tree does not allocate, free or journal blocks itself: it calls the
 * owner's bt_ops, so the same code runs in the daemon (transactions), in
 * mkfs/fsck and in unit tests.  Every modified node is passed to
 * ops->dirty() before it is changed.
 *
 * Invariants
 *   B1. Records of a node are sorted by key (non-decreasing).
 *   B2. In an interior node, child i holds keys k with
 *       key(i) <= k < key(i+1); key(0) is a lower bound only (searches
 *       treat it as -infinity).  With duplicate keys a run of equal keys
 *       may straddle a split, so child i may also hold k == key(i+1).
 *   B3. All leaves are at level 0 and are chained by `next` in key order.
 *   B4. No node is empty except a root leaf (an empty tree may also have
 *       root == 0).  Deleting a node's last record frees the node and
 *       removes it from its parent; a root with one child is collapsed.
 *   B5. A record never exceeds BT_MAX_VALUE bytes of value.
 *
 * Errors: -ENOMEM, -ENOSPC (from ops->alloc), -EIO, -EUCLEAN (a node fails
 * its checksum or its structure checks: level, nrecs, offsets, type).
 */
#ifndef PFS_BTREE_H
#define PFS_BTREE_H

#include <stdint.h>
#include <stdbool.h>
#include "pfs_bcache.h"

struct pfs_bt_node;             /* pfs_format.h */

#define BT_MAX_VALUE 300u
#define BT_MAX_DEPTH 16

struct bt_ops {
	/* Allocate one block near goal (0: anywhere) for a new node. */
	int (*alloc)(void *arg, uint64_t goal, uint64_t *blk);
	/* Free a node block no longer used. */
	int (*free)(void *arg, uint64_t blk);
	/* Called on a buffer before the tree modifies it. */
	int (*dirty)(void *arg, struct buf *b);
};

struct bt_tree {
	struct bcache *bc;
	const struct bt_ops *ops;
	void *arg;
	uint64_t owner;         /* inode number stored in node headers */
	uint16_t type;          /* PFS_BT_* */
	uint64_t root;          /* root block, 0 = empty; updated by the tree */
};

/* A position in the tree: the path from the root to a leaf record. */
struct bt_cursor {
	struct bt_tree *t;
	int depth;                              /* levels in path */
	struct buf *path[BT_MAX_DEPTH];         /* path[0] = leaf */
	int idx[BT_MAX_DEPTH];
	bool valid;
};

/* Insert (key, val).  Duplicates are allowed (stored after equal keys). */
int bt_insert(struct bt_tree *t, uint64_t key, const void *val, uint16_t vlen);

/* Position at the first record with key >= KEY.  -ENOENT if none. */
int bt_seek_ge(struct bt_tree *t, uint64_t key, struct bt_cursor *c);
/* Position at the last record with key <= KEY.  -ENOENT if none. */
int bt_seek_le(struct bt_tree *t, uint64_t key, struct bt_cursor *c);
/* Move to the next / previous record; -ENOENT past the end. */
int bt_next(struct bt_cursor *c);
int bt_prev(struct bt_cursor *c);
/* Current record; pointers stay valid until the cursor moves/changes. */
void bt_get(const struct bt_cursor *c, uint64_t *key, const void **val,
	    uint16_t *vlen);
/* Replace the current record's value (any length up to BT_MAX_VALUE);
 * the cursor stays valid only if the length is unchanged. */
int bt_update(struct bt_cursor *c, const void *val, uint16_t vlen);
/* Delete the current record; the cursor is released afterwards. */
int bt_delete(struct bt_cursor *c);
void bt_release(struct bt_cursor *c);

/* Free every node of the tree; t->root becomes 0. */
int bt_destroy(struct bt_tree *t);

/* Visit every node (fsck, counting): cb(level, blkno, node) in pre-order.
 * A node that fails its checks stops the walk with its error. */
typedef int (*bt_node_cb)(void *arg, int level, uint64_t blkno,
			  const struct pfs_bt_node *node);
int bt_walk(struct bt_tree *t, bt_node_cb cb, void *arg);
/* Structural check of one node image (used by reads and by fsck). */
int bt_node_check(const void *blk, uint16_t type);

#endif /* PFS_BTREE_H */
