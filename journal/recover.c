/*
 * recover.c -- reading a slot's undo log and backing out its in-flight
 * transactions.  Used at mount for the node's own slot, by fsck, and by a
 * counterpart recovering a dead peer.
 *
 * Design notes
 *
 * Scan: take the valid header copy with the highest (generation, hseq),
 * accepting the slot record's generation or any later one (a mount that
 * died before its slot record's new generation landed leaves a log of a
 * later generation; the next mount then takes a generation above the
 * log's, so a generation is never reused).  Older generations are
 * refused as replays.
 * Read records from the header's tail while they are plausible (magic,
 * lsn, generation, slot, length) and authenticate.  The first record that
 * is not plausible ends the log.  A plausible record that fails
 * authentication ends the log too when it is the last one (a write torn
 * by the crash); when a valid record follows it, the log was tampered
 * with and the scan fails with -EBADMSG before anything is written.
 *
 * Backout: for each in-flight transaction (BEGIN without COMMIT or
 * ABORT), write its before-images back: per block the image of the
 * oldest in-flight transaction wins (the others are dropped after a sort
 * by block), and adjacent blocks go out in one write.  Flush, then append an ABORT per transaction (R3) and a clean
 * header, then flush again.  Backout is idempotent: repeating it after a
 * crash writes the same images.
 *
 * Invariants:
 *   R1. Nothing is written before the whole log has been authenticated.
 *   R2. Images are only written inside the group area of the volume, or
 *       to the slot's own slot record (fs/volume.c changes it under the
 *       transaction, so it has before-images like any other block).
 *   R3. The ABORT records go out newest transaction first.  A crash may
 *       keep any prefix of them (the scan stops at the first missing
 *       record), so what stays in flight is always the OLDEST few
 *       transactions; for every block they logged, the oldest image
 *       among them is the oldest of the whole set, and the blocks only
 *       newer transactions logged already hold their images (flushed
 *       before the first ABORT).  So backing out again after such a
 *       crash writes the same final images.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "jlog.h"
#include "pfs_jnl.h"
#include "pfs_bcache.h"
#include "pfs_util.h"

void jnl_scan_free(struct jnl_scan *s)
{
	for (size_t i = 0; i < s->ndead; i++) {
		free(s->dead[i].blkno);
		free(s->dead[i].images);
	}
	free(s->dead);
	s->dead = NULL;
	s->ndead = 0;
}

static struct jnl_dead_tx *find_tx(struct jnl_scan *s, uint64_t txseq)
{
	for (size_t i = 0; i < s->ndead; i++)
		if (s->dead[i].txseq == txseq)
			return &s->dead[i];
	return NULL;
}

static int add_tx(struct jnl_scan *s, uint64_t txseq, uint64_t lsn, uint64_t undo)
{
	struct jnl_dead_tx *n = realloc(s->dead, (s->ndead + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	s->dead = n;
	memset(&n[s->ndead], 0, sizeof(n[0]));
	n[s->ndead].txseq = txseq;
	n[s->ndead].begin_lsn = lsn;
	n[s->ndead].undo_blocks = undo;
	s->ndead++;
	return 0;
}

static void drop_tx(struct jnl_scan *s, struct jnl_dead_tx *t)
{
	size_t i = (size_t)(t - s->dead);
	free(t->blkno);
	free(t->images);
	memmove(&s->dead[i], &s->dead[i + 1], (s->ndead - i - 1) * sizeof(*t));
	s->ndead--;
}

static int add_images(struct jnl_dead_tx *t, const uint8_t *payload, uint32_t count)
{
	/* Capacity grows geometrically, starting from the count the BEGIN
	 * record announced. */
	size_t need = t->nimages + count;
	if (need > t->cap) {
		size_t cap = PFS_MAX(need, PFS_MAX((size_t)t->undo_blocks, t->cap * 2));
		uint64_t *nb = realloc(t->blkno, cap * sizeof(*nb));
		if (!nb)
			return -ENOMEM;
		t->blkno = nb;
		uint8_t *ni = realloc(t->images, cap * (size_t)PFS_BLOCK_SIZE);
		if (!ni)
			return -ENOMEM;
		t->images = ni;
		t->cap = cap;
	}
	const struct pfs_jrec_image *im = (const struct pfs_jrec_image *)payload;
	for (uint32_t i = 0; i < count; i++) {
		t->blkno[t->nimages] = le64_to_cpu(im[i].blkno);
		memcpy(t->images + t->nimages * (size_t)PFS_BLOCK_SIZE, im[i].data, PFS_BLOCK_SIZE);
		t->nimages++;
	}
	return 0;
}

/* Pick the header copy to trust. */
static int read_headers(struct bio_dev *dev, const struct pfs_super *sb,
			const uint8_t key[PFS_KEY_BYTES], uint32_t slot, uint64_t slot_gen,
			struct pfs_jnl_header *best, bool *empty)
{
	uint64_t jstart = le64_to_cpu(sb->journal_start) + (uint64_t)slot * le64_to_cpu(sb->journal_blocks);
	uint32_t seed = (uint32_t)le64_to_cpu(sb->csum_seed);
	uint8_t *blk = aligned_alloc(PFS_BLOCK_SIZE, PFS_BLOCK_SIZE);
	int found = 0, damaged = 0, err = 0;

	if (!blk)
		return -ENOMEM;
	*empty = false;
	for (uint32_t c = 0; c < PFS_JNL_HDR_BLOCKS; c++) {
		struct pfs_jnl_header h;
		memset(&h, 0, sizeof(h));
		err = bio_read(dev, jstart + c, 1, blk);
		if (err)
			goto out_free;
		int r = jlog_header_check(blk, jstart + c, seed, slot, key,
					  slot_gen, UINT64_MAX - 1, &h);
		if (r == -ENOENT)
			continue;
		if (r == -EUCLEAN) {
			pfs_warn("slot=%u: journal header copy %u is damaged (torn write?)", slot, c);
			damaged++;
			continue;
		}
		if (r) {
			err = r;
			goto out_free;
		}
		if (!found || le64_to_cpu(h.generation) > le64_to_cpu(best->generation) ||
		    (le64_to_cpu(h.generation) == le64_to_cpu(best->generation) &&
		     le64_to_cpu(h.hseq) > le64_to_cpu(best->hseq)))
			*best = h;
		found++;
	}
	if (!found) {
		if (damaged) {
			pfs_err("slot=%u: both journal headers are damaged", slot);
			err = -EUCLEAN;
		} else {
			*empty = true;
		}
	}
out_free:
	free(blk);
	return err;
}

int jnl_scan(struct bio_dev *dev, const struct pfs_super *sb,
	     const uint8_t key[PFS_KEY_BYTES], uint32_t slot, uint64_t slot_gen,
	     struct jnl_scan *out)
{
	struct pfs_jnl_header h;
	struct jlog l;
	memset(&h, 0, sizeof(h));
	uint64_t t0 = pfs_now_mono_ns();
	int err;

	memset(out, 0, sizeof(*out));
	out->slot = slot;
	err = read_headers(dev, sb, key, slot, slot_gen, &h, &out->empty);
	if (err || out->empty) {
		out->clean = out->empty;
		out->generation = slot_gen;
		return err;
	}
	out->generation = le64_to_cpu(h.generation);
	out->hseq = le64_to_cpu(h.hseq);
	err = jlog_init(&l, dev, sb, key, slot, out->generation);
	if (err)
		return err;
	uint64_t tail = le64_to_cpu(h.tail_lsn), lsn = tail;
	while (lsn - tail < l.area) {
		struct pfs_jrec_hdr rh;
		uint8_t *payload;
		int r = jlog_read(&l, lsn, &rh, &payload);
		if (r == -ENOENT)
			break;
		if (r == -EBADMSG) {
			uint64_t next = lsn + le32_to_cpu(rh.nblocks);
			struct pfs_jrec_hdr nh;
			uint8_t *np;
			if (next - tail < l.area && jlog_read(&l, next, &nh, &np) == 0) {
				pfs_err("slot=%u: journal record at lsn %llu fails authentication "
					"but the log continues: tampering; nothing written",
					slot, (unsigned long long)lsn);
				err = -EBADMSG;
				goto out_fail;
			}
			pfs_info("slot=%u: journal ends with a torn record at lsn %llu", slot,
				 (unsigned long long)lsn);
			break;
		}
		if (r) {
			err = r;
			goto out_fail;
		}
		out->records++;
		uint64_t txseq = le64_to_cpu(rh.txseq);
		struct jnl_dead_tx *t = find_tx(out, txseq);
		switch (le32_to_cpu(rh.type)) {
		case PFS_JREC_BEGIN: {
			struct pfs_jrec_begin b;
			if (le32_to_cpu(rh.payload_len) != sizeof(b) || t) {
				err = -EUCLEAN;
				goto out_bad_record;
			}
			memcpy(&b, payload, sizeof(b));
			err = add_tx(out, txseq, lsn, le64_to_cpu(b.undo_blocks));
			if (err)
				goto out_fail;
			break;
		}
		case PFS_JREC_IMAGES: {
			uint32_t count = le32_to_cpu(rh.count);
			if (!t || count == 0 || count > PFS_JREC_MAX_IMAGES ||
			    le32_to_cpu(rh.payload_len) != count * sizeof(struct pfs_jrec_image)) {
				err = -EUCLEAN;
				goto out_bad_record;
			}
			err = add_images(t, payload, count);
			if (err)
				goto out_fail;
			break;
		}
		case PFS_JREC_COMMIT:
		case PFS_JREC_ABORT:
			if (t)
				drop_tx(out, t);
			out->committed++;
			break;
		default:
			break;                  /* PAD */
		}
		lsn += le32_to_cpu(rh.nblocks);
	}
	out->head_lsn = lsn;
	out->clean = le32_to_cpu(h.clean) && out->ndead == 0;
	out->scan_ns = pfs_now_mono_ns() - t0;
	jlog_fini(&l);
	return 0;

out_bad_record:
	pfs_err("slot=%u: journal record at lsn %llu is inconsistent", slot,
		(unsigned long long)lsn);
out_fail:
	jlog_fini(&l);
	jnl_scan_free(out);
	return err;
}

struct img_ref {
	uint64_t blkno;
	size_t tx;                      /* index in s->dead: older first */
	size_t k;                       /* index in the transaction */
	const uint8_t *data;
};

static int img_ref_cmp(const void *a, const void *b)
{
	const struct img_ref *x = a, *y = b;
	if (x->blkno != y->blkno)
		return x->blkno < y->blkno ? -1 : 1;
	if (x->tx != y->tx)
		return x->tx < y->tx ? -1 : 1;
	return x->k < y->k ? -1 : (x->k > y->k);
}

/* Write back the images of every dead transaction: per block the image
 * of the oldest transaction, adjacent blocks in one write. */
static int write_images(struct bio_dev *dev, struct jnl_scan *s)
{
	size_t total = 0;
	for (size_t i = 0; i < s->ndead; i++)
		total += s->dead[i].nimages;
	if (total == 0)
		return 0;
	struct img_ref *refs = malloc(total * sizeof(*refs));
	uint8_t *run = aligned_alloc(PFS_BLOCK_SIZE, 256 * (size_t)PFS_BLOCK_SIZE);
	int err = 0;
	if (!refs || !run) {
		err = -ENOMEM;
		goto out_free;
	}
	size_t n = 0;
	for (size_t i = 0; i < s->ndead; i++)
		for (size_t k = 0; k < s->dead[i].nimages; k++)
			refs[n++] = (struct img_ref){ s->dead[i].blkno[k], i, k,
				s->dead[i].images + k * (size_t)PFS_BLOCK_SIZE };
	qsort(refs, n, sizeof(*refs), img_ref_cmp);
	size_t i = 0;
	while (i < n && !err) {
		uint64_t start = refs[i].blkno;
		uint32_t len = 0;
		while (i < n && refs[i].blkno == start + len && len < 256) {
			memcpy(run + (size_t)len * PFS_BLOCK_SIZE, refs[i].data, PFS_BLOCK_SIZE);
			len++;
			uint64_t b = refs[i].blkno;
			while (i < n && refs[i].blkno == b)
				i++;                    /* newer images of b lose */
		}
		err = bio_write(dev, start, len, run);
	}
out_free:
	free(run);
	free(refs);
	return err;
}

int jnl_check_images(const struct pfs_super *sb, const struct jnl_scan *s)
{
	uint64_t lo = le64_to_cpu(sb->group_start), hi = le64_to_cpu(sb->block_count) - 1;
	uint64_t own = le64_to_cpu(sb->slot_table_start) + 2ull * s->slot + 1;

	for (size_t i = s->ndead; i-- > 0;) {
		const struct jnl_dead_tx *t = &s->dead[i];
		for (size_t k = 0; k < t->nimages; k++) {
			if ((t->blkno[k] < lo || t->blkno[k] >= hi) &&
			    t->blkno[k] != own) {                            /* R2 */
				pfs_err("slot=%u: before-image for block %llu outside the data area",
					s->slot, (unsigned long long)t->blkno[k]);
				return -EUCLEAN;
			}
		}
	}
	return 0;
}

int jnl_close_backout(struct bio_dev *dev, const struct pfs_super *sb,
		      const uint8_t key[PFS_KEY_BYTES], const struct jnl_scan *s)
{
	struct jlog l;
	int err = jlog_init(&l, dev, sb, key, s->slot, s->generation);
	if (err)
		return err;
	l.head = s->head_lsn;
	l.tail = s->ndead ? s->dead[0].begin_lsn : s->head_lsn;
	l.hseq = s->hseq;
	/* Newest first (R3). */
	for (size_t i = s->ndead; i-- > 0 && !err;) {
		le64 v = cpu_to_le64(s->dead[i].txseq);
		err = jlog_append(&l, PFS_JREC_ABORT, s->dead[i].txseq, &v, sizeof(v), 0);
	}
	if (!err) {
		l.tail = l.head;
		err = jlog_write_header(&l, true);
	}
	if (!err)
		err = bio_flush(dev);
	jlog_fini(&l);
	return err;
}

int jnl_backout(struct bio_dev *dev, const struct pfs_super *sb,
		const uint8_t key[PFS_KEY_BYTES], struct jnl_scan *s, uint64_t *backout_ns)
{
	uint64_t t0 = pfs_now_mono_ns();
	int err = jnl_check_images(sb, s);
	if (err)
		return err;
	err = write_images(dev, s);
	if (err)
		return err;
	err = bio_flush(dev);
	if (err)
		return err;
	err = jnl_close_backout(dev, sb, key, s);
	if (backout_ns)
		*backout_ns = pfs_now_mono_ns() - t0;
	return err;
}

int jnl_scan_report(struct bio_dev *dev, const struct pfs_super *sb,
		    const uint8_t key[PFS_KEY_BYTES], uint32_t slot, uint64_t slot_gen,
		    struct jnl_scan *s, uint64_t *undo, uint64_t *log_gen)
{
	int err = jnl_scan(dev, sb, key, slot, slot_gen, s);
	if (err) {
		pfs_err("slot=%u: journal scan failed: %s", slot, strerror(-err));
		return err;
	}
	if (log_gen)
		*log_gen = s->generation;
	if (s->empty || s->clean) {
		pfs_debug("journal of slot %u: clean", slot);
		jnl_scan_free(s);
		return 0;
	}
	*undo = 0;
	for (size_t i = 0; i < s->ndead; i++)
		*undo += s->dead[i].nimages;
	pfs_info("journal of slot %u: scan: %llu records, %llu transactions committed, "
		 "%zu in flight with %llu undo blocks (%.1f ms)", slot,
		 (unsigned long long)s->records, (unsigned long long)s->committed, s->ndead,
		 (unsigned long long)*undo, (double)s->scan_ns / 1e6);
	return 1;
}
