/*
 * pass4_dirs.c -- pass 4: the directory tree and link counts.
 *
 * Design notes
 *
 * Order of work:
 *   1. orphan lists (orphans.c);
 *   2. the root: inode 1 must be a directory (else, if repaired, a new
 *      empty root is made and everything turns up unreachable below);
 *   3. the walk from the root, depth first.  Each directory's entries are
 *      copied out of its index and examined in name order (so the output
 *      does not depend on the volume's hash seed):
 *        - a malformed record (fsck_dent_problem) is removed;
 *        - a second entry with the same name is removed;
 *        - a key that is not dir_hash(name) is re-keyed;
 *        - an entry to an invalid or free inode is removed (dangling);
 *        - a type that is not the inode's is corrected;
 *        - a second entry for a directory (a directory has exactly one,
 *          and the root none) is removed;
 *      and the links are counted: an entry counts one for its target; a
 *      directory counts 2 ("." and its entry) plus one per subdirectory.
 *      A directory's fixes are applied after all its entries are seen,
 *      seeking each record again (dirent.c);
 *   4. inodes in use that the walk did not reach: with nlink 0 they are
 *      orphans (left to orphans.c) or unattached (cleared); otherwise they
 *      are reconnected into /lost+found.  For an unreachable directory the
 *      topmost unreachable ancestor (by parent fields) is reconnected and
 *      its subtree walked, so its descendants are not reported one by one.
 *      A declined reconnection is counted as if it had been made, so it
 *      does not also show up as a wrong link count;
 *   5. each directory's parent field against the directory holding it;
 *   6. link counts against what was counted;
 *   7. orphans of repaired slots (orphans.c).
 * Inodes marked FI_BAD (damaged, clearing declined) count as in use for
 * entries and are otherwise left alone.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsck.h"
#include "pfs_util.h"

/* Room for a name shown with every byte escaped as \xHH. */
#define NAME_SHOWN (PFS_NAME_MAX * 4 + 1)

enum dent_fix { FIX_NONE = 0, FIX_REMOVE, FIX_REKEY, FIX_TYPE };

struct dir_stack {
	uint64_t *v;
	size_t n, cap;
};

/* An entry's name for messages: printable bytes as they are. */
static const char *show_name(const char *name, size_t len, char *out)
{
	char *p = out;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (isprint(c) && c != '\\' && c != '\'')
			*p++ = (char)c;
		else
			p += sprintf(p, "\\x%02x", c);
	}
	*p = '\0';
	return out;
}

static int push(struct fsck *f, struct dir_stack *st, uint64_t ino)
{
	if (st->n == st->cap) {
		size_t ncap = st->cap ? st->cap * 2 : 256;
		uint64_t *nv = realloc(st->v, ncap * sizeof(*nv));
		if (!nv)
			return fsck_fail(f, -ENOMEM, "walking the directories");
		st->v = nv;
		st->cap = ncap;
	}
	st->v[st->n++] = ino;
	return 0;
}

/* Order of entry indexes: by name, malformed entries last. */
static int cmp_dent(const void *a, const void *b, void *arg)
{
	const struct fsck_dents *d = arg;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	const uint8_t *vi = fsck_dent_val(d, i);
	const uint8_t *vj = fsck_dent_val(d, j);
	bool bi = fsck_dent_problem(vi, d->v[i].vlen) != NULL;
	bool bj = fsck_dent_problem(vj, d->v[j].vlen) != NULL;

	if (bi != bj)
		return bi ? 1 : -1;
	if (bi)
		return (i > j) - (i < j);
	size_t li = fsck_dent_name_len(vi), lj = fsck_dent_name_len(vj);
	int c = memcmp(fsck_dent_name(vi), fsck_dent_name(vj), PFS_MIN(li, lj));
	if (c)
		return c;
	if (li != lj)
		return li < lj ? -1 : 1;
	return (i > j) - (i < j);
}

/* Decide about one well-formed entry of dir; count its link. */
static int check_entry(struct fsck *f, struct dir_stack *st, uint64_t dir,
		       const struct fsck_dents *d, size_t i, bool dup,
		       enum dent_fix *fix, uint8_t *ntype)
{
	const uint8_t *val = fsck_dent_val(d, i);
	const char *name = fsck_dent_name(val);
	size_t len = fsck_dent_name_len(val);
	uint64_t target = fsck_dent_ino(val);
	char shown[NAME_SHOWN];
	struct fsck_ino *tr, *dr;

	show_name(name, len, shown);
	if (dup && fsck_problem(f, FSCK_FIX_ASK, "directory %llu: duplicate entry '%s'",
				(unsigned long long)dir, shown)) {
		*fix = FIX_REMOVE;
		return 0;
	}
	if (d->v[i].key != fsck_dir_hash(f, name, len) &&
	    fsck_problem(f, FSCK_FIX_ASK, "directory %llu: entry '%s' has a wrong hash key",
			 (unsigned long long)dir, shown))
		*fix = FIX_REKEY;
	if (!fsck_ino_valid(f, target)) {
		if (fsck_problem(f, FSCK_FIX_ASK,
				 "directory %llu: entry '%s' points to invalid inode %llu",
				 (unsigned long long)dir, shown, (unsigned long long)target))
			*fix = FIX_REMOVE;
		return 0;
	}
	tr = fsck_itab_live(f, target);
	if (!tr) {
		if (fsck_problem(f, FSCK_FIX_ASK,
				 "directory %llu: entry '%s' points to free inode %llu",
				 (unsigned long long)dir, shown, (unsigned long long)target))
			*fix = FIX_REMOVE;
		return 0;
	}
	if (tr->state & FI_BAD) {
		tr->counted++;
		tr->state |= FI_REACHED;
		return 0;
	}
	uint8_t type = fsck_dtype(tr->mode);
	if (fsck_dent_type(val) != type &&
	    fsck_problem(f, FSCK_FIX_ASK,
			 "directory %llu: entry '%s' has type %u, inode %llu has type %u",
			 (unsigned long long)dir, shown, fsck_dent_type(val),
			 (unsigned long long)target, type)) {
		*ntype = type;
		if (*fix == FIX_NONE)
			*fix = FIX_TYPE;
	}
	if (!S_ISDIR(tr->mode)) {
		tr->counted++;
		tr->state |= FI_REACHED;
		return 0;
	}
	if (target == PFS_ROOT_INO || (tr->state & FI_REACHED)) {
		if (fsck_problem(f, FSCK_FIX_ASK,
				 "directory %llu: entry '%s' is a second link to "
				 "directory %llu", (unsigned long long)dir, shown,
				 (unsigned long long)target))
			*fix = FIX_REMOVE;
		return 0;
	}
	tr->state |= FI_REACHED;
	tr->found_parent = dir;
	tr->counted += 2;
	dr = fsck_itab_live(f, dir);
	if (dr)
		dr->counted++;
	if (dir == PFS_ROOT_INO && len == 10 && memcmp(name, "lost+found", 10) == 0)
		f->lost_found = target;
	return push(f, st, target);
}

/* Apply the fixes decided for dir's entries. */
static int apply_fixes(struct fsck *f, uint64_t dir, uint64_t root,
		       const struct fsck_dents *d, const enum dent_fix *fix,
		       const uint8_t *ntype)
{
	struct fsck_tree ft;
	bool any = false;
	int err = 0;

	fsck_tree_init(f, &ft, dir, PFS_BT_DIR, root);
	for (size_t i = 0; i < d->n && !err; i++) {
		const uint8_t *val = fsck_dent_val(d, i);
		uint16_t vlen = d->v[i].vlen;
		uint8_t nval[sizeof(struct pfs_dirent) + PFS_NAME_MAX];

		if (fix[i] == FIX_NONE)
			continue;
		any = true;
		switch (fix[i]) {
		case FIX_REMOVE:
			err = fsck_dir_delete(&ft, d->v[i].key, val, vlen);
			break;
		case FIX_TYPE:
			memcpy(nval, val, vlen);
			nval[offsetof(struct pfs_dirent, type)] = ntype[i];
			err = fsck_dir_update(&ft, d->v[i].key, val, nval, vlen);
			break;
		case FIX_REKEY:
			err = fsck_dir_delete(&ft, d->v[i].key, val, vlen);
			if (!err)
				err = fsck_dir_insert(f, &ft, fsck_dent_name(val),
						      fsck_dent_name_len(val),
						      fsck_dent_ino(val), ntype[i]);
			break;
		case FIX_NONE:
			break;
		}
	}
	if (!err && any)
		err = fsck_dir_sync(f, dir, &ft);
	return err;
}

static int visit_dir(struct fsck *f, struct dir_stack *st, uint64_t dir)
{
	struct fsck_dents d;
	struct pfs_inode *di;
	struct buf *b;
	size_t *order = NULL;
	enum dent_fix *fix = NULL;
	uint8_t *ntype = NULL;
	uint64_t root;
	int err = fsck_ino_read(f, dir, &b, &di);

	if (err)
		return err;
	root = le64_to_cpu(di->tree_root);
	buf_put(b);
	err = fsck_dents_load(f, dir, root, &d);
	if (err == -EUCLEAN) {
		struct fsck_ino *r = fsck_itab_live(f, dir);
		if (r && !(r->state & FI_INDEX_BAD))
			fsck_problem(f, FSCK_FIX_NONE, "directory %llu: index unreadable",
				     (unsigned long long)dir);
		return 0;
	}
	if (err)
		return err;
	if (d.n == 0)
		goto out_free;
	order = malloc(d.n * sizeof(*order));
	fix = calloc(d.n, sizeof(*fix));
	ntype = calloc(d.n, sizeof(*ntype));
	if (!order || !fix || !ntype) {
		err = fsck_fail(f, -ENOMEM, "checking directory %llu",
				(unsigned long long)dir);
		goto out_free;
	}
	for (size_t i = 0; i < d.n; i++) {
		order[i] = i;
		if (!fsck_dent_problem(fsck_dent_val(&d, i), d.v[i].vlen))
			ntype[i] = fsck_dent_type(fsck_dent_val(&d, i));
	}
	qsort_r(order, d.n, sizeof(*order), cmp_dent, &d);

	for (size_t k = 0; k < d.n && !err; k++) {
		size_t i = order[k];
		const uint8_t *val = fsck_dent_val(&d, i);
		const char *why = fsck_dent_problem(val, d.v[i].vlen);
		bool dup = false;

		if (why) {
			if (fsck_problem(f, FSCK_FIX_ASK, "directory %llu: malformed entry (%s)",
					 (unsigned long long)dir, why))
				fix[i] = FIX_REMOVE;
			continue;
		}
		if (k > 0) {
			size_t j = order[k - 1];
			const uint8_t *pv = fsck_dent_val(&d, j);
			dup = !fsck_dent_problem(pv, d.v[j].vlen) &&
			      fsck_dent_name_len(pv) == fsck_dent_name_len(val) &&
			      memcmp(fsck_dent_name(pv), fsck_dent_name(val),
				     fsck_dent_name_len(val)) == 0;
		}
		err = check_entry(f, st, dir, &d, i, dup, &fix[i], &ntype[i]);
	}
	if (!err)
		err = apply_fixes(f, dir, root, &d, fix, ntype);
out_free:
	free(order);
	free(fix);
	free(ntype);
	fsck_dents_free(&d);
	return err;
}

/* Walk the tree below directory start (already counted as reached). */
static int walk_from(struct fsck *f, uint64_t start)
{
	struct dir_stack st = { 0 };
	int err = push(f, &st, start);

	while (!err && st.n > 0) {
		uint64_t dir = st.v[--st.n];
		err = visit_dir(f, &st, dir);
	}
	free(st.v);
	return err;
}

static int check_root(struct fsck *f)
{
	struct fsck_ino *r = fsck_itab_find(f, PFS_ROOT_INO);
	uint64_t ino;
	int err;

	if (r && !(r->state & (FI_CLEARED | FI_BAD)) && S_ISDIR(r->mode)) {
		r->state |= FI_REACHED;
		r->counted = 2;
		r->found_parent = PFS_ROOT_INO;
		return walk_from(f, PFS_ROOT_INO);
	}
	bool gone = !r || (r->state & FI_CLEARED);
	if (!fsck_problem(f, FSCK_FIX_ASK, gone ? "root inode: missing" :
			  "root inode: not a directory"))
		return 0;
	if (!gone) {
		err = fsck_ino_free(f, PFS_ROOT_INO);
		if (err)
			return err;
	}
	return fsck_make_dir(f, PFS_ROOT_INO, PFS_ROOT_INO, 0755, &ino);
}

/* Can inodes be linked into the tree at all? */
static bool root_usable(struct fsck *f)
{
	struct fsck_ino *r = fsck_itab_live(f, PFS_ROOT_INO);

	return r && !(r->state & FI_BAD) && S_ISDIR(r->mode) && (r->state & FI_REACHED);
}

/* The topmost unreachable directory above r, by parent fields. */
static uint64_t find_top(struct fsck *f, uint64_t ino)
{
	uint64_t cur = ino;

	for (size_t steps = 0; steps < f->itab.n; steps++) {
		struct fsck_ino *r = fsck_itab_live(f, cur);
		struct fsck_ino *p = r ? fsck_itab_live(f, r->parent) : NULL;

		if (!p || p->ino == cur || p->ino == ino || !S_ISDIR(p->mode) ||
		    (p->state & (FI_REACHED | FI_BAD)) || p->nlink == 0)
			break;
		cur = p->ino;
	}
	return cur;
}

static int check_unreachable(struct fsck *f)
{
	int err = 0;

	for (size_t i = 0; i < f->itab.n && !err; i++) {
		struct fsck_ino *r = &f->itab.v[i];
		uint64_t ino = r->ino;

		if (r->state & (FI_CLEARED | FI_BAD | FI_REACHED))
			continue;
		if (r->nlink == 0) {
			if (r->state & FI_ON_LIST)
				continue;
			if (fsck_problem(f, FSCK_FIX_ASK, "inode %llu: unattached with nlink 0",
					 (unsigned long long)ino))
				err = fsck_ino_free(f, ino);
			continue;
		}
		if (S_ISDIR(r->mode))
			ino = find_top(f, ino);
		r = fsck_itab_live(f, ino);
		bool fix = fsck_problem(f, root_usable(f) ? FSCK_FIX_ASK : FSCK_FIX_NONE,
					"inode %llu: unreachable (nlink %u)",
					(unsigned long long)ino, r->nlink);
		if (fix) {
			err = fsck_reconnect(f, ino);
			if (err)
				break;
		}
		r = fsck_itab_live(f, ino);
		r->state |= FI_REACHED;
		if (!S_ISDIR(r->mode)) {
			r->counted++;
			continue;
		}
		r->counted += 2;
		if (!fix)
			r->found_parent = r->parent;
		err = walk_from(f, ino);
		/* A record inserted meanwhile (a new /lost+found) shifts
		 * the records after it by one: the loop then sees a record
		 * it has passed (reached now) again, and skips none. */
	}
	return err;
}

static int fix_parents(struct fsck *f)
{
	for (size_t i = 0; i < f->itab.n; i++) {
		struct fsck_ino *r = &f->itab.v[i];
		struct pfs_inode *di;
		struct buf *b;

		if ((r->state & (FI_CLEARED | FI_BAD)) || !(r->state & FI_REACHED) ||
		    !S_ISDIR(r->mode) || r->parent == r->found_parent)
			continue;
		if (!fsck_problem(f, FSCK_FIX_ASK,
				  "directory %llu: parent is %llu, found in directory %llu",
				  (unsigned long long)r->ino, (unsigned long long)r->parent,
				  (unsigned long long)r->found_parent))
			continue;
		int err = fsck_ino_read(f, r->ino, &b, &di);
		if (err)
			return err;
		di->parent = cpu_to_le64(r->found_parent);
		fsck_ino_dirty(f, b, di);
		buf_put(b);
		r->parent = r->found_parent;
	}
	return 0;
}

static int fix_links(struct fsck *f)
{
	for (size_t i = 0; i < f->itab.n; i++) {
		struct fsck_ino *r = &f->itab.v[i];
		struct pfs_inode *di;
		struct buf *b;

		if ((r->state & (FI_CLEARED | FI_BAD)) || !(r->state & FI_REACHED) ||
		    r->nlink == r->counted)
			continue;
		if (!fsck_problem(f, FSCK_FIX_ASK, "inode %llu: nlink is %u, counted %u",
				  (unsigned long long)r->ino, r->nlink, r->counted))
			continue;
		int err = fsck_ino_read(f, r->ino, &b, &di);
		if (err)
			return err;
		di->nlink = cpu_to_le32(r->counted);
		fsck_ino_dirty(f, b, di);
		buf_put(b);
		r->nlink = r->counted;
	}
	return 0;
}

int fsck_pass4_dirs(struct fsck *f)
{
	int err = fsck_orphans_scan(f);

	if (!err)
		err = check_root(f);
	fsck_progress(f, 4, 1, 3);
	if (!err)
		err = check_unreachable(f);
	fsck_progress(f, 4, 2, 3);
	if (!err)
		err = fix_parents(f);
	if (!err)
		err = fix_links(f);
	if (!err)
		err = fsck_orphans_finish(f);
	fsck_progress(f, 4, 3, 3);
	fsck_progress_end(f);
	return err;
}
