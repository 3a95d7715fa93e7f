/*
 * test_backout.c -- unit tests of the backout engine (recovery/backout.c).
 *
 * The property: whatever the number of workers, the chunk size, the
 * scheduling and the timing, backing out random dead journals with the
 * engine leaves the volume exactly as serial backout (jnl_backout of each
 * slot, in order) does -- byte for byte outside the journal areas, and
 * with every log closed at the same place (records, head, header
 * sequence; the records themselves differ only by their random nonces).
 * The journals are random: one to three slots, one to three transactions
 * each (some committed or aborted), sharing blocks inside a slot and
 * across slots, sometimes an image of the slot's own slot record,
 * sometimes an image outside the data area (the slot must then be
 * refused and nothing written for it).  Idempotence: the engine run is
 * crashed at a random write or flush (bio fault injection), the device
 * reopened, and what is still dead backed out again: same result.
 * Scheduling: small slots close first with time slices, in input order
 * without; a prioritized slot (on-demand rollback) closes first.
 *
 * PFS_BACKOUT_ITERS sets the number of random cases (default 40);
 * PFS_BACKOUT_SEED fixes the seed (printed).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "pfs_backout.h"
#include "pfs_bio.h"
#include "pfs_format.h"
#include "pfs_jnl.h"
#include "pfs_key.h"
#include "pfs_mkfs.h"
#include "pfs_util.h"
#include "../../journal/jlog.h"

#define NBLK    8192u                   /* 32 MiB */
#define BS      PFS_BLOCK_SIZE
#define NSLOTS  4u
#define GEN     7u
#define RANGE   200u                    /* data blocks the journals share */
#define MAXTXB  80u                     /* images per transaction */
#define MAXSLOTB 150u                   /* images per slot (1 MiB journal) */

struct tctx {
	char dir[64];
	char img[128];
	struct bio_dev *dev;
	struct pfs_super sb;
	uint8_t key[PFS_KEY_BYTES];
	uint64_t data0;
	uint64_t jstart, jblocks;
	uint8_t *snap;                  /* the whole image */
	uint8_t *want;                  /* after serial backout */
	uint8_t *got;
	uint64_t rng;
};

static uint64_t rnd(struct tctx *t)
{
	uint64_t z = (t->rng += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void fill(uint8_t *p, uint32_t tag, uint64_t b)
{
	for (size_t j = 0; j < BS; j++)
		p[j] = (uint8_t)(tag * 151u + b * 29u + j * 13u + (j >> 8) + 7u);
}

static void file_read(struct tctx *t, uint8_t *buf)
{
	int fd = open(t->img, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, (size_t)NBLK * BS, 0), (ssize_t)((size_t)NBLK * BS));
	close(fd);
}

static void file_write(struct tctx *t, const uint8_t *buf)
{
	int fd = open(t->img, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, (size_t)NBLK * BS, 0), (ssize_t)((size_t)NBLK * BS));
	close(fd);
}

static bool in_journal(struct tctx *t, uint64_t b)
{
	return b >= t->jstart && b < t->jstart + NSLOTS * t->jblocks;
}

/* want and got agree outside the journal areas. */
static void assert_same_volume(struct tctx *t, const char *what, uint64_t seed)
{
	for (uint64_t b = 0; b < NBLK; b++) {
		if (in_journal(t, b))
			continue;
		if (memcmp(t->want + b * BS, t->got + b * BS, BS) != 0) {
			fprintf(stderr, "%s (seed %llu): block %llu differs from serial backout\n",
				what, (unsigned long long)seed, (unsigned long long)b);
			fail();
		}
	}
}

/* One transaction as journal/jnl.c logs it. */
static void log_tx(struct jlog *l, uint64_t txseq, const uint64_t *blk, const uint32_t *tag,
		   size_t n, bool keep_tail)
{
	if (!keep_tail)
		l->tail = l->head;
	assert_int_equal(jlog_write_header(l, false), 0);
	struct pfs_jrec_begin b = {
		.txseq = cpu_to_le64(txseq),
		.undo_blocks = cpu_to_le64(n),
		.ops = cpu_to_le64(1),
		.time_ns = cpu_to_le64(1),
	};
	assert_int_equal(jlog_append(l, PFS_JREC_BEGIN, txseq, &b, sizeof(b), 0), 0);
	struct pfs_jrec_image *im = malloc(PFS_JREC_MAX_IMAGES * sizeof(*im));
	assert_non_null(im);
	for (size_t i = 0; i < n; i += PFS_JREC_MAX_IMAGES) {
		size_t k = PFS_MIN((size_t)PFS_JREC_MAX_IMAGES, n - i);
		for (size_t m = 0; m < k; m++) {
			im[m].blkno = cpu_to_le64(blk[i + m]);
			fill(im[m].data, tag[i + m], blk[i + m]);
		}
		assert_int_equal(jlog_append(l, PFS_JREC_IMAGES, txseq, im, k * sizeof(*im),
					     (uint32_t)k), 0);
	}
	free(im);
}

static void log_end(struct jlog *l, uint32_t type, uint64_t txseq)
{
	le64 v = cpu_to_le64(txseq);
	assert_int_equal(jlog_append(l, type, txseq, &v, sizeof(v), 0), 0);
}

/* A random volume: the shared data range holds random tags, and slots
 * 0..nslots-1 random logs.  Returns the slot count. */
static size_t make_journals(struct tctx *t)
{
	uint8_t *buf = malloc((size_t)RANGE * BS);
	assert_non_null(buf);
	for (uint64_t i = 0; i < RANGE; i++)
		fill(buf + i * BS, (uint32_t)rnd(t), t->data0 + i);
	assert_int_equal(bio_write(t->dev, t->data0, RANGE, buf), 0);
	free(buf);
	uint8_t *z = calloc(t->jblocks, BS);
	assert_non_null(z);
	size_t nslots = 1 + rnd(t) % 3;
	uint64_t txseq = 1;
	for (uint32_t s = 0; s < NSLOTS; s++)
		assert_int_equal(bio_write(t->dev, t->jstart + s * t->jblocks, (uint32_t)t->jblocks, z), 0);
	free(z);
	for (uint32_t s = 0; s < nslots; s++) {
		struct jlog l;
		assert_int_equal(jlog_init(&l, t->dev, &t->sb, t->key, s, GEN), 0);
		assert_int_equal(jlog_write_header(&l, true), 0);
		assert_int_equal(jlog_write_header(&l, true), 0);
		size_t ntx = 1 + rnd(t) % 3, budget = MAXSLOTB;
		for (size_t i = 0; i < ntx && budget > 0; i++) {
			size_t n = 1 + rnd(t) % PFS_MIN((size_t)MAXTXB, budget);
			uint64_t blk[MAXTXB];
			uint32_t tag[MAXTXB];
			/* Distinct blocks inside a transaction (journal/tx.c
			 * keeps one image per block). */
			for (size_t k = 0; k < n; k++) {
				bool dup;
				do {
					blk[k] = t->data0 + rnd(t) % RANGE;
					dup = false;
					for (size_t m = 0; m < k; m++)
						dup |= blk[m] == blk[k];
				} while (dup);
				tag[k] = (uint32_t)rnd(t);
			}
			uint64_t r = rnd(t) % 20;
			if (r == 0)             /* the slot's own slot record */
				blk[0] = le64_to_cpu(t->sb.slot_table_start) + 2ull * s + 1;
			else if (r == 1)        /* outside the data area: refused */
				blk[0] = 2;
			budget -= n;
			log_tx(&l, txseq, blk, tag, n, i > 0);
			uint64_t e = rnd(t) % 8;
			if (e == 0)
				log_end(&l, PFS_JREC_COMMIT, txseq);
			else if (e == 1)
				log_end(&l, PFS_JREC_ABORT, txseq);
			txseq++;
		}
		jlog_fini(&l);
	}
	return nslots;
}

static void scan_all(struct tctx *t, size_t nslots, struct jnl_scan *sc)
{
	for (uint32_t s = 0; s < nslots; s++)
		assert_int_equal(jnl_scan(t->dev, &t->sb, t->key, s, GEN, &sc[s]), 0);
}

struct logstate {
	bool clean;
	size_t ndead;
	uint64_t head, hseq, records;
};

static void log_states(struct tctx *t, size_t nslots, struct logstate *out)
{
	struct jnl_scan sc[NSLOTS];
	scan_all(t, nslots, sc);
	for (size_t s = 0; s < nslots; s++) {
		out[s] = (struct logstate){ sc[s].clean, sc[s].ndead, sc[s].head_lsn, sc[s].hseq,
					    sc[s].records };
		jnl_scan_free(&sc[s]);
	}
}

static void assert_same_logs(const struct logstate *a, const struct logstate *b, size_t n,
			     uint64_t seed)
{
	for (size_t s = 0; s < n; s++) {
		if (a[s].clean != b[s].clean || a[s].ndead != b[s].ndead || a[s].head != b[s].head ||
		    a[s].hseq != b[s].hseq || a[s].records != b[s].records) {
			fprintf(stderr, "seed %llu slot %zu: log clean %d/%d dead %zu/%zu head %llu/%llu "
				"hseq %llu/%llu records %llu/%llu (serial/engine)\n",
				(unsigned long long)seed, s, a[s].clean, b[s].clean, a[s].ndead,
				b[s].ndead, (unsigned long long)a[s].head, (unsigned long long)b[s].head,
				(unsigned long long)a[s].hseq, (unsigned long long)b[s].hseq,
				(unsigned long long)a[s].records, (unsigned long long)b[s].records);
			fail();
		}
	}
}

struct done_log {
	size_t order[NSLOTS + 2];
	int err[NSLOTS + 2];
	size_t n;
	size_t prio_slot;               /* SIZE_MAX: none */
};

static void on_done(void *arg, struct bo_run *r, size_t idx, int err)
{
	struct done_log *d = arg;
	assert_true(d->n < NSLOTS + 2);
	d->order[d->n] = idx;
	d->err[idx] = err;
	d->n++;
}

static void on_tick(void *arg, struct bo_run *r)
{
	struct done_log *d = arg;
	if (d->prio_slot != SIZE_MAX)
		bo_prioritize(r, d->prio_slot);
}

static void random_params(struct tctx *t, struct bo_params *p, struct done_log *d)
{
	memset(p, 0, sizeof(*p));
	p->max_parallelism = 1 + (unsigned)(rnd(t) % 8);
	p->chunk_blocks = 1 + (unsigned)(rnd(t) % 8);
	p->sched = rnd(t) % 2 ? BO_SCHED_SLICE : BO_SCHED_FIFO;
	p->slice_us = 20 + (unsigned)(rnd(t) % 400);
	p->min_blocks_per_worker = 1;
	p->tick_ms = 1;
	p->perturb_seed = rnd(t) | 1;
	p->slot_done = on_done;
	p->tick = on_tick;
	memset(d, 0, sizeof(*d));
	d->prio_slot = rnd(t) % 4 == 0 ? rnd(t) % NSLOTS : SIZE_MAX;
	p->arg = d;
}

static void reopen(struct tctx *t)
{
	bio_close(t->dev);
	assert_int_equal(bio_open(t->img, true, &t->dev), 0);
}

/* One random case: serial, then the engine (crashed once if crash) from
 * the same starting image. */
static void one_case(struct tctx *t, uint64_t seed, bool crash)
{
	struct jnl_scan sc[NSLOTS];
	struct logstate ls_serial[NSLOTS], ls_engine[NSLOTS];
	struct bo_params p;
	struct done_log d;

	t->rng = seed;
	size_t nslots = make_journals(t);
	file_read(t, t->snap);

	/* Serial: each slot in turn, as the code before the engine did. */
	scan_all(t, nslots, sc);
	for (size_t s = 0; s < nslots; s++) {
		int err = jnl_backout(t->dev, &t->sb, t->key, &sc[s], NULL);
		assert_true(err == 0 || err == -EUCLEAN);
		jnl_scan_free(&sc[s]);
	}
	file_read(t, t->want);
	log_states(t, nslots, ls_serial);

	uint64_t wf = 0;
	if (crash) {
		/* Count the writes and flushes of a run with the same
		 * settings, to crash anywhere in it. */
		file_write(t, t->snap);
		reopen(t);
		scan_all(t, nslots, sc);
		uint64_t keep = t->rng;
		random_params(t, &p, &d);
		t->rng = keep;
		uint64_t wf0 = bio_wf_count(t->dev);
		assert_true(bo_run(t->dev, &t->sb, t->key, sc, nslots, &p, NULL) != -EIO);
		wf = bio_wf_count(t->dev) - wf0;
		for (size_t s = 0; s < nslots; s++)
			jnl_scan_free(&sc[s]);
	}
	file_write(t, t->snap);
	reopen(t);
	scan_all(t, nslots, sc);
	random_params(t, &p, &d);
	if (crash) {
		struct bio_fault f = { .crash_io = bio_wf_count(t->dev) + 1 + rnd(t) % (wf + 1),
				       .mode = (enum bio_crash_mode)(rnd(t) % 4), .seed = rnd(t) };
		assert_int_equal(bio_set_fault(t->dev, &f), 0);
	}
	int err = bo_run(t->dev, &t->sb, t->key, sc, nslots, &p, NULL);
	assert_true(err == 0 || err == -EUCLEAN || (crash && err == -EIO));
	assert_int_equal(d.n, nslots);          /* every slot reported once */
	for (size_t s = 0; s < nslots; s++)
		jnl_scan_free(&sc[s]);
	if (crash) {
		/* Back out what is still dead, with other random settings. */
		reopen(t);
		struct jnl_scan again[NSLOTS];
		size_t n = 0;
		scan_all(t, nslots, sc);
		for (size_t s = 0; s < nslots; s++) {
			if (sc[s].clean)
				jnl_scan_free(&sc[s]);
			else
				again[n++] = sc[s];
		}
		random_params(t, &p, &d);
		err = bo_run(t->dev, &t->sb, t->key, again, n, &p, NULL);
		assert_true(err == 0 || err == -EUCLEAN);
		for (size_t s = 0; s < n; s++)
			jnl_scan_free(&again[s]);
	}
	file_read(t, t->got);
	assert_same_volume(t, crash ? "crashed and resumed" : "engine", seed);
	log_states(t, nslots, ls_engine);
	assert_same_logs(ls_serial, ls_engine, nslots, seed);

	/* Idempotence without a crash: a second run changes nothing. */
	scan_all(t, nslots, sc);
	random_params(t, &p, &d);
	err = bo_run(t->dev, &t->sb, t->key, sc, nslots, &p, NULL);
	assert_true(err == 0 || err == -EUCLEAN);
	for (size_t s = 0; s < nslots; s++)
		jnl_scan_free(&sc[s]);
	file_read(t, t->got);
	assert_same_volume(t, "engine run twice", seed);
}

static uint64_t base_seed(void)
{
	static uint64_t seed;
	if (!seed) {
		const char *e = getenv("PFS_BACKOUT_SEED");
		seed = e ? strtoull(e, NULL, 0) : ((uint64_t)time(NULL) * 2654435761u) % 1000000 + 1;
		fprintf(stderr, "test_backout: PFS_BACKOUT_SEED=%llu\n", (unsigned long long)seed);
	}
	return seed;
}

static int iters(void)
{
	const char *e = getenv("PFS_BACKOUT_ITERS");
	int n = e ? atoi(e) : 40;
	return n > 0 ? n : 40;
}

/* ------------------------------------------------------------------ */

static void test_equals_serial(void **state)
{
	struct tctx *t = *state;
	for (int i = 0; i < iters(); i++)
		one_case(t, base_seed() * 1000 + (uint64_t)i, false);
}

static void test_crash_and_resume(void **state)
{
	struct tctx *t = *state;
	for (int i = 0; i < iters(); i++)
		one_case(t, base_seed() * 1000 + 500 + (uint64_t)i, true);
}

/* Slot 0 has a big transaction, slot 1 a small one. */
static void big_and_small(struct tctx *t)
{
	uint64_t blk[MAXSLOTB];
	uint32_t tag[MAXSLOTB];
	uint8_t *z = calloc(t->jblocks, BS);
	assert_non_null(z);
	for (uint32_t s = 0; s < 2; s++) {
		assert_int_equal(bio_write(t->dev, t->jstart + s * t->jblocks, (uint32_t)t->jblocks, z), 0);
		struct jlog l;
		size_t n = s == 0 ? MAXSLOTB : 3;
		for (size_t k = 0; k < n; k++) {
			blk[k] = t->data0 + s * 400 + k;
			tag[k] = (uint32_t)(k + 1);
		}
		assert_int_equal(jlog_init(&l, t->dev, &t->sb, t->key, s, GEN), 0);
		assert_int_equal(jlog_write_header(&l, true), 0);
		log_tx(&l, 10 + s, blk, tag, n, false);
		jlog_fini(&l);
	}
	free(z);
}

static void run_order(struct tctx *t, enum bo_sched sched, unsigned par, size_t prio,
		      struct done_log *d)
{
	struct jnl_scan sc[2];
	struct bo_params p = {
		.max_parallelism = par,
		.sched = sched,
		.chunk_blocks = 1,
		.slice_us = 50,
		.tick_ms = 1,
		.min_blocks_per_worker = 1,
		.perturb_seed = 99,
		.slot_done = on_done,
		.tick = on_tick,
		.arg = d,
	};
	struct bo_stats st;
	memset(d, 0, sizeof(*d));
	d->prio_slot = prio;
	big_and_small(t);
	scan_all(t, 2, sc);
	assert_int_equal(bo_run(t->dev, &t->sb, t->key, sc, 2, &p, &st), 0);
	assert_int_equal(d->n, 2);
	assert_int_equal(st.ntx, 2);
	assert_int_equal(st.undo_blocks, MAXSLOTB + 3);
	assert_true(st.first_slot_ms <= st.median_slot_ms);
	jnl_scan_free(&sc[0]);
	jnl_scan_free(&sc[1]);
}

static void test_small_slot_first(void **state)
{
	struct tctx *t = *state;
	struct done_log d;
	/* Serial with time slices: the small slot closes first. */
	run_order(t, BO_SCHED_SLICE, 1, SIZE_MAX, &d);
	assert_int_equal(d.order[0], 1);
	/* In order, one at a time: the big one first. */
	run_order(t, BO_SCHED_FIFO, 1, SIZE_MAX, &d);
	assert_int_equal(d.order[0], 0);
	/* Two workers: both close (which first depends on when the
	 * coordinator thread runs on a loaded machine). */
	run_order(t, BO_SCHED_SLICE, 2, SIZE_MAX, &d);
	assert_int_equal(d.n, 2);
}

static void test_on_demand_first(void **state)
{
	struct tctx *t = *state;
	struct done_log d;
	/* In order the big slot 0 would close first; a live node waiting
	 * for a lock of slot 1 makes it go first. */
	run_order(t, BO_SCHED_FIFO, 1, 1, &d);
	assert_int_equal(d.order[0], 1);
	/* With slices the big one would close last; prioritized, first. */
	run_order(t, BO_SCHED_SLICE, 1, 0, &d);
	assert_int_equal(d.order[0], 0);
}

static void test_choose_and_parse(void **state)
{
	unsigned v = 0;
	assert_int_equal(bo_choose_workers(0, 0, 8, 256), 0);
	assert_int_equal(bo_choose_workers(1000, 16, 8, 256), 4);
	assert_int_equal(bo_choose_workers(100000, 1000, 8, 256), 8);
	assert_int_equal(bo_choose_workers(100000, 1000, 1, 256), 0);
	assert_int_equal(bo_choose_workers(100000, 1, 8, 256), 0);      /* one chunk */
	assert_int_equal(bo_choose_workers(300, 5, 8, 256), 2);
	assert_int_equal(bo_choose_workers(256, 5, 8, 256), 0);
	assert_true(bo_default_parallelism() >= 2);
	assert_int_equal(bo_parse_parallelism("4", &v), 0);
	assert_int_equal(v, 4);
	assert_int_equal(bo_parse_parallelism("1", &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(bo_parse_parallelism("64", &v), 0);
	assert_int_equal(bo_parse_parallelism("0", &v), -EINVAL);
	assert_int_equal(bo_parse_parallelism("65", &v), -EINVAL);
	assert_int_equal(bo_parse_parallelism("-1", &v), -EINVAL);
	assert_int_equal(bo_parse_parallelism("4x", &v), -EINVAL);
	assert_int_equal(bo_parse_parallelism("", &v), -EINVAL);
	assert_int_equal(bo_parse_parallelism(NULL, &v), -EINVAL);
}

/* ------------------------------------------------------------------ */

static int setup(void **state)
{
	struct tctx *t = calloc(1, sizeof(*t));
	struct pfs_format_params p;
	const char *tmp = getenv("TMPDIR");
	const char *why = NULL;
	int fd;

	if (!t)
		return -1;
	unsetenv("PEERFS_FAULT");
	if (!getenv("PFS_TEST_VERBOSE"))
		pfs_log_set_level(PFS_LOG_ERR - 1);
	if (key_init() != 0)
		goto free_t;
	snprintf(t->dir, sizeof(t->dir), "%s/pfs-bo-XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(t->dir))
		goto free_t;
	snprintf(t->img, sizeof(t->img), "%s/vol.img", t->dir);
	fd = open(t->img, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		goto remove_dir;
	memset(&p, 0, sizeof(p));
	p.slots = NSLOTS;
	p.journal_bytes = 1u << 20;
	key_generate(t->key);
	int err = format_write(fd, NBLK, &p, t->key, &t->sb, &why);
	close(fd);
	if (err) {
		fprintf(stderr, "format_write: %s (%d)\n", why ? why : "?", err);
		goto remove_img;
	}
	if (bio_open(t->img, true, &t->dev) != 0)
		goto remove_img;
	t->data0 = le64_to_cpu(t->sb.group_start) + 300;
	t->jstart = le64_to_cpu(t->sb.journal_start);
	t->jblocks = le64_to_cpu(t->sb.journal_blocks);
	t->snap = malloc((size_t)NBLK * BS);
	t->want = malloc((size_t)NBLK * BS);
	t->got = malloc((size_t)NBLK * BS);
	if (!t->snap || !t->want || !t->got || t->data0 + 1000 >= NBLK - 1)
		goto close_dev;
	*state = t;
	return 0;

close_dev:
	free(t->snap);
	free(t->want);
	free(t->got);
	bio_close(t->dev);
remove_img:
	unlink(t->img);
remove_dir:
	rmdir(t->dir);
free_t:
	free(t);
	return -1;
}

static int teardown(void **state)
{
	struct tctx *t = *state;
	bio_close(t->dev);
	unlink(t->img);
	rmdir(t->dir);
	free(t->snap);
	free(t->want);
	free(t->got);
	free(t);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_choose_and_parse),
		cmocka_unit_test_setup_teardown(test_equals_serial, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_and_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_small_slot_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_on_demand_first, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
