/*
 * pfs_mkfs.h -- laying out and writing a new volume (lib/format.c).  Used
 * by mkfs.peerfs and by tests that need a fresh image.
 */
#ifndef PFS_MKFS_H
#define PFS_MKFS_H

#include <stdint.h>
#include <stdbool.h>
#include "pfs_format.h"
#include "pfs_key.h"

struct pfs_format_params {
	uint32_t slots;                 /* 0: PFS_DEFAULT_SLOTS */
	uint64_t journal_bytes;         /* per slot; 0: default for the size */
	uint32_t blocks_per_group;      /* 0: PFS_BITMAP_BITS */
	uint32_t bytes_per_inode;       /* 0: 16384 */
	char label[PFS_LABEL_MAX];
	uint32_t root_uid, root_gid;    /* owner of the root directory */
	uint32_t root_mode;             /* permission bits; 0: 0755 */
	const uint8_t *uuid;            /* NULL: random */
};

/* Compute the layout of a volume of nblocks blocks into sb (no I/O).
 * -ENOSPC with *why set if the size cannot hold the layout, -EINVAL for
 * bad parameters. */
int format_layout(uint64_t nblocks, const struct pfs_format_params *p,
		  struct pfs_super *sb, const char **why);
/* Write a new volume on fd (size nblocks blocks), with cluster key KEY.
 * nblocks should be the whole device: the backup superblock goes in block
 * nblocks - 1.  A regular file shorter than that is extended.  On error
 * *why names the step that failed (or the layout problem). */
int format_write(int fd, uint64_t nblocks, const struct pfs_format_params *p,
		 const uint8_t key[PFS_KEY_BYTES], struct pfs_super *sb_out,
		 const char **why);
/* Look for a peerfs superblock on fd: the primary at block 0, else the
 * backup in the device's last block.  0 with *sb filled if a valid one
 * (magic, block number, checksum) is found, -ENOENT if none, -errno if
 * the device cannot be read. */
int format_read_super(int fd, struct pfs_super *sb);

#endif /* PFS_MKFS_H */
