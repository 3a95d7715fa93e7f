/*
 * crashwl.c -- scripted workloads run against a mounted directory, with a
 * journal of what was acknowledged, and the check of that directory after
 * a crash and recovery.
 *
 *   crashwl [-s SEED] [-n SCALE] [-N OPS] [-t SECONDS] [-q] WORKLOAD DIR LOGFILE
 *   crashwl verify [-m undo|ordered] [-q] WORKLOAD DIR LOGFILE
 *
 * Workloads: create, rename-over, unlink, overwrite, relocate, truncate, mkdir-tree,
 * hardlinks, xattrs, mixed.  DIR must exist and be empty; every operation
 * is made relative to a descriptor of DIR opened at the start, so once
 * the mount behind DIR is gone (killed daemon, lazy unmount) operations
 * fail instead of landing in the directory underneath.
 *
 * Operations.  Each logged operation is exactly one system call that
 * changes the file system, so one FUSE request:
 *   create P          open(P, O_CREAT|O_EXCL|O_WRONLY), close
 *   write P OFF LEN   open(P, O_WRONLY), pwrite of LEN bytes at OFF, close;
 *                     LEN <= 28 KiB, so it spans at most 8 pages and fits
 *                     one WRITE request for any max_write of 32 KiB or
 *                     more (peerfs never goes lower); and a write that
 *                     starts inside a page never crosses into the next
 *                     (the workloads split it), because the kernel sends
 *                     a partly written first page that is not in its page
 *                     cache as a request of its own
 *   trunc P SIZE      open(P, O_WRONLY), ftruncate, close
 *   unlink P          unlinkat
 *   ounlink P         open(P, O_RDWR), unlinkat, pwrite 4 KiB into the now
 *                     nameless file, close (only the unlink is visible)
 *   rename A B        renameat
 *   link A B          linkat
 *   mkdir P, rmdir P  mkdirat, unlinkat(AT_REMOVEDIR)
 *   setx P NAME LEN   fsetxattr (create or replace) of a LEN-byte value
 *   rmx P NAME        fremovexattr
 *   fsync P           open(P, O_RDONLY), fsync, close (P a file or a dir)
 * The bytes written by operation N at file offset OFF are a function of
 * (seed, N, OFF) only (pattern()), so every byte names the operation that
 * wrote it, and xattr values likewise.
 *
 * The log (LOGFILE, each line written with one write() and fdatasync'd):
 *   crashwl 1 workload W seed S
 *   begin N OP ARGS     before operation N starts
 *   done N R            after it returned: 0 or -errno
 *   durable N           after fsync operation N returned 0
 *   end N               the workload finished after N operations
 * The run stops at the first operation that fails: exit 3 when the error
 * says the file system is gone (EIO, ENOTCONN, ECONNABORTED, ENODEV,
 * ENXIO: a fenced or killed daemon), exit 1 for any other error.  Exit 0
 * when the workload completed.
 *
 * What verify checks.  The workload is sequential, so the file system
 * sees one request at a time, and peerfs commits whole requests, in order
 * (journal/tx.c T2: a compound transaction holds whole requests only; one
 * commits after the other), so the state after a crash is the state after
 * some prefix of the operations: 1..K.  A completed fsync of P promises
 * P's inode as it was then (its data, size, link count and xattrs; for a
 * directory also its entries): every operation up to the last one that
 * changed that inode, so K is at least that operation.  (fsync commits
 * only when the inode changed since the last commit, as POSIX allows; a
 * commit, when it happens, takes every request before it.)  Let D be the
 * largest such bound over the completed fsyncs and B the last operation
 * begun.  Verify replays the log into an in-memory model of DIR and
 * accepts the directory only if it equals the model after operations
 * 1..K for some K with D <= K <= B ("prefix consistency").  Equality
 * covers, per path: existence and type; for files the size, the link
 * count and the bytes; for directories the link count (2 +
 * subdirectories); the user.* xattrs with their values; and, across
 * paths, that names of one model inode are one inode and names of
 * different model inodes are different inodes.  Operation B may have
 * returned an error (the crash); it is allowed to have happened or not,
 * never in part.  Any file or directory that is not in the model is a
 * failure.  With -c (the run ended with a clean unmount) only K = B is
 * accepted.
 *
 * With -m ordered (data=ordered: overwrites of committed blocks go to the
 * device directly, outside the transaction), metadata is checked exactly
 * as above, and each byte of file content must be the byte of the model
 * at K or a byte some operation after K wrote there in place: a write's
 * pattern byte, or a zero inside the block tail a truncate after K zeroes
 * ([newsize, next block boundary)).  Bytes written up to K are durable.
 *
 * What this means per workload (B is the operation in flight):
 *   create       each file is absent, empty, or holds exactly the bytes
 *                of a prefix of its writes, whole writes only; a file
 *                whose fsync completed exists with all the content it had
 *                then, and so does every file created before it.
 *   rename-over  a rename either happened or not: the source name and the
 *                target name never both refer to the new file, never both
 *                vanish; the target holds the complete old or the complete
 *                new content, never a mix.
 *   unlink       each name is present with its whole content or gone;
 *                link counts agree; an unlinked file open at the crash
 *                leaves no name behind.
 *   overwrite    the file equals its content after some prefix of the
 *                writes: each write request's range is all old or all
 *                new bytes (undo); fsync'd writes are present.
 *   relocate     the same, with writes of 64 to 128 KiB (one request each).
 *   truncate     size and bytes are those after a prefix of the truncates
 *                and writes; bytes past a shrink that was later extended
 *                read as zeros.
 *   mkdir-tree   the tree (directories, files, renamed subtrees) is the
 *                tree after a prefix; directory link counts agree; a
 *                renamed directory appears under exactly one name.
 *   hardlinks    link counts and inode identity of every name agree with
 *                a prefix; a rename between two names of one inode
 *                changes nothing.
 *   xattrs       each xattr is absent or has one complete value, the one
 *                of a prefix.
 *   mixed        all of the above at once.
 *
 * verify exits 0 when a K is found (it prints K, D and B), 1 when none
 * is (it prints, for the K that came closest, every path that differs and
 * which operation wrote the bytes found), 2 for a bad log or usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>

#define WR_MAX          28672u          /* largest write: one request */
#define WR_BIG_MAX      (128u * 1024u)  /* relocate: page-aligned, one request */
#define FILE_CAP        (256u * 1024u)  /* workloads keep files below */
#define XATTR_BUDGET    3000u           /* bytes of xattr entries per inode */
#define OUNLINK_BYTES   4096u

#define EXIT_GONE       3

/* ------------------------------------------------------------------ */
/* Utilities.                                                           */
/* ------------------------------------------------------------------ */

static bool g_quiet;

__attribute__((format(printf, 2, 3), noreturn))
static void die(int code, const char *fmt, ...)
{
	va_list ap;
	fputs("crashwl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die(2, "out of memory");
	return p;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		die(2, "out of memory");
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		die(2, "out of memory");
	return p;
}

__attribute__((format(printf, 1, 2)))
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	va_start(ap, fmt);
	int n = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (n < 0)
		die(2, "out of memory");
	return p;
}

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t g_rng;

static uint64_t rnd(void)
{
	return mix64(g_rng += 0x9e3779b97f4a7c15ull);
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static uint64_t g_seed;

static uint64_t pat_word(uint64_t tag, uint64_t word)
{
	return mix64(g_seed * 0xd6e8feb86659fd93ull ^ mix64(tag + 0x51ed27u) ^
		     word * 0x9e3779b97f4a7c15ull);
}

/* The bytes operation `tag` writes at file offsets [off, off+len). */
static void pattern(uint64_t tag, uint64_t off, uint8_t *buf, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint64_t o = off + i;
		uint64_t w = pat_word(tag, o >> 3);
		for (unsigned b = (unsigned)(o & 7); b < 8 && i < len; b++, i++)
			buf[i] = (uint8_t)(w >> (b * 8));
	}
}

static uint8_t pattern_byte(uint64_t tag, uint64_t off)
{
	return (uint8_t)(pat_word(tag, off >> 3) >> ((off & 7) * 8));
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* Operations.                                                          */
/* ------------------------------------------------------------------ */

enum op_kind {
	OP_CREATE, OP_WRITE, OP_TRUNC, OP_UNLINK, OP_OUNLINK, OP_RENAME,
	OP_LINK, OP_MKDIR, OP_RMDIR, OP_SETX, OP_RMX, OP_FSYNC, OP_NKINDS
};

static const char *const op_names[OP_NKINDS] = {
	"create", "write", "trunc", "unlink", "ounlink", "rename",
	"link", "mkdir", "rmdir", "setx", "rmx", "fsync",
};

/* Which of a, b (path or xattr name), x, y each kind carries. */
static const struct { uint8_t nstr, nnum; } op_args[OP_NKINDS] = {
	[OP_CREATE] = { 1, 0 }, [OP_WRITE] = { 1, 2 }, [OP_TRUNC] = { 1, 1 },
	[OP_UNLINK] = { 1, 0 }, [OP_OUNLINK] = { 1, 0 }, [OP_RENAME] = { 2, 0 },
	[OP_LINK] = { 2, 0 }, [OP_MKDIR] = { 1, 0 }, [OP_RMDIR] = { 1, 0 },
	[OP_SETX] = { 2, 1 }, [OP_RMX] = { 2, 0 }, [OP_FSYNC] = { 1, 0 },
};

struct op {
	enum op_kind kind;
	char *a, *b;
	uint64_t x, y;
	uint64_t n;                     /* its number (the pattern tag) */
	bool done;                      /* a "done" line was logged */
	bool durable;                   /* a "durable" line was logged */
	int result;
	int tino;                       /* verify: model inode it targeted */
	uint64_t osize;                 /* verify: that inode's size before */
};

static void op_format(const struct op *o, char *buf, size_t len)
{
	int k = snprintf(buf, len, "%s %s", op_names[o->kind], o->a);
	if (op_args[o->kind].nstr > 1 && k >= 0 && (size_t)k < len)
		k += snprintf(buf + k, len - (size_t)k, " %s", o->b);
	if (op_args[o->kind].nnum > 0 && k >= 0 && (size_t)k < len)
		k += snprintf(buf + k, len - (size_t)k, " %" PRIu64, o->x);
	if (op_args[o->kind].nnum > 1 && k >= 0 && (size_t)k < len)
		snprintf(buf + k, len - (size_t)k, " %" PRIu64, o->y);
}

/* ------------------------------------------------------------------ */
/* The model of DIR, and (for verify) what DIR holds.                   */
/* ------------------------------------------------------------------ */

enum { T_NONE = 0, T_FILE = 1, T_DIR = 2, T_OTHER = 3 };

struct xat {
	char *name;
	uint8_t *val;
	size_t len;
};

struct xset {
	struct xat *v;
	size_t n;
};

struct minode {
	int type;
	uint32_t nlink;
	uint64_t last_op;               /* last operation that changed it */
	uint8_t *data;
	size_t size, cap;
	struct xset xs;
	uint64_t version;               /* +1 at every change */
};

/* One path: bound to a model inode or not, found in DIR or not. */
struct ent {
	char *path;
	int mino;                       /* model inode, -1 if none */
	/* found in DIR (verify) */
	int a_type;                     /* T_NONE if absent */
	int a_err;                      /* errno reading it, or 0 */
	uint64_t a_ino;
	uint32_t a_nlink;
	uint8_t *a_data;
	size_t a_size;
	struct xset a_xs;
	/* comparison cache */
	bool c_valid, mismatch;
	int c_mino;
	uint64_t c_version;
};

struct model {
	struct minode *in;
	size_t nin, capin;
	struct ent *e;
	size_t ne, cape;
	int *hash;                      /* entry index + 1; 0 = empty */
	size_t hcap;
	bool compare;                   /* entries hold what DIR holds */
	bool ordered;                   /* content checked at the end only */
	size_t nmismatch;
	uint64_t cur_op;                /* operation being applied */
};

static uint64_t str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

static void hash_insert(struct model *m, size_t idx)
{
	size_t h = (size_t)str_hash(m->e[idx].path) & (m->hcap - 1);
	while (m->hash[h])
		h = (h + 1) & (m->hcap - 1);
	m->hash[h] = (int)idx + 1;
}

static int ent_find(const struct model *m, const char *path)
{
	if (!m->hcap)
		return -1;
	size_t h = (size_t)str_hash(path) & (m->hcap - 1);
	while (m->hash[h]) {
		int i = m->hash[h] - 1;
		if (strcmp(m->e[i].path, path) == 0)
			return i;
		h = (h + 1) & (m->hcap - 1);
	}
	return -1;
}

static int ent_get(struct model *m, const char *path)
{
	int i = ent_find(m, path);
	if (i >= 0)
		return i;
	if (m->ne == m->cape) {
		m->cape = m->cape ? m->cape * 2 : 64;
		m->e = xrealloc(m->e, m->cape * sizeof(*m->e));
	}
	struct ent *e = &m->e[m->ne];
	memset(e, 0, sizeof(*e));
	e->path = xstrdup(path);
	e->mino = -1;
	m->ne++;
	if (m->ne * 2 > m->hcap) {
		free(m->hash);
		m->hcap = m->hcap ? m->hcap * 2 : 256;
		while (m->ne * 2 > m->hcap)
			m->hcap *= 2;
		m->hash = calloc(m->hcap, sizeof(*m->hash));
		if (!m->hash)
			die(2, "out of memory");
		for (size_t k = 0; k < m->ne; k++)
			hash_insert(m, k);
	} else {
		hash_insert(m, m->ne - 1);
	}
	return (int)m->ne - 1;
}

static int lookup(const struct model *m, const char *path)
{
	int i = ent_find(m, path);
	return i < 0 ? -1 : m->e[i].mino;
}

static void bind(struct model *m, const char *path, int mino)
{
	int i = ent_get(m, path);           /* may move m->e */
	m->e[i].mino = mino;
}

static int new_inode(struct model *m, int type)
{
	if (m->nin == m->capin) {
		m->capin = m->capin ? m->capin * 2 : 64;
		m->in = xrealloc(m->in, m->capin * sizeof(*m->in));
	}
	struct minode *in = &m->in[m->nin];
	memset(in, 0, sizeof(*in));
	in->type = type;
	in->nlink = type == T_DIR ? 2 : 1;
	in->last_op = m->cur_op;
	return (int)m->nin++;
}

static void model_init(struct model *m)
{
	memset(m, 0, sizeof(*m));
	bind(m, ".", new_inode(m, T_DIR));
}

static void xset_free(struct xset *xs)
{
	for (size_t i = 0; i < xs->n; i++) {
		free(xs->v[i].name);
		free(xs->v[i].val);
	}
	free(xs->v);
	xs->v = NULL;
	xs->n = 0;
}

static void model_free(struct model *m)
{
	for (size_t i = 0; i < m->nin; i++) {
		free(m->in[i].data);
		xset_free(&m->in[i].xs);
	}
	for (size_t i = 0; i < m->ne; i++) {
		free(m->e[i].path);
		free(m->e[i].a_data);
		xset_free(&m->e[i].a_xs);
	}
	free(m->in);
	free(m->e);
	free(m->hash);
	memset(m, 0, sizeof(*m));
}

/* "a/b/c" -> "a/b", "a" -> "." */
static char *parent_of(const char *path)
{
	const char *s = strrchr(path, '/');
	if (!s)
		return xstrdup(".");
	return strndup(path, (size_t)(s - path));
}

/* Is path strictly inside directory dir? */
static bool is_under(const char *path, const char *dir)
{
	if (strcmp(dir, ".") == 0)
		return strcmp(path, ".") != 0;
	size_t n = strlen(dir);
	return strncmp(path, dir, n) == 0 && path[n] == '/';
}

static bool dir_empty(const struct model *m, const char *dir)
{
	for (size_t i = 0; i < m->ne; i++)
		if (m->e[i].mino >= 0 && is_under(m->e[i].path, dir))
			return false;
	return true;
}

static int parent_dir(const struct model *m, const char *path)
{
	char *p = parent_of(path);
	int d = lookup(m, p);
	free(p);
	if (d < 0 || m->in[d].type != T_DIR)
		return -1;
	return d;
}

/* Inode id changed (for a directory: also its entries). */
static void touch(struct model *m, int id)
{
	m->in[id].version++;
	m->in[id].last_op = m->cur_op;
}

static void file_resize(struct minode *in, size_t size)
{
	if (size > in->cap) {
		size_t cap = in->cap ? in->cap : 4096;
		while (cap < size)
			cap *= 2;
		in->data = xrealloc(in->data, cap);
		in->cap = cap;
	}
	if (size > in->size)
		memset(in->data + in->size, 0, size - in->size);
	in->size = size;
}

static struct xat *xset_find(struct xset *xs, const char *name)
{
	for (size_t i = 0; i < xs->n; i++)
		if (strcmp(xs->v[i].name, name) == 0)
			return &xs->v[i];
	return NULL;
}

static size_t xset_bytes(const struct xset *xs)
{
	size_t n = 0;
	for (size_t i = 0; i < xs->n; i++)
		n += 3 + strlen(xs->v[i].name) + xs->v[i].len;
	return n;
}

static void xset_put(struct xset *xs, const char *name, const uint8_t *val, size_t len)
{
	struct xat *x = xset_find(xs, name);
	if (!x) {
		xs->v = xrealloc(xs->v, (xs->n + 1) * sizeof(*xs->v));
		x = &xs->v[xs->n++];
		x->name = xstrdup(name);
		x->val = NULL;
	}
	free(x->val);
	x->val = xmalloc(len);
	memcpy(x->val, val, len);
	x->len = len;
}

static bool xset_equal(const struct xset *a, const struct xset *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		struct xat *y = xset_find((struct xset *)b, a->v[i].name);
		if (!y || y->len != a->v[i].len || memcmp(y->val, a->v[i].val, y->len) != 0)
			return false;
	}
	return true;
}

/* Apply operation o to the model: 0, or the -errno POSIX would give
 * (the workloads only issue operations that succeed). */
static int model_apply(struct model *m, const struct op *o)
{
	int id, pd, t;

	m->cur_op = o->n;
	switch (o->kind) {
	case OP_CREATE:
		if (lookup(m, o->a) >= 0)
			return -EEXIST;
		if ((pd = parent_dir(m, o->a)) < 0)
			return -ENOENT;
		id = new_inode(m, T_FILE);
		bind(m, o->a, id);
		touch(m, pd);
		return 0;
	case OP_WRITE: {
		id = lookup(m, o->a);
		if (id < 0)
			return -ENOENT;
		struct minode *in = &m->in[id];
		if (in->type != T_FILE)
			return -EISDIR;
		if (o->x + o->y > in->size)
			file_resize(in, (size_t)(o->x + o->y));
		pattern(o->n, o->x, in->data + o->x, (size_t)o->y);
		touch(m, id);
		return 0;
	}
	case OP_TRUNC:
		id = lookup(m, o->a);
		if (id < 0)
			return -ENOENT;
		if (m->in[id].type != T_FILE)
			return -EISDIR;
		file_resize(&m->in[id], (size_t)o->x);
		touch(m, id);
		return 0;
	case OP_UNLINK:
	case OP_OUNLINK:
		id = lookup(m, o->a);
		if (id < 0)
			return -ENOENT;
		if (m->in[id].type == T_DIR)
			return -EISDIR;
		touch(m, parent_dir(m, o->a));
		bind(m, o->a, -1);
		m->in[id].nlink--;
		if (o->kind == OP_OUNLINK && m->in[id].nlink > 0) {
			/* Another name still shows the write to the open file. */
			struct minode *in = &m->in[id];
			if (OUNLINK_BYTES > in->size)
				file_resize(in, OUNLINK_BYTES);
			pattern(o->n, 0, in->data, OUNLINK_BYTES);
		}
		touch(m, id);
		return 0;
	case OP_LINK:
		id = lookup(m, o->a);
		if (id < 0)
			return -ENOENT;
		if (m->in[id].type == T_DIR)
			return -EPERM;
		if (lookup(m, o->b) >= 0)
			return -EEXIST;
		if ((pd = parent_dir(m, o->b)) < 0)
			return -ENOENT;
		touch(m, pd);
		bind(m, o->b, id);
		m->in[id].nlink++;
		touch(m, id);
		return 0;
	case OP_MKDIR:
		if (lookup(m, o->a) >= 0)
			return -EEXIST;
		if ((pd = parent_dir(m, o->a)) < 0)
			return -ENOENT;
		id = new_inode(m, T_DIR);
		bind(m, o->a, id);
		m->in[pd].nlink++;
		touch(m, pd);
		return 0;
	case OP_RMDIR:
		id = lookup(m, o->a);
		if (id < 0)
			return -ENOENT;
		if (m->in[id].type != T_DIR)
			return -ENOTDIR;
		if (strcmp(o->a, ".") == 0 || !dir_empty(m, o->a))
			return -ENOTEMPTY;
		pd = parent_dir(m, o->a);
		bind(m, o->a, -1);
		m->in[id].nlink = 0;
		touch(m, id);
		m->in[pd].nlink--;
		touch(m, pd);
		return 0;
	case OP_RENAME: {
		int src = lookup(m, o->a), dst = lookup(m, o->b);
		int spd = parent_dir(m, o->a), dpd = parent_dir(m, o->b);
		if (src < 0 || dpd < 0)
			return -ENOENT;
		if (src == dst)
			return 0;               /* one inode: nothing happens */
		t = m->in[src].type;
		if (t == T_DIR && (strcmp(o->a, o->b) == 0 || is_under(o->b, o->a)))
			return -EINVAL;
		if (dst >= 0) {
			if (m->in[dst].type == T_DIR) {
				if (t != T_DIR)
					return -EISDIR;
				if (!dir_empty(m, o->b))
					return -ENOTEMPTY;
				m->in[dst].nlink = 0;
				m->in[dpd].nlink--;
			} else {
				if (t == T_DIR)
					return -ENOTDIR;
				m->in[dst].nlink--;
			}
			touch(m, dst);
			touch(m, dpd);
		}
		if (t == T_DIR) {
			/* Move the subtree: collect first, ent_get may move m->e. */
			size_t la = strlen(o->a), nsub = 0;
			char **sub = NULL;
			int *ids = NULL;
			for (size_t i = 0; i < m->ne; i++) {
				if (m->e[i].mino >= 0 && is_under(m->e[i].path, o->a)) {
					sub = xrealloc(sub, (nsub + 1) * sizeof(*sub));
					ids = xrealloc(ids, (nsub + 1) * sizeof(*ids));
					sub[nsub] = xstrdup(m->e[i].path + la);
					ids[nsub++] = m->e[i].mino;
					m->e[i].mino = -1;
				}
			}
			for (size_t i = 0; i < nsub; i++) {
				char *np = xasprintf("%s%s", o->b, sub[i]);
				bind(m, np, ids[i]);
				free(np);
				free(sub[i]);
			}
			free(sub);
			free(ids);
			if (spd != dpd) {
				m->in[spd].nlink--;
				m->in[dpd].nlink++;
			}
		}
		bind(m, o->a, -1);
		bind(m, o->b, src);
		touch(m, src);
		touch(m, spd);
		touch(m, dpd);
		return 0;
	}
	case OP_SETX: {
		id = lookup(m, o->a);
		if (id < 0)
			return -ENOENT;
		uint8_t *v = xmalloc((size_t)o->x);
		pattern(o->n, 0, v, (size_t)o->x);
		xset_put(&m->in[id].xs, o->b, v, (size_t)o->x);
		free(v);
		touch(m, id);
		return 0;
	}
	case OP_RMX: {
		id = lookup(m, o->a);
		if (id < 0)
			return -ENOENT;
		struct xset *xs = &m->in[id].xs;
		struct xat *x = xset_find(xs, o->b);
		if (!x)
			return -ENODATA;
		free(x->name);
		free(x->val);
		*x = xs->v[--xs->n];
		touch(m, id);
		return 0;
	}
	case OP_FSYNC:
		return lookup(m, o->a) < 0 ? -ENOENT : 0;
	default:
		return -EINVAL;
	}
}

/* ------------------------------------------------------------------ */
/* Running a workload.                                                  */
/* ------------------------------------------------------------------ */

static int g_dfd = -1, g_logfd = -1;
static uint64_t g_nops, g_durable, g_max_ops, g_deadline_ns;
static struct model g_m;
static uint32_t g_name;

__attribute__((format(printf, 1, 2)))
static void logline(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf) - 1)
		die(1, "log line too long");
	buf[n++] = '\n';
	if (write(g_logfd, buf, (size_t)n) != n)
		die(1, "writing the log: %s", strerror(errno));
	if (fdatasync(g_logfd) != 0)
		die(1, "syncing the log: %s", strerror(errno));
}

static bool gone_error(int err)
{
	return err == -EIO || err == -ENOTCONN || err == -ECONNABORTED ||
	       err == -ENODEV || err == -ENXIO;
}

static int close_err(int fd, int r)
{
	if (close(fd) != 0 && r == 0)
		r = -errno;
	return r;
}

static int write_all(int fd, const uint8_t *buf, size_t len, off_t off)
{
	ssize_t w = pwrite(fd, buf, len, off);
	if (w < 0)
		return -errno;
	return (size_t)w == len ? 0 : -EIO;     /* a short write is a failure */
}

static int exec_op(const struct op *o)
{
	int fd, r = 0;

	switch (o->kind) {
	case OP_CREATE:
		fd = openat(g_dfd, o->a, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
		return fd < 0 ? -errno : close_err(fd, 0);
	case OP_WRITE: {
		uint8_t *buf = xmalloc((size_t)o->y);
		pattern(o->n, o->x, buf, (size_t)o->y);
		fd = openat(g_dfd, o->a, O_WRONLY | O_CLOEXEC);
		if (fd < 0) {
			r = -errno;
		} else {
			r = write_all(fd, buf, (size_t)o->y, (off_t)o->x);
			r = close_err(fd, r);
		}
		free(buf);
		return r;
	}
	case OP_TRUNC:
		fd = openat(g_dfd, o->a, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (ftruncate(fd, (off_t)o->x) != 0)
			r = -errno;
		return close_err(fd, r);
	case OP_UNLINK:
		return unlinkat(g_dfd, o->a, 0) ? -errno : 0;
	case OP_OUNLINK: {
		fd = openat(g_dfd, o->a, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (unlinkat(g_dfd, o->a, 0) != 0)
			return close_err(fd, -errno);
		uint8_t *buf = xmalloc(OUNLINK_BYTES);
		pattern(o->n, 0, buf, OUNLINK_BYTES);
		r = write_all(fd, buf, OUNLINK_BYTES, 0);
		free(buf);
		return close_err(fd, r);
	}
	case OP_RENAME:
		return renameat(g_dfd, o->a, g_dfd, o->b) ? -errno : 0;
	case OP_LINK:
		return linkat(g_dfd, o->a, g_dfd, o->b, 0) ? -errno : 0;
	case OP_MKDIR:
		return mkdirat(g_dfd, o->a, 0755) ? -errno : 0;
	case OP_RMDIR:
		return unlinkat(g_dfd, o->a, AT_REMOVEDIR) ? -errno : 0;
	case OP_SETX: {
		fd = openat(g_dfd, o->a, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		uint8_t *v = xmalloc((size_t)o->x);
		pattern(o->n, 0, v, (size_t)o->x);
		if (fsetxattr(fd, o->b, v, (size_t)o->x, 0) != 0)
			r = -errno;
		free(v);
		return close_err(fd, r);
	}
	case OP_RMX:
		fd = openat(g_dfd, o->a, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (fremovexattr(fd, o->b) != 0)
			r = -errno;
		return close_err(fd, r);
	case OP_FSYNC:
		fd = openat(g_dfd, o->a, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (fsync(fd) != 0)
			r = -errno;
		return close_err(fd, r);
	default:
		return -EINVAL;
	}
}

/* Log, run and model one operation; stops the program when it fails. */
static void step(enum op_kind kind, const char *a, const char *b, uint64_t x, uint64_t y)
{
	struct op o = { .kind = kind, .a = (char *)a, .b = (char *)b, .x = x, .y = y };
	char desc[600];

	o.n = ++g_nops;
	op_format(&o, desc, sizeof(desc));
	logline("begin %" PRIu64 " %s", o.n, desc);
	int r = exec_op(&o);
	logline("done %" PRIu64 " %d", o.n, r);
	if (r != 0) {
		fprintf(stderr, "crashwl: operation %" PRIu64 " (%s) failed: %s; stopping\n",
			o.n, desc, strerror(-r));
		exit(gone_error(r) ? EXIT_GONE : 1);
	}
	int mr = model_apply(&g_m, &o);
	if (mr != 0)
		die(1, "operation %" PRIu64 " (%s) succeeded but the model refuses it: %s",
		    o.n, desc, strerror(-mr));
	if (kind == OP_FSYNC) {
		logline("durable %" PRIu64, o.n);
		g_durable = o.n;
	}
}

/* Should an open-ended workload stop? */
static bool out_of_budget(void)
{
	if (g_max_ops && g_nops >= g_max_ops)
		return true;
	return g_deadline_ns && now_ns() >= g_deadline_ns;
}

/* Helpers over the run model. */

static size_t g_pick_cap;
static int *g_pick;

/* A random path bound to an inode of `type` (T_FILE/T_DIR), inside
 * `under` if not NULL; "." only when allow_root.  NULL if none. */
static const char *pick(int type, const char *under, bool allow_root)
{
	size_t n = 0;
	for (size_t i = 0; i < g_m.ne; i++) {
		struct ent *e = &g_m.e[i];
		if (e->mino < 0 || g_m.in[e->mino].type != type)
			continue;
		if (!allow_root && strcmp(e->path, ".") == 0)
			continue;
		if (under && !is_under(e->path, under))
			continue;
		if (n == g_pick_cap) {
			g_pick_cap = g_pick_cap ? g_pick_cap * 2 : 64;
			g_pick = xrealloc(g_pick, g_pick_cap * sizeof(*g_pick));
		}
		g_pick[n++] = (int)i;
	}
	if (!n)
		return NULL;
	return g_m.e[g_pick[rnd_below(n)]].path;
}

static size_t count_type(int type)
{
	size_t n = 0;
	for (size_t i = 0; i < g_m.ne; i++)
		if (g_m.e[i].mino >= 0 && g_m.in[g_m.e[i].mino].type == type)
			n++;
	return n;
}

static size_t msize(const char *path)
{
	int id = lookup(&g_m, path);
	return id < 0 ? 0 : g_m.in[id].size;
}

static unsigned depth(const char *path)
{
	unsigned d = strcmp(path, ".") != 0;
	for (; *path; path++)
		d += *path == '/';
	return d;
}

/* A new name inside dir. */
static char *new_name(const char *dir, const char *prefix)
{
	uint32_t k = g_name++;
	if (strcmp(dir, ".") == 0)
		return xasprintf("%s%u", prefix, k);
	return xasprintf("%s/%s%u", dir, prefix, k);
}

/* One write(2) that is one FUSE request (len <= WR_MAX, or page-aligned
 * and <= WR_BIG_MAX after the split below): the
 * kernel ends a request after a partly written page that is not in its
 * page cache, so a write that starts inside a page and crosses into the
 * next goes as two writes, the first up to the page boundary. */
static void wr(const char *p, uint64_t off, uint64_t len)
{
	uint64_t edge = (off + 4095) / 4096 * 4096;
	if (off % 4096 && off + len > edge) {
		step(OP_WRITE, p, NULL, off, edge - off);
		len -= edge - off;
		off = edge;
	}
	step(OP_WRITE, p, NULL, off, len);
}

/* Write len bytes at off in pieces of at most WR_MAX. */
static void write_range(const char *p, uint64_t off, uint64_t len)
{
	while (len) {
		uint64_t k = len < WR_MAX ? len : WR_MAX;
		wr(p, off, k);
		off += k;
		len -= k;
	}
}

/* Fill a new file with len bytes: sometimes in two unequal writes. */
static void fill_file(const char *p, uint64_t len)
{
	if (len > 1 && len <= WR_MAX && rnd_below(3) == 0) {
		uint64_t a = 1 + rnd_below(len - 1);
		wr(p, 0, a);
		wr(p, a, len - a);
		return;
	}
	write_range(p, 0, len);
}

/* A write of 1..WR_MAX bytes somewhere in or just past the file. */
static void random_write(const char *p)
{
	size_t size = msize(p);
	uint64_t off, len;
	if (rnd_below(3) == 0) {
		off = 4096 * rnd_below(size / 4096 + 2);
		len = 4096 * (1 + rnd_below(WR_MAX / 4096));
	} else {
		off = rnd_below(size + 4096);
		len = 1 + rnd_below(WR_MAX);
	}
	if (off + len > FILE_CAP) {
		off = rnd_below(FILE_CAP - WR_MAX);
		len = 1 + rnd_below(WR_MAX);
	}
	wr(p, off, len);
}

static uint64_t random_size(const char *p)
{
	size_t size = msize(p);
	switch (rnd_below(5)) {
	case 0:
		return 0;
	case 1:
		return rnd_below(4096);
	case 2:
		return size > 0 ? size - rnd_below(size < 5000 ? size : 5000) : 100;
	case 3:
		return size + 1 + rnd_below(10000);
	default:
		return rnd_below(150000);
	}
}

/* Set or replace xattr `name` on p with a value that keeps the inode
 * within the budget; false if it cannot. */
static bool set_xattr(const char *p, const char *name)
{
	int id = lookup(&g_m, p);
	struct xset *xs = &g_m.in[id].xs;
	struct xat *x = xset_find(xs, name);
	size_t used = xset_bytes(xs) - (x ? 3 + strlen(name) + x->len : 0);
	size_t need = 3 + strlen(name);
	if (used + need > XATTR_BUDGET)
		return false;
	size_t room = XATTR_BUDGET - used - need;
	size_t len = rnd_below(10) == 0 ? 0 : 1 + rnd_below(900);
	if (len > room)
		len = room;
	step(OP_SETX, p, name, len, 0);
	return true;
}

static bool remove_some_xattr(const char *p)
{
	int id = lookup(&g_m, p);
	struct xset *xs = &g_m.in[id].xs;
	if (!xs->n)
		return false;
	char *name = xstrdup(xs->v[rnd_below(xs->n)].name);
	step(OP_RMX, p, name, 0, 0);
	free(name);
	return true;
}

static void wl_create(unsigned scale)
{
	unsigned n = 40 * scale;
	for (unsigned i = 0; i < n; i++) {
		char *p = xasprintf("c%03u", i);
		step(OP_CREATE, p, NULL, 0, 0);
		fill_file(p, 1 + rnd_below(40000));
		if (i % 3 == 2)
			step(OP_FSYNC, p, NULL, 0, 0);
		if (i % 10 == 9)
			step(OP_FSYNC, ".", NULL, 0, 0);
		free(p);
	}
	step(OP_FSYNC, ".", NULL, 0, 0);
}

static void wl_rename_over(unsigned scale)
{
	char t[8][8];
	for (unsigned i = 0; i < 8; i++) {
		snprintf(t[i], sizeof(t[i]), "t%u", i);
		step(OP_CREATE, t[i], NULL, 0, 0);
		fill_file(t[i], 1 + rnd_below(12000));
	}
	step(OP_FSYNC, ".", NULL, 0, 0);
	for (unsigned it = 0; it < 40 * scale; it++) {
		unsigned i = (unsigned)rnd_below(8);
		char *tmp = xasprintf("tmp%u", it);
		step(OP_CREATE, tmp, NULL, 0, 0);
		fill_file(tmp, 1 + rnd_below(20000));
		if (rnd_below(2))
			step(OP_FSYNC, tmp, NULL, 0, 0);
		step(OP_RENAME, tmp, t[i], 0, 0);
		free(tmp);
		if (rnd_below(5) == 0) {
			unsigned j = (unsigned)rnd_below(8);
			if (j != i && lookup(&g_m, t[i]) >= 0 && lookup(&g_m, t[j]) >= 0)
				step(OP_RENAME, t[i], t[j], 0, 0);
		}
		if (it % 5 == 4)
			step(OP_FSYNC, ".", NULL, 0, 0);
	}
	step(OP_FSYNC, ".", NULL, 0, 0);
}

static void wl_unlink(unsigned scale)
{
	unsigned n = 30 * scale;
	char **names = xmalloc(n * sizeof(*names));
	step(OP_MKDIR, "u", NULL, 0, 0);
	for (unsigned i = 0; i < n; i++) {
		names[i] = i % 4 == 0 ? xasprintf("u/f%03u", i) : xasprintf("f%03u", i);
		step(OP_CREATE, names[i], NULL, 0, 0);
		fill_file(names[i], 1 + rnd_below(20000));
	}
	step(OP_FSYNC, ".", NULL, 0, 0);
	for (unsigned i = n; i > 1; i--) {                  /* shuffle */
		unsigned j = (unsigned)rnd_below(i);
		char *tmp = names[i - 1];
		names[i - 1] = names[j];
		names[j] = tmp;
	}
	for (unsigned i = 0; i < n; i++) {
		step(rnd_below(5) == 0 ? OP_OUNLINK : OP_UNLINK, names[i], NULL, 0, 0);
		if (rnd_below(6) == 0)
			step(OP_FSYNC, rnd_below(2) ? "." : "u", NULL, 0, 0);
		free(names[i]);
	}
	free(names);
	step(OP_RMDIR, "u", NULL, 0, 0);
	step(OP_FSYNC, ".", NULL, 0, 0);
}

static void wl_overwrite(unsigned scale)
{
	step(OP_CREATE, "big", NULL, 0, 0);
	write_range("big", 0, 256 * 1024 - 4096);
	step(OP_CREATE, "small", NULL, 0, 0);
	write_range("small", 0, 5000);
	step(OP_FSYNC, ".", NULL, 0, 0);
	for (unsigned it = 0; it < 60 * scale; it++) {
		const char *p = rnd_below(5) == 0 ? "small" : "big";
		random_write(p);
		if (rnd_below(4) == 0)
			step(OP_FSYNC, p, NULL, 0, 0);
	}
	step(OP_FSYNC, "big", NULL, 0, 0);
}

/* Overwrites of 64 to 128 KiB (moved to new blocks under data=undo,
 * fs/file.c F6), sometimes starting inside a page, mixed with small
 * writes in place and fsyncs. */
static void wl_relocate(unsigned scale)
{
	step(OP_CREATE, "big", NULL, 0, 0);
	write_range("big", 0, FILE_CAP);
	step(OP_FSYNC, ".", NULL, 0, 0);
	for (unsigned it = 0; it < 40 * scale; it++) {
		uint64_t c = rnd_below(10);
		if (c < 6) {
			uint64_t len = 4096 * (16 + rnd_below(17));
			uint64_t off = 4096 * rnd_below((FILE_CAP - len) / 4096);
			if (rnd_below(3) == 0)
				off += 1 + rnd_below(4095);
			wr("big", off, len);
		} else if (c < 8) {
			random_write("big");
		} else {
			step(OP_FSYNC, "big", NULL, 0, 0);
		}
	}
	step(OP_FSYNC, "big", NULL, 0, 0);
}

static void wl_truncate(unsigned scale)
{
	char r[6][8];
	for (unsigned i = 0; i < 6; i++) {
		snprintf(r[i], sizeof(r[i]), "r%u", i);
		step(OP_CREATE, r[i], NULL, 0, 0);
		write_range(r[i], 0, rnd_below(100000));
	}
	step(OP_FSYNC, ".", NULL, 0, 0);
	for (unsigned it = 0; it < 60 * scale; it++) {
		const char *p = r[rnd_below(6)];
		uint64_t c = rnd_below(10);
		if (c < 4)
			step(OP_TRUNC, p, NULL, random_size(p), 0);
		else if (c < 8)
			random_write(p);
		else
			step(OP_FSYNC, p, NULL, 0, 0);
	}
	step(OP_FSYNC, ".", NULL, 0, 0);
}

/* A directory that may receive a subdirectory (depth limit). */
static const char *pick_parent(unsigned maxdepth)
{
	for (int tries = 0; tries < 20; tries++) {
		const char *d = pick(T_DIR, NULL, true);
		if (d && depth(d) < maxdepth)
			return d;
	}
	return ".";
}

static void rename_some_dir(void)
{
	const char *d = pick(T_DIR, NULL, false);
	if (!d)
		return;
	char *src = xstrdup(d);
	for (int tries = 0; tries < 20; tries++) {
		const char *np = pick(T_DIR, NULL, true);
		if (!np || strcmp(np, src) == 0 || is_under(np, src) || depth(np) >= 4)
			continue;
		char *par = xstrdup(np);
		char *dst = new_name(par, "d");
		step(OP_RENAME, src, dst, 0, 0);
		free(dst);
		free(par);
		break;
	}
	free(src);
}

static void rmdir_some_empty(void)
{
	for (int tries = 0; tries < 20; tries++) {
		const char *d = pick(T_DIR, NULL, false);
		if (!d)
			return;
		if (dir_empty(&g_m, d)) {
			char *p = xstrdup(d);
			step(OP_RMDIR, p, NULL, 0, 0);
			free(p);
			return;
		}
	}
}

static void create_in(const char *dir, uint64_t maxlen)
{
	char *d = xstrdup(dir);
	char *p = new_name(d, "f");
	step(OP_CREATE, p, NULL, 0, 0);
	fill_file(p, 1 + rnd_below(maxlen));
	free(p);
	free(d);
}

static void wl_mkdir_tree(unsigned scale)
{
	for (unsigned i = 0; i < 12 * scale; i++) {
		char *par = xstrdup(pick_parent(4));
		char *p = new_name(par, "d");
		step(OP_MKDIR, p, NULL, 0, 0);
		if (rnd_below(2))
			create_in(p, 6000);
		free(p);
		free(par);
	}
	step(OP_FSYNC, ".", NULL, 0, 0);
	for (unsigned it = 0; it < 40 * scale; it++) {
		uint64_t c = rnd_below(100);
		if (c < 30) {
			char *par = xstrdup(pick_parent(5));
			char *p = new_name(par, "d");
			step(OP_MKDIR, p, NULL, 0, 0);
			free(p);
			free(par);
		} else if (c < 55) {
			create_in(pick(T_DIR, NULL, true), 6000);
		} else if (c < 75) {
			rename_some_dir();
		} else if (c < 85) {
			rmdir_some_empty();
		} else if (c < 90) {
			const char *f = pick(T_FILE, NULL, false);
			if (f) {
				char *p = xstrdup(f);
				step(OP_UNLINK, p, NULL, 0, 0);
				free(p);
			}
		} else {
			char *d = xstrdup(pick(T_DIR, NULL, true));
			step(OP_FSYNC, d, NULL, 0, 0);
			free(d);
		}
	}
	step(OP_FSYNC, ".", NULL, 0, 0);
}

static void wl_hardlinks(unsigned scale)
{
	step(OP_MKDIR, "h", NULL, 0, 0);
	for (unsigned i = 0; i < 6; i++)
		create_in(".", 9000);
	step(OP_FSYNC, ".", NULL, 0, 0);
	for (unsigned it = 0; it < 50 * scale; it++) {
		uint64_t c = rnd_below(10);
		const char *f = pick(T_FILE, NULL, false);
		char *a = f ? xstrdup(f) : NULL;
		if (!a) {
			create_in(".", 9000);
			continue;
		}
		if (c < 3) {
			char *b = new_name(rnd_below(2) ? "." : "h", "l");
			step(OP_LINK, a, b, 0, 0);
			free(b);
		} else if (c < 5) {
			step(OP_UNLINK, a, NULL, 0, 0);
		} else if (c == 5) {
			const char *g = pick(T_FILE, NULL, false);
			if (g && strcmp(g, a) != 0) {
				char *b = xstrdup(g);
				step(OP_RENAME, a, b, 0, 0);
				free(b);
			}
		} else if (c == 6) {
			char *b = new_name(rnd_below(2) ? "." : "h", "r");
			step(OP_RENAME, a, b, 0, 0);
			free(b);
		} else if (c == 7) {
			random_write(a);
		} else if (c == 8) {
			create_in(rnd_below(2) ? "." : "h", 9000);
		} else {
			step(OP_FSYNC, rnd_below(2) ? a : "h", NULL, 0, 0);
		}
		free(a);
	}
	step(OP_FSYNC, ".", NULL, 0, 0);
}

static void wl_xattrs(unsigned scale)
{
	static const char *const targets[] = { "x0", "x1", "x2", "x3", "x4", "xd" };
	step(OP_MKDIR, "xd", NULL, 0, 0);
	for (unsigned i = 0; i < 5; i++) {
		step(OP_CREATE, targets[i], NULL, 0, 0);
		write_range(targets[i], 0, 100);
	}
	step(OP_FSYNC, ".", NULL, 0, 0);
	for (unsigned it = 0; it < 60 * scale; it++) {
		const char *p = targets[rnd_below(6)];
		uint64_t c = rnd_below(10);
		char name[32];
		snprintf(name, sizeof(name), "user.a%u", (unsigned)rnd_below(6));
		if (c < 6) {
			if (!set_xattr(p, name))
				remove_some_xattr(p);
		} else if (c < 8) {
			if (!remove_some_xattr(p))
				set_xattr(p, name);
		} else if (c == 8 && strcmp(p, "xd") != 0) {
			random_write(p);
		} else {
			step(OP_FSYNC, p, NULL, 0, 0);
		}
	}
	step(OP_FSYNC, ".", NULL, 0, 0);
}

static void wl_mixed(unsigned scale)
{
	step(OP_MKDIR, "m0", NULL, 0, 0);
	step(OP_MKDIR, "m1", NULL, 0, 0);
	while (!out_of_budget()) {
		size_t files = count_type(T_FILE), dirs = count_type(T_DIR);
		uint64_t c = rnd_below(100);
		const char *f = pick(T_FILE, NULL, false);
		char *a = f ? xstrdup(f) : NULL;

		if (c < 18 || !a) {
			if (files < 40)
				create_in(pick(T_DIR, NULL, true), 30000);
			else if (a)
				random_write(a);
		} else if (c < 38) {
			random_write(a);
		} else if (c < 44) {
			step(OP_TRUNC, a, NULL, random_size(a), 0);
		} else if (c < 50) {
			step(OP_UNLINK, a, NULL, 0, 0);
		} else if (c < 53) {
			step(OP_OUNLINK, a, NULL, 0, 0);
		} else if (c < 60) {
			const char *g = rnd_below(2) ? pick(T_FILE, NULL, false) : NULL;
			char *b = g ? xstrdup(g) : new_name(pick(T_DIR, NULL, true), "f");
			if (strcmp(a, b) != 0)
				step(OP_RENAME, a, b, 0, 0);
			free(b);
		} else if (c < 64) {
			if (files < 40) {
				char *b = new_name(pick(T_DIR, NULL, true), "l");
				step(OP_LINK, a, b, 0, 0);
				free(b);
			}
		} else if (c < 68) {
			if (dirs < 10) {
				char *par = xstrdup(pick_parent(3));
				char *p = new_name(par, "d");
				step(OP_MKDIR, p, NULL, 0, 0);
				free(p);
				free(par);
			}
		} else if (c < 71) {
			rmdir_some_empty();
		} else if (c < 74) {
			rename_some_dir();
		} else if (c < 84) {
			char name[32];
			snprintf(name, sizeof(name), "user.m%u", (unsigned)rnd_below(4));
			const char *t = rnd_below(4) == 0 ? pick(T_DIR, NULL, false) : NULL;
			char *p = xstrdup(t ? t : a);
			if (!set_xattr(p, name))
				remove_some_xattr(p);
			free(p);
		} else if (c < 88) {
			remove_some_xattr(a);
		} else {
			const char *t = rnd_below(3) == 0 ? pick(T_DIR, NULL, true) : a;
			char *p = xstrdup(t);
			step(OP_FSYNC, p, NULL, 0, 0);
			free(p);
		}
		free(a);
	}
	(void)scale;
	step(OP_FSYNC, ".", NULL, 0, 0);
}

static const struct {
	const char *name;
	void (*fn)(unsigned scale);
} workloads[] = {
	{ "create", wl_create },
	{ "rename-over", wl_rename_over },
	{ "unlink", wl_unlink },
	{ "overwrite", wl_overwrite },
	{ "relocate", wl_relocate },
	{ "truncate", wl_truncate },
	{ "mkdir-tree", wl_mkdir_tree },
	{ "hardlinks", wl_hardlinks },
	{ "xattrs", wl_xattrs },
	{ "mixed", wl_mixed },
};

static int find_workload(const char *name)
{
	for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
		if (strcmp(workloads[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int cmd_run(const char *wl, const char *dir, const char *logpath, unsigned scale,
		   uint64_t max_ops, unsigned seconds)
{
	int w = find_workload(wl);
	if (w < 0)
		die(2, "unknown workload '%s'", wl);
	/* The log first: an empty log says no operation began. */
	g_logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	if (g_logfd < 0)
		die(1, "cannot create %s: %s", logpath, strerror(errno));
	g_dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (g_dfd < 0)
		die(gone_error(-errno) ? EXIT_GONE : 1, "cannot open %s: %s", dir, strerror(errno));
	DIR *d = fdopendir(dup(g_dfd));
	if (!d)
		die(gone_error(-errno) ? EXIT_GONE : 1, "cannot read %s: %s", dir, strerror(errno));
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			die(1, "%s is not empty (%s)", dir, de->d_name);
		errno = 0;
	}
	if (errno)
		die(gone_error(-errno) ? EXIT_GONE : 1, "cannot read %s: %s", dir, strerror(errno));
	closedir(d);
	model_init(&g_m);
	g_rng = g_seed;
	g_max_ops = max_ops;
	if (seconds)
		g_deadline_ns = now_ns() + (uint64_t)seconds * 1000000000ull;
	if (!g_quiet)
		printf("crashwl: workload %s seed %" PRIu64 "\n", wl, g_seed);
	fflush(stdout);
	logline("crashwl 1 workload %s seed %" PRIu64, wl, g_seed);
	workloads[w].fn(scale);
	logline("end %" PRIu64, g_nops);
	if (!g_quiet)
		printf("crashwl: workload %s seed %" PRIu64 ": %" PRIu64 " operations, "
		       "last durable %" PRIu64 "\n", wl, g_seed, g_nops, g_durable);
	close(g_logfd);
	close(g_dfd);
	model_free(&g_m);
	free(g_pick);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Verify.                                                              */
/* ------------------------------------------------------------------ */

struct oplog {
	char workload[64];
	uint64_t seed;
	struct op *ops;                 /* ops[1..n] */
	uint64_t n;                     /* B: last begun */
	uint64_t durable;               /* last "durable" mark */
	uint64_t need;                  /* D: the shortest acceptable prefix */
	uint64_t need_by;               /* the fsync that requires it */
	bool ended;
};

static bool parse_u64(const char *s, uint64_t *v)
{
	char *end;
	if (!s || !*s || *s == '-')
		return false;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*v = x;
	return true;
}

static void read_log(const char *path, struct oplog *lg)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	unsigned lineno = 0;

	memset(lg, 0, sizeof(*lg));
	if (!f)
		die(2, "cannot open the log %s: %s", path, strerror(errno));
	lg->ops = xmalloc(sizeof(*lg->ops));
	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (len == 0 || line[len - 1] != '\n') {
			/* A last line cut short: it was never acknowledged. */
			break;
		}
		line[len - 1] = '\0';
		char *save = NULL, *tok[8] = { 0 };
		int nt = 0;
		for (char *t = strtok_r(line, " ", &save); t && nt < 8; t = strtok_r(NULL, " ", &save))
			tok[nt++] = t;
		uint64_t n;
		if (nt == 0)
			continue;
		if (strcmp(tok[0], "crashwl") == 0 && nt == 6 && lineno == 1) {
			snprintf(lg->workload, sizeof(lg->workload), "%s", tok[3]);
			if (!parse_u64(tok[5], &lg->seed))
				die(2, "%s:%u: bad seed", path, lineno);
			continue;
		}
		if (lineno == 1)
			die(2, "%s: not a crashwl log", path);
		if (nt < 2 || !parse_u64(tok[1], &n))
			die(2, "%s:%u: bad line", path, lineno);
		if (strcmp(tok[0], "begin") == 0) {
			if (n != lg->n + 1 || nt < 4)
				die(2, "%s:%u: operation %" PRIu64 " out of sequence", path, lineno, n);
			int k;
			for (k = 0; k < OP_NKINDS; k++)
				if (strcmp(tok[2], op_names[k]) == 0)
					break;
			if (k == OP_NKINDS)
				die(2, "%s:%u: unknown operation %s", path, lineno, tok[2]);
			int need = 3 + op_args[k].nstr + op_args[k].nnum;
			if (nt != need)
				die(2, "%s:%u: wrong argument count", path, lineno);
			lg->ops = xrealloc(lg->ops, (n + 1) * sizeof(*lg->ops));
			struct op *o = &lg->ops[n];
			memset(o, 0, sizeof(*o));
			o->kind = (enum op_kind)k;
			o->n = n;
			o->a = xstrdup(tok[3]);
			int t = 4;
			if (op_args[k].nstr > 1)
				o->b = xstrdup(tok[t++]);
			if (op_args[k].nnum > 0 && !parse_u64(tok[t++], &o->x))
				die(2, "%s:%u: bad number", path, lineno);
			if (op_args[k].nnum > 1 && !parse_u64(tok[t++], &o->y))
				die(2, "%s:%u: bad number", path, lineno);
			if (o->kind == OP_WRITE && (o->y == 0 || o->y > WR_BIG_MAX))
				die(2, "%s:%u: bad write length", path, lineno);
			o->tino = -1;
			lg->n = n;
		} else if (strcmp(tok[0], "done") == 0) {
			long r;
			char *end;
			if (n != lg->n || nt != 3)
				die(2, "%s:%u: done without begin", path, lineno);
			r = strtol(tok[2], &end, 10);
			if (*end)
				die(2, "%s:%u: bad result", path, lineno);
			lg->ops[n].done = true;
			lg->ops[n].result = (int)r;
		} else if (strcmp(tok[0], "durable") == 0) {
			if (n > lg->n || n == 0 || lg->ops[n].kind != OP_FSYNC ||
			    !lg->ops[n].done || lg->ops[n].result != 0)
				die(2, "%s:%u: durable mark without a completed fsync", path, lineno);
			lg->durable = n;
			lg->ops[n].durable = true;
		} else if (strcmp(tok[0], "end") == 0) {
			lg->ended = true;
		} else {
			die(2, "%s:%u: unknown record %s", path, lineno, tok[0]);
		}
	}
	free(line);
	fclose(f);
	for (uint64_t i = 1; i < lg->n; i++)
		if (!lg->ops[i].done || lg->ops[i].result != 0)
			die(2, "%s: operation %" PRIu64 " failed but the run went on", path, i);
}

static void oplog_free(struct oplog *lg)
{
	for (uint64_t i = 1; i <= lg->n; i++) {
		free(lg->ops[i].a);
		free(lg->ops[i].b);
	}
	free(lg->ops);
}

static void read_xattrs(const char *full, struct ent *e)
{
	ssize_t n = llistxattr(full, NULL, 0);
	if (n < 0) {
		e->a_err = errno;
		return;
	}
	char *names = xmalloc((size_t)n + 1);
	n = llistxattr(full, names, (size_t)n);
	if (n < 0) {
		e->a_err = errno;
		free(names);
		return;
	}
	for (ssize_t off = 0; off < n; off += (ssize_t)strlen(names + off) + 1) {
		const char *nm = names + off;
		if (strncmp(nm, "user.", 5) != 0)
			continue;
		ssize_t vl = lgetxattr(full, nm, NULL, 0);
		if (vl < 0) {
			e->a_err = errno;
			break;
		}
		uint8_t *v = xmalloc((size_t)vl);
		ssize_t got = lgetxattr(full, nm, v, (size_t)vl);
		if (got != vl) {
			e->a_err = got < 0 ? errno : EIO;
			free(v);
			break;
		}
		if (xset_find(&e->a_xs, nm))
			e->a_err = EEXIST;      /* listed twice */
		xset_put(&e->a_xs, nm, v, (size_t)vl);
		free(v);
	}
	free(names);
}

static void read_file(const char *full, struct ent *e, uint64_t size)
{
	int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		e->a_err = errno;
		return;
	}
	if (size > (64ull << 20)) {
		e->a_err = EFBIG;
		close(fd);
		return;
	}
	e->a_data = xmalloc((size_t)size + 1);
	size_t got = 0;
	for (;;) {
		ssize_t r = pread(fd, e->a_data + got, (size_t)size + 1 - got, (off_t)got);
		if (r < 0) {
			e->a_err = errno;
			break;
		}
		if (r == 0)
			break;
		got += (size_t)r;
		if (got == size + 1) {
			e->a_err = EOVERFLOW;   /* more bytes than st_size */
			break;
		}
	}
	e->a_size = got;
	if (!e->a_err && got != size)
		e->a_err = ENODATA;             /* fewer bytes than st_size */
	close(fd);
}

static void stat_into(struct model *m, const char *root, const char *rel);

static void walk(struct model *m, const char *root, const char *rel)
{
	char *full = strcmp(rel, ".") == 0 ? xstrdup(root) : xasprintf("%s/%s", root, rel);
	DIR *d = opendir(full);
	if (!d) {
		int err = errno, i = ent_get(m, rel);
		m->e[i].a_err = err;
		free(full);
		return;
	}
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char *child = strcmp(rel, ".") == 0 ? xstrdup(de->d_name)
						    : xasprintf("%s/%s", rel, de->d_name);
		stat_into(m, root, child);
		free(child);
		errno = 0;
	}
	if (errno) {
		int err = errno, i = ent_get(m, rel);
		m->e[i].a_err = err;
	}
	closedir(d);
	free(full);
}

static void stat_into(struct model *m, const char *root, const char *rel)
{
	char *full = strcmp(rel, ".") == 0 ? xstrdup(root) : xasprintf("%s/%s", root, rel);
	int i = ent_get(m, rel);
	struct stat st;
	if (m->e[i].a_type != T_NONE) {
		m->e[i].a_err = EEXIST;         /* a directory listed it twice */
		free(full);
		return;
	}
	if (lstat(full, &st) != 0) {
		m->e[i].a_type = T_OTHER;
		m->e[i].a_err = errno;
		free(full);
		return;
	}
	struct ent *e = &m->e[i];
	e->a_type = S_ISREG(st.st_mode) ? T_FILE : S_ISDIR(st.st_mode) ? T_DIR : T_OTHER;
	e->a_ino = (uint64_t)st.st_ino;
	e->a_nlink = (uint32_t)st.st_nlink;
	e->a_size = (size_t)st.st_size;
	read_xattrs(full, e);
	if (e->a_type == T_FILE)
		read_file(full, &m->e[i], (uint64_t)st.st_size);
	free(full);
	if (m->e[i].a_type == T_DIR)
		walk(m, root, rel);
}

static bool ent_matches(const struct model *m, const struct ent *e)
{
	if (e->a_err)
		return false;
	if (e->mino < 0)
		return e->a_type == T_NONE;
	const struct minode *in = &m->in[e->mino];
	if (e->a_type != in->type || e->a_nlink != in->nlink)
		return false;
	if (!xset_equal(&in->xs, &e->a_xs))
		return false;
	if (in->type == T_FILE) {
		if (e->a_size != in->size)
			return false;
		if (!m->ordered && memcmp(e->a_data, in->data, in->size) != 0)
			return false;
	}
	return true;
}

static void refresh(struct model *m)
{
	for (size_t i = 0; i < m->ne; i++) {
		struct ent *e = &m->e[i];
		uint64_t ver = e->mino >= 0 ? m->in[e->mino].version : 0;
		if (e->c_valid && e->c_mino == e->mino && e->c_version == ver)
			continue;
		bool mm = !ent_matches(m, e);
		if (e->c_valid && e->mismatch)
			m->nmismatch--;
		if (mm)
			m->nmismatch++;
		e->mismatch = mm;
		e->c_valid = true;
		e->c_mino = e->mino;
		e->c_version = ver;
	}
}

/* Is byte v at offset o of model inode id explained, under data=ordered,
 * by an in-place write of an operation in (k, B]? */
static bool ordered_allowed(const struct oplog *lg, uint64_t k, int id, uint64_t o, uint8_t v)
{
	for (uint64_t j = k + 1; j <= lg->n; j++) {
		const struct op *op = &lg->ops[j];
		if (op->tino != id)
			continue;
		if (op->kind == OP_WRITE && o >= op->x && o < op->x + op->y &&
		    pattern_byte(op->n, o) == v)
			return true;
		/* ounlink writes to the file after unlinking it: in place
		 * while the unlink is not yet committed. */
		if (op->kind == OP_OUNLINK && o < OUNLINK_BYTES && pattern_byte(op->n, o) == v)
			return true;
		if (op->kind == OP_TRUNC && v == 0) {
			uint64_t lo = op->x < op->osize ? op->x : op->osize;
			uint64_t hi = (lo + 4095) / 4096 * 4096;
			if (o >= lo && o < hi)
				return true;
		}
	}
	return false;
}

/* The checks that are not incremental: inode identity across names and,
 * with data=ordered, the content.  Prints why when verbose. */
static bool final_check(struct model *m, const struct oplog *lg, uint64_t k, bool verbose)
{
	uint64_t *ext = calloc(m->nin, sizeof(*ext));
	int *first = xmalloc(m->nin * sizeof(*first));
	bool ok = true;
	if (!ext)
		die(2, "out of memory");
	for (size_t i = 0; i < m->nin; i++)
		first[i] = -1;
	for (size_t i = 0; i < m->ne; i++) {
		struct ent *e = &m->e[i];
		if (e->mino < 0)
			continue;
		if (first[e->mino] < 0) {
			first[e->mino] = (int)i;
			ext[e->mino] = e->a_ino;
		} else if (ext[e->mino] != e->a_ino) {
			if (verbose)
				printf("  %s and %s should be one inode (hard links) but are "
				       "inodes %" PRIu64 " and %" PRIu64 "\n",
				       m->e[first[e->mino]].path, e->path, ext[e->mino], e->a_ino);
			ok = false;
		}
	}
	for (size_t i = 0; i < m->nin && ok; i++) {
		if (first[i] < 0)
			continue;
		for (size_t j = i + 1; j < m->nin; j++) {
			if (first[j] >= 0 && ext[j] == ext[i]) {
				if (verbose)
					printf("  %s and %s should be different inodes but are both "
					       "inode %" PRIu64 "\n", m->e[first[i]].path,
					       m->e[first[j]].path, ext[i]);
				ok = false;
			}
		}
	}
	if (m->ordered) {
		for (size_t i = 0; i < m->nin; i++) {
			if (first[i] < 0 || m->in[i].type != T_FILE)
				continue;
			struct ent *e = &m->e[first[i]];
			const struct minode *in = &m->in[i];
			for (size_t o = 0; o < in->size; o++) {
				if (e->a_data[o] == in->data[o])
					continue;
				if (ordered_allowed(lg, k, (int)i, o, e->a_data[o]))
					continue;
				if (verbose)
					printf("  %s: byte %zu is 0x%02x; the model after operation %"
					       PRIu64 " has 0x%02x and no later in-place write explains it\n",
					       e->path, o, e->a_data[o], k, in->data[o]);
				ok = false;
				break;
			}
		}
	}
	free(ext);
	free(first);
	return ok;
}

/* Which operation wrote byte v at offset o of model inode id (-1: any
 * inode), among operations 1..upto?  0 if none. */
static uint64_t who_wrote(const struct oplog *lg, uint64_t upto, int id, uint64_t o,
			  const uint8_t *bytes, size_t avail)
{
	size_t want = avail < 8 ? avail : 8;
	for (uint64_t j = upto; j >= 1; j--) {
		const struct op *op = &lg->ops[j];
		uint64_t x = op->x, y = op->y;
		if (op->kind == OP_OUNLINK) {
			x = 0;
			y = OUNLINK_BYTES;
		} else if (op->kind != OP_WRITE) {
			continue;
		}
		if (id >= 0 && op->tino != id)
			continue;
		if (o < x || o + want > x + y)
			continue;
		size_t t;
		for (t = 0; t < want; t++)
			if (pattern_byte(op->n, o + t) != bytes[t])
				break;
		if (t == want)
			return j;
	}
	return 0;
}

static void describe_bytes(const struct oplog *lg, uint64_t upto, int id, uint64_t o,
			   const uint8_t *p, size_t avail, char *buf, size_t len)
{
	size_t z;
	for (z = 0; z < avail && z < 8 && p[z] == 0; z++)
		;
	if (z == (avail < 8 ? avail : 8)) {
		snprintf(buf, len, "zeros");
		return;
	}
	uint64_t j = who_wrote(lg, upto, id, o, p, avail);
	if (j) {
		snprintf(buf, len, "bytes of operation %" PRIu64, j);
		return;
	}
	j = who_wrote(lg, lg->n, -1, o, p, avail);
	if (j)
		snprintf(buf, len, "bytes of operation %" PRIu64 " (a write to %s)", j,
			 lg->ops[j].a);
	else
		snprintf(buf, len, "bytes no logged write produced");
}

static void describe_ent_model(const struct model *m, const struct ent *e, char *buf, size_t len)
{
	if (e->mino < 0) {
		snprintf(buf, len, "absent");
		return;
	}
	const struct minode *in = &m->in[e->mino];
	if (in->type == T_DIR)
		snprintf(buf, len, "directory, %u links, %zu xattrs", in->nlink, in->xs.n);
	else
		snprintf(buf, len, "file of %zu bytes, %u links, %zu xattrs", in->size,
			 in->nlink, in->xs.n);
}

static void describe_ent_found(const struct ent *e, char *buf, size_t len)
{
	if (e->a_err && e->a_type == T_NONE) {
		snprintf(buf, len, "unreadable: %s", strerror(e->a_err));
		return;
	}
	const char *err = e->a_err ? strerror(e->a_err) : NULL;
	switch (e->a_type) {
	case T_NONE:
		snprintf(buf, len, "absent");
		break;
	case T_DIR:
		snprintf(buf, len, "directory, %u links, %zu xattrs%s%s", e->a_nlink, e->a_xs.n,
			 err ? "; error: " : "", err ? err : "");
		break;
	case T_FILE:
		snprintf(buf, len, "file of %zu bytes, %u links, %zu xattrs%s%s", e->a_size,
			 e->a_nlink, e->a_xs.n, err ? "; error: " : "", err ? err : "");
		break;
	default:
		snprintf(buf, len, "not a file or directory%s%s", err ? "; error: " : "",
			 err ? err : "");
		break;
	}
}

static void report_ent(const struct model *m, const struct oplog *lg, uint64_t k,
		       const struct ent *e)
{
	char want[200], got[200];
	describe_ent_model(m, e, want, sizeof(want));
	describe_ent_found(e, got, sizeof(got));
	printf("  %s: expected %s; found %s\n", e->path, want, got);
	if (e->mino < 0 || e->a_type == T_NONE)
		return;
	const struct minode *in = &m->in[e->mino];
	if (!xset_equal(&in->xs, &e->a_xs)) {
		for (size_t i = 0; i < in->xs.n; i++) {
			struct xat *x = xset_find((struct xset *)&e->a_xs, in->xs.v[i].name);
			if (!x)
				printf("    xattr %s: missing\n", in->xs.v[i].name);
			else if (x->len != in->xs.v[i].len ||
				 memcmp(x->val, in->xs.v[i].val, x->len) != 0)
				printf("    xattr %s: %zu bytes, expected %zu bytes%s\n",
				       in->xs.v[i].name, x->len, in->xs.v[i].len,
				       x->len == in->xs.v[i].len ? " (other content)" : "");
		}
		for (size_t i = 0; i < e->a_xs.n; i++)
			if (!xset_find((struct xset *)&in->xs, e->a_xs.v[i].name))
				printf("    xattr %s: not expected\n", e->a_xs.v[i].name);
	}
	if (in->type != T_FILE || e->a_type != T_FILE || !e->a_data)
		return;
	size_t n = in->size < e->a_size ? in->size : e->a_size, shown = 0;
	for (size_t o = 0; o < n && shown < 4;) {
		if (e->a_data[o] == in->data[o]) {
			o++;
			continue;
		}
		size_t end = o;
		while (end < n && e->a_data[end] != in->data[end])
			end++;
		char w[160], g[160];
		describe_bytes(lg, k, e->mino, o, in->data + o, n - o, w, sizeof(w));
		describe_bytes(lg, lg->n, e->mino, o, e->a_data + o, n - o, g, sizeof(g));
		printf("    bytes [%zu, %zu) differ: expected %s, found %s\n", o, end, w, g);
		shown++;
		o = end;
	}
}

/* Target inodes and sizes before each operation (for data=ordered and
 * for the messages), and D: a completed fsync of P needs every operation
 * up to the last one that changed P's inode (for a directory: also its
 * entries), and prefixes include everything before that. */
static void prepass(struct oplog *lg)
{
	struct model pm;
	model_init(&pm);
	for (uint64_t j = 1; j <= lg->n; j++) {
		struct op *o = &lg->ops[j];
		o->tino = lookup(&pm, o->a);
		o->osize = o->tino >= 0 ? pm.in[o->tino].size : 0;
		if (o->durable && o->tino >= 0 && pm.in[o->tino].last_op > lg->need) {
			lg->need = pm.in[o->tino].last_op;
			lg->need_by = j;
		}
		int r = model_apply(&pm, o);
		if (r != 0 && (j < lg->n || o->result == 0))
			die(2, "log: operation %" PRIu64 " (%s %s) cannot apply to the model: %s",
			    j, op_names[o->kind], o->a, strerror(-r));
	}
	model_free(&pm);
}

static int cmd_verify(const char *wl, const char *dir, const char *logpath, bool ordered,
		      bool complete)
{
	struct oplog lg;
	struct model m;
	read_log(logpath, &lg);
	if (lg.workload[0] && strcmp(lg.workload, wl) != 0)
		die(2, "the log is of workload %s, not %s", lg.workload, wl);
	if (!lg.workload[0] && lg.n)
		die(2, "the log has no header line");
	g_seed = lg.seed;
	prepass(&lg);
	if (complete) {
		/* A clean unmount after the run: everything is on disk. */
		lg.need = lg.n;
		lg.need_by = 0;
	}

	model_init(&m);
	m.ordered = ordered;
	stat_into(&m, dir, ".");
	m.compare = true;

	uint64_t B = lg.n, D = lg.need, best = D;
	size_t best_mm = SIZE_MAX;
	bool found = false;
	uint64_t k;
	for (k = 0; k <= B; k++) {
		if (k > 0) {
			int r = model_apply(&m, &lg.ops[k]);
			if (r != 0 && k < B)
				die(2, "log: operation %" PRIu64 " cannot apply: %s", k, strerror(-r));
		}
		refresh(&m);
		if (k < D)
			continue;
		if (m.nmismatch == 0 && final_check(&m, &lg, k, false)) {
			found = true;
			break;
		}
		if (m.nmismatch <= best_mm) {
			best_mm = m.nmismatch;
			best = k;
		}
	}
	if (found) {
		if (!g_quiet)
			printf("crashwl verify %s: OK: %s matches the state after operation %" PRIu64
			       " (fsync'd up to %" PRIu64 ", last begun %" PRIu64 "%s)\n", wl, dir, k,
			       D, B, lg.ended ? ", run completed" : "");
		model_free(&m);
		oplog_free(&lg);
		return 0;
	}

	printf("crashwl verify %s: FAILED: %s matches no state between operation %" PRIu64
	       " (fsync'd%s) and %" PRIu64 " (last begun); seed %" PRIu64 "\n", wl, dir, D,
	       complete ? ": the run was unmounted cleanly" : "", B, lg.seed);
	if (lg.need_by)
		printf("operation %" PRIu64 " (fsync %s) needs every operation up to %" PRIu64 "\n",
		       lg.need_by, lg.ops[lg.need_by].a, D);
	/* Rebuild the closest state and show how it differs. */
	model_free(&m);
	model_init(&m);
	m.ordered = ordered;
	stat_into(&m, dir, ".");
	for (k = 1; k <= best; k++)
		model_apply(&m, &lg.ops[k]);
	refresh(&m);
	printf("closest: the state after operation %" PRIu64 ", %zu paths differ:\n", best,
	       m.nmismatch);
	size_t shown = 0;
	for (size_t i = 0; i < m.ne && shown < 30; i++) {
		if (m.e[i].mismatch) {
			report_ent(&m, &lg, best, &m.e[i]);
			shown++;
		}
	}
	if (m.nmismatch == 0)
		final_check(&m, &lg, best, true);
	uint64_t from = D > 5 ? D - 5 : 1;
	if (B > from + 40)
		from = B - 40;
	printf("operations %" PRIu64 "..%" PRIu64 ":\n", from, B);
	for (uint64_t j = from; j <= B; j++) {
		char desc[600];
		op_format(&lg.ops[j], desc, sizeof(desc));
		printf("  %" PRIu64 ": %s -> %s%s\n", j, desc,
		       lg.ops[j].done ? (lg.ops[j].result ? strerror(-lg.ops[j].result) : "ok")
				      : "no reply",
		       lg.ops[j].durable ? " (durable)" : "");
	}
	model_free(&m);
	oplog_free(&lg);
	return 1;
}

/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: crashwl [-s SEED] [-n SCALE] [-N OPS] [-t SECONDS] [-q] WORKLOAD DIR LOGFILE\n"
		"       crashwl verify [-m undo|ordered] [-c] [-q] WORKLOAD DIR LOGFILE\n"
		"workloads: create rename-over unlink overwrite relocate truncate mkdir-tree hardlinks\n"
		"           xattrs mixed\n"
		"-N and -t bound the mixed workload (default -N 300*SCALE; -N 0 -t 0: until\n"
		"an operation fails).  verify -c: the run was unmounted cleanly, so only the\n"
		"state after its last operation is right.\n"
		"Exit: 0 done/verified, 1 failure, 2 usage or bad log,\n"
		"3 stopped because the file system is gone (EIO, ENOTCONN...).\n");
}

static bool parse_num(const char *s, uint64_t *v)
{
	char *end;
	if (!*s || *s == '-')
		return false;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 0);
	if (errno || *end)
		return false;
	*v = x;
	return true;
}

int main(int argc, char **argv)
{
	bool verify = argc > 1 && strcmp(argv[1], "verify") == 0;
	bool ordered = false, complete = false, have_seed = false, have_max = false;
	uint64_t scale = 1, max_ops = 0, seconds = 0, v;
	int c;

	if (verify) {
		argv++;
		argc--;
	}
	while ((c = getopt(argc, argv, verify ? "m:cqh" : "s:n:N:t:qh")) != -1) {
		switch (c) {
		case 'c':
			complete = true;
			break;
		case 'm':
			if (strcmp(optarg, "undo") == 0)
				ordered = false;
			else if (strcmp(optarg, "ordered") == 0)
				ordered = true;
			else
				die(2, "-m takes undo or ordered");
			break;
		case 's':
			if (!parse_num(optarg, &g_seed))
				die(2, "bad seed '%s'", optarg);
			have_seed = true;
			break;
		case 'n':
			if (!parse_num(optarg, &v) || v == 0 || v > 1000)
				die(2, "bad scale '%s' (1..1000)", optarg);
			scale = v;
			break;
		case 'N':
			if (!parse_num(optarg, &max_ops))
				die(2, "bad operation count '%s'", optarg);
			have_max = true;
			break;
		case 't':
			if (!parse_num(optarg, &seconds) || seconds > 86400 * 7)
				die(2, "bad time '%s'", optarg);
			break;
		case 'q':
			g_quiet = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 3) {
		usage(stderr);
		return 2;
	}
	const char *wl = argv[optind], *dir = argv[optind + 1], *logpath = argv[optind + 2];
	if (find_workload(wl) < 0)
		die(2, "unknown workload '%s'", wl);
	if (verify)
		return cmd_verify(wl, dir, logpath, ordered, complete);
	if (!have_seed)
		g_seed = mix64((uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ now_ns());
	if (!have_max)
		max_ops = 300 * scale;
	return cmd_run(wl, dir, logpath, (unsigned)scale, max_ops, (unsigned)seconds);
}
