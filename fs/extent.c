/*
 * fs/extent.c -- extent maps: where the logical blocks of a regular file,
 * or of a symlink whose target is kept in data blocks, live on the device.
 *
 * Representation
 *   Inline form (PFS_IF_EXTENT_TREE clear): up to PFS_INLINE_EXTENTS
 *   struct ext, little-endian, in ip->inline_area, sorted by lblk;
 *   ip->n_inline of them are in use and the rest of the area is zero.
 *   Tree form (PFS_IF_EXTENT_TREE set): a B+tree of type PFS_BT_EXTENT
 *   rooted at ip->tree_root, key = lblk, value = struct pfs_bt_extent_val.
 *   An insert that finds the inline area full moves every extent into a
 *   new tree; a punch that leaves a tree with at most 2 extents moves them
 *   back inline and frees the tree (hysteresis: 5 to grow, 2 to shrink).
 *
 *   The struct ext values passed in and out of this module's API
 *   are in CPU byte order; only the copies in the inline area and in tree
 *   records are little-endian.
 *
 * Invariants
 *   X1. Extents are sorted by lblk and never overlap.
 *   X2. Every extent has 1 <= len <= PFS_EXT_MAX_LEN, flags within
 *       PFS_EXT_UNWRITTEN, lblk + len does not wrap, and [pblk, pblk+len)
 *       lies inside the data area of one allocation group.  Extents read
 *       from the inode or from a tree node are checked; a violation is
 *       -EUCLEAN.
 *   X3. Inline form: n_inline <= PFS_INLINE_EXTENTS and tree_root == 0.
 *       Tree form: n_inline == 0 and the inline area is zero.
 *   X4. Block accounting: extent_add adds len to ip->blocks (the caller has
 *       allocated [pblk, pblk+len) with alloc_blocks and passes ownership
 *       of the blocks to the map); extent_punch and extent_destroy free
 *       blocks with alloc_free_blocks and subtract exactly what they freed.
 *       Tree node blocks are counted by the inode tree's bt_ops
 *       (alloc_bt_ops), never here.
 *   X5. A block is freed only after the map no longer references it.
 *   X6. Failure atomicity: each change of the map is ordered so that the
 *       one step that can fail for lack of space or memory (a tree insert,
 *       which may split nodes) comes first; when it fails the map is as it
 *       was.  A later step can then fail only with an I/O error or on a
 *       damaged node; since the map may then be inconsistent, the node is
 *       fenced (fs_fence), so the running transaction is never committed
 *       and recovery undoes it.
 *   X7. Adjacent extents that are physically contiguous, with equal flags,
 *       are merged by extent_add and extent_mark_written as long as the
 *       result stays within PFS_EXT_MAX_LEN.  (A punch or a failed merge
 *       may leave mergeable neighbours; that is legal, only wasteful.)
 *
 * Inode writes: every function that changes ip (extents, flags, blocks,
 * tree root) calls inode_write (through inode_tree_sync for tree roots)
 * before it returns, on success and on failure alike.
 *
 * Locking: every function runs with fs->lock held by the caller and never
 * takes it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pfs_fs.h"
#include "pfs_util.h"

/* An extent in CPU byte order. */
struct ext {
	uint64_t lblk;
	uint64_t pblk;
	uint32_t len;
	uint32_t flags;
};

/* An open extent map: the inode and, in tree form, its tree. */
struct emap {
	struct pfs_fs *fs;
	struct inode *ip;
	struct inode_tree it;           /* valid while tree is true */
	bool tree;                      /* current form */
	bool tree_dirty;                /* tree changed since inode_tree_sync */
	bool changed;                   /* ip changed: write it at close */
};

/* ---- encoding ---- */

static void ext_to_disk(const struct ext *e, struct pfs_extent *d)
{
	d->lblk = cpu_to_le64(e->lblk);
	d->pblk = cpu_to_le64(e->pblk);
	d->len = cpu_to_le32(e->len);
	d->flags = cpu_to_le32(e->flags);
}

static void ext_inline_get(const struct inode *ip, uint32_t i,
			   struct ext *e)
{
	struct pfs_extent d;

	PFS_ASSERT(i < PFS_INLINE_EXTENTS);
	memcpy(&d, ip->inline_area + i * sizeof(d), sizeof(d));
	e->lblk = le64_to_cpu(d.lblk);
	e->pblk = le64_to_cpu(d.pblk);
	e->len = le32_to_cpu(d.len);
	e->flags = le32_to_cpu(d.flags);
}

static void ext_inline_put(struct inode *ip, uint32_t i,
			   const struct ext *e)
{
	struct pfs_extent d;

	PFS_ASSERT(i < PFS_INLINE_EXTENTS);
	ext_to_disk(e, &d);
	memcpy(ip->inline_area + i * sizeof(d), &d, sizeof(d));
}

static void ext_to_val(const struct ext *e, struct pfs_bt_extent_val *v)
{
	v->pblk = cpu_to_le64(e->pblk);
	v->len = cpu_to_le32(e->len);
	v->flags = cpu_to_le32(e->flags);
}

static uint64_t ext_end(const struct ext *e)
{
	return e->lblk + e->len;
}

/* Is [pblk, pblk+len) inside the data area of a single group? */
static bool ext_run_valid(const struct pfs_fs *fs, uint64_t pblk, uint64_t len)
{
	uint64_t last;

	if (len == 0 || pblk + len < pblk)
		return false;
	last = pblk + len - 1;
	if (!alloc_block_valid(fs, pblk) || !alloc_block_valid(fs, last))
		return false;
	return (pblk - fs->group_start) / fs->bpg ==
	       (last - fs->group_start) / fs->bpg;
}

/* X2 for an extent read from the inode or the tree. */
static int ext_check(const struct emap *m, const struct ext *e)
{
	if (e->len == 0 || e->len > PFS_EXT_MAX_LEN ||
	    (e->flags & ~PFS_EXT_UNWRITTEN) || ext_end(e) < e->lblk ||
	    !ext_run_valid(m->fs, e->pblk, e->len)) {
		pfs_err("inode %llu: bad extent lblk %llu pblk %llu len %u flags %#x",
			(unsigned long long)m->ip->ino,
			(unsigned long long)e->lblk,
			(unsigned long long)e->pblk, e->len, e->flags);
		return -EUCLEAN;
	}
	return 0;
}

static void ext_blocks_sub(struct inode *ip, uint64_t n)
{
	if (ip->blocks < n) {
		pfs_warn("inode %llu: block count %llu below %llu being freed",
			 (unsigned long long)ip->ino,
			 (unsigned long long)ip->blocks, (unsigned long long)n);
		ip->blocks = 0;
		return;
	}
	ip->blocks -= n;
}

/* X6: the map may be inconsistent; make sure it never reaches the disk. */
static int emap_fence(struct emap *m, int err, const char *what)
{
	pfs_err("inode %llu: extent map %s failed part-way (%d)",
		(unsigned long long)m->ip->ino, what, err);
	fs_fence(m->fs, err, "extent map update failed part-way");
	return err;
}

/* ---- opening and closing a map ---- */

static int emap_open(struct pfs_fs *fs, struct inode *ip, struct emap *m)
{
	struct ext e, prev = { 0 };
	uint32_t i;
	int err;

	memset(m, 0, sizeof(*m));
	m->fs = fs;
	m->ip = ip;
	PFS_ASSERT(!S_ISDIR(ip->mode));
	if (ip->flags & PFS_IF_INLINE_DATA) {
		if (ip->flags & PFS_IF_EXTENT_TREE)
			goto bad;
		return -EINVAL;         /* no extent map: target is inline */
	}
	if (ip->flags & PFS_IF_EXTENT_TREE) {
		if (ip->n_inline != 0)                          /* X3 */
			goto bad;
		inode_tree_init(fs, ip, PFS_BT_EXTENT, &m->it);
		m->tree = true;
		return 0;
	}
	if (ip->n_inline > PFS_INLINE_EXTENTS || ip->tree_root != 0) /* X3 */
		goto bad;
	for (i = 0; i < ip->n_inline; i++) {
		ext_inline_get(ip, i, &e);
		err = ext_check(m, &e);                         /* X2 */
		if (err)
			return err;
		if (i > 0 && ext_end(&prev) > e.lblk)           /* X1 */
			goto bad;
		prev = e;
	}
	return 0;

bad:
	pfs_err("inode %llu: inconsistent extent map (flags %#x, %u inline, root %llu)",
		(unsigned long long)ip->ino, ip->flags, ip->n_inline,
		(unsigned long long)ip->tree_root);
	return -EUCLEAN;
}

/* Store a changed root and write the inode; returns err or the first
 * error met here. */
static int emap_close(struct emap *m, int err)
{
	int r;

	if (m->tree_dirty) {
		r = inode_tree_sync(&m->it);
		if (r && !err)
			err = r;
		m->tree_dirty = false;
	}
	if (m->changed) {
		r = inode_write(m->fs, m->ip);
		if (r && !err)
			err = r;
	}
	return err;
}

/* ---- primitive operations on either form ---- */

static int emap_tree_get(struct emap *m, struct bt_cursor *c,
			 struct ext *e)
{
	struct pfs_bt_extent_val v;
	const void *val;
	uint64_t key;
	uint16_t vlen;

	bt_get(c, &key, &val, &vlen);
	if (vlen != sizeof(v)) {
		pfs_err("inode %llu: extent record %llu has a %u-byte value",
			(unsigned long long)m->ip->ino,
			(unsigned long long)key, vlen);
		return -EUCLEAN;
	}
	memcpy(&v, val, sizeof(v));
	e->lblk = key;
	e->pblk = le64_to_cpu(v.pblk);
	e->len = le32_to_cpu(v.len);
	e->flags = le32_to_cpu(v.flags);
	return ext_check(m, e);
}

/* Last extent with lblk <= key: 1 (in *e), 0 if none, or -errno. */
static int emap_find_le(struct emap *m, uint64_t key, struct ext *e)
{
	struct bt_cursor c;
	int err;

	if (!m->tree) {
		uint32_t i;

		for (i = m->ip->n_inline; i > 0; i--) {
			ext_inline_get(m->ip, i - 1, e);
			if (e->lblk <= key)
				return 1;
		}
		return 0;
	}
	if (m->it.t.root == 0)
		return 0;
	err = bt_seek_le(&m->it.t, key, &c);
	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	err = emap_tree_get(m, &c, e);
	bt_release(&c);
	return err ? err : 1;
}

/* First extent with lblk >= key: 1 (in *e), 0 if none, or -errno. */
static int emap_find_ge(struct emap *m, uint64_t key, struct ext *e)
{
	struct bt_cursor c;
	int err;

	if (!m->tree) {
		uint32_t i;

		for (i = 0; i < m->ip->n_inline; i++) {
			ext_inline_get(m->ip, i, e);
			if (e->lblk >= key)
				return 1;
		}
		return 0;
	}
	if (m->it.t.root == 0)
		return 0;
	err = bt_seek_ge(&m->it.t, key, &c);
	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	err = emap_tree_get(m, &c, e);
	bt_release(&c);
	return err ? err : 1;
}

/* The extent that overlaps [pos, end) first: 1 (in *e), 0 if none. */
static int emap_find_overlap(struct emap *m, uint64_t pos, uint64_t end,
			     struct ext *e)
{
	int r;

	r = emap_find_le(m, pos, e);
	if (r < 0)
		return r;
	if (r == 1 && ext_end(e) > pos)
		return 1;
	r = emap_find_ge(m, pos, e);
	if (r <= 0)
		return r;
	return e->lblk < end ? 1 : 0;
}

/* Index of the inline extent that starts at lblk, or -EUCLEAN. */
static int emap_inline_index(struct emap *m, uint64_t lblk, uint32_t *idx)
{
	struct ext e;
	uint32_t i;

	for (i = 0; i < m->ip->n_inline; i++) {
		ext_inline_get(m->ip, i, &e);
		if (e.lblk == lblk) {
			*idx = i;
			return 0;
		}
	}
	pfs_err("inode %llu: inline extent at %llu vanished",
		(unsigned long long)m->ip->ino, (unsigned long long)lblk);
	return -EUCLEAN;
}

/* Position c on the tree record whose key is lblk. */
static int emap_tree_seek(struct emap *m, uint64_t lblk, struct bt_cursor *c)
{
	const void *val;
	uint64_t key;
	uint16_t vlen;
	int err;

	err = bt_seek_ge(&m->it.t, lblk, c);
	if (err == 0) {
		bt_get(c, &key, &val, &vlen);
		if (key == lblk)
			return 0;
		bt_release(c);
		err = -ENOENT;
	}
	if (err == -ENOENT) {
		pfs_err("inode %llu: extent record %llu vanished",
			(unsigned long long)m->ip->ino, (unsigned long long)lblk);
		err = -EUCLEAN;
	}
	return err;
}

static int emap_tree_insert(struct emap *m, const struct ext *e)
{
	struct pfs_bt_extent_val v;

	ext_to_val(e, &v);
	m->tree_dirty = true;
	return bt_insert(&m->it.t, e->lblk, &v, sizeof(v));
}

/*
 * Move the inline extents and E into a new tree (the inline area is full).
 * The tree is built completely before the inode switches form, so a
 * failure leaves the inline form untouched and the partial tree freed.
 */
static int emap_to_tree(struct emap *m, const struct ext *e)
{
	struct inode *ip = m->ip;
	struct ext x;
	bool placed = false;
	uint32_t i;
	int err = 0, r;

	PFS_ASSERT(!m->tree && ip->tree_root == 0);             /* X3 */
	inode_tree_init(m->fs, ip, PFS_BT_EXTENT, &m->it);
	for (i = 0; i < ip->n_inline && !err; i++) {
		ext_inline_get(ip, i, &x);
		if (!placed && e->lblk < x.lblk) {
			err = emap_tree_insert(m, e);
			placed = true;
			if (err)
				break;
		}
		err = emap_tree_insert(m, &x);
	}
	if (!err && !placed)
		err = emap_tree_insert(m, e);
	m->changed = true;      /* node blocks were counted in ip->blocks */
	if (err)
		goto destroy_tree;

	ip->flags |= PFS_IF_EXTENT_TREE;
	ip->n_inline = 0;
	memset(ip->inline_area, 0, sizeof(ip->inline_area));    /* X3 */
	m->tree = true;
	return 0;

destroy_tree:
	r = bt_destroy(&m->it.t);
	m->tree_dirty = false;
	if (r)
		return emap_fence(m, r, "conversion to a tree");
	return err;
}

/* Add extent E, which overlaps no extent other than, transiently, one that
 * the caller shrinks or deletes next (X6). */
static int emap_insert(struct emap *m, const struct ext *e)
{
	struct inode *ip = m->ip;
	struct ext x;
	uint32_t i;

	if (m->tree)
		return emap_tree_insert(m, e);
	if (ip->n_inline == PFS_INLINE_EXTENTS)
		return emap_to_tree(m, e);
	for (i = ip->n_inline; i > 0; i--) {
		ext_inline_get(ip, i - 1, &x);
		PFS_ASSERT(x.lblk != e->lblk);                  /* X1 */
		if (x.lblk < e->lblk)
			break;
		ext_inline_put(ip, i, &x);
	}
	ext_inline_put(ip, i, e);
	ip->n_inline++;
	m->changed = true;
	return 0;
}

static int emap_delete(struct emap *m, uint64_t lblk)
{
	struct inode *ip = m->ip;
	struct ext x;
	struct bt_cursor c;
	uint32_t i;
	int err;

	if (m->tree) {
		err = emap_tree_seek(m, lblk, &c);
		if (err)
			return err;
		m->tree_dirty = true;
		return bt_delete(&c);
	}
	err = emap_inline_index(m, lblk, &i);
	if (err)
		return err;
	for (; i + 1 < ip->n_inline; i++) {
		ext_inline_get(ip, i + 1, &x);
		ext_inline_put(ip, i, &x);
	}
	ip->n_inline--;
	memset(ip->inline_area + ip->n_inline * sizeof(struct ext), 0,
	       sizeof(struct pfs_extent));                     /* X3 */
	m->changed = true;
	return 0;
}

/*
 * Replace the extent that starts at old_lblk by E.  E may start elsewhere
 * as long as it keeps its place in the order (X1); in the tree that is an
 * insert of the new key (the step that may fail cleanly) and a delete of
 * the old one.
 */
static int emap_replace(struct emap *m, uint64_t old_lblk,
			const struct ext *e)
{
	struct pfs_bt_extent_val v;
	struct bt_cursor c;
	uint32_t i;
	int err;

	if (!m->tree) {
		err = emap_inline_index(m, old_lblk, &i);
		if (err)
			return err;
#ifndef NDEBUG
		{
			struct ext n;

			if (i > 0) {
				ext_inline_get(m->ip, i - 1, &n);
				PFS_ASSERT(ext_end(&n) <= e->lblk);     /* X1 */
			}
			if (i + 1 < m->ip->n_inline) {
				ext_inline_get(m->ip, i + 1, &n);
				PFS_ASSERT(ext_end(e) <= n.lblk);       /* X1 */
			}
		}
#endif
		ext_inline_put(m->ip, i, e);
		m->changed = true;
		return 0;
	}
	if (e->lblk != old_lblk) {
		err = emap_tree_insert(m, e);
		if (err)
			return err;
		err = emap_delete(m, old_lblk);
		if (err)
			return emap_fence(m, err, "replace");
		return 0;
	}
	err = emap_tree_seek(m, old_lblk, &c);
	if (err)
		return err;
	ext_to_val(e, &v);
	m->tree_dirty = true;
	err = bt_update(&c, &v, sizeof(v));
	bt_release(&c);
	return err;
}

/* Can A (left) and B (right) become one extent? */
static bool ext_mergeable(const struct ext *a, const struct ext *b)
{
	return ext_end(a) == b->lblk && a->pblk + a->len == b->pblk &&
	       a->flags == b->flags &&
	       (uint64_t)a->len + b->len <= PFS_EXT_MAX_LEN;
}

/* X7: merge the extent starting at lblk with its neighbours.  Only deletes
 * and updates in place: nothing here needs space. */
static int emap_merge_at(struct emap *m, uint64_t lblk)
{
	struct ext x, l, r;
	int found, err;

	found = emap_find_le(m, lblk, &x);
	if (found <= 0)
		return found;
	PFS_ASSERT(x.lblk == lblk);
	if (lblk > 0) {
		found = emap_find_le(m, lblk - 1, &l);
		if (found < 0)
			return found;
		if (found && ext_mergeable(&l, &x)) {
			err = emap_delete(m, x.lblk);
			if (err)
				return err;
			l.len += x.len;
			err = emap_replace(m, l.lblk, &l);
			if (err)
				return emap_fence(m, err, "merge");
			x = l;
		}
	}
	found = emap_find_ge(m, ext_end(&x), &r);
	if (found < 0)
		return found;
	if (found && ext_mergeable(&x, &r)) {
		err = emap_delete(m, r.lblk);
		if (err)
			return err;
		x.len += r.len;
		err = emap_replace(m, x.lblk, &x);
		if (err)
			return emap_fence(m, err, "merge");
	}
	return 0;
}

/*
 * Unmap [start, end), free the blocks and subtract them from ip->blocks
 * (X4, X5).  On failure the part already done stays done and the map is
 * consistent.
 */
static int emap_unmap(struct emap *m, uint64_t start, uint64_t end)
{
	struct ext x, piece;
	uint64_t pos = start, xs, xe, cs, ce;
	int found, err;

	while (pos < end) {
		found = emap_find_overlap(m, pos, end, &x);
		if (found <= 0)
			return found;
		xs = x.lblk;
		xe = ext_end(&x);
		cs = PFS_MAX(xs, pos);
		ce = PFS_MIN(xe, end);

		if (cs == xs && ce == xe) {
			err = emap_delete(m, xs);
		} else if (cs == xs) {
			/* Head cut: [ce, xe) remains. */
			piece = x;
			piece.lblk = ce;
			piece.pblk = x.pblk + (ce - xs);
			piece.len = (uint32_t)(xe - ce);
			err = emap_replace(m, xs, &piece);
		} else if (ce == xe) {
			/* Tail cut: [xs, cs) remains. */
			piece = x;
			piece.len = (uint32_t)(cs - xs);
			err = emap_replace(m, xs, &piece);
		} else {
			/* Middle: [xs, cs) and [ce, xe) remain.  Insert the
			 * right part first (X6), then shrink the left. */
			piece = x;
			piece.lblk = ce;
			piece.pblk = x.pblk + (ce - xs);
			piece.len = (uint32_t)(xe - ce);
			err = emap_insert(m, &piece);
			if (err)
				return err;
			piece = x;
			piece.len = (uint32_t)(cs - xs);
			err = emap_replace(m, xs, &piece);
			if (err)
				return emap_fence(m, err, "split");
		}
		if (err)
			return err;
		/* X5: the map no longer references the blocks. */
		err = alloc_free_blocks(m->fs, x.pblk + (cs - xs),
					(uint32_t)(ce - cs));
		if (err)
			return err;
		ext_blocks_sub(m->ip, ce - cs);
		m->changed = true;
		pos = ce;
	}
	return 0;
}

/* Back to the inline form if the tree holds at most 2 extents. */
static int emap_maybe_inline(struct emap *m)
{
	struct inode *ip = m->ip;
	struct ext ex[3];
	struct bt_cursor c;
	uint32_t n = 0, i;
	int err;

	if (!m->tree)
		return 0;
	if (m->it.t.root != 0) {
		err = bt_seek_ge(&m->it.t, 0, &c);
		if (err && err != -ENOENT)
			return err;
		if (err == 0) {
			for (;;) {
				if (n == PFS_ARRAY_SIZE(ex))
					break;
				err = emap_tree_get(m, &c, &ex[n]);
				if (err)
					break;
				n++;
				err = bt_next(&c);
				if (err)
					break;
			}
			bt_release(&c);
			if (err && err != -ENOENT)
				return err;
		}
	}
	if (n > 2)
		return 0;

	m->tree_dirty = true;
	if (m->it.t.root != 0) {
		err = bt_destroy(&m->it.t);
		if (err)
			return emap_fence(m, err, "conversion to inline");
	}
	err = inode_tree_sync(&m->it);
	m->tree_dirty = false;
	if (err)
		return emap_fence(m, err, "conversion to inline");
	m->tree = false;
	ip->flags &= ~PFS_IF_EXTENT_TREE;
	PFS_ASSERT(ip->tree_root == 0);                         /* X3 */
	memset(ip->inline_area, 0, sizeof(ip->inline_area));
	for (i = 0; i < n; i++)
		ext_inline_put(ip, i, &ex[i]);
	ip->n_inline = n;
	m->changed = true;
	return 0;
}

/* ---- API ---- */

int extent_lookup(struct pfs_fs *fs, struct inode *ip, uint64_t lblk,
		  struct pfs_extent *ext)
{
	struct ext e, hole = { .lblk = lblk, .len = UINT32_MAX };
	struct emap m;
	int found, err;

	err = emap_open(fs, ip, &m);
	if (err)
		return err;
	found = emap_find_le(&m, lblk, &e);
	if (found < 0)
		return found;
	if (found && ext_end(&e) > lblk) {
		ext_to_disk(&e, ext);
		return 1;
	}
	found = emap_find_ge(&m, lblk, &e);
	if (found < 0)
		return found;
	if (found && e.lblk - lblk < UINT32_MAX)
		hole.len = (uint32_t)(e.lblk - lblk);
	ext_to_disk(&hole, ext);
	return 0;
}

int extent_next(struct pfs_fs *fs, struct inode *ip, uint64_t lblk,
		struct pfs_extent *ext)
{
	struct emap m;
	struct ext e;
	int found;

	found = emap_open(fs, ip, &m);
	if (found)
		return found;
	found = emap_find_overlap(&m, lblk, UINT64_MAX, &e);
	if (found == 1)
		ext_to_disk(&e, ext);
	return found;
}

/*
 * A run from alloc_blocks never crosses a group boundary (every group
 * begins with its metadata blocks) and a group holds fewer blocks than
 * PFS_EXT_MAX_LEN, so one extent, possibly merged (X7), always maps it.
 */
_Static_assert(PFS_BITMAP_BITS <= PFS_EXT_MAX_LEN, "a group run fits an extent");

int extent_add(struct pfs_fs *fs, struct inode *ip, uint64_t lblk,
	       uint64_t pblk, uint32_t len, uint32_t flags)
{
	struct ext n = { .lblk = lblk, .pblk = pblk, .len = len,
				.flags = flags };
	struct ext e, l, r;
	bool ml = false, mr = false;
	struct emap m;
	int found, err;

	if (len == 0 || len > PFS_EXT_MAX_LEN || (flags & ~PFS_EXT_UNWRITTEN) ||
	    lblk + len < lblk || !ext_run_valid(fs, pblk, len))
		return -EINVAL;
	err = emap_open(fs, ip, &m);
	if (err)
		return err;

	/* The range must be a hole. */
	found = emap_find_le(&m, lblk + len - 1, &e);
	if (found < 0)
		return found;
	if (found && ext_end(&e) > lblk) {
		pfs_err("inode %llu: extent_add over mapped block %llu",
			(unsigned long long)ip->ino,
			(unsigned long long)PFS_MAX(e.lblk, lblk));
		return -EEXIST;
	}

	if (lblk > 0) {
		found = emap_find_le(&m, lblk - 1, &l);
		if (found < 0)
			return found;
		ml = found && ext_mergeable(&l, &n);
	}
	found = emap_find_ge(&m, ext_end(&n), &r);
	if (found < 0)
		return found;
	mr = found && ext_mergeable(&n, &r);

	if (ml && mr && (uint64_t)l.len + len + r.len <= PFS_EXT_MAX_LEN) {
		/* Nothing here needs space: delete R, then grow L over it. */
		err = emap_delete(&m, r.lblk);
		if (err)
			goto close_map;
		l.len += len + r.len;
		err = emap_replace(&m, l.lblk, &l);
		if (err)
			err = emap_fence(&m, err, "merge");
	} else if (ml) {
		l.len += len;
		err = emap_replace(&m, l.lblk, &l);
	} else if (mr) {
		n.len += r.len;
		err = emap_replace(&m, r.lblk, &n);
	} else {
		err = emap_insert(&m, &n);
	}
	if (!err) {
		ip->blocks += len;                              /* X4 */
		m.changed = true;
	}
close_map:
	return emap_close(&m, err);
}

int extent_punch(struct pfs_fs *fs, struct inode *ip, uint64_t lblk,
		 uint64_t len)
{
	struct emap m;
	uint64_t end;
	int err;

	if (len == 0)
		return 0;
	end = lblk + len < lblk ? UINT64_MAX : lblk + len;
	err = emap_open(fs, ip, &m);
	if (err)
		return err;
	err = emap_unmap(&m, lblk, end);
	if (!err)
		err = emap_maybe_inline(&m);
	return emap_close(&m, err);
}

int extent_mark_written(struct pfs_fs *fs, struct inode *ip, uint64_t lblk,
			uint64_t len)
{
	struct ext x, head, mid, tail;
	uint64_t pos = lblk, end, xs, xe, cs, ce;
	struct emap m;
	int found, err = 0, r;

	if (len == 0)
		return 0;
	end = lblk + len < lblk ? UINT64_MAX : lblk + len;
	err = emap_open(fs, ip, &m);
	if (err)
		return err;

	while (pos < end) {
		found = emap_find_overlap(&m, pos, end, &x);
		if (found <= 0) {
			err = found;
			break;
		}
		xs = x.lblk;
		xe = ext_end(&x);
		cs = PFS_MAX(xs, pos);
		ce = PFS_MIN(xe, end);
		pos = ce;
		if (!(x.flags & PFS_EXT_UNWRITTEN))
			continue;

		head = mid = tail = x;
		head.len = (uint32_t)(cs - xs);
		mid.lblk = cs;
		mid.pblk = x.pblk + (cs - xs);
		mid.len = (uint32_t)(ce - cs);
		mid.flags &= ~PFS_EXT_UNWRITTEN;
		tail.lblk = ce;
		tail.pblk = x.pblk + (ce - xs);
		tail.len = (uint32_t)(xe - ce);

		/* X6: the inserts first, then the update of X in place. */
		if (tail.len > 0) {
			err = emap_insert(&m, &tail);
			if (err)
				break;
		}
		if (head.len > 0) {
			err = emap_insert(&m, &mid);
			if (err)
				goto delete_tail;
			err = emap_replace(&m, xs, &head);
		} else {
			err = emap_replace(&m, xs, &mid);
		}
		if (err) {
			err = emap_fence(&m, err, "split");
			break;
		}
		err = emap_merge_at(&m, mid.lblk);
		if (err)
			break;
	}
	return emap_close(&m, err);

delete_tail:
	if (tail.len > 0) {
		r = emap_delete(&m, tail.lblk);
		if (r)
			emap_fence(&m, r, "split");
	}
	return emap_close(&m, err);
}

int extent_destroy(struct pfs_fs *fs, struct inode *ip)
{
	struct ext *list = NULL, *grown, e;
	size_t n = 0, cap = 0, i;
	struct bt_cursor c;
	struct emap m;
	int err;

	if (ip->flags & PFS_IF_INLINE_DATA) {
		if (ip->flags & PFS_IF_EXTENT_TREE)
			return -EUCLEAN;
		return 0;                       /* no extent map */
	}
	err = emap_open(fs, ip, &m);
	if (err)
		return err;

	/* Collect every extent first: the map goes away before any block
	 * is freed (X5). */
	if (!m.tree) {
		cap = PFS_INLINE_EXTENTS;
		list = calloc(cap, sizeof(*list));
		if (!list)
			return -ENOMEM;
		for (i = 0; i < ip->n_inline; i++)
			ext_inline_get(ip, i, &list[n++]);
		ip->n_inline = 0;
		memset(ip->inline_area, 0, sizeof(ip->inline_area));
		m.changed = true;
	} else {
		if (m.it.t.root != 0) {
			err = bt_seek_ge(&m.it.t, 0, &c);
			if (err == -ENOENT)
				err = 0;
			else if (err)
				goto free_list;
			else {
				for (;;) {
					if (n == cap) {
						cap = cap ? cap * 2 : 256;
						grown = realloc(list, cap * sizeof(*list));
						if (!grown) {
							err = -ENOMEM;
							break;
						}
						list = grown;
					}
					err = emap_tree_get(&m, &c, &e);
					if (err)
						break;
					if (n > 0 && ext_end(&list[n - 1]) > e.lblk) {
						pfs_err("inode %llu: overlapping extents at %llu",
							(unsigned long long)ip->ino,
							(unsigned long long)e.lblk);
						err = -EUCLEAN;         /* X1 */
						break;
					}
					list[n++] = e;
					err = bt_next(&c);
					if (err)
						break;
				}
				bt_release(&c);
				if (err == -ENOENT)
					err = 0;
				if (err)
					goto free_list;
			}
			m.tree_dirty = true;
			err = bt_destroy(&m.it.t);
			if (err) {
				emap_fence(&m, err, "destroy");
				goto free_list;
			}
		}
		m.tree_dirty = true;
		err = inode_tree_sync(&m.it);
		m.tree_dirty = false;
		if (err) {
			emap_fence(&m, err, "destroy");
			goto free_list;
		}
		m.tree = false;
		ip->flags &= ~PFS_IF_EXTENT_TREE;
		m.changed = true;
		PFS_ASSERT(ip->tree_root == 0);                 /* X3 */
	}

	for (i = 0; i < n; i++) {
		err = alloc_free_blocks(fs, list[i].pblk, list[i].len);
		if (err)
			break;
		ext_blocks_sub(ip, list[i].len);                /* X4 */
	}

free_list:
	free(list);
	return emap_close(&m, err);
}
