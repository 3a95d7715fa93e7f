/*
 * jlog.c -- records and headers of a slot's undo log.
 *
 * Design notes
 *
 * A record is sealed with XChaCha20-Poly1305 (libsodium's IETF AEAD) under
 * the slot key of its generation, with its 72-byte plaintext header as
 * associated data and a fresh random 192-bit nonce.  The header carries
 * the slot, the generation and the lsn, so authentication fails for a
 * record moved to another slot or another position, or written under
 * another generation.
 *
 * Invariants:
 *   L1. Records start on block boundaries and never cross the end of the
 *       area: a record that would is preceded by a PAD record covering
 *       the rest of the area.
 *   L2. head - tail <= area: an append that would overwrite a record at
 *       or after the tail fails with -ENOSPC (the transaction layer sizes
 *       transactions so this cannot happen; reaching it is a bug).
 *   L3. The two header copies are written alternately (hseq odd -> copy
 *       1, even -> copy 0), so a torn header write leaves the other copy
 *       intact; readers take the valid copy with the highest
 *       (generation, hseq).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "jlog.h"
#include "pfs_bcache.h"
#include "pfs_util.h"

#define REC_OVERHEAD (sizeof(struct pfs_jrec_hdr) + PFS_JREC_TAG_SIZE)
#define REC_MAX_PAYLOAD (PFS_JREC_MAX_IMAGES * sizeof(struct pfs_jrec_image))

uint32_t jlog_rec_blocks(size_t plen)
{
	return (uint32_t)PFS_DIV_ROUND_UP(REC_OVERHEAD + plen, PFS_BLOCK_SIZE);
}

uint64_t jlog_pos(const struct jlog *l, uint64_t lsn)
{
	return l->jstart + PFS_JNL_HDR_BLOCKS + lsn % l->area;
}

int jlog_init(struct jlog *l, struct bio_dev *dev, const struct pfs_super *sb,
	      const uint8_t cluster_key[PFS_KEY_BYTES], uint32_t slot, uint64_t gen)
{
	memset(l, 0, sizeof(*l));
	l->dev = dev;
	l->slot = slot;
	l->seed = (uint32_t)le64_to_cpu(sb->csum_seed);
	l->jstart = le64_to_cpu(sb->journal_start) + (uint64_t)slot * le64_to_cpu(sb->journal_blocks);
	l->area = le64_to_cpu(sb->journal_blocks) - PFS_JNL_HDR_BLOCKS;
	l->gen = gen;
	key_derive_slot(cluster_key, slot, gen, l->key);
	l->buflen = (size_t)jlog_rec_blocks(REC_MAX_PAYLOAD) * PFS_BLOCK_SIZE;
	l->buf = aligned_alloc(PFS_BLOCK_SIZE, l->buflen);
	l->pbuf = malloc(REC_MAX_PAYLOAD);
	if (!l->buf || !l->pbuf) {
		jlog_fini(l);
		return -ENOMEM;
	}
	return 0;
}

void jlog_fini(struct jlog *l)
{
	sodium_memzero(l->key, sizeof(l->key));
	free(l->buf);
	free(l->pbuf);
	l->buf = NULL;
	l->pbuf = NULL;
}

static void header_mac(const uint8_t key[PFS_KEY_BYTES], const struct pfs_jnl_header *h,
		       uint8_t mac[PFS_JNL_MAC_SIZE])
{
	struct pfs_jnl_header tmp;
	memcpy(&tmp, h, sizeof(tmp));
	tmp.hdr.crc = 0;
	crypto_generichash(mac, PFS_JNL_MAC_SIZE, (const uint8_t *)&tmp,
			   offsetof(struct pfs_jnl_header, mac), key, PFS_KEY_BYTES);
}

int jlog_write_header(struct jlog *l, bool clean)
{
	uint8_t *blk = aligned_alloc(PFS_BLOCK_SIZE, PFS_BLOCK_SIZE);
	if (!blk)
		return -ENOMEM;
	memset(blk, 0, PFS_BLOCK_SIZE);
	struct pfs_jnl_header *h = (struct pfs_jnl_header *)blk;
	uint64_t hseq = l->hseq + 1;
	uint64_t blkno = l->jstart + (hseq & 1);                     /* L3 */
	h->hdr.magic = cpu_to_le32(PFS_MAGIC_JOURNAL);
	h->hdr.blkno = cpu_to_le64(blkno);
	h->slot = cpu_to_le32(l->slot);
	h->version = cpu_to_le32(1);
	h->generation = cpu_to_le64(l->gen);
	h->hseq = cpu_to_le64(hseq);
	h->tail_lsn = cpu_to_le64(l->tail);
	h->head_lsn = cpu_to_le64(l->head);
	h->clean = cpu_to_le32(clean ? 1 : 0);
	header_mac(l->key, h, h->mac);
	pfs_meta_seal(blk, blkno, l->seed);
	int err = bio_write(l->dev, blkno, 1, blk);
	free(blk);
	if (!err)
		l->hseq = hseq;
	return err;
}

int jlog_header_check(const uint8_t *blk, uint64_t blkno, uint32_t seed, uint32_t slot,
		      const uint8_t cluster_key[PFS_KEY_BYTES], uint64_t min_gen,
		      uint64_t max_gen, struct pfs_jnl_header *out)
{
	size_t i;
	for (i = 0; i < PFS_BLOCK_SIZE && blk[i] == 0; i++)
		;
	if (i == PFS_BLOCK_SIZE)
		return -ENOENT;
	if (pfs_meta_verify(blk, blkno, PFS_MAGIC_JOURNAL, seed))
		return -EUCLEAN;
	const struct pfs_jnl_header *h = (const struct pfs_jnl_header *)blk;
	uint64_t gen = le64_to_cpu(h->generation);
	if (le32_to_cpu(h->slot) != slot) {
		pfs_err("slot=%u: journal header names slot %u", slot, le32_to_cpu(h->slot));
		return -EBADMSG;
	}
	if (gen < min_gen || gen > max_gen) {
		pfs_err("slot=%u: journal header of generation %llu, expected %llu..%llu "
			"(a replayed or foreign journal)", slot, (unsigned long long)gen,
			(unsigned long long)min_gen, (unsigned long long)max_gen);
		return -EBADMSG;
	}
	uint8_t key[PFS_KEY_BYTES], mac[PFS_JNL_MAC_SIZE];
	key_derive_slot(cluster_key, slot, gen, key);
	header_mac(key, h, mac);
	sodium_memzero(key, sizeof(key));
	if (sodium_memcmp(mac, h->mac, sizeof(mac)) != 0) {
		pfs_err("slot=%u: journal header fails authentication (wrong key or tampering)",
			slot);
		return -EBADMSG;
	}
	memcpy(out, h, sizeof(*out));
	return 0;
}

/* Seal one record into l->buf; returns its block count. */
static uint32_t seal(struct jlog *l, uint64_t lsn, uint32_t type, uint64_t txseq,
		     const void *payload, size_t plen, uint32_t count, uint32_t nblocks)
{
	struct pfs_jrec_hdr *h = (struct pfs_jrec_hdr *)l->buf;
	uint32_t used = jlog_rec_blocks(plen);
	memset(h, 0, sizeof(*h));
	h->magic = cpu_to_le32(PFS_MAGIC_JREC);
	h->type = cpu_to_le32(type);
	h->lsn = cpu_to_le64(lsn);
	h->generation = cpu_to_le64(l->gen);
	h->txseq = cpu_to_le64(txseq);
	h->slot = cpu_to_le32(l->slot);
	h->nblocks = cpu_to_le32(nblocks ? nblocks : used);
	h->payload_len = cpu_to_le32((uint32_t)plen);
	h->count = cpu_to_le32(count);
	randombytes_buf(h->nonce, sizeof(h->nonce));
	unsigned long long clen;
	crypto_aead_xchacha20poly1305_ietf_encrypt(l->buf + sizeof(*h), &clen, payload, plen,
						   (const uint8_t *)h, sizeof(*h), NULL,
						   h->nonce, l->key);
	size_t end = sizeof(*h) + (size_t)clen;
	memset(l->buf + end, 0, (size_t)used * PFS_BLOCK_SIZE - end);
	return used;
}

int jlog_append(struct jlog *l, uint32_t type, uint64_t txseq, const void *payload,
		size_t plen, uint32_t count)
{
	PFS_BUG_ON(plen > REC_MAX_PAYLOAD);
	uint32_t nb = jlog_rec_blocks(plen);
	uint64_t pos = l->head % l->area;
	int err;

	if (pos + nb > l->area) {                                    /* L1 */
		uint32_t pad = (uint32_t)(l->area - pos);
		if (l->head + pad + nb - l->tail > l->area)
			return -ENOSPC;                              /* L2 */
		seal(l, l->head, PFS_JREC_PAD, txseq, NULL, 0, 0, pad);
		err = bio_write(l->dev, jlog_pos(l, l->head), 1, l->buf);
		if (err)
			return err;
		l->head += pad;
	}
	if (l->head + nb - l->tail > l->area)
		return -ENOSPC;                                      /* L2 */
	seal(l, l->head, type, txseq, payload, plen, count, 0);
	err = bio_write(l->dev, jlog_pos(l, l->head), nb, l->buf);
	if (err)
		return err;
	l->head += nb;
	return 0;
}

/* Is the header in blk a plausible record header for lsn? */
static bool plausible(const struct jlog *l, const struct pfs_jrec_hdr *h, uint64_t lsn)
{
	uint64_t pos = lsn % l->area;
	uint32_t nb = le32_to_cpu(h->nblocks);
	uint32_t plen = le32_to_cpu(h->payload_len);
	uint32_t type = le32_to_cpu(h->type);
	return le32_to_cpu(h->magic) == PFS_MAGIC_JREC && le64_to_cpu(h->lsn) == lsn &&
	       le64_to_cpu(h->generation) == l->gen && le32_to_cpu(h->slot) == l->slot &&
	       type >= PFS_JREC_BEGIN && type <= PFS_JREC_PAD && nb >= 1 &&
	       pos + nb <= l->area && plen <= REC_MAX_PAYLOAD &&
	       (type == PFS_JREC_PAD || jlog_rec_blocks(plen) == nb);
}

int jlog_read(struct jlog *l, uint64_t lsn, struct pfs_jrec_hdr *h, uint8_t **payload)
{
	int err = bio_read(l->dev, jlog_pos(l, lsn), 1, l->buf);
	if (err)
		return err;
	memcpy(h, l->buf, sizeof(*h));
	if (!plausible(l, h, lsn))
		return -ENOENT;
	uint32_t plen = le32_to_cpu(h->payload_len);
	uint32_t used = jlog_rec_blocks(plen);
	if (used > 1) {
		err = bio_read(l->dev, jlog_pos(l, lsn) + 1, used - 1, l->buf + PFS_BLOCK_SIZE);
		if (err)
			return err;
	}
	unsigned long long mlen;
	uint8_t *ct = l->buf + sizeof(*h);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(l->pbuf, &mlen, NULL, ct,
						       plen + PFS_JREC_TAG_SIZE,
						       l->buf, sizeof(*h), h->nonce,
						       l->key) != 0)
		return -EBADMSG;
	if (mlen != plen)
		return -EBADMSG;
	*payload = l->pbuf;
	return 0;
}
