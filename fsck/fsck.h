/*
 * fsck.h -- private interface of fsck.peerfs: the checker's context, the
 * in-memory truth it computes, and the functions the passes share.
 *
 * Design notes
 *
 * The checker works on the device directly (bio + bcache), never through
 * fs_mount, which needs a healthy volume.  Passes run in order:
 *   0  superblock and backup, key check value     pass0_super.c, keycheck.c
 *   1  slot table: heartbeats, slot records, live  pass1_slots.c,
 *      nodes, undo journals of dead nodes          journal.c
 *   2  group descriptors and bitmaps (structure)  pass2_groups.c
 *   3  inodes, extent maps, xattr blocks          pass3_inodes.c, extents.c,
 *                                                 xattr.c
 *   4  orphan lists, directories, links           orphans.c, pass4_dirs.c,
 *                                                 lost_found.c
 *   5  computed usage against bitmaps and counts  pass5_usage.c
 *
 * The computed truth:
 *   - f->used: one bit per device block, set for the volume's own
 *     metadata (superblocks, slot table, journals, group metadata) and for
 *     every block an inode was found to own (claims.c);
 *   - f->iused: one bit per inode number, set for inodes in use;
 *   - f->itab: one record per inode in use (or damaged but kept), sorted
 *     by inode number (inodes.c).
 * Pass 5 compares that truth with the on-disk bitmaps and counts.
 *
 * Repairs.  Every problem goes through fsck_problem(), which prints one
 * line and says whether to fix it (by mode and by its class, see enum
 * fsck_fix).  A fix changes blocks in the block cache only (marking them
 * dirty); fsck_dev_commit() seals and writes every dirty block and
 * flushes the device at the end.  With -n the device is opened read-only
 * and no fix is ever accepted, so nothing is written.
 *
 * Errors: functions return 0 or a negative errno for operational failures
 * (-EIO for the device, -ENOMEM); corruption is never an error here but a
 * problem reported through fsck_problem().
 */
#ifndef FSCK_H
#define FSCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pfs_format.h"
#include "pfs_bio.h"
#include "pfs_bcache.h"
#include "pfs_btree.h"
#include "pfs_key.h"

#define FSCK_PROG "fsck.peerfs"

/* Exit codes, as e2fsck's. */
#define FSCK_EXIT_CLEAN         0
#define FSCK_EXIT_CORRECTED     1
#define FSCK_EXIT_UNCORRECTED   4
#define FSCK_EXIT_OPERATIONAL   8
#define FSCK_EXIT_USAGE         16

/* Heartbeat watch: two periods of the default 500 ms, plus a margin. */
#define FSCK_HB_WATCH_MS        1200u
#define FSCK_HB_POLL_MS         50u

/* Clean buffers the block cache keeps. */
#define FSCK_CACHE_BYTES        (64ull << 20)

/* Progress lines are shown on a terminal for volumes above this size. */
#define FSCK_PROGRESS_MIN_BYTES (1ull << 30)

/* Largest file: 2^60 bytes (FILE_MAX_BYTES of fs/file.c), in blocks. */
#define FSCK_MAX_FILE_BLOCKS    ((1ull << 60) / PFS_BLOCK_SIZE)

enum fsck_mode {
	FSCK_MODE_CHECK,        /* -n: report only, read-only */
	FSCK_MODE_PREEN,        /* -p: fix the safe problems only */
	FSCK_MODE_YES,          /* -y: fix everything possible */
	FSCK_MODE_ASK,          /* terminal: ask per problem */
};

/* What fixing a problem takes. */
enum fsck_fix {
	FSCK_FIX_SAFE,          /* fixed by -p, -y, or a yes */
	FSCK_FIX_ASK,           /* fixed by -y or a yes, left by -p */
	FSCK_FIX_NONE,          /* cannot be fixed */
};

struct fsck_opts {
	enum fsck_mode mode;
	bool force;             /* -f: accepted, every run is a full check */
	bool verbose;           /* -v */
	const char *keyfile;    /* -k, NULL: the default path */
	const char *device;
};

/* Geometry decoded from the superblock in use. */
struct fsck_geo {
	uint64_t nblocks;               /* block_count */
	uint64_t slot_table_start;
	uint64_t journal_start;
	uint64_t journal_blocks;        /* per slot */
	uint64_t group_start;
	uint64_t ninodes;               /* ngroups * ipg */
	uint32_t nslots;
	uint32_t ngroups;
	uint32_t bpg;
	uint32_t ipg;
	uint32_t itb;
	uint32_t meta;                  /* metadata blocks of a group */
	uint32_t seed;                  /* checksum seed */
};

/* What pass 1 learnt about a slot. */
struct fsck_slot {
	bool rec_ok;            /* the record passed its checks (maybe fixed) */
	bool live;              /* a node has it mounted right now */
	bool process;           /* repair accepted: free orphans, mark FREE */
	bool jnl_bad;           /* its journal cannot be recovered */
	uint32_t state;
	uint64_t orphan_head;
};

/* What pass 2 learnt about a group. */
struct fsck_group {
	uint32_t nblocks;       /* from the geometry */
	bool desc_ok;           /* descriptor passed its checks */
	bool bbm_ok;            /* block bitmap checksummed */
	bool ibm_ok;            /* inode bitmap checksummed */
	bool desc_rebuild;      /* fix accepted: rebuild the descriptor */
	bool bbm_rewrite;       /* fix accepted: rewrite the block bitmap */
	bool ibm_rewrite;       /* fix accepted: rewrite the inode bitmap */
	uint32_t free_blocks;   /* descriptor values, if desc_ok */
	uint32_t free_inodes;
	uint32_t ndirs;
};

/* A bitmap in memory. */
struct fsck_bmap {
	uint64_t nbits;
	uint64_t *w;
};

/* States of an inode record (struct fsck_ino.state). */
#define FI_BAD          0x01u   /* damaged, fix declined: in use, unchecked */
#define FI_REACHED      0x02u   /* found by the directory walk */
#define FI_CLEARED      0x04u   /* freed by a repair */
#define FI_ORPHAN_FLAG  0x08u   /* PFS_IF_ORPHAN on disk */
#define FI_ON_LIST      0x10u   /* on a slot's orphan list */
#define FI_INDEX_BAD    0x20u   /* directory index damaged, fix declined */

/* One inode found in use. */
struct fsck_ino {
	uint64_t ino;
	uint64_t parent;        /* directories: parent field on disk */
	uint64_t found_parent;  /* directories: directory holding its entry */
	uint32_t mode;
	uint32_t nlink;         /* on disk (after repairs) */
	uint32_t counted;       /* links found */
	uint16_t state;         /* FI_* */
	uint16_t orphan_slot;   /* slot + 1 of the list holding it, 0 none */
};

struct fsck_itab {
	struct fsck_ino *v;
	size_t n, cap;
};

/* A run of blocks claimed by an inode (claims.c). */
struct fsck_run {
	uint64_t pblk;
	uint64_t owner;         /* 0: released */
	uint32_t len;
};

struct fsck_claims {
	struct fsck_run *runs;          /* in claim order */
	size_t nruns, cap;
	struct fsck_run *shared;        /* duplicates left in place */
	size_t nshared, shared_cap;
};

struct fsck {
	struct fsck_opts o;
	const char *name;               /* device name for messages */
	struct bio_dev *dev;
	struct bcache *bc;
	bool rw;                        /* the device is open read-write */

	struct pfs_super sb;            /* superblock in use (backup = 0) */
	uint8_t key[PFS_KEY_BYTES];     /* cluster key, if have_key */
	bool have_key;
	struct fsck_geo g;
	void *hash_ctx;                 /* struct pfs_fs for dir_hash */

	struct fsck_slot *slots;
	struct fsck_group *groups;

	struct fsck_bmap used;          /* computed block usage */
	struct fsck_bmap iused;         /* computed inode usage */
	struct fsck_itab itab;
	struct fsck_claims claims;
	bool alloc_ready;               /* pass 3 done: allocation allowed */
	uint64_t lost_found;            /* its inode, 0 unknown */

	/* Report state. */
	unsigned long problems, fixed, left;
	bool yes_to_all;                /* interactive "a" */
	bool progress;                  /* show progress lines */
	bool progress_shown;
	int progress_pass;              /* last progress line drawn */
	unsigned progress_pct;
};

/* ---- report.c ---- */
bool fsck_problem(struct fsck *f, enum fsck_fix cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void fsck_warn(struct fsck *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void fsck_info(struct fsck *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void fsck_verbose(struct fsck *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* An operational failure: print it on stderr, return err. */
int fsck_fail(struct fsck *f, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void fsck_progress(struct fsck *f, int pass, uint64_t done, uint64_t total);
void fsck_progress_end(struct fsck *f);
/* Can fixes be written at all (device open read-write)? */
bool fsck_can_fix(const struct fsck *f);

/* ---- device.c ---- */
int fsck_dev_open(struct fsck *f);
/* Create the block cache once the checksum seed is known. */
int fsck_dev_cache(struct fsck *f);
void fsck_dev_close(struct fsck *f);
/* Read one block without the cache (for checks of damaged blocks). */
int fsck_dev_read(struct fsck *f, uint64_t blk, void *buf);
/* Take the slot-record locks a mount takes (repair modes): -EBUSY with
 * *slot set if a process on this host holds one. */
int fsck_dev_lock_slots(struct fsck *f, uint32_t *slot);
/* Is slot s's record locked by a process on this host? */
bool fsck_dev_slot_locked(struct fsck *f, uint32_t s);
/* Get block blk as a zeroed metadata buffer, or the cached one, to
 * rebuild it; marks it dirty.  Caller puts the buffer. */
int fsck_dev_rebuild(struct fsck *f, uint64_t blk, struct buf **out);
void fsck_dev_dirty(struct fsck *f, struct buf *b);
/* Seal and write every dirty buffer, then flush. */
int fsck_dev_commit(struct fsck *f);

/* ---- bitmap.c ---- */
int fsck_bmap_init(struct fsck_bmap *m, uint64_t nbits);
void fsck_bmap_free(struct fsck_bmap *m);
bool fsck_bmap_test(const struct fsck_bmap *m, uint64_t i);
void fsck_bmap_set(struct fsck_bmap *m, uint64_t i);
void fsck_bmap_clear(struct fsck_bmap *m, uint64_t i);
void fsck_bmap_set_range(struct fsck_bmap *m, uint64_t from, uint64_t len);
/* First set bit in [from, to), or to. */
uint64_t fsck_bmap_next_set(const struct fsck_bmap *m, uint64_t from, uint64_t to);
/* First clear bit in [from, to), or to. */
uint64_t fsck_bmap_next_clear(const struct fsck_bmap *m, uint64_t from, uint64_t to);
uint64_t fsck_bmap_count(const struct fsck_bmap *m, uint64_t from, uint64_t to);
/* Bits of an on-disk bitmap block (bit i: byte i/8, bit i%8). */
bool fsck_disk_bit(const void *blk, uint32_t i);
void fsck_disk_bit_set(void *blk, uint32_t i, bool on);

/* ---- claims.c ---- */
int fsck_claims_init(struct fsck *f);
void fsck_claims_fini(struct fsck *f);
uint64_t fsck_group_first(const struct fsck *f, uint32_t g);
/* Is blk inside a group's data area? */
bool fsck_block_valid(const struct fsck *f, uint64_t blk);
/* Why [pblk, pblk+len) is not a run inside one group's data area, or NULL. */
const char *fsck_run_problem(const struct fsck *f, uint64_t pblk, uint64_t len);
/* Claim a valid run for inode owner.  0: claimed; 1: some blocks were
 * claimed already and the fix (drop this claim) was accepted, so nothing
 * is claimed; or -errno. */
int fsck_claim(struct fsck *f, uint64_t owner, uint64_t pblk, uint32_t len);
/* Mark a run claimed without any check (repairs allocating blocks). */
int fsck_claim_new(struct fsck *f, uint64_t owner, uint64_t pblk, uint32_t len);
/* Give back a run owner claimed. */
void fsck_unclaim(struct fsck *f, uint64_t owner, uint64_t pblk, uint32_t len);
/* Allocate a block for owner (pass 4 and later), near goal. */
int fsck_alloc_block(struct fsck *f, uint64_t owner, uint64_t goal, uint64_t *blk);

/* ---- inodes.c ---- */
bool fsck_ino_valid(const struct fsck *f, uint64_t ino);
uint64_t fsck_ino_block(const struct fsck *f, uint64_t ino, uint32_t *slot);
/* The inode-table buffer holding ino, and the inode in it. */
int fsck_ino_read(struct fsck *f, uint64_t ino, struct buf **b,
		  struct pfs_inode **di);
bool fsck_ino_crc_ok(const struct fsck *f, const struct pfs_inode *di);
void fsck_ino_seal(const struct fsck *f, struct pfs_inode *di);
/* Seal di (inside b) and mark b dirty. */
void fsck_ino_dirty(struct fsck *f, struct buf *b, struct pfs_inode *di);
struct fsck_ino *fsck_itab_find(struct fsck *f, uint64_t ino);
struct fsck_ino *fsck_itab_add(struct fsck *f, const struct fsck_ino *rec);
/* In use: a record that is not cleared. */
struct fsck_ino *fsck_itab_live(struct fsck *f, uint64_t ino);
/* Free inode ino: give back its blocks, zero it (keeping its
 * generation), drop it from the computed usage. */
int fsck_ino_free(struct fsck *f, uint64_t ino);
uint8_t fsck_dtype(uint32_t mode);

/* ---- extents.c ---- */
/* What an extent map holds after its check. */
struct fsck_map_info {
	uint64_t blocks;        /* data blocks and tree nodes */
	uint64_t written_end;   /* end (file blocks) of the last written extent */
	bool maps_block0;       /* file block 0 is mapped */
};
/* Check the extent map of a regular file or symlink (pass 3) in the
 * working copy di and claim its blocks; *changed is set if di changed. */
int fsck_extents_check(struct fsck *f, uint64_t ino, struct pfs_inode *di,
		       struct fsck_map_info *mi, bool *changed);
/* Walk a directory index (pass 3): claim its nodes. */
int fsck_dir_index_check(struct fsck *f, uint64_t ino, struct pfs_inode *di,
			 uint64_t *counted, bool *changed, bool *bad);
/* Give back every block a checked inode owns (map, index, xattr). */
int fsck_map_release(struct fsck *f, uint64_t ino, const struct pfs_inode *di);

/* ---- xattr.c ---- */
int fsck_xattr_check(struct fsck *f, uint64_t ino, struct pfs_inode *di,
		     uint64_t *counted, bool *changed);

/* ---- tree.c: B+tree operations for repairs ---- */
struct fsck_tree {
	struct bt_tree t;               /* t.arg points back here */
	struct fsck *f;
	int64_t dblocks;                /* node blocks allocated - freed */
};
void fsck_tree_init(struct fsck *f, struct fsck_tree *ft, uint64_t owner,
		    uint16_t type, uint64_t root);

/* ---- dirent.c ---- */
/* Entries of a directory, copied out of its index. */
struct fsck_dent {
	uint64_t key;
	size_t off;                     /* value bytes in the arena */
	uint16_t vlen;
};
struct fsck_dents {
	struct fsck_dent *v;
	size_t n, cap;
	uint8_t *arena;
	size_t used, size;
};
uint64_t fsck_dir_hash(struct fsck *f, const char *name, size_t len);
int fsck_dents_load(struct fsck *f, uint64_t dir, uint64_t root,
		    struct fsck_dents *d);
void fsck_dents_free(struct fsck_dents *d);
const uint8_t *fsck_dent_val(const struct fsck_dents *d, size_t i);
/* Why a record is not a well-formed entry, or NULL. */
const char *fsck_dent_problem(const uint8_t *val, uint16_t vlen);
/* Field access for a well-formed entry value. */
uint64_t fsck_dent_ino(const uint8_t *val);
uint8_t fsck_dent_type(const uint8_t *val);
uint8_t fsck_dent_name_len(const uint8_t *val);
const char *fsck_dent_name(const uint8_t *val);
/* Delete the record (key, val) from tree ft. */
int fsck_dir_delete(struct fsck_tree *ft, uint64_t key, const uint8_t *val,
		    uint16_t vlen);
/* Replace the record (key, val) by (key, nval) of the same length. */
int fsck_dir_update(struct fsck_tree *ft, uint64_t key, const uint8_t *val,
		    const uint8_t *nval, uint16_t vlen);
int fsck_dir_insert(struct fsck *f, struct fsck_tree *ft, const char *name,
		    size_t len, uint64_t ino, uint8_t type);
/* Store ft's root and block change into directory dir (size per D5). */
int fsck_dir_sync(struct fsck *f, uint64_t dir, struct fsck_tree *ft);
/* Add one entry to directory dir (opens, inserts, syncs). */
int fsck_dir_add(struct fsck *f, uint64_t dir, const char *name, size_t len,
		 uint64_t ino, uint8_t type);
/* Does directory dir hold an entry named name?  1 yes, 0 no. */
int fsck_dir_has(struct fsck *f, uint64_t dir, const char *name, size_t len,
		 uint64_t *ino);

/* ---- lost_found.c ---- */
/* Make a new empty directory: at inode ino (0: allocate one) under parent
 * (its own number for the root).  The parent's link count goes up. */
int fsck_make_dir(struct fsck *f, uint64_t ino, uint64_t parent,
		  uint32_t perm, uint64_t *out);
/* Link inode ino into /lost+found (created if missing). */
int fsck_reconnect(struct fsck *f, uint64_t ino);

/* ---- orphans.c ---- */
int fsck_orphans_scan(struct fsck *f);
/* Free the orphans of slots being repaired, mark those slots FREE. */
int fsck_orphans_finish(struct fsck *f);

/* ---- keycheck.c ---- */
/* Verify the key (kept in f->key when readable). */
int fsck_key_check(struct fsck *f);

/* ---- journal.c ---- */
/* Recover the undo journal of dead slot s, whose record says generation
 * gen (pass 1, before anything else is read). */
int fsck_journal_slot(struct fsck *f, uint32_t s, uint64_t gen);

/* ---- passes ---- */
int fsck_pass0_super(struct fsck *f);
int fsck_pass1_slots(struct fsck *f);
int fsck_pass2_groups(struct fsck *f);
int fsck_pass3_inodes(struct fsck *f);
int fsck_pass4_dirs(struct fsck *f);
int fsck_pass5_usage(struct fsck *f);

/* Slot-table blocks of slot s. */
static inline uint64_t fsck_slot_hb_block(const struct fsck *f, uint32_t s)
{
	return f->g.slot_table_start + 2ull * s;
}

static inline uint64_t fsck_slot_rec_block(const struct fsck *f, uint32_t s)
{
	return f->g.slot_table_start + 2ull * s + 1;
}

#endif /* FSCK_H */
