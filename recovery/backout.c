/*
 * backout.c -- the backout engine: the dead transactions of one or more
 * dead slots backed out by a pool of workers, each slot closed (and so
 * released by its caller) as soon as its own transactions are durable.
 *
 * Design notes
 *
 * Serial backout (journal/recover.c, jnl_backout) writes, per block, the
 * image of the OLDEST in-flight transaction of the slot, flushes, appends
 * an ABORT per transaction and a clean header, and flushes again.  Run
 * over several slots one after another, a block in the in-flight set of
 * two slots ends with the image of the later slot.  The engine computes
 * that final image of every block first (resolution), so what is left is
 * a set of writes to DISTINCT blocks: those commute, and any parallel
 * interleaving of them leaves the device as the serial order does.
 *
 * Work.  A dead transaction (struct bo_tx) is what the journal backs out
 * atomically: a BEGIN without COMMIT/ABORT.  peerfs nodes run one
 * compound transaction at a time (journal/tx.c), so a dead node usually
 * has one, possibly of many thousands of blocks: its resolved blocks are
 * split into chunks of chunk_blocks (the work units), and workers share
 * it chunk by chunk.  A chunk's adjacent blocks go out in one write.
 *
 * Roles.
 *   coordinator  the calling thread: resolves, chooses the worker count,
 *                starts the workers, turns "every image of a transaction
 *                written" into "durable" with a flush, closes each slot's
 *                log (jnl_close_backout) and reports it (slot_done), calls
 *                tick every tick_ms.  It is itself one of the workers,
 *                taking slices between its settles (so a finished
 *                transaction waits at most a slice for its flush, even
 *                with more threads than CPUs); serial: no thread is
 *                started.
 *   worker       takes a slice: picks a transaction (bo_pick_locked),
 *                claims chunks of it and writes them until the slice ends
 *                or the transaction has nothing left, then picks again
 *                (FIFO: the same one); exits when nothing is left to claim.
 * Scheduling (bo_pick_locked): first the transactions of a prioritized
 * slot (a live node waits for a lock it retains: on-demand rollback),
 * then SLICE: the slot with the fewest unclaimed blocks, in it the
 * transaction with the fewest (sizes are known from the scan, so this is
 * shortest-remaining-first, re-decided at every slice: small dead
 * transactions and small dead nodes finish first and their locks go
 * early); FIFO: input order.  The set of work is fixed at the start, so
 * nothing starves.
 *
 * States of a transaction (protected by r->mu), moved by:
 *   QUEUED    next < nunits: chunks left to claim      (workers claim)
 *   WRITING   all claimed, some in flight               (workers finish)
 *   WRITTEN   written == total: every block of every image it logged holds
 *             its final image                           (bo_settle_locked)
 *   DURABLE   a flush after WRITTEN                     (bo_settle_locked)
 * and of a slot: RUNNING -> CLOSED (all its transactions DURABLE, ABORT
 * records + clean header flushed, slot_done(0)) or -> FAILED (cancelled,
 * I/O error, or images outside the data area: slot_done(err)).
 *
 * Invariants:
 *   B1. Every block is written at most once per run, with its final
 *       image: the image of the oldest transaction of the latest slot (in
 *       input order) that logged it.  (bo_resolve)
 *   B2. A transaction's `written` counts the images it logged whose block
 *       holds its final image; it is DURABLE only after a flush issued
 *       once it reached `total`.
 *   B3. A slot's log is closed only when every transaction of every slot
 *       it shares a block with (its closing group) is DURABLE; the slots
 *       of a group close together in input order.  So a crash at any
 *       point leaves the logs of exactly a prefix (in input order) of
 *       each group closed, and re-running backout on what is still dead
 *       writes the same final images (idempotence, P3 of peer.c; inside
 *       a slot, R3 of recover.c keeps the oldest transactions in flight).
 *   B4. Nothing is written for a slot after it FAILED, and a failure
 *       spreads to its closing group (their final images depend on it).
 *       An I/O error fails every slot still running.
 *   B5. Nothing is written before every image of a slot passed R2 of
 *       recover.c (jnl_check_images); a slot that fails it FAILS alone.
 * Lock order: r->mu is taken alone; it is never held across device I/O
 * or a callback.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "pfs_backout.h"
#include "pfs_util.h"

#define BO_DEFAULT_CHUNK 64u
#define BO_DEFAULT_SLICE_US 2000u
#define BO_DEFAULT_TICK_MS 100u

struct bo_ref {
	uint64_t blkno;
	uint32_t slot;                  /* index in the scans */
	uint32_t tx;                    /* index in r->txs */
	size_t k;                       /* image index in its transaction */
	const uint8_t *data;
};

struct bo_tx {
	size_t slot;
	uint64_t txseq;
	size_t *units;                  /* groups it won, by block */
	size_t nunits;
	size_t next;                    /* protected by mu: first unclaimed unit */
	uint64_t total;                 /* images it logged */
	uint64_t written;               /* protected by mu (B2) */
	unsigned inflight;              /* protected by mu: chunks being written */
	int worker;                     /* protected by mu */
	bool durable;                   /* protected by mu */
	double done_ms;
};

struct bo_slot {
	size_t tx0, ntx;                /* its transactions in r->txs */
	size_t group;                   /* closing group (B3): its first slot */
	uint64_t unclaimed;             /* protected by mu */
	bool prio;                      /* protected by mu */
	bool failed, closed;            /* protected by mu */
	bool reported;                  /* coordinator only */
	int err;                        /* protected by mu */
	double done_ms;
};

struct bo_run {
	struct bio_dev *dev;
	const struct pfs_super *sb;
	const uint8_t *key;
	struct jnl_scan *scans;
	size_t nscans;
	struct bo_params p;
	unsigned min_per_worker;

	struct bo_ref *refs;
	size_t nrefs;
	size_t *gstart;                 /* group g: refs[gstart[g] .. gstart[g+1]) */
	size_t ngroups;
	struct bo_tx *txs;
	size_t ntx;
	struct bo_slot *slots;
	uint64_t t0;

	pthread_mutex_t mu;
	pthread_cond_t cv;              /* a chunk finished (coordinator waits) */
	int io_err;                     /* protected by mu: first device error */
	uint64_t chunks;                /* protected by mu */
	unsigned nworkers;
};

struct bo_worker {
	struct bo_run *r;
	int id;
	pthread_t thread;
	uint8_t *buf;                   /* chunk_blocks blocks */
	uint64_t rng;
	int err;
};

static double ms_since(uint64_t t0)
{
	return (double)(pfs_now_mono_ns() - t0) / 1e6;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

unsigned bo_default_parallelism(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	return (unsigned)PFS_MIN((long)BO_MAX_WORKERS, 2 * n);
}

unsigned bo_choose_workers(uint64_t blocks, uint64_t chunks, unsigned max_parallelism,
			   unsigned min_per_worker)
{
	if (min_per_worker == 0)
		min_per_worker = 1;
	uint64_t w = PFS_DIV_ROUND_UP(blocks, min_per_worker);
	w = PFS_MIN(w, chunks);
	w = PFS_MIN(w, (uint64_t)PFS_MIN(max_parallelism, BO_MAX_WORKERS));
	return w <= 1 ? 0 : (unsigned)w;
}

int bo_parse_parallelism(const char *s, unsigned *out)
{
	char *end;
	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || s[0] == '-' || v < 1 || v > BO_MAX_WORKERS)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

/* ---- resolution (B1, B5) ---- */

static int ref_cmp(const void *a, const void *b)
{
	const struct bo_ref *x = a, *y = b;
	if (x->blkno != y->blkno)
		return x->blkno < y->blkno ? -1 : 1;
	if (x->slot != y->slot)
		return x->slot > y->slot ? -1 : 1;      /* the later slot wins */
	if (x->tx != y->tx)
		return x->tx < y->tx ? -1 : 1;          /* the oldest transaction */
	return x->k < y->k ? -1 : (x->k > y->k);
}

static size_t group_find(struct bo_run *r, size_t s)
{
	while (r->slots[s].group != s)
		s = r->slots[s].group = r->slots[r->slots[s].group].group;
	return s;
}

static void group_join(struct bo_run *r, size_t a, size_t b)
{
	a = group_find(r, a);
	b = group_find(r, b);
	if (a != b)
		r->slots[PFS_MAX(a, b)].group = PFS_MIN(a, b);
}

static int bo_resolve(struct bo_run *r)
{
	size_t ntx = 0, nrefs = 0;
	for (size_t s = 0; s < r->nscans; s++) {
		r->slots[s].group = s;
		if (r->slots[s].failed)
			continue;
		ntx += r->scans[s].ndead;
		for (size_t i = 0; i < r->scans[s].ndead; i++)
			nrefs += r->scans[s].dead[i].nimages;
	}
	r->txs = calloc(ntx ? ntx : 1, sizeof(*r->txs));
	r->refs = malloc((nrefs ? nrefs : 1) * sizeof(*r->refs));
	r->gstart = malloc((nrefs + 1) * sizeof(*r->gstart));
	if (!r->txs || !r->refs || !r->gstart)
		return -ENOMEM;
	size_t t = 0, n = 0;
	for (size_t s = 0; s < r->nscans; s++) {
		struct jnl_scan *sc = &r->scans[s];
		r->slots[s].tx0 = t;
		if (r->slots[s].failed)
			continue;
		r->slots[s].ntx = sc->ndead;
		for (size_t i = 0; i < sc->ndead; i++, t++) {
			struct jnl_dead_tx *d = &sc->dead[i];
			r->txs[t].slot = s;
			r->txs[t].txseq = d->txseq;
			r->txs[t].total = d->nimages;
			r->txs[t].worker = -1;
			for (size_t k = 0; k < d->nimages; k++)
				r->refs[n++] = (struct bo_ref){ d->blkno[k], (uint32_t)s, (uint32_t)t, k,
					d->images + k * (size_t)PFS_BLOCK_SIZE };
		}
	}
	r->ntx = t;
	r->nrefs = n;
	qsort(r->refs, n, sizeof(*r->refs), ref_cmp);
	/* Groups of refs to one block; the first of each is its final image
	 * (B1), and it is the winner's unit. */
	size_t g = 0;
	for (size_t i = 0; i < n; i++) {
		if (i == 0 || r->refs[i].blkno != r->refs[i - 1].blkno) {
			r->gstart[g++] = i;
			r->txs[r->refs[i].tx].nunits++;
		} else if (r->refs[i].slot != r->refs[i - 1].slot) {
			group_join(r, r->refs[i].slot, r->refs[i - 1].slot);      /* B3 */
		}
	}
	r->gstart[g] = n;
	r->ngroups = g;
	for (size_t i = 0; i < r->ntx; i++) {
		r->txs[i].units = malloc((r->txs[i].nunits ? r->txs[i].nunits : 1) * sizeof(size_t));
		if (!r->txs[i].units)
			return -ENOMEM;
		r->slots[r->txs[i].slot].unclaimed += r->txs[i].nunits;
		r->txs[i].nunits = 0;
	}
	for (size_t k = 0; k < g; k++) {
		struct bo_tx *w = &r->txs[r->refs[r->gstart[k]].tx];
		w->units[w->nunits++] = k;
	}
	for (size_t s = 0; s < r->nscans; s++)
		r->slots[s].group = group_find(r, s);
	return 0;
}

/* ---- scheduling ---- */

static bool tx_claimable_locked(struct bo_run *r, const struct bo_tx *t)
{
	return t->next < t->nunits && !r->slots[t->slot].failed && !r->io_err;
}

static bool prio_waiting_locked(struct bo_run *r)
{
	for (size_t i = 0; i < r->ntx; i++)
		if (r->slots[r->txs[i].slot].prio && tx_claimable_locked(r, &r->txs[i]))
			return true;
	return false;
}

/* The transaction whose chunks to claim next; NULL when nothing is left. */
static struct bo_tx *bo_pick_locked(struct bo_run *r)
{
	struct bo_tx *best = NULL;
	for (size_t i = 0; i < r->ntx; i++) {
		struct bo_tx *t = &r->txs[i];
		if (!tx_claimable_locked(r, t))
			continue;
		if (!best) {
			best = t;
			continue;
		}
		const struct bo_slot *a = &r->slots[t->slot], *b = &r->slots[best->slot];
		if (a->prio != b->prio) {
			if (a->prio)
				best = t;
			continue;
		}
		if (r->p.sched == BO_SCHED_FIFO)
			continue;               /* input order: the first wins */
		if (a->unclaimed != b->unclaimed) {
			if (a->unclaimed < b->unclaimed)
				best = t;
			continue;
		}
		if (t->nunits - t->next < best->nunits - best->next)
			best = t;
	}
	return best;
}

/* ---- workers ---- */

/* Write units [first, first + n) of t: adjacent blocks in one write. */
static int write_units(struct bo_run *r, struct bo_tx *t, size_t first, size_t n, uint8_t *buf)
{
	size_t i = 0;
	while (i < n) {
		uint64_t start = r->refs[r->gstart[t->units[first + i]]].blkno;
		uint32_t len = 0;
		while (i < n && r->refs[r->gstart[t->units[first + i]]].blkno == start + len) {
			memcpy(buf + (size_t)len * PFS_BLOCK_SIZE,
			       r->refs[r->gstart[t->units[first + i]]].data, PFS_BLOCK_SIZE);
			len++;
			i++;
		}
		int err = bio_write(r->dev, start, len, buf);
		if (err)
			return err;
	}
	return 0;
}

static void perturb(struct bo_worker *w)
{
	if (!w->r->p.perturb_seed)
		return;
	uint64_t x = splitmix(&w->rng);
	if (x & 1)
		sched_yield();
	else if ((x >> 1) % 4 == 0)
		usleep((useconds_t)((x >> 8) % 300));
}

/* One slice: 1 if something was written or tried, 0 if nothing is left
 * to claim. */
static int bo_slice(struct bo_worker *w)
{
	struct bo_run *r = w->r;
	uint64_t end = pfs_now_mono_ns() + (uint64_t)r->p.slice_us * 1000ull;

	pthread_mutex_lock(&r->mu);
	struct bo_tx *t = bo_pick_locked(r);
	if (!t) {
		pthread_mutex_unlock(&r->mu);
		return 0;
	}
	for (;;) {
		size_t first = t->next, n = PFS_MIN((size_t)r->p.chunk_blocks, t->nunits - t->next);
		t->next += n;
		t->inflight++;
		t->worker = w->id;
		r->slots[t->slot].unclaimed -= n;
		pthread_mutex_unlock(&r->mu);

		perturb(w);
		int err = write_units(r, t, first, n, w->buf);

		pthread_mutex_lock(&r->mu);
		t->inflight--;
		r->chunks++;
		if (err) {
			if (!r->io_err)
				r->io_err = err;        /* B4 */
		} else {
			for (size_t u = first; u < first + n; u++) {
				size_t g = t->units[u];
				PFS_ASSERT(r->refs[r->gstart[g]].tx == (uint32_t)(t - r->txs));   /* B1 */
				for (size_t k = r->gstart[g]; k < r->gstart[g + 1]; k++) {
					struct bo_tx *o = &r->txs[r->refs[k].tx];
					o->written++;                           /* B2 */
					PFS_BUG_ON(o->written > o->total);
				}
			}
		}
		pthread_cond_signal(&r->cv);
		if (!tx_claimable_locked(r, t))
			break;
		if (!r->slots[t->slot].prio && prio_waiting_locked(r))
			break;                  /* on-demand: preempt at once */
		if (pfs_now_mono_ns() >= end)
			break;                  /* FIFO picks the same again */
	}
	pthread_mutex_unlock(&r->mu);
	return 1;
}

static void *bo_worker_main(void *arg)
{
	struct bo_worker *w = arg;
	while (bo_slice(w))
		;
	return NULL;
}

/* ---- the coordinator ---- */

static void slot_fail_locked(struct bo_run *r, size_t s, int err)
{
	for (size_t i = 0; i < r->nscans; i++) {
		if (r->slots[i].group != r->slots[s].group || r->slots[i].closed ||
		    r->slots[i].failed)
			continue;
		r->slots[i].failed = true;                                  /* B4 */
		r->slots[i].err = err;
	}
}

static bool group_busy_locked(struct bo_run *r, size_t group)
{
	for (size_t i = 0; i < r->ntx; i++)
		if (r->slots[r->txs[i].slot].group == group && r->txs[i].inflight)
			return true;
	return false;
}

/* Move what can be moved: WRITTEN -> DURABLE (a flush), groups whose
 * transactions are all DURABLE -> CLOSED, FAILED slots without chunks in
 * flight -> reported.  Drops mu around I/O and callbacks.  Returns true
 * when every slot is reported. */
static bool bo_settle_locked(struct bo_run *r)
{
	if (r->io_err)
		for (size_t s = 0; s < r->nscans; s++)
			if (!r->slots[s].closed && !r->slots[s].failed)
				slot_fail_locked(r, s, r->io_err);

	bool newly = false;
	for (size_t i = 0; i < r->ntx; i++) {
		struct bo_tx *t = &r->txs[i];
		if (!t->durable && t->written == t->total && !r->slots[t->slot].failed)
			newly = true;
	}
	if (newly) {
		/* Everything counted in `written` was written before the flush
		 * starts; later writes wait for the next settle (B2). */
		bool mark[r->ntx ? r->ntx : 1];
		for (size_t i = 0; i < r->ntx; i++)
			mark[i] = !r->txs[i].durable && r->txs[i].written == r->txs[i].total;
		pthread_mutex_unlock(&r->mu);
		int err = bio_flush(r->dev);
		pthread_mutex_lock(&r->mu);
		if (err) {
			if (!r->io_err)
				r->io_err = err;
			return bo_settle_locked(r);
		}
		double now = ms_since(r->t0);
		for (size_t i = 0; i < r->ntx; i++)
			if (mark[i]) {
				r->txs[i].durable = true;
				r->txs[i].done_ms = now;
			}
	}

	/* B3: a group whose transactions are all DURABLE closes, its slots
	 * in input order. */
	for (size_t s = 0; s < r->nscans; s++) {
		if (r->slots[s].group != s)
			continue;
		bool ready = true;
		for (size_t m = s; m < r->nscans && ready; m++)
			if (r->slots[m].group == s && r->slots[m].failed)
				ready = false;
		for (size_t i = 0; i < r->ntx && ready; i++)
			if (r->slots[r->txs[i].slot].group == s && !r->txs[i].durable)
				ready = false;
		for (size_t m = s; m < r->nscans && ready; m++) {
			if (r->slots[m].group != s || r->slots[m].closed)
				continue;
			pthread_mutex_unlock(&r->mu);
			int err = jnl_close_backout(r->dev, r->sb, r->key, &r->scans[m]);
			pthread_mutex_lock(&r->mu);
			if (err) {
				if (!r->io_err)
					r->io_err = err;
				slot_fail_locked(r, m, err);        /* B4 */
				break;
			}
			r->slots[m].closed = true;
			r->slots[m].done_ms = ms_since(r->t0);
		}
	}

	/* Report: closed slots, and failed ones once nothing of their
	 * group is in flight. */
	bool all = true;
	for (size_t s = 0; s < r->nscans; s++) {
		struct bo_slot *sl = &r->slots[s];
		if (sl->reported)
			continue;
		if (!sl->closed && !(sl->failed && !group_busy_locked(r, sl->group))) {
			all = false;
			continue;
		}
		sl->reported = true;
		if (!sl->closed)
			sl->done_ms = ms_since(r->t0);
		int err = sl->closed ? 0 : sl->err;
		pthread_mutex_unlock(&r->mu);
		if (r->p.slot_done)
			r->p.slot_done(r->p.arg, r, s, err);
		pthread_mutex_lock(&r->mu);
	}
	return all;
}

void bo_prioritize(struct bo_run *r, size_t idx)
{
	pthread_mutex_lock(&r->mu);
	if (idx < r->nscans)
		for (size_t s = 0; s < r->nscans; s++)
			if (r->slots[s].group == r->slots[idx].group)
				r->slots[s].prio = true;
	pthread_mutex_unlock(&r->mu);
}

void bo_cancel(struct bo_run *r, size_t idx, int err)
{
	pthread_mutex_lock(&r->mu);
	if (idx < r->nscans && !r->slots[idx].closed && !r->slots[idx].failed)
		slot_fail_locked(r, idx, err);
	pthread_mutex_unlock(&r->mu);
}

size_t bo_progress(struct bo_run *r, size_t idx, struct bo_tx_progress *out, size_t max)
{
	size_t n = 0;
	pthread_mutex_lock(&r->mu);
	if (idx < r->nscans) {
		const struct bo_slot *sl = &r->slots[idx];
		for (size_t i = sl->tx0; i < sl->tx0 + sl->ntx && n < max; i++, n++) {
			out[n] = (struct bo_tx_progress){
				.slot = r->scans[idx].slot,
				.txseq = r->txs[i].txseq,
				.undo_done = r->txs[i].written,
				.undo_total = r->txs[i].total,
				.worker = r->txs[i].worker,
				.done = r->txs[i].durable,
			};
		}
	}
	pthread_mutex_unlock(&r->mu);
	return n;
}

size_t bo_progress_count(struct bo_run *r, size_t idx)
{
	return idx < r->nscans ? r->slots[idx].ntx : 0;
}

unsigned bo_workers(struct bo_run *r)
{
	return r->nworkers;
}

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : (x > y);
}

static void first_median(double *v, size_t n, double *first, double *median)
{
	if (!n)
		return;
	qsort(v, n, sizeof(*v), dbl_cmp);
	*first = v[0];
	*median = v[(n - 1) / 2];
}

static void bo_fill_stats(struct bo_run *r, struct bo_stats *st)
{
	double *v = malloc((PFS_MAX(r->ntx, r->nscans) + 1) * sizeof(*v));
	size_t n = 0;
	st->total_ms = ms_since(r->t0);
	st->chunks = r->chunks;
	if (!v)
		return;
	for (size_t i = 0; i < r->ntx; i++)
		if (r->txs[i].durable)
			v[n++] = r->txs[i].done_ms;
	first_median(v, n, &st->first_tx_ms, &st->median_tx_ms);
	n = 0;
	for (size_t s = 0; s < r->nscans; s++)
		if (r->slots[s].closed)
			v[n++] = r->slots[s].done_ms;
	first_median(v, n, &st->first_slot_ms, &st->median_slot_ms);
	free(v);
}

static void bo_free(struct bo_run *r)
{
	for (size_t i = 0; r->txs && i < r->ntx; i++)
		free(r->txs[i].units);
	free(r->txs);
	free(r->refs);
	free(r->gstart);
	free(r->slots);
}

int bo_run(struct bio_dev *dev, const struct pfs_super *sb, const uint8_t key[PFS_KEY_BYTES],
	   struct jnl_scan *scans, size_t nscans, const struct bo_params *p,
	   struct bo_stats *st)
{
	struct bo_run run, *r = &run;
	struct bo_stats dummy;
	struct bo_worker *ws = NULL;
	int err = 0;

	if (!st)
		st = &dummy;
	memset(st, 0, sizeof(*st));
	memset(r, 0, sizeof(*r));
	r->t0 = pfs_now_mono_ns();
	r->dev = dev;
	r->sb = sb;
	r->key = key;
	r->scans = scans;
	r->nscans = nscans;
	r->p = *p;
	if (!r->p.max_parallelism)
		r->p.max_parallelism = bo_default_parallelism();
	if (!r->p.slice_us)
		r->p.slice_us = BO_DEFAULT_SLICE_US;
	if (!r->p.tick_ms)
		r->p.tick_ms = BO_DEFAULT_TICK_MS;
	r->min_per_worker = r->p.min_blocks_per_worker ? r->p.min_blocks_per_worker
						       : BO_MIN_BLOCKS_PER_WORKER;
	const char *env = getenv("PEERFS_BACKOUT_MIN_BLOCKS");    /* tests, benchmarks */
	if (!r->p.min_blocks_per_worker && env && atoi(env) > 0)
		r->min_per_worker = (unsigned)atoi(env);
	r->slots = calloc(nscans ? nscans : 1, sizeof(*r->slots));
	if (!r->slots)
		return -ENOMEM;
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);

	for (size_t s = 0; s < nscans; s++) {
		int cerr = jnl_check_images(sb, &scans[s]);                 /* B5 */
		if (cerr) {
			r->slots[s].failed = true;
			r->slots[s].err = cerr;
		}
	}
	err = bo_resolve(r);
	if (err)
		goto out_free;

	if (!r->p.chunk_blocks) {
		/* Chunks of at most BO_DEFAULT_CHUNK blocks, small enough
		 * that every worker the size allows gets four or more. */
		uint64_t w = PFS_MIN((uint64_t)PFS_MIN(r->p.max_parallelism, BO_MAX_WORKERS),
				     PFS_DIV_ROUND_UP(r->ngroups, r->min_per_worker));
		uint64_t c = PFS_DIV_ROUND_UP(r->ngroups, PFS_MAX(w, 1) * 4);
		r->p.chunk_blocks = (unsigned)PFS_MAX(1, PFS_MIN(c, BO_DEFAULT_CHUNK));
	}
	uint64_t chunks = 0, largest = 0;
	for (size_t i = 0; i < r->ntx; i++) {
		chunks += PFS_DIV_ROUND_UP(r->txs[i].nunits, r->p.chunk_blocks);
		largest = PFS_MAX(largest, r->txs[i].total);
	}
	r->nworkers = bo_choose_workers(r->ngroups, chunks, r->p.max_parallelism,
					r->min_per_worker);
	st->workers = r->nworkers;
	st->nslots = nscans;
	st->ntx = r->ntx;
	st->undo_blocks = r->nrefs;
	st->largest_tx = largest;
	st->blocks_written = r->ngroups;
	pfs_info("backout: %zu dead transaction%s in %zu slot%s, %llu undo blocks (largest %llu), "
		 "%zu blocks to write in %llu chunks of %u: %s%u (max_parallelism %u, %u CPUs, "
		 "%u blocks per worker at least, %s)",
		 r->ntx, r->ntx == 1 ? "" : "s", nscans, nscans == 1 ? "" : "s",
		 (unsigned long long)r->nrefs, (unsigned long long)largest, r->ngroups,
		 (unsigned long long)chunks, r->p.chunk_blocks,
		 r->nworkers ? "workers " : "serial, workers ", r->nworkers,
		 r->p.max_parallelism, (unsigned)sysconf(_SC_NPROCESSORS_ONLN), r->min_per_worker,
		 r->p.sched == BO_SCHED_FIFO ? "in order" : "time slices");

	unsigned nthreads = r->nworkers ? r->nworkers : 1;
	ws = calloc(nthreads, sizeof(*ws));
	if (!ws) {
		err = -ENOMEM;
		goto out_free;
	}
	for (unsigned i = 0; i < nthreads; i++) {
		ws[i].r = r;
		ws[i].id = r->nworkers ? (int)i + 1 : 0;
		ws[i].rng = r->p.perturb_seed * 0x2545F4914F6CDD1Dull + i;
		ws[i].buf = aligned_alloc(PFS_BLOCK_SIZE, (size_t)r->p.chunk_blocks * PFS_BLOCK_SIZE);
		if (!ws[i].buf) {
			err = -ENOMEM;
			goto out_free_workers;
		}
	}
	/* The coordinator is one of the workers: it takes slices between
	 * its settles, so a finished transaction waits at most a slice for
	 * its flush even when the threads outnumber the CPUs. */
	unsigned started = 0;
	for (; started + 1 < r->nworkers; started++) {
		int e = pthread_create(&ws[started].thread, NULL, bo_worker_main, &ws[started]);
		if (e) {
			/* Fewer workers: the coordinator works too. */
			pfs_warn("backout: cannot start worker %u (%s); going on with %u",
				 started + 1, strerror(e), started);
			break;
		}
	}

	/* The first tick comes before any work: requests already waiting
	 * set the priorities from the start. */
	uint64_t next_tick = r->p.tick ? pfs_now_mono_ns() : UINT64_MAX;
	pthread_mutex_lock(&r->mu);
	for (;;) {
		if (bo_settle_locked(r))
			break;
		if (r->p.tick && pfs_now_mono_ns() >= next_tick) {
			pthread_mutex_unlock(&r->mu);
			r->p.tick(r->p.arg, r);
			next_tick = pfs_now_mono_ns() + (uint64_t)r->p.tick_ms * 1000000ull;
			pthread_mutex_lock(&r->mu);
			continue;
		}
		bool claimable = false;
		for (size_t i = 0; i < r->ntx && !claimable; i++)
			claimable = tx_claimable_locked(r, &r->txs[i]);
		if (claimable || started == 0) {
			/* Serial, or one of the workers: the coordinator works. */
			pthread_mutex_unlock(&r->mu);
			int did = bo_slice(&ws[started < nthreads ? started : 0]);
			pthread_mutex_lock(&r->mu);
			if (did)
				continue;
		}
		struct timespec ts;
		uint64_t due = PFS_MIN(next_tick, pfs_now_mono_ns() + 50000000ull);
		ts.tv_sec = (time_t)(due / 1000000000ull);
		ts.tv_nsec = (long)(due % 1000000000ull);
		pthread_cond_timedwait(&r->cv, &r->mu, &ts);
	}
	err = r->io_err;
	for (size_t s = 0; s < nscans && !err; s++)
		if (r->slots[s].failed)
			err = r->slots[s].err;
	pthread_mutex_unlock(&r->mu);
	for (unsigned i = 0; i < started; i++)
		pthread_join(ws[i].thread, NULL);
	bo_fill_stats(r, st);

out_free_workers:
	for (unsigned i = 0; i < nthreads; i++)
		free(ws[i].buf);
	free(ws);
out_free:
	if (err == -ENOMEM && r->p.slot_done)
		for (size_t s = 0; s < nscans; s++)
			if (!r->slots[s].reported)
				r->p.slot_done(r->p.arg, r, s, -ENOMEM);
	bo_free(r);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	return err;
}

/* ---- one slot ---- */

int bo_recover_slot(struct bio_dev *dev, const struct pfs_super *sb,
		    const uint8_t key[PFS_KEY_BYTES], uint32_t slot, uint64_t slot_gen,
		    unsigned max_parallelism, uint64_t *log_gen)
{
	struct jnl_scan s;
	uint64_t undo;
	int err = jnl_scan_report(dev, sb, key, slot, slot_gen, &s, &undo, log_gen);
	if (err <= 0)
		return err;
	struct bo_params p = { .max_parallelism = max_parallelism };
	struct bo_stats st;
	err = bo_run(dev, sb, key, &s, 1, &p, &st);
	if (err)
		pfs_err("slot=%u: backout failed: %s", slot, strerror(-err));
	else
		pfs_info("journal of slot %u: backout: %zu transactions, %llu blocks restored, "
			 "log closed (%.1f ms, %u workers)", slot, s.ndead,
			 (unsigned long long)undo, st.total_ms, st.workers);
	jnl_scan_free(&s);
	return err;
}
