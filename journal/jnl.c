/*
 * jnl.c -- the undo log writer of the mounted node (its own slot).
 *
 * Design notes
 *
 * The log holds at most the transaction being committed: journal/tx.c
 * commits one compound transaction at a time and the commit's last flush
 * makes its COMMIT record durable before the next transaction logs
 * anything.  So at the start of each commit the tail moves up to the head
 * and the header is rewritten (in the same flush as the records).
 *
 * Per transaction (called from tx_commit, fs->lock held):
 *   jnl_log_tx      header (tail = head, not clean), BEGIN, IMAGES...
 *   -- flush --     the before-images are durable (write-ahead rule)
 *   in-place writes of the transaction's blocks
 *   -- flush --
 *   jnl_log_commit  COMMIT
 *   -- flush --     the transaction is durable and needs no undo
 * Invariants:
 *   J1. A transaction never logs more than jnl_max_images() images, so
 *       with its BEGIN, COMMIT and a possible PAD it fits the area.
 *   J2. The header's generation is the slot's current generation; the
 *       records are sealed with that generation's key.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jlog.h"
#include "pfs_fs.h"
#include "pfs_jnl.h"
#include "pfs_util.h"

struct jnl {
	struct jlog log;                /* protected by fs->lock */
	uint64_t max_images;
	struct pfs_jrec_image *chunk;   /* staging for one IMAGES record */
};

uint64_t jnl_max_images(const struct pfs_fs *fs)
{
	return fs->jnl ? fs->jnl->max_images : 0;
}

int jnl_start(struct pfs_fs *fs)
{
	struct jnl *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	int err = jlog_init(&j->log, fs->dev, &fs->sb, fs->key, fs->slot, fs->slot_gen);
	if (err)
		goto out_free;
	j->chunk = malloc(PFS_JREC_MAX_IMAGES * sizeof(*j->chunk));
	if (!j->chunk) {
		err = -ENOMEM;
		goto out_fini_log;
	}
	/* J1: whole IMAGES records of 64, plus BEGIN, COMMIT and a PAD. */
	uint32_t rec = jlog_rec_blocks(PFS_JREC_MAX_IMAGES * sizeof(struct pfs_jrec_image));
	uint64_t room = j->log.area > 2ull * rec + 4 ? j->log.area - 2ull * rec - 4 : 0;
	j->max_images = room / rec * PFS_JREC_MAX_IMAGES;
	if (j->max_images < PFS_JREC_MAX_IMAGES) {
		pfs_err("journal of %llu blocks is too small (need at least %u)",
			(unsigned long long)(j->log.area + PFS_JNL_HDR_BLOCKS),
			3 * rec + 4 + PFS_JNL_HDR_BLOCKS);
		err = -ENOSPC;
		goto out_free_chunk;
	}
	/* A fresh log for this generation (J2): both header copies. */
	err = jlog_write_header(&j->log, true);
	if (!err)
		err = jlog_write_header(&j->log, true);
	if (err)
		goto out_free_chunk;
	fs->jnl = j;
	return 0;

out_free_chunk:
	free(j->chunk);
out_fini_log:
	jlog_fini(&j->log);
out_free:
	free(j);
	return err;
}

void jnl_free(struct pfs_fs *fs)
{
	struct jnl *j = fs->jnl;
	if (!j)
		return;
	free(j->chunk);
	jlog_fini(&j->log);
	free(j);
	fs->jnl = NULL;
}

int jnl_stop(struct pfs_fs *fs)
{
	struct jnl *j = fs->jnl;
	if (!j)
		return 0;
	j->log.tail = j->log.head;
	return jlog_write_header(&j->log, true);
}

int jnl_log_tx(struct pfs_fs *fs, uint64_t txseq, const struct jnl_image *img,
	       size_t n, uint64_t ops)
{
	struct jnl *j = fs->jnl;
	PFS_BUG_ON(n > j->max_images);                              /* J1 */
	j->log.tail = j->log.head;
	int err = jlog_write_header(&j->log, false);
	if (err)
		return err;
	struct pfs_jrec_begin b = {
		.txseq = cpu_to_le64(txseq),
		.undo_blocks = cpu_to_le64(n),
		.ops = cpu_to_le64(ops),
		.time_ns = cpu_to_le64(pfs_now_real_ns()),
	};
	err = jlog_append(&j->log, PFS_JREC_BEGIN, txseq, &b, sizeof(b), 0);
	for (size_t i = 0; !err && i < n; i += PFS_JREC_MAX_IMAGES) {
		size_t k = PFS_MIN((size_t)PFS_JREC_MAX_IMAGES, n - i);
		for (size_t m = 0; m < k; m++) {
			j->chunk[m].blkno = cpu_to_le64(img[i + m].blkno);
			memcpy(j->chunk[m].data, img[i + m].data, PFS_BLOCK_SIZE);
		}
		err = jlog_append(&j->log, PFS_JREC_IMAGES, txseq, j->chunk,
				  k * sizeof(*j->chunk), (uint32_t)k);
	}
	if (err == -ENOSPC)
		pfs_err("journal full while logging transaction %llu (%zu images)",
			(unsigned long long)txseq, n);
	return err;
}

int jnl_log_commit(struct pfs_fs *fs, uint64_t txseq)
{
	le64 v = cpu_to_le64(txseq);
	return jlog_append(&fs->jnl->log, PFS_JREC_COMMIT, txseq, &v, sizeof(v), 0);
}
