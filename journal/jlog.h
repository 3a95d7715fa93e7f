/*
 * jlog.h -- private to journal/: the log of one slot as a sequence of
 * authenticated, encrypted records (pfs_format.h), shared by the writer
 * of the owning node (jnl.c) and by recovery (recover.c).
 */
#ifndef PFS_JLOG_H
#define PFS_JLOG_H

#include <stdint.h>
#include <stdbool.h>
#include "pfs_format.h"
#include "pfs_bio.h"
#include "pfs_key.h"

struct jlog {
	struct bio_dev *dev;
	uint32_t slot;
	uint32_t seed;                  /* crc seed of the volume */
	uint64_t jstart;                /* first block of the journal area */
	uint64_t area;                  /* record-area blocks */
	uint64_t gen;                   /* generation of the records */
	uint8_t key[PFS_KEY_BYTES];     /* slot key of gen */
	uint64_t head;                  /* next lsn to write */
	uint64_t tail;                  /* first lsn recovery needs */
	uint64_t hseq;                  /* last header sequence written */
	uint8_t *buf;                   /* one maximal record */
	uint8_t *pbuf;                  /* its plaintext payload */
	size_t buflen;
};

/* Blocks a record with `plen` payload bytes spans. */
uint32_t jlog_rec_blocks(size_t plen);
uint64_t jlog_pos(const struct jlog *l, uint64_t lsn);
int jlog_init(struct jlog *l, struct bio_dev *dev, const struct pfs_super *sb,
	      const uint8_t cluster_key[PFS_KEY_BYTES], uint32_t slot, uint64_t gen);
void jlog_fini(struct jlog *l);
/* Append a record at l->head (after a PAD if it would cross the end of
 * the area).  -ENOSPC if it would overwrite l->tail's live records. */
int jlog_append(struct jlog *l, uint32_t type, uint64_t txseq, const void *payload,
		size_t plen, uint32_t count);
/* Write the next header copy (hseq + 1) with the current tail/head. */
int jlog_write_header(struct jlog *l, bool clean);

/* Header checks: 0 valid, -ENOENT all zero, -EUCLEAN torn/damaged,
 * -EBADMSG authentication failure.  gen_out gets the header's generation. */
int jlog_header_check(const uint8_t *blk, uint64_t blkno, uint32_t seed, uint32_t slot,
		      const uint8_t cluster_key[PFS_KEY_BYTES], uint64_t min_gen,
		      uint64_t max_gen, struct pfs_jnl_header *out);

/* Read the record at lsn into l->buf and open it.  Returns 0 with the
 * header and plaintext payload (pointer into l->buf), -ENOENT when no
 * plausible record starts there (end of the log), -EBADMSG when a
 * plausible record fails authentication. */
int jlog_read(struct jlog *l, uint64_t lsn, struct pfs_jrec_hdr *h,
	      uint8_t **payload);

#endif /* PFS_JLOG_H */
