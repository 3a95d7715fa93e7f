/*
 * btree.c -- B+tree over 4 KiB slotted-page nodes (pfs_btree.h).
 *
 * Design notes
 *
 * Node layout (struct pfs_bt_node): a 48-byte header, then an array of
 * nrecs le16 record offsets growing upward, then free space, then the
 * records { le64 key; le16 vlen; value } packed downward from the end of
 * the block.  rec_start is the lowest record byte.  Deleting a record
 * leaves a zeroed hole in the record area unless it sat at rec_start; the
 * holes are reclaimed by compaction (rebuilding the record area), which
 * runs whenever a record fits in the node's total free space but not in
 * the contiguous gap between the offset array and rec_start.  So the
 * decision to split is taken on total free bytes, never on fragmentation.
 *
 * Invariants (pfs_btree.h), as this file keeps them:
 *   B1  Records of a node are sorted by key (non-decreasing), interior
 *       nodes included.  Inserts go at the upper bound of the key, so a new
 *       record lands after every existing equal key; splits and removals
 *       preserve the order.  key(0) of an interior node is never a bound
 *       (B2), so keys below it reach its child 0; when splitting that
 *       child yields a separator below key(0), key(0) is lowered to it
 *       before the separator goes in at index 1.
 *   B2  Interior record i, child c(i): every key k in c(i)'s subtree has
 *       key(i) <= k <= key(i+1) (the node's own bounds at the ends), and
 *       key(0) is never used as a bound.  The upper bound is inclusive
 *       because duplicate keys may straddle a split: the left node keeps
 *       some copies of the separator key.  Consequences for searches:
 *         - insert descends to the last child with key(i) <= k, where
 *           every existing k is at or to the left, and k < key(i+1);
 *         - seek_ge descends to the last child with key(i) < k (the first
 *           copy of k may sit at the end of that child) and steps to the
 *           next leaf when the leaf has nothing >= k;
 *         - seek_le descends like insert and steps to the previous leaf
 *           when the leaf has nothing <= k.
 *       Separators in use as bounds are never rewritten: a node's first
 *       key may grow by deletes without touching the parent, since key(i)
 *       is only a lower bound.
 *   B3  All leaves are at level 0 and chained left to right by `next`.  A
 *       leaf split links the new right half after the old node; removing a
 *       leaf relinks its left neighbour, found by walking the cursor path
 *       up to the lowest ancestor where the path did not take child 0 and
 *       back down the rightmost edge of the child to its left.
 *   B4  No node is empty.  A leaf or interior node whose last record goes
 *       is freed and its record is removed from the parent, recursively.
 *       When the root loses its last record the tree becomes empty
 *       (root = 0).  When an interior root is left with one child, the
 *       root is replaced by that child, repeatedly, so the root is either a
 *       leaf or an interior node with at least two children.  A non-root
 *       interior node may have a single child.
 *   B5  Values are at most BT_MAX_VALUE bytes (interior values are the
 *       8-byte child number).  A node holds BT_SPACE bytes of records and
 *       offsets, so any two records fit together and a split in two always
 *       suffices, even with the largest record.
 *
 * Splitting.  A split is planned before anything changes: starting at the
 * leaf, each level that cannot absorb its incoming record (the new record,
 * then a 20-byte separator for the level above) needs one new node, and a
 * root that splits needs one more for the new root.  All new blocks are
 * allocated and their buffers obtained, and every node that will change is
 * passed to ops->dirty, before the first byte is modified; a failure in
 * that phase frees the new blocks and leaves the tree as it was.  A node is
 * split by bytes: its records plus the incoming one are divided where the
 * two halves' used bytes are closest.  The right half moves to the new
 * node, whose first key becomes the separator inserted right after the
 * split node's record in the parent.
 *
 * Deleting follows the same two-phase scheme: it works out which nodes
 * become empty, reads the left neighbour leaf and the chain of
 * single-child nodes a root collapse would skip, dirties what will change,
 * and only then modifies nodes, changes t->root and frees blocks.
 *
 * Cursors keep references on every node of their path, so bt_next and
 * bt_prev move through the path (the leaf chain is cross-checked against
 * it) and a delete has the ancestors it needs.  Nodes read from the cache
 * are checked by bt_node_check on every read, and a child's level must be
 * its parent's minus one.
 */
#include <errno.h>
#include <string.h>
#include "pfs_format.h"
#include "pfs_util.h"
#include "pfs_btree.h"

#define BT_HDR_SIZE     ((unsigned)sizeof(struct pfs_bt_node))          /* 48 */
#define BT_REC_HDR      ((unsigned)sizeof(struct pfs_bt_rec_hdr))       /* 10 */
#define BT_OFF_SIZE     2u
/* Bytes of a node available to offsets and records. */
#define BT_SPACE        (PFS_BLOCK_SIZE - BT_HDR_SIZE)
/* Most records a node can hold (all values empty). */
#define BT_MAX_RECS     (BT_SPACE / (BT_OFF_SIZE + BT_REC_HDR))
#define BT_CHILD_SIZE   8u
/* Bytes a record with a value of vlen takes, offset included. */
#define BT_REC_COST(vlen) (BT_OFF_SIZE + BT_REC_HDR + (unsigned)(vlen))

_Static_assert(2 * BT_REC_COST(BT_MAX_VALUE) <= BT_SPACE,
	       "two largest records must fit in one node (B5)");
_Static_assert(PFS_BLOCK_SIZE <= UINT16_MAX, "offsets are le16");

/* A record in memory; val points into a node image or a caller's buffer. */
struct bt_rec {
	uint64_t key;
	uint16_t vlen;
	const uint8_t *val;
};

/* A node-sized scratch image with the alignment of the header. */
union bt_page {
	struct pfs_bt_node node;
	uint8_t bytes[PFS_BLOCK_SIZE];
};

/* ------------------------------------------------------------------ */
/* Node image accessors.                                                */
/* ------------------------------------------------------------------ */

static inline struct pfs_bt_node *bt_node(struct buf *b)
{
	return buf_data(b);
}

static inline unsigned bt_nrecs(const struct pfs_bt_node *n)
{
	return le16_to_cpu(n->nrecs);
}

static inline unsigned bt_level(const struct pfs_bt_node *n)
{
	return le16_to_cpu(n->level);
}

static inline unsigned bt_rec_start(const struct pfs_bt_node *n)
{
	return le16_to_cpu(n->rec_start);
}

static inline const uint8_t *bt_bytes(const struct pfs_bt_node *n)
{
	return (const uint8_t *)n;
}

static inline unsigned bt_off(const struct pfs_bt_node *n, unsigned i)
{
	le16 v;

	memcpy(&v, bt_bytes(n) + BT_HDR_SIZE + BT_OFF_SIZE * i, sizeof(v));
	return le16_to_cpu(v);
}

static inline void bt_set_off(struct pfs_bt_node *n, unsigned i, unsigned off)
{
	le16 v = cpu_to_le16((uint16_t)off);

	memcpy((uint8_t *)n + BT_HDR_SIZE + BT_OFF_SIZE * i, &v, sizeof(v));
}

static inline uint64_t bt_key_at(const struct pfs_bt_node *n, unsigned off)
{
	le64 v;

	memcpy(&v, bt_bytes(n) + off, sizeof(v));
	return le64_to_cpu(v);
}

static inline uint16_t bt_vlen_at(const struct pfs_bt_node *n, unsigned off)
{
	le16 v;

	memcpy(&v, bt_bytes(n) + off + offsetof(struct pfs_bt_rec_hdr, vlen),
	       sizeof(v));
	return le16_to_cpu(v);
}

static inline uint64_t bt_key(const struct pfs_bt_node *n, unsigned i)
{
	return bt_key_at(n, bt_off(n, i));
}

static inline uint16_t bt_vlen(const struct pfs_bt_node *n, unsigned i)
{
	return bt_vlen_at(n, bt_off(n, i));
}

static inline const uint8_t *bt_val(const struct pfs_bt_node *n, unsigned i)
{
	return bt_bytes(n) + bt_off(n, i) + BT_REC_HDR;
}

static inline uint64_t bt_child(const struct pfs_bt_node *n, unsigned i)
{
	le64 v;

	memcpy(&v, bt_val(n, i), sizeof(v));
	return le64_to_cpu(v);
}

static inline struct bt_rec bt_rec_of(const struct pfs_bt_node *n, unsigned i)
{
	struct bt_rec r = { bt_key(n, i), bt_vlen(n, i), bt_val(n, i) };
	return r;
}

/* Contiguous free bytes between the offset array and the records. */
static inline unsigned bt_gap(const struct pfs_bt_node *n)
{
	return bt_rec_start(n) - (BT_HDR_SIZE + BT_OFF_SIZE * bt_nrecs(n));
}

/* Bytes used by offsets and records (holes excluded). */
static unsigned bt_used(const struct pfs_bt_node *n)
{
	unsigned i, used = 0;

	for (i = 0; i < bt_nrecs(n); i++)
		used += BT_REC_COST(bt_vlen(n, i));
	return used;
}

/* First index with key >= k. */
static unsigned bt_lower(const struct pfs_bt_node *n, uint64_t k)
{
	unsigned lo = 0, hi = bt_nrecs(n);

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		if (bt_key(n, mid) < k)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* First index with key > k. */
static unsigned bt_upper(const struct pfs_bt_node *n, uint64_t k)
{
	unsigned lo = 0, hi = bt_nrecs(n);

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		if (bt_key(n, mid) <= k)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Child of interior node n to descend into for key k (B2): the last
 * record whose key is < k (upper = false) or <= k (upper = true), with
 * key(0) standing for -infinity.
 */
static unsigned bt_child_index(const struct pfs_bt_node *n, uint64_t k, bool upper)
{
	unsigned i = upper ? bt_upper(n, k) : bt_lower(n, k);

	return i ? i - 1 : 0;
}

/* ------------------------------------------------------------------ */
/* Node image updates.  Callers have dirtied the node.                  */
/* ------------------------------------------------------------------ */

static void bt_node_init(struct pfs_bt_node *n, const struct bt_tree *t,
			 uint64_t blk, unsigned level)
{
	memset(n, 0, PFS_BLOCK_SIZE);
	n->hdr.magic = cpu_to_le32(PFS_MAGIC_BTREE);
	n->hdr.blkno = cpu_to_le64(blk);
	n->hdr.owner = cpu_to_le64(t->owner);
	n->level = cpu_to_le16((uint16_t)level);
	n->nrecs = 0;
	n->rec_start = cpu_to_le16(PFS_BLOCK_SIZE);
	n->tree_type = cpu_to_le16(t->type);
	n->next = 0;
}

static void bt_set_key(struct pfs_bt_node *n, unsigned i, uint64_t key)
{
	le64 k = cpu_to_le64(key);

	memcpy((uint8_t *)n + bt_off(n, i), &k, sizeof(k));
}

static void bt_write_rec(struct pfs_bt_node *n, unsigned off, const struct bt_rec *r)
{
	uint8_t *p = (uint8_t *)n + off;
	le64 k = cpu_to_le64(r->key);
	le16 v = cpu_to_le16(r->vlen);

	PFS_ASSERT(off + BT_REC_HDR + r->vlen <= PFS_BLOCK_SIZE);
	memcpy(p, &k, sizeof(k));
	memcpy(p + offsetof(struct pfs_bt_rec_hdr, vlen), &v, sizeof(v));
	if (r->vlen)
		memcpy(p + BT_REC_HDR, r->val, r->vlen);
}

/*
 * Rewrite n's offsets and record area from recs (which must not point
 * into n), packing the records against the end of the block.  The header
 * fields other than nrecs and rec_start are kept.
 */
static void bt_node_build(struct pfs_bt_node *n, const struct bt_rec *recs,
			  unsigned cnt)
{
	unsigned i, pos = PFS_BLOCK_SIZE, used = 0;

	for (i = 0; i < cnt; i++)
		used += BT_REC_COST(recs[i].vlen);
	PFS_BUG_ON(used > BT_SPACE);
	for (i = 0; i < cnt; i++) {
		/* B1: the caller hands records in key order. */
		PFS_ASSERT(i == 0 || recs[i - 1].key <= recs[i].key);
		pos -= BT_REC_HDR + recs[i].vlen;
		bt_write_rec(n, pos, &recs[i]);
		bt_set_off(n, i, pos);
	}
	n->nrecs = cpu_to_le16((uint16_t)cnt);
	n->rec_start = cpu_to_le16((uint16_t)pos);
	/* Keep stale bytes of removed records out of the free space. */
	memset((uint8_t *)n + BT_HDR_SIZE + BT_OFF_SIZE * cnt, 0,
	       pos - (BT_HDR_SIZE + BT_OFF_SIZE * cnt));
}

/* Collect n's records into recs (pointing into n). */
static unsigned bt_gather(const struct pfs_bt_node *n, struct bt_rec *recs)
{
	unsigned i, cnt = bt_nrecs(n);

	for (i = 0; i < cnt; i++)
		recs[i] = bt_rec_of(n, i);
	return cnt;
}

/* Squeeze the holes out of n's record area. */
static void bt_node_compact(struct pfs_bt_node *n)
{
	union bt_page tmp;
	struct bt_rec recs[BT_MAX_RECS];
	unsigned cnt;

	memcpy(&tmp, n, PFS_BLOCK_SIZE);
	cnt = bt_gather(&tmp.node, recs);
	bt_node_build(n, recs, cnt);
}

/* Insert r at index pos; the node has room for it (compacting if needed). */
static void bt_node_insert(struct pfs_bt_node *n, unsigned pos, const struct bt_rec *r)
{
	unsigned cnt = bt_nrecs(n), size = BT_REC_HDR + r->vlen, start;
	uint8_t *offs = (uint8_t *)n + BT_HDR_SIZE;

	PFS_BUG_ON(pos > cnt);
	PFS_BUG_ON(bt_used(n) + BT_REC_COST(r->vlen) > BT_SPACE);
	/* B1: pos keeps the records sorted. */
	PFS_ASSERT(pos == 0 || bt_key(n, pos - 1) <= r->key);
	PFS_ASSERT(pos == cnt || r->key <= bt_key(n, pos));
	if (bt_gap(n) < BT_OFF_SIZE + size)
		bt_node_compact(n);
	PFS_BUG_ON(bt_gap(n) < BT_OFF_SIZE + size);
	start = bt_rec_start(n) - size;
	bt_write_rec(n, start, r);
	memmove(offs + BT_OFF_SIZE * (pos + 1), offs + BT_OFF_SIZE * pos,
		BT_OFF_SIZE * (cnt - pos));
	bt_set_off(n, pos, start);
	n->nrecs = cpu_to_le16((uint16_t)(cnt + 1));
	n->rec_start = cpu_to_le16((uint16_t)start);
}

/* Remove record pos, leaving a zeroed hole unless it was at rec_start. */
static void bt_node_remove(struct pfs_bt_node *n, unsigned pos)
{
	unsigned cnt = bt_nrecs(n), off, size;
	uint8_t *offs = (uint8_t *)n + BT_HDR_SIZE;

	PFS_BUG_ON(pos >= cnt);
	off = bt_off(n, pos);
	size = BT_REC_HDR + bt_vlen(n, pos);
	memmove(offs + BT_OFF_SIZE * pos, offs + BT_OFF_SIZE * (pos + 1),
		BT_OFF_SIZE * (cnt - pos - 1));
	memset(offs + BT_OFF_SIZE * (cnt - 1), 0, BT_OFF_SIZE);
	memset((uint8_t *)n + off, 0, size);
	cnt--;
	n->nrecs = cpu_to_le16((uint16_t)cnt);
	if (cnt == 0)
		n->rec_start = cpu_to_le16(PFS_BLOCK_SIZE);
	else if (off == bt_rec_start(n))
		n->rec_start = cpu_to_le16((uint16_t)(off + size));
}

/* Replace record pos by r (same key, any length that fits; r must not
 * point into n). */
static void bt_node_replace(struct pfs_bt_node *n, unsigned pos, const struct bt_rec *r)
{
	PFS_BUG_ON(pos >= bt_nrecs(n));
	PFS_ASSERT(bt_key(n, pos) == r->key);
	bt_node_remove(n, pos);
	bt_node_insert(n, pos, r);
}

/*
 * Split n: its records with r inserted at pos (or replacing record pos)
 * are divided by bytes between n (left) and nw, an empty node of the same
 * level at block nw_blk (right).  r must not point into n.  Returns the
 * first key of nw, the separator for the parent.
 */
static uint64_t bt_node_split(struct pfs_bt_node *n, struct pfs_bt_node *nw,
			      uint64_t nw_blk, unsigned pos,
			      const struct bt_rec *r, bool replace)
{
	union bt_page tmp;
	struct bt_rec recs[BT_MAX_RECS + 1];
	unsigned cnt = bt_nrecs(n), total = 0, left = 0, best = 0, bestdiff = ~0u;
	unsigned i, m, out = 0;

	PFS_BUG_ON(pos > cnt || (replace && pos == cnt));
	PFS_ASSERT(bt_level(nw) == bt_level(n) && bt_nrecs(nw) == 0);
	memcpy(&tmp, n, PFS_BLOCK_SIZE);
	for (i = 0; i <= cnt; i++) {
		if (i == pos) {
			recs[out++] = *r;
			if (replace)
				continue;
		}
		if (i < cnt)
			recs[out++] = bt_rec_of(&tmp.node, i);
	}
	cnt = out;
	PFS_BUG_ON(cnt < 2);
	for (i = 0; i < cnt; i++)
		total += BT_REC_COST(recs[i].vlen);
	/* Both halves non-empty and fitting; closest to equal bytes. */
	for (m = 1; m < cnt; m++) {
		unsigned right, diff;

		left += BT_REC_COST(recs[m - 1].vlen);
		right = total - left;
		if (left > BT_SPACE)
			break;
		if (right > BT_SPACE)
			continue;
		diff = left > right ? left - right : right - left;
		if (diff < bestdiff) {
			bestdiff = diff;
			best = m;
		}
	}
	PFS_BUG_ON(best == 0);  /* B5 guarantees a split point */
	bt_node_build(n, recs, best);
	bt_node_build(nw, recs + best, cnt - best);
	if (bt_level(n) == 0) {
		/* B3: the new right half follows n in the leaf chain. */
		nw->next = n->next;
		n->next = cpu_to_le64(nw_blk);
	}
	return recs[best].key;
}

/* ------------------------------------------------------------------ */
/* Node checks and reads.                                               */
/* ------------------------------------------------------------------ */

/* Log why node image n is rejected; record rec (-1: none) is the culprit. */
static int bt_check_failed(const struct pfs_bt_node *n, const char *why, int rec)
{
	pfs_err("btree: block %llu (owner %llu): %s (level %u, nrecs %u, "
		"rec_start %u, record %d)",
		(unsigned long long)le64_to_cpu(n->hdr.blkno),
		(unsigned long long)le64_to_cpu(n->hdr.owner), why,
		le16_to_cpu(n->level), le16_to_cpu(n->nrecs),
		le16_to_cpu(n->rec_start), rec);
	return -EUCLEAN;
}

int bt_node_check(const void *blk, uint16_t type)
{
	const struct pfs_bt_node *n = blk;
	unsigned level, nrecs, start, i, bytes = 0;

	if (le32_to_cpu(n->hdr.magic) != PFS_MAGIC_BTREE)
		return bt_check_failed(n, "bad magic", -1);
	if (le16_to_cpu(n->tree_type) != type)
		return bt_check_failed(n, "wrong tree type", -1);
	level = bt_level(n);
	nrecs = bt_nrecs(n);
	start = bt_rec_start(n);
	if (level >= BT_MAX_DEPTH)
		return bt_check_failed(n, "level too high", -1);
	if (nrecs > BT_MAX_RECS)
		return bt_check_failed(n, "too many records", -1);
	if (start > PFS_BLOCK_SIZE || start < BT_HDR_SIZE + BT_OFF_SIZE * nrecs)
		return bt_check_failed(n, "rec_start out of bounds", -1);
	if (level > 0 && nrecs == 0)            /* B4 */
		return bt_check_failed(n, "empty interior node", -1);
	if (level > 0 && n->next != 0)          /* B3: only leaves are linked */
		return bt_check_failed(n, "interior node with a leaf link", -1);
	for (i = 0; i < nrecs; i++) {
		unsigned off = bt_off(n, i), vlen;

		if (off < start || off > PFS_BLOCK_SIZE - BT_REC_HDR)
			return bt_check_failed(n, "record offset out of bounds", (int)i);
		vlen = bt_vlen_at(n, off);
		if (vlen > BT_MAX_VALUE)        /* B5 */
			return bt_check_failed(n, "value too long", (int)i);
		if (off + BT_REC_HDR + vlen > PFS_BLOCK_SIZE)
			return bt_check_failed(n, "record past the end of the block", (int)i);
		if (level > 0 && vlen != BT_CHILD_SIZE)
			return bt_check_failed(n, "interior record is not a child pointer", (int)i);
		if (level > 0 && bt_child(n, i) == 0)
			return bt_check_failed(n, "null child pointer", (int)i);
		if (i > 0 && bt_key_at(n, off) < bt_key(n, i - 1))      /* B1 */
			return bt_check_failed(n, "keys out of order", (int)i);
		bytes += BT_REC_HDR + vlen;
	}
	if (bytes > PFS_BLOCK_SIZE - start)
		return bt_check_failed(n, "records overlap", -1);
	return 0;
}

/*
 * Read and check node blk.  level < 0: the root (any level, may be an
 * empty leaf); otherwise a child, which must be at that level and not
 * empty (B4).
 */
static int bt_read(struct bt_tree *t, uint64_t blk, int level, struct buf **out)
{
	struct buf *b;
	const struct pfs_bt_node *n;
	const char *why = NULL;
	int ret;

	ret = bcache_read(t->bc, blk, BUF_META, PFS_MAGIC_BTREE, &b);
	if (ret)
		return ret;
	n = bt_node(b);
	ret = bt_node_check(n, t->type);
	if (ret)
		goto put_buf;
	if (le64_to_cpu(n->hdr.owner) != t->owner)
		why = "node of another owner";
	else if (level >= 0 && bt_level(n) != (unsigned)level)
		why = "child level is not parent level - 1";
	else if (level >= 0 && bt_nrecs(n) == 0)        /* B4 */
		why = "empty non-root node";
	if (why) {
		pfs_err("btree: block %llu (owner %llu, tree owner %llu): %s "
			"(level %u, expected %d)", (unsigned long long)blk,
			(unsigned long long)le64_to_cpu(n->hdr.owner),
			(unsigned long long)t->owner, why, bt_level(n), level);
		ret = -EUCLEAN;
		goto put_buf;
	}
	*out = b;
	return 0;

put_buf:
	buf_put(b);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Node allocation and release.                                         */
/* ------------------------------------------------------------------ */

/* Allocate, initialise and dirty a new empty node at level. */
static int bt_new_node(struct bt_tree *t, uint64_t goal, unsigned level,
		       struct buf **out)
{
	uint64_t blk = 0;
	struct buf *b;
	int ret;

	ret = t->ops->alloc(t->arg, goal, &blk);
	if (ret)
		return ret;
	PFS_BUG_ON(blk == 0);
	ret = bcache_get_new(t->bc, blk, BUF_META, &b);
	if (ret)
		goto free_blk;
	bt_node_init(bt_node(b), t, blk, level);
	ret = t->ops->dirty(t->arg, b);
	if (ret)
		goto forget_buf;
	*out = b;
	return 0;

forget_buf:
	buf_put(b);
	bcache_forget(t->bc, blk);
free_blk:
	if (t->ops->free(t->arg, blk))
		pfs_warn("btree: owner %llu: could not free block %llu",
			 (unsigned long long)t->owner, (unsigned long long)blk);
	return ret;
}

/* Give back a node no longer referenced by the tree (no buffer held). */
static int bt_free_blk(struct bt_tree *t, uint64_t blk)
{
	int ret;

	bcache_forget(t->bc, blk);
	ret = t->ops->free(t->arg, blk);
	if (ret)
		pfs_warn("btree: owner %llu: could not free block %llu: %d",
			 (unsigned long long)t->owner, (unsigned long long)blk, ret);
	return ret;
}

/* Undo bt_new_node: drop the buffer and free the block. */
static void bt_discard_node(struct bt_tree *t, struct buf *b)
{
	uint64_t blk = buf_blkno(b);

	buf_put(b);
	bt_free_blk(t, blk);
}

/* ------------------------------------------------------------------ */
/* Cursors.                                                             */
/* ------------------------------------------------------------------ */

static void bt_cursor_init(struct bt_tree *t, struct bt_cursor *c)
{
	c->t = t;
	c->depth = 0;
	c->valid = false;
}

void bt_release(struct bt_cursor *c)
{
	int i;

	for (i = 0; i < c->depth; i++) {
		buf_put(c->path[i]);
		c->path[i] = NULL;
	}
	c->depth = 0;
	c->valid = false;
}

/*
 * Fill c with the path from the root to the leaf for key, choosing
 * children as bt_child_index(upper).  The leaf index is left to the
 * caller.  -ENOENT for an empty tree; on error c holds nothing.
 */
static int bt_descend(struct bt_tree *t, uint64_t key, bool upper,
		      struct bt_cursor *c)
{
	struct buf *b;
	int level, l, ret;

	bt_cursor_init(t, c);
	if (t->root == 0)
		return -ENOENT;
	ret = bt_read(t, t->root, -1, &b);
	if (ret)
		return ret;
	level = (int)bt_level(bt_node(b));
	c->path[level] = b;
	for (l = level; l > 0; l--) {
		const struct pfs_bt_node *n = bt_node(c->path[l]);
		unsigned i = bt_child_index(n, key, upper);

		c->idx[l] = (int)i;
		ret = bt_read(t, bt_child(n, i), l - 1, &c->path[l - 1]);
		if (ret)
			goto put_path;
	}
	c->depth = level + 1;
	c->idx[0] = 0;
	return 0;

put_path:
	for (; l <= level; l++)
		buf_put(c->path[l]);
	return ret;
}

/*
 * Move c to the first record of the next leaf (dir > 0) or the last
 * record of the previous leaf (dir < 0), through the path.  -ENOENT at
 * either end; on any error c is unchanged.
 */
static int bt_step_leaf(struct bt_cursor *c, int dir)
{
	struct bt_tree *t = c->t;
	struct buf *nb[BT_MAX_DEPTH];
	int ni[BT_MAX_DEPTH];
	uint64_t child, old_leaf;
	bool link;
	int l, k, i, ret;

	for (l = 1; l < c->depth; l++) {
		const struct pfs_bt_node *n = bt_node(c->path[l]);

		if (dir > 0 ? c->idx[l] + 1 < (int)bt_nrecs(n) : c->idx[l] > 0)
			break;
	}
	if (l >= c->depth)
		return -ENOENT;
	i = c->idx[l] + dir;
	child = bt_child(bt_node(c->path[l]), (unsigned)i);
	for (k = l - 1; k >= 0; k--) {
		const struct pfs_bt_node *n;

		ret = bt_read(t, child, k, &nb[k]);
		if (ret)
			goto put_new;
		n = bt_node(nb[k]);
		ni[k] = dir > 0 ? 0 : (int)bt_nrecs(n) - 1;
		if (k > 0)
			child = bt_child(n, (unsigned)ni[k]);
	}
	/* B3: the leaf chain agrees with the tree order. */
	old_leaf = buf_blkno(c->path[0]);
	if (dir > 0)
		link = le64_to_cpu(bt_node(c->path[0])->next) == buf_blkno(nb[0]);
	else
		link = le64_to_cpu(bt_node(nb[0])->next) == old_leaf;
	if (!link) {
		pfs_err("btree: owner %llu: leaf chain broken between blocks "
			"%llu and %llu", (unsigned long long)t->owner,
			(unsigned long long)(dir > 0 ? old_leaf : buf_blkno(nb[0])),
			(unsigned long long)(dir > 0 ? buf_blkno(nb[0]) : old_leaf));
		ret = -EUCLEAN;
		k = -1;                 /* every level below l was read */
		goto put_new;
	}
	c->idx[l] = i;
	for (k = 0; k < l; k++) {
		buf_put(c->path[k]);
		c->path[k] = nb[k];
		c->idx[k] = ni[k];
	}
	return 0;

put_new:
	for (k++; k < l; k++)
		buf_put(nb[k]);
	return ret;
}

int bt_seek_ge(struct bt_tree *t, uint64_t key, struct bt_cursor *c)
{
	int ret;
	unsigned i;

	ret = bt_descend(t, key, false, c);
	if (ret)
		return ret;
	i = bt_lower(bt_node(c->path[0]), key);
	if (i < bt_nrecs(bt_node(c->path[0]))) {
		c->idx[0] = (int)i;
	} else {
		/* B2: the first key >= key, if any, starts the next leaf. */
		ret = bt_step_leaf(c, 1);
		if (ret)
			goto release_cursor;
	}
	c->valid = true;
	return 0;

release_cursor:
	bt_release(c);
	return ret;
}

int bt_seek_le(struct bt_tree *t, uint64_t key, struct bt_cursor *c)
{
	int ret;
	unsigned i;

	ret = bt_descend(t, key, true, c);
	if (ret)
		return ret;
	i = bt_upper(bt_node(c->path[0]), key);
	if (i > 0) {
		c->idx[0] = (int)i - 1;
	} else {
		/* B2: everything in the previous leaf is <= key. */
		ret = bt_step_leaf(c, -1);
		if (ret)
			goto release_cursor;
	}
	c->valid = true;
	return 0;

release_cursor:
	bt_release(c);
	return ret;
}

int bt_next(struct bt_cursor *c)
{
	PFS_BUG_ON(!c->valid);
	if (c->idx[0] + 1 < (int)bt_nrecs(bt_node(c->path[0]))) {
		c->idx[0]++;
		return 0;
	}
	return bt_step_leaf(c, 1);
}

int bt_prev(struct bt_cursor *c)
{
	PFS_BUG_ON(!c->valid);
	if (c->idx[0] > 0) {
		c->idx[0]--;
		return 0;
	}
	return bt_step_leaf(c, -1);
}

void bt_get(const struct bt_cursor *c, uint64_t *key, const void **val,
	    uint16_t *vlen)
{
	const struct pfs_bt_node *n;

	PFS_BUG_ON(!c->valid);
	n = bt_node(c->path[0]);
	PFS_ASSERT(c->idx[0] >= 0 && c->idx[0] < (int)bt_nrecs(n));
	if (key)
		*key = bt_key(n, (unsigned)c->idx[0]);
	if (val)
		*val = bt_val(n, (unsigned)c->idx[0]);
	if (vlen)
		*vlen = bt_vlen(n, (unsigned)c->idx[0]);
}

/* ------------------------------------------------------------------ */
/* Insert, with splits.                                                 */
/* ------------------------------------------------------------------ */

/*
 * Put r into the leaf of c's path at c->idx[0]: inserted before that
 * record, or replacing it when replace.  Splits every level that has no
 * room, growing a new root if the root splits.  r must not point into a
 * node.  On error the tree is unchanged.
 */
static int bt_put(struct bt_tree *t, struct bt_cursor *c, const struct bt_rec *r,
		  bool replace)
{
	struct buf *nb[BT_MAX_DEPTH + 1];
	int depth = c->depth, nsplit = 0, nnew, top, l, ret;
	bool grow = false;
	struct bt_rec cur;
	unsigned pos;
	le64 sepval;

	PFS_BUG_ON(depth < 1);
	/* Plan: which levels split. */
	for (l = 0;; l++) {
		const struct pfs_bt_node *n = bt_node(c->path[l]);
		unsigned need = bt_used(n);

		if (l == 0 && replace)
			need = need - BT_REC_COST(bt_vlen(n, (unsigned)c->idx[0])) +
			       BT_REC_COST(r->vlen);
		else
			need += BT_REC_COST(l == 0 ? r->vlen : BT_CHILD_SIZE);
		if (need <= BT_SPACE)
			break;
		nsplit++;
		if (l == depth - 1) {
			grow = true;
			break;
		}
	}
	top = l;
	if (grow && depth >= BT_MAX_DEPTH) {
		pfs_err("btree: owner %llu: tree would exceed %d levels",
			(unsigned long long)t->owner, BT_MAX_DEPTH);
		return -EFBIG;
	}

	/* Allocate every new node and dirty every changing node first. */
	nnew = 0;
	for (l = 0; l < nsplit + (grow ? 1 : 0); l++) {
		struct buf *near = c->path[l < nsplit ? l : depth - 1];

		ret = bt_new_node(t, buf_blkno(near), (unsigned)l, &nb[l]);
		if (ret)
			goto discard_new;
		nnew++;
	}
	for (l = 0; l <= top; l++) {
		ret = t->ops->dirty(t->arg, c->path[l]);
		if (ret)
			goto discard_new;
	}

	/* Apply. */
	cur = *r;
	pos = (unsigned)c->idx[0];
	for (l = 0; l <= top && l < depth; l++) {
		struct pfs_bt_node *n = bt_node(c->path[l]);
		uint64_t sep;

		/* B1: a separator landing after a stale key(0) lowers it. */
		if (l > 0 && pos == 1 && cur.key < bt_key(n, 0))
			bt_set_key(n, 0, cur.key);
		if (l >= nsplit)
			break;
		sep = bt_node_split(n, bt_node(nb[l]),
				    buf_blkno(nb[l]), pos, &cur, replace && l == 0);
		sepval = cpu_to_le64(buf_blkno(nb[l]));
		cur.key = sep;
		cur.vlen = BT_CHILD_SIZE;
		cur.val = (const uint8_t *)&sepval;
		if (l + 1 < depth)
			pos = (unsigned)c->idx[l + 1] + 1;
	}
	if (grow) {
		struct buf *old = c->path[depth - 1];
		le64 oldval = cpu_to_le64(buf_blkno(old));
		struct bt_rec rr[2] = {
			{ bt_key(bt_node(old), 0), BT_CHILD_SIZE, (const uint8_t *)&oldval },
			cur,
		};

		bt_node_build(bt_node(nb[nsplit]), rr, 2);
		t->root = buf_blkno(nb[nsplit]);
	} else if (replace && nsplit == 0) {
		bt_node_replace(bt_node(c->path[0]), pos, &cur);
	} else {
		bt_node_insert(bt_node(c->path[top]), pos, &cur);
	}
	for (l = 0; l < nnew; l++)
		buf_put(nb[l]);
	return 0;

discard_new:
	while (nnew-- > 0)
		bt_discard_node(t, nb[nnew]);
	return ret;
}

int bt_insert(struct bt_tree *t, uint64_t key, const void *val, uint16_t vlen)
{
	uint8_t copy[BT_MAX_VALUE];
	struct bt_rec r = { key, vlen, copy };
	struct bt_cursor c;
	struct buf *b;
	int ret;

	if (vlen > BT_MAX_VALUE)        /* B5 */
		return -EINVAL;
	if (vlen)
		memcpy(copy, val, vlen);
	if (t->root == 0) {
		ret = bt_new_node(t, 0, 0, &b);
		if (ret)
			return ret;
		bt_node_insert(bt_node(b), 0, &r);
		t->root = buf_blkno(b);
		buf_put(b);
		return 0;
	}
	ret = bt_descend(t, key, true, &c);
	if (ret)
		return ret;
	/* B1: after every record with an equal key. */
	c.idx[0] = (int)bt_upper(bt_node(c.path[0]), key);
	ret = bt_put(t, &c, &r, false);
	bt_release(&c);
	return ret;
}

int bt_update(struct bt_cursor *c, const void *val, uint16_t vlen)
{
	uint8_t copy[BT_MAX_VALUE];
	struct pfs_bt_node *n;
	struct bt_rec r;
	unsigned i;
	int ret;

	PFS_BUG_ON(!c->valid);
	if (vlen > BT_MAX_VALUE)        /* B5 */
		return -EINVAL;
	n = bt_node(c->path[0]);
	i = (unsigned)c->idx[0];
	if (bt_vlen(n, i) == vlen) {
		ret = c->t->ops->dirty(c->t->arg, c->path[0]);
		if (ret)
			return ret;
		if (vlen)
			memmove((uint8_t *)bt_val(n, i), val, vlen);
		return 0;
	}
	if (vlen)
		memcpy(copy, val, vlen);
	r.key = bt_key(n, i);
	r.vlen = vlen;
	r.val = copy;
	ret = bt_put(c->t, c, &r, true);
	bt_release(c);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Delete.                                                              */
/* ------------------------------------------------------------------ */

int bt_delete(struct bt_cursor *c)
{
	struct bt_tree *t = c->t;
	struct buf *left[BT_MAX_DEPTH];         /* path to the left neighbour leaf */
	struct buf *chain[BT_MAX_DEPTH];        /* nodes a root collapse reaches */
	uint64_t freed[2 * BT_MAX_DEPTH];
	int depth = c->depth, e = 0, ll = -1, lo, nchain = 0, nfreed = 0;
	int l, k, ret = 0, fret;
	bool collapse = false;
	uint64_t child;

	PFS_BUG_ON(!c->valid);
	/* Levels 0..e-1 lose their only record and go away (B4). */
	while (e < depth && bt_nrecs(bt_node(c->path[e])) == 1)
		e++;

	/* B3: a freed leaf's left neighbour must take over its link. */
	lo = -1;
	if (e > 0 && e < depth) {
		for (l = e; l < depth && c->idx[l] == 0; l++)
			;
		if (l < depth) {
			ll = l;
			lo = ll;
			child = bt_child(bt_node(c->path[ll]), (unsigned)c->idx[ll] - 1);
			for (k = ll - 1; k >= 0; k--) {
				const struct pfs_bt_node *n;

				ret = bt_read(t, child, k, &left[k]);
				if (ret)
					goto put_left;
				lo = k;
				n = bt_node(left[k]);
				if (k > 0)
					child = bt_child(n, bt_nrecs(n) - 1);
			}
		}
	}

	/* B4: an interior root about to keep one child is collapsed. */
	if (e > 0 && e == depth - 1 && bt_nrecs(bt_node(c->path[e])) == 2) {
		collapse = true;
		child = bt_child(bt_node(c->path[e]), (unsigned)(1 - c->idx[e]));
		for (k = e - 1;; k--) {
			const struct pfs_bt_node *n;

			ret = bt_read(t, child, k, &chain[nchain]);
			if (ret)
				goto put_chain;
			n = bt_node(chain[nchain++]);
			if (k == 0 || bt_nrecs(n) != 1)
				break;
			child = bt_child(n, 0);
		}
	}

	if (ll >= 0) {
		ret = t->ops->dirty(t->arg, left[0]);
		if (ret)
			goto put_chain;
	}
	if (e < depth && !collapse) {
		ret = t->ops->dirty(t->arg, c->path[e]);
		if (ret)
			goto put_chain;
	}

	/* Nothing can fail from here on but freeing blocks. */
	PFS_BUG_ON(e + 1 + nchain > (int)PFS_ARRAY_SIZE(freed));
	if (ll >= 0)
		bt_node(left[0])->next = bt_node(c->path[0])->next;
	for (l = 0; l < e; l++)
		freed[nfreed++] = buf_blkno(c->path[l]);
	if (e == depth) {
		t->root = 0;
	} else if (collapse) {
		freed[nfreed++] = buf_blkno(c->path[e]);
		for (k = 0; k < nchain - 1; k++)
			freed[nfreed++] = buf_blkno(chain[k]);
		t->root = buf_blkno(chain[nchain - 1]);
	} else {
		bt_node_remove(bt_node(c->path[e]), (unsigned)c->idx[e]);
	}

put_chain:
	while (nchain > 0)
		buf_put(chain[--nchain]);
put_left:
	for (k = lo; k < ll; k++)
		buf_put(left[k]);
	bt_release(c);
	for (k = 0; k < nfreed; k++) {
		fret = bt_free_blk(t, freed[k]);
		if (fret && !ret)
			ret = fret;
	}
	return ret;
}

/* ------------------------------------------------------------------ */
/* Destroy and walk.                                                    */
/* ------------------------------------------------------------------ */

/*
 * Free the subtree at blk, children first.  Leaves are freed without
 * being read.  A node that cannot be read is freed all the same and its
 * subtree is lost; the first error is returned.
 */
static int bt_destroy_node(struct bt_tree *t, uint64_t blk, int level)
{
	const struct pfs_bt_node *n;
	struct buf *b;
	unsigned i, lvl;
	int ret, sub;

	ret = bt_read(t, blk, level, &b);
	if (ret == 0) {
		n = bt_node(b);
		lvl = bt_level(n);
		for (i = 0; lvl > 0 && i < bt_nrecs(n); i++) {
			uint64_t child = bt_child(n, i);

			if (lvl == 1)
				sub = bt_free_blk(t, child);
			else
				sub = bt_destroy_node(t, child, (int)lvl - 1);
			if (sub && !ret)
				ret = sub;
		}
		buf_put(b);
	}
	sub = bt_free_blk(t, blk);
	return ret ? ret : sub;
}

int bt_destroy(struct bt_tree *t)
{
	int ret;

	if (t->root == 0)
		return 0;
	ret = bt_destroy_node(t, t->root, -1);
	t->root = 0;
	return ret;
}

struct bt_walk_state {
	struct bt_tree *t;
	bt_node_cb cb;
	void *arg;
	bool seen_leaf;
	uint64_t last_leaf;     /* previous leaf in key order */
	uint64_t expect;        /* its `next` link */
};

/*
 * Visit the subtree at blk (pre-order), whose keys must lie in [lo, hi]
 * (B2), checking the leaf chain (B3) and the root's fan-out (B4).
 */
static int bt_walk_node(struct bt_walk_state *w, uint64_t blk, int level,
			uint64_t lo, uint64_t hi)
{
	struct bt_tree *t = w->t;
	const struct pfs_bt_node *n;
	struct buf *b;
	unsigned i, nrecs, lvl;
	const char *why = NULL;
	int ret;

	ret = bt_read(t, blk, level, &b);
	if (ret)
		return ret;
	n = bt_node(b);
	nrecs = bt_nrecs(n);
	lvl = bt_level(n);
	if (level < 0 && lvl > 0 && nrecs < 2)
		why = "interior root with a single child";      /* B4 */
	for (i = lvl > 0 ? 1 : 0; !why && i < nrecs; i++) {
		uint64_t k = bt_key(n, i);

		if (k < lo || k > hi)
			why = "key outside the range given by the parent";  /* B2 */
	}
	if (why) {
		pfs_err("btree: block %llu (owner %llu): %s",
			(unsigned long long)blk, (unsigned long long)t->owner, why);
		ret = -EUCLEAN;
		goto put_buf;
	}
	if (lvl == 0) {
		if (w->seen_leaf && w->expect != blk) {
			pfs_err("btree: owner %llu: leaf %llu links to %llu, "
				"but the next leaf is %llu",
				(unsigned long long)t->owner,
				(unsigned long long)w->last_leaf,
				(unsigned long long)w->expect,
				(unsigned long long)blk);
			ret = -EUCLEAN;
			goto put_buf;
		}
		w->seen_leaf = true;
		w->last_leaf = blk;
		w->expect = le64_to_cpu(n->next);
	}
	if (w->cb) {
		ret = w->cb(w->arg, (int)lvl, blk, n);
		if (ret)
			goto put_buf;
	}
	for (i = 0; lvl > 0 && i < nrecs; i++) {
		uint64_t clo = i == 0 ? lo : bt_key(n, i);
		uint64_t chi = i + 1 < nrecs ? bt_key(n, i + 1) : hi;

		ret = bt_walk_node(w, bt_child(n, i), (int)lvl - 1, clo, chi);
		if (ret)
			goto put_buf;
	}
put_buf:
	buf_put(b);
	return ret;
}

int bt_walk(struct bt_tree *t, bt_node_cb cb, void *arg)
{
	struct bt_walk_state w = { t, cb, arg, false, 0, 0 };
	int ret;

	if (t->root == 0)
		return 0;
	ret = bt_walk_node(&w, t->root, -1, 0, UINT64_MAX);
	if (ret)
		return ret;
	if (w.seen_leaf && w.expect != 0) {
		pfs_err("btree: owner %llu: last leaf %llu links to %llu",
			(unsigned long long)t->owner,
			(unsigned long long)w.last_leaf,
			(unsigned long long)w.expect);
		return -EUCLEAN;
	}
	return 0;
}
