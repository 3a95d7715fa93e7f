/*
 * concwrite.c -- concurrent writers on one file and on separate files.
 *
 *   concwrite [-t THREADS] [-p PROCS] [-b CHUNK] [-c CHUNKS] [-r ROUNDS] [-V] DIR
 *
 * PROCS processes (default 2) of THREADS threads each (default 4) are the
 * writers.  Writer w owns the region [w * R, (w + 1) * R) of DIR/shared,
 * R = CHUNK * CHUNKS (defaults 3000 * 200: regions are not block aligned,
 * so neighbours share blocks at their borders), and the whole of
 * DIR/own.W.  In each round a writer rewrites every chunk of both in a
 * random order with pwrite, with content that depends on the round, then
 * reads its region back while the others still write.  At the end the
 * parent checks the size and every byte of every file.  -V only checks
 * the final content (for a second look, after a remount); it needs the
 * same parameters.  Exit status 1 on any error.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

static int nthreads = 4, nprocs = 2, chunks = 200, rounds = 3;
static size_t chunk = 3000;
static const char *dir;
static int shared_fd = -1;              /* per process, used by even threads */

struct writer {
	pthread_t tid;
	int w;                          /* writer number */
	int t;                          /* thread number in its process */
	int errors;
};

static void fill(unsigned char *buf, int w, int k, int r, int own)
{
	uint32_t x = (uint32_t)(w * 59 + k * 17 + r * 101 + own * 7 + 1);

	for (size_t j = 0; j < chunk; j++)
		buf[j] = (unsigned char)((x + (uint32_t)j * 131u) >> (j % 3));
}

static int pwrite_all(int fd, const unsigned char *buf, size_t len, off_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, buf, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

static ssize_t pread_all(int fd, unsigned char *buf, size_t len, off_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, off + (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Check chunk k of writer w in fd at off against round r; 0 if good. */
static int check_chunk(int fd, off_t off, int w, int k, int r, int own,
		       unsigned char *want, unsigned char *got, const char *what)
{
	ssize_t n;

	fill(want, w, k, r, own);
	n = pread_all(fd, got, chunk, off);
	if (n != (ssize_t)chunk) {
		fprintf(stderr, "concwrite: %s: writer %d chunk %d: read %zd bytes at %lld: %s\n",
			what, w, k, n, (long long)off, n < 0 ? strerror(errno) : "short");
		return -1;
	}
	if (memcmp(want, got, chunk) != 0) {
		size_t j = 0;

		while (got[j] == want[j])
			j++;
		fprintf(stderr, "concwrite: %s: writer %d chunk %d round %d: byte %lld "
			"is %02x, expected %02x\n", what, w, k, r, (long long)(off + (off_t)j),
			got[j], want[j]);
		return -1;
	}
	return 0;
}

static void *writer_main(void *arg)
{
	struct writer *wr = arg;
	char path[4096];
	int w = wr->w, sfd, ofd;
	unsigned char *buf = malloc(chunk), *got = malloc(chunk);
	int *order = malloc(sizeof(int) * (size_t)chunks);
	uint64_t rng = 0x9e3779b97f4a7c15ull * (uint64_t)(w + 1);
	off_t base = (off_t)w * (off_t)chunk * chunks;

	if (!buf || !got || !order) {
		wr->errors++;
		return NULL;
	}
	if (wr->t % 2 == 0) {
		sfd = shared_fd;
	} else {
		snprintf(path, sizeof path, "%s/shared", dir);
		sfd = open(path, O_RDWR);
	}
	snprintf(path, sizeof path, "%s/own.%d", dir, w);
	ofd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (sfd < 0 || ofd < 0) {
		fprintf(stderr, "concwrite: writer %d: open: %s\n", w, strerror(errno));
		wr->errors++;
		return NULL;
	}
	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < chunks; k++)
			order[k] = k;
		for (int k = chunks - 1; k > 0; k--) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			int j = (int)(rng % (uint64_t)(k + 1)), tmp = order[k];
			order[k] = order[j];
			order[j] = tmp;
		}
		for (int i = 0; i < chunks; i++) {
			int k = order[i];

			fill(buf, w, k, r, 0);
			if (pwrite_all(sfd, buf, chunk, base + (off_t)k * (off_t)chunk) < 0) {
				fprintf(stderr, "concwrite: writer %d: pwrite shared: %s\n", w,
					strerror(errno));
				wr->errors++;
				goto out;
			}
			fill(buf, w, k, r, 1);
			if (pwrite_all(ofd, buf, chunk, (off_t)k * (off_t)chunk) < 0) {
				fprintf(stderr, "concwrite: writer %d: pwrite own: %s\n", w,
					strerror(errno));
				wr->errors++;
				goto out;
			}
		}
		if (r % 2 == 1 && (fsync(sfd) < 0 || fdatasync(ofd) < 0)) {
			fprintf(stderr, "concwrite: writer %d: fsync: %s\n", w, strerror(errno));
			wr->errors++;
		}
		/* Read back own region while the others are still writing. */
		for (int k = 0; k < chunks; k++) {
			if (check_chunk(sfd, base + (off_t)k * (off_t)chunk, w, k, r, 0, buf,
					got, "shared (during)") < 0 ||
			    check_chunk(ofd, (off_t)k * (off_t)chunk, w, k, r, 1, buf, got,
					"own (during)") < 0) {
				wr->errors++;
				goto out;
			}
		}
	}
out:
	if (sfd != shared_fd)
		close(sfd);
	close(ofd);
	free(buf);
	free(got);
	free(order);
	return NULL;
}

static int run_process(int p)
{
	struct writer *ws = calloc((size_t)nthreads, sizeof *ws);
	char path[4096];
	int errors = 0;

	snprintf(path, sizeof path, "%s/shared", dir);
	shared_fd = open(path, O_RDWR);
	if (!ws || shared_fd < 0) {
		fprintf(stderr, "concwrite: process %d: open %s: %s\n", p, path, strerror(errno));
		return 1;
	}
	for (int t = 0; t < nthreads; t++) {
		ws[t].w = p * nthreads + t;
		ws[t].t = t;
		if (pthread_create(&ws[t].tid, NULL, writer_main, &ws[t]) != 0) {
			fprintf(stderr, "concwrite: pthread_create failed\n");
			return 1;
		}
	}
	for (int t = 0; t < nthreads; t++) {
		pthread_join(ws[t].tid, NULL);
		errors += ws[t].errors;
	}
	close(shared_fd);
	free(ws);
	return errors ? 1 : 0;
}

static int verify_all(void)
{
	int nw = nprocs * nthreads, errors = 0;
	off_t region = (off_t)chunk * chunks;
	unsigned char *want = malloc(chunk), *got = malloc(chunk);
	char path[4096];
	struct stat st;
	int fd;

	if (!want || !got)
		return 1;
	snprintf(path, sizeof path, "%s/shared", dir);
	fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "concwrite: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (st.st_size != region * nw) {
		fprintf(stderr, "concwrite: shared size %lld, expected %lld\n",
			(long long)st.st_size, (long long)(region * nw));
		errors++;
	}
	for (int w = 0; w < nw && errors < 20; w++)
		for (int k = 0; k < chunks; k++)
			if (check_chunk(fd, region * w + (off_t)k * (off_t)chunk, w, k,
					rounds - 1, 0, want, got, "shared (final)") < 0) {
				errors++;
				break;
			}
	close(fd);
	for (int w = 0; w < nw && errors < 20; w++) {
		snprintf(path, sizeof path, "%s/own.%d", dir, w);
		fd = open(path, O_RDONLY);
		if (fd < 0 || fstat(fd, &st) < 0) {
			fprintf(stderr, "concwrite: %s: %s\n", path, strerror(errno));
			errors++;
			continue;
		}
		if (st.st_size != region) {
			fprintf(stderr, "concwrite: %s size %lld, expected %lld\n", path,
				(long long)st.st_size, (long long)region);
			errors++;
		}
		for (int k = 0; k < chunks; k++)
			if (check_chunk(fd, (off_t)k * (off_t)chunk, w, k, rounds - 1, 1, want,
					got, path) < 0) {
				errors++;
				break;
			}
		close(fd);
	}
	free(want);
	free(got);
	return errors ? 1 : 0;
}

int main(int argc, char **argv)
{
	int c, verify_only = 0, failed = 0;
	char path[4096];
	struct timespec t0, t1;

	while ((c = getopt(argc, argv, "t:p:b:c:r:V")) != -1) {
		switch (c) {
		case 't': nthreads = atoi(optarg); break;
		case 'p': nprocs = atoi(optarg); break;
		case 'b': chunk = (size_t)atol(optarg); break;
		case 'c': chunks = atoi(optarg); break;
		case 'r': rounds = atoi(optarg); break;
		case 'V': verify_only = 1; break;
		default: goto usage;
		}
	}
	if (optind != argc - 1 || nthreads < 1 || nprocs < 1 || chunk < 1 ||
	    chunks < 1 || rounds < 1)
		goto usage;
	dir = argv[optind];
	printf("concwrite: %d processes x %d threads, %d chunks of %zu bytes, %d rounds%s\n",
	       nprocs, nthreads, chunks, chunk, rounds, verify_only ? " (verify only)" : "");
	fflush(stdout);
	if (verify_only) {
		if (verify_all()) {
			fprintf(stderr, "concwrite: verification FAILED\n");
			return 1;
		}
		printf("concwrite: verified\n");
		return 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	snprintf(path, sizeof path, "%s/shared", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		fprintf(stderr, "concwrite: create %s: %s\n", path, strerror(errno));
		return 1;
	}
	close(fd);
	pid_t *pids = calloc((size_t)nprocs, sizeof *pids);
	if (!pids)
		return 1;
	for (int p = 0; p < nprocs; p++) {
		fflush(stdout);
		pids[p] = fork();
		if (pids[p] < 0) {
			fprintf(stderr, "concwrite: fork: %s\n", strerror(errno));
			return 1;
		}
		if (pids[p] == 0)
			_exit(run_process(p));
	}
	for (int p = 0; p < nprocs; p++) {
		int st;

		if (waitpid(pids[p], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "concwrite: process %d failed\n", p);
			failed = 1;
		}
	}
	free(pids);
	if (verify_all())
		failed = 1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (failed) {
		fprintf(stderr, "concwrite: FAILED\n");
		return 1;
	}
	printf("concwrite: ok in %.2f s\n", (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return 0;
usage:
	fprintf(stderr, "usage: concwrite [-t THREADS] [-p PROCS] [-b CHUNK] [-c CHUNKS] "
		"[-r ROUNDS] [-V] DIR\n");
	return 2;
}
