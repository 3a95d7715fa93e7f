/*
 * ops_name.c -- FUSE entry points for the namespace and for attributes:
 * lookup, forget, getattr, setattr, mknod, mkdir, symlink, link, unlink,
 * rmdir, rename, readlink, statfs.
 *
 * Reference rules (see inode.c): every entry reply (lookup, mknod, mkdir,
 * symlink, link, create) adds one to the inode's nlookup; forget takes
 * them back.  An unlinked inode with lookups or opens left goes on the
 * orphan list and is deleted when the last reference goes (inode.c I2).
 */
#include <errno.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <dirent.h>
#include <linux/fs.h>

#include "ops.h"
#include "pfs_util.h"

#define PFS_LINK_MAX 65000u

struct pfs_fs *ops_enter(fuse_req_t req)
{
	struct pfs_fs *fs = fuse_req_userdata(req);
	pthread_mutex_lock(&fs->lock);
	fs->op_changed = false;                         /* glock.c G3 */
	return fs;
}

bool ops_retry(struct pfs_fs *fs, int *err)
{
	uint32_t groups[8];
	size_t ng = alloc_foreign_pending(fs, groups, 8);
	pthread_mutex_unlock(&fs->lock);
	if (*err == -ERESTART) {
		int e = gl_op_wait(fs);
		if (!e)
			return true;
		*err = e;
		return false;
	}
	gl_op_done(fs);
	/* Frees deferred into groups a peer holds: ask for those groups so
	 * the next commit applies them (alloc.c).  Bounded: a busy group
	 * is asked again after a later request. */
	for (size_t i = 0; i < ng; i++)
		gl_acquire(fs, gl_res_group(groups[i]), COORD_EX, 100);
	return false;
}

void ops_leave(struct pfs_fs *fs)
{
	int err = 0;
	ops_retry(fs, &err);
}

void ops_reply_err(fuse_req_t req, int err)
{
	fuse_reply_err(req, err < 0 ? -err : err);
}

uint8_t ops_dtype(uint32_t mode)
{
	return (uint8_t)IFTODT(mode);
}

void ops_fill_attr(const struct pfs_fs *fs, const struct inode *ip, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ip->ino;
	st->st_mode = ip->mode;
	st->st_nlink = ip->nlink;
	st->st_uid = ip->uid;
	st->st_gid = ip->gid;
	st->st_rdev = ip->rdev;
	st->st_size = (off_t)ip->size;
	st->st_blksize = PFS_BLOCK_SIZE;
	st->st_blocks = (blkcnt_t)(ip->blocks * (PFS_BLOCK_SIZE / 512));
	st->st_atim = ip->atime;
	st->st_mtim = ip->mtime;
	st->st_ctim = ip->ctime;
}

void ops_fill_entry(const struct pfs_fs *fs, struct inode *ip, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = ip->ino;
	e->generation = ip->generation;
	ops_fill_attr(fs, ip, &e->attr);
	e->attr_timeout = fs->opts.attr_timeout;
	e->entry_timeout = fs->opts.attr_timeout;
}

static int name_check(const char *name)
{
	size_t len = strlen(name);
	if (len == 0)
		return -ENOENT;
	if (len > PFS_NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* Get a directory inode: -ENOTDIR if it is not one. */
static int get_dir(struct pfs_fs *fs, fuse_ino_t ino, struct inode **out)
{
	int err = inode_get(fs, ino, out);
	if (err)
		return err;
	if (!S_ISDIR((*out)->mode)) {
		inode_put(fs, *out);
		*out = NULL;
		return -ENOTDIR;
	}
	return 0;
}

/* The same, with the directory's cluster lock in EX (to change it). */
static int get_dir_ex(struct pfs_fs *fs, fuse_ino_t ino, struct inode **out)
{
	int err = gl_need_inode(fs, ino, COORD_EX);
	return err ? err : get_dir(fs, ino, out);
}

/* Look up name in dp and get its inode (ex: its lock in EX). */
static int get_child_mode(struct pfs_fs *fs, struct inode *dp, const char *name,
			  struct inode **out, bool ex)
{
	uint64_t ino;
	uint8_t type;
	int err = name_check(name);
	if (err)
		return err;
	err = dir_lookup(fs, dp, name, strlen(name), &ino, &type);
	if (err)
		return err;
	err = inode_get_named(fs, ino, ex, out);
	if (err == -ENOENT || err == -ESTALE) {
		pfs_err("directory %llu: entry '%s' points to free inode %llu",
			(unsigned long long)dp->ino, name, (unsigned long long)ino);
		err = -EUCLEAN;
	}
	return err;
}

static int get_child(struct pfs_fs *fs, struct inode *dp, const char *name,
		     struct inode **out)
{
	return get_child_mode(fs, dp, name, out, false);
}

void ops_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
again:;
	struct pfs_fs *fs = ops_enter(req);
	struct inode *dp = NULL, *ip = NULL;
	struct fuse_entry_param e;
	int err = fs_check_fenced(fs);

	if (!err)
		err = get_dir(fs, parent, &dp);
	if (!err)
		err = get_child(fs, dp, name, &ip);
	if (!err) {
		ip->nlookup++;
		ops_fill_entry(fs, ip, &e);
		gl_note_name(fs, dp, name);
	}
	inode_put(fs, ip);
	inode_put(fs, dp);
	OPS_LEAVE_OR_RETRY(fs, err, again);
	if (err)
		ops_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

/* -ERESTART: run again (the lookups were not dropped yet). */
static int forget_one(struct pfs_fs *fs, uint64_t ino, uint64_t n)
{
	struct inode *ip = inode_peek(fs, ino);
	if (!ip)
		return 0;
	if (ip->nlookup <= n && ip->nopen == 0 && ip->ref == 0) {
		int err;                        /* the forget may delete it */
		ip = inode_ready_to_delete(fs, ino, &err);
		if (!ip)
			return err;
	}
	ip->ref++;
	ip->nlookup -= PFS_MIN(n, ip->nlookup);
	bool changes = ip->nlookup == 0 && ip->nopen == 0 && ip->nlink == 0 && !ip->gone;
	if (changes && !fs->fenced) {
		tx_op_begin(fs);
		inode_put(fs, ip);                /* deletes (inode.c I2) */
		tx_op_end(fs);
	} else {
		inode_put(fs, ip);
	}
	return 0;
}

void ops_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
again:;
	struct pfs_fs *fs = ops_enter(req);
	int err = forget_one(fs, ino, nlookup);
	OPS_LEAVE_OR_RETRY(fs, err, again);
	fuse_reply_none(req);
}

void ops_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	size_t i = 0;
again:;
	struct pfs_fs *fs = ops_enter(req);
	int err = 0;
	for (; i < count && !err; i++) {
		err = forget_one(fs, forgets[i].ino, forgets[i].nlookup);
		if (err)
			i--;                    /* this one runs again */
	}
	OPS_LEAVE_OR_RETRY(fs, err, again);
	fuse_reply_none(req);
}

void ops_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
again:;
	struct pfs_fs *fs = ops_enter(req);
	struct inode *ip = NULL;
	struct stat st;
	int err = fs_check_fenced(fs);
	if (!err)
		err = inode_get(fs, ino, &ip);
	if (!err)
		ops_fill_attr(fs, ip, &st);
	inode_put(fs, ip);
	OPS_LEAVE_OR_RETRY(fs, err, again);
	if (err)
		ops_reply_err(req, err);
	else
		fuse_reply_attr(req, &st, fs->opts.attr_timeout);
}

void ops_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		 struct fuse_file_info *fi)
{
again:;
	struct pfs_fs *fs = ops_enter(req);
	struct inode *ip = NULL;
	struct stat st;
	int err = fs_check_fenced(fs);

	if (!err)
		err = inode_get_ex(fs, ino, &ip);
	if (!err)
		err = alloc_reserve(fs, 8, 0);          /* an ACL block, tree splits */
	if (err)
		goto out;
	tx_op_begin(fs);
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (S_ISDIR(ip->mode))
			err = -EISDIR;
		else if (!S_ISREG(ip->mode))
			err = -EINVAL;
		else if (attr->st_size < 0)
			err = -EINVAL;
		else
			err = inode_truncate(fs, ip, (uint64_t)attr->st_size);
		if (err)
			goto out_end;
		inode_touch(ip, false, true, true);
	}
	if (to_set & FUSE_SET_ATTR_MODE) {
		ip->mode = (ip->mode & S_IFMT) | (attr->st_mode & 07777);
		err = acl_chmod(fs, ip);
		if (err)
			goto out_end;
	}
	if (to_set & FUSE_SET_ATTR_UID)
		ip->uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		ip->gid = attr->st_gid;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		inode_touch(ip, true, false, false);
	else if (to_set & FUSE_SET_ATTR_ATIME)
		ip->atime = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		inode_touch(ip, false, true, false);
	else if (to_set & FUSE_SET_ATTR_MTIME)
		ip->mtime = attr->st_mtim;
	if (to_set & FUSE_SET_ATTR_CTIME)
		ip->ctime = attr->st_ctim;
	else
		inode_touch(ip, false, false, true);
	err = inode_write(fs, ip);
	if (!err)
		ops_fill_attr(fs, ip, &st);
out_end:
	tx_op_end(fs);
out:
	inode_put(fs, ip);
	OPS_LEAVE_OR_RETRY(fs, err, again);
	if (err)
		ops_reply_err(req, err);
	else
		fuse_reply_attr(req, &st, fs->opts.attr_timeout);
}

void ops_readlink(fuse_req_t req, fuse_ino_t ino)
{
again:;
	struct pfs_fs *fs = ops_enter(req);
	struct inode *ip = NULL;
	char buf[PFS_SYMLINK_MAX + 1];
	int err = fs_check_fenced(fs);

	if (!err)
		err = inode_get(fs, ino, &ip);
	if (!err && !S_ISLNK(ip->mode))
		err = -EINVAL;
	if (!err && ip->size > PFS_SYMLINK_MAX) {
		pfs_err("inode %llu: symlink of %llu bytes", (unsigned long long)ino,
			(unsigned long long)ip->size);
		err = -EUCLEAN;
	}
	if (!err) {
		if (ip->flags & PFS_IF_INLINE_DATA) {
			if (ip->size > PFS_INLINE_SIZE)
				err = -EUCLEAN;
			else
				memcpy(buf, ip->inline_area, ip->size);
		} else {
			ssize_t n = file_read(fs, ip, buf, ip->size, 0);
			if (n < 0)
				err = (int)n;
			else if ((uint64_t)n != ip->size)
				err = -EUCLEAN;
		}
		buf[ip->size] = '\0';
	}
	inode_put(fs, ip);
	OPS_LEAVE_OR_RETRY(fs, err, again);
	if (err)
		ops_reply_err(req, err);
	else
		fuse_reply_readlink(req, buf);
}

int ops_make_node(struct pfs_fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name,
		  mode_t mode, dev_t rdev, const char *link, struct inode **out)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct inode *dp = NULL, *ip = NULL;
	uint64_t ino;
	uint8_t type;
	int err = fs_check_fenced(fs);

	if (!err)
		err = name_check(name);
	if (!err)
		err = get_dir_ex(fs, parent, &dp);
	if (!err)       /* the inode, a directory block, tree splits, a symlink */
		err = alloc_reserve(fs, 16, 1);
	if (err)
		goto out;
	if (dp->nlink == 0) {
		err = -ENOENT;                   /* a removed directory */
		goto out;
	}
	err = dir_lookup(fs, dp, name, strlen(name), &ino, &type);
	if (err != -ENOENT) {
		if (!err)
			err = -EEXIST;
		goto out;
	}
	if (S_ISDIR(mode) && dp->nlink >= PFS_LINK_MAX) {
		err = -EMLINK;
		goto out;
	}
	if (link && strlen(link) > PFS_SYMLINK_MAX) {
		err = -ENAMETOOLONG;
		goto out;
	}
	err = inode_new(fs, dp, mode, ctx->uid, ctx->gid, (uint32_t)rdev, &ip);
	if (err)
		goto out;
	if (!S_ISLNK(mode)) {
		err = acl_inherit(fs, dp, ip, ctx->umask);
		if (err)
			goto out_free_inode;
	}
	if (link) {
		size_t len = strlen(link);
		if (len <= PFS_INLINE_SIZE) {
			memcpy(ip->inline_area, link, len);
			ip->flags |= PFS_IF_INLINE_DATA;
			ip->size = len;
			err = inode_write(fs, ip);
		} else {
			ssize_t n = file_write(fs, ip, link, len, 0);
			err = n < 0 ? (int)n : 0;
		}
		if (err)
			goto out_free_inode;
	}
	err = dir_add(fs, dp, name, strlen(name), ip->ino, ops_dtype(ip->mode));
	if (err)
		goto out_free_inode;
	if (S_ISDIR(mode))
		dp->nlink++;
	inode_touch(dp, false, true, true);
	err = inode_write(fs, dp);
	if (err)
		goto out_free_inode;     /* fenced or corrupt: the tx never commits */
	ip->nlookup++;
	gl_note_name(fs, dp, name);
	*out = ip;
	inode_put(fs, dp);
	return 0;

out_free_inode:
	ip->nlink = 0;
	inode_put(fs, ip);
out:
	inode_put(fs, dp);
	return err;
}

static void reply_new_node(fuse_req_t req, fuse_ino_t parent, const char *name,
			   mode_t mode, dev_t rdev, const char *link)
{
again:;
	struct pfs_fs *fs = ops_enter(req);
	struct inode *ip = NULL;
	struct fuse_entry_param e;
	tx_op_begin(fs);
	int err = ops_make_node(fs, req, parent, name, mode, rdev, link, &ip);
	if (!err) {
		ops_fill_entry(fs, ip, &e);
		inode_put(fs, ip);
	}
	tx_op_end(fs);
	OPS_LEAVE_OR_RETRY(fs, err, again);
	if (err)
		ops_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

void ops_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	switch (mode & S_IFMT) {
	case S_IFREG: case S_IFIFO: case S_IFSOCK: case S_IFCHR: case S_IFBLK:
		break;
	default:
		ops_reply_err(req, -EINVAL);
		return;
	}
	reply_new_node(req, parent, name, mode, rdev, NULL);
}

void ops_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	reply_new_node(req, parent, name, S_IFDIR | (mode & 07777), 0, NULL);
}

void ops_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	reply_new_node(req, parent, name, S_IFLNK | 0777, 0, link);
}

/* Drop one link of ip (already removed from its directory). */
static int drop_link(struct pfs_fs *fs, struct inode *ip)
{
	if (S_ISDIR(ip->mode))
		ip->nlink = 0;
	else if (ip->nlink > 0)
		ip->nlink--;
	inode_touch(ip, false, false, true);
	if (ip->nlink == 0 && (ip->nlookup > 0 || ip->nopen > 0)) {
		int err = orphan_add(fs, ip);             /* inode.c I2 */
		if (err)
			return err;
	}
	return inode_write(fs, ip);
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, bool dir)
{
again:;
	struct pfs_fs *fs = ops_enter(req);
	struct inode *dp = NULL, *ip = NULL;
	int err = fs_check_fenced(fs);

	tx_op_begin(fs);
	if (!err)
		err = get_dir_ex(fs, parent, &dp);
	if (!err)
		err = get_child_mode(fs, dp, name, &ip, true);
	if (!err)
		err = alloc_reserve(fs, 8, 0);          /* tree merges may split */
	if (err)
		goto out;
	if (dir && !S_ISDIR(ip->mode)) {
		err = -ENOTDIR;
		goto out;
	}
	if (!dir && S_ISDIR(ip->mode)) {
		err = -EISDIR;
		goto out;
	}
	if (dir) {
		err = dir_is_empty(fs, ip);
		if (err < 0)
			goto out;
		if (err == 0) {
			err = -ENOTEMPTY;
			goto out;
		}
	}
	err = dir_remove(fs, dp, name, strlen(name));
	if (err)
		goto out;
	if (dir)
		dp->nlink--;
	inode_touch(dp, false, true, true);
	err = inode_write(fs, dp);
	if (!err)
		err = drop_link(fs, ip);
out:
	inode_put(fs, ip);       /* deletes it now if nothing refers to it */
	inode_put(fs, dp);
	tx_op_end(fs);
	OPS_LEAVE_OR_RETRY(fs, err, again);
	ops_reply_err(req, err);
}

void ops_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, false);
}

void ops_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, true);
}

/* Is directory `anc` an ancestor of (or equal to) directory `dp`? */
static int is_ancestor(struct pfs_fs *fs, uint64_t anc, struct inode *dp)
{
	uint64_t cur = dp->ino;
	unsigned guard = 0;
	while (cur != PFS_ROOT_INO) {
		if (cur == anc)
			return 1;
		struct inode *p;
		int err = inode_get(fs, cur, &p);
		if (err)
			return err;
		uint64_t next = p->parent;
		inode_put(fs, p);
		if (next == 0 || ++guard > 100000) {
			pfs_err("directory %llu: broken parent chain", (unsigned long long)cur);
			return -EUCLEAN;
		}
		cur = next;
	}
	return anc == PFS_ROOT_INO;
}

/* Move directory ip from parent od to parent nd (link counts, ".."). */
static void reparent_dir(struct inode *ip, struct inode *od, struct inode *nd)
{
	if (!S_ISDIR(ip->mode) || od == nd)
		return;
	ip->parent = nd->ino;
	od->nlink--;
	nd->nlink++;
}

static int do_rename(struct pfs_fs *fs, struct inode *od, const char *name,
		     struct inode *nd, const char *newname, unsigned flags)
{
	struct inode *src = NULL, *dst = NULL;
	int err = name_check(newname);
	if (err)
		return err;
	err = get_child_mode(fs, od, name, &src, true);
	if (err)
		return err;
	err = get_child_mode(fs, nd, newname, &dst, true);
	if (err && err != -ENOENT)
		goto out;
	err = alloc_reserve(fs, 16, 0);                 /* tree splits */
	if (err)
		goto out;
	if ((flags & RENAME_NOREPLACE) && dst) {
		err = -EEXIST;
		goto out;
	}
	if ((flags & RENAME_EXCHANGE) && !dst) {
		err = -ENOENT;
		goto out;
	}
	if (dst == src)
		goto out;                         /* same inode: nothing to do */
	if (S_ISDIR(src->mode) && od != nd) {
		err = is_ancestor(fs, src->ino, nd);
		if (err < 0)
			goto out;
		if (err) {
			err = -EINVAL;
			goto out;
		}
	}
	if (flags & RENAME_EXCHANGE) {
		if (S_ISDIR(dst->mode) && od != nd) {
			err = is_ancestor(fs, dst->ino, od);
			if (err < 0)
				goto out;
			if (err) {
				err = -EINVAL;
				goto out;
			}
		}
		err = dir_set(fs, od, name, strlen(name), dst->ino, ops_dtype(dst->mode));
		if (!err)
			err = dir_set(fs, nd, newname, strlen(newname), src->ino,
				      ops_dtype(src->mode));
		if (err)
			goto out;
		reparent_dir(src, od, nd);
		reparent_dir(dst, nd, od);
		inode_touch(dst, false, false, true);
		err = inode_write(fs, dst);
		if (err)
			goto out;
	} else if (dst) {
		if (S_ISDIR(src->mode) && !S_ISDIR(dst->mode)) {
			err = -ENOTDIR;
			goto out;
		}
		if (!S_ISDIR(src->mode) && S_ISDIR(dst->mode)) {
			err = -EISDIR;
			goto out;
		}
		if (S_ISDIR(dst->mode)) {
			err = dir_is_empty(fs, dst);
			if (err < 0)
				goto out;
			if (err == 0) {
				err = -ENOTEMPTY;
				goto out;
			}
			nd->nlink--;              /* the replaced directory's ".." */
		}
		err = dir_set(fs, nd, newname, strlen(newname), src->ino, ops_dtype(src->mode));
		if (!err)
			err = dir_remove(fs, od, name, strlen(name));
		if (!err)
			err = drop_link(fs, dst);
		if (err)
			goto out;
		reparent_dir(src, od, nd);
	} else {
		if (S_ISDIR(src->mode) && od != nd && nd->nlink >= PFS_LINK_MAX) {
			err = -EMLINK;
			goto out;
		}
		err = dir_add(fs, nd, newname, strlen(newname), src->ino, ops_dtype(src->mode));
		if (!err)
			err = dir_remove(fs, od, name, strlen(name));
		if (err)
			goto out;
		reparent_dir(src, od, nd);
	}
	inode_touch(src, false, false, true);
	err = inode_write(fs, src);
	inode_touch(od, false, true, true);
	if (!err)
		err = inode_write(fs, od);
	if (nd != od) {
		inode_touch(nd, false, true, true);
		if (!err)
			err = inode_write(fs, nd);
	}
out:
	inode_put(fs, dst);
	inode_put(fs, src);
	return err;
}

void ops_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		fuse_ino_t newparent, const char *newname, unsigned int flags)
{
again:;
	struct pfs_fs *fs = ops_enter(req);
	struct inode *od = NULL, *nd = NULL;
	int err = fs_check_fenced(fs);

	if (!err && (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)))
		err = -EINVAL;
	if (!err && (flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))
		err = -EINVAL;
	tx_op_begin(fs);
	if (!err)
		err = get_dir_ex(fs, parent, &od);
	if (!err)
		err = get_dir_ex(fs, newparent, &nd);
	if (!err)
		err = do_rename(fs, od, name, nd, newname, flags);
	inode_put(fs, nd);
	inode_put(fs, od);
	tx_op_end(fs);
	OPS_LEAVE_OR_RETRY(fs, err, again);
	ops_reply_err(req, err);
}

void ops_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
again:;
	struct pfs_fs *fs = ops_enter(req);
	struct inode *ip = NULL, *dp = NULL;
	struct fuse_entry_param e;
	uint64_t existing;
	uint8_t type;
	int err = fs_check_fenced(fs);

	tx_op_begin(fs);
	if (!err)
		err = name_check(newname);
	if (!err)
		err = inode_get_ex(fs, ino, &ip);
	if (!err)
		err = get_dir_ex(fs, newparent, &dp);
	if (!err)
		err = alloc_reserve(fs, 8, 0);
	if (err)
		goto out;
	if (S_ISDIR(ip->mode)) {
		err = -EPERM;
		goto out;
	}
	if (ip->nlink == 0) {
		err = -ENOENT;
		goto out;
	}
	if (ip->nlink >= PFS_LINK_MAX) {
		err = -EMLINK;
		goto out;
	}
	err = dir_lookup(fs, dp, newname, strlen(newname), &existing, &type);
	if (err != -ENOENT) {
		if (!err)
			err = -EEXIST;
		goto out;
	}
	err = dir_add(fs, dp, newname, strlen(newname), ip->ino, ops_dtype(ip->mode));
	if (err)
		goto out;
	ip->nlink++;
	inode_touch(ip, false, false, true);
	err = inode_write(fs, ip);
	inode_touch(dp, false, true, true);
	if (!err)
		err = inode_write(fs, dp);
	if (!err) {
		ip->nlookup++;
		ops_fill_entry(fs, ip, &e);
		gl_note_name(fs, dp, newname);
	}
out:
	inode_put(fs, dp);
	inode_put(fs, ip);
	tx_op_end(fs);
	OPS_LEAVE_OR_RETRY(fs, err, again);
	if (err)
		ops_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

void ops_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct pfs_fs *fs = ops_enter(req);
	struct statvfs st;
	memset(&st, 0, sizeof(st));
	alloc_refresh_foreign(fs);      /* groups other nodes hold */
	uint64_t data_blocks = 0;
	for (uint32_t g = 0; g < fs->ngroups; g++)
		data_blocks += fs->groups[g].nblocks - PFS_GROUP_META_BLOCKS - fs->itb;
	st.f_bsize = PFS_BLOCK_SIZE;
	st.f_frsize = PFS_BLOCK_SIZE;
	st.f_blocks = data_blocks;
	/* Blocks freed by the running transaction are free once it commits. */
	st.f_bfree = fs->free_blocks + fs->pending_blocks;
	st.f_bavail = st.f_bfree;
	st.f_files = (uint64_t)fs->ngroups * fs->ipg;
	st.f_ffree = fs->free_inodes + fs->npending_ino;   /* likewise */
	st.f_favail = st.f_ffree;
	st.f_namemax = PFS_NAME_MAX;
	uint64_t fsid;
	memcpy(&fsid, fs->uuid, sizeof(fsid));
	st.f_fsid = le64_to_cpu(fsid);
	int err = fs_check_fenced(fs);
	ops_leave(fs);
	if (err)
		ops_reply_err(req, err);
	else
		fuse_reply_statfs(req, &st);
}
