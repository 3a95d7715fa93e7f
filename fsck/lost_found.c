/*
 * lost_found.c -- new directories made by repairs (a lost root, the
 * /lost+found directory) and reconnecting unreachable inodes into
 * /lost+found under the name "#INO".
 *
 * Link counts: a new directory starts with nlink 2 (its entry and "."),
 * and adding a subdirectory to a directory raises the directory's nlink
 * by one, on disk and in the count pass 4 compares, so the repair itself
 * never shows up as a link-count problem.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fsck.h"
#include "pfs_util.h"

/* Is inode bit i of group g clear on disk (or the bitmap unusable)? */
static int inode_disk_free(struct fsck *f, uint32_t g, uint32_t i, bool *is_free)
{
	struct buf *b;
	int err;

	*is_free = true;
	if (!f->groups[g].ibm_ok || f->groups[g].ibm_rewrite)
		return 0;
	err = bcache_read(f->bc, fsck_group_first(f, g) + 2, BUF_META,
			  PFS_MAGIC_IBITMAP, &b);
	if (err == -EUCLEAN)
		return 0;
	if (err)
		return fsck_fail(f, err, "reading the inode bitmap of group %u", g);
	*is_free = !fsck_disk_bit(buf_data(b), i);
	buf_put(b);
	return 0;
}

/* A free inode number: clear in the computed usage and on disk, and a
 * zero inode slot. */
static int alloc_inode(struct fsck *f, uint64_t near, uint64_t *out)
{
	uint32_t g0 = near ? (uint32_t)((near - 1) / f->g.ipg) : 0;

	for (uint32_t n = 0; n < f->g.ngroups; n++) {
		uint32_t g = (g0 + n) % f->g.ngroups;
		uint64_t base = (uint64_t)g * f->g.ipg;
		uint64_t i = fsck_bmap_next_clear(&f->iused, base, base + f->g.ipg);

		for (; i < base + f->g.ipg;
		     i = fsck_bmap_next_clear(&f->iused, i + 1, base + f->g.ipg)) {
			struct pfs_inode *di;
			struct buf *b;
			bool is_free;
			int err = inode_disk_free(f, g, (uint32_t)(i - base), &is_free);
			if (err)
				return err;
			if (!is_free)
				continue;
			err = fsck_ino_read(f, i + 1, &b, &di);
			if (err)
				return err;
			is_free = le16_to_cpu(di->magic) == 0;
			buf_put(b);
			if (is_free) {
				*out = i + 1;
				return 0;
			}
		}
	}
	return fsck_fail(f, -ENOSPC, "no free inode for a new directory");
}

/* Raise the link count of directory dir by one (a new subdirectory). */
static int link_subdir(struct fsck *f, uint64_t dir)
{
	struct fsck_ino *r = fsck_itab_live(f, dir);
	struct pfs_inode *di;
	struct buf *b;
	int err = fsck_ino_read(f, dir, &b, &di);

	if (err)
		return err;
	di->nlink = cpu_to_le32(le32_to_cpu(di->nlink) + 1);
	fsck_ino_dirty(f, b, di);
	buf_put(b);
	if (r) {
		r->nlink++;
		r->counted++;
	}
	return 0;
}

int fsck_make_dir(struct fsck *f, uint64_t ino, uint64_t parent,
		  uint32_t perm, uint64_t *out)
{
	struct fsck_ino rec = { 0 }, *r;
	struct pfs_inode *di;
	struct timespec now;
	struct buf *b;
	uint64_t gen;
	int err;

	if (ino == 0) {
		err = alloc_inode(f, parent, &ino);
		if (err)
			return err;
	}
	err = fsck_ino_read(f, ino, &b, &di);
	if (err)
		return err;
	clock_gettime(CLOCK_REALTIME, &now);
	gen = le64_to_cpu(di->generation) + 1;          /* fs/inode.c I3 */
	memset(di, 0, sizeof(*di));
	di->magic = cpu_to_le16(PFS_MAGIC_INODE);
	di->version = cpu_to_le16(1);
	di->ino = cpu_to_le64(ino);
	di->mode = cpu_to_le32(S_IFDIR | (perm & 07777));
	di->nlink = cpu_to_le32(2);
	di->atime_sec = di->mtime_sec = di->ctime_sec = di->btime_sec =
		cpu_to_le64((uint64_t)now.tv_sec);
	di->atime_nsec = di->mtime_nsec = di->ctime_nsec = di->btime_nsec =
		cpu_to_le32((uint32_t)now.tv_nsec);
	di->generation = cpu_to_le64(gen);
	di->parent = cpu_to_le64(parent);
	fsck_ino_dirty(f, b, di);
	buf_put(b);

	fsck_bmap_set(&f->iused, ino - 1);
	rec.ino = ino;
	rec.mode = S_IFDIR | (perm & 07777);
	rec.nlink = 2;
	rec.counted = 2;
	rec.parent = parent;
	rec.found_parent = parent;
	rec.state = FI_REACHED;
	r = fsck_itab_find(f, ino);
	if (r)
		*r = rec;
	else if (!fsck_itab_add(f, &rec))
		return fsck_fail(f, -ENOMEM, "recording a new directory");
	*out = ino;
	return 0;
}

/* Find or make /lost+found. */
static int lost_found(struct fsck *f, uint64_t *out)
{
	static const char name[] = "lost+found";
	struct fsck_ino *r;
	uint64_t ino;
	int err;

	if (f->lost_found && fsck_itab_live(f, f->lost_found)) {
		*out = f->lost_found;
		return 0;
	}
	err = fsck_dir_has(f, PFS_ROOT_INO, name, sizeof(name) - 1, &ino);
	if (err < 0)
		return err;
	if (err == 1) {
		r = fsck_itab_live(f, ino);
		if (!r || !S_ISDIR(r->mode))
			return fsck_fail(f, -ENOTDIR, "/lost+found is not a directory");
		f->lost_found = ino;
		*out = ino;
		return 0;
	}
	err = fsck_make_dir(f, 0, PFS_ROOT_INO, 0700, &ino);
	if (err)
		return err;
	err = fsck_dir_add(f, PFS_ROOT_INO, name, sizeof(name) - 1, ino, fsck_dtype(S_IFDIR));
	if (err)
		return err;
	err = link_subdir(f, PFS_ROOT_INO);
	if (err)
		return err;
	fsck_info(f, "lost+found: created as inode %llu", (unsigned long long)ino);
	f->lost_found = ino;
	*out = ino;
	return 0;
}

int fsck_reconnect(struct fsck *f, uint64_t ino)
{
	struct fsck_ino *r;
	char name[48];
	uint64_t lf = 0;
	size_t len;
	int err = lost_found(f, &lf);

	if (err)
		return err;
	len = (size_t)snprintf(name, sizeof(name), "#%llu", (unsigned long long)ino);
	for (unsigned n = 1;; n++) {
		err = fsck_dir_has(f, lf, name, len, NULL);
		if (err < 0)
			return err;
		if (err == 0)
			break;
		len = (size_t)snprintf(name, sizeof(name), "#%llu.%u",
				       (unsigned long long)ino, n);
	}
	r = fsck_itab_live(f, ino);
	if (!r)
		return fsck_fail(f, -ENOENT, "reconnecting inode %llu",
				 (unsigned long long)ino);
	err = fsck_dir_add(f, lf, name, len, ino, fsck_dtype(r->mode));
	if (err)
		return err;
	if (!S_ISDIR(r->mode))
		return 0;

	struct pfs_inode *di;
	struct buf *b;
	err = fsck_ino_read(f, ino, &b, &di);
	if (err)
		return err;
	di->parent = cpu_to_le64(lf);
	fsck_ino_dirty(f, b, di);
	buf_put(b);
	r = fsck_itab_live(f, ino);
	r->parent = lf;
	r->found_parent = lf;
	return link_subdir(f, lf);
}
