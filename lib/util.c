/*
 * util.c -- logging with per-thread context, assertions, clocks, sizes.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include "pfs_util.h"

static int log_level = PFS_LOG_INFO;
static bool log_syslog;
static char log_ctx_global[96];
static __thread char log_ctx_thread[96];
static __thread bool log_ctx_thread_set;

void pfs_log_set_level(int level) { log_level = level; }
void pfs_log_use_syslog(bool on) { log_syslog = on; }

/* The first call (before threads start) sets the process-wide context;
 * later calls from other threads set that thread's own. */
void pfs_log_set_context(const char *ctx)
{
	static bool global_set;
	if (!global_set) {
		snprintf(log_ctx_global, sizeof(log_ctx_global), "%s", ctx);
		global_set = true;
		return;
	}
	snprintf(log_ctx_thread, sizeof(log_ctx_thread), "%s", ctx);
	log_ctx_thread_set = true;
}

void pfs_log(int level, const char *fmt, ...)
{
	static const char *names[] = { "error", "warning", "info", "debug" };
	char msg[1024];
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	const char *ctx = log_ctx_thread_set ? log_ctx_thread : log_ctx_global;
	if (log_syslog) {
		static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
		syslog(prio[level], "%s%s%s", ctx, *ctx ? " " : "", msg);
		return;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	localtime_r(&ts.tv_sec, &tm);
	fprintf(stderr, "%02d:%02d:%02d.%03ld peerfs %s: %s%s%s\n", tm.tm_hour,
		tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[level], ctx,
		*ctx ? " " : "", msg);
}

void pfs_bug(const char *file, int line, const char *cond)
{
	pfs_log(PFS_LOG_ERR, "BUG at %s:%d: %s", file, line, cond);
	abort();
}

uint64_t pfs_now_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t pfs_now_real_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int pfs_parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	if (!s || !*s || *s == '-')
		return -EINVAL;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	case 't': case 'T': shift = 40; break;
	default: return -EINVAL;
	}
	if (*end && end[1] && !((end[1] == 'i' || end[1] == 'B') &&
				(end[2] == '\0' || (end[1] == 'i' && end[2] == 'B' && !end[3]))))
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}
