/*
 * pfs_format.h -- the peerfs on-disk format.
 *
 * This header is the single source of truth for every byte peerfs puts on
 * a device.  man/peerfs.5 describes the same layout for users; when the two
 * disagree, this file is right and the man page is a bug.
 *
 * Conventions
 *   - Every multi-byte integer is little-endian and of fixed width.  Structs
 *     here describe the bytes on disk; code never dereferences them on a
 *     big-endian host without the le*_to_cpu helpers in pfs_endian.h.
 *   - Each struct carries its byte offsets in comments and a _Static_assert
 *     on its size.  Fields are naturally aligned so the structs have no
 *     implicit padding.
 *   - The block size is 4096 bytes.  Block numbers are 64 bits and count
 *     from the start of the device.
 *   - Every metadata block begins with struct pfs_blk_hdr: a magic per block
 *     type, a crc32c of the whole block (with the crc field taken as zero,
 *     seeded with the volume's checksum seed), the block's own number (a
 *     misdirected write fails the check) and the inode that owns it.
 *     Inodes are 256-byte records packed 16 to a block; each inode carries
 *     its own magic and crc32c instead.
 *   - A checksum mismatch is corruption (EUCLEAN), never an I/O error.
 *
 * Layout of a volume
 *
 *   block 0                 superblock (primary)
 *   block 1                 reserved (zero)
 *   slot_table_start        per slot s (0 <= s < max_slots), two blocks:
 *                             slot_table_start + 2*s     heartbeat block
 *                             slot_table_start + 2*s + 1 slot record
 *   journal_start           per slot s, journal_blocks blocks:
 *                             journal_start + s * journal_blocks
 *   group_start             allocation groups, group g at
 *                             group_start + g * blocks_per_group
 *                           (the last group may be shorter)
 *   block_count - 1         backup superblock
 *
 * An allocation group:
 *   +0                      group descriptor
 *   +1                      block bitmap (bit i = block +i of the group)
 *   +2                      inode bitmap (bit i = inode i of the group)
 *   +3 .. +3+itb-1          inode table (itb = inode_table_blocks)
 *   +3+itb ..               data blocks
 * The group's own metadata blocks are marked used in its block bitmap.
 *
 * Inode numbers: ino = g * inodes_per_group + i + 1 for inode i of group g.
 * Inode 0 does not exist; inode 1 is the root directory (FUSE_ROOT_ID).
 */
#ifndef PFS_FORMAT_H
#define PFS_FORMAT_H

#include <stdint.h>

typedef uint16_t le16;
typedef uint32_t le32;
typedef uint64_t le64;

#define PFS_BLOCK_SIZE          4096u
#define PFS_BLOCK_SHIFT         12
#define PFS_SECTOR_SIZE         512u

/* Version of this layout.  A change that old code would misread bumps an
 * incompat feature bit instead of this number. */
#define PFS_FORMAT_VERSION      1

/* Magic numbers, one per block type (ASCII, little-endian). */
#define PFS_MAGIC_SUPER         0x53465250u /* "PRFS" */
#define PFS_MAGIC_HEARTBEAT     0x54424850u /* "PHBT" */
#define PFS_MAGIC_SLOT          0x544c5350u /* "PSLT" */
#define PFS_MAGIC_GROUP         0x50524750u /* "PGRP" */
#define PFS_MAGIC_BBITMAP       0x424d4250u /* "PBMB" */
#define PFS_MAGIC_IBITMAP       0x494d4250u /* "PBMI" */
#define PFS_MAGIC_BTREE         0x45525450u /* "PTRE" */
#define PFS_MAGIC_XATTR         0x54415850u /* "PXAT" */
#define PFS_MAGIC_INODE         0x4e49u     /* "IN" (16 bits) */
#define PFS_MAGIC_JOURNAL       0x4c4e4a50u /* "PJNL" journal header */

/* Feature masks.  A mount refuses any incompat bit it does not know; a
 * read-write mount refuses unknown ro_compat bits; compat bits are
 * advisory. */
#define PFS_FEATURE_COMPAT_NONE         0u
#define PFS_FEATURE_RO_COMPAT_NONE      0u
#define PFS_FEATURE_INCOMPAT_UNDO_JOURNAL 0x1u /* per-slot undo logs */
#define PFS_FEATURE_INCOMPAT_EXTENTS    0x2u   /* extent-mapped files */
#define PFS_FEATURE_INCOMPAT_HASHDIR    0x4u   /* hash-indexed directories */

#define PFS_FEATURE_COMPAT_SUPP         PFS_FEATURE_COMPAT_NONE
#define PFS_FEATURE_RO_COMPAT_SUPP      PFS_FEATURE_RO_COMPAT_NONE
#define PFS_FEATURE_INCOMPAT_SUPP \
	(PFS_FEATURE_INCOMPAT_UNDO_JOURNAL | PFS_FEATURE_INCOMPAT_EXTENTS | \
	 PFS_FEATURE_INCOMPAT_HASHDIR)

/* Limits. */
#define PFS_MAX_SLOTS           256u
#define PFS_DEFAULT_SLOTS       8u
#define PFS_NAME_MAX            255u
#define PFS_SYMLINK_MAX         4095u
#define PFS_LABEL_MAX           64u
#define PFS_UUID_SIZE           16u
#define PFS_KEY_CHECK_SIZE      32u
#define PFS_HASH_SEED_SIZE      16u
#define PFS_ROOT_INO            1u
#define PFS_INODE_SIZE          256u
#define PFS_INODES_PER_BLOCK    (PFS_BLOCK_SIZE / PFS_INODE_SIZE)

/* ------------------------------------------------------------------ */
/* Common metadata block header.                                        */
/* ------------------------------------------------------------------ */
struct pfs_blk_hdr {
	le32 magic;             /*  0: PFS_MAGIC_* of this block type */
	le32 crc;               /*  4: crc32c(seed, block with crc = 0) */
	le64 blkno;             /*  8: this block's own number */
	le64 owner;             /* 16: owning inode, 0 for volume metadata */
	le64 seq;               /* 24: commit sequence that last wrote it */
};                              /* 32 */
_Static_assert(sizeof(struct pfs_blk_hdr) == 32, "pfs_blk_hdr size");

/* ------------------------------------------------------------------ */
/* Superblock: block 0, backup copy in the last block of the device.    */
/* ------------------------------------------------------------------ */
struct pfs_super {
	struct pfs_blk_hdr hdr;         /*   0: magic PFS_MAGIC_SUPER */
	le32 version;                   /*  32: PFS_FORMAT_VERSION */
	le32 block_size;                /*  36: 4096 */
	le32 feature_compat;            /*  40 */
	le32 feature_ro_compat;         /*  44 */
	le32 feature_incompat;          /*  48 */
	le32 max_slots;                 /*  52: node slots (1..PFS_MAX_SLOTS) */
	le64 block_count;               /*  56: blocks on the device */
	uint8_t uuid[PFS_UUID_SIZE];    /*  64 */
	char label[PFS_LABEL_MAX];      /*  80: NUL-padded */
	le64 slot_table_start;          /* 144 */
	le64 journal_start;             /* 152 */
	le64 journal_blocks;            /* 160: per slot */
	le64 group_start;               /* 168 */
	le32 group_count;               /* 176 */
	le32 blocks_per_group;          /* 180: <= PFS_BITMAP_BITS */
	le32 inodes_per_group;          /* 184: multiple of 16, <= bits */
	le32 inode_table_blocks;        /* 188: per group */
	le64 root_ino;                  /* 192: PFS_ROOT_INO */
	le64 create_time;               /* 200: seconds since the epoch */
	le64 csum_seed;                 /* 208: crc32c seed for all blocks */
	uint8_t key_check[PFS_KEY_CHECK_SIZE]; /* 216: see pfs_key.h */
	uint8_t hash_seed[PFS_HASH_SEED_SIZE]; /* 248: SipHash key for names */
	le32 backup;                    /* 264: 1 in the backup copy */
	le32 reserved0;                 /* 268 */
	le64 reserved[30];              /* 272 */
};                                      /* 512 */
_Static_assert(sizeof(struct pfs_super) == 512, "pfs_super size");

/* ------------------------------------------------------------------ */
/* Node slots.                                                          */
/* ------------------------------------------------------------------ */

/* Heartbeat block: rewritten by the owning node every heartbeat period.
 * A node whose disk heartbeat advances is alive, whatever else says. */
struct pfs_heartbeat {
	struct pfs_blk_hdr hdr;         /*  0: magic PFS_MAGIC_HEARTBEAT */
	le32 slot;                      /* 32 */
	le32 reserved0;                 /* 36 */
	le64 generation;                /* 40: slot generation of the writer */
	le64 seq;                       /* 48: +1 per beat */
	le64 time_ns;                   /* 56: CLOCK_REALTIME of the beat */
	le64 host_id;                   /* 64: random id of the writer */
	le64 reserved[7];               /* 72 */
};                                      /* 128 */
_Static_assert(sizeof(struct pfs_heartbeat) == 128, "pfs_heartbeat size");

/* Slot states. */
#define PFS_SLOT_FREE           0u  /* no owner, journal clean */
#define PFS_SLOT_MOUNTED        1u  /* owned by a live (or dead) node */
#define PFS_SLOT_RECOVERING     2u  /* a counterpart is backing it out */

/* Registration status of peer recovery for this slot. */
#define PFS_REG_INACTIVE        0u
#define PFS_REG_ACTIVE          1u

#define PFS_HOSTNAME_MAX        64u

struct pfs_slot {
	struct pfs_blk_hdr hdr;         /*   0: magic PFS_MAGIC_SLOT */
	le32 slot;                      /*  32: this slot's index */
	le32 state;                     /*  36: PFS_SLOT_* */
	le64 generation;                /*  40: +1 at every mount of the slot */
	le64 host_id;                   /*  48: random id of the owner */
	le64 mount_time;                /*  56: seconds since the epoch */
	le64 journal_start;             /*  64: first block of the journal */
	le64 journal_blocks;            /*  72 */
	le64 orphan_head;               /*  80: first orphan inode, 0 none */
	le64 journal_seq;               /*  88: next transaction sequence */
	le64 journal_tail;              /*  96: journal offset of oldest live */
	le32 journal_dirty;             /* 104: 1 if in-flight work may exist */
	le32 owner_pid;                 /* 108 */
	/* Registration record of peer recovery (on-disk copy). */
	le32 reg_status;                /* 112: PFS_REG_* */
	le32 reg_counterpart;           /* 116: slot of the counterpart */
	le64 reg_lease_expiry_ns;       /* 120: CLOCK_REALTIME ns */
	char hostname[PFS_HOSTNAME_MAX];/* 128: NUL-padded */
	le64 reserved[8];               /* 192 */
};                                      /* 256 */
_Static_assert(sizeof(struct pfs_slot) == 256, "pfs_slot size");

/* ------------------------------------------------------------------ */
/* Allocation groups.                                                   */
/* ------------------------------------------------------------------ */
#define PFS_GROUP_META_BLOCKS   3u  /* descriptor + two bitmaps */

struct pfs_group_desc {
	struct pfs_blk_hdr hdr;         /*  0: magic PFS_MAGIC_GROUP */
	le32 group;                     /* 32: this group's index */
	le32 flags;                     /* 36: reserved, 0 */
	le32 nblocks;                   /* 40: blocks in this group */
	le32 free_blocks;               /* 44 */
	le32 ninodes;                   /* 48: inodes in this group */
	le32 free_inodes;               /* 52 */
	le32 ndirs;                     /* 56: directories in this group */
	le32 reserved0;                 /* 60 */
	le64 block_bitmap;              /* 64: absolute block numbers */
	le64 inode_bitmap;              /* 72 */
	le64 inode_table;               /* 80 */
	le64 reserved[5];               /* 88 */
};                                      /* 128 */
_Static_assert(sizeof(struct pfs_group_desc) == 128, "pfs_group_desc size");

/* A bitmap block: header, then bits (bit i is byte i/8, bit i%8). */
#define PFS_BITMAP_OFFSET       (sizeof(struct pfs_blk_hdr))
#define PFS_BITMAP_BYTES        (PFS_BLOCK_SIZE - PFS_BITMAP_OFFSET)
#define PFS_BITMAP_BITS         (PFS_BITMAP_BYTES * 8u) /* 32512 */

/* ------------------------------------------------------------------ */
/* Inodes: 256 bytes, 16 per inode-table block.                         */
/* ------------------------------------------------------------------ */

/* Inode flags. */
#define PFS_IF_EXTENT_TREE      0x1u /* extents in a B+tree at tree_root */
#define PFS_IF_INLINE_DATA      0x2u /* symlink target in the inline area */
#define PFS_IF_ORPHAN           0x4u /* on its slot's orphan list */

/* An extent: logical blocks [lblk, lblk+len) live at [pblk, pblk+len). */
#define PFS_EXT_UNWRITTEN       0x1u /* allocated, reads as zeros */
#define PFS_EXT_MAX_LEN         32768u

struct pfs_extent {
	le64 lblk;                      /*  0 */
	le64 pblk;                      /*  8 */
	le32 len;                       /* 16 */
	le32 flags;                     /* 20: PFS_EXT_* */
};                                      /* 24 */
_Static_assert(sizeof(struct pfs_extent) == 24, "pfs_extent size");

#define PFS_INLINE_SIZE         96u
#define PFS_INLINE_EXTENTS      (PFS_INLINE_SIZE / sizeof(struct pfs_extent))

struct pfs_inode {
	le16 magic;                     /*   0: PFS_MAGIC_INODE; 0 if free */
	le16 version;                   /*   2: 1 */
	le32 crc;                       /*   4: crc32c(seed, inode w/ crc=0) */
	le64 ino;                       /*   8: own number */
	le32 mode;                      /*  16: S_IF* | permission bits */
	le32 uid;                       /*  20 */
	le32 gid;                       /*  24 */
	le32 nlink;                     /*  28 */
	le64 size;                      /*  32: bytes */
	le64 blocks;                    /*  40: 4 KiB blocks held, incl. meta */
	le64 atime_sec;                 /*  48 */
	le64 mtime_sec;                 /*  56 */
	le64 ctime_sec;                 /*  64 */
	le64 btime_sec;                 /*  72: birth */
	le32 atime_nsec;                /*  80 */
	le32 mtime_nsec;                /*  84 */
	le32 ctime_nsec;                /*  88 */
	le32 btime_nsec;                /*  92 */
	le64 generation;                /*  96: +1 each time the number is reused */
	le32 flags;                     /* 104: PFS_IF_* */
	le32 rdev;                      /* 108: device number (makedev) */
	le64 xattr_blk;                 /* 112: xattr block, 0 none */
	le64 orphan_next;               /* 120: next on the orphan list */
	le64 parent;                    /* 128: directories: parent inode */
	le64 tree_root;                 /* 136: B+tree root (extents or dir) */
	le32 n_inline;                  /* 144: inline extents in use */
	le32 orphan_slot;               /* 148: with PFS_IF_ORPHAN: the slot
	                                 *      whose orphan list holds it */
	le64 reserved1;                 /* 152 */
	uint8_t inline_area[PFS_INLINE_SIZE]; /* 160: extents or symlink */
};                                      /* 256 */
_Static_assert(sizeof(struct pfs_inode) == PFS_INODE_SIZE, "pfs_inode size");

/* ------------------------------------------------------------------ */
/* B+tree nodes: file extent maps and directory indexes.                */
/* ------------------------------------------------------------------ */
/*
 * A node is a slotted page.  After the header an array of nrecs le16
 * offsets grows upward; records grow downward from the end of the block.
 * Offsets are sorted by key (duplicates allowed: directory hashes may
 * collide).  A record is { le64 key; le16 vlen; u8 value[vlen] }.
 * Interior nodes (level > 0) hold records whose value is the le64 child
 * block; a child holds the keys >= its record's key and < the next one's.
 * Leaves are chained left to right through `next`.
 */
#define PFS_BT_EXTENT           1u /* key lblk, value pfs_bt_extent_val */
#define PFS_BT_DIR              2u /* key name hash, value pfs_dirent */

struct pfs_bt_node {
	struct pfs_blk_hdr hdr;         /*  0: magic PFS_MAGIC_BTREE */
	le16 level;                     /* 32: 0 = leaf */
	le16 nrecs;                     /* 34 */
	le16 rec_start;                 /* 36: lowest record byte offset */
	le16 tree_type;                 /* 38: PFS_BT_* */
	le64 next;                      /* 40: right sibling leaf, 0 none */
};                                      /* 48 */
_Static_assert(sizeof(struct pfs_bt_node) == 48, "pfs_bt_node size");

struct pfs_bt_rec_hdr {
	le64 key;                       /* 0 */
	le16 vlen;                      /* 8 */
} __attribute__((packed));              /* 10 */
_Static_assert(sizeof(struct pfs_bt_rec_hdr) == 10, "pfs_bt_rec_hdr size");

/* Value of an extent-tree record; the key is the extent's lblk. */
struct pfs_bt_extent_val {
	le64 pblk;                      /* 0 */
	le32 len;                       /* 8 */
	le32 flags;                     /* 12: PFS_EXT_* */
};                                      /* 16 */
_Static_assert(sizeof(struct pfs_bt_extent_val) == 16, "extent val size");

/*
 * Directory entry, the value of a directory-tree record.  The key is
 * pfs_dir_hash(name): SipHash-2-4 keyed with the superblock's hash_seed,
 * shifted right by 2, plus 4 (so keys 0..3 stay free for readdir's "."
 * and ".." cookies).  "." and ".." are not stored.
 */
struct pfs_dirent {
	le64 ino;                       /* 0 */
	uint8_t type;                   /* 8: DT_* of the target */
	uint8_t name_len;               /* 9: 1..255 */
	char name[];                    /* 10: not NUL-terminated */
} __attribute__((packed));
_Static_assert(sizeof(struct pfs_dirent) == 10, "pfs_dirent size");

/* ------------------------------------------------------------------ */
/* Extended attributes: one block per inode.                            */
/* ------------------------------------------------------------------ */
/* Entries are packed after the header: { u8 name_len; le16 value_len;
 * name; value }, with full names ("user.foo", "system.posix_acl_access").
 * ACL values use the Linux xattr ACL format (version 2). */
struct pfs_xattr_blk {
	struct pfs_blk_hdr hdr;         /*  0: magic PFS_MAGIC_XATTR */
	le32 count;                     /* 32: entries */
	le32 used;                      /* 36: bytes used after the header */
};                                      /* 40 */
_Static_assert(sizeof(struct pfs_xattr_blk) == 40, "pfs_xattr_blk size");

struct pfs_xattr_ent {
	uint8_t name_len;               /* 0 */
	le16 value_len;                 /* 1 */
	char data[];                    /* 3: name then value */
} __attribute__((packed));
_Static_assert(sizeof(struct pfs_xattr_ent) == 3, "pfs_xattr_ent size");

#define PFS_XATTR_SPACE (PFS_BLOCK_SIZE - sizeof(struct pfs_xattr_blk))

/* ------------------------------------------------------------------ */
/* Undo journal: one per slot, journal_blocks blocks at                 */
/* journal_start + slot * journal_blocks.                               */
/* ------------------------------------------------------------------ */
/*
 *   +0, +1    journal header, two copies written alternately (the valid
 *             one with the higher hseq wins, so a torn header write
 *             leaves the other)
 *   +2 ..     circular record area of (journal_blocks - 2) blocks
 *
 * Log sequence numbers (lsn) count record-area blocks written under one
 * generation; the record at lsn lives at block 2 + lsn % area_blocks.
 * A record starts on a block boundary and spans nblocks blocks:
 *   struct pfs_jrec_hdr        plaintext, authenticated (associated data)
 *   ciphertext[payload_len]    XChaCha20-Poly1305 (IETF) of the payload
 *   tag[16]
 *   zero padding to the block boundary
 * under the slot key key_derive_slot(cluster key, slot, generation).  The
 * header binds the record to its slot, generation and position (lsn), so
 * a record moved to another slot or position, or replayed from another
 * generation, fails authentication.
 *
 * Payloads:
 *   BEGIN    struct pfs_jrec_begin: statistics of the transaction
 *   IMAGES   count x { le64 blkno; u8 image[4096] }: before-images
 *   COMMIT   le64 txseq: the transaction's changes are durable in place
 *   ABORT    le64 txseq: the transaction was backed out
 *   PAD      empty: the rest of the area up to its end is unused (records
 *            never wrap; nblocks covers the skipped blocks)
 * A transaction with a BEGIN and neither COMMIT nor ABORT is in flight:
 * recovery writes its before-images back (per block the oldest image of
 * the in-flight set wins), flushes, and appends an ABORT.
 */
#define PFS_JNL_HDR_BLOCKS      2u
#define PFS_MAGIC_JREC          0x43524a50u /* "PJRC" */
#define PFS_JREC_BEGIN          1u
#define PFS_JREC_IMAGES         2u
#define PFS_JREC_COMMIT         3u
#define PFS_JREC_ABORT          4u
#define PFS_JREC_PAD            5u  /* skip to the end of the area */
#define PFS_JNL_MAC_SIZE        32u
#define PFS_JREC_NONCE_SIZE     24u
#define PFS_JREC_TAG_SIZE       16u
#define PFS_JREC_MAX_IMAGES     64u

struct pfs_jnl_header {
	struct pfs_blk_hdr hdr;         /*  0: magic PFS_MAGIC_JOURNAL */
	le32 slot;                      /* 32 */
	le32 version;                   /* 36: 1 */
	le64 generation;                /* 40: generation of the records */
	le64 hseq;                      /* 48: header write sequence */
	le64 tail_lsn;                  /* 56: first record recovery needs */
	le64 head_lsn;                  /* 64: next lsn to be written */
	le32 clean;                     /* 72: 1 = nothing in flight */
	le32 reserved0;                 /* 76 */
	uint8_t mac[PFS_JNL_MAC_SIZE];  /* 80: keyed BLAKE2b of bytes 0..79
	                                       (hdr.crc taken as 0), slot key */
};                                      /* 112 */
_Static_assert(sizeof(struct pfs_jnl_header) == 112, "pfs_jnl_header size");

struct pfs_jrec_hdr {
	le32 magic;                     /*  0: PFS_MAGIC_JREC */
	le32 type;                      /*  4: PFS_JREC_* */
	le64 lsn;                       /*  8: must match the position */
	le64 generation;                /* 16 */
	le64 txseq;                     /* 24: transaction */
	le32 slot;                      /* 32 */
	le32 nblocks;                   /* 36: blocks the record spans */
	le32 payload_len;               /* 40: plaintext bytes */
	le32 count;                     /* 44: images in an IMAGES record */
	uint8_t nonce[PFS_JREC_NONCE_SIZE]; /* 48 */
};                                      /* 72 */
_Static_assert(sizeof(struct pfs_jrec_hdr) == 72, "pfs_jrec_hdr size");

struct pfs_jrec_begin {
	le64 txseq;                     /*  0 */
	le64 undo_blocks;               /*  8: before-images that follow */
	le64 ops;                       /* 16: requests in the transaction */
	le64 time_ns;                   /* 24: CLOCK_REALTIME at commit */
};                                      /* 32 */
_Static_assert(sizeof(struct pfs_jrec_begin) == 32, "pfs_jrec_begin size");

struct pfs_jrec_image {
	le64 blkno;                     /* 0 */
	uint8_t data[PFS_BLOCK_SIZE];   /* 8 */
};                                      /* 4104 */
_Static_assert(sizeof(struct pfs_jrec_image) == 4104, "pfs_jrec_image size");

#endif /* PFS_FORMAT_H */
