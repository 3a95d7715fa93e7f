/*
 * pfs_backout.h -- the backout engine (recovery/backout.c): backs out the
 * dead transactions of one or more dead slots' journals with a pool of
 * worker threads, releasing each slot as soon as its own transactions are
 * durable.  Used at mount (the node's own slot), by peer recovery
 * (recovery/peer.c), by peerfsctl recover and by fsck.peerfs.
 *
 * Input: the scans of the dead slots (jnl_scan, pfs_jnl.h).  The on-disk
 * result equals jnl_backout of the scans one after another in the order
 * given, whatever the number of workers and the interleaving.
 *
 * Callbacks run on the calling thread (the coordinator of the run), never
 * while the engine's lock is held; from them the caller may call
 * bo_prioritize, bo_cancel and bo_progress.
 */
#ifndef PFS_BACKOUT_H
#define PFS_BACKOUT_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
#include "pfs_jnl.h"

struct bo_run;

/* Most workers a run may use (and the largest max_parallelism accepted). */
#define BO_MAX_WORKERS 64u
/* A worker is only worth starting for this many blocks to write. */
#define BO_MIN_BLOCKS_PER_WORKER 256u

enum bo_sched {
	BO_SCHED_SLICE = 0,     /* time slices, smallest remaining first */
	BO_SCHED_FIFO,          /* transactions in input order, to the end */
};

struct bo_params {
	unsigned max_parallelism;       /* 0: bo_default_parallelism(); 1: serial */
	enum bo_sched sched;
	unsigned slice_us;              /* 0: 2000 */
	unsigned chunk_blocks;          /* blocks per work unit; 0: 64 */
	unsigned tick_ms;               /* period of the tick callback; 0: 100 */
	unsigned min_blocks_per_worker; /* 0: $PEERFS_BACKOUT_MIN_BLOCKS if set
					 * (tests that want workers on small
					 * transactions), else
					 * BO_MIN_BLOCKS_PER_WORKER */
	uint64_t perturb_seed;          /* tests: != 0 adds random delays */
	void *arg;
	/* Every tick_ms while the run lasts (lease renewal, on-demand
	 * requests, progress publication). */
	void (*tick)(void *arg, struct bo_run *r);
	/* Slot `idx` (index in the scans) is finished: err == 0 when its
	 * images are durable and its log closed (ABORT records, clean
	 * header, flushed); otherwise nothing more was written for it. */
	void (*slot_done)(void *arg, struct bo_run *r, size_t idx, int err);
};

/* Progress of one dead transaction. */
struct bo_tx_progress {
	uint32_t slot;
	uint64_t txseq;
	uint64_t undo_done, undo_total;
	int worker;                     /* last worker on it; -1 none yet */
	bool done;                      /* durable */
};

struct bo_stats {
	unsigned workers;               /* 0: serial in the calling thread */
	size_t nslots, ntx;
	uint64_t undo_blocks;           /* images in the scans */
	uint64_t largest_tx;            /* images of the largest transaction */
	uint64_t blocks_written;        /* after resolving, one per block */
	uint64_t chunks;
	double total_ms;
	double first_tx_ms, median_tx_ms;       /* transaction durable */
	double first_slot_ms, median_slot_ms;   /* slot closed */
};

/* 2 x online CPUs, at most BO_MAX_WORKERS. */
unsigned bo_default_parallelism(void);
/* Workers for a run (0 = serial in the calling thread): enough that each
 * has min_per_worker blocks to write, at most one per chunk, at most
 * max_parallelism; a single worker is no better than the calling thread. */
unsigned bo_choose_workers(uint64_t blocks, uint64_t chunks, unsigned max_parallelism,
			   unsigned min_per_worker);
/* Parse a max_parallelism value: 1..BO_MAX_WORKERS. */
int bo_parse_parallelism(const char *s, unsigned *out);

/* Back out the scans.  0 when every slot finished; otherwise the first
 * error (each slot's own result goes to slot_done).  st may be NULL. */
int bo_run(struct bio_dev *dev, const struct pfs_super *sb, const uint8_t key[PFS_KEY_BYTES],
	   struct jnl_scan *scans, size_t nscans, const struct bo_params *p,
	   struct bo_stats *st);

/* From a callback: serve slot idx first (a live node waits for a lock it
 * retains); stop slot idx with err (its registration was lost). */
void bo_prioritize(struct bo_run *r, size_t idx);
void bo_cancel(struct bo_run *r, size_t idx, int err);
/* Progress of slot idx's transactions; returns the count stored. */
size_t bo_progress(struct bo_run *r, size_t idx, struct bo_tx_progress *out, size_t max);
/* Dead transactions of slot idx; workers of the run (0: serial). */
size_t bo_progress_count(struct bo_run *r, size_t idx);
unsigned bo_workers(struct bo_run *r);

/* Recover one slot: jnl_scan_report, back out with up to
 * max_parallelism workers (1: serial), log each phase.  *log_gen as for
 * jnl_scan_report. */
int bo_recover_slot(struct bio_dev *dev, const struct pfs_super *sb,
		    const uint8_t key[PFS_KEY_BYTES], uint32_t slot, uint64_t slot_gen,
		    unsigned max_parallelism, uint64_t *log_gen);

#endif /* PFS_BACKOUT_H */
