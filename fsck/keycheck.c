/*
 * keycheck.c -- the cluster key against the superblock's key check value.
 *
 * The key file is the one given with -k, else the default path for the
 * volume's UUID (pfs_key.h).  A key file that is for another volume or
 * holds a wrong key is an operational error: the undo journals of dead
 * nodes can only be read with the right key (journal.c), and a wrong one
 * means the wrong file or the wrong volume.  A key file given with -k that cannot be read is an error
 * too; a missing default key file is a warning only (but see journal.c:
 * repairing after a crash needs the key).  The key is kept in f->key for
 * the journal and wiped at exit.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sodium.h>

#include "fsck.h"
#include "pfs_key.h"

int fsck_key_check(struct fsck *f)
{
	uint8_t uuid[PFS_UUID_SIZE], key[PFS_KEY_BYTES], check[PFS_KEY_CHECK_SIZE];
	char path[4096], u1[37], u2[37];
	int err;

	if (f->o.keyfile)
		snprintf(path, sizeof(path), "%s", f->o.keyfile);
	else
		key_default_path(f->sb.uuid, path, sizeof(path));
	err = key_file_read(path, uuid, key);
	if (err) {
		if (f->o.keyfile)
			return fsck_fail(f, err, "cannot read the key file %s", path);
		if (err == -ENOENT)
			fsck_warn(f, "no key file %s: the cluster key is not verified", path);
		else
			fsck_warn(f, "cannot read the key file %s (%s): the cluster key "
				  "is not verified", path, strerror(-err));
		return 0;
	}
	if (memcmp(uuid, f->sb.uuid, PFS_UUID_SIZE) != 0) {
		sodium_memzero(key, sizeof(key));
		uuid_format(uuid, u1);
		uuid_format(f->sb.uuid, u2);
		fsck_fail(f, 0, "key file %s is for volume %s, not %s", path, u1, u2);
		return -EKEYREJECTED;
	}
	key_check_value(key, f->sb.uuid, check);
	if (memcmp(check, f->sb.key_check, sizeof(check)) != 0) {
		sodium_memzero(key, sizeof(key));
		fsck_fail(f, 0, "wrong key: the key in %s does not match the volume", path);
		return -EKEYREJECTED;
	}
	memcpy(f->key, key, sizeof(key));
	sodium_memzero(key, sizeof(key));
	f->have_key = true;
	fsck_verbose(f, "key file %s matches the volume", path);
	return 0;
}
