/*
 * manyfiles.c -- one directory with many files.
 *
 *   manyfiles [-n N] [-s SAMPLE] [-S seed] DIR
 *
 * Creates DIR/many (must not exist) and in it N files (default 100000),
 * each holding its own name; stats a random sample (default 2000) and
 * reads their contents back; lists the directory and checks that every
 * name appears exactly once and nothing else does; looks up every name;
 * unlinks every file; checks the directory is empty and removes it.
 * Prints the time of each phase.  Exit status 1 on any error.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

static int dfd = -1;
static uint64_t rng = 88172645463325252ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Names of varied length and content so that hashing and node splits
 * see more than one shape of key. */
static void name_of(long i, char *buf, size_t len)
{
	static const char *tags[] = { "", "x", "data-", "long-name-with-some-padding-",
				      "Z", "\xc3\xa9t\xc3\xa9-" };

	snprintf(buf, len, "%s%07ld.%ld", tags[i % 6], i, (i * 7919) % 1000);
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void phase(const char *what, double t0, long n)
{
	double dt = now() - t0;

	printf("manyfiles: %-8s %8ld in %7.2f s (%.0f/s)\n", what, n, dt,
	       dt > 0 ? (double)n / dt : 0.0);
	fflush(stdout);
}

/* Index of a name produced by name_of, or -1. */
static long index_of(const char *name, long n)
{
	const char *p = name;
	char buf[128];
	long i;

	while (*p && (*p < '0' || *p > '9'))
		p++;
	if (!*p || sscanf(p, "%7ld", &i) != 1 || i < 0 || i >= n)
		return -1;
	name_of(i, buf, sizeof buf);
	return strcmp(buf, name) == 0 ? i : -1;
}

int main(int argc, char **argv)
{
	long n = 100000, sample = 2000, errors = 0;
	char name[128], buf[256], path[4096];
	unsigned char *seen;
	double t0;
	int c;

	while ((c = getopt(argc, argv, "n:s:S:")) != -1) {
		switch (c) {
		case 'n': n = atol(optarg); break;
		case 's': sample = atol(optarg); break;
		case 'S': rng = strtoull(optarg, NULL, 0) | 1; break;
		default:
			fprintf(stderr, "usage: manyfiles [-n N] [-s SAMPLE] [-S seed] DIR\n");
			return 2;
		}
	}
	if (optind != argc - 1 || n <= 0 || n > 9999999) {
		fprintf(stderr, "usage: manyfiles [-n N] [-s SAMPLE] [-S seed] DIR\n");
		return 2;
	}
	snprintf(path, sizeof path, "%s/many", argv[optind]);
	if (mkdir(path, 0755) < 0) {
		fprintf(stderr, "manyfiles: mkdir %s: %s\n", path, strerror(errno));
		return 1;
	}
	dfd = open(path, O_RDONLY | O_DIRECTORY);
	if (dfd < 0) {
		fprintf(stderr, "manyfiles: open %s: %s\n", path, strerror(errno));
		return 1;
	}
	seen = calloc((size_t)n, 1);
	if (!seen)
		return 1;

	/* create */
	t0 = now();
	for (long i = 0; i < n; i++) {
		name_of(i, name, sizeof name);
		int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd < 0) {
			fprintf(stderr, "manyfiles: create %s (#%ld): %s\n", name, i,
				strerror(errno));
			return 1;
		}
		size_t len = strlen(name);
		if (write(fd, name, len) != (ssize_t)len) {
			fprintf(stderr, "manyfiles: write %s: %s\n", name, strerror(errno));
			return 1;
		}
		if (close(fd) < 0) {
			fprintf(stderr, "manyfiles: close %s: %s\n", name, strerror(errno));
			return 1;
		}
	}
	phase("create", t0, n);

	/* stat and read a random sample */
	t0 = now();
	for (long k = 0; k < sample; k++) {
		long i = (long)(rnd() % (uint64_t)n);
		struct stat st;

		name_of(i, name, sizeof name);
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			fprintf(stderr, "manyfiles: stat %s: %s\n", name, strerror(errno));
			errors++;
			continue;
		}
		if (!S_ISREG(st.st_mode) || st.st_size != (off_t)strlen(name) ||
		    st.st_nlink != 1) {
			fprintf(stderr, "manyfiles: %s: mode %o size %lld nlink %lu\n", name,
				st.st_mode, (long long)st.st_size, (unsigned long)st.st_nlink);
			errors++;
		}
		int fd = openat(dfd, name, O_RDONLY);
		ssize_t r = fd < 0 ? -1 : read(fd, buf, sizeof buf);
		if (fd >= 0)
			close(fd);
		if (r != (ssize_t)strlen(name) || memcmp(buf, name, (size_t)r) != 0) {
			fprintf(stderr, "manyfiles: %s: wrong content\n", name);
			errors++;
		}
	}
	phase("stat", t0, sample);

	/* readdir */
	t0 = now();
	int lfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY);
	DIR *d = lfd < 0 ? NULL : fdopendir(lfd);
	long count = 0, dots = 0;
	struct dirent *de;
	if (!d) {
		fprintf(stderr, "manyfiles: opendir: %s\n", strerror(errno));
		return 1;
	}
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) {
			dots++;
			continue;
		}
		long i = index_of(de->d_name, n);
		if (i < 0) {
			fprintf(stderr, "manyfiles: unexpected entry \"%s\"\n", de->d_name);
			errors++;
		} else if (seen[i]++) {
			fprintf(stderr, "manyfiles: entry \"%s\" listed twice\n", de->d_name);
			errors++;
		}
		count++;
		errno = 0;
	}
	if (errno) {
		fprintf(stderr, "manyfiles: readdir: %s\n", strerror(errno));
		errors++;
	}
	closedir(d);
	for (long i = 0, missing = 0; i < n; i++) {
		if (!seen[i]) {
			if (missing++ < 10) {
				name_of(i, name, sizeof name);
				fprintf(stderr, "manyfiles: \"%s\" not listed\n", name);
			}
			errors++;
		}
	}
	if (count != n || dots != 2) {
		fprintf(stderr, "manyfiles: readdir listed %ld entries and %ld dots, "
			"expected %ld and 2\n", count, dots, n);
		errors++;
	}
	phase("readdir", t0, count);

	/* lookup every name */
	t0 = now();
	for (long i = 0; i < n; i++) {
		struct stat st;

		name_of(i, name, sizeof name);
		errno = 0;
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    st.st_size != (off_t)strlen(name)) {
			fprintf(stderr, "manyfiles: lookup %s: %s\n", name,
				errno ? strerror(errno) : "wrong size");
			errors++;
		}
	}
	phase("lookup", t0, n);

	/* lookups of names that do not exist */
	for (long i = n; i < n + 100; i++) {
		struct stat st;

		name_of(i, name, sizeof name);
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT) {
			fprintf(stderr, "manyfiles: %s should not exist\n", name);
			errors++;
		}
	}

	/* unlink all */
	t0 = now();
	for (long i = 0; i < n; i++) {
		name_of(i, name, sizeof name);
		if (unlinkat(dfd, name, 0) < 0) {
			fprintf(stderr, "manyfiles: unlink %s: %s\n", name, strerror(errno));
			errors++;
		}
	}
	phase("unlink", t0, n);

	/* empty again */
	lfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY);
	d = lfd < 0 ? NULL : fdopendir(lfd);
	count = 0;
	while (d && (de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			if (count++ < 10)
				fprintf(stderr, "manyfiles: \"%s\" left after unlink\n",
					de->d_name);
			errors++;
		}
	if (d)
		closedir(d);
	close(dfd);
	if (rmdir(path) < 0) {
		fprintf(stderr, "manyfiles: rmdir %s: %s\n", path, strerror(errno));
		errors++;
	}
	free(seen);
	if (errors) {
		fprintf(stderr, "manyfiles: %ld errors\n", errors);
		return 1;
	}
	printf("manyfiles: %ld files ok\n", n);
	return 0;
}
