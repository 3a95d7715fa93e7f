/*
 * test_journal.c -- unit tests of the undo journal's log (journal/jlog.c)
 * and of recovery (journal/recover.c) on a formatted image, driving the
 * record writer directly: what a scan finds in flight, COMMIT and ABORT,
 * PAD records across the end of the circular area, torn and tampered
 * records, header generations, and backout (oldest image per block,
 * idempotence, the blocks it may write).
 *
 * Each test works on a fresh image in its own mkdtemp directory, with a
 * 1 MiB journal per slot (254 record blocks) so the log wraps quickly.
 * Set PFS_TEST_VERBOSE=1 to see the log lines of the code under test.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "pfs_bio.h"
#include "pfs_format.h"
#include "pfs_backout.h"
#include "pfs_jnl.h"
#include "pfs_key.h"
#include "pfs_mkfs.h"
#include "pfs_util.h"
#include "../../journal/jlog.h"

#define NBLK    8192u                   /* 32 MiB */
#define BS      PFS_BLOCK_SIZE
#define GEN     5u                      /* generation the tests write */
#define MAXIMG  PFS_JREC_MAX_IMAGES

struct tctx {
	char dir[64];
	char img[128];
	struct bio_dev *dev;
	struct pfs_super sb;
	uint8_t key[PFS_KEY_BYTES];
	uint64_t data0;                 /* first block the tests use as data */
	uint64_t jstart;                /* slot 0's journal */
	uint64_t jblocks;
};

/* Content "tag" of block b. */
static void fill(uint8_t *p, uint32_t tag, uint64_t b)
{
	for (size_t j = 0; j < BS; j++)
		p[j] = (uint8_t)(tag * 151u + b * 29u + j * 13u + (j >> 8) + 7u);
}

static void disk_put(struct tctx *t, uint64_t b, uint32_t tag)
{
	uint8_t *p = aligned_alloc(BS, BS);
	assert_non_null(p);
	fill(p, tag, b);
	assert_int_equal(bio_write(t->dev, b, 1, p), 0);
	free(p);
}

/* Does block b hold content tag? */
static bool disk_is(struct tctx *t, uint64_t b, uint32_t tag)
{
	uint8_t *p = aligned_alloc(BS, BS), *q = malloc(BS);
	assert_non_null(p);
	assert_non_null(q);
	assert_int_equal(bio_read(t->dev, b, 1, p), 0);
	fill(q, tag, b);
	bool same = memcmp(p, q, BS) == 0;
	free(p);
	free(q);
	return same;
}

/* FNV-1a of the whole image file, read behind bio's back. */
static uint64_t image_hash(struct tctx *t)
{
	int fd = open(t->img, O_RDONLY);
	uint8_t *buf = malloc(1 << 20);
	uint64_t h = 1469598103934665603ull;
	ssize_t n;
	off_t off = 0;

	assert_true(fd >= 0);
	assert_non_null(buf);
	while ((n = pread(fd, buf, 1 << 20, off)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			h = (h ^ buf[i]) * 1099511628211ull;
		off += n;
	}
	assert_int_equal(n, 0);
	close(fd);
	free(buf);
	return h;
}

static void raw_read(struct tctx *t, uint64_t blk, uint64_t n, uint8_t *buf)
{
	int fd = open(t->img, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, n * BS, (off_t)(blk * BS)), (ssize_t)(n * BS));
	close(fd);
}

static void raw_write(struct tctx *t, uint64_t blk, uint64_t n, const uint8_t *buf)
{
	int fd = open(t->img, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, n * BS, (off_t)(blk * BS)), (ssize_t)(n * BS));
	close(fd);
}

/* Change one byte of the image. */
static void flip_byte(struct tctx *t, uint64_t blk, size_t off)
{
	uint8_t *b = malloc(BS);
	assert_non_null(b);
	raw_read(t, blk, 1, b);
	b[off] ^= 0x5a;
	raw_write(t, blk, 1, b);
	free(b);
}

static void zero_block(struct tctx *t, uint64_t blk)
{
	uint8_t *b = calloc(1, BS);
	assert_non_null(b);
	raw_write(t, blk, 1, b);
	free(b);
}

/* A fresh log of generation gen for slot 0, with both header copies
 * written clean (as journal/jnl.c starts one).  The area is zeroed first:
 * records a test wrote earlier under the same generation would be read
 * as a continuation of the new log. */
static void log_start(struct tctx *t, struct jlog *l, uint32_t slot, uint64_t gen)
{
	uint8_t *z = calloc(t->jblocks, BS);
	assert_non_null(z);
	raw_write(t, t->jstart + slot * t->jblocks, t->jblocks, z);
	free(z);
	assert_int_equal(jlog_init(l, t->dev, &t->sb, t->key, slot, gen), 0);
	assert_int_equal(jlog_write_header(l, true), 0);
	assert_int_equal(jlog_write_header(l, true), 0);
}

/* One transaction as journal/jnl.c logs it: a header (the tail moved up
 * to the head unless keep_tail), BEGIN, then IMAGES records of at most
 * 64 images; image i is block blk[i] with content tag[i].  Returns the
 * lsn of the BEGIN. */
static uint64_t log_tx(struct jlog *l, uint64_t txseq, const uint64_t *blk,
		       const uint32_t *tag, size_t n, bool keep_tail)
{
	if (!keep_tail)
		l->tail = l->head;
	assert_int_equal(jlog_write_header(l, false), 0);
	struct pfs_jrec_begin b = {
		.txseq = cpu_to_le64(txseq),
		.undo_blocks = cpu_to_le64(n),
		.ops = cpu_to_le64(1),
		.time_ns = cpu_to_le64(1),
	};
	uint64_t begin = l->head;
	assert_int_equal(jlog_append(l, PFS_JREC_BEGIN, txseq, &b, sizeof(b), 0), 0);
	struct pfs_jrec_image *im = malloc(MAXIMG * sizeof(*im));
	assert_non_null(im);
	for (size_t i = 0; i < n; i += MAXIMG) {
		size_t k = n - i < MAXIMG ? n - i : MAXIMG;
		for (size_t m = 0; m < k; m++) {
			im[m].blkno = cpu_to_le64(blk[i + m]);
			fill(im[m].data, tag[i + m], blk[i + m]);
		}
		assert_int_equal(jlog_append(l, PFS_JREC_IMAGES, txseq, im, k * sizeof(*im),
					     (uint32_t)k), 0);
	}
	free(im);
	return begin;
}

static void log_end(struct jlog *l, uint32_t type, uint64_t txseq)
{
	le64 v = cpu_to_le64(txseq);
	assert_int_equal(jlog_append(l, type, txseq, &v, sizeof(v), 0), 0);
}

/* n images of consecutive data blocks from first, all with tag. */
static void images(struct tctx *t, uint64_t first, size_t n, uint32_t tag,
		   uint64_t *blk, uint32_t *tags)
{
	for (size_t i = 0; i < n; i++) {
		blk[i] = t->data0 + first + i;
		tags[i] = tag;
	}
}

static int scan0(struct tctx *t, uint64_t slot_gen, struct jnl_scan *s)
{
	return jnl_scan(t->dev, &t->sb, t->key, 0, slot_gen, s);
}

static int setup(void **state)
{
	struct tctx *t = calloc(1, sizeof(*t));
	struct pfs_format_params p;
	const char *tmp = getenv("TMPDIR");
	const char *why = NULL;
	int fd;

	if (!t)
		return -1;
	unsetenv("PEERFS_FAULT");
	if (key_init() != 0)
		goto free_t;
	snprintf(t->dir, sizeof(t->dir), "%s/pfs-jnl-XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(t->dir))
		goto free_t;
	snprintf(t->img, sizeof(t->img), "%s/vol.img", t->dir);
	fd = open(t->img, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		goto remove_dir;
	memset(&p, 0, sizeof(p));
	p.slots = 2;
	p.journal_bytes = 1u << 20;
	key_generate(t->key);
	int err = format_write(fd, NBLK, &p, t->key, &t->sb, &why);
	close(fd);
	if (err) {
		fprintf(stderr, "format_write: %s (%d)\n", why ? why : "?", err);
		goto remove_img;
	}
	if (bio_open(t->img, true, &t->dev) != 0)
		goto remove_img;
	t->data0 = le64_to_cpu(t->sb.group_start) + 300;
	t->jstart = le64_to_cpu(t->sb.journal_start);
	t->jblocks = le64_to_cpu(t->sb.journal_blocks);
	if (t->jblocks != 256 || t->data0 + 1000 >= NBLK - 1)
		goto close_dev;
	*state = t;
	return 0;

close_dev:
	bio_close(t->dev);
remove_img:
	unlink(t->img);
remove_dir:
	rmdir(t->dir);
free_t:
	free(t);
	return -1;
}

static int teardown(void **state)
{
	struct tctx *t = *state;
	bio_close(t->dev);
	unlink(t->img);
	rmdir(t->dir);
	free(t);
	return 0;
}

/* ------------------------------------------------------------------ */

static void test_never_written(void **state)
{
	struct tctx *t = *state;
	struct jnl_scan s;

	assert_int_equal(scan0(t, GEN, &s), 0);
	assert_true(s.empty);
	assert_true(s.clean);
	assert_int_equal(s.ndead, 0);
	jnl_scan_free(&s);
}

static void test_scan_finds_inflight(void **state)
{
	struct tctx *t = *state;
	struct jlog l;
	struct jnl_scan s;
	uint64_t blk[3] = { t->data0 + 1, t->data0 + 7, t->data0 + 3 };
	uint32_t tag[3] = { 11, 12, 13 };

	log_start(t, &l, 0, GEN);
	uint64_t begin = log_tx(&l, 1, blk, tag, 3, false);
	jlog_fini(&l);

	assert_int_equal(scan0(t, GEN, &s), 0);
	assert_false(s.empty);
	assert_false(s.clean);
	assert_int_equal(s.generation, GEN);
	assert_int_equal(s.records, 2);
	assert_int_equal(s.ndead, 1);
	assert_int_equal(s.dead[0].txseq, 1);
	assert_int_equal(s.dead[0].begin_lsn, begin);
	assert_int_equal(s.dead[0].undo_blocks, 3);
	assert_int_equal(s.dead[0].nimages, 3);
	uint8_t *want = malloc(BS);
	assert_non_null(want);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(s.dead[0].blkno[i], blk[i]);
		fill(want, tag[i], blk[i]);
		assert_memory_equal(s.dead[0].images + i * BS, want, BS);
	}
	free(want);
	jnl_scan_free(&s);
}

/* Many images: the IMAGES records of one transaction are joined. */
static void test_scan_joins_images(void **state)
{
	struct tctx *t = *state;
	struct jlog l;
	struct jnl_scan s;
	uint64_t blk[150];
	uint32_t tag[150];

	for (size_t i = 0; i < 150; i++) {
		blk[i] = t->data0 + 2 * i;
		tag[i] = (uint32_t)(100 + i);
	}
	log_start(t, &l, 0, GEN);
	log_tx(&l, 4, blk, tag, 150, false);
	jlog_fini(&l);
	assert_int_equal(scan0(t, GEN, &s), 0);
	assert_int_equal(s.records, 1 + 3);
	assert_int_equal(s.ndead, 1);
	assert_int_equal(s.dead[0].nimages, 150);
	uint8_t *want = malloc(BS);
	assert_non_null(want);
	for (size_t i = 0; i < 150; i++) {
		assert_int_equal(s.dead[0].blkno[i], blk[i]);
		fill(want, tag[i], blk[i]);
		assert_memory_equal(s.dead[0].images + i * BS, want, BS);
	}
	free(want);
	jnl_scan_free(&s);
}

static void test_commit_and_abort_end_transactions(void **state)
{
	struct tctx *t = *state;
	struct jlog l;
	struct jnl_scan s;
	uint64_t blk[4];
	uint32_t tag[4];

	log_start(t, &l, 0, GEN);
	images(t, 0, 2, 1, blk, tag);
	log_tx(&l, 1, blk, tag, 2, false);
	assert_int_equal(scan0(t, GEN, &s), 0);
	assert_int_equal(s.ndead, 1);
	jnl_scan_free(&s);

	log_end(&l, PFS_JREC_COMMIT, 1);
	assert_int_equal(scan0(t, GEN, &s), 0);
	assert_int_equal(s.ndead, 0);
	assert_int_equal(s.committed, 1);
	jnl_scan_free(&s);

	/* From one tail: a committed, an aborted and an open transaction. */
	images(t, 10, 1, 2, blk, tag);
	log_tx(&l, 2, blk, tag, 1, true);
	log_end(&l, PFS_JREC_ABORT, 2);
	images(t, 20, 4, 3, blk, tag);
	log_tx(&l, 3, blk, tag, 4, true);
	assert_int_equal(scan0(t, GEN, &s), 0);
	assert_int_equal(s.records, 2 + 1 + 2 + 1 + 2);
	assert_int_equal(s.committed, 2);
	assert_int_equal(s.ndead, 1);
	assert_int_equal(s.dead[0].txseq, 3);
	assert_int_equal(s.dead[0].nimages, 4);
	jnl_scan_free(&s);

	log_end(&l, PFS_JREC_ABORT, 3);
	assert_int_equal(jlog_write_header(&l, true), 0);
	assert_int_equal(scan0(t, GEN, &s), 0);
	assert_int_equal(s.ndead, 0);
	assert_true(s.clean);
	jnl_scan_free(&s);
	jlog_fini(&l);
}

/* Transactions until the lsn has wrapped around the area several times;
 * the last one starts 10 blocks before the end of the area, so its first
 * IMAGES record follows a PAD. */
static void test_pad_across_the_end(void **state)
{
	struct tctx *t = *state;
	struct jlog l;
	struct jnl_scan s;
	uint64_t blk[130];
	uint32_t tag[130];
	uint64_t txseq = 0;

	log_start(t, &l, 0, GEN);
	uint64_t area = l.area;
	while (l.head < 5 * area) {
		size_t n = 1 + (size_t)(txseq * 37 % 130);
		images(t, txseq % 300, n, (uint32_t)txseq, blk, tag);
		log_tx(&l, ++txseq, blk, tag, n, false);
		log_end(&l, PFS_JREC_COMMIT, txseq);
		assert_int_equal(scan0(t, GEN, &s), 0);
		assert_int_equal(s.ndead, 0);
		assert_int_equal(s.committed, 1);
		jnl_scan_free(&s);
	}
	/* Single-block records up to 10 blocks before the end. */
	l.tail = l.head;
	while (l.head % area != area - 10)
		log_end(&l, PFS_JREC_ABORT, 999999);
	images(t, 500, 69, 77, blk, tag);
	uint64_t begin = log_tx(&l, ++txseq, blk, tag, 69, false);
	jlog_fini(&l);
	assert_int_equal(begin % area, area - 10);

	struct pfs_jrec_hdr h;
	uint8_t *payload;
	assert_int_equal(jlog_init(&l, t->dev, &t->sb, t->key, 0, GEN), 0);
	assert_int_equal(jlog_read(&l, begin + 1, &h, &payload), 0);
	assert_int_equal(le32_to_cpu(h.type), PFS_JREC_PAD);
	assert_int_equal(le32_to_cpu(h.nblocks), 9);
	jlog_fini(&l);

	assert_int_equal(scan0(t, GEN, &s), 0);
	assert_int_equal(s.records, 1 + 1 + 2);         /* BEGIN, PAD, IMAGES x2 */
	assert_int_equal(s.ndead, 1);
	assert_int_equal(s.dead[0].txseq, txseq);
	assert_int_equal(s.dead[0].nimages, 69);
	uint8_t *want = malloc(BS);
	assert_non_null(want);
	for (size_t i = 0; i < 69; i++) {
		assert_int_equal(s.dead[0].blkno[i], blk[i]);
		fill(want, 77, blk[i]);
		assert_memory_equal(s.dead[0].images + i * BS, want, BS);
	}
	free(want);
	assert_true(s.head_lsn > 5 * area);
	jnl_scan_free(&s);
}

/* The last record torn in three ways: each ends the log, no error; the
 * images of the torn record are not used. */
static void test_torn_last_record(void **state)
{
	struct tctx *t = *state;
	uint64_t blk[74];
	uint32_t tag[74];
	images(t, 0, 74, 5, blk, tag);

	for (int how = 0; how < 3; how++) {
		struct jlog l;
		struct jnl_scan s;
		log_start(t, &l, 0, GEN);
		uint64_t begin = log_tx(&l, 1, blk, tag, 74, false);
		uint64_t first = jlog_pos(&l, begin + 1);        /* 65 blocks */
		uint64_t last = jlog_pos(&l, begin + 66);        /* 11 blocks */
		jlog_fini(&l);
		assert_int_equal(last, first + 65);
		if (how == 0)
			zero_block(t, last + 10);       /* its tail never written */
		else if (how == 1)
			flip_byte(t, last + 3, 1000);   /* a sector gone bad */
		else
			zero_block(t, last);            /* not even its header */
		assert_int_equal(scan0(t, GEN, &s), 0);
		assert_int_equal(s.ndead, 1);
		assert_int_equal(s.dead[0].nimages, 64);
		assert_int_equal(s.head_lsn, begin + 66);
		jnl_scan_free(&s);
	}
}

/* A damaged record that a valid one follows is tampering: the scan
 * fails with -EBADMSG and recovery writes nothing at all. */
static void test_flipped_middle_record(void **state)
{
	struct tctx *t = *state;
	uint64_t blk[74];
	uint32_t tag[74];
	images(t, 0, 74, 5, blk, tag);

	/* 0: in the ciphertext of the first IMAGES record, 1: in its
	 * authenticated header (txseq), 2: in the BEGIN record. */
	for (int how = 0; how < 3; how++) {
		struct jlog l;
		struct jnl_scan s;
		log_start(t, &l, 0, GEN);
		uint64_t begin = log_tx(&l, 1, blk, tag, 74, false);
		uint64_t bpos = jlog_pos(&l, begin), first = jlog_pos(&l, begin + 1);
		jlog_fini(&l);
		for (size_t i = 0; i < 74; i++)
			disk_put(t, blk[i], 9);         /* changed in place */
		if (how == 0)
			flip_byte(t, first + 30, 2000);
		else if (how == 1)
			flip_byte(t, first, 24);
		else
			flip_byte(t, bpos, 100);
		uint64_t before = image_hash(t);
		assert_int_equal(scan0(t, GEN, &s), -EBADMSG);
		assert_int_equal(s.ndead, 0);
		assert_int_equal(bo_recover_slot(t->dev, &t->sb, t->key, 0, GEN, 1, NULL), -EBADMSG);
		assert_true(image_hash(t) == before);
		for (size_t i = 0; i < 74; i++)
			assert_true(disk_is(t, blk[i], 9));
	}
}

static void test_header_generation(void **state)
{
	struct tctx *t = *state;
	struct jlog l;
	struct jnl_scan s;
	uint64_t blk[2];
	uint32_t tag[2];

	log_start(t, &l, 0, GEN);
	images(t, 0, 2, 1, blk, tag);
	log_tx(&l, 1, blk, tag, 2, false);
	jlog_fini(&l);

	/* The slot record's generation or the one before (a mount that died
	 * between its log header and its slot record). */
	assert_int_equal(scan0(t, GEN, &s), 0);
	assert_int_equal(s.ndead, 1);
	jnl_scan_free(&s);
	assert_int_equal(scan0(t, GEN - 1, &s), 0);
	assert_int_equal(s.ndead, 1);
	jnl_scan_free(&s);
	/* A log newer than the slot record (a mount whose slot update was
	 * lost) is accepted, so its generation is never reused ... */
	assert_int_equal(scan0(t, GEN - 2, &s), 0);
	assert_int_equal(s.ndead, 1);
	assert_true(s.generation == GEN);
	jnl_scan_free(&s);
	/* ... and an older one (a replay) is refused. */
	uint64_t before = image_hash(t);
	assert_int_equal(scan0(t, GEN + 1, &s), -EBADMSG);
	assert_int_equal(bo_recover_slot(t->dev, &t->sb, t->key, 0, GEN + 1, 1, NULL), -EBADMSG);
	assert_true(image_hash(t) == before);
	/* Another slot's journal is not this one's. */
	assert_int_equal(jnl_scan(t->dev, &t->sb, t->key, 1, GEN, &s), 0);
	assert_true(s.empty);
	jnl_scan_free(&s);
}

/* A header whose fields are right but whose MAC is not (another key):
 * -EBADMSG; records of another generation behind a valid header are not
 * part of the log. */
static void test_header_and_records_keys(void **state)
{
	struct tctx *t = *state;
	struct jlog l;
	struct jnl_scan s;
	uint64_t blk[2];
	uint32_t tag[2];
	uint8_t other[PFS_KEY_BYTES];

	key_generate(other);
	assert_int_equal(jlog_init(&l, t->dev, &t->sb, other, 0, GEN), 0);
	assert_int_equal(jlog_write_header(&l, false), 0);
	jlog_fini(&l);
	assert_int_equal(scan0(t, GEN, &s), -EBADMSG);

	/* Header of GEN, then records sealed under GEN + 1 where the log of
	 * GEN continues. */
	struct jlog l2;
	log_start(t, &l, 0, GEN);
	assert_int_equal(jlog_write_header(&l, false), 0);
	jlog_fini(&l);
	assert_int_equal(jlog_init(&l2, t->dev, &t->sb, t->key, 0, GEN + 1), 0);
	struct pfs_jrec_begin b = { .txseq = cpu_to_le64(1), .undo_blocks = cpu_to_le64(2) };
	assert_int_equal(jlog_append(&l2, PFS_JREC_BEGIN, 1, &b, sizeof(b), 0), 0);
	struct pfs_jrec_image *im = calloc(2, sizeof(*im));
	assert_non_null(im);
	images(t, 0, 2, 1, blk, tag);
	for (int i = 0; i < 2; i++) {
		im[i].blkno = cpu_to_le64(blk[i]);
		fill(im[i].data, tag[i], blk[i]);
	}
	assert_int_equal(jlog_append(&l2, PFS_JREC_IMAGES, 1, im, 2 * sizeof(*im), 2), 0);
	free(im);
	jlog_fini(&l2);
	assert_int_equal(scan0(t, GEN, &s), 0);
	assert_int_equal(s.generation, GEN);
	assert_int_equal(s.ndead, 0);
	assert_int_equal(s.records, 0);
	jnl_scan_free(&s);
}

/* Two transactions in flight change block X; backout leaves the older
 * one's image of X, each other block gets its only image, the log ends
 * with ABORTs and a clean header. */
static void test_backout_oldest_image_wins(void **state)
{
	struct tctx *t = *state;
	struct jlog l;
	struct jnl_scan s;
	uint64_t x = t->data0 + 10, y = t->data0 + 11, z = t->data0 + 12;
	uint64_t b1[2] = { x, y }, b2[2] = { z, x };
	uint32_t t1[2] = { 1, 1 }, t2[2] = { 2, 2 };

	disk_put(t, x, 3);
	disk_put(t, y, 3);
	disk_put(t, z, 3);
	log_start(t, &l, 0, GEN);
	log_tx(&l, 1, b1, t1, 2, false);
	log_tx(&l, 2, b2, t2, 2, true);
	jlog_fini(&l);

	assert_int_equal(scan0(t, GEN, &s), 0);
	assert_int_equal(s.ndead, 2);
	assert_int_equal(s.dead[0].txseq, 1);
	assert_int_equal(s.dead[1].txseq, 2);
	uint64_t head = s.head_lsn;
	assert_int_equal(jnl_backout(t->dev, &t->sb, t->key, &s, NULL), 0);
	jnl_scan_free(&s);
	assert_true(disk_is(t, x, 1));
	assert_true(disk_is(t, y, 1));
	assert_true(disk_is(t, z, 2));

	assert_int_equal(scan0(t, GEN, &s), 0);
	assert_true(s.clean);
	assert_int_equal(s.ndead, 0);
	jnl_scan_free(&s);
	/* One ABORT per transaction where the log ended, newest first (R3). */
	assert_int_equal(jlog_init(&l, t->dev, &t->sb, t->key, 0, GEN), 0);
	for (uint64_t k = 0; k < 2; k++) {
		struct pfs_jrec_hdr h;
		uint8_t *payload;
		assert_int_equal(jlog_read(&l, head + k, &h, &payload), 0);
		assert_int_equal(le32_to_cpu(h.type), PFS_JREC_ABORT);
		assert_int_equal(le64_to_cpu(h.txseq), 2 - k);
	}
	jlog_fini(&l);
	/* A clean log: recovery writes nothing. */
	uint64_t before = image_hash(t);
	assert_int_equal(bo_recover_slot(t->dev, &t->sb, t->key, 0, GEN, 1, NULL), 0);
	assert_true(image_hash(t) == before);
}

/* Backout repeated gives the same blocks: on the same scan, and after a
 * crash that lost the ABORTs and the clean header and left only part of
 * the images written. */
static void test_backout_idempotent(void **state)
{
	struct tctx *t = *state;
	struct jlog l;
	struct jnl_scan s;
	uint64_t x = t->data0 + 40, y = t->data0 + 41, z = t->data0 + 42;
	uint64_t b1[2] = { x, y }, b2[2] = { x, z };
	uint32_t t1[2] = { 1, 1 }, t2[2] = { 2, 2 };
	size_t jlen = (size_t)t->jblocks * BS;
	uint8_t *saved = malloc(jlen);

	assert_non_null(saved);
	disk_put(t, x, 9);
	disk_put(t, y, 9);
	disk_put(t, z, 9);
	log_start(t, &l, 0, GEN);
	log_tx(&l, 1, b1, t1, 2, false);
	log_tx(&l, 2, b2, t2, 2, true);
	jlog_fini(&l);
	raw_read(t, t->jstart, t->jblocks, saved);

	assert_int_equal(scan0(t, GEN, &s), 0);
	assert_int_equal(s.ndead, 2);
	assert_int_equal(jnl_backout(t->dev, &t->sb, t->key, &s, NULL), 0);
	assert_true(disk_is(t, x, 1) && disk_is(t, y, 1) && disk_is(t, z, 2));
	disk_put(t, z, 9);
	assert_int_equal(jnl_backout(t->dev, &t->sb, t->key, &s, NULL), 0);
	assert_true(disk_is(t, x, 1) && disk_is(t, y, 1) && disk_is(t, z, 2));
	jnl_scan_free(&s);

	/* The crash: the journal as before the backout, y restored, x and z
	 * not yet. */
	raw_write(t, t->jstart, t->jblocks, saved);
	disk_put(t, x, 9);
	disk_put(t, z, 9);
	assert_int_equal(bo_recover_slot(t->dev, &t->sb, t->key, 0, GEN, 1, NULL), 0);
	assert_true(disk_is(t, x, 1) && disk_is(t, y, 1) && disk_is(t, z, 2));
	assert_int_equal(scan0(t, GEN, &s), 0);
	assert_true(s.clean);
	jnl_scan_free(&s);
	free(saved);
}

/* Backout writes images to the data area and to the slot's own slot
 * record (journaled by fs/volume.c), nowhere else: an image of another
 * slot's record or of the superblock fails the whole backout before
 * anything is written. */
static void test_backout_blocks_allowed(void **state)
{
	struct tctx *t = *state;
	struct jlog l;
	struct jnl_scan s;
	uint64_t st = le64_to_cpu(t->sb.slot_table_start);
	uint64_t own = st + 1, other = st + 3, data = t->data0 + 5;
	uint64_t b[2] = { data, own };
	uint32_t tags[2] = { 4, 4 };
	uint8_t *rec = malloc(BS);

	assert_non_null(rec);
	raw_read(t, own, 1, rec);
	disk_put(t, data, 8);
	log_start(t, &l, 0, GEN);
	log_tx(&l, 1, b, tags, 2, false);
	jlog_fini(&l);
	assert_int_equal(scan0(t, GEN, &s), 0);
	assert_int_equal(jnl_backout(t->dev, &t->sb, t->key, &s, NULL), 0);
	jnl_scan_free(&s);
	assert_true(disk_is(t, data, 4));
	assert_true(disk_is(t, own, 4));
	raw_write(t, own, 1, rec);

	uint64_t bad[2] = { 0, other };
	for (int i = 0; i < 2; i++) {
		uint64_t bb[2] = { data, bad[i] };
		disk_put(t, data, 8);
		log_start(t, &l, 0, GEN);
		log_tx(&l, 1, bb, tags, 2, false);
		jlog_fini(&l);
		uint64_t before = image_hash(t);
		assert_int_equal(scan0(t, GEN, &s), 0);
		assert_int_equal(jnl_backout(t->dev, &t->sb, t->key, &s, NULL), -EUCLEAN);
		jnl_scan_free(&s);
		assert_true(image_hash(t) == before);
		assert_true(disk_is(t, data, 8));
	}
	free(rec);
}

int main(void)
{
	if (!getenv("PFS_TEST_VERBOSE"))
		pfs_log_set_level(-1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_never_written, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_finds_inflight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_joins_images, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_and_abort_end_transactions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pad_across_the_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_last_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flipped_middle_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_generation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_and_records_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backout_oldest_image_wins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backout_idempotent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backout_blocks_allowed, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
