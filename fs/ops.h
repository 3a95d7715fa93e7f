/*
 * ops.h -- shared helpers of the FUSE edge (fs/ops_*.c).
 *
 * Every FUSE entry point follows one pattern:
 *   again: fs = ops_enter(req)   takes fs->lock (order 1); the request
 *                            fails with EIO if the node is fenced;
 *   tx_op_begin/tx_op_end    around anything that changes state;
 *   OPS_LEAVE_OR_RETRY       drops the lock, and runs the request again
 *                            (goto again) when it needed a cluster lock
 *                            it had to wait for (fs/glock.c G3);
 * and replies exactly once, after ops_leave, converting a negative errno
 * to a FUSE error there and nowhere else.
 */
#ifndef PFS_OPS_H
#define PFS_OPS_H

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include "pfs_fs.h"

extern const struct fuse_lowlevel_ops pfs_ll_ops;

struct pfs_fs *ops_enter(fuse_req_t req);
void ops_leave(struct pfs_fs *fs);
/* Drop fs->lock at the end of a request.  Returns true when the request
 * must run again: it ended with -ERESTART (a cluster lock it could not
 * take without waiting, fs/glock.c G3), and that lock is now held.  If
 * the wait failed, *err is set to why. */
bool ops_retry(struct pfs_fs *fs, int *err);
#define OPS_LEAVE_OR_RETRY(fs, err, label)                              \
	do {                                                            \
		int e_ = (int)(err);                                    \
		if (ops_retry((fs), &e_))                               \
			goto label;                                     \
		if ((err) == -ERESTART)                                 \
			(err) = e_;                                     \
	} while (0)
void ops_fill_attr(const struct pfs_fs *fs, const struct inode *ip, struct stat *st);
void ops_fill_entry(const struct pfs_fs *fs, struct inode *ip, struct fuse_entry_param *e);
/* Reply helpers: an errno reply when err < 0. */
void ops_reply_err(fuse_req_t req, int err);
uint8_t ops_dtype(uint32_t mode);

/* ops_name.c */
void ops_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void ops_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void ops_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);
void ops_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void ops_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		 struct fuse_file_info *fi);
void ops_readlink(fuse_req_t req, fuse_ino_t ino);
void ops_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void ops_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void ops_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void ops_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void ops_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void ops_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		fuse_ino_t newparent, const char *newname, unsigned int flags);
void ops_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void ops_statfs(fuse_req_t req, fuse_ino_t ino);
/* Create an inode named name in parent (used by mknod, mkdir, symlink,
 * create).  On success *out holds a reference and one kernel lookup. */
int ops_make_node(struct pfs_fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name,
		  mode_t mode, dev_t rdev, const char *link, struct inode **out);

/* ops_file.c */
void ops_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		struct fuse_file_info *fi);
void ops_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void ops_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void ops_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
	       struct fuse_file_info *fi);
void ops_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void ops_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void ops_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void ops_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void ops_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void ops_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi);
void ops_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void ops_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void ops_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
		   struct fuse_file_info *fi);
void ops_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi);
void ops_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			 struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			 struct fuse_file_info *fi_out, size_t len, int flags);

/* ops_lock.c */
void ops_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock);
void ops_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock,
	       int sleep);
void ops_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op);
/* Drop the POSIX (flush) or flock (last release) locks of an owner on
 * ino.  Without fs->lock. */
void ops_lock_release_owner(struct pfs_fs *fs, fuse_ino_t ino, uint64_t owner, bool flock);

/* ops_xattr.c */
void ops_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		  size_t size, int flags);
void ops_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void ops_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void ops_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);
/* Apply the parent's default ACL to a new inode; returns the mode to use
 * (permission bits masked), or -errno. */
int acl_inherit(struct pfs_fs *fs, struct inode *dir, struct inode *ip, mode_t umask);
/* chmod: keep an access ACL's owner/group-or-mask/other entries in sync. */
int acl_chmod(struct pfs_fs *fs, struct inode *ip);

#endif /* PFS_OPS_H */
