/*
 * peerfsctl -- inspect and administer a peerfs volume.
 *
 *   peerfsctl status DEVICE      volume, slots, heartbeats, registrations,
 *                                and the coordinator's view: nodes, heartbeat
 *                                ages, registrations with the progress of a
 *                                running backout, locks (retained ones)
 *   peerfsctl recover DEVICE --node N [-k KEYFILE] [--max-parallelism N]
 *                                recover dead node N as its counterpart,
 *                                with at most N backout workers
 *   peerfsctl help
 *
 * status reads only the superblock and the slot table (metadata that is
 * checksummed but not encrypted) and attaches to the coordinator read-only,
 * so it needs no key and never writes.  recover joins the cluster as a node
 * of its own (a free slot), runs the peer recovery flow of a mounted node
 * (recovery/peer.c) and leaves.
 * Exit status: 0 success, 1 bad usage, 8 operational error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pfs_backout.h"
#include "pfs_fs.h"
#include "pfs_coord.h"
#include "pfs_peer.h"
#include "pfs_util.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: peerfsctl status DEVICE\n"
		   "       peerfsctl recover DEVICE --node N [-k KEYFILE] [--max-parallelism N]\n"
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

static const char *res_type_name(uint64_t res)
{
	switch (res >> COORD_RES_TYPE_SHIFT) {
	case COORD_RES_INODE: return "inode";
	case COORD_RES_GROUP: return "group";
	case COORD_RES_SLOT: return "slot";
	case COORD_RES_FLOCK: return "flock";
	default: return "?";
	}
}

/* A dead node being backed out: each dead transaction's undo blocks done
 * and total, and the worker on it (0: the recovering thread itself). */
static void print_progress(struct coord *c, uint32_t s)
{
	struct coord_progress p;
	if (coord_progress(c, s, &p))
		return;
	printf("      backout: %u dead transaction%s, %s%u worker%s\n", p.ntx,
	       p.ntx == 1 ? "" : "s", p.workers ? "" : "serial, ", p.workers,
	       p.workers == 1 ? "" : "s");
	for (uint32_t k = 0; k < p.ntx && k < COORD_PROGRESS_TX; k++) {
		char who[32];
		if (p.tx[k].durable)
			snprintf(who, sizeof(who), "durable");
		else if (p.tx[k].worker < 0)
			snprintf(who, sizeof(who), "waiting");
		else
			snprintf(who, sizeof(who), "worker %d", p.tx[k].worker);
		printf("      transaction %llu: %llu of %llu undo blocks, %s\n",
		       (unsigned long long)p.tx[k].txseq, (unsigned long long)p.tx[k].undo_done,
		       (unsigned long long)p.tx[k].undo_total, who);
	}
}

/* The coordinator's view (local backend): nodes, registrations, locks. */
static void print_coordinator(const struct pfs_super *sb)
{
	struct coord_config cfg;
	struct coord *c;
	memset(&cfg, 0, sizeof(cfg));
	cfg.spec = "local";
	memcpy(cfg.uuid, sb->uuid, sizeof(cfg.uuid));
	int err = coord_attach_readonly(&cfg, &c);
	if (err) {
		printf("coordinator (local): %s\n", err == -ENOENT ? "no node has joined on this host"
							 : strerror(-err));
		return;
	}
	uint32_t nslots = le32_to_cpu(sb->max_slots);
	uint64_t now = pfs_now_mono_ns();
	printf("coordinator (local):\n");
	printf("%-5s %-7s %-6s %-8s %-12s %-9s %s\n", "node", "state", "gen", "pid",
	       "last beat", "retained", "registration");
	for (uint32_t s = 0; s < nslots; s++) {
		struct coord_node_info ni;
		struct coord_reg_info ri;
		if (coord_node_info(c, s, &ni) || ni.state == COORD_ABSENT)
			continue;
		char reg[64] = "inactive";
		if (coord_reg_info(c, s, &ri) == 0 && ri.status == COORD_REG_ACTIVE) {
			double left = ri.lease_expiry_ns > now ? (double)(ri.lease_expiry_ns - now) / 1e9 : 0;
			snprintf(reg, sizeof(reg), "active: counterpart %u, lease %.1fs left",
				 ri.counterpart, left);
		}
		printf("%-5u %-7s %-6llu %-8d %-12.1f %-9u %s\n", s,
		       coord_node_state_name(ni.state), (unsigned long long)ni.generation, ni.pid,
		       ni.last_beat_ns && ni.last_beat_ns <= now ?
		       (double)(now - ni.last_beat_ns) / 1e9 : 0.0,
		       ni.retained_locks, reg);
		print_progress(c, s);
	}
	enum { MAXL = 4096 };
	struct coord_lock_info *li = calloc(MAXL, sizeof(*li));
	int n = li ? coord_locks(c, li, MAXL) : 0;
	int retained = 0;
	for (int i = 0; i < n; i++)
		retained += li[i].retained;
	printf("locks: %d held or wanted, %d retained by dead nodes\n", n < 0 ? 0 : n, retained);
	for (int i = 0; i < n; i++) {
		if (!li[i].retained && !li[i].waiters)
			continue;
		printf("  %-5s %-12llu holder %-4d %-2s %s%s waiters %u\n", res_type_name(li[i].res),
		       (unsigned long long)(li[i].res & ((1ull << COORD_RES_TYPE_SHIFT) - 1)),
		       li[i].holder == COORD_NO_SLOT ? -1 : (int)li[i].holder,
		       coord_mode_name(li[i].mode), li[i].retained ? "retained" : "held",
		       "", li[i].waiters);
	}
	free(li);

	struct coord_plock *pl = calloc(COORD_PLOCK_MAX, sizeof(*pl));
	n = pl ? coord_plocks(c, pl, COORD_PLOCK_MAX) : 0;
	printf("advisory locks: %d (flock and fcntl)\n", n < 0 ? 0 : n);
	for (int i = 0; i < n; i++) {
		char end[32];
		if (pl[i].end == COORD_PLOCK_EOF)
			snprintf(end, sizeof(end), "EOF");
		else
			snprintf(end, sizeof(end), "%llu", (unsigned long long)pl[i].end);
		printf("  inode %-10llu node %-3u pid %-8d %-5s %-5s %llu-%s\n",
		       (unsigned long long)pl[i].ino, pl[i].slot, pl[i].pid,
		       pl[i].kind == COORD_PLOCK_FLOCK ? "flock" : "fcntl",
		       pl[i].type == COORD_PLOCK_WR ? "write" : "read",
		       (unsigned long long)pl[i].start, end);
	}
	free(pl);
	coord_close(c);
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
	print_coordinator(&sb);
out_close:
	bio_close(dev);
	free(blk);
	return err ? 8 : 0;
}

static int cmd_recover(int argc, char **argv)
{
	const char *device = NULL, *keyfile = NULL;
	long node = -1;
	unsigned maxpar = 0;
	for (int i = 2; i < argc; i++) {
		if ((strcmp(argv[i], "--node") == 0 || strcmp(argv[i], "-n") == 0) && i + 1 < argc) {
			char *end;
			node = strtol(argv[++i], &end, 10);
			if (*end || node < 0 || node >= (long)PFS_MAX_SLOTS) {
				fprintf(stderr, "peerfsctl: --node %s: expected 0..%u\n", argv[i],
					PFS_MAX_SLOTS - 1);
				return 1;
			}
		} else if ((strcmp(argv[i], "--max-parallelism") == 0 || strcmp(argv[i], "-j") == 0) &&
			   i + 1 < argc) {
			if (bo_parse_parallelism(argv[++i], &maxpar)) {
				fprintf(stderr, "peerfsctl: --max-parallelism %s: expected 1..%u\n",
					argv[i], BO_MAX_WORKERS);
				return 1;
			}
		} else if ((strcmp(argv[i], "-k") == 0 || strcmp(argv[i], "--keyfile") == 0) &&
			   i + 1 < argc) {
			keyfile = argv[++i];
		} else if (argv[i][0] != '-' && !device) {
			device = argv[i];
		} else {
			usage(stderr);
			return 1;
		}
	}
	if (!device || node < 0) {
		usage(stderr);
		return 1;
	}
	struct pfs_opts o;
	pfs_opts_defaults(&o);
	o.device = (char *)device;
	o.keyfile = (char *)keyfile;
	o.recovery_manual = true;               /* only the node asked for */
	o.recovery_parallelism = maxpar;
	struct pfs_fs *fs;
	int err = fs_mount(&o, &fs);
	if (err) {
		fprintf(stderr, "peerfsctl: cannot join the cluster of %s: %s\n", device,
			strerror(-err));
		return 8;
	}
	if ((uint32_t)node == fs->slot || (uint32_t)node >= le32_to_cpu(fs->sb.max_slots)) {
		fprintf(stderr, "peerfsctl: node %ld: no such dead node\n", node);
		fs_unmount(fs);
		return 1;
	}
	struct peer_stats st;
	err = peer_recover_node(fs, (uint32_t)node, &st);
	int uerr = fs_unmount(fs);
	if (err) {
		fprintf(stderr, "peerfsctl: recovery of node %ld failed: %s\n", node,
			err == -EBUSY ? "it is alive, or another node is its counterpart"
				      : strerror(-err));
		return 8;
	}
	if (st.total_ms > 0)
		printf("node %ld recovered in %.1f ms: register %.1f, initialize %.1f, scan+backout %.1f, release %u locks %.1f, unregister %.1f\n",
		       node, st.total_ms, st.phase_ms[PEER_REGISTER], st.phase_ms[PEER_INIT],
		       st.phase_ms[PEER_BACKOUT], st.locks_released, st.phase_ms[PEER_RELEASE],
		       st.phase_ms[PEER_UNREGISTER]);
	else
		printf("node %ld: its slot was recovered\n", node);
	return uerr ? 8 : 0;
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
	if (strcmp(argv[1], "recover") == 0)
		return cmd_recover(argc, argv);
	fprintf(stderr, "peerfsctl: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 1;
}
