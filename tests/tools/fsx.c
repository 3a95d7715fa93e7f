/*
 * fsx.c -- randomized exerciser of one file against an in-memory model.
 *
 *   fsx [-N ops] [-S seed] [-l maxlen] [-o maxoplen] [-F] [-q] FILE
 *
 * Operations: write (pwrite at random offsets), read (compared with the
 * model), truncate up and down, fallocate (plain, FALLOC_FL_KEEP_SIZE,
 * FALLOC_FL_PUNCH_HOLE), fsync/fdatasync, close and reopen, and full-file
 * verification now and then.  The file size stays within maxlen (default
 * 8 MiB).  -F leaves out fallocate.  The seed is printed at the start; on
 * any mismatch or unexpected error the seed, the operation number, the
 * offset and the last 20 operations are printed and the exit status is 1.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif

enum op {
	OP_WRITE, OP_READ, OP_TRUNCATE, OP_FALLOC, OP_FALLOC_KEEP, OP_PUNCH,
	OP_FSYNC, OP_FDATASYNC, OP_REOPEN, OP_VERIFY, OP_NR
};

static const char *op_names[OP_NR] = {
	"write", "read", "truncate", "falloc", "falloc_keep", "punch",
	"fsync", "fdatasync", "reopen", "verify",
};

/* Relative frequency of each operation. */
static const int op_weight[OP_NR] = { 34, 30, 8, 4, 4, 8, 2, 1, 1, 0 };

struct logent {
	uint64_t num;
	enum op op;
	uint64_t off, len;
	uint64_t size_before, size_after;
};

#define LOG_LEN 20

static struct logent oplog[LOG_LEN];
static uint64_t nlogged;

static uint64_t seed, rng_state;
static const char *path;
static int fd = -1;
static unsigned char *model, *rbuf, *pattern;
static uint64_t msize;                  /* model file size */
static uint64_t maxlen = 8u << 20, maxoplen = 256u << 10;
static uint64_t cur_op;
static int quiet, no_falloc;

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static void log_op(enum op op, uint64_t off, uint64_t len, uint64_t before)
{
	struct logent *e = &oplog[nlogged % LOG_LEN];

	e->num = cur_op;
	e->op = op;
	e->off = off;
	e->len = len;
	e->size_before = before;
	e->size_after = msize;
	nlogged++;
}

static void dump_log(void)
{
	uint64_t first = nlogged > LOG_LEN ? nlogged - LOG_LEN : 0;

	fprintf(stderr, "last %" PRIu64 " operations (oldest first):\n", nlogged - first);
	for (uint64_t i = first; i < nlogged; i++) {
		const struct logent *e = &oplog[i % LOG_LEN];

		fprintf(stderr, "  #%-8" PRIu64 " %-11s off %10" PRIu64 " (0x%" PRIx64
			") len %8" PRIu64 "  size %" PRIu64 " -> %" PRIu64 "\n",
			e->num, op_names[e->op], e->off, e->off, e->len,
			e->size_before, e->size_after);
	}
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fsx: FAILED at op %" PRIu64 " (seed %" PRIu64 ", file %s): ",
		cur_op, seed, path);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	dump_log();
	fprintf(stderr, "fsx: reproduce with: fsx -S %" PRIu64 " -N %" PRIu64
		" -l %" PRIu64 " -o %" PRIu64 "%s FILE\n", seed, cur_op + 1, maxlen,
		maxoplen, no_falloc ? " -F" : "");
	exit(1);
}

static void hexdump(const char *what, const unsigned char *p, uint64_t base, size_t n)
{
	fprintf(stderr, "  %s at 0x%" PRIx64 ":", what, base);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, " %02x", p[i]);
	fprintf(stderr, "\n");
}

/* Compare got (read at off) with the model. */
static void compare(const unsigned char *got, uint64_t off, uint64_t len)
{
	if (memcmp(got, model + off, len) == 0)
		return;
	uint64_t i = 0;
	while (i < len && got[i] == model[off + i])
		i++;
	uint64_t bad = off + i, n = 0;
	while (i + n < len && got[i + n] != model[off + i + n])
		n++;
	uint64_t s = i >= 8 ? i - 8 : 0;
	size_t show = (size_t)(len - s < 32 ? len - s : 32);
	fprintf(stderr, "fsx: data mismatch at offset %" PRIu64 " (0x%" PRIx64
		"), %" PRIu64 " bad bytes from there, read [%" PRIu64 ", +%" PRIu64 ")\n",
		bad, bad, n, off, len);
	hexdump("file ", got + s, off + s, show);
	hexdump("model", model + off + s, off + s, show);
	die("data mismatch at offset %" PRIu64, bad);
}

static void do_open(void)
{
	fd = open(path, O_RDWR | O_CREAT, 0644);
	if (fd < 0)
		die("open: %s", strerror(errno));
}

static void check_size(const char *when)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		die("fstat: %s", strerror(errno));
	if ((uint64_t)st.st_size != msize)
		die("size %" PRIu64 " after %s, model says %" PRIu64,
		    (uint64_t)st.st_size, when, msize);
}

static void read_range(uint64_t off, uint64_t len)
{
	uint64_t got = 0, want = off >= msize ? 0 : (msize - off < len ? msize - off : len);

	while (got < len) {
		ssize_t n = pread(fd, rbuf + got, len - got, (off_t)(off + got));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("pread(off %" PRIu64 ", len %" PRIu64 "): %s", off + got,
			    len - got, strerror(errno));
		}
		if (n == 0)
			break;
		got += (uint64_t)n;
	}
	if (got != want)
		die("pread at %" PRIu64 " len %" PRIu64 " returned %" PRIu64
		    " bytes, expected %" PRIu64 " (size %" PRIu64 ")", off, len, got,
		    want, msize);
	compare(rbuf, off, want);
}

static void verify_all(void)
{
	const uint64_t chunk = 1u << 20;

	check_size("verify");
	for (uint64_t off = 0; off < msize; off += chunk) {
		uint64_t len = msize - off < chunk ? msize - off : chunk;

		read_range(off, len);
	}
}

/* An offset biased towards interesting places: block boundaries, near the
 * end of the file, or anywhere. */
static uint64_t pick_off(uint64_t limit)
{
	uint64_t r = rnd_below(10), off;

	if (limit == 0)
		return 0;
	if (r < 3) {
		off = rnd_below(limit / 4096 + 1) * 4096;
		if (rnd_below(2))
			off += rnd_below(3) - 1;
	} else if (r < 5 && msize > 0) {
		uint64_t span = 64 * 1024;
		off = msize > span ? msize - span + rnd_below(2 * span) : rnd_below(msize + span);
	} else {
		off = rnd_below(limit);
	}
	return off >= limit ? limit - 1 : off;
}

static uint64_t pick_len(void)
{
	uint64_t r = rnd_below(10);

	if (r < 4)
		return 1 + rnd_below(512);
	if (r < 6)
		return 4096 * (1 + rnd_below(8));
	return 1 + rnd_below(maxoplen);
}

static void op_write(void)
{
	uint64_t off = pick_off(maxlen), len = pick_len(), before = msize;

	if (off + len > maxlen)
		len = maxlen - off;
	if (len == 0)
		return;
	/* Byte i of the file gets 1 + (7 * i + op) % 255: never zero, so a
	 * zero read back means a hole, and different for each operation.
	 * pattern[j] = 1 + 7 * j % 255 and 73 is the inverse of 7 mod 255. */
	const unsigned char *src = pattern + (off + 73 * (cur_op % 255)) % 255;
	uint64_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(fd, src + done, len - done, (off_t)(off + done));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("pwrite(off %" PRIu64 ", len %" PRIu64 "): %s", off + done,
			    len - done, strerror(errno));
		}
		if (n == 0)
			die("pwrite returned 0");
		done += (uint64_t)n;
	}
	if (off > msize)
		memset(model + msize, 0, off - msize);
	memcpy(model + off, src, len);
	if (off + len > msize)
		msize = off + len;
	log_op(OP_WRITE, off, len, before);
}

static void op_read(void)
{
	uint64_t off, len = pick_len();

	off = rnd_below(4) == 0 ? pick_off(maxlen) : pick_off(msize ? msize : 1);
	if (off + len > maxlen)
		len = maxlen - off;
	log_op(OP_READ, off, len, msize);
	read_range(off, len);
}

static void op_truncate(void)
{
	uint64_t before = msize, nsize;
	uint64_t r = rnd_below(4);

	if (r == 0)
		nsize = msize / 2;
	else if (r == 1)
		nsize = rnd_below(maxlen / 4096 + 1) * 4096 + rnd_below(3);
	else
		nsize = rnd_below(maxlen + 1);
	if (nsize > maxlen)
		nsize = maxlen;
	if (ftruncate(fd, (off_t)nsize) < 0)
		die("ftruncate(%" PRIu64 "): %s", nsize, strerror(errno));
	if (nsize > msize)
		memset(model + msize, 0, nsize - msize);
	msize = nsize;
	log_op(OP_TRUNCATE, nsize, 0, before);
}

static void op_fallocate(enum op op)
{
	uint64_t off, len = pick_len(), before = msize;
	int mode = 0;

	if (op == OP_PUNCH) {
		mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
		off = pick_off(msize ? msize : 1);
	} else {
		if (op == OP_FALLOC_KEEP)
			mode = FALLOC_FL_KEEP_SIZE;
		off = pick_off(maxlen);
	}
	if (off + len > maxlen)
		len = maxlen - off;
	if (len == 0)
		return;
	if (fallocate(fd, mode, (off_t)off, (off_t)len) < 0)
		die("fallocate(%s, off %" PRIu64 ", len %" PRIu64 "): %s",
		    op_names[op], off, len, strerror(errno));
	if (op == OP_PUNCH) {
		if (off < msize)
			memset(model + off, 0, (off + len > msize ? msize : off + len) - off);
	} else if (op == OP_FALLOC && off + len > msize) {
		memset(model + msize, 0, off + len - msize);
		msize = off + len;
	}
	log_op(op, off, len, before);
}

static int pick_op(void)
{
	int total = 0, r;

	for (int i = 0; i < OP_NR; i++)
		if (!(no_falloc && (i == OP_FALLOC || i == OP_FALLOC_KEEP || i == OP_PUNCH)))
			total += op_weight[i];
	r = (int)rnd_below((uint64_t)total);
	for (int i = 0; i < OP_NR; i++) {
		if (no_falloc && (i == OP_FALLOC || i == OP_FALLOC_KEEP || i == OP_PUNCH))
			continue;
		if (r < op_weight[i])
			return i;
		r -= op_weight[i];
	}
	return OP_READ;
}

static uint64_t parse_size(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 0);

	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	default: break;
	}
	if (*end || v == 0) {
		fprintf(stderr, "fsx: bad size %s\n", s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	uint64_t nops = 100000;
	int have_seed = 0, c;
	struct timespec t0, t1;
	uint64_t counts[OP_NR] = { 0 };

	while ((c = getopt(argc, argv, "N:S:l:o:Fq")) != -1) {
		switch (c) {
		case 'N': nops = strtoull(optarg, NULL, 0); break;
		case 'S': seed = strtoull(optarg, NULL, 0); have_seed = 1; break;
		case 'l': maxlen = parse_size(optarg); break;
		case 'o': maxoplen = parse_size(optarg); break;
		case 'F': no_falloc = 1; break;
		case 'q': quiet = 1; break;
		default:
			fprintf(stderr, "usage: fsx [-N ops] [-S seed] [-l maxlen] "
				"[-o maxoplen] [-F] [-q] FILE\n");
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: fsx [-N ops] [-S seed] [-l maxlen] [-o maxoplen] [-F] [-q] FILE\n");
		return 2;
	}
	path = argv[optind];
	if (!have_seed) {
		clock_gettime(CLOCK_REALTIME, &t0);
		seed = ((uint64_t)t0.tv_nsec << 20) ^ (uint64_t)t0.tv_sec ^ (uint64_t)getpid();
		seed %= 1000000000000ull;
	}
	if (maxoplen > maxlen)
		maxoplen = maxlen;
	rng_state = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
	if (!rng_state)
		rng_state = 1;
	printf("fsx: seed %" PRIu64 " file %s ops %" PRIu64 " maxlen %" PRIu64
	       " maxoplen %" PRIu64 "%s\n", seed, path, nops, maxlen, maxoplen,
	       no_falloc ? " (no fallocate)" : "");
	fflush(stdout);

	model = calloc(1, maxlen);
	rbuf = malloc(maxlen);
	pattern = malloc(maxoplen + 255);
	if (!model || !rbuf || !pattern) {
		fprintf(stderr, "fsx: out of memory\n");
		return 1;
	}
	for (uint64_t j = 0; j < maxoplen + 255; j++)
		pattern[j] = (unsigned char)(1 + (7 * j) % 255);
	unlink(path);
	do_open();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (cur_op = 0; cur_op < nops; cur_op++) {
		int op = pick_op();

		counts[op]++;
		switch (op) {
		case OP_WRITE: op_write(); break;
		case OP_READ: op_read(); break;
		case OP_TRUNCATE: op_truncate(); break;
		case OP_FALLOC:
		case OP_FALLOC_KEEP:
		case OP_PUNCH: op_fallocate((enum op)op); break;
		case OP_FSYNC:
			if (fsync(fd) < 0)
				die("fsync: %s", strerror(errno));
			log_op(OP_FSYNC, 0, 0, msize);
			break;
		case OP_FDATASYNC:
			if (fdatasync(fd) < 0)
				die("fdatasync: %s", strerror(errno));
			log_op(OP_FDATASYNC, 0, 0, msize);
			break;
		case OP_REOPEN:
			if (close(fd) < 0)
				die("close: %s", strerror(errno));
			do_open();
			log_op(OP_REOPEN, 0, 0, msize);
			break;
		}
		check_size(op_names[op]);
		/* A full comparison every 1000 operations. */
		if (cur_op % 1000 == 999) {
			log_op(OP_VERIFY, 0, msize, msize);
			verify_all();
		}
		if (!quiet && cur_op % 20000 == 19999) {
			printf("fsx: %" PRIu64 " ops done, size %" PRIu64 "\n", cur_op + 1, msize);
			fflush(stdout);
		}
	}
	/* Final check through a fresh descriptor. */
	if (fsync(fd) < 0 || close(fd) < 0)
		die("fsync/close: %s", strerror(errno));
	do_open();
	log_op(OP_VERIFY, 0, msize, msize);
	verify_all();
	close(fd);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("fsx: %" PRIu64 " ops passed in %.1f s (seed %" PRIu64 "):", nops,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
	       seed);
	for (int i = 0; i < OP_NR; i++)
		if (counts[i])
			printf(" %s %" PRIu64, op_names[i], counts[i]);
	printf("\n");
	free(model);
	free(rbuf);
	free(pattern);
	return 0;
}
