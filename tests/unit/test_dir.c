/*
 * test_dir.c -- unit tests of fs/dir.c and fs/xattr.c on a freshly
 * formatted image: add, lookup, remove, set; 100,000 entries looked up,
 * iterated exactly once in cookie order (in one pass and in many) and
 * removed; forced hash collisions through the keyed variants of
 * fs/dir_internal.h; persistence across unmount and mount; xattr set,
 * get, list, remove, flags, name checks, ERANGE and ENOSPC.
 *
 * Every call into the filesystem runs as the FUSE layer runs it: under
 * fs->lock, between tx_op_begin and tx_op_end.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <cmocka.h>

#include "pfs_fs.h"
#include "pfs_mkfs.h"
#include "pfs_util.h"
#include "../../fs/dir_internal.h"

#define TEST_BLOCKS     (64u * 1024u)   /* 256 MiB, sparse */
#define MANY            100000u

struct fixture {
	char dir[PATH_MAX - 16];
	char img[PATH_MAX];
	char keyfile[PATH_MAX];
	struct pfs_opts opts;
	struct pfs_fs *fs;
	struct inode *root;
	struct inode *dp;               /* the directory under test */
	uint64_t ino;
	uint64_t free_start;            /* free blocks with dp empty */
};

/* Run EXPR as one request: fs->lock held, inside an operation. */
#define OP(fs, expr) ({                                 \
	pthread_mutex_lock(&(fs)->lock);                \
	tx_op_begin(fs);                                \
	__typeof__(expr) op_ret_ = (expr);              \
	tx_op_end(fs);                                  \
	pthread_mutex_unlock(&(fs)->lock);              \
	op_ret_;                                        \
})

/* Free blocks after a commit: blocks freed by a transaction become free
 * when it commits. */
static uint64_t free_blocks(struct pfs_fs *fs)
{
	uint64_t n;
	int err;

	pthread_mutex_lock(&fs->lock);
	err = tx_commit(fs);
	n = fs->free_blocks;
	pthread_mutex_unlock(&fs->lock);
	assert_int_equal(err, 0);
	return n;
}

static int mount_fs(struct fixture *f)
{
	int err = fs_mount(&f->opts, &f->fs);

	if (err)
		return err;
	pthread_mutex_lock(&f->fs->lock);
	err = inode_get(f->fs, PFS_ROOT_INO, &f->root);
	if (!err && f->ino)
		err = inode_get(f->fs, f->ino, &f->dp);
	pthread_mutex_unlock(&f->fs->lock);
	return err;
}

static int unmount_fs(struct fixture *f)
{
	pthread_mutex_lock(&f->fs->lock);
	inode_put(f->fs, f->dp);
	inode_put(f->fs, f->root);
	pthread_mutex_unlock(&f->fs->lock);
	f->dp = f->root = NULL;
	int err = fs_unmount(f->fs);
	f->fs = NULL;
	return err;
}

static void remount(struct fixture *f)
{
	assert_int_equal(unmount_fs(f), 0);
	assert_int_equal(mount_fs(f), 0);
}

static int new_dir(struct pfs_fs *fs, struct inode *root, const char *name,
		   struct inode **out)
{
	int err = inode_new(fs, root, S_IFDIR | 0755, 0, 0, 0, out);

	if (err)
		return err;
	return dir_add(fs, root, name, strlen(name), (*out)->ino, DT_DIR);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	uint8_t key[PFS_KEY_BYTES];
	struct pfs_format_params p;
	struct pfs_super sb;
	const char *tmp = getenv("TMPDIR");
	const char *why = NULL;
	int fd, err;

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/pfs-dir-XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir))
		goto free_f;
	snprintf(f->img, sizeof(f->img), "%s/vol.img", f->dir);
	snprintf(f->keyfile, sizeof(f->keyfile), "%s/vol.key", f->dir);
	fd = open(f->img, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		goto remove_dir;
	memset(&p, 0, sizeof(p));
	key_generate(key);
	err = format_write(fd, TEST_BLOCKS, &p, key, &sb, &why);
	close(fd);
	if (err) {
		fprintf(stderr, "format_write: %s (%d)\n", why ? why : "?", err);
		goto remove_img;
	}
	if (key_file_write(f->keyfile, sb.uuid, key, 0))
		goto remove_img;
	pfs_opts_defaults(&f->opts);
	f->opts.coord = "none";       /* the single-node logic, without cluster locks */
	f->opts.device = f->img;
	f->opts.keyfile = f->keyfile;
	if (mount_fs(f))
		goto remove_key;
	err = OP(f->fs, new_dir(f->fs, f->root, "d", &f->dp));
	if (err)
		goto unmount;
	f->ino = f->dp->ino;
	f->free_start = free_blocks(f->fs);
	*state = f;
	return 0;

unmount:
	unmount_fs(f);
remove_key:
	unlink(f->keyfile);
remove_img:
	unlink(f->img);
remove_dir:
	rmdir(f->dir);
free_f:
	free(f);
	return -1;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int err = 0;

	if (f->fs)
		err = unmount_fs(f);
	unlink(f->keyfile);
	unlink(f->img);
	rmdir(f->dir);
	free(f);
	return err;
}

/* ---- helpers ---- */

static int add(struct fixture *f, const char *name, uint64_t ino)
{
	return OP(f->fs, dir_add(f->fs, f->dp, name, strlen(name), ino, DT_REG));
}

static int rm(struct fixture *f, const char *name)
{
	return OP(f->fs, dir_remove(f->fs, f->dp, name, strlen(name)));
}

static int lookup(struct fixture *f, const char *name, uint64_t *ino, uint8_t *type)
{
	return OP(f->fs, dir_lookup(f->fs, f->dp, name, strlen(name), ino, type));
}

static void expect_entry(struct fixture *f, const char *name, uint64_t eino)
{
	uint64_t ino = 0;
	uint8_t type = 0;

	assert_int_equal(lookup(f, name, &ino, &type), 0);
	assert_int_equal(ino, eino);
	assert_int_equal(type, DT_REG);
}

static void expect_size_invariant(struct fixture *f)
{
	uint64_t index_blocks = f->dp->blocks - (f->dp->xattr_blk ? 1 : 0);

	assert_int_equal(f->dp->size, index_blocks * PFS_BLOCK_SIZE);
}

/* What dir_iterate reported. */
struct seen {
	uint64_t n, max;
	char (*names)[PFS_NAME_MAX + 1];
	uint64_t *inos;
	uint64_t *next;
	uint64_t stop_after;            /* stop after this many, 0 = never */
	uint64_t in_call;
	bool bad;                       /* overflow or bad length seen */
};

static int seen_cb(void *arg, const char *name, size_t len, uint64_t ino,
		   uint8_t type, uint64_t next)
{
	struct seen *s = arg;

	/* No assertions here: the callback runs under fs->lock. */
	if (s->stop_after && s->in_call == s->stop_after)
		return 1;
	if (s->n >= s->max || strlen(name) != len || len > PFS_NAME_MAX) {
		s->bad = true;
		return 1;
	}
	memcpy(s->names[s->n], name, len + 1);
	s->inos[s->n] = ino;
	s->next[s->n] = next;
	s->n++;
	s->in_call++;
	return 0;
}

static void seen_init(struct seen *s, uint64_t max)
{
	memset(s, 0, sizeof(*s));
	s->max = max;
	s->names = calloc(max, sizeof(*s->names));
	s->inos = calloc(max, sizeof(*s->inos));
	s->next = calloc(max, sizeof(*s->next));
	assert_non_null(s->names);
	assert_non_null(s->inos);
	assert_non_null(s->next);
}

static void seen_free(struct seen *s)
{
	free(s->names);
	free(s->inos);
	free(s->next);
}

/* Iterate from cookie 0 to the end, in calls of at most chunk entries
 * (0: one call). */
static void iterate_all(struct fixture *f, struct seen *s, uint64_t chunk)
{
	uint64_t off = 0;

	s->stop_after = chunk;
	for (;;) {
		uint64_t before = s->n;

		s->in_call = 0;
		assert_int_equal(OP(f->fs, dir_iterate(f->fs, f->dp, off, seen_cb, s)), 0);
		assert_false(s->bad);
		if (s->n == before)
			break;
		off = s->next[s->n - 1];
		if (!chunk)
			break;
	}
}

static void many_name(char *buf, size_t size, uint32_t i)
{
	snprintf(buf, size, "entry-%06u-with-a-longer-name", i);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Check a full listing of entries named by many_name(0..n-1), inode
 * 1000 + i: ".", "..", then each entry once, cookies increasing. */
static void check_listing(struct fixture *f, const struct seen *s, uint32_t n)
{
	uint32_t *ids = malloc(n * sizeof(*ids));
	uint64_t i;

	assert_non_null(ids);
	assert_int_equal(s->n, n + 2);
	assert_string_equal(s->names[0], ".");
	assert_int_equal(s->inos[0], f->dp->ino);
	assert_int_equal(s->next[0], 1);
	assert_string_equal(s->names[1], "..");
	assert_int_equal(s->inos[1], f->root->ino);
	assert_int_equal(s->next[1], 2);
	for (i = 2; i < s->n; i++) {
		unsigned id;

		assert_int_equal(sscanf(s->names[i], "entry-%06u-", &id), 1);
		assert_int_equal(s->inos[i], 1000 + id);
		assert_true(s->next[i] > s->next[i - 1]);
		ids[i - 2] = id;
	}
	qsort(ids, n, sizeof(*ids), cmp_u32);
	for (i = 0; i < n; i++)
		assert_int_equal(ids[i], i);
	free(ids);
}

/* ---- directory tests ---- */

static void test_dir_basic(void **state)
{
	struct fixture *f = *state;
	char longname[PFS_NAME_MAX + 2];
	uint64_t ino;
	uint8_t type;
	struct seen s;

	assert_int_equal(OP(f->fs, dir_is_empty(f->fs, f->dp)), 1);
	assert_int_equal(f->dp->size, 0);
	assert_int_equal(lookup(f, "a", &ino, &type), -ENOENT);
	assert_int_equal(rm(f, "a"), -ENOENT);

	assert_int_equal(add(f, "a", 100), 0);
	assert_int_equal(add(f, "b", 101), 0);
	assert_int_equal(add(f, "a", 102), -EEXIST);
	assert_int_equal(add(f, ".", 102), -EEXIST);
	assert_int_equal(add(f, "..", 102), -EEXIST);
	assert_int_equal(add(f, "", 102), -EINVAL);
	assert_int_equal(add(f, "x/y", 102), -EINVAL);
	memset(longname, 'n', sizeof(longname));
	longname[PFS_NAME_MAX + 1] = '\0';
	assert_int_equal(add(f, longname, 102), -ENAMETOOLONG);
	assert_int_equal(lookup(f, longname, &ino, &type), -ENAMETOOLONG);
	longname[PFS_NAME_MAX] = '\0';
	assert_int_equal(add(f, longname, 103), 0);
	expect_entry(f, longname, 103);
	expect_entry(f, "a", 100);
	expect_entry(f, "b", 101);
	assert_int_equal(OP(f->fs, dir_is_empty(f->fs, f->dp)), 0);
	assert_int_not_equal(f->dp->tree_root, 0);
	assert_int_equal(f->dp->size, PFS_BLOCK_SIZE);
	expect_size_invariant(f);

	/* "." and ".." resolve without being stored. */
	assert_int_equal(lookup(f, ".", &ino, &type), 0);
	assert_int_equal(ino, f->dp->ino);
	assert_int_equal(lookup(f, "..", &ino, &type), 0);
	assert_int_equal(ino, f->root->ino);

	/* Repoint an entry (rename over it). */
	assert_int_equal(OP(f->fs, dir_set(f->fs, f->dp, "b", 1, 200, DT_DIR)), 0);
	assert_int_equal(lookup(f, "b", &ino, &type), 0);
	assert_int_equal(ino, 200);
	assert_int_equal(type, DT_DIR);
	assert_int_equal(OP(f->fs, dir_set(f->fs, f->dp, "zz", 2, 200, DT_DIR)), -ENOENT);

	/* Listing, then resuming from each cookie. */
	seen_init(&s, 16);
	iterate_all(f, &s, 0);
	assert_int_equal(s.n, 5);
	assert_string_equal(s.names[0], ".");
	assert_string_equal(s.names[1], "..");
	seen_free(&s);
	seen_init(&s, 16);
	iterate_all(f, &s, 1);
	assert_int_equal(s.n, 5);
	seen_free(&s);

	assert_int_equal(rm(f, "a"), 0);
	assert_int_equal(rm(f, "a"), -ENOENT);
	assert_int_equal(lookup(f, "a", &ino, &type), -ENOENT);
	assert_int_equal(rm(f, "."), -EINVAL);
	assert_int_equal(rm(f, "b"), 0);
	assert_int_equal(rm(f, longname), 0);
	assert_int_equal(OP(f->fs, dir_is_empty(f->fs, f->dp)), 1);
	assert_int_equal(f->dp->tree_root, 0);
	assert_int_equal(f->dp->blocks, 0);
	assert_int_equal(f->dp->size, 0);
	assert_int_equal(free_blocks(f->fs), f->free_start);
}

static void test_dir_many(void **state)
{
	struct fixture *f = *state;
	char name[64];
	struct seen s;
	uint32_t i;

	for (i = 0; i < MANY; i++) {
		many_name(name, sizeof(name), i);
		assert_int_equal(add(f, name, 1000 + i), 0);
	}
	expect_size_invariant(f);
	assert_true(f->dp->blocks > 100);
	for (i = 0; i < MANY; i++) {
		many_name(name, sizeof(name), i);
		expect_entry(f, name, 1000 + i);
	}
	many_name(name, sizeof(name), MANY);
	assert_int_equal(lookup(f, name, NULL, NULL), -ENOENT);

	/* One pass. */
	seen_init(&s, MANY + 2);
	iterate_all(f, &s, 0);
	check_listing(f, &s, MANY);
	seen_free(&s);
	/* Many calls, each resuming at the cookie the last one ended at. */
	seen_init(&s, MANY + 2);
	iterate_all(f, &s, 997);
	check_listing(f, &s, MANY);
	seen_free(&s);

	/* Everything survives a remount. */
	remount(f);
	for (i = 0; i < MANY; i += 7) {
		many_name(name, sizeof(name), i);
		expect_entry(f, name, 1000 + i);
	}

	for (i = 0; i < MANY; i++) {
		many_name(name, sizeof(name), i);
		assert_int_equal(rm(f, name), 0);
		if (i % 10000 == 0)
			expect_size_invariant(f);
	}
	assert_int_equal(OP(f->fs, dir_is_empty(f->fs, f->dp)), 1);
	assert_int_equal(f->dp->tree_root, 0);
	assert_int_equal(f->dp->blocks, 0);
	assert_int_equal(f->dp->size, 0);
	assert_int_equal(free_blocks(f->fs), f->free_start);
}

/* Names that share one key: enough of them to span several leaves. */
static void test_dir_collisions(void **state)
{
	struct fixture *f = *state;
	const uint64_t key = 0x123456789abull;
	const uint32_t n = 600;
	char name[32];
	uint64_t ino;
	uint8_t type;
	struct seen s;
	uint32_t i;

	/* Neighbours on both sides of the run. */
	assert_int_equal(OP(f->fs, dir_add_key(f->fs, f->dp, key - 1, "lo", 2, 7, DT_REG)), 0);
	assert_int_equal(OP(f->fs, dir_add_key(f->fs, f->dp, key + 1, "hi", 2, 8, DT_REG)), 0);
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "c%u", i);
		assert_int_equal(OP(f->fs, dir_add_key(f->fs, f->dp, key, name,
				strlen(name), 1000 + i, DT_REG)), 0);
	}
	assert_true(f->dp->blocks > 2);
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "c%u", i);
		assert_int_equal(OP(f->fs, dir_lookup_key(f->fs, f->dp, key, name,
				strlen(name), &ino, &type)), 0);
		assert_int_equal(ino, 1000 + i);
		assert_int_equal(OP(f->fs, dir_add_key(f->fs, f->dp, key, name,
				strlen(name), 1, DT_REG)), -EEXIST);
	}
	assert_int_equal(OP(f->fs, dir_lookup_key(f->fs, f->dp, key, "c600", 4,
						  &ino, &type)), -ENOENT);
	assert_int_equal(OP(f->fs, dir_lookup_key(f->fs, f->dp, key, "hi", 2,
						  &ino, &type)), -ENOENT);
	assert_int_equal(OP(f->fs, dir_lookup_key(f->fs, f->dp, key + 1, "hi", 2,
						  &ino, &type)), 0);
	assert_int_equal(ino, 8);

	/* Every entry listed once: the run shares one cookie. */
	seen_init(&s, n + 4);
	iterate_all(f, &s, 0);
	assert_int_equal(s.n, n + 4);
	assert_string_equal(s.names[2], "lo");
	assert_string_equal(s.names[n + 3], "hi");
	for (i = 3; i < n + 3; i++)
		assert_int_equal(s.next[i], key + 1);
	seen_free(&s);

	/* Repoint and remove inside the run. */
	assert_int_equal(OP(f->fs, dir_set_key(f->fs, f->dp, key, "c599", 4, 99, DT_REG)), 0);
	assert_int_equal(OP(f->fs, dir_lookup_key(f->fs, f->dp, key, "c599", 4,
						  &ino, &type)), 0);
	assert_int_equal(ino, 99);
	for (i = 0; i < n; i += 2) {
		snprintf(name, sizeof(name), "c%u", i);
		assert_int_equal(OP(f->fs, dir_remove_key(f->fs, f->dp, key, name,
				strlen(name))), 0);
		assert_int_equal(OP(f->fs, dir_remove_key(f->fs, f->dp, key, name,
				strlen(name))), -ENOENT);
	}
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "c%u", i);
		assert_int_equal(OP(f->fs, dir_lookup_key(f->fs, f->dp, key, name,
				strlen(name), &ino, &type)), i % 2 ? 0 : -ENOENT);
	}
	for (i = 1; i < n; i += 2) {
		snprintf(name, sizeof(name), "c%u", i);
		assert_int_equal(OP(f->fs, dir_remove_key(f->fs, f->dp, key, name,
				strlen(name))), 0);
	}
	assert_int_equal(OP(f->fs, dir_remove_key(f->fs, f->dp, key - 1, "lo", 2)), 0);
	assert_int_equal(OP(f->fs, dir_is_empty(f->fs, f->dp)), 0);
	assert_int_equal(OP(f->fs, dir_remove_key(f->fs, f->dp, key + 1, "hi", 2)), 0);
	assert_int_equal(OP(f->fs, dir_is_empty(f->fs, f->dp)), 1);
	assert_int_equal(f->dp->tree_root, 0);
	assert_int_equal(free_blocks(f->fs), f->free_start);
}

static void test_dir_destroy(void **state)
{
	struct fixture *f = *state;
	char name[64];
	uint32_t i;

	for (i = 0; i < 5000; i++) {
		many_name(name, sizeof(name), i);
		assert_int_equal(add(f, name, 1000 + i), 0);
	}
	assert_true(f->dp->blocks > 10);
	assert_int_equal(OP(f->fs, dir_destroy(f->fs, f->dp)), 0);
	assert_int_equal(f->dp->tree_root, 0);
	assert_int_equal(f->dp->blocks, 0);
	assert_int_equal(f->dp->size, 0);
	assert_int_equal(free_blocks(f->fs), f->free_start);
	assert_int_equal(OP(f->fs, dir_is_empty(f->fs, f->dp)), 1);
}

/* ---- xattr tests ---- */

static int xset(struct fixture *f, const char *name, const void *val,
		size_t size, int flags)
{
	return OP(f->fs, xattr_set(f->fs, f->dp, name, val, size, flags));
}

static int xget(struct fixture *f, const char *name, void *buf, size_t size)
{
	return OP(f->fs, xattr_get(f->fs, f->dp, name, buf, size));
}

static int xlist(struct fixture *f, char *buf, size_t size)
{
	return OP(f->fs, xattr_list(f->fs, f->dp, buf, size));
}

static int xrm(struct fixture *f, const char *name)
{
	return OP(f->fs, xattr_remove(f->fs, f->dp, name));
}

static void test_xattr_basic(void **state)
{
	struct fixture *f = *state;
	char buf[256], list[256];
	char longname[300];
	struct timespec ct;

	assert_int_equal(xget(f, "user.a", buf, sizeof(buf)), -ENODATA);
	assert_int_equal(xlist(f, list, sizeof(list)), 0);
	assert_int_equal(xrm(f, "user.a"), -ENODATA);

	ct = f->dp->ctime;
	assert_int_equal(xset(f, "user.a", "hello", 5, 0), 0);
	assert_int_not_equal(f->dp->xattr_blk, 0);
	assert_int_equal(f->dp->blocks, 1);
	assert_true(f->dp->ctime.tv_sec > ct.tv_sec ||
		    (f->dp->ctime.tv_sec == ct.tv_sec && f->dp->ctime.tv_nsec >= ct.tv_nsec));
	assert_int_equal(xget(f, "user.a", NULL, 0), 5);
	assert_int_equal(xget(f, "user.a", buf, 4), -ERANGE);
	assert_int_equal(xget(f, "user.a", buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);

	assert_int_equal(xset(f, "trusted.t", "", 0, 0), 0);
	assert_int_equal(xget(f, "trusted.t", buf, sizeof(buf)), 0);
	assert_int_equal(xset(f, "security.selinux", "ctx", 3, 0), 0);
	assert_int_equal(xset(f, "system.posix_acl_access", "\x02\0\0\0", 4, 0), 0);
	assert_int_equal(xset(f, "system.posix_acl_default", "\x02\0\0\0", 4, 0), 0);

	/* Flags. */
	assert_int_equal(xset(f, "user.a", "x", 1, XATTR_CREATE), -EEXIST);
	assert_int_equal(xset(f, "user.b", "x", 1, XATTR_REPLACE), -ENODATA);
	assert_int_equal(xset(f, "user.a", "bye", 3, XATTR_REPLACE), 0);
	assert_int_equal(xget(f, "user.a", buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "bye", 3);
	assert_int_equal(xset(f, "user.b", "new", 3, XATTR_CREATE), 0);
	assert_int_equal(xset(f, "user.b", "x", 1, 0x10), -EINVAL);

	/* Names. */
	assert_int_equal(xset(f, "", "x", 1, 0), -ERANGE);
	assert_int_equal(xget(f, "", buf, sizeof(buf)), -ERANGE);
	memset(longname, 'n', sizeof(longname));
	memcpy(longname, "user.", 5);
	longname[256] = '\0';
	assert_int_equal(xset(f, longname, "x", 1, 0), -ERANGE);
	longname[255] = '\0';
	assert_int_equal(xset(f, longname, "x", 1, 0), 0);
	assert_int_equal(xget(f, longname, buf, sizeof(buf)), 1);
	assert_int_equal(xrm(f, longname), 0);
	assert_int_equal(xset(f, "user.", "x", 1, 0), -EINVAL);
	assert_int_equal(xset(f, "other.x", "x", 1, 0), -EOPNOTSUPP);
	assert_int_equal(xset(f, "system.foo", "x", 1, 0), -EOPNOTSUPP);
	assert_int_equal(xset(f, "system.posix_acl_accessx", "x", 1, 0), -EOPNOTSUPP);
	assert_int_equal(xset(f, "user", "x", 1, 0), -EOPNOTSUPP);

	/* Listing. */
	static const char expect[] = "user.a\0trusted.t\0security.selinux\0"
		"system.posix_acl_access\0system.posix_acl_default\0user.b";
	assert_int_equal(xlist(f, NULL, 0), sizeof(expect));
	assert_int_equal(xlist(f, list, sizeof(expect) - 1), -ERANGE);
	assert_int_equal(xlist(f, list, sizeof(list)), sizeof(expect));
	/* user.a was replaced, so it moved to the end. */
	{
		static const char order[] = "trusted.t\0security.selinux\0"
			"system.posix_acl_access\0system.posix_acl_default\0"
			"user.a\0user.b";
		assert_memory_equal(list, order, sizeof(order));
	}

	/* Removal; the block goes with the last entry. */
	assert_int_equal(xrm(f, "user.a"), 0);
	assert_int_equal(xget(f, "user.a", buf, sizeof(buf)), -ENODATA);
	assert_int_equal(xrm(f, "user.a"), -ENODATA);
	assert_int_equal(xget(f, "user.b", buf, sizeof(buf)), 3);

	/* Persistence. */
	remount(f);
	assert_int_equal(xget(f, "user.b", buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "new", 3);
	assert_int_equal(xget(f, "security.selinux", buf, sizeof(buf)), 3);

	assert_int_equal(xrm(f, "user.b"), 0);
	assert_int_equal(xrm(f, "trusted.t"), 0);
	assert_int_equal(xrm(f, "security.selinux"), 0);
	assert_int_equal(xrm(f, "system.posix_acl_access"), 0);
	assert_int_not_equal(f->dp->xattr_blk, 0);
	assert_int_equal(xrm(f, "system.posix_acl_default"), 0);
	assert_int_equal(f->dp->xattr_blk, 0);
	assert_int_equal(f->dp->blocks, 0);
	assert_int_equal(xlist(f, NULL, 0), 0);
	assert_int_equal(free_blocks(f->fs), f->free_start);
}

static void test_xattr_space(void **state)
{
	struct fixture *f = *state;
	static char big[PFS_XATTR_SPACE];
	char name[32], buf[PFS_XATTR_SPACE];
	uint32_t i, n = 0;
	int err;

	memset(big, 'v', sizeof(big));
	/* A value that cannot fit in the block at all. */
	assert_int_equal(xset(f, "user.big", big, PFS_XATTR_SPACE, 0), -ENOSPC);
	assert_int_equal(f->dp->xattr_blk, 0);
	assert_int_equal(xset(f, "user.big", big, 70000, 0), -E2BIG);
	/* The largest that fits: header 3 bytes, name 8. */
	assert_int_equal(xset(f, "user.big", big, PFS_XATTR_SPACE - 3 - 8, 0), 0);
	assert_int_equal(xget(f, "user.big", buf, sizeof(buf)), PFS_XATTR_SPACE - 11);
	assert_int_equal(xset(f, "user.c", "", 0, 0), -ENOSPC);
	/* Replacing by a value as large is fine: the old one goes. */
	assert_int_equal(xset(f, "user.big", big, PFS_XATTR_SPACE - 11, 0), 0);
	assert_int_equal(xrm(f, "user.big"), 0);
	assert_int_equal(f->dp->xattr_blk, 0);

	/* Many small ones until the block is full. */
	for (i = 0;; i++) {
		snprintf(name, sizeof(name), "user.k%03u", i);
		err = xset(f, name, big, 100, 0);
		if (err == -ENOSPC)
			break;
		assert_int_equal(err, 0);
		n++;
	}
	assert_int_equal(n, PFS_XATTR_SPACE / (3 + 9 + 100));
	/* Shrinking one makes room for another. */
	assert_int_equal(xset(f, "user.k000", big, 1, XATTR_REPLACE), 0);
	assert_int_equal(xset(f, "user.new", big, 50, XATTR_CREATE), 0);
	remount(f);
	for (i = 1; i < n; i++) {
		snprintf(name, sizeof(name), "user.k%03u", i);
		assert_int_equal(xget(f, name, buf, sizeof(buf)), 100);
	}
	assert_int_equal(xget(f, "user.k000", buf, sizeof(buf)), 1);
	assert_int_equal(xget(f, "user.new", buf, sizeof(buf)), 50);
	assert_int_equal(OP(f->fs, xattr_destroy(f->fs, f->dp)), 0);
	assert_int_equal(f->dp->xattr_blk, 0);
	assert_int_equal(f->dp->blocks, 0);
	assert_int_equal(xget(f, "user.new", buf, sizeof(buf)), -ENODATA);
	assert_int_equal(free_blocks(f->fs), f->free_start);
}

/* A directory's size counts its index, not its xattr block. */
static void test_dir_size_with_xattr(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(xset(f, "user.a", "1", 1, 0), 0);
	assert_int_equal(add(f, "a", 100), 0);
	assert_int_equal(f->dp->blocks, 2);
	assert_int_equal(f->dp->size, PFS_BLOCK_SIZE);
	assert_int_equal(rm(f, "a"), 0);
	assert_int_equal(f->dp->size, 0);
	assert_int_equal(xrm(f, "user.a"), 0);
	assert_int_equal(f->dp->blocks, 0);
}

/* A damaged xattr block is -EUCLEAN for every reader and writer. */
static int xattr_damage_probe(struct fixture *f, int what)
{
	struct pfs_xattr_blk *h, saved;
	uint8_t *data, saved_ent;
	struct buf *b;
	char buf[64];
	int errs[4], err, i;

	err = bcache_read(f->fs->bc, f->dp->xattr_blk, BUF_META, PFS_MAGIC_XATTR, &b);
	if (err)
		return err;
	h = buf_data(b);
	data = (uint8_t *)h + sizeof(*h);
	saved = *h;
	saved_ent = data[0];
	switch (what) {
	case 0: h->used = cpu_to_le32(PFS_XATTR_SPACE + 1); break;
	case 1: h->count = cpu_to_le32(le32_to_cpu(h->count) + 1); break;
	case 2: h->used = cpu_to_le32(le32_to_cpu(h->used) - 1); break;
	case 3: data[0] = 0; break;
	case 4: data[0] = 200; break;
	default: h->hdr.owner = cpu_to_le64(f->dp->ino + 1); break;
	}
	errs[0] = xattr_get(f->fs, f->dp, "user.a", buf, sizeof(buf));
	errs[1] = xattr_list(f->fs, f->dp, buf, sizeof(buf));
	errs[2] = xattr_set(f->fs, f->dp, "user.c", "1", 1, 0);
	errs[3] = xattr_remove(f->fs, f->dp, "user.a");
	*h = saved;
	data[0] = saved_ent;
	buf_put(b);
	for (i = 0; i < 4; i++)
		if (errs[i] != -EUCLEAN)
			return errs[i] ? errs[i] : -1000 - i;
	return -EUCLEAN;
}

static void test_xattr_damaged(void **state)
{
	struct fixture *f = *state;
	char buf[64];
	int what;

	assert_int_equal(xset(f, "user.a", "1", 1, 0), 0);
	assert_int_equal(xset(f, "user.b", "22", 2, 0), 0);
	pfs_log_set_level(-1);          /* the damage is expected */
	for (what = 0; what < 6; what++)
		assert_int_equal(OP(f->fs, xattr_damage_probe(f, what)), -EUCLEAN);
	pfs_log_set_level(PFS_LOG_WARN);
	/* Intact again once restored. */
	assert_int_equal(xget(f, "user.b", buf, sizeof(buf)), 2);
	assert_int_equal(xlist(f, NULL, 0), 14);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dir_basic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_collisions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_destroy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xattr_basic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xattr_space, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xattr_damaged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_size_with_xattr, setup, teardown),
	};

	pfs_log_set_level(PFS_LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
