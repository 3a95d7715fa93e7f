/*
 * tx.c -- transactions and group commit.
 *
 * Design notes
 *
 * peerfs uses one compound transaction per node at a time: every request
 * that changes state joins the running transaction (tx_op_begin/end
 * bracket it, under fs->lock), marks each buffer it changes with
 * tx_dirty(), and returns.  Nothing is written in place until the
 * transaction commits, so many requests share one commit and its device
 * flushes (group commit).
 *
 * States of the running transaction:
 *   OPEN     requests join it; dirty buffers accumulate.
 *   COMMIT   tx_commit() writes it back; no request runs (fs->lock held).
 * tx_commit moves OPEN -> COMMIT -> OPEN (a new, empty transaction).
 * A commit starts when
 *   - commit_ms have passed since the first change (the commit thread),
 *   - fsync, fdatasync, fsyncdir or syncfs asks (tx_commit),
 *   - the dirty buffers exceed the cache budget (tx_op_end),
 *   - the filesystem unmounts.
 *
 * Invariants (protected by fs->lock):
 *   T1. A buffer is dirty iff the running transaction changed it since its
 *       last write-back; only the commit writes dirty buffers in place.
 *   T2. A commit never runs inside a request (ops_in_flight == 0), so the
 *       on-disk image after a commit holds whole requests only.
 *   T3. A commit writes every dirty buffer, flushes the device, and only
 *       then marks the buffers clean; a write or flush error fences the
 *       node (fs_fence) and the buffers stay dirty in memory.
 *
 * The undo journal (journal/jnl.c) plugs in at jnl hooks: it logs each
 * buffer's before-image before the in-place write and a commit record
 * after it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "pfs_fs.h"
#include "pfs_util.h"

struct tx_state {
	pthread_t thread;               /* the commit thread */
	bool thread_started;
	bool stop;                      /* protected by fs->lock */
	pthread_cond_t wake;            /* signalled with fs->lock held */
	uint64_t first_dirty_ns;        /* protected by fs->lock; 0 = clean */
	unsigned ops_in_flight;         /* protected by fs->lock (T2) */
	uint64_t seq;                   /* commits done */
	uint64_t commits, blocks_written;
	size_t dirty_limit;             /* buffers before a forced commit */
};

static void *tx_thread(void *arg);

int tx_init(struct pfs_fs *fs)
{
	struct tx_state *tx = calloc(1, sizeof(*tx));
	if (!tx)
		return -ENOMEM;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&tx->wake, &ca);
	pthread_condattr_destroy(&ca);
	uint64_t budget = fs->opts.cache_bytes ? fs->opts.cache_bytes : (64u << 20);
	tx->dirty_limit = (size_t)PFS_MAX(budget / PFS_BLOCK_SIZE / 2, 256);
	fs->tx = tx;
	if (!fs->opts.ro) {
		int err = pthread_create(&tx->thread, NULL, tx_thread, fs);
		if (err) {
			pthread_cond_destroy(&tx->wake);
			free(tx);
			fs->tx = NULL;
			return -err;
		}
		tx->thread_started = true;
	}
	return 0;
}

void tx_fini(struct pfs_fs *fs)
{
	struct tx_state *tx = fs->tx;
	if (!tx)
		return;
	if (tx->thread_started) {
		pthread_mutex_lock(&fs->lock);
		tx->stop = true;
		pthread_cond_signal(&tx->wake);
		pthread_mutex_unlock(&fs->lock);
		pthread_join(tx->thread, NULL);
	}
	pthread_cond_destroy(&tx->wake);
	free(tx);
	fs->tx = NULL;
}

int tx_dirty(struct pfs_fs *fs, struct buf *b)
{
	if (fs->fenced)
		return fs->fenced;
	if (fs->opts.ro)
		return -EROFS;
	int first = bcache_mark_dirty(fs->bc, b);
	if (first && fs->tx && fs->tx->first_dirty_ns == 0) {
		fs->tx->first_dirty_ns = pfs_now_mono_ns();
		pthread_cond_signal(&fs->tx->wake);
	}
	return 0;
}

void tx_op_begin(struct pfs_fs *fs)
{
	fs->tx->ops_in_flight++;
}

void tx_op_end(struct pfs_fs *fs)
{
	struct tx_state *tx = fs->tx;
	PFS_BUG_ON(tx->ops_in_flight == 0);
	tx->ops_in_flight--;
	if (tx->ops_in_flight == 0 && bcache_ndirty(fs->bc) > tx->dirty_limit)
		tx_commit(fs);
}

/* Write n sorted buffers in place, coalescing runs of adjacent blocks
 * into one vectored write. */
static int write_back(struct pfs_fs *fs, struct buf **list, size_t n)
{
	struct iovec iov[64];
	size_t i = 0;
	while (i < n) {
		size_t run = 1;
		uint64_t start = buf_blkno(list[i]);
		while (i + run < n && run < PFS_ARRAY_SIZE(iov) &&
		       buf_blkno(list[i + run]) == start + run)
			run++;
		for (size_t k = 0; k < run; k++) {
			buf_seal(fs->bc, list[i + k]);
			iov[k].iov_base = buf_data(list[i + k]);
			iov[k].iov_len = PFS_BLOCK_SIZE;
		}
		int err;
		if (run == 1) {
			err = bio_write(fs->dev, start, 1, iov[0].iov_base);
		} else {
			/* Gather into one contiguous write. */
			uint8_t *tmp = malloc(run * PFS_BLOCK_SIZE);
			if (!tmp)
				return -ENOMEM;
			for (size_t k = 0; k < run; k++)
				memcpy(tmp + k * PFS_BLOCK_SIZE, iov[k].iov_base, PFS_BLOCK_SIZE);
			err = bio_write(fs->dev, start, (uint32_t)run, tmp);
			free(tmp);
		}
		if (err)
			return err;
		i += run;
	}
	return 0;
}

int tx_commit(struct pfs_fs *fs)
{
	struct tx_state *tx = fs->tx;
	struct buf **list = NULL;
	size_t n = 0;
	int err;

	if (fs->fenced)
		return fs->fenced;
	if (fs->opts.ro)
		return 0;
	PFS_BUG_ON(tx->ops_in_flight != 0);                  /* T2 */
	err = bcache_dirty_list(fs->bc, &list, &n);
	if (err)
		return err;
	if (n == 0) {
		tx->first_dirty_ns = 0;
		free(list);
		/* Data written directly still needs its flush for fsync. */
		err = bio_flush(fs->dev);
		if (err)
			fs_fence(fs, err, "device flush failed");
		return err;
	}
	err = write_back(fs, list, n);
	if (!err)
		err = bio_flush(fs->dev);
	if (err) {
		fs_fence(fs, err, "write-back of a commit failed");  /* T3 */
		goto out_put_list;
	}
	for (size_t i = 0; i < n; i++)
		bcache_mark_clean(fs->bc, list[i]);
	tx->seq++;
	tx->commits++;
	tx->blocks_written += n;
	tx->first_dirty_ns = 0;
out_put_list:
	for (size_t i = 0; i < n; i++)
		buf_put(list[i]);
	free(list);
	return err;
}

static void *tx_thread(void *arg)
{
	struct pfs_fs *fs = arg;
	struct tx_state *tx = fs->tx;
	uint64_t period = (uint64_t)(fs->opts.commit_ms > 0 ? fs->opts.commit_ms : 1000) * 1000000ull;

	pfs_log_set_context("tx:");
	pthread_mutex_lock(&fs->lock);
	while (!tx->stop) {
		struct timespec ts;
		uint64_t now = pfs_now_mono_ns();
		uint64_t due = tx->first_dirty_ns ? tx->first_dirty_ns + period : now + period;
		if (tx->first_dirty_ns && now >= due && tx->ops_in_flight == 0) {
			tx_commit(fs);
			continue;
		}
		if (due <= now)
			due = now + 1000000;     /* a request is in flight */
		ts.tv_sec = (time_t)(due / 1000000000ull);
		ts.tv_nsec = (long)(due % 1000000000ull);
		pthread_cond_timedwait(&tx->wake, &fs->lock, &ts);
	}
	pthread_mutex_unlock(&fs->lock);
	return NULL;
}
