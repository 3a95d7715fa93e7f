/*
 * test_alloc.c -- unit tests of fs/alloc.c on a freshly formatted image
 * with several small groups: block runs stay in data areas and are never
 * handed out twice, goal locality, deferred frees (A5), ENOSPC, corruption
 * checks (A3, A4), inode allocation, and persistence of the counts.
 *
 * Every call into the allocator runs as the FUSE layer runs it: under
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
#include <unistd.h>
#include <cmocka.h>

#include "pfs_fs.h"
#include "pfs_mkfs.h"
#include "pfs_util.h"

#define TEST_BLOCKS     (16u * 1024u)   /* 64 MiB, sparse */
#define TEST_BPG        1024u
#define MAX_RUNS        8192

struct fixture {
	char dir[PATH_MAX - 16];
	char img[PATH_MAX];
	char keyfile[PATH_MAX];
	struct pfs_opts opts;
	struct pfs_fs *fs;
	uint8_t *seen;                  /* one bit per block handed out */
	struct pfs_extent_run runs[MAX_RUNS];
	size_t nruns;
};

/* Set while an operation is open, so teardown can close one left open
 * by a failed assertion. */
static bool op_open;

static void op_begin(struct pfs_fs *fs) { pthread_mutex_lock(&fs->lock); tx_op_begin(fs); op_open = true; }
static void op_end(struct pfs_fs *fs) { op_open = false; tx_op_end(fs); pthread_mutex_unlock(&fs->lock); }

static void commit(struct pfs_fs *fs)
{
	pthread_mutex_lock(&fs->lock);
	int err = tx_commit(fs);
	pthread_mutex_unlock(&fs->lock);
	assert_int_equal(err, 0);
}

static uint32_t meta_blocks(const struct pfs_fs *fs) { return PFS_GROUP_META_BLOCKS + fs->itb; }

static uint32_t count_clear(struct pfs_fs *fs, uint64_t blk, uint32_t magic, uint32_t n)
{
	struct buf *b;
	uint32_t clear = 0;

	assert_int_equal(bcache_read(fs->bc, blk, BUF_META, magic, &b), 0);
	const uint8_t *bits = (const uint8_t *)buf_data(b) + PFS_BITMAP_OFFSET;
	for (uint32_t i = 0; i < n; i++)
		clear += !(bits[i >> 3] & (1u << (i & 7)));
	buf_put(b);
	return clear;
}

/* A1, A2: bitmaps, descriptors, mirror and totals agree. */
static void check_consistent(struct pfs_fs *fs)
{
	uint64_t fb = 0, fi = 0;

	pthread_mutex_lock(&fs->lock);
	for (uint32_t g = 0; g < fs->ngroups; g++) {
		uint64_t first = fs_group_first_block(fs, g);
		struct pfs_group *gm = &fs->groups[g];
		struct buf *b;
		assert_int_equal(bcache_read(fs->bc, first, BUF_META, PFS_MAGIC_GROUP, &b), 0);
		const struct pfs_group_desc *d = buf_data(b);
		assert_int_equal(le32_to_cpu(d->free_blocks), gm->free_blocks);
		assert_int_equal(le32_to_cpu(d->free_inodes), gm->free_inodes);
		assert_int_equal(le32_to_cpu(d->ndirs), gm->ndirs);
		assert_int_equal(le32_to_cpu(d->nblocks), gm->nblocks);
		buf_put(b);
		assert_int_equal(count_clear(fs, first + 1, PFS_MAGIC_BBITMAP, gm->nblocks),
				 gm->free_blocks);
		assert_int_equal(count_clear(fs, first + 2, PFS_MAGIC_IBITMAP, fs->ipg),
				 gm->free_inodes);
		fb += gm->free_blocks;
		fi += gm->free_inodes;
	}
	assert_int_equal(fb, fs->free_blocks);
	assert_int_equal(fi, fs->free_inodes);
	pthread_mutex_unlock(&fs->lock);
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
	snprintf(f->dir, sizeof(f->dir), "%s/pfs-alloc-XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir))
		goto free_f;
	snprintf(f->img, sizeof(f->img), "%s/vol.img", f->dir);
	snprintf(f->keyfile, sizeof(f->keyfile), "%s/vol.key", f->dir);
	fd = open(f->img, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		goto remove_dir;
	memset(&p, 0, sizeof(p));
	p.blocks_per_group = TEST_BPG;
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
	if (fs_mount(&f->opts, &f->fs))
		goto remove_key;
	f->seen = calloc(f->fs->nblocks / 8 + 1, 1);
	if (!f->seen || f->fs->ngroups < 4) {
		fs_unmount(f->fs);
		free(f->seen);
		goto remove_key;
	}
	*state = f;
	return 0;

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

	if (op_open && f->fs)
		op_end(f->fs);
	int err = f->fs ? fs_unmount(f->fs) : 0;

	unlink(f->keyfile);
	unlink(f->img);
	rmdir(f->dir);
	free(f->seen);
	free(f);
	return err;
}

/* Check a run just obtained and record it.  Caller holds the operation. */
static void take(struct fixture *f, uint64_t start, uint32_t got)
{
	assert_true(got > 0);
	for (uint32_t k = 0; k < got; k++) {
		uint64_t blk = start + k;
		assert_true(alloc_block_valid(f->fs, blk));
		assert_false(f->seen[blk >> 3] & (1u << (blk & 7)));
		f->seen[blk >> 3] |= (uint8_t)(1u << (blk & 7));
	}
	assert_true(f->nruns < MAX_RUNS);
	f->runs[f->nruns].start = start;
	f->runs[f->nruns++].len = got;
}

/* Allocate until -ENOSPC inside the current operation; blocks obtained. */
static uint64_t fill(struct fixture *f)
{
	uint64_t total = 0, start;
	uint32_t got;
	int err;

	while ((err = alloc_blocks(f->fs, 0, 61, &start, &got)) == 0) {
		take(f, start, got);
		total += got;
	}
	assert_int_equal(err, -ENOSPC);
	assert_int_equal(f->fs->free_blocks, 0);
	return total;
}

/* Free every recorded run inside the current operation. */
static void release_all(struct fixture *f)
{
	for (size_t i = 0; i < f->nruns; i++)
		assert_int_equal(alloc_free_blocks(f->fs, f->runs[i].start, f->runs[i].len), 0);
	f->nruns = 0;
	memset(f->seen, 0, f->fs->nblocks / 8 + 1);
}

static void test_runs_unique(void **state)
{
	struct fixture *f = *state;
	struct pfs_fs *fs = f->fs;
	uint64_t base = fs->free_blocks, total = 0, start;
	uint32_t got;

	for (uint32_t g = 0; g < fs->ngroups; g++)
		for (uint32_t k = 0; k < meta_blocks(fs); k++)
			assert_false(alloc_block_valid(fs, fs_group_first_block(fs, g) + k));
	assert_false(alloc_block_valid(fs, 0));
	op_begin(fs);
	for (uint32_t i = 0; i < 300; i++) {
		uint64_t goal = (i % 3) ? 0 : (uint64_t)i * 53 % fs->nblocks;
		assert_int_equal(alloc_blocks(fs, goal, 1 + i % 37, &start, &got), 0);
		assert_true(got <= 1 + i % 37);
		take(f, start, got);
		total += got;
		assert_int_equal(fs->free_blocks, base - total);
	}
	op_end(fs);
	check_consistent(fs);
	op_begin(fs);
	release_all(f);
	assert_int_equal(fs->pending_blocks, total);
	op_end(fs);
	commit(fs);
	assert_int_equal(fs->free_blocks, base);
	check_consistent(fs);
}

static void test_goal(void **state)
{
	struct fixture *f = *state;
	struct pfs_fs *fs = f->fs;
	uint64_t s, t, goal;
	uint32_t got;

	op_begin(fs);
	assert_int_equal(alloc_blocks(fs, 0, 4, &s, &got), 0);
	assert_int_equal(got, 4);
	assert_int_equal(alloc_blocks(fs, s + 4, 1, &t, &got), 0);
	assert_int_equal(t, s + 4);
	goal = fs_group_first_block(fs, fs->ngroups - 2) + meta_blocks(fs) + 10;
	assert_int_equal(alloc_blocks(fs, goal, 3, &t, &got), 0);
	assert_int_equal(t, goal);
	assert_int_equal(got, 3);
	assert_int_equal(alloc_free_blocks(fs, s, 5), 0);
	assert_int_equal(alloc_free_blocks(fs, t, 3), 0);
	op_end(fs);
	commit(fs);
	check_consistent(fs);
}

static void test_deferred_free(void **state)
{
	struct fixture *f = *state;
	struct pfs_fs *fs = f->fs;
	uint64_t base = fs->free_blocks, s, t;
	uint32_t got;

	op_begin(fs);
	assert_int_equal(alloc_blocks(fs, 0, 8, &s, &got), 0);
	assert_int_equal(got, 8);
	op_end(fs);
	commit(fs);
	/* One operation, so no commit can apply the frees in between. */
	op_begin(fs);
	assert_int_equal(alloc_free_blocks(fs, s, 8), 0);
	assert_int_equal(fs->pending_blocks, 8);
	assert_int_equal(fs->free_blocks, base - 8);
	assert_int_equal(fill(f), base - 8);
	for (uint64_t b = s; b < s + 8; b++)
		assert_false(f->seen[b >> 3] & (1u << (b & 7)));
	assert_int_equal(alloc_blocks(fs, s, 1, &t, &got), -ENOSPC);
	release_all(f);
	assert_int_equal(fs->pending_blocks, base);
	assert_int_equal(fs->free_blocks + fs->pending_blocks, base);
	op_end(fs);
	check_consistent(fs);
	commit(fs);
	assert_int_equal(fs->pending_blocks, 0);
	assert_int_equal(fs->free_blocks, base);
	op_begin(fs);
	assert_int_equal(alloc_blocks(fs, s, 8, &t, &got), 0);
	assert_int_equal(t, s);
	assert_int_equal(got, 8);
	assert_int_equal(alloc_free_blocks(fs, t, 8), 0);
	op_end(fs);
	commit(fs);
	check_consistent(fs);
}

static void test_enospc(void **state)
{
	struct fixture *f = *state;
	struct pfs_fs *fs = f->fs;
	uint64_t base = fs->free_blocks;

	op_begin(fs);
	assert_int_equal(fill(f), base);
	op_end(fs);
	check_consistent(fs);
	for (uint32_t g = 0; g < fs->ngroups; g++)
		assert_int_equal(fs->groups[g].free_blocks, 0);
	op_begin(fs);
	release_all(f);
	op_end(fs);
	commit(fs);
	assert_int_equal(fs->free_blocks, base);
	check_consistent(fs);
}

static void test_corruption(void **state)
{
	struct fixture *f = *state;
	struct pfs_fs *fs = f->fs;
	uint64_t base = fs->free_blocks, s, g1 = fs_group_first_block(fs, 1);
	uint32_t got;

	op_begin(fs);
	assert_int_equal(alloc_free_blocks(fs, 0, 1), -EUCLEAN);
	for (uint32_t k = 0; k < meta_blocks(fs); k++)
		assert_int_equal(alloc_free_blocks(fs, g1 + k, 1), -EUCLEAN);
	/* A range ending in the next group's metadata. */
	assert_int_equal(alloc_free_blocks(fs, g1 - 1, 2), -EUCLEAN);
	/* A range whose ends are data blocks but which spans group metadata. */
	assert_int_equal(alloc_free_blocks(fs, g1 - 1, TEST_BPG + 1), -EUCLEAN);
	assert_int_equal(fs->pending_blocks, 0);
	assert_int_equal(alloc_blocks(fs, 0, 2, &s, &got), 0);
	assert_int_equal(alloc_free_blocks(fs, s, got), 0);
	op_end(fs);
	commit(fs);
	assert_int_equal(fs->free_blocks, base);
	/* s is free now: freeing it again fails when the frees are applied. */
	op_begin(fs);
	assert_int_equal(alloc_free_blocks(fs, s, 1), 0);
	assert_int_equal(alloc_apply_pending(fs), -EUCLEAN);
	assert_int_equal(fs->free_blocks, base);
	/* Drop the refused free so the commit at unmount does not fence. */
	fs->npending = 0;
	fs->pending_blocks = 0;
	op_end(fs);
	check_consistent(fs);
}

static void test_inodes(void **state)
{
	struct fixture *f = *state;
	struct pfs_fs *fs = f->fs;
	uint64_t base = fs->free_inodes, inos[64], dir, again;
	uint8_t *used = calloc((size_t)fs->ngroups * fs->ipg / 8 + 2, 1);

	assert_non_null(used);
	op_begin(fs);
	for (int i = 0; i < 64; i++) {
		assert_int_equal(alloc_inode(fs, PFS_ROOT_INO, false, &inos[i]), 0);
		assert_true(inos[i] > PFS_ROOT_INO && inos[i] <= (uint64_t)fs->ngroups * fs->ipg);
		assert_false(used[inos[i] >> 3] & (1u << (inos[i] & 7)));
		used[inos[i] >> 3] |= (uint8_t)(1u << (inos[i] & 7));
		assert_int_equal(fs->free_inodes, base - 1 - (uint64_t)i);
	}
	uint32_t ndirs = fs->groups[0].ndirs;
	assert_int_equal(alloc_inode(fs, PFS_ROOT_INO, true, &dir), 0);
	uint32_t dg = (uint32_t)((dir - 1) / fs->ipg);
	assert_int_not_equal(dg, (PFS_ROOT_INO - 1) / fs->ipg);
	assert_false(used[dir >> 3] & (1u << (dir & 7)));
	assert_int_equal(fs->groups[0].ndirs, ndirs);
	assert_int_equal(fs->groups[dg].ndirs, 1);
	/* A freed number is reusable only once the transaction that freed
	 * it commits (like blocks, A5); a second free is refused (A4). */
	assert_int_equal(alloc_free_inode(fs, inos[10], false), 0);
	assert_int_equal(alloc_free_inode(fs, inos[10], false), -EUCLEAN);
	assert_int_equal(alloc_inode(fs, PFS_ROOT_INO, false, &again), 0);
	assert_int_not_equal(again, inos[10]);
	assert_int_equal(alloc_free_inode(fs, again, false), 0);
	op_end(fs);
	commit(fs);
	op_begin(fs);
	assert_int_equal(fs->free_inodes, base - 64);
	assert_int_equal(alloc_inode(fs, PFS_ROOT_INO, false, &again), 0);
	assert_int_equal(again, inos[10]);
	assert_int_equal(alloc_free_inode(fs, inos[10], false), 0);
	assert_int_equal(alloc_free_inode(fs, 0, false), -EUCLEAN);
	assert_int_equal(alloc_free_inode(fs, (uint64_t)fs->ngroups * fs->ipg + 1, false),
			 -EUCLEAN);
	for (int i = 0; i < 64; i++)
		if (i != 10)
			assert_int_equal(alloc_free_inode(fs, inos[i], false), 0);
	assert_int_equal(alloc_free_inode(fs, dir, true), 0);
	op_end(fs);
	commit(fs);
	assert_int_equal(fs->groups[dg].ndirs, 0);
	assert_int_equal(fs->free_inodes, base);
	check_consistent(fs);
	free(used);
}

static void test_persist(void **state)
{
	struct fixture *f = *state;
	struct pfs_fs *fs = f->fs;
	uint64_t s, ino, dir;
	uint32_t got;

	op_begin(fs);
	for (int i = 0; i < 20; i++)
		assert_int_equal(alloc_blocks(fs, 0, 17, &s, &got), 0);
	assert_int_equal(alloc_free_blocks(fs, s, got), 0);
	assert_int_equal(alloc_inode(fs, PFS_ROOT_INO, false, &ino), 0);
	assert_int_equal(alloc_inode(fs, PFS_ROOT_INO, true, &dir), 0);
	op_end(fs);
	commit(fs);
	uint64_t fb = fs->free_blocks, fi = fs->free_inodes;
	uint32_t ng = fs->ngroups;
	struct pfs_group *saved = malloc(ng * sizeof(*saved));
	assert_non_null(saved);
	memcpy(saved, fs->groups, ng * sizeof(*saved));
	assert_int_equal(fs_unmount(fs), 0);
	f->fs = NULL;
	assert_int_equal(fs_mount(&f->opts, &f->fs), 0);
	fs = f->fs;
	assert_int_equal(fs->free_blocks, fb);
	assert_int_equal(fs->free_inodes, fi);
	assert_int_equal(fs->ngroups, ng);
	assert_memory_equal(fs->groups, saved, ng * sizeof(*saved));
	check_consistent(fs);
	free(saved);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_runs_unique, setup, teardown),
		cmocka_unit_test_setup_teardown(test_goal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deferred_free, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enospc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corruption, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inodes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persist, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
