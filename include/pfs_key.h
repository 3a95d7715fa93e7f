/*
 * pfs_key.h -- the volume's cluster key: generation, key files, the key
 * check value kept in the superblock, and keys derived from it.
 *
 * Key file format (text, mode 0600):
 *   peerfs-key 1
 *   uuid <uuid of the volume>
 *   key <64 hex digits>
 * The default location is $PEERFS_KEYDIR/UUID.key, or /etc/peerfs/UUID.key.
 *
 * Key check value: BLAKE2b-256 (crypto_generichash) of the volume UUID,
 * keyed with the crypto_kdf subkey (id 1, context "pfs-kchk") of the
 * cluster key.  It tells a wrong key from a right one without revealing
 * the key.
 */
#ifndef PFS_KEY_H
#define PFS_KEY_H

#include <stdint.h>
#include <stddef.h>

#define PFS_KEY_BYTES 32u
#define PFS_KEYDIR_DEFAULT "/etc/peerfs"

/* Initialise libsodium once; -EIO if it cannot. */
int key_init(void);
void key_generate(uint8_t key[PFS_KEY_BYTES]);
/* Write a key file (mode 0600), creating its directory (0700) if needed;
 * refuses to overwrite an existing file unless overwrite. */
int key_file_write(const char *path, const uint8_t uuid[16],
		   const uint8_t key[PFS_KEY_BYTES], int overwrite);
/* The two halves of key_file_write, for a caller that must not leave a
 * key file behind if a later step fails.  key_file_stage writes and syncs
 * the file under a temporary name beside PATH (returned in tmp, which
 * needs strlen(path) + 12 bytes), creating the directory (0700) if
 * needed; key_file_commit renames it to PATH atomically (-EEXIST if PATH
 * exists and !overwrite) and syncs the directory; key_file_discard
 * removes a staged file. */
int key_file_stage(const char *path, const uint8_t uuid[16],
		   const uint8_t key[PFS_KEY_BYTES], char *tmp, size_t tmplen);
int key_file_commit(const char *tmp, const char *path, int overwrite);
void key_file_discard(const char *tmp);
/* Read a key file.  -ENOENT, -EACCES, or -EINVAL with a message logged
 * for a malformed file. */
int key_file_read(const char *path, uint8_t uuid[16], uint8_t key[PFS_KEY_BYTES]);
void key_default_path(const uint8_t uuid[16], char *buf, size_t len);
void key_check_value(const uint8_t key[PFS_KEY_BYTES], const uint8_t uuid[16],
		     uint8_t out[32]);
/* Derive the journal key of (slot, generation). */
void key_derive_slot(const uint8_t key[PFS_KEY_BYTES], uint32_t slot,
		     uint64_t generation, uint8_t out[PFS_KEY_BYTES]);

void uuid_generate_random16(uint8_t uuid[16]);
void uuid_format(const uint8_t uuid[16], char out[37]);
int uuid_parse16(const char *s, uint8_t uuid[16]);

#endif /* PFS_KEY_H */
