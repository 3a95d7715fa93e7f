/*
 * glock.c -- the filesystem's side of the cluster: cluster locks cached by
 * this node ("glocks"), what the node does when a peer wants one of them,
 * kernel cache invalidation, and the failure detector's actions (its
 * decisions are cluster/fdetect.c's).
 *
 * Design notes
 *
 * Resources (pfs_coord.h ids):
 *   INODE(i)  i is the first inode of an inode-table block; the lock covers
 *             the 16 inodes of that block: their attributes, data blocks,
 *             extent and directory trees and xattr blocks.  (The table
 *             block is written and undone as a whole, so its inodes cannot
 *             have different owners.)
 *   GROUP(g)  group g's descriptor and block and inode bitmaps.
 *
 * Invariants (cited as [Gn]):
 *   G1. A node reads a block only under a lock covering it, SH or EX, and
 *       changes it only under EX: inode_get asks SH; a request that
 *       changes inodes asks EX for each before its first change; the
 *       allocator uses only groups held EX (alloc.c).
 *   G2. A lock is released or downgraded only after the running
 *       transaction committed (every change under it is durable and
 *       committed, so a later backout of this node never touches what the
 *       next holder writes) and after the block cache dropped every clean
 *       buffer (no stale copy outlives the lock).  A fenced node releases
 *       nothing: its locks stay held until it is recovered.
 *   G3. No thread waits for a cluster lock while it holds fs->lock.  Under
 *       fs->lock a request only tries (gl_need); when the try fails before
 *       the request changed anything, gl_need returns -ERESTART, the FUSE
 *       edge drops fs->lock, waits for the lock (gl_op_wait) and runs the
 *       request again.  A lock first needed after a change is waited for
 *       under fs->lock with a bound, and the node fences if the bound
 *       passes (a deadlock would otherwise be possible).
 *   G4. State derived from a lock's blocks (in-memory inodes, a group's
 *       free counts) is revalidated on the first use after each grant
 *       that follows a release (gl_revalidate).
 *   G5. A thread pins at most one lock, the one it waited for, until its
 *       request ran again: no thread holds one lock while waiting for
 *       another, so nodes cannot deadlock on each other.  A peer's
 *       request for a pinned (or being acquired) lock waits until it is
 *       unpinned.
 *   G6. Kernel caches (attributes, pages, names) of the inodes under a
 *       released lock are invalidated by the notifier thread, which holds
 *       no lock: a kernel invalidation may wait for a request, and a
 *       request may wait for a lock.
 *
 * Lock state (struct glock.mode, the mode held at the coordinator):
 *   NL -> SH | EX      gl_need (try) or gl_op_wait (wait)
 *   SH -> EX           gl_need (try) or gl_op_wait (release, then wait)
 *   EX -> SH           gl_release (a peer wants SH)
 *   SH | EX -> NL      gl_release (a peer wants EX, or an upgrade)
 *
 * Lock order: fs->lock, then gl->mu, then the coordinator's own locks.
 * The coordinator calls of gl_need and gl_release that cannot block are
 * made under fs->lock; blocking ones (gl_op_wait) under no lock at all.
 */
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pfs_fs.h"
#include "pfs_coord.h"
#include "pfs_fdetect.h"
#include "pfs_util.h"

#define GL_HASH         4096
#define GL_NAMES_MAX    65536   /* names remembered per directory */
#define GL_LATE_WAIT_MS 10000   /* G3: bound of a wait under fs->lock */
#define GL_WAIT_STEP_MS 500     /* a waiting request rechecks the fence */

struct glock {
	uint64_t res;
	enum coord_mode mode;           /* protected by gl->mu */
	bool fresh;                     /* granted by gl_op_wait, not yet revalidated (G4) */
	bool acquiring;                 /* a thread waits for it (gl_op_wait) */
	uint32_t pins;                  /* G5 */
	struct glock *next;             /* hash chain; entries live until unmount */
};

struct gl_req {                         /* a peer wants res in mode wanted */
	uint64_t res;
	enum coord_mode wanted;
	struct gl_req *next;
};

struct gl_note {                        /* a kernel invalidation to send */
	uint64_t parent;                /* 0: invalidate inode ino */
	uint64_t ino;
	char *name;                     /* with parent: the entry */
	struct gl_note *next;
};

/* Names of a directory's entries that the kernel may cache (given in an
 * entry reply); invalidated when the directory's lock goes. */
struct gl_names {
	size_t n, cap;
	bool overflow;
	char **v;
};

struct pfs_glocks {
	struct coord *coord;
	pthread_mutex_t mu;
	pthread_cond_t cond;            /* requests, pins, acquisitions */
	struct glock *tab[GL_HASH];     /* protected by mu */
	struct gl_req *reqs;            /* protected by mu */
	struct gl_note *notes, **notes_tail;   /* protected by mu */
	pthread_cond_t ncond;
	bool sending;                   /* the notifier uses fs->se; protected by mu */
	bool stop;                      /* protected by mu */
	pthread_t dc_thread, nt_thread;
	bool threads;

	/* Failure detector (pfs_fdetect.h): hb thread only. */
	struct fd_state fd;

	/* Counters for status and benchmarks: protected by mu. */
	uint64_t n_try_fail, n_waits, n_releases, n_downgrades, n_late;
};

/* The request running on this thread: its wanted lock (set by gl_need
 * when it returns -ERESTART) and its pinned one (G5). */
static __thread struct {
	uint64_t want, pinned;
	enum coord_mode want_mode;
} gl_op;

static unsigned gl_hash(uint64_t res)
{
	return (unsigned)((res * 0x9E3779B97F4A7C15ull) >> 52) % GL_HASH;
}

static struct glock *gl_find_locked(struct pfs_glocks *gl, uint64_t res, bool add)
{
	unsigned h = gl_hash(res);
	for (struct glock *l = gl->tab[h]; l; l = l->next)
		if (l->res == res)
			return l;
	if (!add)
		return NULL;
	struct glock *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->res = res;
	l->next = gl->tab[h];
	gl->tab[h] = l;
	return l;
}

uint64_t gl_res_inode(uint64_t ino)
{
	return coord_res(COORD_RES_INODE, ((ino - 1) & ~(uint64_t)(PFS_INODES_PER_BLOCK - 1)) + 1);
}

uint64_t gl_res_group(uint32_t g)
{
	return coord_res(COORD_RES_GROUP, g);
}

static uint64_t res_type(uint64_t res) { return res >> COORD_RES_TYPE_SHIFT; }
static uint64_t res_id(uint64_t res) { return res & ((1ull << COORD_RES_TYPE_SHIFT) - 1); }

/* G4: the lock was not held since its last release; what this node
 * derived from its blocks may be stale.  Called under fs->lock. */
static int gl_revalidate(struct pfs_fs *fs, uint64_t res)
{
	if (res_type(res) == COORD_RES_INODE) {
		uint64_t first = res_id(res);
		bcache_invalidate(fs->bc, inode_table_block(fs, first, NULL));
		inode_mark_stale(fs, first, PFS_INODES_PER_BLOCK);
		return 0;
	}
	if (res_type(res) == COORD_RES_GROUP)
		return alloc_reload_group(fs, (uint32_t)res_id(res));
	return 0;
}

bool gl_held(struct pfs_fs *fs, uint64_t res, enum coord_mode mode)
{
	struct pfs_glocks *gl = fs->gl;
	if (!gl)
		return true;
	pthread_mutex_lock(&gl->mu);
	struct glock *l = gl_find_locked(gl, res, false);
	bool held = l && l->mode >= mode;
	pthread_mutex_unlock(&gl->mu);
	return held;
}

/* Take res in mode without waiting.  0 when held (revalidating G4),
 * -EAGAIN when a peer holds a conflicting mode.  Under fs->lock. */
static int gl_try(struct pfs_fs *fs, uint64_t res, enum coord_mode mode)
{
	struct pfs_glocks *gl = fs->gl;
	pthread_mutex_lock(&gl->mu);
	struct glock *l = gl_find_locked(gl, res, true);
	if (!l) {
		pthread_mutex_unlock(&gl->mu);
		return -ENOMEM;
	}
	if (l->mode >= mode) {
		bool fresh = l->fresh;
		l->fresh = false;
		pthread_mutex_unlock(&gl->mu);
		return fresh ? gl_revalidate(fs, res) : 0;
	}
	enum coord_mode prev = l->mode;
	pthread_mutex_unlock(&gl->mu);
	int err = coord_lock(gl->coord, res, mode, 0);
	if (err == -ESTALE) {
		fs_fence(fs, err, "this node was declared dead by its peers");
		return -EIO;
	}
	if (err == -ETIMEDOUT) {
		pthread_mutex_lock(&gl->mu);
		gl->n_try_fail++;
		pthread_mutex_unlock(&gl->mu);
		return -EAGAIN;
	}
	if (err)
		return err;
	pthread_mutex_lock(&gl->mu);
	l->mode = mode;
	l->fresh = false;
	pthread_mutex_unlock(&gl->mu);
	return prev == COORD_NL ? gl_revalidate(fs, res) : 0;
}

int gl_trylock(struct pfs_fs *fs, uint64_t res, enum coord_mode mode)
{
	if (!fs->gl)
		return 0;
	return gl_try(fs, res, mode);
}

int gl_need(struct pfs_fs *fs, uint64_t res, enum coord_mode mode)
{
	struct pfs_glocks *gl = fs->gl;
	if (!gl)
		return 0;
	int err = gl_try(fs, res, mode);
	if (err != -EAGAIN)
		return err;
	if (!fs->op_changed) {
		gl_op.want = res;                                   /* G3 */
		gl_op.want_mode = mode;
		return -ERESTART;
	}
	/* G3: needed after the request changed state; it cannot restart. */
	pthread_mutex_lock(&gl->mu);
	gl->n_late++;
	pthread_mutex_unlock(&gl->mu);
	err = coord_lock(gl->coord, res, mode, GL_LATE_WAIT_MS);
	if (err) {
		pfs_err("lock %016llx: not granted in %d ms to a request that already changed state (%s)",
			(unsigned long long)res, GL_LATE_WAIT_MS, strerror(-err));
		fs_fence(fs, err, "a cluster lock could not be taken");
		return -EIO;
	}
	pthread_mutex_lock(&gl->mu);
	struct glock *l = gl_find_locked(gl, res, true);
	enum coord_mode prev = l ? l->mode : COORD_NL;
	if (l)
		l->mode = mode;
	pthread_mutex_unlock(&gl->mu);
	return prev == COORD_NL ? gl_revalidate(fs, res) : 0;
}

int gl_need_inode(struct pfs_fs *fs, uint64_t ino, enum coord_mode mode)
{
	return gl_need(fs, gl_res_inode(ino), mode);
}

/* ---- releasing (G2) ---- */

static void gl_queue_note_locked(struct pfs_glocks *gl, uint64_t parent, uint64_t ino,
				 char *name)
{
	struct gl_note *n = calloc(1, sizeof(*n));
	if (!n) {
		free(name);
		return;
	}
	n->parent = parent;
	n->ino = ino;
	n->name = name;
	*gl->notes_tail = n;
	gl->notes_tail = &n->next;
}

/* The kernel caches of the inodes under res: their attributes and pages,
 * and for directories the names it may hold.  Under fs->lock and gl->mu. */
static void gl_collect_notes_locked(struct pfs_fs *fs, uint64_t res)
{
	struct pfs_glocks *gl = fs->gl;
	if (res_type(res) != COORD_RES_INODE || !fs->se)
		return;
	uint64_t first = res_id(res);
	for (uint64_t ino = first; ino < first + PFS_INODES_PER_BLOCK; ino++) {
		struct inode *ip = inode_peek(fs, ino);
		if (!ip)
			continue;
		struct gl_names *nm = ip->names;
		if (nm) {
			for (size_t i = 0; i < nm->n; i++)
				gl_queue_note_locked(gl, ino, 0, nm->v[i]);
			nm->n = 0;
		}
		gl_queue_note_locked(gl, 0, ino, NULL);
	}
	pthread_cond_signal(&gl->ncond);
}

/* Give up res (to NL) or downgrade it to SH, for a peer.  Takes fs->lock. */
static void gl_release(struct pfs_fs *fs, struct glock *l, enum coord_mode target)
{
	struct pfs_glocks *gl = fs->gl;
	pthread_mutex_lock(&fs->lock);
	pthread_mutex_lock(&gl->mu);
	bool skip = l->mode <= target || l->pins > 0 || l->acquiring;
	pthread_mutex_unlock(&gl->mu);
	if (skip || fs->fenced) {                                   /* G2 */
		pthread_mutex_unlock(&fs->lock);
		return;
	}
	int err = l->mode == COORD_EX ? tx_commit(fs) : 0;
	if (err || fs->fenced) {
		pfs_err("lock %016llx: commit before release failed; the lock stays held",
			(unsigned long long)l->res);
		pthread_mutex_unlock(&fs->lock);
		return;
	}
	if (target == COORD_NL)
		bcache_drop_clean(fs->bc);                          /* G2 */
	if (target == COORD_NL)
		err = coord_unlock(gl->coord, l->res);
	else
		err = coord_downgrade(gl->coord, l->res, target);
	if (err == -ESTALE)
		fs_fence(fs, err, "this node was declared dead by its peers");
	if (res_type(l->res) == COORD_RES_GROUP && res_id(l->res) < fs->ngroups)
		fs->groups[res_id(l->res)].held = false;
	pthread_mutex_lock(&gl->mu);
	if (!err || err == -ENOENT) {
		l->mode = target;
		if (target == COORD_NL) {
			gl->n_releases++;
			gl_collect_notes_locked(fs, l->res);            /* G6 */
		} else {
			gl->n_downgrades++;
		}
	}
	pthread_mutex_unlock(&gl->mu);
	pthread_mutex_unlock(&fs->lock);
}

static void gl_blocking_cb(void *arg, uint64_t res, enum coord_mode wanted)
{
	struct pfs_fs *fs = arg;
	struct pfs_glocks *gl = fs->gl;
	struct gl_req *r = calloc(1, sizeof(*r));
	if (!r)
		return;                 /* a hint: the requester's timeout applies */
	r->res = res;
	r->wanted = wanted;
	pthread_mutex_lock(&gl->mu);
	r->next = gl->reqs;
	gl->reqs = r;
	pthread_cond_broadcast(&gl->cond);
	pthread_mutex_unlock(&gl->mu);
}

/* The downconvert thread: serves peers' requests for our locks. */
static void *gl_dc_thread(void *arg)
{
	struct pfs_fs *fs = arg;
	struct pfs_glocks *gl = fs->gl;
	char ctx[48];
	snprintf(ctx, sizeof(ctx), "node=%u slot=%u: glock:", fs->slot, fs->slot);
	pfs_log_set_context(ctx);

	pthread_mutex_lock(&gl->mu);
	while (!gl->stop) {
		struct gl_req **pp = &gl->reqs, *r = NULL;
		bool deferred = false;
		while (*pp) {
			struct glock *l = gl_find_locked(gl, (*pp)->res, false);
			if (!l || !(l->mode > COORD_NL &&
				    !(l->mode == COORD_SH && (*pp)->wanted == COORD_SH))) {
				if (l && l->acquiring) {        /* grant not recorded yet */
					deferred = true;
					pp = &(*pp)->next;
					continue;
				}
				struct gl_req *dead = *pp;      /* stale hint */
				*pp = dead->next;
				free(dead);
				continue;
			}
			if (l->pins > 0 || l->acquiring) {      /* G5 */
				deferred = true;
				pp = &(*pp)->next;
				continue;
			}
			r = *pp;
			*pp = r->next;
			break;
		}
		if (!r) {
			if (deferred) {
				struct timespec ts;
				clock_gettime(CLOCK_MONOTONIC, &ts);
				ts.tv_nsec += 2000000;
				if (ts.tv_nsec >= 1000000000) {
					ts.tv_sec++;
					ts.tv_nsec -= 1000000000;
				}
				pthread_cond_timedwait(&gl->cond, &gl->mu, &ts);
			} else {
				pthread_cond_wait(&gl->cond, &gl->mu);
			}
			continue;
		}
		struct glock *l = gl_find_locked(gl, r->res, false);
		enum coord_mode target = r->wanted == COORD_SH ? COORD_SH : COORD_NL;
		free(r);
		pthread_mutex_unlock(&gl->mu);
		gl_release(fs, l, target);
		pthread_mutex_lock(&gl->mu);
	}
	pthread_mutex_unlock(&gl->mu);
	return NULL;
}

/* The notifier thread (G6). */
static void *gl_nt_thread(void *arg)
{
	struct pfs_fs *fs = arg;
	struct pfs_glocks *gl = fs->gl;
	pthread_mutex_lock(&gl->mu);
	for (;;) {
		while (!gl->notes && !gl->stop)
			pthread_cond_wait(&gl->ncond, &gl->mu);
		if (!gl->notes)
			break;
		struct gl_note *n = gl->notes;
		gl->notes = n->next;
		if (!gl->notes)
			gl->notes_tail = &gl->notes;
		struct fuse_session *se = fs->se;
		gl->sending = se != NULL;
		pthread_mutex_unlock(&gl->mu);
		if (se) {
			if (n->parent)
				fuse_lowlevel_notify_inval_entry(se, n->parent, n->name,
								 strlen(n->name));
			else
				fuse_lowlevel_notify_inval_inode(se, n->ino, 0, 0);
		}
		free(n->name);
		free(n);
		pthread_mutex_lock(&gl->mu);
		gl->sending = false;
		pthread_cond_broadcast(&gl->ncond);
	}
	pthread_mutex_unlock(&gl->mu);
	return NULL;
}

/* ---- the waiting side of a restarted request (G3, G5) ---- */

void gl_op_done(struct pfs_fs *fs)
{
	struct pfs_glocks *gl = fs->gl;
	if (!gl || !gl_op.pinned)
		return;
	pthread_mutex_lock(&gl->mu);
	struct glock *l = gl_find_locked(gl, gl_op.pinned, false);
	if (l && l->pins > 0)
		l->pins--;
	pthread_cond_broadcast(&gl->cond);
	pthread_mutex_unlock(&gl->mu);
	gl_op.pinned = 0;
}

/* Wait (without fs->lock) until res is held in mode; pin it if asked.
 * timeout_ms < 0 waits until granted or the node is fenced. */
static int gl_wait_lock(struct pfs_fs *fs, uint64_t res, enum coord_mode mode,
			int timeout_ms, bool pin)
{
	struct pfs_glocks *gl = fs->gl;
	pthread_mutex_lock(&gl->mu);
	struct glock *l = gl_find_locked(gl, res, true);
	if (!l) {
		pthread_mutex_unlock(&gl->mu);
		return -ENOMEM;
	}
	while (l->acquiring)                    /* one local waiter per lock */
		pthread_cond_wait(&gl->cond, &gl->mu);
	if (l->mode >= mode) {                  /* another thread got it */
		if (pin) {
			l->pins++;
			gl_op.pinned = res;
		}
		pthread_mutex_unlock(&gl->mu);
		return 0;
	}
	gl->n_waits++;
	bool upgrade = l->mode == COORD_SH;
	pthread_mutex_unlock(&gl->mu);
	/* An upgrade gives SH up first, so that two nodes upgrading the same
	 * lock never wait for each other. */
	if (upgrade) {
		pthread_mutex_lock(&gl->mu);
		while (l->mode != COORD_NL && l->pins > 0)
			pthread_cond_wait(&gl->cond, &gl->mu);
		pthread_mutex_unlock(&gl->mu);
		gl_release(fs, l, COORD_NL);
	}
	pthread_mutex_lock(&gl->mu);
	l->acquiring = true;
	pthread_mutex_unlock(&gl->mu);
	int err, waited = 0;
	for (;;) {
		int step = timeout_ms < 0 ? GL_WAIT_STEP_MS : PFS_MIN(GL_WAIT_STEP_MS, timeout_ms - waited);
		err = coord_lock(gl->coord, res, mode, step);
		if (err != -ETIMEDOUT)
			break;
		waited += step;
		if (timeout_ms >= 0 && waited >= timeout_ms)
			break;
		pthread_mutex_lock(&fs->lock);
		int fenced = fs->fenced;
		pthread_mutex_unlock(&fs->lock);
		if (fenced) {
			err = fenced;
			break;
		}
	}
	pthread_mutex_lock(&gl->mu);
	l->acquiring = false;
	if (!err) {
		if (l->mode == COORD_NL)
			l->fresh = true;                                /* G4 */
		if (mode > l->mode)
			l->mode = mode;
		if (pin) {
			l->pins++;
			gl_op.pinned = res;
		}
	}
	pthread_cond_broadcast(&gl->cond);
	pthread_mutex_unlock(&gl->mu);
	if (err == -ESTALE) {
		pthread_mutex_lock(&fs->lock);
		fs_fence(fs, err, "this node was declared dead by its peers");
		pthread_mutex_unlock(&fs->lock);
		err = -EIO;
	}
	return err;
}

int gl_op_wait(struct pfs_fs *fs)
{
	gl_op_done(fs);
	if (!fs->gl || !gl_op.want)
		return 0;
	uint64_t res = gl_op.want;
	gl_op.want = 0;
	return gl_wait_lock(fs, res, gl_op.want_mode, -1, true);
}

int gl_acquire(struct pfs_fs *fs, uint64_t res, enum coord_mode mode, int timeout_ms)
{
	if (!fs->gl)
		return 0;
	return gl_wait_lock(fs, res, mode, timeout_ms, false);
}

/* ---- directory names the kernel may cache ---- */

void gl_note_name(struct pfs_fs *fs, struct inode *dp, const char *name)
{
	if (!fs->gl || !fs->se)
		return;
	struct gl_names *nm = dp->names;
	if (!nm) {
		nm = calloc(1, sizeof(*nm));
		if (!nm)
			return;
		dp->names = nm;
	}
	for (size_t i = nm->n; i > 0 && i + 4 > nm->n; i--)   /* cheap repeat check */
		if (strcmp(nm->v[i - 1], name) == 0)
			return;
	if (nm->n == nm->cap) {
		if (nm->cap >= GL_NAMES_MAX) {
			if (!nm->overflow)
				pfs_warn("directory %llu: more than %u cached names; other nodes' changes may show after the entry timeout",
					 (unsigned long long)dp->ino, GL_NAMES_MAX);
			nm->overflow = true;
			return;
		}
		size_t cap = nm->cap ? nm->cap * 2 : 16;
		char **v = realloc(nm->v, cap * sizeof(*v));
		if (!v)
			return;
		nm->v = v;
		nm->cap = cap;
	}
	char *s = strdup(name);
	if (s)
		nm->v[nm->n++] = s;
}

void gl_free_names(struct inode *ip)
{
	struct gl_names *nm = ip->names;
	if (!nm)
		return;
	for (size_t i = 0; i < nm->n; i++)
		free(nm->v[i]);
	free(nm->v);
	free(nm);
	ip->names = NULL;
}

/* ---- membership: start, stop, heartbeat and failure detection ---- */

int gl_start(struct pfs_fs *fs)
{
	struct pfs_glocks *gl = calloc(1, sizeof(*gl));
	if (!gl)
		return -ENOMEM;
	struct coord_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.spec = fs->opts.coord ? fs->opts.coord : "local";
	memcpy(cfg.uuid, fs->uuid, sizeof(cfg.uuid));
	cfg.slot = fs->slot;
	cfg.generation = fs->slot_gen;
	cfg.host_id = fs->host_id;
	cfg.heartbeat_ms = fs->opts.heartbeat_ms;
	cfg.dead_ms = fs->opts.dead_ms;
	int err = coord_open(&cfg, &gl->coord);
	if (err) {
		if (err == -EBUSY)
			pfs_err("slot %u is live at the coordinator (another node uses it)", fs->slot);
		else if (err != -EAGAIN)        /* declared dead: volume.c waits (R2) */
			pfs_err("cannot join the cluster (coord=%s): %s", cfg.spec, strerror(-err));
		goto out_free;
	}
	pthread_mutex_init(&gl->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&gl->cond, &ca);
	pthread_cond_init(&gl->ncond, &ca);
	pthread_condattr_destroy(&ca);
	gl->notes_tail = &gl->notes;
	fd_init(&gl->fd, fs->opts.dead_ms, fs->opts.fence_ms, pfs_now_mono_ns());
	fs->gl = gl;
	return 0;

out_free:
	free(gl);
	return err;
}

/* After the slot's own journal is backed out: drop the locks inherited
 * from a dead incarnation of this slot, and start serving peers. */
int gl_run(struct pfs_fs *fs)
{
	struct pfs_glocks *gl = fs->gl;
	if (!gl)
		return 0;
	int err = coord_unlock_all(gl->coord);
	if (err)
		return err;
	err = pthread_create(&gl->dc_thread, NULL, gl_dc_thread, fs);
	if (err)
		return -err;
	err = pthread_create(&gl->nt_thread, NULL, gl_nt_thread, fs);
	if (err) {
		pthread_mutex_lock(&gl->mu);
		gl->stop = true;
		pthread_cond_broadcast(&gl->cond);
		pthread_mutex_unlock(&gl->mu);
		pthread_join(gl->dc_thread, NULL);
		return -err;
	}
	gl->threads = true;
	coord_set_blocking_cb(gl->coord, gl_blocking_cb, fs);
	return 0;
}

void gl_stop(struct pfs_fs *fs, bool leave)
{
	struct pfs_glocks *gl = fs->gl;
	if (!gl)
		return;
	if (gl->threads) {
		pthread_mutex_lock(&gl->mu);
		gl->stop = true;
		pthread_cond_broadcast(&gl->cond);
		pthread_cond_broadcast(&gl->ncond);
		pthread_mutex_unlock(&gl->mu);
		pthread_join(gl->dc_thread, NULL);
		pthread_join(gl->nt_thread, NULL);
	}
	/* G2: a fenced node leaves nothing: its locks stay retained until
	 * its recovery, which the coordinator starts once it is silent. */
	if (leave)
		coord_close(gl->coord);
	for (unsigned h = 0; h < GL_HASH; h++) {
		struct glock *l = gl->tab[h];
		while (l) {
			struct glock *next = l->next;
			free(l);
			l = next;
		}
	}
	while (gl->reqs) {
		struct gl_req *r = gl->reqs;
		gl->reqs = r->next;
		free(r);
	}
	while (gl->notes) {
		struct gl_note *n = gl->notes;
		gl->notes = n->next;
		free(n->name);
		free(n);
	}
	pthread_cond_destroy(&gl->cond);
	pthread_cond_destroy(&gl->ncond);
	pthread_mutex_destroy(&gl->mu);
	fs->gl = NULL;
	free(gl);
}

void gl_set_session(struct pfs_fs *fs, void *se)
{
	struct pfs_glocks *gl = fs->gl;
	if (!gl) {
		fs->se = se;
		return;
	}
	pthread_mutex_lock(&gl->mu);
	while (gl->sending)
		pthread_cond_wait(&gl->ncond, &gl->mu);
	fs->se = se;
	pthread_mutex_unlock(&gl->mu);
}

struct coord *gl_coord(struct pfs_fs *fs)
{
	return fs->gl ? fs->gl->coord : NULL;
}

/* One heartbeat period (from the heartbeat thread, without fs->lock):
 * beat at the coordinator, and act on the failure detector's decisions
 * (pfs_fdetect.h): fence if beats failed for fence_ms, declare dead the
 * peers that are silent at the coordinator and whose disk heartbeat has
 * not moved for dead_ms.  Returns the number of peers declared dead. */
int gl_tick(struct pfs_fs *fs, bool disk_beat_ok)
{
	struct pfs_glocks *gl = fs->gl;
	if (!gl)
		return 0;
	uint64_t now = pfs_now_mono_ns();
	int err = coord_heartbeat(gl->coord);
	if (fd_self_beat(&gl->fd, err, disk_beat_ok, now) == FD_SELF_FENCE) {
		pthread_mutex_lock(&fs->lock);
		fs_fence(fs, err ? err : -ETIMEDOUT,
			 err == -ESTALE ? "this node was declared dead by its peers"
					: "heartbeats failed for longer than fence_ms");
		pthread_mutex_unlock(&fs->lock);
		return 0;
	}
	uint32_t silent[PFS_MAX_SLOTS], dead[PFS_MAX_SLOTS];
	struct fd_obs obs[PFS_MAX_SLOTS];
	int n = coord_silent_nodes(gl->coord, silent, PFS_MAX_SLOTS);
	for (int i = 0; i < n; i++) {
		obs[i].slot = silent[i];
		obs[i].disk_ok = vol_read_heartbeat(fs, silent[i], &obs[i].seq) == 0;
		if (!obs[i].disk_ok)
			obs[i].seq = 0;
	}
	size_t nd = fd_peers_tick(&gl->fd, obs, n > 0 ? (size_t)n : 0, now, dead, PFS_MAX_SLOTS);
	int declared = 0;
	for (size_t i = 0; i < nd; i++) {
		err = coord_declare_dead(gl->coord, dead[i]);
		if (!err) {
			pfs_warn("node %u is dead: no heartbeat at the coordinator or on disk for %d ms; its locks are retained until it is recovered",
				 dead[i], fs->opts.dead_ms);
			declared++;
		} else if (err != -EAGAIN && err != -ENOENT) {
			pfs_warn("node %u: cannot declare it dead: %s", dead[i], strerror(-err));
			fd_declare_failed(&gl->fd, dead[i]);
		}
		/* -EAGAIN: it beat again; -ENOENT: it left */
	}
	return declared;
}

void gl_stats(struct pfs_fs *fs, struct gl_stats *st)
{
	memset(st, 0, sizeof(*st));
	struct pfs_glocks *gl = fs->gl;
	if (!gl)
		return;
	pthread_mutex_lock(&gl->mu);
	st->try_fail = gl->n_try_fail;
	st->waits = gl->n_waits;
	st->releases = gl->n_releases;
	st->downgrades = gl->n_downgrades;
	st->late = gl->n_late;
	pthread_mutex_unlock(&gl->mu);
}

/* ---- opens across nodes (inode.c I5) ---- */

static uint64_t gl_res_open(uint64_t ino)
{
	return coord_res(COORD_RES_OPEN, ino);
}

/* OPEN locks are not cached glocks: nobody ever waits for one (EX is only
 * tried, and SH conflicts only with an EX that comes with the inode's
 * lock held EX, which the holder of SH holds), so no peer asks for them
 * and they are released by the close itself. */
int gl_open_hold(struct pfs_fs *fs, uint64_t ino)
{
	struct pfs_glocks *gl = fs->gl;
	if (!gl)
		return 0;
	int err = coord_lock(gl->coord, gl_res_open(ino), COORD_SH, 0);
	if (err == -ESTALE) {
		fs_fence(fs, err, "this node was declared dead by its peers");
		return -EIO;
	}
	if (err == -ETIMEDOUT) {
		/* An EX without the inode's lock: I5 is broken somewhere. */
		pfs_err("inode %llu: open lock held exclusively by a peer",
			(unsigned long long)ino);
		return -EIO;
	}
	return err;
}

void gl_open_drop(struct pfs_fs *fs, uint64_t ino)
{
	struct pfs_glocks *gl = fs->gl;
	if (!gl || fs->fenced)          /* G2: a fenced node releases nothing */
		return;
	int err = coord_unlock(gl->coord, gl_res_open(ino));
	if (err && err != -ENOENT)
		pfs_warn("inode %llu: open lock not released (%s)",
			 (unsigned long long)ino, strerror(-err));
}

int gl_open_excl(struct pfs_fs *fs, uint64_t ino)
{
	struct pfs_glocks *gl = fs->gl;
	if (!gl)
		return 0;
	int err = coord_lock(gl->coord, gl_res_open(ino), COORD_EX, 0);
	if (err == -ETIMEDOUT)
		return -EBUSY;
	if (err == -ESTALE) {
		fs_fence(fs, err, "this node was declared dead by its peers");
		return -EIO;
	}
	return err;
}
