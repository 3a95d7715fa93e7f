/*
 * probe.c -- latency of small unrelated operations, for bench/recovery.sh.
 *
 *   probe DIR STOPFILE OUT
 *
 * Until STOPFILE exists (a path outside the filesystem under test), every
 * 5 ms: stat DIR, create DIR/pN, write 4 KiB to it, close it, stat it,
 * and unlink the file of the previous round.  Each call is timed alone;
 * OUT gets one line per call, "START_EPOCH_S OP LATENCY_US", written when
 * the probe stops.  Exit status 0, or 1 when a call failed (the failure
 * is printed and the probe goes on).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct rec {
	double start;
	const char *op;
	double us;
};

static struct rec *recs;
static size_t nrec, caprec;

static double now_real(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void note(double start, const char *op, double t0)
{
	if (nrec == caprec) {
		caprec = caprec ? caprec * 2 : 4096;
		recs = realloc(recs, caprec * sizeof(*recs));
		if (!recs) {
			perror("probe: realloc");
			exit(2);
		}
	}
	recs[nrec++] = (struct rec){ start, op, (now_mono() - t0) * 1e6 };
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: probe DIR STOPFILE OUT\n");
		return 2;
	}
	const char *dir = argv[1], *stop = argv[2];
	char path[4096], prev[4096] = "";
	static char buf[4096];
	struct stat st;
	int failed = 0;
	memset(buf, 'p', sizeof(buf));
	for (unsigned long n = 0; access(stop, F_OK) != 0; n++) {
		double s, t;
		snprintf(path, sizeof(path), "%s/p%lu", dir, n);

		s = now_real(), t = now_mono();
		if (stat(dir, &st) < 0)
			failed = 1, perror("probe: stat dir");
		note(s, "stat", t);

		s = now_real(), t = now_mono();
		int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
		note(s, "create", t);
		if (fd < 0) {
			failed = 1;
			perror("probe: create");
		} else {
			s = now_real(), t = now_mono();
			if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
				failed = 1, perror("probe: write");
			note(s, "write", t);
			s = now_real(), t = now_mono();
			close(fd);
			note(s, "close", t);
		}
		s = now_real(), t = now_mono();
		if (stat(path, &st) < 0)
			failed = 1, perror("probe: stat file");
		note(s, "stat", t);
		if (prev[0]) {
			s = now_real(), t = now_mono();
			if (unlink(prev) < 0)
				failed = 1, perror("probe: unlink");
			note(s, "unlink", t);
		}
		snprintf(prev, sizeof(prev), "%s", path);
		usleep(5000);
	}
	FILE *f = fopen(argv[3], "w");
	if (!f) {
		perror(argv[3]);
		return 2;
	}
	for (size_t i = 0; i < nrec; i++)
		fprintf(f, "%.6f %s %.0f\n", recs[i].start, recs[i].op, recs[i].us);
	fclose(f);
	return failed;
}
