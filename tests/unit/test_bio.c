/*
 * test_bio.c -- unit tests of lib/bio.c: I/O and counters, open errors,
 * injected failures, simulated crashes and fault-string parsing.
 *
 * Each test works on image files in its own mkdtemp directory, removed at
 * teardown.  Set PFS_TEST_VERBOSE=1 to see the log lines of the code under
 * test (many tests provoke errors on purpose).
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
#include <unistd.h>
#include <cmocka.h>

#include "pfs_bio.h"
#include "pfs_format.h"
#include "pfs_util.h"

#define NBLK 16u
#define BS PFS_BLOCK_SIZE

struct tctx {
	char dir[64];
	char img[128];
};

/* Byte j of the "generation g" image of block b. */
static uint8_t pat(uint32_t g, uint64_t b, size_t j)
{
	return (uint8_t)(g * 131u + b * 17u + j * 7u + (j >> 9) * 3u + 1u);
}

static void fill(uint8_t *p, uint32_t g, uint64_t b)
{
	for (size_t j = 0; j < BS; j++)
		p[j] = pat(g, b, j);
}

static void make_image(const char *path, uint64_t bytes, uint32_t g)
{
	uint8_t blk[BS];
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);

	assert_true(fd >= 0);
	for (uint64_t b = 0; b * BS < bytes; b++) {
		size_t n = (size_t)PFS_MIN((uint64_t)BS, bytes - b * BS);
		fill(blk, g, b);
		assert_int_equal(pwrite(fd, blk, n, (off_t)(b * BS)), (ssize_t)n);
	}
	assert_int_equal(close(fd), 0);
}

/* The whole image file, read behind the back of bio. */
static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *p = malloc((size_t)st.st_size);
	assert_non_null(p);
	assert_int_equal(pread(fd, p, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return p;
}

static int setup(void **state)
{
	struct tctx *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/pfs_test_bio.XXXXXX");
	if (!mkdtemp(t->dir)) {
		free(t);
		return -1;
	}
	snprintf(t->img, sizeof(t->img), "%s/img", t->dir);
	make_image(t->img, NBLK * BS, 0);
	unsetenv("PEERFS_FAULT");
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tctx *t = *state;
	char path[192];

	snprintf(path, sizeof(path), "%s/img", t->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/odd", t->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/noperm", t->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/sub", t->dir);
	rmdir(path);
	rmdir(t->dir);
	unsetenv("PEERFS_FAULT");
	free(t);
	return 0;
}

static struct bio_dev *open_rw(struct tctx *t)
{
	struct bio_dev *d = NULL;

	assert_int_equal(bio_open(t->img, true, &d), 0);
	assert_non_null(d);
	return d;
}

/* ------------------------------------------------------------------ */

static void test_open_errors(void **state)
{
	struct tctx *t = *state;
	struct bio_dev *d = NULL;
	char path[192];

	snprintf(path, sizeof(path), "%s/missing", t->dir);
	assert_int_equal(bio_open(path, true, &d), -ENOENT);
	assert_null(d);
	assert_int_equal(bio_open(path, false, &d), -ENOENT);

	/* A directory is neither a file nor a block device. */
	snprintf(path, sizeof(path), "%s/sub", t->dir);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(bio_open(path, false, &d), -EINVAL);
	assert_int_equal(bio_open(path, true, &d), -EISDIR);

	/* Permission errors pass through (root bypasses modes). */
	if (geteuid() != 0) {
		snprintf(path, sizeof(path), "%s/noperm", t->dir);
		make_image(path, BS, 0);
		assert_int_equal(chmod(path, 0), 0);
		assert_int_equal(bio_open(path, true, &d), -EACCES);
		assert_int_equal(bio_open(path, false, &d), -EACCES);
	}
}

static void test_size_rounding(void **state)
{
	struct tctx *t = *state;
	struct bio_dev *d;
	char path[192];

	snprintf(path, sizeof(path), "%s/odd", t->dir);
	make_image(path, 3 * BS + 100, 0);
	assert_int_equal(bio_open(path, false, &d), 0);
	assert_int_equal(bio_nblocks(d), 3);
	assert_string_equal(bio_path(d), path);
	assert_true(bio_fd(d) >= 0);
	bio_close(d);

	d = open_rw(t);
	assert_int_equal(bio_nblocks(d), NBLK);
	bio_close(d);
}

static void test_rw_and_counters(void **state)
{
	struct tctx *t = *state;
	struct bio_dev *d = open_rw(t);
	struct bio_stats st;
	uint8_t *w = malloc(3 * BS), *r = malloc(3 * BS);

	assert_non_null(w);
	assert_non_null(r);
	bio_get_stats(d, &st);
	assert_int_equal(st.reads + st.writes + st.flushes, 0);

	assert_int_equal(bio_read(d, 2, 1, r), 0);
	fill(w, 0, 2);
	assert_memory_equal(r, w, BS);

	for (unsigned i = 0; i < 3; i++)
		fill(w + i * BS, 1, 5 + i);
	assert_int_equal(bio_write(d, 5, 3, w), 0);
	assert_int_equal(bio_flush(d), 0);
	assert_int_equal(bio_read(d, 5, 3, r), 0);
	assert_memory_equal(r, w, 3 * BS);

	/* Byte-granular access. */
	uint8_t bytes[100];
	memset(bytes, 0xab, sizeof(bytes));
	assert_int_equal(bio_pwrite(d, 7 * BS + 10, sizeof(bytes), bytes), 0);
	memset(r, 0, 200);
	assert_int_equal(bio_pread(d, 7 * BS, 200, r), 0);
	assert_memory_equal(r + 10, bytes, sizeof(bytes));
	assert_int_equal(r[0], w[2 * BS]);
	assert_int_equal(r[110], w[2 * BS + 110]);

	bio_get_stats(d, &st);
	assert_int_equal(st.reads, 3);
	assert_int_equal(st.writes, 2);
	assert_int_equal(st.flushes, 1);
	assert_int_equal(st.bytes_read, BS + 3 * BS + 200);
	assert_int_equal(st.bytes_written, 3 * BS + sizeof(bytes));
	assert_int_equal(bio_io_count(d), 6);
	assert_int_equal(bio_wf_count(d), 3);

	/* Out of range: refused, not counted. */
	assert_int_equal(bio_read(d, NBLK, 1, r), -EINVAL);
	assert_int_equal(bio_read(d, NBLK - 1, 2, r), -EINVAL);
	assert_int_equal(bio_read(d, UINT64_MAX, 1, r), -EINVAL);
	assert_int_equal(bio_pread(d, NBLK * BS - 10, 11, r), -EINVAL);
	assert_int_equal(bio_write(d, NBLK + 5, 1, w), -EINVAL);
	assert_int_equal(bio_read(d, NBLK - 1, 1, r), 0);
	/* Zero-length: no-ops. */
	assert_int_equal(bio_read(d, 0, 0, r), 0);
	assert_int_equal(bio_io_count(d), 7);
	bio_close(d);

	/* The data reached the file. */
	size_t len;
	uint8_t *img = slurp(t->img, &len);
	assert_int_equal(len, NBLK * BS);
	assert_memory_equal(img + 5 * BS, w, 2 * BS);
	assert_memory_equal(img + 7 * BS + 10, bytes, sizeof(bytes));
	free(img);

	/* Read-only devices refuse writes. */
	assert_int_equal(bio_open(t->img, false, &d), 0);
	assert_int_equal(bio_write(d, 0, 1, w), -EROFS);
	assert_int_equal(bio_read(d, 0, 1, r), 0);
	assert_int_equal(bio_flush(d), 0);
	bio_close(d);
	free(w);
	free(r);
}

static void test_fail_once(void **state)
{
	struct tctx *t = *state;
	struct bio_dev *d = open_rw(t);
	struct bio_fault f = { 0 };
	struct bio_stats st;
	uint8_t w[BS], r[BS], orig[BS];

	assert_int_equal(bio_read(d, 1, 1, orig), 0);           /* I/O 1 */
	f.fail_io = bio_io_count(d) + 2;                        /* I/O 3 */
	assert_int_equal(bio_set_fault(d, &f), 0);
	memset(w, 0x5a, sizeof(w));
	assert_int_equal(bio_read(d, 1, 1, r), 0);              /* 2 */
	assert_int_equal(bio_write(d, 1, 1, w), -EIO);          /* 3 */
	assert_int_equal(bio_read(d, 1, 1, r), 0);              /* 4 */
	assert_memory_equal(r, orig, BS);   /* the failed write did nothing */
	assert_int_equal(bio_write(d, 1, 1, w), 0);             /* 5 */
	assert_int_equal(bio_flush(d), 0);                      /* 6 */
	assert_false(bio_crashed(d));
	bio_get_stats(d, &st);
	assert_int_equal(st.reads, 3);
	assert_int_equal(st.writes, 1);
	assert_int_equal(st.flushes, 1);
	assert_int_equal(bio_io_count(d), 6);

	/* A flush can be the failing I/O too; faults in the past are refused. */
	f.fail_io = 7;
	assert_int_equal(bio_set_fault(d, &f), 0);
	assert_int_equal(bio_flush(d), -EIO);
	assert_int_equal(bio_flush(d), 0);
	f.fail_io = 3;
	assert_int_equal(bio_set_fault(d, &f), -EINVAL);
	bio_close(d);
}

static void test_fail_sticky(void **state)
{
	struct tctx *t = *state;
	struct bio_dev *d = open_rw(t);
	struct bio_fault f = { .fail_io = 3, .sticky = true };
	uint8_t r[BS];

	assert_int_equal(bio_set_fault(d, &f), 0);
	assert_int_equal(bio_read(d, 0, 1, r), 0);
	assert_int_equal(bio_flush(d), 0);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(bio_read(d, 0, 1, r), -EIO);
		assert_int_equal(bio_write(d, 0, 1, r), -EIO);
		assert_int_equal(bio_flush(d), -EIO);
	}
	assert_false(bio_crashed(d));
	/* Clearing the fault restores service. */
	memset(&f, 0, sizeof(f));
	assert_int_equal(bio_set_fault(d, &f), 0);
	assert_int_equal(bio_read(d, 0, 1, r), 0);

	f.sticky = true;    /* sticky without fail_io */
	assert_int_equal(bio_set_fault(d, &f), -EINVAL);
	bio_close(d);
}

/* Write blocks 2..4 (generation 1), flush, then unsynced: block 5 (g 2),
 * block 6 (g 2), block 5 again (g 3), then the crashing write to block 7.
 * Returns the device, dead. */
static struct bio_dev *crash_scenario(struct tctx *t, enum bio_crash_mode mode,
				      uint64_t seed)
{
	struct bio_dev *d = open_rw(t);
	struct bio_fault f = { .mode = mode, .seed = seed };
	uint8_t w[BS], r[BS];

	for (uint64_t b = 2; b <= 4; b++) {
		fill(w, 1, b);
		assert_int_equal(bio_write(d, b, 1, w), 0);
	}
	f.crash_io = bio_wf_count(d) + 5;       /* flush, 3 writes, crash */
	assert_int_equal(bio_set_fault(d, &f), 0);
	assert_int_equal(bio_flush(d), 0);
	fill(w, 2, 5);
	assert_int_equal(bio_write(d, 5, 1, w), 0);
	fill(w, 2, 6);
	assert_int_equal(bio_write(d, 6, 1, w), 0);
	assert_int_equal(bio_read(d, 6, 1, r), 0);
	assert_memory_equal(r, w, BS);
	fill(w, 3, 5);
	assert_int_equal(bio_write(d, 5, 1, w), 0);
	assert_false(bio_crashed(d));
	fill(w, 4, 7);
	assert_int_equal(bio_write(d, 7, 1, w), -EIO);  /* the crash point */
	assert_true(bio_crashed(d));
	/* Dead: everything fails. */
	assert_int_equal(bio_read(d, 0, 1, r), -EIO);
	assert_int_equal(bio_write(d, 0, 1, r), -EIO);
	assert_int_equal(bio_flush(d), -EIO);
	assert_true(bio_crashed(d));
	return d;
}

/* Check the image after crash_scenario, given the expected generation of
 * blocks 5 and 6 (block 7, the crashing write, is never written). */
static void check_blocks(const uint8_t *img, uint32_t g5, uint32_t g6)
{
	uint8_t e[BS];

	for (uint64_t b = 0; b < NBLK; b++) {
		uint32_t g = 0;
		if (b >= 2 && b <= 4)
			g = 1;
		if (b == 5)
			g = g5;
		if (b == 6)
			g = g6;
		fill(e, g, b);
		assert_memory_equal(img + b * BS, e, BS);
	}
}

static void test_crash_keep(void **state)
{
	struct tctx *t = *state;
	struct bio_dev *d = crash_scenario(t, BIO_CRASH_KEEP, 1);
	size_t len;

	bio_close(d);
	uint8_t *img = slurp(t->img, &len);
	check_blocks(img, 3, 2);
	free(img);
}

static void test_crash_drop(void **state)
{
	struct tctx *t = *state;
	struct bio_dev *d = crash_scenario(t, BIO_CRASH_DROP, 1);
	size_t len;

	bio_close(d);
	uint8_t *img = slurp(t->img, &len);
	check_blocks(img, 0, 0);    /* the synced blocks 2..4 survive */
	free(img);
}

/* Is block b of img a torn mix: the first k sectors (0 < k < 8) of
 * generation gnew and the rest of generation gold?  Returns k, or -1. */
static int torn_sectors(const uint8_t *img, uint64_t b, uint32_t gnew, uint32_t gold)
{
	const uint8_t *p = img + b * BS;
	unsigned k = 0;

	while (k < BS / PFS_SECTOR_SIZE && p[k * PFS_SECTOR_SIZE] ==
	       pat(gnew, b, k * PFS_SECTOR_SIZE))
		k++;
	for (size_t j = 0; j < BS; j++) {
		uint8_t want = j < k * PFS_SECTOR_SIZE ? pat(gnew, b, j) : pat(gold, b, j);
		if (p[j] != want)
			return -1;
	}
	return (int)k;
}

static void test_crash_tear(void **state)
{
	struct tctx *t = *state;
	size_t len;

	for (uint64_t seed = 1; seed <= 8; seed++) {
		struct bio_dev *d = crash_scenario(t, BIO_CRASH_TEAR, seed);
		bio_close(d);
		uint8_t *img = slurp(t->img, &len);
		/* Block 6: one torn write over generation 0. */
		int k6 = torn_sectors(img, 6, 2, 0);
		assert_true(k6 >= 1 && k6 <= 7);
		/* Block 5: two torn writes (g2 then g3) over g0; the result is
		 * a prefix of g3, then perhaps a run of g2, then g0. */
		const uint8_t *p = img + 5 * BS;
		size_t j = 0;
		while (j < BS && p[j] == pat(3, 5, j))
			j++;
		assert_true(j >= PFS_SECTOR_SIZE && j % PFS_SECTOR_SIZE == 0);
		while (j < BS && p[j] == pat(2, 5, j))
			j++;
		assert_int_equal(j % PFS_SECTOR_SIZE, 0);
		while (j < BS && p[j] == pat(0, 5, j))
			j++;
		assert_int_equal(j, BS);
		assert_true(p[BS - 1] != pat(3, 5, BS - 1));
		/* Synced and untouched blocks are intact. */
		uint8_t e[BS];
		fill(e, 1, 3);
		assert_memory_equal(img + 3 * BS, e, BS);
		fill(e, 0, 7);
		assert_memory_equal(img + 7 * BS, e, BS);
		free(img);
		make_image(t->img, NBLK * BS, 0);
	}
}

/* A byte-granular write spanning three sectors tears at a sector edge. */
static void test_crash_tear_unaligned(void **state)
{
	struct tctx *t = *state;
	struct bio_fault f = { .crash_io = 2, .mode = BIO_CRASH_TEAR, .seed = 5 };
	uint8_t bytes[1000];
	struct bio_dev *d;
	size_t len;

	for (uint64_t seed = 1; seed <= 6; seed++) {
		d = open_rw(t);
		f.seed = seed;
		assert_int_equal(bio_set_fault(d, &f), 0);
		memset(bytes, 0xee, sizeof(bytes));
		assert_int_equal(bio_pwrite(d, BS + 100, sizeof(bytes), bytes), 0);
		assert_int_equal(bio_flush(d), -EIO);
		bio_close(d);
		uint8_t *img = slurp(t->img, &len);
		size_t j = BS + 100, end = BS + 100 + sizeof(bytes);
		while (j < end && img[j] == 0xee)
			j++;
		/* kept up to a sector boundary: 512 or 1024 into the block */
		assert_true(j == BS + 512 || j == BS + 1024);
		for (; j < end; j++)
			assert_int_equal(img[j], pat(0, 1, j - BS));
		free(img);
		make_image(t->img, NBLK * BS, 0);
	}
}

/* Random mode: reproducible from the seed, and every block ends up as
 * its synced content, a kept write or a torn one. */
static void test_crash_random(void **state)
{
	struct tctx *t = *state;
	unsigned seen_keep = 0, seen_drop = 0, seen_tear = 0;
	size_t len;

	for (uint64_t seed = 100; seed < 116; seed++) {
		uint8_t *img[2];
		for (int rep = 0; rep < 2; rep++) {
			make_image(t->img, NBLK * BS, 0);
			struct bio_dev *d = open_rw(t);
			struct bio_fault f = { .crash_io = 9, .mode = BIO_CRASH_RANDOM,
					       .seed = seed };
			uint8_t w[BS];
			assert_int_equal(bio_set_fault(d, &f), 0);
			for (uint64_t b = 0; b < 8; b++) {
				fill(w, 1, b);
				assert_int_equal(bio_write(d, b, 1, w), 0);
			}
			assert_int_equal(bio_flush(d), -EIO);
			bio_close(d);
			img[rep] = slurp(t->img, &len);
		}
		assert_memory_equal(img[0], img[1], NBLK * BS);
		for (uint64_t b = 0; b < 8; b++) {
			int k = torn_sectors(img[0], b, 1, 0);
			if (k == 8)
				seen_keep++;
			else if (k == 0)
				seen_drop++;
			else if (k > 0)
				seen_tear++;
			else
				fail_msg("block %u is not old, new or torn", (unsigned)b);
		}
		free(img[0]);
		free(img[1]);
	}
	assert_true(seen_keep > 0 && seen_drop > 0 && seen_tear > 0);
}

/* The crash point counts flushes too, and a crash on a flush settles the
 * writes since the previous one. */
static void test_crash_on_flush(void **state)
{
	struct tctx *t = *state;
	struct bio_dev *d = open_rw(t);
	struct bio_fault f = { .crash_io = 3, .mode = BIO_CRASH_DROP };
	uint8_t w[BS];
	size_t len;

	assert_int_equal(bio_set_fault(d, &f), 0);
	fill(w, 1, 0);
	assert_int_equal(bio_write(d, 0, 1, w), 0);     /* wf 1 */
	assert_int_equal(bio_flush(d), 0);              /* wf 2 */
	fill(w, 1, 1);
	assert_int_equal(bio_write(d, 1, 1, w), -EIO);  /* wf 3: crash */
	bio_close(d);
	uint8_t *img = slurp(t->img, &len);
	uint8_t e[BS];
	fill(e, 1, 0);
	assert_memory_equal(img, e, BS);
	fill(e, 0, 1);
	assert_memory_equal(img + BS, e, BS);
	free(img);
}

static void test_parse(void **state)
{
	struct bio_fault f;

	assert_int_equal(bio_parse_fault(NULL, &f), 0);
	assert_int_equal(f.fail_io + f.crash_io, 0);
	assert_int_equal(bio_parse_fault("", &f), 0);

	assert_int_equal(bio_parse_fault("fail_io=120", &f), 0);
	assert_int_equal(f.fail_io, 120);
	assert_false(f.sticky);
	assert_int_equal(f.crash_io, 0);

	assert_int_equal(bio_parse_fault("fail_io=120,sticky=1", &f), 0);
	assert_int_equal(f.fail_io, 120);
	assert_true(f.sticky);

	assert_int_equal(bio_parse_fault("crash_io=57,mode=tear,seed=9", &f), 0);
	assert_int_equal(f.crash_io, 57);
	assert_int_equal(f.mode, BIO_CRASH_TEAR);
	assert_int_equal(f.seed, 9);
	assert_int_equal(f.fail_io, 0);

	assert_int_equal(bio_parse_fault("seed=0x10,crash_io=3,mode=keep", &f), 0);
	assert_int_equal(f.seed, 16);
	assert_int_equal(f.mode, BIO_CRASH_KEEP);
	assert_int_equal(bio_parse_fault("crash_io=3,mode=drop,fail_io=2", &f), 0);
	assert_int_equal(f.mode, BIO_CRASH_DROP);
	assert_int_equal(f.fail_io, 2);
	assert_int_equal(bio_parse_fault("crash_io=3,mode=random", &f), 0);
	assert_int_equal(bio_parse_fault("delay_us=2500", &f), 0);
	assert_int_equal(f.delay_us, 2500);
	assert_int_equal(f.fail_io, 0);
	assert_int_equal(f.crash_io, 0);
	assert_int_equal(f.mode, BIO_CRASH_RANDOM);

	static const char *const bad[] = {
		"foo=1", "fail_io", "fail_io=", "fail_io=abc", "fail_io=-1",
		"fail_io=12x", "=5", "sticky=1", "fail_io=1,sticky=2",
		"crash_io=3,mode=bogus", "mode=keep", "seed=3",
		"crash_io=1,,mode=keep", ",fail_io=1", "fail_io=1,",
		"fail_io=1,fail_io=2", "crash_io=99999999999999999999999",
		"fail_io= 1", "Fail_io=1", "delay_us=-5", "delay_us=99999999",
	};
	for (size_t i = 0; i < PFS_ARRAY_SIZE(bad); i++) {
		f.fail_io = 77;
		if (bio_parse_fault(bad[i], &f) != -EINVAL)
			fail_msg("\"%s\" was accepted", bad[i]);
		assert_int_equal(f.fail_io, 0);
	}

	struct bio_fault g = { .mode = (enum bio_crash_mode)9, .crash_io = 5 };
	struct tctx *t = *state;
	struct bio_dev *d = open_rw(t);
	assert_int_equal(bio_set_fault(d, &g), -EINVAL);
	bio_close(d);
}

static void test_env(void **state)
{
	struct tctx *t = *state;
	struct bio_dev *d = NULL;
	uint8_t r[BS];

	setenv("PEERFS_FAULT", "fail_io=2,bogus=1", 1);
	assert_int_equal(bio_open(t->img, true, &d), -EINVAL);
	assert_null(d);

	setenv("PEERFS_FAULT", "fail_io=2", 1);
	d = open_rw(t);
	assert_int_equal(bio_read(d, 0, 1, r), 0);
	assert_int_equal(bio_read(d, 0, 1, r), -EIO);
	assert_int_equal(bio_read(d, 0, 1, r), 0);
	bio_close(d);

	setenv("PEERFS_FAULT", "crash_io=1,mode=drop", 1);
	d = open_rw(t);
	assert_int_equal(bio_flush(d), -EIO);
	assert_true(bio_crashed(d));
	bio_close(d);
	unsetenv("PEERFS_FAULT");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_size_rounding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rw_and_counters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fail_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fail_sticky, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_keep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_drop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_tear, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_tear_unaligned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_random, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_on_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env, setup, teardown),
	};

	if (!getenv("PFS_TEST_VERBOSE"))
		pfs_log_set_level(-1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
