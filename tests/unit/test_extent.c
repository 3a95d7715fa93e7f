/*
 * test_extent.c -- unit tests of fs/extent.c on a freshly formatted image:
 * inline and tree forms and the conversions between them, lookups of
 * holes and mapped blocks, merging, punching, marking written, destroy,
 * and persistence across unmount and mount.
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
#include <unistd.h>
#include <cmocka.h>

#include "pfs_fs.h"
#include "pfs_mkfs.h"
#include "pfs_util.h"

#define TEST_BLOCKS     (64u * 1024u)   /* 256 MiB, sparse */

struct fixture {
	char dir[PATH_MAX - 16];
	char img[PATH_MAX];
	char keyfile[PATH_MAX];
	struct pfs_opts opts;
	struct pfs_fs *fs;
	struct inode *root;
	struct inode *ip;               /* the regular file under test */
	uint64_t ino;
	uint64_t free_start;            /* free blocks with the file empty */
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
		err = inode_get(f->fs, f->ino, &f->ip);
	pthread_mutex_unlock(&f->fs->lock);
	return err;
}

static int unmount_fs(struct fixture *f)
{
	pthread_mutex_lock(&f->fs->lock);
	inode_put(f->fs, f->ip);
	inode_put(f->fs, f->root);
	pthread_mutex_unlock(&f->fs->lock);
	f->ip = f->root = NULL;
	int err = fs_unmount(f->fs);
	f->fs = NULL;
	return err;
}

static void remount(struct fixture *f)
{
	assert_int_equal(unmount_fs(f), 0);
	assert_int_equal(mount_fs(f), 0);
}

static int new_file(struct pfs_fs *fs, struct inode *root, const char *name,
		    struct inode **out)
{
	int err = inode_new(fs, root, S_IFREG | 0644, 0, 0, 0, out);

	if (err)
		return err;
	return dir_add(fs, root, name, strlen(name), (*out)->ino, DT_REG);
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
	snprintf(f->dir, sizeof(f->dir), "%s/pfs-extent-XXXXXX", tmp ? tmp : "/tmp");
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
	err = OP(f->fs, new_file(f->fs, f->root, "file", &f->ip));
	if (err)
		goto unmount;
	f->ino = f->ip->ino;
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

/* Allocate a run of exactly n blocks. */
static uint64_t get_blocks(struct fixture *f, uint64_t goal, uint32_t n)
{
	uint64_t start;
	uint32_t got;

	assert_int_equal(OP(f->fs, alloc_blocks(f->fs, goal, n, &start, &got)), 0);
	assert_int_equal(got, n);
	return start;
}

static int add(struct fixture *f, uint64_t lblk, uint64_t pblk, uint32_t len,
	       uint32_t flags)
{
	return OP(f->fs, extent_add(f->fs, f->ip, lblk, pblk, len, flags));
}

/* Expect lblk mapped by exactly (elblk, epblk, elen, eflags). */
static void expect_mapped(struct fixture *f, uint64_t lblk, uint64_t elblk,
			  uint64_t epblk, uint32_t elen, uint32_t eflags)
{
	struct pfs_extent e;

	assert_int_equal(OP(f->fs, extent_lookup(f->fs, f->ip, lblk, &e)), 1);
	assert_int_equal(le64_to_cpu(e.lblk), elblk);
	assert_int_equal(le64_to_cpu(e.pblk), epblk);
	assert_int_equal(le32_to_cpu(e.len), elen);
	assert_int_equal(le32_to_cpu(e.flags), eflags);
}

static void expect_hole(struct fixture *f, uint64_t lblk, uint32_t elen)
{
	struct pfs_extent e;

	assert_int_equal(OP(f->fs, extent_lookup(f->fs, f->ip, lblk, &e)), 0);
	assert_int_equal(le64_to_cpu(e.lblk), lblk);
	assert_int_equal(le32_to_cpu(e.len), elen);
}

static void expect_destroyed(struct fixture *f)
{
	assert_int_equal(OP(f->fs, extent_destroy(f->fs, f->ip)), 0);
	assert_int_equal(f->ip->blocks, 0);
	assert_int_equal(f->ip->n_inline, 0);
	assert_int_equal(f->ip->tree_root, 0);
	assert_false(f->ip->flags & PFS_IF_EXTENT_TREE);
	assert_int_equal(free_blocks(f->fs), f->free_start);
}

/* Inline up to PFS_INLINE_EXTENTS, a tree from the next one on; a deep
 * tree; lookups of holes and mapped blocks; destroy frees everything. */
static void test_inline_to_tree(void **state)
{
	struct fixture *f = *state;
	struct pfs_extent e;
	uint64_t pb[2000], spare;
	uint32_t i;

	for (i = 0; i < PFS_INLINE_EXTENTS; i++) {
		pb[i] = get_blocks(f, 0, 1);
		assert_int_equal(add(f, 10 * i, pb[i], 1, 0), 0);
	}
	assert_int_equal(f->ip->n_inline, PFS_INLINE_EXTENTS);
	assert_false(f->ip->flags & PFS_IF_EXTENT_TREE);
	assert_int_equal(f->ip->blocks, PFS_INLINE_EXTENTS);

	pb[i] = get_blocks(f, 0, 1);
	assert_int_equal(add(f, 10 * i, pb[i], 1, 0), 0);
	assert_true(f->ip->flags & PFS_IF_EXTENT_TREE);
	assert_int_equal(f->ip->n_inline, 0);
	assert_int_not_equal(f->ip->tree_root, 0);
	/* Five data blocks and the tree's root leaf. */
	assert_int_equal(f->ip->blocks, PFS_INLINE_EXTENTS + 2);

	for (i = 0; i <= PFS_INLINE_EXTENTS; i++)
		expect_mapped(f, 10 * i, 10 * i, pb[i], 1, 0);
	expect_hole(f, 1, 9);
	expect_hole(f, 10 * PFS_INLINE_EXTENTS + 1, UINT32_MAX);
	assert_int_equal(OP(f->fs, extent_next(f->fs, f->ip, 1, &e)), 1);
	assert_int_equal(le64_to_cpu(e.lblk), 10);
	assert_int_equal(OP(f->fs, extent_next(f->fs, f->ip, 10 * PFS_INLINE_EXTENTS + 1, &e)), 0);

	/* Enough extents for a tree of two levels (descending order, so
	 * every insert lands at the left edge). */
	for (i = 1999; i > PFS_INLINE_EXTENTS; i--) {
		pb[i] = get_blocks(f, 0, 1);
		assert_int_equal(add(f, 10 * i, pb[i], 1, 0), 0);
	}
	assert_true(f->ip->blocks > 2000 + 2);
	for (i = 0; i < 2000; i++) {
		expect_mapped(f, 10 * i, 10 * i, pb[i], 1, 0);
		expect_hole(f, 10 * i + 1, i == 1999 ? UINT32_MAX : 9);
	}
	/* Adding over a mapped block is refused; the caller keeps the
	 * block. */
	spare = get_blocks(f, 0, 1);
	pfs_log_set_level(-1);          /* the misuse is logged */
	assert_int_equal(add(f, 10 * 7, spare, 1, 0), -EEXIST);
	pfs_log_set_level(PFS_LOG_WARN);
	assert_int_equal(add(f, 10 * 7 - 1, spare, 1, 0), 0);
	assert_int_equal(OP(f->fs, extent_punch(f->fs, f->ip, 10 * 7 - 1, 1)), 0);
	expect_destroyed(f);
}

/* Physically contiguous neighbours with equal flags merge. */
static void test_merge(void **state)
{
	struct fixture *f = *state;
	uint64_t p = get_blocks(f, 0, 12), q;

	assert_int_equal(add(f, 0, p, 2, 0), 0);
	assert_int_equal(add(f, 4, p + 4, 2, 0), 0);
	assert_int_equal(f->ip->n_inline, 2);
	/* Fills the gap: left, new and right become one. */
	assert_int_equal(add(f, 2, p + 2, 2, 0), 0);
	assert_int_equal(f->ip->n_inline, 1);
	expect_mapped(f, 3, 0, p, 6, 0);
	/* Different flags: no merge. */
	assert_int_equal(add(f, 6, p + 6, 2, PFS_EXT_UNWRITTEN), 0);
	assert_int_equal(f->ip->n_inline, 2);
	/* Merge with the right neighbour only. */
	assert_int_equal(add(f, 10, p + 10, 2, 0), 0);
	assert_int_equal(add(f, 9, p + 9, 1, 0), 0);
	assert_int_equal(f->ip->n_inline, 3);
	expect_mapped(f, 11, 9, p + 9, 3, 0);
	/* Joins [9,12) on the right; [6,8) on the left differs in flags. */
	assert_int_equal(add(f, 8, p + 8, 1, 0), 0);
	assert_int_equal(f->ip->n_inline, 3);
	expect_mapped(f, 8, 8, p + 8, 4, 0);
	expect_mapped(f, 7, 6, p + 6, 2, PFS_EXT_UNWRITTEN);
	assert_int_equal(f->ip->blocks, 12);
	/* Logically adjacent but not physically contiguous: no merge. */
	q = get_blocks(f, 0, 2);
	assert_true(q + 1 != p + 12);
	assert_int_equal(add(f, 12, q + 1, 1, 0), 0);
	assert_int_equal(f->ip->n_inline, 4);
	expect_mapped(f, 12, 12, q + 1, 1, 0);
	assert_int_equal(add(f, 50, q, 1, 0), 0);
	assert_true(f->ip->flags & PFS_IF_EXTENT_TREE);
	assert_int_equal(f->ip->blocks, 14 + 1);

	/* Bad arguments. */
	assert_int_equal(add(f, 100, p, 0, 0), -EINVAL);
	assert_int_equal(add(f, 100, p, 1, 0x80), -EINVAL);
	assert_int_equal(add(f, 100, 1, 1, 0), -EINVAL);        /* not data */
	expect_destroyed(f);
}

/* Punching splits extents at the range edges and frees the blocks. */
static void test_punch(void **state)
{
	struct fixture *f = *state;
	uint64_t p = get_blocks(f, 0, 16), q[4];
	uint64_t free0;
	uint32_t i;

	assert_int_equal(add(f, 100, p, 16, 0), 0);
	free0 = free_blocks(f->fs);
	assert_int_equal(OP(f->fs, extent_punch(f->fs, f->ip, 104, 4)), 0);
	assert_int_equal(f->ip->n_inline, 2);
	assert_int_equal(f->ip->blocks, 12);
	assert_int_equal(free_blocks(f->fs), free0 + 4);
	expect_mapped(f, 100, 100, p, 4, 0);
	expect_hole(f, 105, 3);
	expect_mapped(f, 115, 108, p + 8, 8, 0);

	/* Across both: tail of one, head of the other. */
	assert_int_equal(OP(f->fs, extent_punch(f->fs, f->ip, 102, 8)), 0);
	expect_mapped(f, 101, 100, p, 2, 0);
	expect_hole(f, 102, 8);
	expect_mapped(f, 110, 110, p + 10, 6, 0);
	assert_int_equal(f->ip->blocks, 8);
	/* Punching a hole is a no-op. */
	assert_int_equal(OP(f->fs, extent_punch(f->fs, f->ip, 0, 100)), 0);
	assert_int_equal(f->ip->blocks, 8);

	/* A full inline map whose split needs a fifth extent: tree. */
	for (i = 0; i < 2; i++) {
		q[i] = get_blocks(f, 0, 4);
		assert_int_equal(add(f, 200 + 10 * i, q[i], 4, 0), 0);
	}
	assert_int_equal(f->ip->n_inline, 4);
	assert_int_equal(OP(f->fs, extent_punch(f->fs, f->ip, 211, 2)), 0);
	assert_true(f->ip->flags & PFS_IF_EXTENT_TREE);
	expect_mapped(f, 210, 210, q[1], 1, 0);
	expect_hole(f, 211, 2);
	expect_mapped(f, 213, 213, q[1] + 3, 1, 0);
	assert_int_equal(f->ip->blocks, 8 + 8 - 2 + 1);

	/* Down to two extents: back inline, tree freed. */
	assert_int_equal(OP(f->fs, extent_punch(f->fs, f->ip, 110, 90)), 0);
	assert_true(f->ip->flags & PFS_IF_EXTENT_TREE);
	assert_int_equal(OP(f->fs, extent_punch(f->fs, f->ip, 204, 100)), 0);
	assert_false(f->ip->flags & PFS_IF_EXTENT_TREE);
	assert_int_equal(f->ip->tree_root, 0);
	assert_int_equal(f->ip->n_inline, 2);
	expect_mapped(f, 100, 100, p, 2, 0);
	expect_mapped(f, 200, 200, q[0], 4, 0);
	assert_int_equal(f->ip->blocks, 6);

	/* To the end of the file, as truncate does. */
	assert_int_equal(OP(f->fs, extent_punch(f->fs, f->ip, 0, UINT64_MAX)), 0);
	assert_int_equal(f->ip->n_inline, 0);
	expect_destroyed(f);
}

/* Writing into unwritten extents splits them, and merges what becomes
 * written again. */
static void test_mark_written(void **state)
{
	struct fixture *f = *state;
	uint64_t p = get_blocks(f, 0, 10);

	assert_int_equal(add(f, 0, p, 10, PFS_EXT_UNWRITTEN), 0);
	assert_int_equal(OP(f->fs, extent_mark_written(f->fs, f->ip, 3, 2)), 0);
	assert_int_equal(f->ip->n_inline, 3);
	expect_mapped(f, 0, 0, p, 3, PFS_EXT_UNWRITTEN);
	expect_mapped(f, 4, 3, p + 3, 2, 0);
	expect_mapped(f, 9, 5, p + 5, 5, PFS_EXT_UNWRITTEN);

	/* The head becomes written and merges with [3,5). */
	assert_int_equal(OP(f->fs, extent_mark_written(f->fs, f->ip, 0, 3)), 0);
	assert_int_equal(f->ip->n_inline, 2);
	expect_mapped(f, 1, 0, p, 5, 0);

	/* A written range is left alone. */
	assert_int_equal(OP(f->fs, extent_mark_written(f->fs, f->ip, 0, 5)), 0);
	assert_int_equal(f->ip->n_inline, 2);

	/* Head and tail split off the middle of [5,10); neither neighbour
	 * of the written middle is written, so nothing merges. */
	assert_int_equal(OP(f->fs, extent_mark_written(f->fs, f->ip, 6, 2)), 0);
	expect_mapped(f, 5, 5, p + 5, 1, PFS_EXT_UNWRITTEN);
	expect_mapped(f, 7, 6, p + 6, 2, 0);
	expect_mapped(f, 8, 8, p + 8, 2, PFS_EXT_UNWRITTEN);
	assert_int_equal(f->ip->n_inline, 4);

	/* Everything written: one extent again. */
	assert_int_equal(OP(f->fs, extent_mark_written(f->fs, f->ip, 0, 100)), 0);
	assert_int_equal(f->ip->n_inline, 1);
	expect_mapped(f, 9, 0, p, 10, 0);
	assert_int_equal(f->ip->blocks, 10);
	expect_destroyed(f);
}

/* The same operations on a tree. */
static void test_tree_split_and_mark(void **state)
{
	struct fixture *f = *state;
	uint64_t p[8], u;
	uint32_t i;

	for (i = 0; i < 8; i++) {
		p[i] = get_blocks(f, 0, 8);
		assert_int_equal(add(f, 100 * i, p[i], 8, 0), 0);
	}
	u = get_blocks(f, 0, 20);
	assert_int_equal(add(f, 1000, u, 20, PFS_EXT_UNWRITTEN), 0);
	assert_true(f->ip->flags & PFS_IF_EXTENT_TREE);

	assert_int_equal(OP(f->fs, extent_mark_written(f->fs, f->ip, 1005, 5)), 0);
	expect_mapped(f, 1000, 1000, u, 5, PFS_EXT_UNWRITTEN);
	expect_mapped(f, 1009, 1005, u + 5, 5, 0);
	expect_mapped(f, 1010, 1010, u + 10, 10, PFS_EXT_UNWRITTEN);

	assert_int_equal(OP(f->fs, extent_punch(f->fs, f->ip, 302, 3)), 0);
	expect_mapped(f, 301, 300, p[3], 2, 0);
	expect_hole(f, 302, 3);
	expect_mapped(f, 305, 305, p[3] + 5, 3, 0);
	assert_int_equal(OP(f->fs, extent_punch(f->fs, f->ip, 400, 4)), 0);
	expect_hole(f, 400, 4);
	expect_mapped(f, 404, 404, p[4] + 4, 4, 0);
	expect_destroyed(f);
}

/* Extents and block counts survive unmount and mount. */
static void test_persistence(void **state)
{
	struct fixture *f = *state;
	uint64_t p[300];
	uint64_t blocks;
	uint32_t i;

	for (i = 0; i < 300; i++) {
		p[i] = get_blocks(f, 0, 2);
		assert_int_equal(add(f, 5 * i, p[i], 2, i % 3 ? 0 : PFS_EXT_UNWRITTEN), 0);
	}
	blocks = f->ip->blocks;
	remount(f);
	assert_true(f->ip->flags & PFS_IF_EXTENT_TREE);
	assert_int_equal(f->ip->blocks, blocks);
	for (i = 0; i < 300; i++) {
		expect_mapped(f, 5 * i + 1, 5 * i, p[i], 2,
			      i % 3 ? 0 : PFS_EXT_UNWRITTEN);
		expect_hole(f, 5 * i + 2, i == 299 ? UINT32_MAX : 3);
	}
	expect_destroyed(f);
	remount(f);
	assert_int_equal(f->ip->blocks, 0);
	assert_int_equal(free_blocks(f->fs), f->free_start);

	/* The inline form too. */
	p[0] = get_blocks(f, 0, 3);
	assert_int_equal(add(f, 7, p[0], 3, 0), 0);
	remount(f);
	assert_int_equal(f->ip->n_inline, 1);
	expect_mapped(f, 8, 7, p[0], 3, 0);
	expect_destroyed(f);
}

/* Take every free block; returns the runs in *runs (caller frees them). */
static size_t exhaust(struct fixture *f, uint64_t (**runs)[2])
{
	uint64_t (*r)[2] = NULL, start;
	size_t n = 0, cap = 0;
	uint32_t got;
	int err;

	for (;;) {
		err = OP(f->fs, alloc_blocks(f->fs, 0, PFS_EXT_MAX_LEN, &start, &got));
		if (err == -ENOSPC)
			break;
		assert_int_equal(err, 0);
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			r = realloc(r, cap * sizeof(*r));
			assert_non_null(r);
		}
		r[n][0] = start;
		r[n][1] = got;
		n++;
	}
	assert_int_equal(free_blocks(f->fs), 0);
	*runs = r;
	return n;
}

static void give_back(struct fixture *f, uint64_t (*runs)[2], size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		assert_int_equal(OP(f->fs, alloc_free_blocks(f->fs, runs[i][0],
							     (uint32_t)runs[i][1])), 0);
	free(runs);
}

/* A change that needs a tree node fails cleanly when none can be had. */
static void test_enospc(void **state)
{
	struct fixture *f = *state;
	uint8_t area[PFS_INLINE_SIZE];
	uint64_t p[PFS_INLINE_EXTENTS + 1], (*runs)[2];
	uint64_t blocks;
	size_t nruns;
	uint32_t i;

	for (i = 0; i <= PFS_INLINE_EXTENTS; i++)
		p[i] = get_blocks(f, 0, 4);
	for (i = 0; i < PFS_INLINE_EXTENTS; i++)
		assert_int_equal(add(f, 10 * i, p[i], 4, PFS_EXT_UNWRITTEN), 0);
	memcpy(area, f->ip->inline_area, sizeof(area));
	blocks = f->ip->blocks;

	nruns = exhaust(f, &runs);
	/* A fifth extent. */
	assert_int_equal(add(f, 100, p[PFS_INLINE_EXTENTS], 4, 0), -ENOSPC);
	/* A punch that splits an extent. */
	assert_int_equal(OP(f->fs, extent_punch(f->fs, f->ip, 11, 1)), -ENOSPC);
	/* A write into the middle of an unwritten extent. */
	assert_int_equal(OP(f->fs, extent_mark_written(f->fs, f->ip, 21, 1)), -ENOSPC);
	assert_int_equal(OP(f->fs, extent_mark_written(f->fs, f->ip, 30, 1)), -ENOSPC);
	/* Nothing changed, nothing leaked, the node is not fenced. */
	assert_false(f->ip->flags & PFS_IF_EXTENT_TREE);
	assert_int_equal(f->ip->n_inline, PFS_INLINE_EXTENTS);
	assert_memory_equal(f->ip->inline_area, area, sizeof(area));
	assert_int_equal(f->ip->blocks, blocks);
	assert_int_equal(free_blocks(f->fs), 0);
	assert_int_equal(f->fs->fenced, 0);
	/* What needs no node still works: marking a whole extent, punching
	 * one whole. */
	assert_int_equal(OP(f->fs, extent_mark_written(f->fs, f->ip, 0, 4)), 0);
	expect_mapped(f, 0, 0, p[0], 4, 0);
	assert_int_equal(OP(f->fs, extent_punch(f->fs, f->ip, 0, 4)), 0);
	assert_int_equal(f->ip->n_inline, PFS_INLINE_EXTENTS - 1);
	assert_int_equal(free_blocks(f->fs), 4);
	give_back(f, runs, nruns);
	assert_true(free_blocks(f->fs) > 4);

	assert_int_equal(add(f, 100, p[PFS_INLINE_EXTENTS], 4, 0), 0);
	assert_int_equal(add(f, 0, get_blocks(f, 0, 4), 4, 0), 0);
	assert_true(f->ip->flags & PFS_IF_EXTENT_TREE);
	expect_destroyed(f);
}

/* Damaged inline maps are reported, not trusted. */
static void test_damaged_inline(void **state)
{
	struct fixture *f = *state;
	struct pfs_extent e, d;
	uint64_t p = get_blocks(f, 0, 2);

	assert_int_equal(add(f, 0, p, 2, 0), 0);
	pfs_log_set_level(-1);          /* the damage is expected */
	memcpy(&d, f->ip->inline_area, sizeof(d));
	f->ip->n_inline = PFS_INLINE_EXTENTS + 1;
	assert_int_equal(OP(f->fs, extent_lookup(f->fs, f->ip, 0, &e)), -EUCLEAN);
	f->ip->n_inline = 1;
	d.len = cpu_to_le32(0);
	memcpy(f->ip->inline_area, &d, sizeof(d));
	assert_int_equal(OP(f->fs, extent_lookup(f->fs, f->ip, 0, &e)), -EUCLEAN);
	d.len = cpu_to_le32(2);
	d.pblk = cpu_to_le64(1);
	memcpy(f->ip->inline_area, &d, sizeof(d));
	assert_int_equal(OP(f->fs, extent_destroy(f->fs, f->ip)), -EUCLEAN);
	d.pblk = cpu_to_le64(p);
	memcpy(f->ip->inline_area, &d, sizeof(d));
	pfs_log_set_level(PFS_LOG_WARN);
	expect_destroyed(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_inline_to_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_merge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_punch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mark_written, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tree_split_and_mark, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enospc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_inline, setup, teardown),
	};

	pfs_log_set_level(PFS_LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
