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
 * Why backout can never undo someone else's committed change (the
 * concurrency model).  Whole-block before-images are only safe if no
 * other transaction can commit a change to a block while this one holds
 * an uncommitted change to it.  peerfs gets that by construction:
 *   - on a node, every request joins the one running compound transaction
 *     and the whole transaction commits or is backed out as a unit, so two
 *     transactions of a node never share an uncommitted block;
 *   - across nodes, a node changes a block only under the cluster lock of
 *     the object it belongs to and commits before it gives that lock away
 *     (cluster/), so another node's transaction never touches a block
 *     with our uncommitted change in it; the locks of a dead node are
 *     retained until its counterpart has backed it out.
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
 *   T4. The before-image of a block is its content when the running
 *       transaction first dirtied it (a clean buffer equals the disk), and
 *       it is durable in the undo log (jnl.c) before the block is written
 *       in place (the write-ahead rule of undo logging).
 *   T5. Every dirty buffer has a before-image in tx->images.
 *   T7. tx->fresh holds every block the running transaction allocated;
 *       such a block was free before it, so backing the transaction out
 *       frees it again and its contents need no before-image.
 *   T6. A transaction never needs more log than the journal holds: a
 *       request does not start while the dirty set plus what one request
 *       may add exceeds jnl_max_images() * 3/4.
 *
 * Commit protocol (three flushes):
 *   apply deferred frees (alloc.c A5); BEGIN + IMAGES; flush;
 *   write the blocks in place; flush; COMMIT; flush.
 * A crash before the COMMIT is durable leaves the transaction in flight
 * in the log: recovery writes its before-images back (recover.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "pfs_fs.h"
#include "pfs_jnl.h"
#include "pfs_util.h"

struct img_slot {
	uint64_t blk;                   /* IMG_EMPTY if unused */
	uint8_t *img;
};
#define IMG_EMPTY UINT64_MAX
#define IMG_CHUNK 64

struct tx_state {
	pthread_t thread;               /* the commit thread */
	/* Before-images of the running transaction, by block (T4, T5):
	 * open addressing, protected by fs->lock. */
	struct img_slot *images;
	size_t img_cap, img_count;
	uint64_t ops;                   /* requests in the running tx */
	uint8_t *gather;                /* write_back staging, WB_RUN blocks */
	/* Image storage: chunks of IMG_CHUNK blocks, handed out in order and
	 * reused by the next transaction (no allocation per block). */
	uint8_t **chunks;
	size_t nchunks, chunk_cap, img_used;
	/* Blocks allocated by the running transaction (T7): open
	 * addressing set, protected by fs->lock. */
	uint64_t *fresh;
	size_t fresh_cap, fresh_count;
	uint64_t flushes;
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

static size_t img_hash(uint64_t blk, size_t cap)
{
	return (size_t)((blk * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

static int img_grow(struct tx_state *tx)
{
	size_t cap = tx->img_cap ? tx->img_cap * 2 : 1024;
	struct img_slot *n = malloc(cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	for (size_t i = 0; i < cap; i++)
		n[i].blk = IMG_EMPTY;
	for (size_t i = 0; i < tx->img_cap; i++) {
		if (tx->images[i].blk == IMG_EMPTY)
			continue;
		size_t h = img_hash(tx->images[i].blk, cap);
		while (n[h].blk != IMG_EMPTY)
			h = (h + 1) & (cap - 1);
		n[h] = tx->images[i];
	}
	free(tx->images);
	tx->images = n;
	tx->img_cap = cap;
	return 0;
}

static struct img_slot *img_find(struct tx_state *tx, uint64_t blk)
{
	if (!tx->img_cap)
		return NULL;
	size_t h = img_hash(blk, tx->img_cap);
	while (tx->images[h].blk != IMG_EMPTY) {
		if (tx->images[h].blk == blk)
			return &tx->images[h];
		h = (h + 1) & (tx->img_cap - 1);
	}
	return NULL;
}

/* Remember blk's before-image unless one is kept already (the oldest
 * image of the transaction wins). */
static int img_capture(struct tx_state *tx, uint64_t blk, const void *data)
{
	if (img_find(tx, blk))
		return 0;
	if ((tx->img_count + 1) * 2 > tx->img_cap) {
		int err = img_grow(tx);
		if (err)
			return err;
	}
	size_t c = tx->img_used / IMG_CHUNK;
	if (c == tx->nchunks) {
		if (tx->nchunks == tx->chunk_cap) {
			size_t cap = tx->chunk_cap ? tx->chunk_cap * 2 : 16;
			uint8_t **n = realloc(tx->chunks, cap * sizeof(*n));
			if (!n)
				return -ENOMEM;
			tx->chunks = n;
			tx->chunk_cap = cap;
		}
		tx->chunks[c] = aligned_alloc(PFS_BLOCK_SIZE, IMG_CHUNK * PFS_BLOCK_SIZE);
		if (!tx->chunks[c])
			return -ENOMEM;
		tx->nchunks++;
	}
	uint8_t *copy = tx->chunks[c] + (tx->img_used % IMG_CHUNK) * PFS_BLOCK_SIZE;
	tx->img_used++;
	memcpy(copy, data, PFS_BLOCK_SIZE);
	size_t h = img_hash(blk, tx->img_cap);
	while (tx->images[h].blk != IMG_EMPTY)
		h = (h + 1) & (tx->img_cap - 1);
	tx->images[h].blk = blk;
	tx->images[h].img = copy;
	tx->img_count++;
	return 0;
}

static void img_clear(struct tx_state *tx)
{
	if (tx->img_count) {
		for (size_t i = 0; i < tx->img_cap; i++)
			tx->images[i].blk = IMG_EMPTY;
	}
	tx->img_count = 0;
	tx->img_used = 0;
}

static int fresh_grow(struct tx_state *tx)
{
	size_t cap = tx->fresh_cap ? tx->fresh_cap * 2 : 4096;
	uint64_t *n = malloc(cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	for (size_t i = 0; i < cap; i++)
		n[i] = IMG_EMPTY;
	for (size_t i = 0; i < tx->fresh_cap; i++) {
		if (tx->fresh[i] == IMG_EMPTY)
			continue;
		size_t h = img_hash(tx->fresh[i], cap);
		while (n[h] != IMG_EMPTY)
			h = (h + 1) & (cap - 1);
		n[h] = tx->fresh[i];
	}
	free(tx->fresh);
	tx->fresh = n;
	tx->fresh_cap = cap;
	return 0;
}

uint64_t tx_running_seq(const struct pfs_fs *fs)
{
	return fs->tx ? fs->tx->seq + 1 : 0;
}

uint64_t tx_committed_seq(const struct pfs_fs *fs)
{
	return fs->tx ? fs->tx->seq : 0;
}

int tx_note_alloc(struct pfs_fs *fs, uint64_t start, uint32_t len)
{
	struct tx_state *tx = fs->tx;
	if (!fs->jnl || !tx)
		return 0;
	for (uint32_t k = 0; k < len; k++) {
		if ((tx->fresh_count + 1) * 2 > tx->fresh_cap) {
			int err = fresh_grow(tx);
			if (err)
				return err;
		}
		size_t h = img_hash(start + k, tx->fresh_cap);
		while (tx->fresh[h] != IMG_EMPTY && tx->fresh[h] != start + k)
			h = (h + 1) & (tx->fresh_cap - 1);
		if (tx->fresh[h] == IMG_EMPTY) {
			tx->fresh[h] = start + k;
			tx->fresh_count++;
		}
	}
	return 0;
}

bool tx_block_is_new(struct pfs_fs *fs, uint64_t blk)
{
	struct tx_state *tx = fs->tx;
	if (!tx || !tx->fresh_count)
		return false;
	size_t h = img_hash(blk, tx->fresh_cap);
	while (tx->fresh[h] != IMG_EMPTY) {
		if (tx->fresh[h] == blk)
			return true;
		h = (h + 1) & (tx->fresh_cap - 1);
	}
	return false;
}

static void fresh_clear(struct tx_state *tx)
{
	if (tx->fresh_count) {
		for (size_t i = 0; i < tx->fresh_cap; i++)
			tx->fresh[i] = IMG_EMPTY;
	}
	tx->fresh_count = 0;
}

static void img_free(struct tx_state *tx)
{
	img_clear(tx);
	free(tx->fresh);
	for (size_t i = 0; i < tx->nchunks; i++)
		free(tx->chunks[i]);
	free(tx->chunks);
	free(tx->images);
}

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
	img_free(tx);
	free(tx->gather);
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
	fs->op_changed = true;                          /* glock.c G3 */
	if (fs->jnl && !buf_dirty(b)) {
		/* T4: the buffer is clean, so it holds what the disk holds. */
		int err = img_capture(fs->tx, buf_blkno(b), buf_data(b));
		if (err)
			return err;
	}
	int first = bcache_mark_dirty(fs->bc, b);
	if (first && fs->tx && fs->tx->first_dirty_ns == 0) {
		fs->tx->first_dirty_ns = pfs_now_mono_ns();
		pthread_cond_signal(&fs->tx->wake);
	}
	return 0;
}

/* Should the running transaction commit before another request joins
 * it?  (T6, and space held by deferred frees when the volume is low.) */
static bool tx_full(struct pfs_fs *fs)
{
	size_t nd = bcache_ndirty(fs->bc);
	if (fs->jnl && nd > 0) {
		uint64_t reserve = fs->max_write / PFS_BLOCK_SIZE + 64 +
				   2 * PFS_MIN((uint64_t)fs->npending, (uint64_t)fs->ngroups);
		if (nd + reserve > jnl_max_images(fs) * 3 / 4)
			return true;
	}
	return fs->pending_blocks > 0 && fs->free_blocks < fs->pending_blocks + fs->nblocks / 32;
}

void tx_op_begin(struct pfs_fs *fs)
{
	struct tx_state *tx = fs->tx;
	if (tx->ops_in_flight == 0 && !fs->fenced && !fs->opts.ro && tx_full(fs))
		tx_commit(fs);
	tx->ops_in_flight++;
	tx->ops++;
}

void tx_op_end(struct pfs_fs *fs)
{
	struct tx_state *tx = fs->tx;
	PFS_BUG_ON(tx->ops_in_flight == 0);
	tx->ops_in_flight--;
	if (tx->ops_in_flight == 0 && bcache_ndirty(fs->bc) > tx->dirty_limit)
		tx_commit(fs);
}

#define WB_RUN 64

/* Write n sorted buffers in place, coalescing runs of adjacent blocks
 * into one write. */
static int write_back(struct pfs_fs *fs, struct buf **list, size_t n)
{
	struct iovec iov[WB_RUN];
	if (!fs->tx->gather) {
		fs->tx->gather = aligned_alloc(PFS_BLOCK_SIZE, WB_RUN * PFS_BLOCK_SIZE);
		if (!fs->tx->gather)
			return -ENOMEM;
	}
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
			uint8_t *tmp = fs->tx->gather;
			for (size_t k = 0; k < run; k++)
				memcpy(tmp + k * PFS_BLOCK_SIZE, iov[k].iov_base, PFS_BLOCK_SIZE);
			err = bio_write(fs->dev, start, (uint32_t)run, tmp);
		}
		if (err)
			return err;
		i += run;
	}
	return 0;
}

static int flush(struct pfs_fs *fs)
{
	fs->tx->flushes++;
	return bio_flush(fs->dev);
}

/* BEGIN + IMAGES of the n dirty buffers, then flush (T4). */
static int log_before_images(struct pfs_fs *fs, struct buf **list, size_t n)
{
	struct tx_state *tx = fs->tx;
	struct jnl_image *img = malloc(n * sizeof(*img));
	if (!img)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct img_slot *s = img_find(tx, buf_blkno(list[i]));
		PFS_BUG_ON(!s);                                      /* T5 */
		img[i].blkno = s->blk;
		img[i].data = s->img;
	}
	int err = jnl_log_tx(fs, tx->seq + 1, img, n, tx->ops);
	free(img);
	if (!err)
		err = flush(fs);
	return err;
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
	err = alloc_apply_pending(fs);
	if (err) {
		fs_fence(fs, err, "applying the transaction's frees failed");
		return err;
	}
	err = bcache_dirty_list(fs->bc, &list, &n);
	if (err)
		return err;
	if (n == 0) {
		tx->first_dirty_ns = 0;
		tx->ops = 0;
		img_clear(tx);
		fresh_clear(tx);
		free(list);
		/* Data written directly still needs its flush for fsync. */
		err = flush(fs);
		if (err)
			fs_fence(fs, err, "device flush failed");
		return err;
	}
	if (fs->jnl) {
		err = log_before_images(fs, list, n);
		if (err) {
			fs_fence(fs, err, "logging before-images failed");
			goto out_put_list;
		}
	}
	err = write_back(fs, list, n);
	if (!err)
		err = flush(fs);
	if (!err && fs->jnl) {
		err = jnl_log_commit(fs, tx->seq + 1);
		if (!err)
			err = flush(fs);
	}
	if (err) {
		fs_fence(fs, err, "write-back of a commit failed");  /* T3 */
		goto out_put_list;
	}
	for (size_t i = 0; i < n; i++)
		bcache_mark_clean(fs->bc, list[i]);
	img_clear(tx);
	fresh_clear(tx);
	tx->seq++;
	tx->commits++;
	tx->blocks_written += n;
	tx->first_dirty_ns = 0;
	tx->ops = 0;
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
		/* A fenced node commits nothing more (T3): its dirty set stays
		 * until the unmount discards it, and this thread only waits. */
		if (tx->first_dirty_ns && now >= due && tx->ops_in_flight == 0 && !fs->fenced) {
			tx_commit(fs);
			continue;
		}
		if (fs->fenced)
			due = now + period;
		if (due <= now)
			due = now + 1000000;     /* a request is in flight */
		ts.tv_sec = (time_t)(due / 1000000000ull);
		ts.tv_nsec = (long)(due % 1000000000ull);
		pthread_cond_timedwait(&tx->wake, &fs->lock, &ts);
	}
	pthread_mutex_unlock(&fs->lock);
	return NULL;
}
