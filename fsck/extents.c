/*
 * extents.c -- extent maps and directory indexes in pass 3: walking them,
 * checking each extent, claiming their blocks, and the repairs that remove
 * what cannot be kept.
 *
 * Design notes
 *
 * A map is read completely before anything is claimed: the tree is walked
 * with bt_walk (which checks every node: checksum, owner, structure, key
 * ranges, leaf chain) while the callback collects node blocks and, for
 * extent trees, the leaf records.  So a damaged tree is known before any
 * of its blocks enters the computed usage.
 *
 * Rules checked for each extent (fs/extent.c X1, X2): 1 <= len <=
 * PFS_EXT_MAX_LEN, known flags, lblk + len within the largest file size
 * (fs/file.c: 2^60 bytes), the physical run
 * lies in the data area of one group, extents sorted by lblk without
 * overlap.  Then each kept extent is claimed (claims.c); a duplicate whose
 * fix is accepted is removed like a bad extent.
 *
 * Repairs:
 *   - a bad or doubly claimed extent is removed from the map (inline:
 *     the inline array is compacted; tree: the record is deleted through
 *     a cursor, which may free nodes);
 *   - a damaged tree (or a tree node claimed by an earlier inode) drops the
 *     whole map: the file keeps its name and attributes and becomes a hole;
 *     a damaged directory index empties the directory, whose entries then
 *     turn up as unreachable inodes in pass 4.
 * The inode's block count is not adjusted here: the caller compares it with
 * what the map holds afterwards (a separate problem).
 * If a fix is declined the extent stays and counts as held by the file;
 * blocks outside the data area are never claimed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsck.h"
#include "pfs_util.h"

/* An extent in CPU byte order. */
struct ext {
	uint64_t lblk;
	uint64_t pblk;
	uint32_t len;
	uint32_t flags;
	bool keep;
};

/* What a walk of one tree collected. */
struct map_walk {
	struct fsck *f;
	uint16_t type;
	uint64_t *nodes;
	size_t nnodes, ncap;
	struct ext *exts;
	size_t nexts, ecap;
	char why[96];           /* damage found by the callback */
	int err;                /* -ENOMEM from the callback */
};

static void walk_free(struct map_walk *w)
{
	free(w->nodes);
	free(w->exts);
	w->nodes = NULL;
	w->exts = NULL;
}

static int walk_add_ext(struct map_walk *w, const struct ext *e)
{
	if (w->nexts == w->ecap) {
		size_t ncap = w->ecap ? w->ecap * 2 : 64;
		struct ext *nv = realloc(w->exts, ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		w->exts = nv;
		w->ecap = ncap;
	}
	w->exts[w->nexts++] = *e;
	return 0;
}

static int walk_cb(void *arg, int level, uint64_t blkno,
		   const struct pfs_bt_node *node)
{
	struct map_walk *w = arg;
	const uint8_t *p = (const uint8_t *)node;

	if (!fsck_block_valid(w->f, blkno)) {
		snprintf(w->why, sizeof(w->why), "node %llu outside the data area",
			 (unsigned long long)blkno);
		return -EUCLEAN;
	}
	if (w->nnodes == w->ncap) {
		size_t ncap = w->ncap ? w->ncap * 2 : 16;
		uint64_t *nv = realloc(w->nodes, ncap * sizeof(*nv));
		if (!nv) {
			w->err = -ENOMEM;
			return -ENOMEM;
		}
		w->nodes = nv;
		w->ncap = ncap;
	}
	w->nodes[w->nnodes++] = blkno;
	if (level != 0 || w->type != PFS_BT_EXTENT)
		return 0;

	unsigned nrecs = le16_to_cpu(node->nrecs);
	for (unsigned i = 0; i < nrecs; i++) {
		le16 off_le, vlen_le;
		le64 key_le;
		struct pfs_bt_extent_val v;
		struct ext e;

		memcpy(&off_le, p + sizeof(struct pfs_bt_node) + 2 * i, 2);
		unsigned off = le16_to_cpu(off_le);
		memcpy(&key_le, p + off, 8);
		memcpy(&vlen_le, p + off + 8, 2);
		if (le16_to_cpu(vlen_le) != sizeof(v)) {
			snprintf(w->why, sizeof(w->why),
				 "extent record of %u bytes in node %llu",
				 le16_to_cpu(vlen_le), (unsigned long long)blkno);
			return -EUCLEAN;
		}
		memcpy(&v, p + off + sizeof(struct pfs_bt_rec_hdr), sizeof(v));
		e.lblk = le64_to_cpu(key_le);
		e.pblk = le64_to_cpu(v.pblk);
		e.len = le32_to_cpu(v.len);
		e.flags = le32_to_cpu(v.flags);
		e.keep = true;
		if (walk_add_ext(w, &e)) {
			w->err = -ENOMEM;
			return -ENOMEM;
		}
	}
	return 0;
}

/* Walk the tree at root; 0 (complete), -EUCLEAN (damaged: w->why may say
 * why) or an operational error. */
static int walk_tree(struct fsck *f, uint64_t ino, uint16_t type, uint64_t root,
		     struct map_walk *w)
{
	struct fsck_tree ft;
	int err;

	memset(w, 0, sizeof(*w));
	w->f = f;
	w->type = type;
	fsck_tree_init(f, &ft, ino, type, root);
	err = bt_walk(&ft.t, walk_cb, w);
	if (w->err)
		return fsck_fail(f, w->err, "walking the tree of inode %llu",
				 (unsigned long long)ino);
	if (err == -EIO || err == -ENOMEM)
		return fsck_fail(f, err, "walking the tree of inode %llu",
				 (unsigned long long)ino);
	/* Anything else (a node that fails its checks, a block that
	 * cannot be a node) is damage. */
	return err ? -EUCLEAN : 0;
}

static const char *ext_problem(struct fsck *f, const struct ext *e, char *buf,
			       size_t n)
{
	if (e->len == 0)
		return "zero length";
	if (e->len > PFS_EXT_MAX_LEN)
		return "too long";
	if (e->flags & ~PFS_EXT_UNWRITTEN) {
		snprintf(buf, n, "unknown flags 0x%x", e->flags);
		return buf;
	}
	if (e->lblk + e->len < e->lblk || e->lblk + e->len > FSCK_MAX_FILE_BLOCKS)
		return "beyond the largest file size";
	return fsck_run_problem(f, e->pblk, e->len);
}

/* Check the extents in order; a bad one whose fix is accepted gets
 * keep = false.  Then claim the good ones. */
static int check_exts(struct fsck *f, uint64_t ino, struct ext *v, size_t n)
{
	uint64_t prev_end = 0;
	bool have_prev = false;
	char buf[48];

	for (size_t i = 0; i < n; i++) {
		struct ext *e = &v[i];
		const char *why = ext_problem(f, e, buf, sizeof(buf));

		if (!why && have_prev && e->lblk < prev_end)
			why = "overlaps the previous extent";
		if (why) {
			if (fsck_problem(f, FSCK_FIX_ASK,
					 "inode %llu: extent at file block %llu "
					 "(device block %llu, %u blocks): %s",
					 (unsigned long long)ino,
					 (unsigned long long)e->lblk,
					 (unsigned long long)e->pblk, e->len, why)) {
				e->keep = false;
				continue;
			}
		}
		if (!have_prev || e->lblk + e->len > prev_end)
			prev_end = e->lblk + e->len;
		have_prev = true;
	}
	for (size_t i = 0; i < n; i++) {
		struct ext *e = &v[i];
		char tmp[48];

		if (!e->keep || ext_problem(f, e, tmp, sizeof(tmp)))
			continue;
		int r = fsck_claim(f, ino, e->pblk, e->len);
		if (r < 0)
			return r;
		if (r == 1)
			e->keep = false;
	}
	return 0;
}

/* Add the kept extents of v to mi. */
static void info_add(struct fsck_map_info *mi, const struct ext *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct ext *e = &v[i];

		if (!e->keep)
			continue;
		mi->blocks += e->len;
		if (e->lblk == 0 && e->len > 0)
			mi->maps_block0 = true;
		if (!(e->flags & PFS_EXT_UNWRITTEN) && e->lblk + e->len > mi->written_end &&
		    e->lblk + e->len <= FSCK_MAX_FILE_BLOCKS)
			mi->written_end = e->lblk + e->len;
	}
}

static bool area_zero(const uint8_t *p, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (p[i])
			return false;
	return true;
}

static int check_inline(struct fsck *f, uint64_t ino, struct pfs_inode *di,
			struct fsck_map_info *mi, bool *changed)
{
	struct ext v[PFS_INLINE_EXTENTS];
	uint32_t n = le32_to_cpu(di->n_inline);
	size_t used = n * sizeof(struct pfs_extent);
	int err;

	if (!area_zero(di->inline_area, used, PFS_INLINE_SIZE) &&
	    fsck_problem(f, FSCK_FIX_ASK,
			 "inode %llu: garbage in unused inline extent slots",
			 (unsigned long long)ino)) {
		memset(di->inline_area + used, 0, PFS_INLINE_SIZE - used);
		*changed = true;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct pfs_extent d;
		memcpy(&d, di->inline_area + i * sizeof(d), sizeof(d));
		v[i].lblk = le64_to_cpu(d.lblk);
		v[i].pblk = le64_to_cpu(d.pblk);
		v[i].len = le32_to_cpu(d.len);
		v[i].flags = le32_to_cpu(d.flags);
		v[i].keep = true;
	}
	err = check_exts(f, ino, v, n);
	if (err)
		return err;
	info_add(mi, v, n);

	uint32_t k = 0;
	for (uint32_t i = 0; i < n; i++)
		if (v[i].keep)
			k++;
	if (k == n)
		return 0;
	memset(di->inline_area, 0, PFS_INLINE_SIZE);
	k = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct pfs_extent d;
		if (!v[i].keep)
			continue;
		d.lblk = cpu_to_le64(v[i].lblk);
		d.pblk = cpu_to_le64(v[i].pblk);
		d.len = cpu_to_le32(v[i].len);
		d.flags = cpu_to_le32(v[i].flags);
		memcpy(di->inline_area + k * sizeof(d), &d, sizeof(d));
		k++;
	}
	di->n_inline = cpu_to_le32(k);
	*changed = true;
	return 0;
}

/* Delete the extent record e from the tree. */
static int tree_delete_ext(struct fsck *f, uint64_t ino, struct fsck_tree *ft,
			   const struct ext *e)
{
	struct bt_cursor c;
	int err = bt_seek_ge(&ft->t, e->lblk, &c);

	while (!err) {
		struct pfs_bt_extent_val v;
		const void *val;
		uint64_t key;
		uint16_t vlen;

		bt_get(&c, &key, &val, &vlen);
		if (key != e->lblk)
			break;
		if (vlen == sizeof(v)) {
			memcpy(&v, val, sizeof(v));
			if (le64_to_cpu(v.pblk) == e->pblk &&
			    le32_to_cpu(v.len) == e->len &&
			    le32_to_cpu(v.flags) == e->flags)
				return bt_delete(&c);
		}
		err = bt_next(&c);
	}
	bt_release(&c);
	if (err == 0 || err == -ENOENT)
		err = -EUCLEAN;
	return fsck_fail(f, err, "removing an extent of inode %llu",
			 (unsigned long long)ino);
}

/* Drop a whole map or index: the inode keeps no tree. */
static void drop_tree(struct fsck *f, uint64_t ino, struct map_walk *w,
		      size_t nclaimed)
{
	for (size_t i = 0; i < nclaimed; i++)
		fsck_unclaim(f, ino, w->nodes[i], 1);
}

/* Claim the nodes of a walked tree.  1 if a duplicate's fix means the tree
 * must go (its claimed nodes given back), 0, or -errno. */
static int claim_nodes(struct fsck *f, uint64_t ino, struct map_walk *w)
{
	for (size_t i = 0; i < w->nnodes; i++) {
		int r = fsck_claim(f, ino, w->nodes[i], 1);
		if (r < 0)
			return r;
		if (r == 1) {
			drop_tree(f, ino, w, i);
			return 1;
		}
	}
	return 0;
}

/* A damaged tree whose fix was declined: claim what can be claimed. */
static int claim_partial(struct fsck *f, uint64_t ino, struct map_walk *w,
			 struct fsck_map_info *mi)
{
	mi->blocks += w->nnodes;
	for (size_t i = 0; i < w->nnodes; i++) {
		int r = fsck_claim(f, ino, w->nodes[i], 1);
		if (r < 0)
			return r;
	}
	info_add(mi, w->exts, w->nexts);
	for (size_t i = 0; i < w->nexts; i++) {
		const struct ext *e = &w->exts[i];
		char tmp[48];

		if (ext_problem(f, e, tmp, sizeof(tmp)))
			continue;
		int r = fsck_claim(f, ino, e->pblk, e->len);
		if (r < 0)
			return r;
	}
	return 0;
}

static void set_inline_empty(struct pfs_inode *di)
{
	di->flags = cpu_to_le32(le32_to_cpu(di->flags) & ~PFS_IF_EXTENT_TREE);
	di->tree_root = 0;
	di->n_inline = 0;
	memset(di->inline_area, 0, PFS_INLINE_SIZE);
}

static int check_tree(struct fsck *f, uint64_t ino, struct pfs_inode *di,
		      struct fsck_map_info *mi, bool *changed)
{
	uint64_t root = le64_to_cpu(di->tree_root);
	struct map_walk w;
	struct fsck_tree ft;
	int err;

	if (!area_zero(di->inline_area, 0, PFS_INLINE_SIZE) &&
	    fsck_problem(f, FSCK_FIX_ASK,
			 "inode %llu: garbage in the inline area of a tree-mapped file",
			 (unsigned long long)ino)) {
		memset(di->inline_area, 0, PFS_INLINE_SIZE);
		*changed = true;
	}
	if (root == 0)
		return 0;
	err = walk_tree(f, ino, PFS_BT_EXTENT, root, &w);
	if (err == -EUCLEAN) {
		bool fix = w.why[0] ?
			fsck_problem(f, FSCK_FIX_ASK, "inode %llu: extent tree damaged (%s)",
				     (unsigned long long)ino, w.why) :
			fsck_problem(f, FSCK_FIX_ASK, "inode %llu: extent tree damaged",
				     (unsigned long long)ino);
		if (fix) {
			set_inline_empty(di);
			*changed = true;
			err = 0;
		} else {
			err = claim_partial(f, ino, &w, mi);
		}
		goto out_free;
	}
	if (err)
		goto out_free;

	err = claim_nodes(f, ino, &w);
	if (err < 0)
		goto out_free;
	if (err == 1) {
		set_inline_empty(di);
		*changed = true;
		err = 0;
		goto out_free;
	}
	err = check_exts(f, ino, w.exts, w.nexts);
	if (err)
		goto out_free;
	fsck_tree_init(f, &ft, ino, PFS_BT_EXTENT, root);
	for (size_t i = 0; i < w.nexts; i++) {
		if (w.exts[i].keep)
			continue;
		err = tree_delete_ext(f, ino, &ft, &w.exts[i]);
		if (err)
			goto out_free;
	}
	if (ft.t.root != root) {
		di->tree_root = cpu_to_le64(ft.t.root);
		*changed = true;
	}
	if (ft.dblocks != 0)
		*changed = true;
	info_add(mi, w.exts, w.nexts);
	mi->blocks += (uint64_t)((int64_t)w.nnodes + ft.dblocks);
out_free:
	walk_free(&w);
	return err;
}

int fsck_extents_check(struct fsck *f, uint64_t ino, struct pfs_inode *di,
		       struct fsck_map_info *mi, bool *changed)
{
	memset(mi, 0, sizeof(*mi));
	if (le32_to_cpu(di->flags) & PFS_IF_EXTENT_TREE)
		return check_tree(f, ino, di, mi, changed);
	return check_inline(f, ino, di, mi, changed);
}

int fsck_dir_index_check(struct fsck *f, uint64_t ino, struct pfs_inode *di,
			 uint64_t *counted, bool *changed, bool *bad)
{
	uint64_t root = le64_to_cpu(di->tree_root);
	struct fsck_map_info mi = { 0 };
	struct map_walk w;
	int err;

	*counted = 0;
	*bad = false;
	if (root == 0)
		return 0;
	err = walk_tree(f, ino, PFS_BT_DIR, root, &w);
	if (err == -EUCLEAN) {
		bool fix = w.why[0] ?
			fsck_problem(f, FSCK_FIX_ASK, "directory %llu: index tree damaged (%s)",
				     (unsigned long long)ino, w.why) :
			fsck_problem(f, FSCK_FIX_ASK, "directory %llu: index tree damaged",
				     (unsigned long long)ino);
		if (fix) {
			di->tree_root = 0;
			*changed = true;
			err = 0;
		} else {
			*bad = true;
			err = claim_partial(f, ino, &w, &mi);
			*counted = mi.blocks;
		}
		goto out_free;
	}
	if (err)
		goto out_free;
	err = claim_nodes(f, ino, &w);
	if (err == 1) {
		di->tree_root = 0;
		*changed = true;
		err = 0;
		goto out_free;
	}
	if (err == 0)
		*counted = w.nnodes;
out_free:
	walk_free(&w);
	return err;
}

int fsck_map_release(struct fsck *f, uint64_t ino, const struct pfs_inode *di)
{
	uint32_t mode = le32_to_cpu(di->mode);
	uint32_t flags = le32_to_cpu(di->flags);
	uint64_t xblk = le64_to_cpu(di->xattr_blk);
	struct map_walk w;
	char tmp[48];
	int err = 0;

	if (xblk && fsck_block_valid(f, xblk))
		fsck_unclaim(f, ino, xblk, 1);
	if (S_ISDIR(mode) || (flags & PFS_IF_EXTENT_TREE)) {
		uint64_t root = le64_to_cpu(di->tree_root);
		if (root == 0)
			return 0;
		err = walk_tree(f, ino, S_ISDIR(mode) ? PFS_BT_DIR : PFS_BT_EXTENT,
				root, &w);
		if (err && err != -EUCLEAN) {
			walk_free(&w);
			return err;
		}
		for (size_t i = 0; i < w.nnodes; i++)
			fsck_unclaim(f, ino, w.nodes[i], 1);
		for (size_t i = 0; i < w.nexts; i++)
			if (!ext_problem(f, &w.exts[i], tmp, sizeof(tmp)))
				fsck_unclaim(f, ino, w.exts[i].pblk, w.exts[i].len);
		walk_free(&w);
		return 0;
	}
	if (!S_ISREG(mode) && !S_ISLNK(mode))
		return 0;
	if (flags & PFS_IF_INLINE_DATA)
		return 0;
	uint32_t n = le32_to_cpu(di->n_inline);
	for (uint32_t i = 0; i < n && i < PFS_INLINE_EXTENTS; i++) {
		struct pfs_extent d;
		struct ext e;
		memcpy(&d, di->inline_area + i * sizeof(d), sizeof(d));
		e.lblk = le64_to_cpu(d.lblk);
		e.pblk = le64_to_cpu(d.pblk);
		e.len = le32_to_cpu(d.len);
		e.flags = le32_to_cpu(d.flags);
		if (!ext_problem(f, &e, tmp, sizeof(tmp)))
			fsck_unclaim(f, ino, e.pblk, e.len);
	}
	return 0;
}
