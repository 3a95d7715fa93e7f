/*
 * ops_lock.c -- advisory locks at the FUSE edge: getlk and setlk
 * (fcntl(2) F_GETLK, F_SETLK, F_SETLKW, OFD locks alike), flock(2), and
 * the release of an owner's locks when a file is closed.
 *
 * Design notes
 *
 * The locks live in the coordinator's advisory lock table (pfs_coord.h
 * "Advisory locks"), so every node of the cluster sees the same locks.
 * This file only translates:
 *   - struct flock (l_start, l_len; l_len 0 = to EOF) <-> an inclusive
 *     range [start, end] with COORD_PLOCK_EOF;
 *   - the owner is fi->lock_owner, the id the kernel gives the lock's
 *     owner (a process's file table for POSIX locks, an open file
 *     description for flock and OFD locks); the pid is the kernel's;
 *   - errors: a fenced node answers EIO, like every other request.
 * When the kernel closes a file it sends flush with the closing
 * process's lock_owner: its POSIX locks on the inode go then (a process
 * killed by a signal closes its files too); the last release of an open
 * file description with FUSE_RELEASE_FLOCK_UNLOCK (fi->flock_release)
 * drops its flock lock.
 *
 * Waiting (F_SETLKW, flock without LOCK_NB) happens in the coordinator,
 * on this request's FUSE thread, without fs->lock or any other lock of
 * the filesystem (glock.c G3: no thread waits while holding fs->lock).
 * A FUSE interrupt (the caller got a signal) sets the request's cancel
 * flag and wakes this node's waiters; the waiter then answers EINTR.
 * The interrupt callback is unset before the request replies, which
 * libfuse serializes with a running callback, so the flag on this stack
 * frame outlives every use.  A waiter also gives up (EINTR) within a
 * second once the session is ending (SIGTERM, unmount): libfuse joins
 * its worker threads then, and a waiting one would hold the exit up.
 *
 * With coord=none (a volume mounted by one node alone) there is no
 * coordinator: ll_init leaves FUSE_CAP_POSIX_LOCKS and FUSE_CAP_FLOCK_LOCKS
 * off and the kernel keeps the locks itself, which is exact for one node.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>

#include "ops.h"
#include "pfs_coord.h"
#include "pfs_util.h"

struct lk_wait {
	int interrupted;                /* set by lk_interrupt (atomic) */
	struct coord *coord;
	struct fuse_session *se;
};

static void lk_interrupt(fuse_req_t req, void *data)
{
	struct lk_wait *w = data;
	__atomic_store_n(&w->interrupted, 1, __ATOMIC_RELEASE);
	coord_plock_interrupt(w->coord);
}

/* Called by the coordinator under its lock: quick, no lock taken. */
static bool lk_cancelled(void *arg)
{
	struct lk_wait *w = arg;
	return __atomic_load_n(&w->interrupted, __ATOMIC_ACQUIRE) ||
	       (w->se && fuse_session_exited(w->se));
}

/* The coordinator, or NULL with an error: EIO when fenced.  Without a
 * coordinator (coord=none) ll_init leaves the lock capabilities off and
 * the kernel sends no lock requests; should one come anyway, -ENOSYS is
 * FUSE's answer for "not implemented here", after which the kernel keeps
 * the locks itself. */
static struct coord *lk_coord(struct pfs_fs *fs, int *err)
{
	pthread_mutex_lock(&fs->lock);
	*err = fs_check_fenced(fs);
	pthread_mutex_unlock(&fs->lock);
	if (*err)
		return NULL;
	struct coord *c = gl_coord(fs);
	if (!c)
		*err = -ENOSYS;
	return c;
}

/* -ESTALE from the coordinator: peers declared this node dead. */
static int lk_result(struct pfs_fs *fs, int err)
{
	if (err != -ESTALE)
		return err;
	pthread_mutex_lock(&fs->lock);
	fs_fence(fs, err, "this node was declared dead by its peers");
	pthread_mutex_unlock(&fs->lock);
	return -EIO;
}

static int lk_from_flock(const struct flock *fl, fuse_ino_t ino, uint64_t owner,
			 struct coord_plock *lk)
{
	*lk = (struct coord_plock){ .ino = ino, .owner = owner, .pid = fl->l_pid,
				    .kind = COORD_PLOCK_POSIX };
	switch (fl->l_type) {
	case F_RDLCK: lk->type = COORD_PLOCK_RD; break;
	case F_WRLCK: lk->type = COORD_PLOCK_WR; break;
	case F_UNLCK: lk->type = COORD_PLOCK_UNLCK; break;
	default: return -EINVAL;
	}
	if (fl->l_start < 0 || fl->l_len < 0)
		return -EINVAL;         /* the kernel sends normalized ranges */
	lk->start = (uint64_t)fl->l_start;
	if (fl->l_len == 0)
		lk->end = COORD_PLOCK_EOF;
	else if ((uint64_t)fl->l_len - 1 > (uint64_t)INT64_MAX - lk->start)
		return -EOVERFLOW;
	else
		lk->end = lk->start + (uint64_t)fl->l_len - 1;
	return 0;
}

void ops_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock)
{
	struct pfs_fs *fs = fuse_req_userdata(req);
	struct coord_plock lk;
	int err;
	struct coord *c = lk_coord(fs, &err);

	if (c)
		err = lk_from_flock(lock, ino, fi->lock_owner, &lk);
	if (!err && lk.type == COORD_PLOCK_UNLCK)
		err = -EINVAL;
	if (!err)
		err = lk_result(fs, coord_plock_test(c, &lk));
	if (err) {
		ops_reply_err(req, err);
		return;
	}
	struct flock out = { .l_whence = SEEK_SET, .l_type = F_UNLCK };
	if (lk.type != COORD_PLOCK_UNLCK) {
		out.l_type = lk.type == COORD_PLOCK_WR ? F_WRLCK : F_RDLCK;
		out.l_start = (off_t)lk.start;
		out.l_len = lk.end == COORD_PLOCK_EOF ? 0 : (off_t)(lk.end - lk.start + 1);
		out.l_pid = lk.pid;
	}
	fuse_reply_lock(req, &out);
}

/* Set lk, waiting if asked, interruptibly. */
static int lk_set(fuse_req_t req, struct pfs_fs *fs, struct coord *c,
		  const struct coord_plock *lk, bool wait)
{
	if (!wait || lk->type == COORD_PLOCK_UNLCK)
		return lk_result(fs, coord_plock_set(c, lk, false, NULL, NULL));
	struct lk_wait w = { .interrupted = 0, .coord = c, .se = fs->se };
	fuse_req_interrupt_func(req, lk_interrupt, &w);
	int err = coord_plock_set(c, lk, true, lk_cancelled, &w);
	fuse_req_interrupt_func(req, NULL, NULL);
	return lk_result(fs, err);
}

void ops_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock,
	       int sleep)
{
	struct pfs_fs *fs = fuse_req_userdata(req);
	struct coord_plock lk;
	int err;
	struct coord *c = lk_coord(fs, &err);

	if (c)
		err = lk_from_flock(lock, ino, fi->lock_owner, &lk);
	if (!err)
		err = lk_set(req, fs, c, &lk, sleep != 0);
	ops_reply_err(req, err);
}

void ops_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
	struct pfs_fs *fs = fuse_req_userdata(req);
	struct coord_plock lk = { .ino = ino, .owner = fi->lock_owner,
				  .pid = fuse_req_ctx(req)->pid, .kind = COORD_PLOCK_FLOCK,
				  .start = 0, .end = COORD_PLOCK_EOF };
	int err;
	struct coord *c = lk_coord(fs, &err);

	switch (op & ~LOCK_NB) {
	case LOCK_SH: lk.type = COORD_PLOCK_RD; break;
	case LOCK_EX: lk.type = COORD_PLOCK_WR; break;
	case LOCK_UN: lk.type = COORD_PLOCK_UNLCK; break;
	default: if (!err) err = -EINVAL;
	}
	if (!err)
		err = lk_set(req, fs, c, &lk, !(op & LOCK_NB));
	ops_reply_err(req, err);
}

void ops_lock_release_owner(struct pfs_fs *fs, fuse_ino_t ino, uint64_t owner, bool flock)
{
	struct coord *c = gl_coord(fs);
	if (!c)
		return;
	int n = coord_plock_release_owner(c, ino, owner,
					  flock ? COORD_PLOCK_FLOCK : COORD_PLOCK_POSIX);
	if (n < 0 && n != -ESTALE)
		pfs_warn("inode %llu: cannot drop the %s locks of owner %#llx: %s",
			 (unsigned long long)ino, flock ? "flock" : "POSIX",
			 (unsigned long long)owner, strerror(-n));
	/* -ESTALE: fenced; the locks go with the node's recovery */
}
