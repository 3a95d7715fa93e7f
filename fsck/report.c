/*
 * report.c -- how fsck.peerfs talks: problem lines, the decision to fix,
 * warnings, operational errors and progress lines.
 *
 * Design notes
 *
 * Every problem is one line on stdout with a stable wording (tests compare
 * it).  The decision to fix follows the mode:
 *   -n      never (the line is printed as is);
 *   -p      FSCK_FIX_SAFE problems only;
 *   -y      every fixable problem;
 *   ask     a question on the terminal per fixable problem ("a" answers
 *           yes to all that follow).
 * In every mode but -n the line ends with " [fixed]" or " [not fixed]".
 * Counters: problems seen, fixed, left; main.c turns them into the exit
 * code and the summary.
 *
 * Progress lines go to stdout, overwriting themselves with '\r', only when
 * stdout is a terminal and the volume is large (f->progress); a problem
 * line first erases a progress line shown.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsck.h"

bool fsck_can_fix(const struct fsck *f)
{
	return f->rw && f->o.mode != FSCK_MODE_CHECK;
}

static void erase_progress(struct fsck *f)
{
	if (f->progress_shown) {
		fputs("\r\033[K", stdout);
		f->progress_shown = false;
	}
}

/* Ask on the terminal: true for yes. */
static bool ask_user(struct fsck *f)
{
	char *line = NULL;
	size_t cap = 0;
	bool yes = false;

	for (;;) {
		fputs("Fix? [y/n/a] ", stdout);
		fflush(stdout);
		if (getline(&line, &cap, stdin) < 0) {
			/* End of input: no further fixes. */
			putchar('\n');
			break;
		}
		if (line[0] == 'y' || line[0] == 'Y') {
			yes = true;
			break;
		}
		if (line[0] == 'a' || line[0] == 'A') {
			f->yes_to_all = true;
			yes = true;
			break;
		}
		if (line[0] == 'n' || line[0] == 'N')
			break;
	}
	free(line);
	return yes;
}

static bool decide(struct fsck *f, enum fsck_fix cls)
{
	if (cls == FSCK_FIX_NONE || !fsck_can_fix(f))
		return false;
	switch (f->o.mode) {
	case FSCK_MODE_PREEN:
		return cls == FSCK_FIX_SAFE;
	case FSCK_MODE_YES:
		return true;
	case FSCK_MODE_ASK:
		return f->yes_to_all || ask_user(f);
	case FSCK_MODE_CHECK:
		break;
	}
	return false;
}

bool fsck_problem(struct fsck *f, enum fsck_fix cls, const char *fmt, ...)
{
	va_list ap;
	bool fix;

	erase_progress(f);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	f->problems++;
	if (f->o.mode == FSCK_MODE_ASK && cls != FSCK_FIX_NONE && fsck_can_fix(f)) {
		putchar('\n');
		fix = decide(f, cls);
		fputs(fix ? "  fixed\n" : "  not fixed\n", stdout);
	} else {
		fix = decide(f, cls);
		if (f->o.mode != FSCK_MODE_CHECK)
			fputs(fix ? " [fixed]" : " [not fixed]", stdout);
		putchar('\n');
	}
	if (fix)
		f->fixed++;
	else
		f->left++;
	fflush(stdout);
	return fix;
}

void fsck_warn(struct fsck *f, const char *fmt, ...)
{
	va_list ap;

	erase_progress(f);
	fputs("warning: ", stdout);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

void fsck_info(struct fsck *f, const char *fmt, ...)
{
	va_list ap;

	erase_progress(f);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

void fsck_verbose(struct fsck *f, const char *fmt, ...)
{
	va_list ap;

	if (!f->o.verbose)
		return;
	erase_progress(f);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

int fsck_fail(struct fsck *f, int err, const char *fmt, ...)
{
	va_list ap;

	erase_progress(f);
	fflush(stdout);
	fprintf(stderr, "%s: %s: ", FSCK_PROG, f->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (err == -EIO)
		fputs(": I/O error", stderr);
	else if (err == -EUCLEAN)
		fputs(": corrupt", stderr);
	else if (err < 0)
		fprintf(stderr, ": %s", strerror(-err));
	fputc('\n', stderr);
	return err;
}

void fsck_progress(struct fsck *f, int pass, uint64_t done, uint64_t total)
{
	static const char *names[] = {
		"superblock", "slots", "groups", "inodes", "directories", "usage",
	};
	unsigned pct;

	if (!f->progress || pass < 0 || pass > 5 || total == 0)
		return;
	pct = (unsigned)(done * 100 / total);
	if (f->progress_shown && f->progress_pass == pass && f->progress_pct == pct)
		return;
	f->progress_pass = pass;
	f->progress_pct = pct;
	printf("\rpass %d (%s): %3u%%", pass, names[pass], pct);
	fflush(stdout);
	f->progress_shown = true;
}

void fsck_progress_end(struct fsck *f)
{
	erase_progress(f);
	fflush(stdout);
}
