/*
 * bobench.c -- benchmark of the backout engine (recovery/backout.c) on
 * synthetic dead journals written through the journal library: no mount,
 * no daemon.  Run by bench/backout.sh.
 *
 *   bobench [-u UNDO_BLOCKS] [-t TXS] [-r RUNS] IMAGE
 *
 * IMAGE is created (a sparse file; put it on tmpfs for "memory", on a
 * disk file system for "disk").  Three slots are given dead journals:
 *   slot 0  TXS dead transactions (sizes spread over powers of two from
 *           16 to 8% of the total, in random order; a few blocks shared
 *           between neighbours)
 *           holding UNDO_BLOCKS before-images in all;
 *   slot 1  one dead transaction of UNDO_BLOCKS * 3/4 blocks (a node that
 *           died in the middle of a big overwrite);
 *   slot 2  one dead transaction of UNDO_BLOCKS / 32 blocks.
 * Scenarios, each RUNS times (median reported), every run writing the
 * same images and closing the same logs again (backout is idempotent, and
 * the scans are kept in memory):
 *   workers    slot 0 alone at max_parallelism 1, 2, 4, 8: total time;
 *   slicing    slot 0 at 1 and 4 workers, with time slices and in input
 *              order: time until the first and the median dead
 *              transaction is durable (its locks could go);
 *   two-nodes  slots 1 and 2 dead together, at 1 and 4 workers: backed
 *              out one after the other (the big one first, as the slot
 *              order would have it) or in one run: time until each
 *              node's log is closed (its locks released) and in all.
 * Output: one "result SCENARIO key=value..." line per measurement.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pfs_backout.h"
#include "pfs_bio.h"
#include "pfs_format.h"
#include "pfs_jnl.h"
#include "pfs_key.h"
#include "pfs_mkfs.h"
#include "pfs_util.h"
#include "../journal/jlog.h"

#define BS PFS_BLOCK_SIZE

static uint64_t rng = 0x1234567;

static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

struct bench {
	struct bio_dev *dev;
	struct pfs_super sb;
	uint8_t key[PFS_KEY_BYTES];
	uint64_t data0;
	struct pfs_jrec_image *im;
};

/* Log one dead transaction of n images of blocks blk[] into l. */
static int log_tx(struct bench *b, struct jlog *l, uint64_t txseq, const uint64_t *blk, size_t n,
		  bool keep_tail)
{
	if (!keep_tail)
		l->tail = l->head;
	int err = jlog_write_header(l, false);
	struct pfs_jrec_begin bg = {
		.txseq = cpu_to_le64(txseq),
		.undo_blocks = cpu_to_le64(n),
		.ops = cpu_to_le64(1),
		.time_ns = cpu_to_le64(pfs_now_real_ns()),
	};
	if (!err)
		err = jlog_append(l, PFS_JREC_BEGIN, txseq, &bg, sizeof(bg), 0);
	for (size_t i = 0; !err && i < n; i += PFS_JREC_MAX_IMAGES) {
		size_t k = PFS_MIN((size_t)PFS_JREC_MAX_IMAGES, n - i);
		for (size_t m = 0; m < k; m++) {
			b->im[m].blkno = cpu_to_le64(blk[i + m]);
			memset(b->im[m].data, (int)(txseq + blk[i + m]), BS);
		}
		err = jlog_append(l, PFS_JREC_IMAGES, txseq, b->im, k * sizeof(*b->im), (uint32_t)k);
	}
	return err;
}

/* Slot s gets ntx transactions of sizes[] blocks; blocks from *next on,
 * consecutive runs, with `share` blocks of each taken from the previous. */
static int make_slot(struct bench *b, uint32_t s, const size_t *sizes, size_t ntx,
		     uint64_t *next, size_t share)
{
	struct jlog l;
	int err = jlog_init(&l, b->dev, &b->sb, b->key, s, 1);
	if (err)
		return err;
	err = jlog_write_header(&l, true);
	if (!err)
		err = jlog_write_header(&l, true);
	uint64_t prev = *next;
	for (size_t i = 0; i < ntx && !err; i++) {
		uint64_t *blk = malloc(sizes[i] * sizeof(*blk));
		if (!blk) {
			err = -ENOMEM;
			break;
		}
		for (size_t k = 0; k < sizes[i]; k++)
			blk[k] = (i > 0 && k < share) ? prev + k : (*next)++;
		prev = blk[PFS_MIN(share, sizes[i] - 1)];
		err = log_tx(b, &l, 100 * (s + 1) + i, blk, sizes[i], i > 0);
		free(blk);
	}
	jlog_fini(&l);
	return err;
}

static int dcmp(const void *x, const void *y)
{
	double a = *(const double *)x, c = *(const double *)y;
	return a < c ? -1 : (a > c);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), dcmp);
	return v[(n - 1) / 2];
}

struct slot_times {
	double done_ms[3];
	uint64_t t0;
};

static void on_done(void *arg, struct bo_run *r, size_t idx, int err)
{
	struct slot_times *t = arg;
	if (idx < 3)
		t->done_ms[idx] = err ? -1 : (double)(pfs_now_mono_ns() - t->t0) / 1e6;
}

static int run(struct bench *b, struct jnl_scan *sc, size_t n, unsigned workers,
	       enum bo_sched sched, struct bo_stats *st, struct slot_times *tm)
{
	struct bo_params p = {
		.max_parallelism = workers,
		.sched = sched,
		.slot_done = on_done,
		.arg = tm,
	};
	return bo_run(b->dev, &b->sb, b->key, sc, n, &p, st);
}

int main(int argc, char **argv)
{
	size_t undo = 16384, ntx = 64;
	int runs = 3, opt;
	while ((opt = getopt(argc, argv, "u:t:r:")) != -1) {
		switch (opt) {
		case 'u': undo = strtoull(optarg, NULL, 0); break;
		case 't': ntx = strtoull(optarg, NULL, 0); break;
		case 'r': runs = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: bobench [-u UNDO_BLOCKS] [-t TXS] [-r RUNS] IMAGE\n");
			return 1;
		}
	}
	if (optind + 1 != argc || undo < 1024 || ntx < 1 || runs < 1 || runs > 32) {
		fprintf(stderr, "usage: bobench [-u UNDO_BLOCKS>=1024] [-t TXS] [-r RUNS<=32] IMAGE\n");
		return 1;
	}
	const char *img = argv[optind];
	struct bench b;
	memset(&b, 0, sizeof(b));
	pfs_log_set_level(PFS_LOG_WARN);
	if (key_init()) {
		fprintf(stderr, "bobench: libsodium init failed\n");
		return 1;
	}
	key_generate(b.key);
	/* Journals: the largest slot's images plus records, headers, slack. */
	uint64_t jbytes = ((undo + undo / 8) * (BS + 64) + (8u << 20)) & ~((1ull << 20) - 1);
	uint64_t nblk = 3 * (jbytes / BS) + 3 * undo + 65536;
	struct pfs_format_params fp;
	memset(&fp, 0, sizeof(fp));
	fp.slots = 3;
	fp.journal_bytes = jbytes;
	const char *why = NULL;
	int fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		perror(img);
		return 1;
	}
	int err = format_write(fd, nblk, &fp, b.key, &b.sb, &why);
	close(fd);
	if (err) {
		fprintf(stderr, "bobench: format: %s (%s)\n", why ? why : "?", strerror(-err));
		return 1;
	}
	err = bio_open(img, true, &b.dev);
	if (err)
		goto out_err;
	b.im = malloc(PFS_JREC_MAX_IMAGES * sizeof(*b.im));
	if (!b.im) {
		err = -ENOMEM;
		goto out_err;
	}
	b.data0 = le64_to_cpu(b.sb.group_start) + 1024;

	/* slot 0: ntx transactions, log-uniform sizes summing to ~undo */
	size_t *sz = calloc(ntx, sizeof(*sz)), total = 0;
	double *w = calloc(ntx, sizeof(*w)), wsum = 0;
	if (!sz || !w) {
		err = -ENOMEM;
		goto out_err;
	}
	size_t maxtx = PFS_MAX((size_t)32, undo * 8 / 100);
	unsigned levels = 0;
	while ((16ull << (levels + 1)) <= maxtx)
		levels++;
	for (size_t i = 0; i < ntx; i++) {
		/* 16 << k, k uniform: sizes spread over powers of two */
		w[i] = (double)(16ull << (rnd() % (levels + 1))) * (1.0 + (double)(rnd() % 100) / 100.0);
		wsum += w[i];
	}
	for (size_t i = 0; i < ntx; i++) {
		sz[i] = PFS_MAX((size_t)1, (size_t)(w[i] / wsum * (double)undo));
		total += sz[i];
	}
	uint64_t next = b.data0;
	err = make_slot(&b, 0, sz, ntx, &next, 4);
	size_t big = undo * 3 / 4, small = undo / 32;
	if (!err)
		err = make_slot(&b, 1, &big, 1, &next, 0);
	if (!err)
		err = make_slot(&b, 2, &small, 1, &next, 0);
	if (!err)
		err = bio_flush(b.dev);
	if (err)
		goto out_err;
	struct jnl_scan sc[3];
	for (uint32_t s = 0; s < 3; s++) {
		err = jnl_scan(b.dev, &b.sb, b.key, s, 1, &sc[s]);
		if (err)
			goto out_err;
	}
	printf("info slot0: %zu transactions, %zu undo blocks (largest %zu); slot1: %zu; slot2: %zu; image %s\n",
	       ntx, total, maxtx, big, small, img);
	fflush(stdout);

	/* Warm-up: the first run allocates the blocks of the sparse image. */
	struct bo_params warm = { .max_parallelism = 1 };
	for (uint32_t s = 0; s < 3 && !err; s++)
		err = bo_run(b.dev, &b.sb, b.key, &sc[s], 1, &warm, NULL);
	if (err)
		goto out_err;

	static const unsigned wk[] = { 1, 2, 4, 8 };
	double v[32], v2[32], v3[32];
	struct bo_stats st;
	struct slot_times tm;
	for (size_t i = 0; i < PFS_ARRAY_SIZE(wk); i++) {
		unsigned used = 0;
		for (int k = 0; k < runs; k++) {
			tm.t0 = pfs_now_mono_ns();
			if ((err = run(&b, &sc[0], 1, wk[i], BO_SCHED_SLICE, &st, &tm)))
				goto out_err;
			v[k] = st.total_ms;
			used = st.workers;
		}
		printf("result workers max=%u used=%u blocks=%llu total_ms=%.1f\n", wk[i], used,
		       (unsigned long long)st.blocks_written, median(v, runs));
		fflush(stdout);
	}
	static const unsigned wk2[] = { 1, 4 };
	for (size_t i = 0; i < PFS_ARRAY_SIZE(wk2); i++) {
		for (int sch = 0; sch < 2; sch++) {
			for (int k = 0; k < runs; k++) {
				tm.t0 = pfs_now_mono_ns();
				if ((err = run(&b, &sc[0], 1, wk2[i], sch ? BO_SCHED_FIFO : BO_SCHED_SLICE,
					       &st, &tm)))
					goto out_err;
				v[k] = st.first_tx_ms;
				v2[k] = st.median_tx_ms;
				v3[k] = st.total_ms;
			}
			printf("result slicing workers=%u sched=%s first_ms=%.1f median_ms=%.1f total_ms=%.1f\n",
			       wk2[i], sch ? "in-order" : "slices", median(v, runs), median(v2, runs),
			       median(v3, runs));
			fflush(stdout);
		}
	}
	for (size_t i = 0; i < PFS_ARRAY_SIZE(wk2); i++) {
		for (int together = 0; together < 2; together++) {
			for (int k = 0; k < runs; k++) {
				memset(&tm, 0, sizeof(tm));
				tm.t0 = pfs_now_mono_ns();
				if (together) {
					if ((err = run(&b, &sc[1], 2, wk2[i], BO_SCHED_SLICE, &st, &tm)))
						goto out_err;
					v[k] = tm.done_ms[1];           /* the small node */
					v2[k] = tm.done_ms[0];          /* the big node */
				} else {
					struct slot_times t1 = { .t0 = tm.t0 }, t2 = { .t0 = tm.t0 };
					if ((err = run(&b, &sc[1], 1, wk2[i], BO_SCHED_SLICE, &st, &t1)) ||
					    (err = run(&b, &sc[2], 1, wk2[i], BO_SCHED_SLICE, &st, &t2)))
						goto out_err;
					v[k] = t2.done_ms[0];
					v2[k] = t1.done_ms[0];
				}
				v3[k] = PFS_MAX(v[k], v2[k]);
			}
			printf("result two-nodes workers=%u mode=%s small_released_ms=%.1f big_released_ms=%.1f total_ms=%.1f\n",
			       wk2[i], together ? "one-run" : "one-after-other", median(v, runs),
			       median(v2, runs), median(v3, runs));
			fflush(stdout);
		}
	}
	for (uint32_t s = 0; s < 3; s++)
		jnl_scan_free(&sc[s]);
	free(sz);
	free(w);
	free(b.im);
	bio_close(b.dev);
	return 0;

out_err:
	fprintf(stderr, "bobench: %s\n", strerror(-err));
	return 1;
}
