/*
 * jnlinfo.c -- print where a slot's undo journal lives and what it holds,
 * for tests that tamper with journals.
 *
 *   jnlinfo [-k KEYFILE] [-s SLOT] [-v] IMAGE
 *
 * Output, one record per line as key=value pairs (block numbers are
 * absolute):
 *   volume journal_start=.. journal_blocks=.. max_slots=.. slot_table_start=..
 *          group_start=.. block_count=..
 *   slot slot=S block=.. state=.. generation=.. jstart=.. area=..
 * and with -k (the records are sealed under keys derived from the key):
 *   header copy=C block=.. status=ok|empty|damaged|badmsg [generation=..
 *          hseq=.. tail=.. head=.. clean=..]
 *   rec lsn=.. block=.. nblocks=.. type=BEGIN|IMAGES|COMMIT|ABORT|PAD
 *       txseq=.. count=..
 *   img blkno=..                            (-v: each image of IMAGES)
 *   end lsn=.. block=.. reason=end|torn|badmsg
 *   inflight n=..                           (BEGIN without COMMIT/ABORT)
 * The records are read from the best header's tail as recovery reads
 * them (journal/recover.c); a record that fails authentication is shown
 * with reason=torn when no valid record follows it, badmsg otherwise.
 * Nothing is written.  Exit 0, or 1 on an error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pfs_bio.h"
#include "pfs_fs.h"
#include "pfs_key.h"
#include "pfs_util.h"
#include "../../journal/jlog.h"

static const char *type_name(uint32_t t)
{
	static const char *const names[] = { "?", "BEGIN", "IMAGES", "COMMIT", "ABORT", "PAD" };
	return t <= PFS_JREC_PAD ? names[t] : "?";
}

static int show_records(struct bio_dev *dev, const struct pfs_super *sb,
			const uint8_t key[PFS_KEY_BYTES], uint32_t slot, bool verbose)
{
	uint64_t jstart = le64_to_cpu(sb->journal_start) + (uint64_t)slot * le64_to_cpu(sb->journal_blocks);
	uint32_t seed = (uint32_t)le64_to_cpu(sb->csum_seed);
	uint8_t *blk = aligned_alloc(PFS_BLOCK_SIZE, PFS_BLOCK_SIZE);
	struct pfs_jnl_header best;
	bool found = false;
	int err;

	if (!blk)
		return -ENOMEM;
	memset(&best, 0, sizeof(best));
	for (uint32_t c = 0; c < PFS_JNL_HDR_BLOCKS; c++) {
		struct pfs_jnl_header h;
		err = bio_read(dev, jstart + c, 1, blk);
		if (err) {
			free(blk);
			return err;
		}
		int r = jlog_header_check(blk, jstart + c, seed, slot, key, 0, UINT64_MAX, &h);
		printf("header copy=%u block=%" PRIu64 " status=%s", c, jstart + c,
		       r == 0 ? "ok" : r == -ENOENT ? "empty" : r == -EUCLEAN ? "damaged" : "badmsg");
		if (r == 0) {
			printf(" generation=%" PRIu64 " hseq=%" PRIu64 " tail=%" PRIu64 " head=%" PRIu64
			       " clean=%u", le64_to_cpu(h.generation), le64_to_cpu(h.hseq),
			       le64_to_cpu(h.tail_lsn), le64_to_cpu(h.head_lsn), le32_to_cpu(h.clean));
			if (!found || le64_to_cpu(h.generation) > le64_to_cpu(best.generation) ||
			    (le64_to_cpu(h.generation) == le64_to_cpu(best.generation) &&
			     le64_to_cpu(h.hseq) > le64_to_cpu(best.hseq))) {
				best = h;
				found = true;
			}
		}
		printf("\n");
	}
	free(blk);
	if (!found)
		return 0;

	struct jlog l;
	err = jlog_init(&l, dev, sb, key, slot, le64_to_cpu(best.generation));
	if (err)
		return err;
	uint64_t tail = le64_to_cpu(best.tail_lsn), lsn = tail;
	uint64_t *open_tx = NULL;
	size_t nopen = 0;
	const char *reason = "end";
	while (lsn - tail < l.area) {
		struct pfs_jrec_hdr h;
		uint8_t *payload;
		int r = jlog_read(&l, lsn, &h, &payload);
		if (r == -ENOENT)
			break;
		if (r == -EBADMSG) {
			struct pfs_jrec_hdr nh;
			uint8_t *np;
			uint64_t next = lsn + le32_to_cpu(h.nblocks);
			reason = next - tail < l.area && jlog_read(&l, next, &nh, &np) == 0 ? "badmsg"
											    : "torn";
			break;
		}
		if (r) {
			err = r;
			break;
		}
		uint32_t type = le32_to_cpu(h.type);
		uint64_t txseq = le64_to_cpu(h.txseq);
		printf("rec lsn=%" PRIu64 " block=%" PRIu64 " nblocks=%u type=%s txseq=%" PRIu64
		       " count=%u\n", lsn, jlog_pos(&l, lsn), le32_to_cpu(h.nblocks), type_name(type),
		       txseq, le32_to_cpu(h.count));
		if (type == PFS_JREC_IMAGES && verbose) {
			const struct pfs_jrec_image *im = (const struct pfs_jrec_image *)payload;
			for (uint32_t i = 0; i < le32_to_cpu(h.count); i++)
				printf("img blkno=%" PRIu64 "\n", le64_to_cpu(im[i].blkno));
		}
		if (type == PFS_JREC_BEGIN) {
			uint64_t *n = realloc(open_tx, (nopen + 1) * sizeof(*n));
			if (!n) {
				err = -ENOMEM;
				break;
			}
			open_tx = n;
			open_tx[nopen++] = txseq;
		} else if (type == PFS_JREC_COMMIT || type == PFS_JREC_ABORT) {
			for (size_t i = 0; i < nopen; i++) {
				if (open_tx[i] == txseq) {
					open_tx[i] = open_tx[--nopen];
					break;
				}
			}
		}
		lsn += le32_to_cpu(h.nblocks);
	}
	if (!err) {
		printf("end lsn=%" PRIu64 " block=%" PRIu64 " reason=%s\n", lsn, jlog_pos(&l, lsn), reason);
		printf("inflight n=%zu\n", nopen);
	}
	free(open_tx);
	jlog_fini(&l);
	return err;
}

int main(int argc, char **argv)
{
	const char *keyfile = NULL;
	uint32_t slot = 0;
	bool verbose = false;
	int c;

	while ((c = getopt(argc, argv, "k:s:vh")) != -1) {
		switch (c) {
		case 'k':
			keyfile = optarg;
			break;
		case 's':
			slot = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'v':
			verbose = true;
			break;
		default:
			fprintf(stderr, "usage: jnlinfo [-k KEYFILE] [-s SLOT] [-v] IMAGE\n");
			return c == 'h' ? 0 : 1;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: jnlinfo [-k KEYFILE] [-s SLOT] [-v] IMAGE\n");
		return 1;
	}
	if (key_init() != 0)
		return 1;
	struct bio_dev *dev;
	int err = bio_open(argv[optind], false, &dev);
	if (err) {
		fprintf(stderr, "jnlinfo: cannot open %s: %s\n", argv[optind], strerror(-err));
		return 1;
	}
	struct pfs_super sb;
	bool backup;
	err = vol_read_super(dev, &sb, &backup);
	if (!err)
		err = vol_check_super(&sb, bio_nblocks(dev));
	if (err) {
		fprintf(stderr, "jnlinfo: %s: no valid superblock\n", argv[optind]);
		bio_close(dev);
		return 1;
	}
	uint32_t nslots = le32_to_cpu(sb.max_slots);
	printf("volume journal_start=%" PRIu64 " journal_blocks=%" PRIu64 " max_slots=%u "
	       "slot_table_start=%" PRIu64 " group_start=%" PRIu64 " block_count=%" PRIu64 "\n",
	       le64_to_cpu(sb.journal_start), le64_to_cpu(sb.journal_blocks), nslots,
	       le64_to_cpu(sb.slot_table_start), le64_to_cpu(sb.group_start),
	       le64_to_cpu(sb.block_count));
	if (slot >= nslots) {
		fprintf(stderr, "jnlinfo: slot %u: the volume has %u slots\n", slot, nslots);
		bio_close(dev);
		return 1;
	}
	uint8_t *blk = aligned_alloc(PFS_BLOCK_SIZE, PFS_BLOCK_SIZE);
	uint64_t sblk = le64_to_cpu(sb.slot_table_start) + 2ull * slot + 1;
	if (!blk || bio_read(dev, sblk, 1, blk) != 0 ||
	    pfs_meta_verify(blk, sblk, PFS_MAGIC_SLOT, (uint32_t)le64_to_cpu(sb.csum_seed)) != 0) {
		fprintf(stderr, "jnlinfo: slot record %u (block %" PRIu64 ") unreadable or damaged\n",
			slot, sblk);
		free(blk);
		bio_close(dev);
		return 1;
	}
	const struct pfs_slot *sr = (const struct pfs_slot *)blk;
	uint64_t jstart = le64_to_cpu(sb.journal_start) + (uint64_t)slot * le64_to_cpu(sb.journal_blocks);
	printf("slot slot=%u block=%" PRIu64 " state=%u generation=%" PRIu64 " jstart=%" PRIu64
	       " area=%" PRIu64 "\n", slot, sblk, le32_to_cpu(sr->state),
	       le64_to_cpu(sr->generation), jstart,
	       le64_to_cpu(sb.journal_blocks) - PFS_JNL_HDR_BLOCKS);
	free(blk);
	if (keyfile) {
		uint8_t uuid[PFS_UUID_SIZE], key[PFS_KEY_BYTES];
		err = key_file_read(keyfile, uuid, key);
		if (err) {
			fprintf(stderr, "jnlinfo: cannot read %s: %s\n", keyfile, strerror(-err));
			bio_close(dev);
			return 1;
		}
		err = show_records(dev, &sb, key, slot, verbose);
		if (err)
			fprintf(stderr, "jnlinfo: reading the journal: %s\n", strerror(-err));
	}
	bio_close(dev);
	return err ? 1 : 0;
}
