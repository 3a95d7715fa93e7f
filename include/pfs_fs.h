/*
 * pfs_fs.h -- the mounted filesystem: the volume context shared by the
 * modules of fs/ and journal/, the in-memory inode, and each module's API.
 *
 * Global lock order (outermost first); a thread never takes an earlier lock
 * while holding a later one:
 *   1. fs->lock         the filesystem lock: every field marked
 *                       "protected by fs->lock", every in-memory inode, the
 *                       contents of every buffer, the allocator, the
 *                       running transaction.
 *   2. bcache internal  (pfs_bcache.h), taken and dropped inside calls.
 *   3. bio internal     (pfs_bio.h), counters and fault state only.
 * The coordinator's own locks (pfs_coord.h) are taken inside coord_*
 * calls, after fs->lock and fs/glock.c's gl->mu when those are held; an
 * advisory lock request that waits (fs/ops_lock.c) holds no lock of the
 * filesystem while it waits.
 * Apart from that order, the backout engine's run lock
 * (recovery/backout.c) is taken alone: no other lock is taken and no I/O
 * or callback runs while it is held.
 * Functions of the modules below expect fs->lock held unless their comment
 * says otherwise; the FUSE entry points (fs/ops_*.c) take it.
 *
 * Errors are negative errno values everywhere inside; they are turned into
 * a FUSE reply exactly once, at the edge (fs/ops_*.c).  -EUCLEAN means the
 * volume is corrupt; -EIO means the device failed.  An -EIO from a write,
 * a flush or a write-back fences the node (fs_fence): from then on every
 * request fails with -EIO and nothing more is written until a remount.
 */
#ifndef PFS_FS_H
#define PFS_FS_H

#include <pthread.h>
#include <stdint.h>
#include <stdbool.h>
#include <time.h>
#include <sys/types.h>

#include "pfs_format.h"
#include "pfs_bio.h"
#include "pfs_bcache.h"
#include "pfs_btree.h"
#include "pfs_key.h"

struct tx_state;
struct inode;
struct jnl;
struct pfs_glocks;
struct peer_state;
struct gl_names;

enum pfs_data_mode { PFS_DATA_UNDO = 0, PFS_DATA_ORDERED = 1 };

/* Mount options (fs/main.c parses them). */
struct pfs_opts {
	char *device;
	char *keyfile;          /* NULL: the default path from the UUID */
	int node;               /* slot, -1 = first free */
	int commit_ms;          /* group commit interval, default 1000 */
	enum pfs_data_mode data_mode;
	uint64_t cache_bytes;   /* block cache bound */
	int heartbeat_ms;       /* default 500 */
	int dead_ms;            /* default 3000 */
	double attr_timeout;    /* kernel attribute/entry cache, seconds */
	int fence_ms;           /* fence after beats failed this long (< dead_ms) */
	char *coord;            /* coordination backend: "local" (NULL), "none" */
	bool recovery_manual;   /* dead peers are recovered by an operator */
	unsigned recovery_parallelism;  /* backout workers at most; 0: 2 x CPUs */
	int restart_wait_s;     /* a dead node restarting waits for its
				 * recovery this long (0: refuse; volume.c R2) */
	bool ro;
};

/* Per-group summary kept in memory (mirror of the descriptors). */
struct pfs_group {
	uint32_t free_blocks;   /* protected by fs->lock */
	uint32_t free_inodes;
	uint32_t ndirs;
	uint32_t nblocks;
	bool held;              /* this node holds the group's lock EX (glock.c) */
};

struct pfs_fs {
	pthread_mutex_t lock;           /* the filesystem lock (order 1) */

	struct bio_dev *dev;            /* set at mount, then read-only */
	struct bcache *bc;
	struct pfs_super sb;            /* on-disk copy (little-endian) */

	/* Decoded geometry: read-only after mount. */
	uint64_t nblocks;
	uint64_t group_start;
	uint32_t ngroups;
	uint32_t bpg;                   /* blocks per group */
	uint32_t ipg;                   /* inodes per group */
	uint32_t itb;                   /* inode table blocks per group */
	uint32_t csum_seed;
	uint8_t uuid[PFS_UUID_SIZE];
	uint8_t hash_seed[PFS_HASH_SEED_SIZE];
	uint8_t key[PFS_KEY_BYTES];

	uint32_t slot;                  /* our node slot */
	uint64_t slot_gen;              /* its generation for this mount */
	uint64_t host_id;

	struct pfs_opts opts;

	/* Allocator state: protected by fs->lock. */
	struct pfs_group *groups;
	uint32_t alloc_group;           /* group of the last data allocation */
	uint64_t free_blocks;           /* totals */
	uint64_t free_inodes;

	/* Inode cache: protected by fs->lock. */
	struct inode **itab;
	size_t itab_size;
	size_t ninodes;

	/* Orphans of this slot: protected by fs->lock. */
	uint64_t orphan_head;
	/* Orphans of this slot left because a peer still has them open
	 * (inode.c I5), retried by orphan_retry_remote.  Protected by
	 * fs->lock. */
	struct orphan_wait { uint64_t ino; uint64_t due_ns; uint32_t backoff_ms; } *owait;
	size_t nowait, owait_cap;

	struct tx_state *tx;            /* journal/tx.c */
	struct jnl *jnl;                /* journal/jnl.c; NULL when read-only */
	uint32_t max_write;             /* largest write request (undo fits) */
	uint8_t *scratch;               /* fs/file.c staging; protected by fs->lock */
	size_t scratch_len;

	/* Blocks freed by the running transaction: reusable only after it
	 * commits (alloc.c A5).  Protected by fs->lock. */
	struct pfs_extent_run { uint64_t start; uint32_t len; } *pending;
	size_t npending, pending_cap;
	uint64_t pending_blocks;

	/* Sticky error: set once, never cleared until remount. */
	int fenced;                     /* protected by fs->lock; 0 or -errno */

	void *se;                       /* struct fuse_session *, for notify */

	/* Cluster locks (fs/glock.c); NULL without a coordinator. */
	struct pfs_glocks *gl;
	struct peer_state *peer;        /* recovery/peer.c */
	/* The request under fs->lock changed state (glock.c G3): set by
	 * tx_dirty, cleared by ops_enter.  Protected by fs->lock. */
	bool op_changed;
	/* Inodes freed by the running transaction (like pending block
	 * frees, applied at commit in groups this node holds).  Protected
	 * by fs->lock. */
	struct pfs_ino_free { uint64_t ino; bool is_dir; } *pending_ino;
	size_t npending_ino, pending_ino_cap;
};

/* In-memory inode: decoded on-disk fields plus reference counts. */
struct inode {
	uint64_t ino;
	struct inode *hnext;            /* inode cache chain */
	uint64_t nlookup;               /* kernel references (FUSE lookups) */
	uint32_t nopen;                 /* open file handles */
	uint32_t ref;                   /* in-flight users inside the daemon */
	uint64_t dirty_seq;             /* transaction that last changed it */

	uint32_t mode, uid, gid, nlink;
	uint64_t size, blocks;          /* blocks: 4 KiB units, incl. meta */
	struct timespec atime, mtime, ctime, btime;
	uint64_t generation;
	uint32_t flags;                 /* PFS_IF_* */
	uint32_t rdev;
	uint64_t xattr_blk;
	uint64_t orphan_next;
	uint32_t orphan_slot;           /* with PFS_IF_ORPHAN */
	uint64_t parent;
	uint64_t tree_root;
	uint32_t n_inline;
	uint8_t inline_area[PFS_INLINE_SIZE];

	/* Cluster state (fs/glock.c): the on-disk fields above may have been
	 * changed by another node since they were read (G4); names the
	 * kernel may cache in this directory. */
	bool stale;
	bool gone;                      /* deleted by another node */
	struct gl_names *names;
};

/* ---- fs/volume.c: superblock, geometry, mount and unmount ---- */
/* Open the device, check the superblock and the key, claim a slot, load
 * the allocator, recover our journal and orphans.  Used by the daemon,
 * by fsck and by tests (no FUSE involved). */
int fs_mount(const struct pfs_opts *opts, struct pfs_fs **out);
/* Commit, release the slot, close.  Returns the first error met. */
int fs_unmount(struct pfs_fs *fs);
void pfs_opts_defaults(struct pfs_opts *o);
int vol_read_super(struct bio_dev *dev, struct pfs_super *sb, bool *used_backup);
/* Slot records (V1 of volume.c: the OFD lock on a slot record's bytes). */
int vol_slot_lock(struct pfs_fs *fs, uint32_t s);
void vol_slot_unlock(struct pfs_fs *fs, uint32_t s);
int vol_slot_read(struct pfs_fs *fs, uint32_t s, struct pfs_slot *out);
int vol_slot_write_direct(struct pfs_fs *fs, uint32_t s, const struct pfs_slot *rec);
/* V2: does slot s's disk heartbeat move (watched for two periods)?  1 yes,
 * 0 no, <0 error. */
int vol_slot_heartbeat_live(struct pfs_fs *fs, uint32_t s);
int vol_check_super(const struct pfs_super *sb, uint64_t dev_blocks);
void fs_fence(struct pfs_fs *fs, int err, const char *why);
static inline int fs_check_fenced(struct pfs_fs *fs) { return fs->fenced; }
uint64_t fs_group_first_block(const struct pfs_fs *fs, uint32_t g);

/* ---- fs/glock.c: cluster locks, kernel invalidation, failure detector ---- */
#include "pfs_coord.h"
uint64_t gl_res_inode(uint64_t ino);
uint64_t gl_res_group(uint32_t g);
/* Join the coordinator as fs->slot (mount, before the journal backout). */
int gl_start(struct pfs_fs *fs);
/* Drop locks inherited from a dead incarnation; serve peers' requests. */
int gl_run(struct pfs_fs *fs);
/* Leave (leave = false: a fenced node keeps its locks retained). */
void gl_stop(struct pfs_fs *fs, bool leave);
/* Under fs->lock: make sure res is held in mode.  0, -ERESTART (the
 * request must run again after gl_op_wait, G3), or another error. */
int gl_need(struct pfs_fs *fs, uint64_t res, enum coord_mode mode);
int gl_need_inode(struct pfs_fs *fs, uint64_t ino, enum coord_mode mode);
/* Under fs->lock: take res without waiting: 0 or -EAGAIN. */
int gl_trylock(struct pfs_fs *fs, uint64_t res, enum coord_mode mode);
bool gl_held(struct pfs_fs *fs, uint64_t res, enum coord_mode mode);
/* Without fs->lock: wait for the lock the last gl_need wanted, pin it. */
int gl_op_wait(struct pfs_fs *fs);
/* Without fs->lock: wait up to timeout_ms (< 0: until granted) for res. */
int gl_acquire(struct pfs_fs *fs, uint64_t res, enum coord_mode mode, int timeout_ms);
/* The request ended: unpin. */
void gl_op_done(struct pfs_fs *fs);
/* Opens across nodes (inode.c I5), under fs->lock.  hold/drop: OPEN(ino)
 * SH while this node has the inode open (hold: 0 or an error, never a
 * wait); excl: OPEN(ino) EX without waiting, -EBUSY while a peer (or a
 * dead peer not yet recovered) has it open; drop releases either. */
int gl_open_hold(struct pfs_fs *fs, uint64_t ino);
void gl_open_drop(struct pfs_fs *fs, uint64_t ino);
int gl_open_excl(struct pfs_fs *fs, uint64_t ino);
/* Remember that the kernel may cache name in directory dp. */
void gl_note_name(struct pfs_fs *fs, struct inode *dp, const char *name);
void gl_free_names(struct inode *ip);
int gl_tick(struct pfs_fs *fs, bool disk_beat_ok);
struct coord *gl_coord(struct pfs_fs *fs);
/* Set (or clear) the FUSE session kernel invalidations go to. */
void gl_set_session(struct pfs_fs *fs, void *se);
struct gl_stats { uint64_t try_fail, waits, releases, downgrades, late; };
void gl_stats(struct pfs_fs *fs, struct gl_stats *st);
int vol_read_heartbeat(struct pfs_fs *fs, uint32_t slot, uint64_t *seq);

/* ---- fs/alloc.c: block and inode allocation ---- */
int alloc_init(struct pfs_fs *fs);
void alloc_fini(struct pfs_fs *fs);
/* Allocate a contiguous run of 1..want blocks, near goal if possible.
 * Returns the first block and the count obtained; -ENOSPC if none. */
int alloc_blocks(struct pfs_fs *fs, uint64_t goal, uint32_t want,
		 uint64_t *start, uint32_t *got);
/* Free a run of blocks: takes effect when the running transaction
 * commits (A5). */
int alloc_free_blocks(struct pfs_fs *fs, uint64_t start, uint32_t len);
/* Apply the deferred frees to the bitmaps (start of a commit). */
int alloc_apply_pending(struct pfs_fs *fs);
/* Allocate an inode number; directories spread, files stay near parent. */
int alloc_inode(struct pfs_fs *fs, uint64_t parent, bool is_dir, uint64_t *ino);
int alloc_free_inode(struct pfs_fs *fs, uint64_t ino, bool is_dir);
/* Reread group g's descriptor into the summaries (glock.c G4). */
int alloc_reload_group(struct pfs_fs *fs, uint32_t g);
/* Make sure the groups this node holds have room for a request: blocks
 * and inodes free.  May return -ERESTART (glock.c G3). */
int alloc_reserve(struct pfs_fs *fs, uint64_t blocks, uint32_t inodes);
/* Reread, uncached, the descriptors of groups held by peers (statfs). */
void alloc_refresh_foreign(struct pfs_fs *fs);
/* Groups of deferred frees this node does not hold; fills up to max. */
size_t alloc_foreign_pending(struct pfs_fs *fs, uint32_t *groups, size_t max);
/* Is this block inside a group's data area (not group metadata)? */
bool alloc_block_valid(const struct pfs_fs *fs, uint64_t blk);
/* bt_ops for inode trees (arg is a struct inode_tree *). */
extern const struct bt_ops alloc_bt_ops;

/* ---- fs/inode.c: the inode cache and inode I/O ---- */
int inode_get(struct pfs_fs *fs, uint64_t ino, struct inode **out);
void inode_put(struct pfs_fs *fs, struct inode *ip);
/* The cached inode, without a reference or I/O; NULL if not cached. */
struct inode *inode_peek(struct pfs_fs *fs, uint64_t ino);
/* Another node may have changed inodes first..first+n-1 (glock.c G4). */
void inode_mark_stale(struct pfs_fs *fs, uint64_t first, unsigned n);
/* Before dropping the last kernel or open reference of a cached inode
 * (which may delete it): its lock in EX and a fresh copy (glock.c G3,
 * G4).  Returns the cached inode (NULL if gone from the cache) or NULL
 * with *err = -ERESTART. */
struct inode *inode_ready_to_delete(struct pfs_fs *fs, uint64_t ino, int *err);
/* inode_get, with the inode's cluster lock in EX (for a change). */
int inode_get_ex(struct pfs_fs *fs, uint64_t ino, struct inode **out);
/* inode_get (ex: inode_get_ex) of an inode a directory entry names: a
 * cached copy another node deleted, whose number was reused, becomes the
 * new incarnation (inode.c I5). */
int inode_get_named(struct pfs_fs *fs, uint64_t ino, bool ex, struct inode **out);
/* Encode ip into its inode-table block (crc, transaction). */
int inode_write(struct pfs_fs *fs, struct inode *ip);
int inode_new(struct pfs_fs *fs, struct inode *dir, uint32_t mode,
	      uint32_t uid, uint32_t gid, uint32_t rdev, struct inode **out);
/* Free blocks past newsize, zero the tail of the last block, set size. */
int inode_truncate(struct pfs_fs *fs, struct inode *ip, uint64_t newsize);
/* nlink == 0 and no users: free everything the inode holds. */
int inode_evict_if_dead(struct pfs_fs *fs, struct inode *ip);
void inode_touch(struct inode *ip, bool a, bool m, bool c);
/* A B+tree owned by an inode (its extent map or its directory index).
 * Node blocks are allocated near the inode, counted in ip->blocks, and
 * changed under the running transaction.  After tree operations call
 * inode_tree_sync(), which stores a changed root in the inode and writes
 * the inode. */
struct inode_tree {
	struct bt_tree t;               /* t.arg points back to this struct */
	struct pfs_fs *fs;
	struct inode *ip;
};
void inode_tree_init(struct pfs_fs *fs, struct inode *ip, uint16_t type,
		     struct inode_tree *it);
int inode_tree_sync(struct inode_tree *it);
int inode_decode(const struct pfs_inode *di, uint64_t ino, uint32_t seed, struct inode *ip);
void inode_encode(const struct inode *ip, struct pfs_inode *di, uint32_t seed);
uint64_t inode_table_block(const struct pfs_fs *fs, uint64_t ino, uint32_t *slot_in_block);
/* An open file handle (or directory) of ip comes and goes (I5). */
int inode_open_ref(struct pfs_fs *fs, struct inode *ip);
void inode_open_unref(struct pfs_fs *fs, struct inode *ip);
int orphan_add(struct pfs_fs *fs, struct inode *ip);
int orphan_remove(struct pfs_fs *fs, struct inode *ip);
int orphan_recover(struct pfs_fs *fs);
/* Orphans of this slot that peers still had open (inode.c I5): remember,
 * forget (under fs->lock), and retry the due ones (no lock held). */
void orphan_wait_add(struct pfs_fs *fs, uint64_t ino);
void orphan_wait_del(struct pfs_fs *fs, uint64_t ino);
void orphan_retry_remote(struct pfs_fs *fs);

/* ---- fs/extent.c: logical -> physical block maps ----
 * struct pfs_extent results are in the on-disk (little-endian) encoding. */
/* 1: lblk mapped by *ext; 0: hole, ext->lblk = lblk and ext->len = blocks
 * until the next mapping (UINT32_MAX if none). */
int extent_lookup(struct pfs_fs *fs, struct inode *ip, uint64_t lblk,
		  struct pfs_extent *ext);
/* First mapping that ends after lblk; 0 if none. */
int extent_next(struct pfs_fs *fs, struct inode *ip, uint64_t lblk,
		struct pfs_extent *ext);
/* Map [lblk, lblk+len) (a hole) to [pblk, ...). */
int extent_add(struct pfs_fs *fs, struct inode *ip, uint64_t lblk,
	       uint64_t pblk, uint32_t len, uint32_t flags);
/* Unmap [lblk, lblk+len) and free the blocks. */
int extent_punch(struct pfs_fs *fs, struct inode *ip, uint64_t lblk, uint64_t len);
/* Clear PFS_EXT_UNWRITTEN on [lblk, lblk+len). */
int extent_mark_written(struct pfs_fs *fs, struct inode *ip, uint64_t lblk, uint64_t len);
int extent_destroy(struct pfs_fs *fs, struct inode *ip);

/* ---- fs/dir.c: hash-indexed directories ---- */
uint64_t dir_hash(const struct pfs_fs *fs, const char *name, size_t len);
int dir_lookup(struct pfs_fs *fs, struct inode *dp, const char *name, size_t len,
	       uint64_t *ino, uint8_t *type);
int dir_add(struct pfs_fs *fs, struct inode *dp, const char *name, size_t len,
	    uint64_t ino, uint8_t type);
int dir_remove(struct pfs_fs *fs, struct inode *dp, const char *name, size_t len);
int dir_set(struct pfs_fs *fs, struct inode *dp, const char *name, size_t len,
	    uint64_t ino, uint8_t type);
/* Visit entries from cookie off (0 = start; "." and ".." included, their
 * cookies 1 and 2).  cb returns nonzero to stop; next is the cookie of
 * the entry after this one. */
typedef int (*dir_iter_cb)(void *arg, const char *name, size_t len,
			   uint64_t ino, uint8_t type, uint64_t next);
int dir_iterate(struct pfs_fs *fs, struct inode *dp, uint64_t off,
		dir_iter_cb cb, void *arg);
int dir_is_empty(struct pfs_fs *fs, struct inode *dp);
int dir_destroy(struct pfs_fs *fs, struct inode *dp);

/* ---- fs/xattr.c ---- */
int xattr_get(struct pfs_fs *fs, struct inode *ip, const char *name,
	      void *buf, size_t size);                  /* length or -errno */
int xattr_set(struct pfs_fs *fs, struct inode *ip, const char *name,
	      const void *val, size_t size, int flags);
int xattr_list(struct pfs_fs *fs, struct inode *ip, char *buf, size_t size);
int xattr_remove(struct pfs_fs *fs, struct inode *ip, const char *name);
int xattr_destroy(struct pfs_fs *fs, struct inode *ip);

/* ---- journal/tx.c: transactions and group commit ---- */
int tx_init(struct pfs_fs *fs);
void tx_fini(struct pfs_fs *fs);
/* Mark a buffer as changed by the running transaction (captures its
 * before-image on first change). */
int tx_dirty(struct pfs_fs *fs, struct buf *b);
/* Operation boundaries: a request that changes state runs between them. */
void tx_op_begin(struct pfs_fs *fs);
void tx_op_end(struct pfs_fs *fs);
/* Commit the running transaction and make it durable (fsync, syncfs). */
int tx_commit(struct pfs_fs *fs);
/* Blocks allocated by the running transaction: free again if it is
 * backed out, so their contents need no before-image (file.c F4). */
int tx_note_alloc(struct pfs_fs *fs, uint64_t start, uint32_t len);
/* Sequence of the running transaction, and of the last committed one. */
uint64_t tx_running_seq(const struct pfs_fs *fs);
uint64_t tx_committed_seq(const struct pfs_fs *fs);
bool tx_block_is_new(struct pfs_fs *fs, uint64_t blk);


/* ---- fs/file.c: file data ---- */
ssize_t file_read(struct pfs_fs *fs, struct inode *ip, char *buf, size_t size, off_t off);
ssize_t file_write(struct pfs_fs *fs, struct inode *ip, const char *buf, size_t size, off_t off);
int file_fallocate(struct pfs_fs *fs, struct inode *ip, int mode, off_t off, off_t len);
off_t file_seek_data(struct pfs_fs *fs, struct inode *ip, off_t off, int whence);
/* Zero len bytes at byte off of physical block pblk of ip's data. */
int file_zero_range(struct pfs_fs *fs, struct inode *ip, uint64_t pblk,
		    uint32_t off, uint32_t len);

#endif /* PFS_FS_H */
