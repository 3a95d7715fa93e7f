/*
 * pfsbench.c -- timed filesystem workloads for bench/run.sh.
 *
 *   pfsbench [-S MOUNTPOINT] [-N] WORKLOAD ARGS...
 *
 * Each workload runs once, timed with CLOCK_MONOTONIC, and prints one line
 *   secs=S ops=N bytes=B
 * on standard output (ops and bytes as the workload counts them).  With
 * -S, a mutating workload ends with a sync of that filesystem inside the
 * timed region, so the time covers making the work durable:
 * syncfs(2) on the mount point, which suffices for a kernel filesystem,
 * then fsync(2) of a marker file in its root, which a FUSE daemon sees as
 * a request to make everything durable (syncfs does not reach a FUSE
 * daemon here).  The marker is created before the clock starts.  -N
 * leaves out the final fsync of seqwrite, overwrite and roverwrite.
 *
 * Workloads (DIR and FILE are paths inside the filesystem under test):
 *   create DIR N              create N empty files DIR/f000000...
 *   stat DIR N                stat them
 *   rename DIR N              rename f* to r* in the same directory
 *   unlink DIR N              unlink r*
 *   mkdirs DIR FANOUT DEPTH   a tree of FANOUT^1 + ... + FANOUT^DEPTH dirs
 *   smallwrite DIR N SIZE     write N files of SIZE bytes (create, write,
 *                             close)
 *   smallread DIR N SIZE      read them back (open, read, close)
 *   seqwrite FILE MIB BS      write a new file of MIB MiB in BS-byte
 *                             writes, then fsync it
 *   seqread FILE BS           read FILE to its end in BS-byte reads
 *   randread FILE COUNT BS SEED
 *                             COUNT reads of BS bytes at BS-aligned random
 *                             offsets (POSIX_FADV_RANDOM)
 *   fsyncloop FILE COUNT BS   COUNT times: append BS bytes, fsync
 *   overwrite FILE BS         overwrite the existing FILE in place in
 *                             BS-byte sequential writes, then fsync
 *   roverwrite FILE COUNT BS SEED
 *                             COUNT BS-byte writes at BS-aligned random
 *                             offsets inside the existing FILE, then fsync
 *   locks FILE N OFF          N times: fcntl F_SETLK a write lock on byte
 *                             OFF of FILE, then unlock it (ops: N pairs)
 *   run CMD ARGS...           run a command (its status must be 0)
 *
 * Exit status: 0 success, 1 usage error, 2 the workload failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MARKER ".pfsbench-sync"

static const char *sync_root;           /* -S: the filesystem's mount point */
static int no_fsync;                    /* -N */
static int marker_fd = -1;
static int root_fd = -1;

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	va_list ap;
	int e = errno;

	fprintf(stderr, "pfsbench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (e)
		fprintf(stderr, ": %s", strerror(e));
	fputc('\n', stderr);
	exit(2);
}

static void usage(void) __attribute__((noreturn));

static void usage(void)
{
	fprintf(stderr,
		"usage: pfsbench [-S MOUNTPOINT] [-N] WORKLOAD ARGS...\n"
		"workloads: create|stat|rename|unlink DIR N; mkdirs DIR FANOUT DEPTH;\n"
		"  smallwrite|smallread DIR N SIZE; seqwrite FILE MIB BS; seqread FILE BS;\n"
		"  randread FILE COUNT BS SEED; fsyncloop FILE COUNT BS; overwrite FILE BS;\n"
		"  roverwrite FILE COUNT BS SEED; run CMD ARGS...\n");
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t parse_u64(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-') {
		fprintf(stderr, "pfsbench: %s: not a number: %s\n", what, s);
		exit(1);
	}
	return v;
}

/* xorshift64*: a fixed, seedable stream of offsets. */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static void rng_seed(uint64_t seed)
{
	rng_state = seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
	if (!rng_state)
		rng_state = 1;
	for (int i = 0; i < 8; i++)
		rng_next();
}

/* A buffer of n bytes of pseudo-random content. */
static char *make_buf(size_t n)
{
	char *b;

	if (posix_memalign((void **)&b, 4096, n ? n : 1))
		die("out of memory");
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = rng_next();
		memcpy(b + i, &v, n - i < 8 ? n - i : 8);
	}
	return b;
}

static void sync_prepare(void)
{
	char path[4096];

	if (!sync_root)
		return;
	root_fd = open(sync_root, O_RDONLY | O_DIRECTORY);
	if (root_fd < 0)
		die("open %s", sync_root);
	snprintf(path, sizeof(path), "%s/%s", sync_root, MARKER);
	marker_fd = open(path, O_RDWR | O_CREAT, 0644);
	if (marker_fd < 0)
		die("open %s", path);
}

static void sync_fs(void)
{
	if (root_fd < 0)
		return;
	if (syncfs(root_fd) < 0)
		die("syncfs %s", sync_root);
	if (fsync(marker_fd) < 0)
		die("fsync %s/%s", sync_root, MARKER);
}

static void full_write(int fd, const char *buf, size_t n, off_t off, const char *path)
{
	while (n) {
		ssize_t w = pwrite(fd, buf, n, off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write %s", path);
		buf += w;
		n -= (size_t)w;
		off += w;
	}
}

/* Read up to n bytes; returns what was read (short only at end of file). */
static size_t full_read(int fd, char *buf, size_t n, off_t off, const char *path)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = pread(fd, buf + done, n - done, off + (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("read %s", path);
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return done;
}

static void name_of(char *out, size_t sz, const char *dir, char prefix, uint64_t i)
{
	snprintf(out, sz, "%s/%c%06" PRIu64, dir, prefix, i);
}

static void report(double secs, uint64_t ops, uint64_t bytes)
{
	printf("secs=%.6f ops=%" PRIu64 " bytes=%" PRIu64 "\n", secs, ops, bytes);
}

static void w_create(const char *dir, uint64_t n)
{
	char p[4096];
	double t0 = now_s();

	for (uint64_t i = 0; i < n; i++) {
		name_of(p, sizeof(p), dir, 'f', i);
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd < 0)
			die("create %s", p);
		close(fd);
	}
	sync_fs();
	report(now_s() - t0, n, 0);
}

static void w_stat(const char *dir, uint64_t n)
{
	char p[4096];
	struct stat st;
	double t0 = now_s();

	for (uint64_t i = 0; i < n; i++) {
		name_of(p, sizeof(p), dir, 'f', i);
		if (stat(p, &st) < 0)
			die("stat %s", p);
	}
	report(now_s() - t0, n, 0);
}

static void w_rename(const char *dir, uint64_t n)
{
	char a[4096], b[4096];
	double t0 = now_s();

	for (uint64_t i = 0; i < n; i++) {
		name_of(a, sizeof(a), dir, 'f', i);
		name_of(b, sizeof(b), dir, 'r', i);
		if (rename(a, b) < 0)
			die("rename %s", a);
	}
	sync_fs();
	report(now_s() - t0, n, 0);
}

static void w_unlink(const char *dir, uint64_t n)
{
	char p[4096];
	double t0 = now_s();

	for (uint64_t i = 0; i < n; i++) {
		name_of(p, sizeof(p), dir, 'r', i);
		if (unlink(p) < 0)
			die("unlink %s", p);
	}
	sync_fs();
	report(now_s() - t0, n, 0);
}

static uint64_t mkdir_tree(const char *dir, unsigned fanout, unsigned depth)
{
	char p[4096];
	uint64_t made = 0;

	if (!depth)
		return 0;
	for (unsigned i = 0; i < fanout; i++) {
		snprintf(p, sizeof(p), "%s/d%u", dir, i);
		if (mkdir(p, 0755) < 0)
			die("mkdir %s", p);
		made += 1 + mkdir_tree(p, fanout, depth - 1);
	}
	return made;
}

static void w_mkdirs(const char *dir, uint64_t fanout, uint64_t depth)
{
	if (fanout < 1 || fanout > 1000 || depth < 1 || depth > 8) {
		fprintf(stderr, "pfsbench: mkdirs: FANOUT 1..1000, DEPTH 1..8\n");
		exit(1);
	}
	double t0 = now_s();
	uint64_t n = mkdir_tree(dir, (unsigned)fanout, (unsigned)depth);
	sync_fs();
	report(now_s() - t0, n, 0);
}

static void w_smallwrite(const char *dir, uint64_t n, uint64_t size)
{
	char p[4096];
	char *buf = make_buf(size);
	double t0 = now_s();

	for (uint64_t i = 0; i < n; i++) {
		name_of(p, sizeof(p), dir, 's', i);
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd < 0)
			die("create %s", p);
		full_write(fd, buf, size, 0, p);
		if (close(fd) < 0)
			die("close %s", p);
	}
	sync_fs();
	report(now_s() - t0, n, n * size);
	free(buf);
}

static void w_smallread(const char *dir, uint64_t n, uint64_t size)
{
	char p[4096];
	char *buf = make_buf(size + 1);
	double t0 = now_s();

	for (uint64_t i = 0; i < n; i++) {
		name_of(p, sizeof(p), dir, 's', i);
		int fd = open(p, O_RDONLY);
		if (fd < 0)
			die("open %s", p);
		size_t got = full_read(fd, buf, size + 1, 0, p);
		if (got != size) {
			errno = 0;
			die("%s: read %zu bytes, expected %" PRIu64, p, got, size);
		}
		close(fd);
	}
	report(now_s() - t0, n, n * size);
	free(buf);
}

static void w_seqwrite(const char *path, uint64_t mib, uint64_t bs)
{
	uint64_t total = mib << 20;
	char *buf = make_buf(bs);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0)
		die("create %s", path);
	double t0 = now_s();
	for (uint64_t off = 0; off < total; off += bs)
		full_write(fd, buf, total - off < bs ? total - off : bs, (off_t)off, path);
	if (!no_fsync && fsync(fd) < 0)
		die("fsync %s", path);
	double t = now_s() - t0;
	close(fd);
	report(t, (total + bs - 1) / bs, total);
	free(buf);
}

static void w_seqread(const char *path, uint64_t bs)
{
	char *buf = make_buf(bs);
	int fd = open(path, O_RDONLY);
	uint64_t total = 0, ops = 0;

	if (fd < 0)
		die("open %s", path);
	double t0 = now_s();
	for (;;) {
		size_t got = full_read(fd, buf, bs, (off_t)total, path);
		total += got;
		ops++;
		if (got < bs)
			break;
	}
	double t = now_s() - t0;
	close(fd);
	report(t, ops, total);
	free(buf);
}

static uint64_t file_blocks(int fd, uint64_t bs, const char *path)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		die("stat %s", path);
	uint64_t n = (uint64_t)st.st_size / bs;
	if (!n) {
		errno = 0;
		die("%s is smaller than %" PRIu64 " bytes", path, bs);
	}
	return n;
}

static void w_randread(const char *path, uint64_t count, uint64_t bs, uint64_t seed)
{
	char *buf = make_buf(bs);
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		die("open %s", path);
	uint64_t nblk = file_blocks(fd, bs, path);
	posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
	rng_seed(seed);
	double t0 = now_s();
	for (uint64_t i = 0; i < count; i++) {
		off_t off = (off_t)((rng_next() % nblk) * bs);
		if (full_read(fd, buf, bs, off, path) != bs) {
			errno = 0;
			die("%s: short read at %lld", path, (long long)off);
		}
	}
	double t = now_s() - t0;
	close(fd);
	report(t, count, count * bs);
	free(buf);
}

static void w_fsyncloop(const char *path, uint64_t count, uint64_t bs)
{
	char *buf = make_buf(bs);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0)
		die("create %s", path);
	double t0 = now_s();
	for (uint64_t i = 0; i < count; i++) {
		full_write(fd, buf, bs, (off_t)(i * bs), path);
		if (fsync(fd) < 0)
			die("fsync %s", path);
	}
	double t = now_s() - t0;
	close(fd);
	report(t, count, count * bs);
	free(buf);
}

static void w_overwrite(const char *path, uint64_t bs)
{
	char *buf = make_buf(bs);
	int fd = open(path, O_WRONLY);

	if (fd < 0)
		die("open %s", path);
	uint64_t nblk = file_blocks(fd, bs, path);
	double t0 = now_s();
	for (uint64_t i = 0; i < nblk; i++)
		full_write(fd, buf, bs, (off_t)(i * bs), path);
	if (!no_fsync && fsync(fd) < 0)
		die("fsync %s", path);
	double t = now_s() - t0;
	close(fd);
	report(t, nblk, nblk * bs);
	free(buf);
}

static void w_roverwrite(const char *path, uint64_t count, uint64_t bs, uint64_t seed)
{
	char *buf = make_buf(bs);
	int fd = open(path, O_WRONLY);

	if (fd < 0)
		die("open %s", path);
	uint64_t nblk = file_blocks(fd, bs, path);
	rng_seed(seed);
	double t0 = now_s();
	for (uint64_t i = 0; i < count; i++)
		full_write(fd, buf, bs, (off_t)((rng_next() % nblk) * bs), path);
	if (!no_fsync && fsync(fd) < 0)
		die("fsync %s", path);
	double t = now_s() - t0;
	close(fd);
	report(t, count, count * bs);
	free(buf);
}

static void w_locks(const char *path, uint64_t n, uint64_t off)
{
	int fd = open(path, O_RDWR | O_CREAT, 0644);
	if (fd < 0)
		die("open %s", path);
	struct flock fl = { .l_whence = SEEK_SET, .l_start = (off_t)off, .l_len = 1 };
	double t0 = now_s();
	for (uint64_t i = 0; i < n; i++) {
		fl.l_type = F_WRLCK;
		if (fcntl(fd, F_SETLK, &fl) < 0)
			die("lock %s byte %" PRIu64, path, off);
		fl.l_type = F_UNLCK;
		if (fcntl(fd, F_SETLK, &fl) < 0)
			die("unlock %s byte %" PRIu64, path, off);
	}
	report(now_s() - t0, n, 0);
	close(fd);
}

static void w_run(char **argv)
{
	double t0 = now_s();
	pid_t pid = fork();
	int status;

	if (pid < 0)
		die("fork");
	if (pid == 0) {
		execvp(argv[0], argv);
		fprintf(stderr, "pfsbench: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			die("waitpid");
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		errno = 0;
		die("%s failed (status 0x%x)", argv[0], status);
	}
	sync_fs();
	report(now_s() - t0, 1, 0);
}

int main(int argc, char **argv)
{
	int opt;

	while ((opt = getopt(argc, argv, "+S:N")) != -1) {
		switch (opt) {
		case 'S':
			sync_root = optarg;
			break;
		case 'N':
			no_fsync = 1;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	const char *w = argv[0];
	int nargs = argc - 1;
	char **a = argv + 1;

	rng_seed(42);
	setvbuf(stdout, NULL, _IOLBF, 0);
	sync_prepare();
	if (!strcmp(w, "run")) {
		if (nargs < 1)
			usage();
		w_run(a);
	} else if (!strcmp(w, "locks") && nargs == 3) {
		w_locks(a[0], parse_u64(a[1], "N"), parse_u64(a[2], "OFF"));
	} else if (!strcmp(w, "create") && nargs == 2) {
		w_create(a[0], parse_u64(a[1], "N"));
	} else if (!strcmp(w, "stat") && nargs == 2) {
		w_stat(a[0], parse_u64(a[1], "N"));
	} else if (!strcmp(w, "rename") && nargs == 2) {
		w_rename(a[0], parse_u64(a[1], "N"));
	} else if (!strcmp(w, "unlink") && nargs == 2) {
		w_unlink(a[0], parse_u64(a[1], "N"));
	} else if (!strcmp(w, "mkdirs") && nargs == 3) {
		w_mkdirs(a[0], parse_u64(a[1], "FANOUT"), parse_u64(a[2], "DEPTH"));
	} else if (!strcmp(w, "smallwrite") && nargs == 3) {
		w_smallwrite(a[0], parse_u64(a[1], "N"), parse_u64(a[2], "SIZE"));
	} else if (!strcmp(w, "smallread") && nargs == 3) {
		w_smallread(a[0], parse_u64(a[1], "N"), parse_u64(a[2], "SIZE"));
	} else if (!strcmp(w, "seqwrite") && nargs == 3) {
		uint64_t bs = parse_u64(a[2], "BS");
		if (!bs)
			usage();
		w_seqwrite(a[0], parse_u64(a[1], "MIB"), bs);
	} else if (!strcmp(w, "seqread") && nargs == 2) {
		uint64_t bs = parse_u64(a[1], "BS");
		if (!bs)
			usage();
		w_seqread(a[0], bs);
	} else if (!strcmp(w, "randread") && nargs == 4) {
		uint64_t bs = parse_u64(a[2], "BS");
		if (!bs)
			usage();
		w_randread(a[0], parse_u64(a[1], "COUNT"), bs, parse_u64(a[3], "SEED"));
	} else if (!strcmp(w, "fsyncloop") && nargs == 3) {
		uint64_t bs = parse_u64(a[2], "BS");
		if (!bs)
			usage();
		w_fsyncloop(a[0], parse_u64(a[1], "COUNT"), bs);
	} else if (!strcmp(w, "overwrite") && nargs == 2) {
		uint64_t bs = parse_u64(a[1], "BS");
		if (!bs)
			usage();
		w_overwrite(a[0], bs);
	} else if (!strcmp(w, "roverwrite") && nargs == 4) {
		uint64_t bs = parse_u64(a[2], "BS");
		if (!bs)
			usage();
		w_roverwrite(a[0], parse_u64(a[1], "COUNT"), bs, parse_u64(a[3], "SEED"));
	} else {
		usage();
	}
	return 0;
}
