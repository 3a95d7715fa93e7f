/*
 * pfs_jnl.h -- the per-slot undo journal (journal/jnl.c, journal/jrec.c,
 * journal/recover.c).  Record formats are in pfs_format.h.
 *
 * Writing (the owning node, under fs->lock, called by journal/tx.c):
 *   jnl_start        at mount: a fresh log for the slot's new generation
 *   jnl_log_tx       BEGIN + IMAGES of one transaction (not flushed)
 *   jnl_log_commit   COMMIT of it (not flushed)
 *   jnl_stop         at unmount: mark the log clean
 * Recovery (any holder of the cluster key; no mount needed):
 *   jnl_scan         read a slot's log, authenticate every record, and
 *                    list its in-flight transactions with their images
 *   jnl_backout      write the images back, flush, append ABORTs (newest
 *                    first), mark the log clean; recovery/backout.c does
 *                    the same with several workers
 * Errors: -EBADMSG a record or header fails authentication where the log
 * cannot simply have been torn (tampering, wrong key, replay); -EUCLEAN
 * structural damage; -EIO device errors.  Recovery that meets -EBADMSG
 * writes nothing.
 */
#ifndef PFS_JNL_H
#define PFS_JNL_H

#include <stdint.h>
#include <stdbool.h>
#include "pfs_format.h"
#include "pfs_bio.h"
#include "pfs_key.h"

struct pfs_fs;
struct jnl;

/* One before-image to log: the block and its content before the
 * transaction first changed it. */
struct jnl_image {
	uint64_t blkno;
	const uint8_t *data;
};

int jnl_start(struct pfs_fs *fs);
void jnl_free(struct pfs_fs *fs);
int jnl_stop(struct pfs_fs *fs);
/* Most before-images one transaction may log. */
uint64_t jnl_max_images(const struct pfs_fs *fs);
int jnl_log_tx(struct pfs_fs *fs, uint64_t txseq, const struct jnl_image *img,
	       size_t n, uint64_t ops);
int jnl_log_commit(struct pfs_fs *fs, uint64_t txseq);

/* ---- recovery ---- */

struct jnl_dead_tx {
	uint64_t txseq;
	uint64_t begin_lsn;
	uint64_t undo_blocks;           /* from its BEGIN record */
	size_t nimages, cap;
	uint64_t *blkno;                /* nimages entries */
	uint8_t *images;                /* nimages * PFS_BLOCK_SIZE */
};

struct jnl_scan {
	uint32_t slot;
	uint64_t generation;            /* of the records */
	bool clean;                     /* header said clean, nothing found */
	bool empty;                     /* never written (fresh volume) */
	uint64_t head_lsn;              /* where the valid log ends */
	uint64_t hseq;
	uint64_t records, committed;
	size_t ndead;
	struct jnl_dead_tx *dead;       /* in-flight transactions, by txseq */
	uint64_t scan_ns;
};

/* Read and authenticate the log of `slot`, whose slot record says
 * `slot_gen`.  Fills *out; free with jnl_scan_free. */
int jnl_scan(struct bio_dev *dev, const struct pfs_super *sb,
	     const uint8_t key[PFS_KEY_BYTES], uint32_t slot, uint64_t slot_gen,
	     struct jnl_scan *out);
void jnl_scan_free(struct jnl_scan *s);
/* Back out every dead transaction of the scan: images written (oldest per
 * block wins), flush, ABORT records and a clean header, flush. */
int jnl_backout(struct bio_dev *dev, const struct pfs_super *sb,
		const uint8_t key[PFS_KEY_BYTES], struct jnl_scan *s,
		uint64_t *backout_ns);
/* The pieces of jnl_backout, for recovery/backout.c (the parallel engine):
 * R2 for every image of the scan (-EUCLEAN, nothing written); and, once
 * every image is written back and flushed, the ABORT records (in the
 * scan's order), a clean header and a flush. */
int jnl_check_images(const struct pfs_super *sb, const struct jnl_scan *s);
int jnl_close_backout(struct bio_dev *dev, const struct pfs_super *sb,
		      const uint8_t key[PFS_KEY_BYTES], const struct jnl_scan *s);
/* jnl_scan, then log what it found in the words every recovery uses:
 * 1 with dead transactions in *s (free it) and their undo blocks in
 * *undo, 0 when the log is clean (nothing to free), or an error.
 * *log_gen (if not NULL) gets the generation the log was written under:
 * a new owner of the slot must take a higher one.  Recovery of a slot:
 * bo_recover_slot (recovery/backout.c). */
int jnl_scan_report(struct bio_dev *dev, const struct pfs_super *sb,
		    const uint8_t key[PFS_KEY_BYTES], uint32_t slot, uint64_t slot_gen,
		    struct jnl_scan *s, uint64_t *undo, uint64_t *log_gen);

#endif /* PFS_JNL_H */
