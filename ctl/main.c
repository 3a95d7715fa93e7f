/*
 * peerfsctl -- inspect and administer a peerfs volume.
 *
 *   peerfsctl status DEVICE      volume, slots, heartbeats, registrations
 *   peerfsctl help
 *
 * status reads only the superblock and the slot table (metadata that is
 * checksummed but not encrypted), so it needs no key and never writes.
 * Exit status: 0 success, 1 bad usage, 8 operational error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pfs_fs.h"
#include "pfs_util.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: peerfsctl status DEVICE\n"
		   "       peerfsctl help\n"
		   "See peerfsctl(8).\n");
}

static const char *slot_state_name(uint32_t s)
{
	switch (s) {
	case PFS_SLOT_FREE: return "free";
	case PFS_SLOT_MOUNTED: return "mounted";
	case PFS_SLOT_RECOVERING: return "recovering";
	default: return "invalid";
	}
}

static void fmt_age(uint64_t then_ns, char *buf, size_t len)
{
	uint64_t now = pfs_now_real_ns();
	if (then_ns == 0) {
		snprintf(buf, len, "never");
		return;
	}
	if (then_ns > now) {
		snprintf(buf, len, "in the future");
		return;
	}
	double s = (double)(now - then_ns) / 1e9;
	snprintf(buf, len, "%.1fs ago", s);
}

static int cmd_status(const char *device)
{
	struct bio_dev *dev;
	struct pfs_super sb;
	bool backup;
	uint8_t *blk = aligned_alloc(PFS_BLOCK_SIZE, PFS_BLOCK_SIZE);
	int err;

	if (!blk)
		return 8;
	err = bio_open(device, false, &dev);
	if (err) {
		fprintf(stderr, "peerfsctl: cannot open %s: %s\n", device, strerror(-err));
		free(blk);
		return 8;
	}
	err = vol_read_super(dev, &sb, &backup);
	if (err) {
		fprintf(stderr, "peerfsctl: %s: %s\n", device,
			err == -ENOENT ? "not a peerfs volume" : "superblock corrupt");
		goto out_close;
	}
	err = vol_check_super(&sb, bio_nblocks(dev));
	if (err) {
		fprintf(stderr, "peerfsctl: %s: superblock inconsistent\n", device);
		goto out_close;
	}
	char uuid[37];
	uuid_format(sb.uuid, uuid);
	uint32_t seed = (uint32_t)le64_to_cpu(sb.csum_seed);
	uint32_t nslots = le32_to_cpu(sb.max_slots);
	printf("volume %s label '%.64s'%s\n", uuid, sb.label, backup ? " (backup superblock)" : "");
	printf("  size %llu blocks (%llu MiB), %u groups, %u slots, journal %llu blocks per slot\n",
	       (unsigned long long)le64_to_cpu(sb.block_count),
	       (unsigned long long)(le64_to_cpu(sb.block_count) * PFS_BLOCK_SIZE >> 20),
	       le32_to_cpu(sb.group_count), nslots,
	       (unsigned long long)le64_to_cpu(sb.journal_blocks));
	printf("%-5s %-10s %-6s %-16s %-8s %-10s %-14s %s\n", "slot", "state", "gen",
	       "host", "pid", "hb-seq", "heartbeat", "registration");
	uint64_t tbl = le64_to_cpu(sb.slot_table_start);
	for (uint32_t s = 0; s < nslots; s++) {
		struct pfs_heartbeat hb;
		struct pfs_slot rec;
		err = bio_read(dev, tbl + 2ull * s, 1, blk);
		if (err)
			goto out_close;
		if (pfs_meta_verify(blk, tbl + 2ull * s, PFS_MAGIC_HEARTBEAT, seed)) {
			printf("%-5u heartbeat block corrupt\n", s);
			continue;
		}
		memcpy(&hb, blk, sizeof(hb));
		err = bio_read(dev, tbl + 2ull * s + 1, 1, blk);
		if (err)
			goto out_close;
		if (pfs_meta_verify(blk, tbl + 2ull * s + 1, PFS_MAGIC_SLOT, seed)) {
			printf("%-5u slot record corrupt\n", s);
			continue;
		}
		memcpy(&rec, blk, sizeof(rec));
		char age[32], reg[48];
		fmt_age(le64_to_cpu(hb.time_ns), age, sizeof(age));
		if (le32_to_cpu(rec.reg_status) == PFS_REG_ACTIVE)
			snprintf(reg, sizeof(reg), "active (counterpart %u)",
				 le32_to_cpu(rec.reg_counterpart));
		else
			snprintf(reg, sizeof(reg), "inactive");
		printf("%-5u %-10s %-6llu %-16.16s %-8u %-10llu %-14s %s\n", s,
		       slot_state_name(le32_to_cpu(rec.state)),
		       (unsigned long long)le64_to_cpu(rec.generation),
		       rec.hostname[0] ? rec.hostname : "-", le32_to_cpu(rec.owner_pid),
		       (unsigned long long)le64_to_cpu(hb.seq), age, reg);
	}
	err = 0;
out_close:
	bio_close(dev);
	free(blk);
	return err ? 8 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 1;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "status") == 0) {
		if (argc != 3) {
			usage(stderr);
			return 1;
		}
		return cmd_status(argv[2]);
	}
	fprintf(stderr, "peerfsctl: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 1;
}
