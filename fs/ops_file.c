/*
 * ops_file.c -- FUSE entry points for open files and directories: create,
 * open, read, write, flush, release, fsync, readdir(plus), fallocate,
 * lseek and copy_file_range.
 *
 * Open files hold inode.nopen; release drops it, and deletes an unlinked
 * inode when it was the last reference (inode.c I2).  fsync, fdatasync,
 * fsyncdir and syncfs all force a commit of the running transaction,
 * which covers every change made before them (journal/tx.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <sys/stat.h>

#include "ops.h"
#include "pfs_util.h"

#define COPY_CHUNK (1u << 20)

static void open_undo(struct pfs_fs *fs, fuse_ino_t ino);

static int open_inode(struct pfs_fs *fs, struct inode *ip, struct fuse_file_info *fi)
{
	int err = inode_open_ref(fs, ip);
	fi->fh = ip->ino;
	fi->keep_cache = 0;
	return err;
}

void ops_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		struct fuse_file_info *fi)
{
again:;
	struct pfs_fs *fs = ops_enter(req);
	struct inode *ip = NULL;
	struct fuse_entry_param e;
	tx_op_begin(fs);
	int err = ops_make_node(fs, req, parent, name, S_IFREG | (mode & 07777), 0, NULL, &ip);
	if (!err) {
		err = open_inode(fs, ip, fi);
		if (!err)
			ops_fill_entry(fs, ip, &e);
		inode_put(fs, ip);
	}
	tx_op_end(fs);
	OPS_LEAVE_OR_RETRY(fs, err, again);
	if (err)
		ops_reply_err(req, err);
	else if (fuse_reply_create(req, &e, fi) != 0)
		open_undo(fs, e.ino);            /* the opener is gone */
}

void ops_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
again:;
	struct pfs_fs *fs = ops_enter(req);
	struct inode *ip = NULL;
	int err = fs_check_fenced(fs);
	if (!err)
		err = (fi->flags & O_TRUNC) ? inode_get_ex(fs, ino, &ip) : inode_get(fs, ino, &ip);
	if (!err && S_ISDIR(ip->mode))
		err = -EISDIR;
	if (!err && (fi->flags & O_TRUNC) && S_ISREG(ip->mode) && ip->size > 0) {
		/* FUSE_CAP_ATOMIC_O_TRUNC: the kernel leaves O_TRUNC to us. */
		tx_op_begin(fs);
		err = inode_truncate(fs, ip, 0);
		if (!err) {
			inode_touch(ip, false, true, true);
			err = inode_write(fs, ip);
		}
		tx_op_end(fs);
	}
	if (!err)
		err = open_inode(fs, ip, fi);
	inode_put(fs, ip);
	OPS_LEAVE_OR_RETRY(fs, err, again);
	if (err)
		ops_reply_err(req, err);
	else if (fuse_reply_open(req, fi) != 0)
		open_undo(fs, ino);
}

/* -ERESTART: run again (the open was not dropped yet). */
static int close_inode(struct pfs_fs *fs, fuse_ino_t ino)
{
	struct inode *ip = inode_peek(fs, ino);
	if (!ip)
		return 0;
	PFS_BUG_ON(ip->nopen == 0);
	if (ip->nopen == 1 && ip->nlookup == 0 && ip->ref == 0) {
		int err;                        /* the close may delete it */
		ip = inode_ready_to_delete(fs, ino, &err);
		if (!ip)
			return err;
	}
	ip->ref++;
	inode_open_unref(fs, ip);
	tx_op_begin(fs);
	inode_put(fs, ip);               /* deletes an unlinked inode (I2) */
	tx_op_end(fs);
	return 0;
}

/* An open whose reply could not be delivered: undo it. */
static void open_undo(struct pfs_fs *fs, fuse_ino_t ino)
{
	int err;
	do {
		pthread_mutex_lock(&fs->lock);
		fs->op_changed = false;
		err = close_inode(fs, ino);
	} while (ops_retry(fs, &err));
}

void ops_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (fi->flock_release)          /* the open file description's flock lock */
		ops_lock_release_owner(fuse_req_userdata(req), ino, fi->lock_owner, true);
again:;
	struct pfs_fs *fs = ops_enter(req);
	int err = close_inode(fs, ino);
	OPS_LEAVE_OR_RETRY(fs, err, again);
	fuse_reply_err(req, 0);
}

/* Access time: updated as with relatime, when it is older than the last
 * modification or a day old, so reads rarely write. */
static void touch_atime_relaxed(struct pfs_fs *fs, struct inode *ip)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	bool stale = ip->atime.tv_sec < ip->mtime.tv_sec ||
		     (ip->atime.tv_sec == ip->mtime.tv_sec && ip->atime.tv_nsec <= ip->mtime.tv_nsec) ||
		     ip->atime.tv_sec < ip->ctime.tv_sec ||
		     now.tv_sec - ip->atime.tv_sec >= 86400;
	if (!stale || fs->opts.ro)
		return;
	/* Best effort: only when the inode's lock can be had in EX now. */
	if (gl_trylock(fs, gl_res_inode(ip->ino), COORD_EX))
		return;
	ip->atime = now;
	tx_op_begin(fs);
	inode_write(fs, ip);
	tx_op_end(fs);
}

void ops_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
again:;
	struct pfs_fs *fs = ops_enter(req);
	struct inode *ip = NULL;
	char *buf = NULL;
	ssize_t n = fs_check_fenced(fs);

	if (!n)
		n = inode_get(fs, ino, &ip);
	if (!n) {
		buf = malloc(size ? size : 1);
		if (!buf)
			n = -ENOMEM;
	}
	if (!n) {
		n = file_read(fs, ip, buf, size, off);
		if (n >= 0)
			touch_atime_relaxed(fs, ip);
	}
	inode_put(fs, ip);
	if (n == -ERESTART) {
		free(buf);
		buf = NULL;
	}
	OPS_LEAVE_OR_RETRY(fs, n, again);
	if (n < 0)
		ops_reply_err(req, (int)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

void ops_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
	       struct fuse_file_info *fi)
{
again:;
	struct pfs_fs *fs = ops_enter(req);
	struct inode *ip = NULL;
	ssize_t n = fs_check_fenced(fs);

	tx_op_begin(fs);
	if (!n)
		n = inode_get_ex(fs, ino, &ip);
	if (!n)                 /* the data, and extent tree splits */
		n = alloc_reserve(fs, size / PFS_BLOCK_SIZE + 16, 0);
	if (!n && (fi->flags & O_APPEND))
		off = (off_t)ip->size;
	if (!n)
		n = file_write(fs, ip, buf, size, off);
	inode_put(fs, ip);
	tx_op_end(fs);
	OPS_LEAVE_OR_RETRY(fs, n, again);
	if (n < 0)
		ops_reply_err(req, (int)n);
	else
		fuse_reply_write(req, (size_t)n);
}

void ops_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pfs_fs *fs = ops_enter(req);
	int err = fs_check_fenced(fs);
	ops_leave(fs);
	/* a close: the closing process's POSIX locks on the file go */
	ops_lock_release_owner(fs, ino, fi->lock_owner, false);
	ops_reply_err(req, err);
}

/* fsync of ino: commit unless a commit since its last change already
 * covered it (then the waiting on fs->lock was the group commit). */
static void sync_reply(fuse_req_t req, fuse_ino_t ino)
{
again:;
	struct pfs_fs *fs = ops_enter(req);
	struct inode *ip = NULL;
	int err = fs_check_fenced(fs);
	if (!err)
		err = inode_get(fs, ino, &ip);
	if (!err && ip->dirty_seq > tx_committed_seq(fs))
		err = tx_commit(fs);
	inode_put(fs, ip);
	OPS_LEAVE_OR_RETRY(fs, err, again);
	ops_reply_err(req, err);
}

void ops_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	sync_reply(req, ino);
}

void ops_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	sync_reply(req, ino);
}

void ops_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
again:;
	struct pfs_fs *fs = ops_enter(req);
	struct inode *ip = NULL;
	int err = fs_check_fenced(fs);
	if (!err)
		err = inode_get(fs, ino, &ip);
	if (!err && !S_ISDIR(ip->mode))
		err = -ENOTDIR;
	if (!err)
		err = inode_open_ref(fs, ip);
	inode_put(fs, ip);
	OPS_LEAVE_OR_RETRY(fs, err, again);
	if (err)
		ops_reply_err(req, err);
	else if (fuse_reply_open(req, fi) != 0)
		open_undo(fs, ino);
}

void ops_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	ops_release(req, ino, fi);
}

struct rd_ctx {
	struct pfs_fs *fs;
	struct inode *dp;
	fuse_req_t req;
	char *buf;
	size_t size, pos;
	bool plus;
	int err;
};

static int rd_fill(void *arg, const char *name, size_t len, uint64_t ino,
		   uint8_t type, uint64_t next)
{
	struct rd_ctx *c = arg;
	char nm[PFS_NAME_MAX + 1];
	size_t need;

	memcpy(nm, name, len);
	nm[len] = '\0';
	if (!c->plus) {
		struct stat st;
		memset(&st, 0, sizeof(st));
		st.st_ino = ino;
		st.st_mode = (mode_t)DTTOIF(type);
		need = fuse_add_direntry(c->req, c->buf + c->pos, c->size - c->pos, nm, &st,
					 (off_t)next);
		if (need > c->size - c->pos)
			return 1;
		c->pos += need;
		return 0;
	}
	struct fuse_entry_param e;
	struct inode *ip = NULL;
	bool dot = (len == 1 && nm[0] == '.') || (len == 2 && nm[0] == '.' && nm[1] == '.');
	if (dot) {
		memset(&e, 0, sizeof(e));
		e.attr.st_ino = ino;
		e.attr.st_mode = (mode_t)DTTOIF(type);
	} else {
		int err = inode_get_named(c->fs, ino, false, &ip);
		if (err == -ERESTART && c->pos > 0)
			return 1;       /* send what we have; the next call waits */
		if (err) {
			c->err = err == -ENOENT ? -EUCLEAN : err;
			return 1;
		}
		ops_fill_entry(c->fs, ip, &e);
	}
	need = fuse_add_direntry_plus(c->req, c->buf + c->pos, c->size - c->pos, nm, &e,
				      (off_t)next);
	if (need > c->size - c->pos) {
		inode_put(c->fs, ip);
		return 1;
	}
	c->pos += need;
	if (ip) {
		ip->nlookup++;                   /* the kernel now holds it */
		inode_put(c->fs, ip);
		gl_note_name(c->fs, c->dp, nm);
	}
	return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
again:;
	struct pfs_fs *fs = ops_enter(req);
	struct inode *dp = NULL;
	struct rd_ctx c = { .fs = fs, .req = req, .size = size, .plus = plus };
	int err = fs_check_fenced(fs);

	if (!err)
		err = inode_get(fs, ino, &dp);
	if (!err && !S_ISDIR(dp->mode))
		err = -ENOTDIR;
	if (!err) {
		c.buf = malloc(size ? size : 1);
		if (!c.buf)
			err = -ENOMEM;
	}
	c.dp = dp;
	if (!err)
		err = dir_iterate(fs, dp, (uint64_t)off, rd_fill, &c);
	if (!err && c.err && c.pos == 0)
		err = c.err;
	inode_put(fs, dp);
	if (err == -ERESTART) {
		free(c.buf);
		c.buf = NULL;
	}
	OPS_LEAVE_OR_RETRY(fs, err, again);
	if (err)
		ops_reply_err(req, err);
	else
		fuse_reply_buf(req, c.buf, c.pos);
	free(c.buf);
}

void ops_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, false);
}

void ops_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, true);
}

void ops_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
		   struct fuse_file_info *fi)
{
again:;
	struct pfs_fs *fs = ops_enter(req);
	struct inode *ip = NULL;
	int err = fs_check_fenced(fs);
	tx_op_begin(fs);
	if (!err)
		err = inode_get_ex(fs, ino, &ip);
	if (!err && !S_ISREG(ip->mode))
		err = S_ISDIR(ip->mode) ? -EISDIR : -ENODEV;
	if (!err && len > 0)
		err = alloc_reserve(fs, (mode & FALLOC_FL_PUNCH_HOLE) ? 16 :
				    (uint64_t)len / PFS_BLOCK_SIZE + 16, 0);
	if (!err)
		err = file_fallocate(fs, ip, mode, off, len);
	inode_put(fs, ip);
	tx_op_end(fs);
	OPS_LEAVE_OR_RETRY(fs, err, again);
	ops_reply_err(req, err);
}

void ops_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
again:;
	struct pfs_fs *fs = ops_enter(req);
	struct inode *ip = NULL;
	off_t res = fs_check_fenced(fs);
	if (!res)
		res = inode_get(fs, ino, &ip);
	if (!res) {
		if (whence == SEEK_DATA || whence == SEEK_HOLE)
			res = file_seek_data(fs, ip, off, whence);
		else
			res = -EINVAL;
	}
	inode_put(fs, ip);
	OPS_LEAVE_OR_RETRY(fs, res, again);
	if (res < 0)
		ops_reply_err(req, (int)res);
	else
		fuse_reply_lseek(req, res);
}

void ops_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			 struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			 struct fuse_file_info *fi_out, size_t len, int flags)
{
again:;
	struct pfs_fs *fs = ops_enter(req);
	struct inode *in = NULL, *out = NULL;
	char *buf = NULL;
	ssize_t done = 0;
	int err = fs_check_fenced(fs);

	tx_op_begin(fs);
	if (!err && flags)
		err = -EINVAL;
	if (!err)
		err = inode_get_ex(fs, ino_out, &out);
	if (!err)
		err = inode_get(fs, ino_in, &in);
	if (!err)
		err = alloc_reserve(fs, len / PFS_BLOCK_SIZE + 16, 0);
	if (!err && (!S_ISREG(in->mode) || !S_ISREG(out->mode)))
		err = -EINVAL;
	if (!err && ino_in == ino_out && off_in < off_out + (off_t)len &&
	    off_out < off_in + (off_t)len)
		err = -EINVAL;                   /* overlapping ranges */
	if (!err) {
		buf = malloc(COPY_CHUNK);
		if (!buf)
			err = -ENOMEM;
	}
	while (!err && (size_t)done < len) {
		size_t want = PFS_MIN((size_t)COPY_CHUNK, len - (size_t)done);
		ssize_t r = file_read(fs, in, buf, want, off_in + done);
		if (r <= 0) {
			if (r < 0 && done == 0)
				err = (int)r;
			break;
		}
		ssize_t w = file_write(fs, out, buf, (size_t)r, off_out + done);
		if (w < 0) {
			if (done == 0)
				err = (int)w;
			break;
		}
		done += w;
		if (w < r)
			break;
	}
	free(buf);
	inode_put(fs, out);
	inode_put(fs, in);
	tx_op_end(fs);
	OPS_LEAVE_OR_RETRY(fs, err, again);
	if (err)
		ops_reply_err(req, err);
	else
		fuse_reply_write(req, (size_t)done);
}

