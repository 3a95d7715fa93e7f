/*
 * fs/dir_internal.h -- directory operations with the index key given by
 * the caller instead of computed from the name.  dir_lookup, dir_add,
 * dir_remove and dir_set are these with key = dir_hash(name); the unit
 * tests call them with a fixed key to build hash collisions.
 *
 * Keys below PFS_DIR_KEY_MIN are reserved for the "." and ".." readdir
 * cookies; passing one is a bug.
 */
#ifndef PFS_DIR_INTERNAL_H
#define PFS_DIR_INTERNAL_H

#include "pfs_fs.h"

#define PFS_DIR_KEY_MIN 4u

int dir_lookup_key(struct pfs_fs *fs, struct inode *dp, uint64_t key,
		   const char *name, size_t len, uint64_t *ino, uint8_t *type);
int dir_add_key(struct pfs_fs *fs, struct inode *dp, uint64_t key,
		const char *name, size_t len, uint64_t ino, uint8_t type);
int dir_remove_key(struct pfs_fs *fs, struct inode *dp, uint64_t key,
		   const char *name, size_t len);
int dir_set_key(struct pfs_fs *fs, struct inode *dp, uint64_t key,
		const char *name, size_t len, uint64_t ino, uint8_t type);

#endif /* PFS_DIR_INTERNAL_H */
