/*
 * posix_check.c -- checks of POSIX and Linux filesystem behaviour inside a
 * directory of the filesystem under test.
 *
 *   posix_check [-l] DIR [GROUP | GROUP/NAME]...
 *
 * Without a selection every check runs; -l lists the checks.  Each check
 * runs in a child process, inside a fresh subdirectory of DIR that is
 * removed afterwards (a failure to remove it fails the check).  Every
 * check prints one line: "ok GROUP/NAME", "skip GROUP/NAME (why)" or
 * "FAIL GROUP/NAME" preceded by the line and condition that failed.
 * Exit status: 0 if no check failed, 1 otherwise, 2 for usage errors.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif
#ifndef SEEK_DATA
#define SEEK_DATA 3
#define SEEK_HOLE 4
#endif

#define KiB 1024LL
#define MiB (1024LL * 1024)
#define GiB (1024LL * 1024 * 1024)

static const char *cur_check = "?";
static const char *skip_why;

/* ---- reporting ---------------------------------------------------- */

static const char *ename(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "E?";
}

static int fail_line(int line, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail_line(int line, const char *fmt, ...)
{
	va_list ap;

	printf("  %s: line %d: ", cur_check, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return -1;
}

#define CHECK(c) do { \
	if (!(c)) \
		return fail_line(__LINE__, "%s", #c); \
} while (0)

#define CHECKF(c, ...) do { \
	if (!(c)) \
		return fail_line(__LINE__, __VA_ARGS__); \
} while (0)

/* The call must not return a negative value. */
#define OK(call) do { \
	errno = 0; \
	if ((long long)(call) < 0) \
		return fail_line(__LINE__, "%s: %s", #call, ename(errno)); \
} while (0)

/* The call must fail with -1 and errno e. */
#define FAILS(call, e) do { \
	errno = 0; \
	long long r_ = (long long)(call); \
	int e_ = errno; \
	if (r_ != -1 || e_ != (e)) \
		return fail_line(__LINE__, "%s: expected %s, got %s", #call, \
				 ename(e), r_ == -1 ? ename(e_) : "success"); \
} while (0)

/* The call must fail with -1 and errno e1 or e2. */
#define FAILS2(call, e1, e2) do { \
	errno = 0; \
	long long r_ = (long long)(call); \
	int e_ = errno; \
	if (r_ != -1 || (e_ != (e1) && e_ != (e2))) \
		return fail_line(__LINE__, "%s: expected %s or %s, got %s", \
				 #call, ename(e1), ename(e2), \
				 r_ == -1 ? ename(e_) : "success"); \
} while (0)

#define SKIP(why) do { skip_why = (why); return 2; } while (0)

/* ---- helpers ------------------------------------------------------ */

static void msleep(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void fill_pattern(unsigned char *buf, size_t len, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 12345u;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (unsigned char)(x >> 7);
	}
}

static int is_zero(const unsigned char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i])
			return 0;
	return 1;
}

/* Write all of buf at off; 0 or -1 with errno. */
static int pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* Read up to len bytes at off, stopping at end of file; count or -1. */
static ssize_t pread_all(int fd, void *buf, size_t len, off_t off)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, p + got, len - got, off + (off_t)got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static int write_file(const char *path, const void *buf, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	int r;

	if (fd < 0)
		return -1;
	r = pwrite_all(fd, buf, len, 0);
	if (close(fd) < 0)
		r = -1;
	return r;
}

static int write_str(const char *path, const char *s)
{
	return write_file(path, s, strlen(s), 0644);
}

/* Whole small file into buf (NUL-terminated); length or -1. */
static ssize_t read_file(const char *path, void *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = pread_all(fd, buf, cap - 1, 0);
	close(fd);
	if (n >= 0)
		((char *)buf)[n] = 0;
	return n;
}

static int file_is(const char *path, const char *want)
{
	char buf[4096];
	ssize_t n = read_file(path, buf, sizeof buf);

	return n >= 0 && (size_t)n == strlen(want) && memcmp(buf, want, (size_t)n) == 0;
}

static int exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static int ts_cmp(struct timespec a, struct timespec b)
{
	if (a.tv_sec != b.tv_sec)
		return a.tv_sec < b.tv_sec ? -1 : 1;
	if (a.tv_nsec != b.tv_nsec)
		return a.tv_nsec < b.tv_nsec ? -1 : 1;
	return 0;
}

static double ts_sec(struct timespec t)
{
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double now_real(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return ts_sec(t);
}

static nlink_t nlink_of(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return (nlink_t)-1;
	return st.st_nlink;
}

static ino_t ino_of(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return 0;
	return st.st_ino;
}

static long long blocks_of_fd(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -1;
	return (long long)st.st_blocks;
}

static int do_renameat2(const char *from, const char *to, unsigned flags)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 28))
	return renameat2(AT_FDCWD, from, AT_FDCWD, to, flags);
#else
	return (int)syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, flags);
#endif
}

/* Free bytes reported by statvfs(path), or -1. */
static long long free_bytes(const char *path)
{
	struct statvfs sv;

	if (statvfs(path, &sv) < 0)
		return -1;
	return (long long)sv.f_bfree * (long long)sv.f_frsize;
}

/* Wait for a child; its exit status, or 128+signal. */
static int child_status(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return 255;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb; (void)ftw;
	if (type == FTW_DP || type == FTW_D)
		return rmdir(path) < 0 ? -1 : 0;
	return unlink(path) < 0 ? -1 : 0;
}

static int rm_rf(const char *path)
{
	if (!exists(path))
		return 0;
	return nftw(path, rm_cb, 32, FTW_DEPTH | FTW_PHYS);
}

/* ---- file: create, read, write, open flags, offsets ---------------- */

static int ck_create_rw(void)
{
	static unsigned char buf[10000], rb[10000];
	struct stat st;
	int fd;

	fill_pattern(buf, sizeof buf, 1);
	OK(fd = open("f", O_CREAT | O_WRONLY, 0644));
	CHECK(write(fd, buf, sizeof buf) == (ssize_t)sizeof buf);
	OK(fstat(fd, &st));
	CHECK(S_ISREG(st.st_mode));
	CHECKF((st.st_mode & 07777) == 0644, "mode %o", st.st_mode & 07777);
	CHECK(st.st_size == (off_t)sizeof buf);
	CHECK(st.st_nlink == 1);
	CHECK(st.st_uid == geteuid());
	CHECK(st.st_blksize > 0);
	FAILS(read(fd, rb, 1), EBADF);
	OK(close(fd));

	OK(fd = open("f", O_RDONLY));
	CHECK(read(fd, rb, sizeof rb) == (ssize_t)sizeof rb);
	CHECK(memcmp(buf, rb, sizeof buf) == 0);
	CHECK(read(fd, rb, 1) == 0);
	FAILS(write(fd, buf, 1), EBADF);
	OK(close(fd));

	/* A large unaligned write, read back in odd-sized pieces. */
	size_t big = 3 * MiB + 123;
	unsigned char *b = malloc(big), *r = malloc(big);
	CHECK(b && r);
	fill_pattern(b, big, 2);
	OK(fd = open("big", O_CREAT | O_RDWR, 0644));
	CHECK(pwrite(fd, b, big, 777) == (ssize_t)big);
	OK(fstat(fd, &st));
	CHECK(st.st_size == (off_t)(big + 777));
	size_t got = 0;
	OK(lseek(fd, 777, SEEK_SET));
	while (got < big) {
		size_t want = 12345 + got % 7777;
		ssize_t n = read(fd, r + got, want > big - got ? big - got : want);
		OK(n);
		CHECK(n > 0);
		got += (size_t)n;
	}
	CHECK(memcmp(b, r, big) == 0);
	CHECK(pread_all(fd, r, 777, 0) == 777);
	CHECK(is_zero(r, 777));
	OK(close(fd));
	free(b);
	free(r);
	return 0;
}

static int ck_excl(void)
{
	int fd;

	OK(fd = open("f", O_CREAT | O_EXCL | O_WRONLY, 0644));
	OK(close(fd));
	FAILS(open("f", O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
	/* O_EXCL does not follow a symbolic link, even a dangling one. */
	OK(symlink("nowhere", "l"));
	FAILS(open("l", O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
	CHECK(!exists("nowhere"));
	OK(mkdir("d", 0755));
	FAILS(open("d", O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
	FAILS(open("d", O_CREAT | O_WRONLY, 0644), EISDIR);
	/* Without O_EXCL an existing file is opened, not replaced. */
	OK(write_str("g", "keep"));
	OK(fd = open("g", O_CREAT | O_RDWR, 0600));
	OK(close(fd));
	CHECK(file_is("g", "keep"));
	return 0;
}

static int ck_trunc(void)
{
	unsigned char buf[5000], rb[5000];
	struct stat st;
	int fd;

	fill_pattern(buf, sizeof buf, 3);
	OK(write_file("f", buf, sizeof buf, 0644));
	OK(fd = open("f", O_WRONLY | O_TRUNC));
	OK(fstat(fd, &st));
	CHECK(st.st_size == 0);
	CHECK(write(fd, "0123456789", 10) == 10);
	OK(close(fd));
	CHECK(file_is("f", "0123456789"));
	/* Old data must not come back when the file grows again. */
	OK(truncate("f", 5000));
	OK(fd = open("f", O_RDONLY));
	CHECK(pread_all(fd, rb, sizeof rb, 0) == 5000);
	CHECK(memcmp(rb, "0123456789", 10) == 0);
	CHECK(is_zero(rb + 10, 4990));
	OK(close(fd));
	return 0;
}

static int ck_append(void)
{
	int fd, fd2;
	char rec1[64], rec2[64];

	OK(write_str("f", "hello"));
	OK(fd = open("f", O_WRONLY | O_APPEND));
	OK(lseek(fd, 0, SEEK_SET));
	CHECK(write(fd, "world", 5) == 5);
	CHECK(lseek(fd, 0, SEEK_CUR) == 10);
	OK(close(fd));
	CHECK(file_is("f", "helloworld"));

	/* Two descriptors appending in turn never overwrite each other. */
	OK(fd = open("g", O_WRONLY | O_CREAT | O_APPEND, 0644));
	OK(fd2 = open("g", O_WRONLY | O_APPEND));
	for (int i = 0; i < 100; i++) {
		snprintf(rec1, sizeof rec1, "A%05d\n", i);
		snprintf(rec2, sizeof rec2, "B%05d\n", i);
		CHECK(write(fd, rec1, 7) == 7);
		CHECK(write(fd2, rec2, 7) == 7);
	}
	OK(close(fd));
	OK(close(fd2));
	char *all = malloc(2000);
	CHECK(all);
	CHECK(read_file("g", all, 2000) == 1400);
	for (int i = 0; i < 100; i++) {
		snprintf(rec1, sizeof rec1, "A%05d\nB%05d\n", i, i);
		CHECKF(memcmp(all + 14 * i, rec1, 14) == 0, "record %d", i);
	}
	free(all);
	return 0;
}

static int ck_lseek(void)
{
	unsigned char buf[100], rb[10000];
	struct stat st;
	int fd;

	fill_pattern(buf, sizeof buf, 4);
	OK(fd = open("f", O_RDWR | O_CREAT, 0644));
	CHECK(write(fd, buf, 100) == 100);
	CHECK(lseek(fd, 0, SEEK_END) == 100);
	CHECK(lseek(fd, -30, SEEK_CUR) == 70);
	CHECK(lseek(fd, 5, SEEK_CUR) == 75);
	CHECK(read(fd, rb, 10) == 10);
	CHECK(memcmp(rb, buf + 75, 10) == 0);
	CHECK(lseek(fd, -10, SEEK_END) == 90);
	FAILS(lseek(fd, -1, SEEK_SET), EINVAL);
	CHECK(lseek(fd, 0, SEEK_CUR) == 90);
	/* Seeking past the end and writing leaves a hole of zeros. */
	CHECK(lseek(fd, 10000, SEEK_SET) == 10000);
	OK(fstat(fd, &st));
	CHECK(st.st_size == 100);
	CHECK(write(fd, "z", 1) == 1);
	OK(fstat(fd, &st));
	CHECK(st.st_size == 10001);
	CHECK(pread_all(fd, rb, 10000, 0) == 10000);
	CHECK(memcmp(rb, buf, 100) == 0);
	CHECK(is_zero(rb + 100, 9900));
	OK(close(fd));
	return 0;
}

static int ck_pread_pwrite(void)
{
	static const off_t offs[] = { 0, 1, 4095, 4096, 8191, 65537, MiB + 7 };
	size_t n = sizeof offs / sizeof offs[0];
	size_t flen = (size_t)(MiB + 7 + 100);
	unsigned char *model = calloc(1, flen), *rb = malloc(flen);
	unsigned char rec[100];
	int fd;

	CHECK(model && rb);
	OK(fd = open("f", O_RDWR | O_CREAT, 0644));
	for (size_t i = 0; i < n; i++) {
		fill_pattern(rec, sizeof rec, 10 + (unsigned)i);
		CHECK(pwrite(fd, rec, sizeof rec, offs[i]) == (ssize_t)sizeof rec);
		memcpy(model + offs[i], rec, sizeof rec);
		CHECK(lseek(fd, 0, SEEK_CUR) == 0);
	}
	for (size_t i = 0; i < n; i++) {
		CHECK(pread(fd, rec, sizeof rec, offs[i]) == (ssize_t)sizeof rec);
		CHECKF(memcmp(rec, model + offs[i], sizeof rec) == 0, "at %lld",
		       (long long)offs[i]);
	}
	CHECK(lseek(fd, 0, SEEK_CUR) == 0);
	CHECK(pread_all(fd, rb, flen, 0) == (ssize_t)flen);
	CHECK(memcmp(rb, model, flen) == 0);
	CHECK(pread(fd, rec, sizeof rec, (off_t)flen) == 0);
	CHECK(pread(fd, rec, sizeof rec, (off_t)flen - 50) == 50);
	CHECK(pread(fd, rec, sizeof rec, (off_t)flen + 10 * MiB) == 0);
	OK(close(fd));
	free(model);
	free(rb);
	return 0;
}

static int ck_isdir_io(void)
{
	char c;
	int fd;

	OK(mkdir("d", 0755));
	OK(fd = open("d", O_RDONLY));
	FAILS(read(fd, &c, 1), EISDIR);
	OK(close(fd));
	FAILS(open("d", O_WRONLY), EISDIR);
	FAILS(open("d", O_RDWR), EISDIR);
	FAILS(truncate("d", 0), EISDIR);
	return 0;
}

/* ---- unlink ------------------------------------------------------- */

static int ck_unlink(void)
{
	struct stat st;
	int fd;

	OK(write_str("f", "data"));
	OK(unlink("f"));
	FAILS(stat("f", &st), ENOENT);
	FAILS(unlink("f"), ENOENT);
	/* A new file of the same name starts empty. */
	OK(fd = open("f", O_RDWR | O_CREAT, 0644));
	OK(fstat(fd, &st));
	CHECK(st.st_size == 0);
	OK(close(fd));
	OK(mkdir("d", 0755));
	FAILS(unlink("d"), EISDIR);
	CHECK(exists("d"));
	FAILS(unlink("missing/x"), ENOENT);
	FAILS(unlink("f/x"), ENOTDIR);
	/* Unlinking a symlink removes the link, not its target. */
	OK(symlink("f", "l"));
	OK(unlink("l"));
	CHECK(exists("f"));
	CHECK(!exists("l"));
	return 0;
}

/* ---- dir: mkdir, rmdir, path errors, link counts ------------------ */

static int ck_mkdir(void)
{
	struct stat st;

	OK(mkdir("d", 0755));
	OK(stat("d", &st));
	CHECK(S_ISDIR(st.st_mode));
	CHECKF((st.st_mode & 07777) == 0755, "mode %o", st.st_mode & 07777);
	CHECK(st.st_nlink == 2);
	FAILS(mkdir("d", 0755), EEXIST);
	OK(write_str("f", "x"));
	FAILS(mkdir("f", 0755), EEXIST);
	OK(symlink("nowhere", "l"));
	FAILS(mkdir("l", 0755), EEXIST);
	FAILS(mkdir("a/b", 0755), ENOENT);
	FAILS(mkdir("f/x", 0755), ENOTDIR);
	OK(mkdir("p", 0700));
	OK(stat("p", &st));
	CHECKF((st.st_mode & 07777) == 0700, "mode %o", st.st_mode & 07777);
	/* Deep nesting. */
	char path[4096] = "deep";
	OK(mkdir(path, 0755));
	for (int i = 0; i < 50; i++) {
		strcat(path, "/sub");
		OK(mkdir(path, 0755));
	}
	OK(stat(path, &st));
	CHECK(S_ISDIR(st.st_mode));
	return 0;
}

static int ck_rmdir(void)
{
	struct stat st;

	OK(mkdir("d", 0755));
	OK(write_str("d/f", "x"));
	FAILS(rmdir("d"), ENOTEMPTY);
	OK(unlink("d/f"));
	OK(mkdir("d/sub", 0755));
	FAILS(rmdir("d"), ENOTEMPTY);
	OK(rmdir("d/sub"));
	OK(symlink("x", "d/l"));
	FAILS(rmdir("d"), ENOTEMPTY);
	OK(unlink("d/l"));
	OK(rmdir("d"));
	FAILS(stat("d", &st), ENOENT);
	FAILS(rmdir("d"), ENOENT);
	OK(write_str("f", "x"));
	FAILS(rmdir("f"), ENOTDIR);
	OK(mkdir("e", 0755));
	FAILS(rmdir("e/."), EINVAL);
	OK(symlink("e", "le"));
	FAILS(rmdir("le"), ENOTDIR);
	CHECK(exists("e"));
	return 0;
}

static int ck_nlink_dir(void)
{
	nlink_t top = nlink_of(".");

	OK(mkdir("d", 0755));
	CHECK(nlink_of("d") == 2);
	CHECK(nlink_of(".") == top + 1);
	OK(mkdir("d/s1", 0755));
	OK(mkdir("d/s2", 0755));
	OK(mkdir("d/s3", 0755));
	CHECKF(nlink_of("d") == 5, "nlink %lu", (unsigned long)nlink_of("d"));
	OK(write_str("d/file", "x"));
	OK(symlink("file", "d/sym"));
	OK(mkfifo("d/fifo", 0644));
	CHECKF(nlink_of("d") == 5, "nlink %lu", (unsigned long)nlink_of("d"));
	OK(rmdir("d/s2"));
	CHECK(nlink_of("d") == 4);
	OK(rename("d/s1", "s1"));
	CHECK(nlink_of("d") == 3);
	CHECK(nlink_of(".") == top + 2);
	OK(rename("s1", "d/s1"));
	CHECK(nlink_of("d") == 4);
	CHECK(nlink_of(".") == top + 1);
	return 0;
}

static int ck_enoent(void)
{
	struct stat st;

	FAILS(stat("missing", &st), ENOENT);
	FAILS(stat("missing/x", &st), ENOENT);
	FAILS(open("missing", O_RDONLY), ENOENT);
	FAILS(open("a/b/c", O_CREAT | O_WRONLY, 0644), ENOENT);
	OK(mkdir("d", 0755));
	FAILS(stat("d/missing/x", &st), ENOENT);
	FAILS(open("", O_RDONLY), ENOENT);
	return 0;
}

static int ck_enotdir(void)
{
	struct stat st;

	OK(write_str("f", "x"));
	FAILS(stat("f/x", &st), ENOTDIR);
	FAILS(open("f/x", O_CREAT | O_WRONLY, 0644), ENOTDIR);
	FAILS(stat("f/", &st), ENOTDIR);
	FAILS(mkdir("f/d", 0755), ENOTDIR);
	FAILS(rename("f/x", "y"), ENOTDIR);
	FAILS(symlink("x", "f/l"), ENOTDIR);
	/* A symlink to a file in the middle of a path. */
	OK(symlink("f", "lf"));
	FAILS(stat("lf/x", &st), ENOTDIR);
	return 0;
}

static int ck_odirectory(void)
{
	int fd;

	OK(write_str("f", "x"));
	OK(mkdir("d", 0755));
	OK(symlink("d", "ld"));
	FAILS(open("f", O_RDONLY | O_DIRECTORY), ENOTDIR);
	OK(fd = open(".", O_RDONLY | O_DIRECTORY));
	OK(close(fd));
	OK(fd = open("d", O_RDONLY | O_DIRECTORY));
	OK(close(fd));
	OK(fd = open("ld", O_RDONLY | O_DIRECTORY));
	OK(close(fd));
	FAILS(open("ld", O_RDONLY | O_DIRECTORY | O_NOFOLLOW), ENOTDIR);
	return 0;
}

/* ---- name: lengths and unusual characters ------------------------- */

static int ck_namemax(void)
{
	char n255[256], n256[257];
	struct stat st;
	int fd, found = 0;

	memset(n255, 'n', 255);
	n255[255] = 0;
	memset(n256, 'm', 256);
	n256[256] = 0;
	OK(fd = open(n255, O_CREAT | O_WRONLY, 0644));
	OK(close(fd));
	OK(stat(n255, &st));
	FAILS(open(n256, O_CREAT | O_WRONLY, 0644), ENAMETOOLONG);
	FAILS(stat(n256, &st), ENAMETOOLONG);
	FAILS(mkdir(n256, 0755), ENAMETOOLONG);
	FAILS(symlink("x", n256), ENAMETOOLONG);
	FAILS(link(n255, n256), ENAMETOOLONG);
	FAILS(rename(n255, n256), ENAMETOOLONG);
	OK(mkdir("d", 0755));
	char sub[300];
	snprintf(sub, sizeof sub, "d/%s", n255);
	OK(mkdir(sub, 0755));
	DIR *d = opendir(".");
	CHECK(d);
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, n255) == 0)
			found++;
	closedir(d);
	CHECK(found == 1);
	return 0;
}

static int ck_odd_names(void)
{
	static const char *names[] = {
		"with space", "tab\tname", "new\nline", "-dash", ".hidden",
		"..dots", "\xc3\xbcnic\xc3\xb6" "de", "q'uote\"", "back\\slash",
		"star*?[x]", "\x01\x7f\xff", "a", "A",
	};
	size_t n = sizeof names / sizeof names[0];
	int seen[sizeof names / sizeof names[0]] = { 0 };

	for (size_t i = 0; i < n; i++) {
		OK(write_str(names[i], names[i]));
	}
	for (size_t i = 0; i < n; i++)
		CHECKF(file_is(names[i], names[i]), "name %zu", i);
	DIR *d = opendir(".");
	CHECK(d);
	struct dirent *de;
	int other = 0;
	while ((de = readdir(d)) != NULL) {
		size_t i;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		for (i = 0; i < n; i++)
			if (strcmp(de->d_name, names[i]) == 0)
				break;
		if (i == n)
			other++;
		else
			seen[i]++;
	}
	closedir(d);
	CHECK(other == 0);
	for (size_t i = 0; i < n; i++)
		CHECKF(seen[i] == 1, "name %zu seen %d times", i, seen[i]);
	return 0;
}

/* ---- symlink ------------------------------------------------------ */

static int ck_symlink(void)
{
	char buf[PATH_MAX], cwd[PATH_MAX], abs[PATH_MAX + 16];
	struct stat st;
	ssize_t n;

	OK(symlink("target", "l"));
	OK(n = readlink("l", buf, sizeof buf));
	CHECK(n == 6 && memcmp(buf, "target", 6) == 0);
	OK(lstat("l", &st));
	CHECK(S_ISLNK(st.st_mode));
	CHECK(st.st_size == 6);
	FAILS(stat("l", &st), ENOENT);
	OK(write_str("target", "through the link"));
	OK(stat("l", &st));
	CHECK(S_ISREG(st.st_mode));
	CHECK(file_is("l", "through the link"));
	FAILS(symlink("other", "l"), EEXIST);
	FAILS(symlink("other", "target"), EEXIST);
	FAILS(readlink("target", buf, sizeof buf), EINVAL);
	/* A relative target resolves from the link's own directory. */
	OK(mkdir("sub", 0755));
	OK(symlink("../target", "sub/up"));
	CHECK(file_is("sub/up", "through the link"));
	OK(symlink("sub", "ls"));
	CHECK(file_is("ls/up", "through the link"));
	/* An absolute target. */
	CHECK(getcwd(cwd, sizeof cwd) != NULL);
	snprintf(abs, sizeof abs, "%s/target", cwd);
	OK(symlink(abs, "la"));
	CHECK(file_is("la", "through the link"));
	OK(n = readlink("la", buf, sizeof buf));
	CHECK((size_t)n == strlen(abs) && memcmp(buf, abs, (size_t)n) == 0);
	return 0;
}

static int ck_symlink_long(void)
{
	static const size_t lens[] = { 1, 59, 60, 95, 96, 97, 200, 1000, 4000, 4094, 4095 };
	char *target = malloc(4097), *buf = malloc(8192), name[32];
	struct stat st;
	ssize_t n;

	CHECK(target && buf);
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		size_t len = lens[i];

		/* Path-like targets: components of at most 200 bytes. */
		for (size_t j = 0; j < len; j++)
			target[j] = (j % 201 == 200) ? '/' : (char)('a' + (j + i) % 26);
		target[len] = 0;
		snprintf(name, sizeof name, "l%zu", len);
		OK(symlink(target, name));
	}
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		size_t len = lens[i];

		for (size_t j = 0; j < len; j++)
			target[j] = (j % 201 == 200) ? '/' : (char)('a' + (j + i) % 26);
		snprintf(name, sizeof name, "l%zu", len);
		OK(n = readlink(name, buf, 8192));
		CHECKF((size_t)n == len, "%s: readlink length %zd", name, n);
		CHECKF(memcmp(buf, target, len) == 0, "%s: target differs", name);
		OK(lstat(name, &st));
		CHECKF(st.st_size == (off_t)len, "%s: st_size %lld", name,
		       (long long)st.st_size);
	}
	/* A short buffer gets a truncated target, without a NUL. */
	memset(buf, '#', 20);
	OK(n = readlink("l4095", buf, 10));
	CHECK(n == 10);
	CHECK(buf[10] == '#');
	memset(target, 'x', 4096);
	target[4096] = 0;
	FAILS(symlink(target, "ltoolong"), ENAMETOOLONG);
	free(target);
	free(buf);
	return 0;
}

static int ck_eloop(void)
{
	struct stat st;

	OK(symlink("b", "a"));
	OK(symlink("a", "b"));
	FAILS(open("a", O_RDONLY), ELOOP);
	FAILS(stat("a", &st), ELOOP);
	FAILS(open("a", O_CREAT | O_WRONLY, 0644), ELOOP);
	OK(symlink("self", "self"));
	FAILS(stat("self", &st), ELOOP);
	FAILS(stat("self/x", &st), ELOOP);
	OK(lstat("self", &st));
	CHECK(S_ISLNK(st.st_mode));
	OK(write_str("t", "x"));
	OK(symlink("t", "lt"));
	FAILS(open("lt", O_RDONLY | O_NOFOLLOW), ELOOP);
	return 0;
}

/* ---- link --------------------------------------------------------- */

static int ck_hardlink(void)
{
	struct stat a, b;
	char name[32];
	int fd;

	OK(write_str("f", "data"));
	OK(link("f", "g"));
	OK(stat("f", &a));
	OK(stat("g", &b));
	CHECK(a.st_ino == b.st_ino);
	CHECK(a.st_nlink == 2 && b.st_nlink == 2);
	OK(fd = open("g", O_WRONLY | O_TRUNC));
	CHECK(write(fd, "DATA!", 5) == 5);
	OK(close(fd));
	CHECK(file_is("f", "DATA!"));
	FAILS(link("f", "g"), EEXIST);
	FAILS(link("missing", "h"), ENOENT);
	OK(unlink("f"));
	CHECK(nlink_of("g") == 1);
	CHECK(file_is("g", "DATA!"));
	OK(mkdir("d", 0755));
	OK(link("g", "d/g2"));
	CHECK(nlink_of("g") == 2);
	CHECK(ino_of("d/g2") == b.st_ino);
	/* Many links to one inode. */
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof name, "d/m%d", i);
		OK(link("g", name));
	}
	CHECKF(nlink_of("g") == 102, "nlink %lu", (unsigned long)nlink_of("g"));
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof name, "d/m%d", i);
		OK(unlink(name));
	}
	CHECK(nlink_of("g") == 2);
	CHECK(file_is("d/g2", "DATA!"));
	/* link() does not follow a symlink: the link itself gets a name. */
	OK(symlink("g", "sym"));
	OK(link("sym", "hsym"));
	OK(lstat("hsym", &a));
	CHECK(S_ISLNK(a.st_mode));
	CHECK(a.st_nlink == 2);
	CHECK(a.st_ino == ino_of("sym"));
	return 0;
}

static int ck_link_dir(void)
{
	OK(mkdir("d", 0755));
	FAILS(link("d", "e"), EPERM);
	CHECK(!exists("e"));
	CHECK(nlink_of("d") == 2);
	return 0;
}

/* ---- rename ------------------------------------------------------- */

static int ck_rename_file(void)
{
	char buf[64];
	struct stat st;
	ino_t ia;
	int fd;

	OK(write_str("a", "AAAAAAAA"));
	OK(write_str("b", "BB"));
	ia = ino_of("a");
	OK(fd = open("b", O_RDONLY));
	OK(rename("a", "b"));
	CHECK(!exists("a"));
	CHECK(ino_of("b") == ia);
	CHECK(file_is("b", "AAAAAAAA"));
	/* The replaced file lives on while open. */
	OK(fstat(fd, &st));
	CHECK(st.st_nlink == 0);
	CHECK(pread(fd, buf, sizeof buf, 0) == 2 && memcmp(buf, "BB", 2) == 0);
	OK(close(fd));
	/* Rename to a new name and into a subdirectory. */
	OK(rename("b", "c"));
	CHECK(!exists("b") && file_is("c", "AAAAAAAA"));
	OK(mkdir("d", 0755));
	OK(rename("c", "d/c2"));
	CHECK(file_is("d/c2", "AAAAAAAA"));
	CHECK(ino_of("d/c2") == ia);
	/* Rename of a symlink moves the link itself. */
	OK(symlink("d/c2", "l"));
	OK(rename("l", "l2"));
	CHECK(file_is("l2", "AAAAAAAA"));
	OK(lstat("l2", &st));
	CHECK(S_ISLNK(st.st_mode));
	return 0;
}

static int ck_rename_dirs(void)
{
	nlink_t top;

	OK(mkdir("d1", 0755));
	OK(write_str("d1/x", "x"));
	OK(mkdir("d2", 0755));
	top = nlink_of(".");
	OK(rename("d1", "d2"));
	CHECK(!exists("d1"));
	CHECK(file_is("d2/x", "x"));
	CHECK(nlink_of(".") == top - 1);
	OK(mkdir("d3", 0755));
	OK(write_str("d3/y", "y"));
	OK(mkdir("d4", 0755));
	OK(write_str("d4/z", "z"));
	FAILS(rename("d3", "d4"), ENOTEMPTY);
	CHECK(file_is("d3/y", "y") && file_is("d4/z", "z"));
	return 0;
}

static int ck_rename_errors(void)
{
	OK(write_str("f", "f"));
	OK(mkdir("d", 0755));
	OK(mkdir("d/sub", 0755));
	FAILS(rename("f", "d"), EISDIR);
	FAILS(rename("d", "f"), ENOTDIR);
	FAILS(rename("d", "d/sub/x"), EINVAL);
	FAILS(rename("d", "d/x"), EINVAL);
	FAILS(rename("missing", "x"), ENOENT);
	FAILS(rename("f", "nodir/x"), ENOENT);
	CHECK(file_is("f", "f"));
	CHECK(exists("d/sub"));
	return 0;
}

static int ck_rename_self(void)
{
	OK(write_str("f", "self"));
	OK(rename("f", "f"));
	CHECK(file_is("f", "self"));
	/* Two names of one inode: rename does nothing. */
	OK(link("f", "g"));
	OK(rename("f", "g"));
	CHECK(file_is("f", "self") && file_is("g", "self"));
	CHECK(nlink_of("f") == 2);
	OK(mkdir("d", 0755));
	OK(rename("d", "d"));
	CHECK(nlink_of("d") == 2);
	return 0;
}

static int ck_rename_move_dir(void)
{
	struct stat a, b;

	OK(mkdir("p1", 0755));
	OK(mkdir("p2", 0755));
	OK(mkdir("p1/c", 0755));
	OK(write_str("p1/c/file", "payload"));
	OK(rename("p1/c", "p2/c"));
	OK(stat("p2/c/..", &a));
	OK(stat("p2", &b));
	CHECK(a.st_ino == b.st_ino);
	CHECK(nlink_of("p1") == 2);
	CHECK(nlink_of("p2") == 3);
	CHECK(file_is("p2/c/file", "payload"));
	OK(rename("p2/c", "p1/renamed"));
	CHECK(nlink_of("p1") == 3 && nlink_of("p2") == 2);
	OK(stat("p1/renamed/..", &a));
	CHECK(a.st_ino == ino_of("p1"));
	/* Replace an empty directory in another parent. */
	OK(mkdir("p2/empty", 0755));
	OK(rename("p1/renamed", "p2/empty"));
	CHECK(nlink_of("p1") == 2 && nlink_of("p2") == 3);
	CHECK(file_is("p2/empty/file", "payload"));
	/* Many renames in one directory. */
	char from[32], to[32];
	for (int i = 0; i < 200; i++) {
		snprintf(from, sizeof from, "p1/n%d", i);
		OK(write_str(from, from));
	}
	for (int i = 0; i < 200; i++) {
		snprintf(from, sizeof from, "p1/n%d", i);
		snprintf(to, sizeof to, "p1/renamed-%d", i);
		OK(rename(from, to));
	}
	for (int i = 0; i < 200; i++) {
		snprintf(from, sizeof from, "p1/n%d", i);
		snprintf(to, sizeof to, "p1/renamed-%d", i);
		CHECK(!exists(from));
		CHECK(file_is(to, from));
	}
	return 0;
}

/* ---- rename2: renameat2 flags ------------------------------------- */

static int ck_noreplace(void)
{
	OK(write_str("a", "A"));
	OK(write_str("b", "B"));
	FAILS(do_renameat2("a", "b", RENAME_NOREPLACE), EEXIST);
	CHECK(file_is("a", "A") && file_is("b", "B"));
	OK(do_renameat2("a", "c", RENAME_NOREPLACE));
	CHECK(!exists("a") && file_is("c", "A"));
	OK(mkdir("d", 0755));
	FAILS(do_renameat2("c", "d", RENAME_NOREPLACE), EEXIST);
	return 0;
}

static int ck_exchange_files(void)
{
	ino_t ia, ib;

	OK(write_str("a", "AAA"));
	OK(write_str("b", "BB"));
	ia = ino_of("a");
	ib = ino_of("b");
	OK(do_renameat2("a", "b", RENAME_EXCHANGE));
	CHECK(file_is("a", "BB") && file_is("b", "AAA"));
	CHECK(ino_of("a") == ib && ino_of("b") == ia);
	FAILS(do_renameat2("a", "missing", RENAME_EXCHANGE), ENOENT);
	FAILS(do_renameat2("a", "b", RENAME_EXCHANGE | RENAME_NOREPLACE), EINVAL);
	return 0;
}

static int ck_exchange_dir(void)
{
	struct stat st;

	OK(mkdir("p1", 0755));
	OK(mkdir("p2", 0755));
	OK(write_str("p1/f", "file"));
	OK(mkdir("p2/d", 0755));
	OK(write_str("p2/d/inner", "inner"));
	OK(do_renameat2("p1/f", "p2/d", RENAME_EXCHANGE));
	OK(lstat("p1/f", &st));
	CHECK(S_ISDIR(st.st_mode));
	CHECK(file_is("p1/f/inner", "inner"));
	CHECK(file_is("p2/d", "file"));
	CHECK(nlink_of("p1") == 3);
	CHECK(nlink_of("p2") == 2);
	OK(stat("p1/f/..", &st));
	CHECK(st.st_ino == ino_of("p1"));
	/* Two directories in one parent. */
	OK(mkdir("p1/g", 0755));
	OK(write_str("p1/g/gg", "gg"));
	OK(do_renameat2("p1/f", "p1/g", RENAME_EXCHANGE));
	CHECK(file_is("p1/f/gg", "gg") && file_is("p1/g/inner", "inner"));
	CHECK(nlink_of("p1") == 4);
	return 0;
}

/* ---- mknod: fifo, socket, devices --------------------------------- */

static int ck_fifo(void)
{
	struct stat st;
	char c = 0;
	int fd;

	OK(mkfifo("p", 0644));
	OK(lstat("p", &st));
	CHECK(S_ISFIFO(st.st_mode));
	CHECK((st.st_mode & 07777) == 0644);
	FAILS(mkfifo("p", 0644), EEXIST);
	OK(fd = open("p", O_RDWR | O_NONBLOCK));
	CHECK(write(fd, "x", 1) == 1);
	CHECK(read(fd, &c, 1) == 1 && c == 'x');
	OK(close(fd));
	OK(mknod("p2", S_IFIFO | 0600, 0));
	OK(lstat("p2", &st));
	CHECK(S_ISFIFO(st.st_mode));
	OK(mknod("r", S_IFREG | 0640, 0));
	OK(lstat("r", &st));
	CHECK(S_ISREG(st.st_mode) && st.st_size == 0);
	OK(unlink("p"));
	CHECK(!exists("p"));
	return 0;
}

static int ck_socket(void)
{
	struct sockaddr_un sa;
	struct stat st;
	char buf[16];
	int s, c;

	OK(mknod("s", S_IFSOCK | 0644, 0));
	OK(lstat("s", &st));
	CHECK(S_ISSOCK(st.st_mode));
	/* A bound socket, reached through its name. */
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, "us");
	OK(s = socket(AF_UNIX, SOCK_DGRAM, 0));
	OK(bind(s, (struct sockaddr *)&sa, sizeof sa));
	OK(lstat("us", &st));
	CHECK(S_ISSOCK(st.st_mode));
	OK(c = socket(AF_UNIX, SOCK_DGRAM, 0));
	CHECK(sendto(c, "ping", 4, 0, (struct sockaddr *)&sa, sizeof sa) == 4);
	CHECK(recv(s, buf, sizeof buf, 0) == 4 && memcmp(buf, "ping", 4) == 0);
	close(c);
	close(s);
	OK(unlink("us"));
	return 0;
}

static int ck_devices(void)
{
	struct stat st;

	if (geteuid() != 0)
		SKIP("not root");
	OK(mknod("c", S_IFCHR | 0644, makedev(1, 3)));
	OK(lstat("c", &st));
	CHECK(S_ISCHR(st.st_mode));
	CHECK(major(st.st_rdev) == 1 && minor(st.st_rdev) == 3);
	OK(mknod("b", S_IFBLK | 0600, makedev(7, 1)));
	OK(lstat("b", &st));
	CHECK(S_ISBLK(st.st_mode));
	CHECK(major(st.st_rdev) == 7 && minor(st.st_rdev) == 1);
	OK(mknod("big", S_IFCHR | 0600, makedev(259, 70000)));
	OK(lstat("big", &st));
	CHECKF(major(st.st_rdev) == 259 && minor(st.st_rdev) == 70000,
	       "rdev %u:%u", major(st.st_rdev), minor(st.st_rdev));
	FAILS(mknod("c", S_IFCHR | 0644, makedev(1, 3)), EEXIST);
	return 0;
}

/* ---- attr: modes, owners, times ----------------------------------- */

static int ck_chmod(void)
{
	struct stat st, st2;
	int fd;

	OK(write_str("f", "x"));
	OK(chmod("f", 0600));
	OK(stat("f", &st));
	CHECK((st.st_mode & 07777) == 0600);
	CHECK(S_ISREG(st.st_mode));
	OK(fd = open("f", O_RDONLY));
	OK(fchmod(fd, 0751));
	OK(fstat(fd, &st));
	CHECK((st.st_mode & 07777) == 0751);
	OK(close(fd));
	if (geteuid() == 0) {
		OK(chmod("f", 07777));
		OK(stat("f", &st));
		CHECKF((st.st_mode & 07777) == 07777, "mode %o", st.st_mode & 07777);
	}
	/* chmod follows a symlink. */
	OK(symlink("f", "l"));
	OK(chmod("l", 0640));
	OK(stat("f", &st));
	CHECK((st.st_mode & 07777) == 0640);
	OK(mkdir("d", 0755));
	OK(chmod("d", 01777));
	OK(stat("d", &st));
	CHECK((st.st_mode & 07777) == 01777 && S_ISDIR(st.st_mode));
	/* ctime moves on a mode change. */
	OK(stat("f", &st));
	msleep(30);
	OK(chmod("f", 0644));
	OK(stat("f", &st2));
	CHECK(ts_cmp(st2.st_ctim, st.st_ctim) > 0);
	CHECK(ts_cmp(st2.st_mtim, st.st_mtim) == 0);
	return 0;
}

static int ck_chown(void)
{
	struct stat st;

	if (geteuid() != 0)
		SKIP("not root");
	OK(write_str("f", "x"));
	OK(chown("f", 1234, 5678));
	OK(stat("f", &st));
	CHECK(st.st_uid == 1234 && st.st_gid == 5678);
	OK(chown("f", (uid_t)-1, 42));
	OK(stat("f", &st));
	CHECK(st.st_uid == 1234 && st.st_gid == 42);
	OK(chown("f", 99, (gid_t)-1));
	OK(stat("f", &st));
	CHECK(st.st_uid == 99 && st.st_gid == 42);
	/* lchown changes the link, not its target. */
	OK(symlink("f", "l"));
	OK(lchown("l", 77, 88));
	OK(lstat("l", &st));
	CHECK(st.st_uid == 77 && st.st_gid == 88);
	OK(stat("f", &st));
	CHECK(st.st_uid == 99 && st.st_gid == 42);
	/* A change of owner clears set-user-ID and set-group-ID of an
	 * executable file. */
	OK(chmod("f", 06755));
	OK(chown("f", 1, 1));
	OK(stat("f", &st));
	CHECKF((st.st_mode & 07777) == 0755, "mode %o", st.st_mode & 07777);
	OK(mkdir("d", 0755));
	OK(chown("d", 500, 600));
	OK(stat("d", &st));
	CHECK(st.st_uid == 500 && st.st_gid == 600);
	return 0;
}

static int ck_utimens(void)
{
	struct timespec ts[2];
	struct stat st, st0;
	double before, after;
	int fd;

	OK(write_str("f", "x"));
	ts[0].tv_sec = 1000000000; ts[0].tv_nsec = 123456789;
	ts[1].tv_sec = 1234567890; ts[1].tv_nsec = 987654321;
	OK(utimensat(AT_FDCWD, "f", ts, 0));
	OK(stat("f", &st));
	CHECKF(st.st_atim.tv_sec == 1000000000 && st.st_atim.tv_nsec == 123456789,
	       "atime %lld.%09ld", (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec);
	CHECKF(st.st_mtim.tv_sec == 1234567890 && st.st_mtim.tv_nsec == 987654321,
	       "mtime %lld.%09ld", (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	/* UTIME_OMIT keeps a time. */
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_sec = 1500000000; ts[1].tv_nsec = 1;
	OK(utimensat(AT_FDCWD, "f", ts, 0));
	OK(stat("f", &st));
	CHECK(st.st_atim.tv_sec == 1000000000 && st.st_atim.tv_nsec == 123456789);
	CHECK(st.st_mtim.tv_sec == 1500000000 && st.st_mtim.tv_nsec == 1);
	/* UTIME_NOW sets the current time; the ctime moves too. */
	before = now_real();
	ts[0].tv_nsec = UTIME_NOW;
	ts[1].tv_nsec = UTIME_OMIT;
	OK(utimensat(AT_FDCWD, "f", ts, 0));
	after = now_real();
	OK(stat("f", &st));
	CHECKF(ts_sec(st.st_atim) >= before - 1 && ts_sec(st.st_atim) <= after + 1,
	       "atime %f not in [%f, %f]", ts_sec(st.st_atim), before, after);
	CHECK(st.st_mtim.tv_sec == 1500000000 && st.st_mtim.tv_nsec == 1);
	CHECK(ts_sec(st.st_ctim) >= before - 1 && ts_sec(st.st_ctim) <= after + 1);
	/* A NULL times argument: both now. */
	OK(utimensat(AT_FDCWD, "f", NULL, 0));
	after = now_real();
	OK(stat("f", &st));
	CHECK(ts_sec(st.st_mtim) >= before - 1 && ts_sec(st.st_mtim) <= after + 1);
	/* futimens on a descriptor. */
	OK(fd = open("f", O_RDONLY));
	ts[0].tv_sec = 2000000000; ts[0].tv_nsec = 5;
	ts[1].tv_sec = 2000000001; ts[1].tv_nsec = 999999999;
	OK(futimens(fd, ts));
	OK(fstat(fd, &st));
	CHECK(st.st_atim.tv_sec == 2000000000 && st.st_atim.tv_nsec == 5);
	CHECK(st.st_mtim.tv_sec == 2000000001 && st.st_mtim.tv_nsec == 999999999);
	OK(close(fd));
	/* AT_SYMLINK_NOFOLLOW sets the link's times, not the target's. */
	OK(stat("f", &st0));
	OK(symlink("f", "l"));
	ts[0].tv_sec = 1111111111; ts[0].tv_nsec = 0;
	ts[1].tv_sec = 1222222222; ts[1].tv_nsec = 333;
	OK(utimensat(AT_FDCWD, "l", ts, AT_SYMLINK_NOFOLLOW));
	OK(lstat("l", &st));
	CHECK(st.st_mtim.tv_sec == 1222222222 && st.st_mtim.tv_nsec == 333);
	OK(stat("f", &st));
	CHECK(ts_cmp(st.st_mtim, st0.st_mtim) == 0);
	/* Times of a directory. */
	OK(mkdir("d", 0755));
	OK(utimensat(AT_FDCWD, "d", ts, 0));
	OK(stat("d", &st));
	CHECK(st.st_mtim.tv_sec == 1222222222 && st.st_mtim.tv_nsec == 333);
	return 0;
}

static int ck_time_updates(void)
{
	struct stat s0, s1, d0, d1;
	char buf[8];
	int fd;

	OK(write_str("f", "x"));
	OK(stat("f", &s0));
	msleep(30);
	OK(fd = open("f", O_WRONLY | O_APPEND));
	CHECK(write(fd, "more", 4) == 4);
	OK(close(fd));
	OK(stat("f", &s1));
	CHECK(ts_cmp(s1.st_mtim, s0.st_mtim) > 0);
	CHECK(ts_cmp(s1.st_ctim, s0.st_ctim) > 0);
	/* Reading does not move mtime or ctime. */
	msleep(30);
	CHECK(read_file("f", buf, sizeof buf) == 5);
	OK(stat("f", &s0));
	CHECK(ts_cmp(s0.st_mtim, s1.st_mtim) == 0);
	CHECK(ts_cmp(s0.st_ctim, s1.st_ctim) == 0);
	/* Truncation moves both. */
	msleep(30);
	OK(truncate("f", 2));
	OK(stat("f", &s1));
	CHECK(ts_cmp(s1.st_mtim, s0.st_mtim) > 0);
	/* Directory times follow entries being added, removed, renamed. */
	OK(stat(".", &d0));
	msleep(30);
	OK(write_str("g", "g"));
	OK(stat(".", &d1));
	CHECK(ts_cmp(d1.st_mtim, d0.st_mtim) > 0);
	CHECK(ts_cmp(d1.st_ctim, d0.st_ctim) > 0);
	msleep(30);
	OK(rename("g", "h"));
	OK(stat(".", &d0));
	CHECK(ts_cmp(d0.st_mtim, d1.st_mtim) > 0);
	msleep(30);
	OK(unlink("h"));
	OK(stat(".", &d1));
	CHECK(ts_cmp(d1.st_mtim, d0.st_mtim) > 0);
	/* A new link moves the inode's ctime. */
	OK(stat("f", &s0));
	msleep(30);
	OK(link("f", "f2"));
	OK(stat("f", &s1));
	CHECK(ts_cmp(s1.st_ctim, s0.st_ctim) > 0);
	return 0;
}

/* ---- truncate ----------------------------------------------------- */

static int ck_truncate(void)
{
	unsigned char pat[12388], rb[20000];
	struct stat st;
	int fd;

	OK(write_file("f", "xxxxxxxxxx", 10, 0644));
	OK(truncate("f", 10000));
	OK(stat("f", &st));
	CHECK(st.st_size == 10000);
	CHECK(read_file("f", rb, sizeof rb) == 10000);
	CHECK(memcmp(rb, "xxxxxxxxxx", 10) == 0 && is_zero(rb + 10, 9990));
	OK(truncate("f", 5));
	OK(truncate("f", 8192));
	CHECK(read_file("f", rb, sizeof rb) == 8192);
	CHECK(memcmp(rb, "xxxxx", 5) == 0 && is_zero(rb + 5, 8187));

	/* Cut in the middle of a block of a multi-block file, then grow. */
	fill_pattern(pat, sizeof pat, 5);
	OK(write_file("g", pat, sizeof pat, 0644));
	OK(fd = open("g", O_RDWR));
	OK(ftruncate(fd, 5000));
	OK(fstat(fd, &st));
	CHECK(st.st_size == 5000);
	OK(ftruncate(fd, 20000));
	CHECK(pread_all(fd, rb, 20000, 0) == 20000);
	CHECK(memcmp(rb, pat, 5000) == 0);
	CHECK(is_zero(rb + 5000, 15000));
	OK(ftruncate(fd, 0));
	OK(fsync(fd));
	OK(fstat(fd, &st));
	CHECK(st.st_size == 0);
	CHECKF(st.st_blocks == 0, "st_blocks %lld", (long long)st.st_blocks);
	FAILS(ftruncate(fd, -1), EINVAL);
	OK(close(fd));
	OK(fd = open("g", O_RDONLY));
	FAILS(ftruncate(fd, 10), EINVAL);
	OK(close(fd));
	FAILS(truncate("missing", 0), ENOENT);
	return 0;
}

/* ---- sparse files ------------------------------------------------- */

static int ck_sparse_5g(void)
{
	unsigned char data[4096], rb[8192];
	const off_t at = 5 * GiB;
	struct stat st;
	int fd;

	fill_pattern(data, sizeof data, 6);
	OK(fd = open("f", O_RDWR | O_CREAT, 0644));
	CHECK(pwrite(fd, data, sizeof data, at) == (ssize_t)sizeof data);
	CHECK(pwrite(fd, "L", 1, 4 * GiB - 1) == 1);
	CHECK(pwrite(fd, "H", 1, 4 * GiB) == 1);
	OK(fsync(fd));
	OK(fstat(fd, &st));
	CHECK(st.st_size == at + 4096);
	CHECK(st.st_size > 4 * GiB);
	CHECKF(st.st_blocks <= 64, "st_blocks %lld for 3 blocks of data",
	       (long long)st.st_blocks);
	OK(close(fd));

	OK(fd = open("f", O_RDONLY));
	CHECK(pread(fd, rb, 4096, 0) == 4096 && is_zero(rb, 4096));
	CHECK(pread(fd, rb, 4096, 2 * GiB) == 4096 && is_zero(rb, 4096));
	CHECK(pread(fd, rb, 2, 4 * GiB - 1) == 2);
	CHECK(rb[0] == 'L' && rb[1] == 'H');
	CHECK(pread(fd, rb, 100, at - 100) == 100 && is_zero(rb, 100));
	CHECK(pread(fd, rb, 8192, at - 4096) == 8192);
	CHECK(is_zero(rb, 4096));
	CHECK(memcmp(rb + 4096, data, 4096) == 0);
	CHECK(pread(fd, rb, 100, at + 4096) == 0);
	OK(close(fd));
	/* Shrinking a huge sparse file. */
	OK(truncate("f", MiB));
	OK(stat("f", &st));
	CHECK(st.st_size == MiB);
	CHECKF(st.st_blocks <= 32, "st_blocks %lld", (long long)st.st_blocks);
	return 0;
}

/* ---- blocks: st_blocks accounting --------------------------------- */

static int ck_blocks(void)
{
	unsigned char *buf = malloc(64 * 4096);
	struct stat st;
	int fd;

	CHECK(buf);
	fill_pattern(buf, 64 * 4096, 7);
	OK(fd = open("f", O_RDWR | O_CREAT, 0644));
	CHECK(pwrite(fd, buf, 16 * 4096, 0) == 16 * 4096);
	OK(fsync(fd));
	OK(fstat(fd, &st));
	CHECKF(st.st_blocks == 128, "16 blocks written, st_blocks %lld",
	       (long long)st.st_blocks);
	CHECK(pwrite(fd, buf, 4096, 64 * 4096) == 4096);
	OK(fsync(fd));
	OK(fstat(fd, &st));
	CHECKF(st.st_blocks == 136, "17 blocks written, st_blocks %lld",
	       (long long)st.st_blocks);
	/* Overwriting allocates nothing. */
	CHECK(pwrite(fd, buf, 8 * 4096, 4 * 4096) == 8 * 4096);
	OK(fsync(fd));
	CHECK(blocks_of_fd(fd) == 136);
	OK(ftruncate(fd, 8 * 4096));
	OK(fsync(fd));
	CHECKF(blocks_of_fd(fd) == 64, "st_blocks %lld", blocks_of_fd(fd));
	OK(close(fd));
	/* A partial block occupies one block. */
	OK(write_file("g", buf, 100, 0644));
	OK(fd = open("g", O_RDONLY));
	OK(fsync(fd));
	CHECKF(blocks_of_fd(fd) == 8, "st_blocks %lld", blocks_of_fd(fd));
	OK(close(fd));
	free(buf);
	return 0;
}

/* ---- statfs ------------------------------------------------------- */

static int ck_statfs(void)
{
	struct statvfs sv, sv2;
	long long f0, f1, f2;
	unsigned char *buf = malloc(4 * MiB);
	char name[32];
	int fd;

	CHECK(buf);
	OK(statvfs(".", &sv));
	CHECK(sv.f_bsize > 0 && sv.f_frsize > 0);
	CHECK(sv.f_blocks > 0);
	CHECK(sv.f_bfree <= sv.f_blocks);
	CHECK(sv.f_bavail <= sv.f_bfree);
	CHECK(sv.f_ffree <= sv.f_files);
	CHECK(sv.f_favail <= sv.f_files);
	CHECKF(sv.f_namemax >= 255, "namemax %lu", sv.f_namemax);
	OK(fd = open(".", O_RDONLY | O_DIRECTORY));
	OK(syncfs(fd));
	OK(close(fd));

	/* Written data is taken from the free space and given back. */
	f0 = free_bytes(".");
	fill_pattern(buf, 4 * MiB, 8);
	OK(fd = open("f", O_RDWR | O_CREAT, 0644));
	OK(pwrite_all(fd, buf, 4 * MiB, 0));
	OK(fsync(fd));
	OK(syncfs(fd));
	OK(close(fd));
	f1 = free_bytes(".");
	CHECKF(f0 - f1 >= 4 * MiB, "free %lld -> %lld after 4 MiB", f0, f1);
	CHECKF(f0 - f1 <= 5 * MiB, "free %lld -> %lld after 4 MiB", f0, f1);
	OK(unlink("f"));
	OK(fd = open(".", O_RDONLY | O_DIRECTORY));
	OK(syncfs(fd));
	f2 = free_bytes(".");
	for (int i = 0; i < 100 && f2 < f0 - 512 * KiB; i++) {
		msleep(100);
		OK(syncfs(fd));
		f2 = free_bytes(".");
	}
	OK(close(fd));
	CHECKF(f2 >= f0 - 512 * KiB, "free %lld -> %lld -> %lld after unlink",
	       f0, f1, f2);

	/* Inodes. */
	OK(statvfs(".", &sv));
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof name, "i%d", i);
		OK(write_str(name, ""));
	}
	OK(statvfs(".", &sv2));
	CHECKF(sv.f_ffree - sv2.f_ffree >= 10 && sv.f_ffree - sv2.f_ffree <= 20,
	       "f_ffree %lu -> %lu after 10 files", sv.f_ffree, sv2.f_ffree);
	CHECK(sv2.f_files == sv.f_files);
	CHECK(sv2.f_blocks == sv.f_blocks);
	free(buf);
	return 0;
}

/* ---- fallocate ---------------------------------------------------- */

static int ck_falloc_default(void)
{
	unsigned char *rb = malloc(2 * MiB);
	unsigned char rec[100];
	struct stat st;
	int fd;

	CHECK(rb);
	OK(fd = open("f", O_RDWR | O_CREAT, 0644));
	OK(fallocate(fd, 0, 0, MiB));
	OK(fsync(fd));
	OK(fstat(fd, &st));
	CHECK(st.st_size == MiB);
	CHECKF(st.st_blocks >= 2048, "st_blocks %lld", (long long)st.st_blocks);
	CHECK(pread_all(fd, rb, 2 * MiB, 0) == MiB);
	CHECK(is_zero(rb, MiB));
	OK(fallocate(fd, 0, 512 * KiB, MiB));
	OK(fstat(fd, &st));
	CHECK(st.st_size == MiB + 512 * KiB);
	CHECKF(st.st_blocks >= 3072, "st_blocks %lld", (long long)st.st_blocks);
	/* A write inside the preallocated range; the rest still reads 0. */
	fill_pattern(rec, sizeof rec, 9);
	CHECK(pwrite(fd, rec, sizeof rec, 300000) == (ssize_t)sizeof rec);
	OK(close(fd));
	OK(fd = open("f", O_RDONLY));
	CHECK(pread_all(fd, rb, 2 * MiB, 0) == MiB + 512 * KiB);
	CHECK(is_zero(rb, 300000));
	CHECK(memcmp(rb + 300000, rec, sizeof rec) == 0);
	CHECK(is_zero(rb + 300100, (size_t)(MiB + 512 * KiB - 300100)));
	/* Allocating an already allocated range changes nothing. */
	OK(close(fd));
	OK(fd = open("f", O_RDWR));
	OK(fallocate(fd, 0, 0, 4096));
	OK(fstat(fd, &st));
	CHECK(st.st_size == MiB + 512 * KiB);
	CHECK(pread(fd, rb, 100, 300000) == 100 && memcmp(rb, rec, 100) == 0);
	OK(close(fd));
	free(rb);
	return 0;
}

static int ck_falloc_keep_size(void)
{
	unsigned char *rb = malloc(2 * MiB), pat[8192];
	struct stat st;
	long long b0;
	int fd;

	CHECK(rb);
	fill_pattern(pat, sizeof pat, 10);
	OK(fd = open("f", O_RDWR | O_CREAT, 0644));
	CHECK(pwrite(fd, pat, sizeof pat, 0) == (ssize_t)sizeof pat);
	OK(fsync(fd));
	b0 = blocks_of_fd(fd);
	OK(fallocate(fd, FALLOC_FL_KEEP_SIZE, 8192, MiB));
	OK(fsync(fd));
	OK(fstat(fd, &st));
	CHECK(st.st_size == 8192);
	CHECKF(st.st_blocks >= b0 + 2048, "st_blocks %lld -> %lld", b0,
	       (long long)st.st_blocks);
	CHECK(pread(fd, rb, 100, 8192) == 0);
	/* A write past the end inside the preallocation grows the size;
	 * the gap reads as zeros. */
	CHECK(pwrite(fd, "tail", 4, 600000) == 4);
	OK(fstat(fd, &st));
	CHECK(st.st_size == 600004);
	CHECK(pread_all(fd, rb, 2 * MiB, 0) == 600004);
	CHECK(memcmp(rb, pat, 8192) == 0);
	CHECK(is_zero(rb + 8192, 600000 - 8192));
	CHECK(memcmp(rb + 600000, "tail", 4) == 0);
	/* Growing by truncate exposes zeros, never stale blocks. */
	OK(ftruncate(fd, MiB + 8192));
	CHECK(pread_all(fd, rb, 2 * MiB, 0) == MiB + 8192);
	CHECK(is_zero(rb + 600004, (size_t)(MiB + 8192 - 600004)));
	OK(close(fd));
	free(rb);
	return 0;
}

static int ck_punch_hole(void)
{
	unsigned char *pat = malloc(MiB), *rb = malloc(MiB);
	struct stat st;
	long long b0, b1;
	int fd;

	CHECK(pat && rb);
	fill_pattern(pat, MiB, 11);
	OK(fd = open("f", O_RDWR | O_CREAT, 0644));
	OK(pwrite_all(fd, pat, MiB, 0));
	OK(fsync(fd));
	b0 = blocks_of_fd(fd);
	OK(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 256 * KiB, 256 * KiB));
	OK(fsync(fd));
	OK(fstat(fd, &st));
	b1 = st.st_blocks;
	CHECK(st.st_size == MiB);
	CHECKF(b1 <= b0 - 512, "st_blocks %lld -> %lld after a 256 KiB hole", b0, b1);
	CHECK(pread_all(fd, rb, MiB, 0) == MiB);
	CHECK(memcmp(rb, pat, 256 * KiB) == 0);
	CHECK(is_zero(rb + 256 * KiB, 256 * KiB));
	CHECK(memcmp(rb + 512 * KiB, pat + 512 * KiB, 512 * KiB) == 0);
	/* An unaligned hole zeroes exactly its bytes. */
	OK(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1000, 4000));
	CHECK(pread_all(fd, rb, 8192, 0) == 8192);
	CHECK(memcmp(rb, pat, 1000) == 0);
	CHECK(is_zero(rb + 1000, 4000));
	CHECK(memcmp(rb + 5000, pat + 5000, 8192 - 5000) == 0);
	/* A hole running past the end keeps the size. */
	OK(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, MiB - 100, MiB));
	OK(fstat(fd, &st));
	CHECK(st.st_size == MiB);
	CHECK(pread(fd, rb, 200, MiB - 200) == 200);
	CHECK(memcmp(rb, pat + MiB - 200, 100) == 0 && is_zero(rb + 100, 100));
	/* Writing into a hole fills it again. */
	CHECK(pwrite(fd, pat, 4096, 300 * KiB) == 4096);
	CHECK(pread(fd, rb, 4096, 300 * KiB) == 4096 && memcmp(rb, pat, 4096) == 0);
	/* The whole file punched. */
	OK(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, MiB));
	OK(fsync(fd));
	OK(fstat(fd, &st));
	CHECK(st.st_size == MiB);
	CHECKF(st.st_blocks <= 8, "st_blocks %lld after punching everything",
	       (long long)st.st_blocks);
	CHECK(pread_all(fd, rb, MiB, 0) == MiB && is_zero(rb, MiB));
	OK(close(fd));
	free(pat);
	free(rb);
	return 0;
}

/* ---- seek: SEEK_DATA / SEEK_HOLE ---------------------------------- */

#define SEEK_IS(fd, off, wh, want) do { \
	off_t got_ = lseek(fd, off, wh); \
	CHECKF(got_ == (off_t)(want), "lseek(%lld, %s) = %lld (%s), want %lld", \
	       (long long)(off), (wh) == SEEK_DATA ? "SEEK_DATA" : "SEEK_HOLE", \
	       (long long)got_, got_ < 0 ? ename(errno) : "-", (long long)(want)); \
} while (0)

static int ck_seek_data_hole(void)
{
	unsigned char blk[4096];
	int fd;

	fill_pattern(blk, sizeof blk, 12);
	OK(fd = open("f", O_RDWR | O_CREAT, 0644));
	CHECK(pwrite(fd, blk, 4096, 0) == 4096);
	CHECK(pwrite(fd, blk, 4096, MiB) == 4096);
	OK(ftruncate(fd, 2 * MiB));
	OK(fsync(fd));
	SEEK_IS(fd, 0, SEEK_DATA, 0);
	SEEK_IS(fd, 100, SEEK_DATA, 100);
	SEEK_IS(fd, 0, SEEK_HOLE, 4096);
	SEEK_IS(fd, 100, SEEK_HOLE, 4096);
	SEEK_IS(fd, 4096, SEEK_DATA, MiB);
	SEEK_IS(fd, 5000, SEEK_DATA, MiB);
	SEEK_IS(fd, 5000, SEEK_HOLE, 5000);
	SEEK_IS(fd, MiB, SEEK_HOLE, MiB + 4096);
	SEEK_IS(fd, MiB + 10, SEEK_DATA, MiB + 10);
	SEEK_IS(fd, MiB + 4096, SEEK_HOLE, MiB + 4096);
	FAILS(lseek(fd, MiB + 4096, SEEK_DATA), ENXIO);
	FAILS(lseek(fd, 2 * MiB, SEEK_DATA), ENXIO);
	FAILS(lseek(fd, 2 * MiB, SEEK_HOLE), ENXIO);
	FAILS(lseek(fd, 3 * MiB, SEEK_HOLE), ENXIO);
	OK(close(fd));

	/* A punched hole inside data. */
	unsigned char *pat = malloc(MiB);
	CHECK(pat);
	fill_pattern(pat, MiB, 13);
	OK(fd = open("g", O_RDWR | O_CREAT, 0644));
	OK(pwrite_all(fd, pat, MiB, 0));
	OK(fsync(fd));
	SEEK_IS(fd, 0, SEEK_HOLE, MiB);
	OK(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 256 * KiB, 256 * KiB));
	OK(fsync(fd));
	SEEK_IS(fd, 0, SEEK_HOLE, 256 * KiB);
	SEEK_IS(fd, 256 * KiB, SEEK_DATA, 512 * KiB);
	SEEK_IS(fd, 512 * KiB, SEEK_HOLE, MiB);
	OK(close(fd));
	free(pat);
	return 0;
}

/* ---- cfr: copy_file_range ----------------------------------------- */

static int ck_copy_file_range(void)
{
	const size_t slen = 300000, clen = 200000;
	unsigned char *src = malloc(slen), *rb = malloc(2 * MiB);
	loff_t oi, oo;
	struct stat st;
	int s, d;

	CHECK(src && rb);
	fill_pattern(src, slen, 14);
	OK(write_file("src", src, slen, 0644));
	OK(s = open("src", O_RDONLY));
	OK(d = open("dst", O_RDWR | O_CREAT, 0644));
	oi = 4096;
	oo = 8192;
	for (size_t left = clen; left > 0;) {
		ssize_t n = copy_file_range(s, &oi, d, &oo, left, 0);

		OK(n);
		CHECKF(n > 0, "copy_file_range returned 0 with %zu left", left);
		left -= (size_t)n;
	}
	CHECK(oi == 4096 + (loff_t)clen && oo == 8192 + (loff_t)clen);
	CHECK(lseek(s, 0, SEEK_CUR) == 0 && lseek(d, 0, SEEK_CUR) == 0);
	OK(fstat(d, &st));
	CHECK(st.st_size == 8192 + (off_t)clen);
	CHECK(pread_all(d, rb, 2 * MiB, 0) == 8192 + (ssize_t)clen);
	CHECK(is_zero(rb, 8192));
	CHECK(memcmp(rb + 8192, src + 4096, clen) == 0);

	/* Copying from near the end stops at the end of the source. */
	size_t total = 0;
	oi = (loff_t)slen - 1000;
	oo = 0;
	for (;;) {
		ssize_t n = copy_file_range(s, &oi, d, &oo, 5000, 0);

		OK(n);
		if (n == 0)
			break;
		total += (size_t)n;
	}
	CHECK(total == 1000);
	CHECK(pread(d, rb, 1000, 0) == 1000);
	CHECK(memcmp(rb, src + slen - 1000, 1000) == 0);

	/* The file offsets are used and moved when no offsets are given. */
	OK(lseek(s, 100, SEEK_SET));
	OK(lseek(d, 500000, SEEK_SET));
	ssize_t n = copy_file_range(s, NULL, d, NULL, 50, 0);
	CHECK(n == 50);
	CHECK(lseek(s, 0, SEEK_CUR) == 150 && lseek(d, 0, SEEK_CUR) == 500050);
	CHECK(pread(d, rb, 50, 500000) == 50 && memcmp(rb, src + 100, 50) == 0);

	/* Within one file, non-overlapping ranges. */
	oi = 8192;
	oo = 600000;
	for (size_t left = 10000; left > 0;) {
		ssize_t m = copy_file_range(d, &oi, d, &oo, left, 0);

		OK(m);
		CHECK(m > 0);
		left -= (size_t)m;
	}
	CHECK(pread(d, rb, 10000, 600000) == 10000);
	CHECK(memcmp(rb, src + 4096, 10000) == 0);
	oi = 0;
	oo = 10;
	FAILS(copy_file_range(d, &oi, d, &oo, 100, 0), EINVAL);
	OK(close(s));
	OK(close(d));
	free(src);
	free(rb);
	return 0;
}

/* ---- xattr -------------------------------------------------------- */

static int list_has(const char *list, ssize_t len, const char *name)
{
	int count = 0;

	for (ssize_t i = 0; i < len; i += (ssize_t)strlen(list + i) + 1)
		if (strcmp(list + i, name) == 0)
			count++;
	return count;
}

static int ck_xattr(void)
{
	char buf[4096], list[4096];
	unsigned char bin[1000];
	ssize_t n;

	OK(write_str("f", "x"));
	OK(setxattr("f", "user.a", "hello", 5, 0));
	OK(n = getxattr("f", "user.a", buf, sizeof buf));
	CHECK(n == 5 && memcmp(buf, "hello", 5) == 0);
	CHECK(getxattr("f", "user.a", NULL, 0) == 5);
	FAILS(getxattr("f", "user.a", buf, 4), ERANGE);
	FAILS(setxattr("f", "user.a", "x", 1, XATTR_CREATE), EEXIST);
	FAILS(setxattr("f", "user.b", "x", 1, XATTR_REPLACE), ENODATA);
	FAILS(getxattr("f", "user.b", buf, sizeof buf), ENODATA);
	OK(setxattr("f", "user.a", "hello, world", 12, XATTR_REPLACE));
	CHECK(getxattr("f", "user.a", buf, sizeof buf) == 12);
	CHECK(memcmp(buf, "hello, world", 12) == 0);
	OK(setxattr("f", "user.a", "hi", 2, 0));
	CHECK(getxattr("f", "user.a", buf, sizeof buf) == 2 && memcmp(buf, "hi", 2) == 0);
	OK(setxattr("f", "user.b", "", 0, XATTR_CREATE));
	CHECK(getxattr("f", "user.b", buf, sizeof buf) == 0);
	/* Binary values with NUL bytes. */
	fill_pattern(bin, sizeof bin, 15);
	bin[0] = bin[500] = 0;
	OK(setxattr("f", "user.bin", bin, sizeof bin, 0));
	CHECK(getxattr("f", "user.bin", buf, sizeof buf) == (ssize_t)sizeof bin);
	CHECK(memcmp(buf, bin, sizeof bin) == 0);
	/* Listing. */
	OK(n = listxattr("f", list, sizeof list));
	CHECK(list_has(list, n, "user.a") == 1);
	CHECK(list_has(list, n, "user.b") == 1);
	CHECK(list_has(list, n, "user.bin") == 1);
	CHECK(listxattr("f", NULL, 0) == n);
	FAILS(listxattr("f", list, (size_t)n - 1), ERANGE);
	/* Removal. */
	OK(removexattr("f", "user.a"));
	FAILS(getxattr("f", "user.a", buf, sizeof buf), ENODATA);
	FAILS(removexattr("f", "user.a"), ENODATA);
	OK(n = listxattr("f", list, sizeof list));
	CHECK(list_has(list, n, "user.a") == 0 && list_has(list, n, "user.b") == 1);
	/* Many attributes. */
	char name[32], val[64];
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof name, "user.k%02d", i);
		snprintf(val, sizeof val, "value-%02d-%032d", i, i);
		OK(setxattr("f", name, val, strlen(val), XATTR_CREATE));
	}
	OK(n = listxattr("f", list, sizeof list));
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof name, "user.k%02d", i);
		snprintf(val, sizeof val, "value-%02d-%032d", i, i);
		CHECKF(list_has(list, n, name) == 1, "%s listed", name);
		CHECK(getxattr("f", name, buf, sizeof buf) == (ssize_t)strlen(val));
		CHECK(memcmp(buf, val, strlen(val)) == 0);
	}
	for (int i = 0; i < 20; i += 2) {
		snprintf(name, sizeof name, "user.k%02d", i);
		OK(removexattr("f", name));
	}
	OK(n = listxattr("f", list, sizeof list));
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof name, "user.k%02d", i);
		CHECK(list_has(list, n, name) == (i % 2));
	}
	/* Attributes belong to the inode: hard links and renames share them. */
	OK(link("f", "g"));
	OK(rename("f", "h"));
	CHECK(getxattr("g", "user.k01", buf, sizeof buf) > 0);
	CHECK(getxattr("h", "user.bin", buf, sizeof buf) == (ssize_t)sizeof bin);
	/* Directories carry attributes too; a new file starts with none. */
	OK(mkdir("d", 0755));
	OK(setxattr("d", "user.dir", "yes", 3, 0));
	CHECK(getxattr("d", "user.dir", buf, sizeof buf) == 3);
	OK(write_str("d/new", ""));
	CHECK(listxattr("d/new", list, sizeof list) == 0 ||
	      list_has(list, listxattr("d/new", list, sizeof list), "user.dir") == 0);
	FAILS(getxattr("missing", "user.a", buf, sizeof buf), ENOENT);
	/* fd-based calls. */
	int fd;
	OK(fd = open("g", O_RDWR));
	OK(fsetxattr(fd, "user.fd", "v", 1, 0));
	CHECK(fgetxattr(fd, "user.fd", buf, sizeof buf) == 1);
	OK(fremovexattr(fd, "user.fd"));
	OK(close(fd));
	return 0;
}

/* ---- lock: flock and fcntl between processes ---------------------- */

/* Child side: report through the exit status. */
static int ck_flock(void)
{
	int fd, p2c[2], c2p[2];
	char c;
	pid_t pid;

	OK(write_str("f", "lock"));
	OK(fd = open("f", O_RDWR));
	OK(flock(fd, LOCK_EX));
	OK(pipe(p2c));
	OK(pipe(c2p));
	fflush(stdout);
	OK(pid = fork());
	if (pid == 0) {
		int cfd = open("f", O_RDWR), r = 0;

		if (cfd < 0)
			_exit(10);
		if (flock(cfd, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK)
			r = 11;
		else if (flock(cfd, LOCK_SH | LOCK_NB) == 0 || errno != EWOULDBLOCK)
			r = 12;
		if (write(c2p[1], "1", 1) != 1)
			_exit(13);
		if (read(p2c[0], &c, 1) != 1)
			_exit(14);
		/* Parent released: the lock is free now. */
		if (!r && flock(cfd, LOCK_EX | LOCK_NB) != 0)
			r = 15;
		if (!r && flock(cfd, LOCK_UN) != 0)
			r = 16;
		_exit(r);
	}
	CHECK(read(c2p[0], &c, 1) == 1);
	OK(flock(fd, LOCK_UN));
	CHECK(write(p2c[1], "2", 1) == 1);
	int st = child_status(pid);
	CHECKF(st == 0, "child status %d (11/12: lock not exclusive, 15: not released)", st);
	/* Shared locks coexist. */
	OK(flock(fd, LOCK_SH));
	fflush(stdout);
	OK(pid = fork());
	if (pid == 0) {
		int cfd = open("f", O_RDONLY);

		if (cfd < 0)
			_exit(10);
		if (flock(cfd, LOCK_SH | LOCK_NB) != 0)
			_exit(20);
		if (flock(cfd, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK)
			_exit(21);
		_exit(0);
	}
	st = child_status(pid);
	CHECKF(st == 0, "child status %d (20: shared lock refused, 21: exclusive granted)", st);
	OK(close(fd));
	return 0;
}

static int ck_fcntl_lock(void)
{
	int fd, fd2, p2c[2], c2p[2];
	struct flock fl;
	char c;
	pid_t pid, me = getpid();

	OK(write_str("f", "0123456789"));
	OK(fd = open("f", O_RDWR));
	memset(&fl, 0, sizeof fl);
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = 0;
	fl.l_len = 100;
	OK(fcntl(fd, F_SETLK, &fl));
	OK(pipe(p2c));
	OK(pipe(c2p));
	fflush(stdout);
	OK(pid = fork());
	if (pid == 0) {
		int cfd = open("f", O_RDWR), r = 0;
		struct flock q;
		struct timespec t0, t1;

		if (cfd < 0)
			_exit(10);
		memset(&q, 0, sizeof q);
		q.l_type = F_WRLCK;
		q.l_whence = SEEK_SET;
		q.l_start = 50;
		q.l_len = 10;
		if (fcntl(cfd, F_GETLK, &q) != 0)
			r = 11;
		else if (q.l_type != F_WRLCK || q.l_pid != me || q.l_start != 0 ||
			 q.l_len != 100)
			r = 12;
		q.l_type = F_WRLCK;
		q.l_start = 50;
		q.l_len = 10;
		if (!r && (fcntl(cfd, F_SETLK, &q) == 0 ||
			   (errno != EAGAIN && errno != EACCES)))
			r = 13;
		q.l_type = F_RDLCK;
		if (!r && (fcntl(cfd, F_SETLK, &q) == 0 ||
			   (errno != EAGAIN && errno != EACCES)))
			r = 14;
		/* A range that does not overlap is free. */
		q.l_type = F_WRLCK;
		q.l_start = 100;
		q.l_len = 100;
		if (!r && fcntl(cfd, F_SETLK, &q) != 0)
			r = 15;
		q.l_type = F_WRLCK;
		q.l_start = 200;
		q.l_len = 0;
		if (!r && (fcntl(cfd, F_GETLK, &q) != 0 || q.l_type != F_UNLCK))
			r = 16;
		if (write(c2p[1], "1", 1) != 1)
			_exit(17);
		/* Blocks until the parent lets go. */
		q.l_type = F_WRLCK;
		q.l_start = 0;
		q.l_len = 100;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		alarm(20);
		if (!r && fcntl(cfd, F_SETLKW, &q) != 0)
			r = 18;
		alarm(0);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (!r && (t1.tv_sec - t0.tv_sec) * 1000 +
			  (t1.tv_nsec - t0.tv_nsec) / 1000000 < 100)
			r = 19;
		_exit(r);
	}
	CHECK(read(c2p[0], &c, 1) == 1);
	msleep(300);
	/* Closing any descriptor of the file drops this process's locks. */
	OK(fd2 = open("f", O_RDONLY));
	OK(close(fd2));
	int st = child_status(pid);
	CHECKF(st == 0, "child status %d (12: F_GETLK report, 13/14: conflict "
	       "granted, 15: free range refused, 18/19: F_SETLKW)", st);
	/* The child's locks went away with it. */
	memset(&fl, 0, sizeof fl);
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_len = 0;
	OK(fcntl(fd, F_GETLK, &fl));
	CHECK(fl.l_type == F_UNLCK);
	/* Read locks are shared between processes. */
	fl.l_type = F_RDLCK;
	fl.l_start = 0;
	fl.l_len = 10;
	OK(fcntl(fd, F_SETLK, &fl));
	fflush(stdout);
	OK(pid = fork());
	if (pid == 0) {
		int cfd = open("f", O_RDONLY);
		struct flock q = { .l_type = F_RDLCK, .l_whence = SEEK_SET,
				   .l_start = 5, .l_len = 10 };

		if (cfd < 0 || fcntl(cfd, F_SETLK, &q) != 0)
			_exit(20);
		_exit(0);
	}
	st = child_status(pid);
	CHECKF(st == 0, "shared read lock refused (status %d)", st);
	OK(close(fd));
	return 0;
}

/* ---- unlinked: an open file outlives its last name ---------------- */

static int ck_unlinked_open(void)
{
	const size_t len = 4 * MiB;
	unsigned char *pat = malloc(len), *rb = malloc(len + 4096);
	long long f0, f1, f2;
	struct stat st;
	char proc[64];
	int fd, fd2, dfd;

	CHECK(pat && rb);
	fill_pattern(pat, len, 16);
	OK(dfd = open(".", O_RDONLY | O_DIRECTORY));
	OK(syncfs(dfd));
	f0 = free_bytes(".");
	OK(fd = open("f", O_RDWR | O_CREAT, 0644));
	OK(pwrite_all(fd, pat, len, 0));
	OK(fsync(fd));
	OK(unlink("f"));
	CHECK(!exists("f"));
	OK(fstat(fd, &st));
	CHECK(st.st_nlink == 0);
	CHECK(st.st_size == (off_t)len);
	CHECK(pread_all(fd, rb, len, 0) == (ssize_t)len);
	CHECK(memcmp(rb, pat, len) == 0);
	OK(syncfs(dfd));
	f1 = free_bytes(".");
	CHECKF(f1 <= f0 - (long long)len + 512 * KiB,
	       "free %lld -> %lld: space of an open unlinked file was released", f0, f1);
	/* Still writable. */
	CHECK(pwrite(fd, "end", 3, (off_t)len) == 3);
	CHECK(pread(fd, rb, 3, (off_t)len) == 3 && memcmp(rb, "end", 3) == 0);
	/* Reopened through /proc. */
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	OK(fd2 = open(proc, O_RDONLY));
	CHECK(pread(fd2, rb, 4096, 0) == 4096 && memcmp(rb, pat, 4096) == 0);
	OK(close(fd2));
	/* The name can be reused meanwhile. */
	OK(write_str("f", "new"));
	CHECK(file_is("f", "new"));
	CHECK(pread(fd, rb, 4096, 4096) == 4096 && memcmp(rb, pat + 4096, 4096) == 0);
	OK(close(fd));
	/* Closing the last descriptor frees the space. */
	f2 = free_bytes(".");
	for (int i = 0; i < 100 && f2 < f0 - 512 * KiB; i++) {
		msleep(100);
		OK(syncfs(dfd));
		f2 = free_bytes(".");
	}
	CHECKF(f2 >= f0 - 512 * KiB, "free %lld -> %lld -> %lld after close", f0, f1, f2);
	OK(close(dfd));
	free(pat);
	free(rb);
	return 0;
}

/* ---- readdir ------------------------------------------------------ */

struct dlist {
	char **names;
	unsigned char *types;
	ino_t *inos;
	size_t n, cap;
};

static void dlist_add(struct dlist *l, const char *name, unsigned char type, ino_t ino)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->names = realloc(l->names, l->cap * sizeof *l->names);
		l->types = realloc(l->types, l->cap);
		l->inos = realloc(l->inos, l->cap * sizeof *l->inos);
		if (!l->names || !l->types || !l->inos)
			abort();
	}
	l->names[l->n] = strdup(name);
	l->types[l->n] = type;
	l->inos[l->n] = ino;
	l->n++;
}

static void dlist_free(struct dlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	free(l->names);
	free(l->types);
	free(l->inos);
	memset(l, 0, sizeof *l);
}

static int count_name(const struct dlist *l, const char *name)
{
	int c = 0;

	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->names[i], name) == 0)
			c++;
	return c;
}

static int read_all_entries(const char *path, struct dlist *l)
{
	DIR *d = opendir(path);
	struct dirent *de;

	if (!d)
		return -1;
	errno = 0;
	while ((de = readdir(d)) != NULL)
		dlist_add(l, de->d_name, de->d_type, de->d_ino);
	int e = errno;
	closedir(d);
	errno = e;
	return e ? -1 : 0;
}

static int ck_readdir_all(void)
{
	struct dlist l = { 0 };
	char name[NAME_MAX + 1];
	struct stat st;

	OK(mkdir("d", 0755));
	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof name, "d/f%03d", i);
		OK(write_str(name, ""));
	}
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof name, "d/d%02d", i);
		OK(mkdir(name, 0755));
	}
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof name, "d/l%d", i);
		OK(symlink("f000", name));
	}
	OK(read_all_entries("d", &l));
	CHECKF(l.n == 327, "%zu entries, want 327", l.n);
	CHECK(count_name(&l, ".") == 1 && count_name(&l, "..") == 1);
	for (size_t i = 0; i < l.n; i++) {
		char path[300];

		CHECKF(count_name(&l, l.names[i]) == 1, "%s listed %d times",
		       l.names[i], count_name(&l, l.names[i]));
		snprintf(path, sizeof path, "d/%s", l.names[i]);
		OK(lstat(path, &st));
		if (strcmp(l.names[i], "..") != 0)
			CHECKF(l.inos[i] == st.st_ino, "%s: d_ino %lu, st_ino %lu",
			       l.names[i], (unsigned long)l.inos[i],
			       (unsigned long)st.st_ino);
		if (l.types[i] != DT_UNKNOWN)
			CHECKF((mode_t)DTTOIF(l.types[i]) == (st.st_mode & S_IFMT),
			       "%s: d_type %u", l.names[i], l.types[i]);
	}
	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof name, "f%03d", i);
		CHECK(count_name(&l, name) == 1);
	}
	/* rewinddir, telldir and seekdir. */
	DIR *d = opendir("d");
	CHECK(d);
	struct dirent *de;
	int k = 0;
	while (k < 100 && readdir(d))
		k++;
	long pos = telldir(d);
	CHECK(pos >= 0);
	de = readdir(d);
	CHECK(de);
	snprintf(name, sizeof name, "%s", de->d_name);
	for (int i = 0; i < 50; i++)
		CHECK(readdir(d));
	seekdir(d, pos);
	de = readdir(d);
	CHECK(de);
	CHECKF(strcmp(de->d_name, name) == 0, "after seekdir: %s, want %s",
	       de->d_name, name);
	rewinddir(d);
	k = 0;
	while (readdir(d))
		k++;
	CHECKF(k == 327, "%d entries after rewinddir", k);
	closedir(d);
	dlist_free(&l);
	/* An empty directory lists "." and ".." only. */
	OK(mkdir("e", 0755));
	OK(read_all_entries("e", &l));
	CHECK(l.n == 2);
	dlist_free(&l);
	return 0;
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static int ck_readdir_modify(void)
{
	enum { N = 1000, NEW = 100 };
	static int seen[N], seen_new[NEW], deleted[N];
	char name[64], buf[512];
	int fd, n_seen = 0, other = 0;
	int phase_done = 0;

	memset(seen, 0, sizeof seen);
	memset(seen_new, 0, sizeof seen_new);
	memset(deleted, 0, sizeof deleted);
	OK(mkdir("d", 0755));
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof name, "d/e%04d", i);
		OK(write_str(name, ""));
	}
	OK(fd = open("d", O_RDONLY | O_DIRECTORY));
	for (;;) {
		long nr = syscall(SYS_getdents64, fd, buf, sizeof buf);

		OK(nr);
		if (nr == 0)
			break;
		for (long off = 0; off < nr;) {
			struct linux_dirent64 *de = (struct linux_dirent64 *)(buf + off);
			int idx;

			off += de->d_reclen;
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (sscanf(de->d_name, "e%4d", &idx) == 1 && idx >= 0 && idx < N &&
			    strlen(de->d_name) == 5) {
				seen[idx]++;
				n_seen++;
			} else if (sscanf(de->d_name, "n%4d", &idx) == 1 && idx >= 0 &&
				   idx < NEW && strlen(de->d_name) == 5) {
				seen_new[idx]++;
			} else {
				other++;
			}
		}
		/* Part way through: delete 50 seen and 50 unseen entries and
		 * add 100 new ones. */
		if (!phase_done && n_seen >= 200) {
			int ds = 0, du = 0;

			phase_done = 1;
			for (int i = 0; i < N && (ds < 50 || du < 50); i++) {
				if (seen[i] && ds < 50)
					ds++;
				else if (!seen[i] && du < 50)
					du++;
				else
					continue;
				snprintf(name, sizeof name, "d/e%04d", i);
				OK(unlink(name));
				deleted[i] = 1;
			}
			for (int i = 0; i < NEW; i++) {
				snprintf(name, sizeof name, "d/n%04d", i);
				OK(write_str(name, ""));
			}
		}
	}
	OK(close(fd));
	CHECK(phase_done);
	CHECK(other == 0);
	for (int i = 0; i < N; i++) {
		if (deleted[i])
			CHECKF(seen[i] <= 1, "deleted e%04d seen %d times", i, seen[i]);
		else
			CHECKF(seen[i] == 1, "untouched e%04d seen %d times", i, seen[i]);
	}
	for (int i = 0; i < NEW; i++)
		CHECKF(seen_new[i] <= 1, "new n%04d seen %d times", i, seen_new[i]);
	/* A fresh listing has exactly the current entries. */
	struct dlist l = { 0 };
	OK(read_all_entries("d", &l));
	CHECKF(l.n == 2 + N - 100 + NEW, "%zu entries", l.n);
	dlist_free(&l);
	return 0;
}

/* ---- sync --------------------------------------------------------- */

static int ck_sync(void)
{
	int fd, dfd;

	OK(fd = open("f", O_RDWR | O_CREAT, 0644));
	CHECK(write(fd, "data", 4) == 4);
	OK(fsync(fd));
	CHECK(write(fd, "more", 4) == 4);
	OK(fdatasync(fd));
	OK(syncfs(fd));
	OK(close(fd));
	OK(fd = open("f", O_RDONLY));
	OK(fsync(fd));
	OK(fdatasync(fd));
	OK(close(fd));
	OK(dfd = open(".", O_RDONLY | O_DIRECTORY));
	OK(fsync(dfd));
	OK(syncfs(dfd));
	OK(close(dfd));
	sync();
	CHECK(file_is("f", "datamore"));
	return 0;
}

/* ---- table and driver --------------------------------------------- */

static const struct check {
	const char *group, *name;
	int (*fn)(void);
} checks[] = {
	{ "file", "create_rw", ck_create_rw },
	{ "file", "excl", ck_excl },
	{ "file", "trunc", ck_trunc },
	{ "file", "append", ck_append },
	{ "file", "lseek", ck_lseek },
	{ "file", "pread_pwrite", ck_pread_pwrite },
	{ "file", "isdir_io", ck_isdir_io },
	{ "unlink", "unlink", ck_unlink },
	{ "dir", "mkdir", ck_mkdir },
	{ "dir", "rmdir", ck_rmdir },
	{ "dir", "nlink", ck_nlink_dir },
	{ "dir", "enoent", ck_enoent },
	{ "dir", "enotdir", ck_enotdir },
	{ "dir", "o_directory", ck_odirectory },
	{ "name", "namemax", ck_namemax },
	{ "name", "odd_names", ck_odd_names },
	{ "symlink", "symlink", ck_symlink },
	{ "symlink", "long", ck_symlink_long },
	{ "symlink", "eloop", ck_eloop },
	{ "link", "hardlink", ck_hardlink },
	{ "link", "dir_eperm", ck_link_dir },
	{ "rename", "file", ck_rename_file },
	{ "rename", "dirs", ck_rename_dirs },
	{ "rename", "errors", ck_rename_errors },
	{ "rename", "self", ck_rename_self },
	{ "rename", "move_dir", ck_rename_move_dir },
	{ "rename2", "noreplace", ck_noreplace },
	{ "rename2", "exchange_files", ck_exchange_files },
	{ "rename2", "exchange_dir", ck_exchange_dir },
	{ "mknod", "fifo", ck_fifo },
	{ "mknod", "socket", ck_socket },
	{ "mknod", "devices", ck_devices },
	{ "attr", "chmod", ck_chmod },
	{ "attr", "chown", ck_chown },
	{ "attr", "utimens", ck_utimens },
	{ "attr", "time_updates", ck_time_updates },
	{ "truncate", "truncate", ck_truncate },
	{ "sparse", "5g", ck_sparse_5g },
	{ "blocks", "st_blocks", ck_blocks },
	{ "statfs", "statfs", ck_statfs },
	{ "fallocate", "default", ck_falloc_default },
	{ "fallocate", "keep_size", ck_falloc_keep_size },
	{ "fallocate", "punch_hole", ck_punch_hole },
	{ "seek", "data_hole", ck_seek_data_hole },
	{ "cfr", "copy_file_range", ck_copy_file_range },
	{ "xattr", "xattr", ck_xattr },
	{ "lock", "flock", ck_flock },
	{ "lock", "fcntl", ck_fcntl_lock },
	{ "unlinked", "open_unlinked", ck_unlinked_open },
	{ "readdir", "all", ck_readdir_all },
	{ "readdir", "modify", ck_readdir_modify },
	{ "sync", "sync", ck_sync },
};

#define NCHECKS (sizeof checks / sizeof checks[0])

static int selected(const struct check *c, int nsel, char **sel)
{
	char full[128];

	if (nsel == 0)
		return 1;
	snprintf(full, sizeof full, "%s/%s", c->group, c->name);
	for (int i = 0; i < nsel; i++)
		if (strcmp(sel[i], c->group) == 0 || strcmp(sel[i], full) == 0)
			return 1;
	return 0;
}

/* Run one check in a child process; 0 ok, 1 failed, 2 skipped. */
static int run_check(const struct check *c, const char *base)
{
	char dir[PATH_MAX + 300], full[128], why[256] = "";
	int pfd[2], status;
	pid_t pid;

	snprintf(full, sizeof full, "%s/%s", c->group, c->name);
	snprintf(dir, sizeof dir, "%s/pc.%s.%s", base, c->group, c->name);
	if (rm_rf(dir) < 0 || mkdir(dir, 0755) < 0) {
		printf("FAIL %s: cannot prepare %s: %s\n", full, dir, ename(errno));
		return 1;
	}
	if (pipe(pfd) < 0) {
		printf("FAIL %s: pipe: %s\n", full, ename(errno));
		return 1;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		printf("FAIL %s: fork: %s\n", full, ename(errno));
		return 1;
	}
	if (pid == 0) {
		int r;

		close(pfd[0]);
		cur_check = full;
		alarm(120);
		if (chdir(dir) < 0) {
			printf("  chdir %s: %s\n", dir, ename(errno));
			_exit(1);
		}
		r = c->fn();
		if (r == 2 && skip_why && write(pfd[1], skip_why, strlen(skip_why)) < 0)
			r = 2;
		fflush(stdout);
		_exit(r == 0 ? 0 : r == 2 ? 2 : 1);
	}
	close(pfd[1]);
	ssize_t n = read(pfd[0], why, sizeof why - 1);
	why[n > 0 ? n : 0] = 0;
	close(pfd[0]);
	status = child_status(pid);
	if (status == 0 || status == 2) {
		if (rm_rf(dir) < 0) {
			printf("  %s: removing %s: %s\n", full, dir, ename(errno));
			status = 1;
		}
	}
	if (status == 0) {
		printf("ok   %s\n", full);
		return 0;
	}
	if (status == 2) {
		printf("skip %s (%s)\n", full, why);
		return 2;
	}
	if (status > 128)
		printf("  %s: killed by signal %d\n", full, status - 128);
	printf("FAIL %s\n", full);
	return 1;
}

int main(int argc, char **argv)
{
	int nok = 0, nfail = 0, nskip = 0, list = 0, argi = 1;
	char base[PATH_MAX];

	if (argi < argc && strcmp(argv[argi], "-l") == 0) {
		list = 1;
		argi++;
	}
	if (list) {
		for (size_t i = 0; i < NCHECKS; i++)
			printf("%s/%s\n", checks[i].group, checks[i].name);
		return 0;
	}
	if (argi >= argc) {
		fprintf(stderr, "usage: posix_check [-l] DIR [GROUP | GROUP/NAME]...\n");
		return 2;
	}
	if (!realpath(argv[argi], base)) {
		fprintf(stderr, "posix_check: %s: %s\n", argv[argi], strerror(errno));
		return 2;
	}
	argi++;
	for (int i = argi; i < argc; i++) {
		int any = 0;

		for (size_t j = 0; j < NCHECKS; j++)
			any |= selected(&checks[j], 1, &argv[i]);
		if (!any) {
			fprintf(stderr, "posix_check: no check or group named %s\n", argv[i]);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	umask(022);
	for (size_t i = 0; i < NCHECKS; i++) {
		if (!selected(&checks[i], argc - argi, argv + argi))
			continue;
		switch (run_check(&checks[i], base)) {
		case 0: nok++; break;
		case 2: nskip++; break;
		default: nfail++; break;
		}
	}
	printf("posix_check: %d ok, %d failed, %d skipped\n", nok, nfail, nskip);
	return nfail ? 1 : 0;
}
