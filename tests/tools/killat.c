/*
 * killat -- kill a process with SIGKILL once it has written a given number
 * of bytes more than when killat started: a kill placed at a chosen point
 * of a long write sequence (a commit of a known size, the backout of a
 * dead node's journal) without knowing when that point comes.
 *
 *   killat [-t SECONDS] PID BYTES
 *
 * The count is the process's wchar (/proc/PID/io: bytes passed to write
 * and pwrite calls, all threads), polled every 100 microseconds, so the
 * kill lands within one poll of the point.  Prints the bytes written at
 * the kill.  Exit 0 when the process was killed, 1 when it exited first
 * or the -t bound (default 120 s) passed first, 2 on usage errors.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int read_wchar(const char *path, uint64_t *out)
{
	char buf[1024];
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	int found = -1;
	while (fgets(buf, sizeof(buf), f)) {
		if (strncmp(buf, "wchar:", 6) == 0) {
			*out = strtoull(buf + 6, NULL, 10);
			found = 0;
			break;
		}
	}
	fclose(f);
	return found;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double limit = 120;
	int opt;
	while ((opt = getopt(argc, argv, "t:")) != -1) {
		if (opt != 't')
			goto usage;
		limit = atof(optarg);
	}
	if (argc - optind != 2)
		goto usage;
	char *end;
	long pid = strtol(argv[optind], &end, 10);
	if (*end || pid <= 0)
		goto usage;
	uint64_t delta = strtoull(argv[optind + 1], &end, 10);
	if (*end)
		goto usage;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%ld/io", pid);
	uint64_t w0, w;
	if (read_wchar(path, &w0) < 0) {
		fprintf(stderr, "killat: %s: %s\n", path, strerror(errno ? errno : ENOENT));
		return 1;
	}
	double t0 = now_s();
	for (;;) {
		if (read_wchar(path, &w) < 0) {
			fprintf(stderr, "killat: process %ld exited before writing %llu bytes\n", pid,
				(unsigned long long)delta);
			return 1;
		}
		if (w - w0 >= delta) {
			kill((pid_t)pid, SIGKILL);
			struct timespec rt;
			clock_gettime(CLOCK_REALTIME, &rt);
			printf("killat: killed %ld after %llu bytes written (%.3f s) at %lld.%06ld\n", pid,
			       (unsigned long long)(w - w0), now_s() - t0, (long long)rt.tv_sec,
			       rt.tv_nsec / 1000);
			return 0;
		}
		if (now_s() - t0 > limit) {
			fprintf(stderr, "killat: process %ld wrote only %llu of %llu bytes in %.0f s\n",
				pid, (unsigned long long)(w - w0), (unsigned long long)delta, limit);
			return 1;
		}
		usleep(100);
	}
usage:
	fprintf(stderr, "usage: killat [-t SECONDS] PID BYTES\n");
	return 2;
}
