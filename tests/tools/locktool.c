/*
 * locktool -- run a sequence of advisory lock commands on one open file,
 * printing one line per command, for the mounted lock tests.
 *
 *   locktool FILE CMD...
 *
 * Commands (run in order on one descriptor, opened O_RDWR|O_CREAT):
 *   setlk:T:START:LEN    fcntl F_SETLK   (T: r, w or u)
 *   setlkw:T:START:LEN   fcntl F_SETLKW
 *   getlk:T:START:LEN    fcntl F_GETLK: "-> unlck" or "-> T START LEN pid PID"
 *   flock:sh|ex|un[:nb]  flock(2)
 *   alarm:SEC            SIGALRM in SEC seconds, its handler installed
 *                        without SA_RESTART (a blocked call fails EINTR)
 *   sleep:SEC            sleep (fractions allowed)
 *   touch:PATH           create PATH (a signal to another process)
 *   waitfile:PATH        wait until PATH exists
 *   hold                 print "holding" and sleep until killed
 * A lock command prints "CMD ok" or "CMD ERRNAME" (e.g. EAGAIN); a
 * failure does not stop the sequence.  Exit status: 0, or 2 for usage
 * errors and an unopenable file.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static void on_alarm(int sig)
{
	(void)sig;
}

static void say(const char *cmd, int rc)
{
	if (rc == 0)
		printf("%s ok\n", cmd);
	else if (strerrorname_np(errno))
		printf("%s %s\n", cmd, strerrorname_np(errno));
	else
		printf("%s errno %d\n", cmd, errno);
	fflush(stdout);
}

static int parse_range(const char *arg, struct flock *fl)
{
	char t;
	long long start, len;
	if (sscanf(arg, "%c:%lld:%lld", &t, &start, &len) != 3)
		return -1;
	memset(fl, 0, sizeof(*fl));
	fl->l_type = t == 'r' ? F_RDLCK : t == 'w' ? F_WRLCK : t == 'u' ? F_UNLCK : -1;
	fl->l_whence = SEEK_SET;
	fl->l_start = start;
	fl->l_len = len;
	return fl->l_type == (short)-1 ? -1 : 0;
}

static void nap(double sec)
{
	struct timespec ts = { (time_t)sec, (long)((sec - (double)(time_t)sec) * 1e9) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int main(int argc, char **argv)
{
	struct flock fl;

	if (argc < 3) {
		fprintf(stderr, "usage: locktool FILE CMD...\n");
		return 2;
	}
	int fd = open(argv[1], O_RDWR | O_CREAT, 0644);
	if (fd < 0) {
		fprintf(stderr, "locktool: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	const char *cmd = NULL;
	for (int i = 2; i < argc; i++) {
		cmd = argv[i];
		const char *arg = strchr(cmd, ':') ? strchr(cmd, ':') + 1 : "";
		if (!strncmp(cmd, "setlk:", 6) || !strncmp(cmd, "setlkw:", 7)) {
			if (parse_range(arg, &fl))
				goto usage;
			say(cmd, fcntl(fd, cmd[5] == 'w' ? F_SETLKW : F_SETLK, &fl));
		} else if (!strncmp(cmd, "getlk:", 6)) {
			if (parse_range(arg, &fl))
				goto usage;
			if (fcntl(fd, F_GETLK, &fl) < 0) {
				say(cmd, -1);
			} else if (fl.l_type == F_UNLCK) {
				printf("%s -> unlck\n", cmd);
			} else {
				printf("%s -> %c %lld %lld pid %d\n", cmd, fl.l_type == F_WRLCK ? 'w' : 'r',
				       (long long)fl.l_start, (long long)fl.l_len, (int)fl.l_pid);
			}
			fflush(stdout);
		} else if (!strncmp(cmd, "flock:", 6)) {
			int op = !strncmp(arg, "sh", 2) ? LOCK_SH : !strncmp(arg, "ex", 2) ? LOCK_EX :
				 !strncmp(arg, "un", 2) ? LOCK_UN : -1;
			if (op < 0)
				goto usage;
			if (strstr(arg, ":nb"))
				op |= LOCK_NB;
			say(cmd, flock(fd, op));
		} else if (!strncmp(cmd, "alarm:", 6)) {
			struct sigaction sa;
			memset(&sa, 0, sizeof(sa));
			sa.sa_handler = on_alarm;       /* no SA_RESTART */
			sigaction(SIGALRM, &sa, NULL);
			alarm((unsigned)atoi(arg));
		} else if (!strncmp(cmd, "sleep:", 6)) {
			nap(atof(arg));
		} else if (!strncmp(cmd, "touch:", 6)) {
			int t = open(arg, O_WRONLY | O_CREAT, 0644);
			if (t >= 0)
				close(t);
		} else if (!strncmp(cmd, "waitfile:", 9)) {
			while (access(arg, F_OK) != 0)
				nap(0.02);
		} else if (!strcmp(cmd, "hold")) {
			printf("holding\n");
			fflush(stdout);
			for (;;)
				pause();
		} else {
			goto usage;
		}
	}
	close(fd);
	return 0;
usage:
	fprintf(stderr, "locktool: bad command %s\n", cmd);
	return 2;
}
