/*
 * key.c -- the cluster key: generation, key files, the key check value and
 * keys derived from the cluster key, plus random UUIDs.
 *
 * A key file is written to a temporary name beside its final path, synced,
 * then renamed into place, so a reader sees either no file or a complete
 * one.  Secrets held on the stack are wiped with sodium_memzero before the
 * functions return.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sodium.h>

#include "pfs_key.h"
#include "pfs_util.h"

#define KEY_FILE_MAGIC    "peerfs-key 1"
#define KEY_FILE_MAX      1024u   /* a valid file is about 130 bytes */
#define KEY_CTX_CHECK     "pfs-kchk"
#define KEY_CTX_JOURNAL   "pfs-jnl0"
#define KEY_SUBKEY_CHECK  1u

_Static_assert(PFS_KEY_BYTES == crypto_kdf_KEYBYTES, "cluster key is a kdf key");
_Static_assert(sizeof(KEY_CTX_CHECK) - 1 == crypto_kdf_CONTEXTBYTES, "kdf context");
_Static_assert(sizeof(KEY_CTX_JOURNAL) - 1 == crypto_kdf_CONTEXTBYTES, "kdf context");

int key_init(void)
{
	/* sodium_init is idempotent and thread-safe: 0 first time, 1 after. */
	if (sodium_init() < 0) {
		pfs_err("libsodium could not be initialised");
		return -EIO;
	}
	return 0;
}

void key_generate(uint8_t key[PFS_KEY_BYTES])
{
	/* randombytes_buf needs no prior sodium_init: it selects its
	 * default implementation on first use. */
	randombytes_buf(key, PFS_KEY_BYTES);
}

/* ------------------------------------------------------------------ */
/* UUIDs                                                                */
/* ------------------------------------------------------------------ */

void uuid_generate_random16(uint8_t uuid[16])
{
	randombytes_buf(uuid, 16);
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40);  /* version 4 */
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);  /* RFC 4122 variant */
}

void uuid_format(const uint8_t uuid[16], char out[37])
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[uuid[i] >> 4];
		out[o++] = hex[uuid[i] & 0x0f];
	}
	out[o] = '\0';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int uuid_parse16(const char *s, uint8_t uuid[16])
{
	uint8_t out[16];
	size_t n = 0;

	if (!s || strlen(s) != 36)
		return -EINVAL;
	for (size_t i = 0; i < 36; ) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -EINVAL;
			i++;
			continue;
		}
		int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[n++] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	memcpy(uuid, out, 16);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Derived values                                                       */
/* ------------------------------------------------------------------ */

void key_check_value(const uint8_t key[PFS_KEY_BYTES], const uint8_t uuid[16],
		     uint8_t out[32])
{
	uint8_t sub[32];

	crypto_kdf_derive_from_key(sub, sizeof(sub), KEY_SUBKEY_CHECK,
				   KEY_CTX_CHECK, key);
	crypto_generichash(out, 32, uuid, 16, sub, sizeof(sub));
	sodium_memzero(sub, sizeof(sub));
}

void key_derive_slot(const uint8_t key[PFS_KEY_BYTES], uint32_t slot,
		     uint64_t generation, uint8_t out[PFS_KEY_BYTES])
{
	uint8_t sub[32];
	uint64_t gen_le = cpu_to_le64(generation);

	crypto_kdf_derive_from_key(sub, sizeof(sub), slot, KEY_CTX_JOURNAL, key);
	crypto_generichash(out, PFS_KEY_BYTES, (const uint8_t *)&gen_le,
			   sizeof(gen_le), sub, sizeof(sub));
	sodium_memzero(sub, sizeof(sub));
}

/* ------------------------------------------------------------------ */
/* Key files                                                            */
/* ------------------------------------------------------------------ */

void key_default_path(const uint8_t uuid[16], char *buf, size_t len)
{
	const char *dir = getenv("PEERFS_KEYDIR");
	char u[37];

	if (!dir || !*dir)
		dir = PFS_KEYDIR_DEFAULT;
	uuid_format(uuid, u);
	size_t dl = strlen(dir);
	while (dl > 1 && dir[dl - 1] == '/')
		dl--;
	snprintf(buf, len, "%.*s/%s.key", (int)dl, dir, u);
}

/* Create every missing directory leading to PATH's last component, each
 * with mode 0700. */
static int make_parent_dirs(const char *path)
{
	char *p = strdup(path);
	int ret = 0;

	if (!p)
		return -ENOMEM;
	char *slash = strrchr(p, '/');
	if (!slash || slash == p)
		goto out_free;
	*slash = '\0';
	for (char *c = p + 1; ; c++) {
		bool end = (*c == '\0');
		if (*c != '/' && !end)
			continue;
		*c = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST) {
			ret = -errno;
			goto out_free;
		}
		if (end)
			break;
		*c = '/';
	}
out_free:
	free(p);
	return ret;
}

/* fsync the directory holding PATH, so a rename in it is durable. */
static int sync_parent_dir(const char *path)
{
	char *p = strdup(path);
	int ret = 0;

	if (!p)
		return -ENOMEM;
	char *slash = strrchr(p, '/');
	const char *dir = ".";
	if (slash == p)
		dir = "/";
	else if (slash) {
		*slash = '\0';
		dir = p;
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto out_free;
	}
	if (fsync(fd) < 0)
		ret = -errno;
	close(fd);
out_free:
	free(p);
	return ret;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int key_file_stage(const char *path, const uint8_t uuid[16],
		   const uint8_t key[PFS_KEY_BYTES], char *tmp, size_t tmplen)
{
	char hex[PFS_KEY_BYTES * 2 + 1];
	char text[160];
	char u[37];
	int ret;

	if (!path || !*path)
		return -EINVAL;
	if ((size_t)snprintf(tmp, tmplen, "%s.tmp.XXXXXX", path) >= tmplen)
		return -ENAMETOOLONG;
	ret = make_parent_dirs(path);
	if (ret < 0)
		return ret;

	int fd = mkstemp(tmp);      /* mode 0600 */
	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0600) < 0) {
		ret = -errno;
		goto out_unlink;
	}

	uuid_format(uuid, u);
	sodium_bin2hex(hex, sizeof(hex), key, PFS_KEY_BYTES);
	int len = snprintf(text, sizeof(text), "%s\nuuid %s\nkey %s\n",
			   KEY_FILE_MAGIC, u, hex);
	ret = write_all(fd, text, (size_t)len);
	sodium_memzero(hex, sizeof(hex));
	sodium_memzero(text, sizeof(text));
	if (ret < 0)
		goto out_unlink;
	if (fsync(fd) < 0) {
		ret = -errno;
		goto out_unlink;
	}
	if (close(fd) < 0) {
		ret = -errno;
		fd = -1;
		goto out_unlink;
	}
	return 0;

out_unlink:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return ret;
}

int key_file_commit(const char *tmp, const char *path, int overwrite)
{
	if (overwrite) {
		if (rename(tmp, path) < 0)
			return -errno;
	} else if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
		if (errno != EINVAL && errno != ENOSYS)
			return -errno;
		/* The filesystem has no RENAME_NOREPLACE: link(2) also
		 * refuses an existing name, atomically. */
		if (link(tmp, path) < 0)
			return -errno;
		unlink(tmp);
	}
	return sync_parent_dir(path);
}

void key_file_discard(const char *tmp)
{
	if (tmp && *tmp)
		unlink(tmp);
}

int key_file_write(const char *path, const uint8_t uuid[16],
		   const uint8_t key[PFS_KEY_BYTES], int overwrite)
{
	size_t tmplen = strlen(path) + 16;
	char *tmp = malloc(tmplen);
	int ret;

	if (!tmp)
		return -ENOMEM;
	if (!overwrite && access(path, F_OK) == 0) {
		ret = -EEXIST;
		goto out_free;
	}
	ret = key_file_stage(path, uuid, key, tmp, tmplen);
	if (ret < 0)
		goto out_free;
	ret = key_file_commit(tmp, path, overwrite);
	if (ret < 0)
		key_file_discard(tmp);
out_free:
	free(tmp);
	return ret;
}

/* Split the next line off *p (ending at end); NULL if none is left.  The
 * newline is replaced by NUL. */
static char *next_line(char **p, char *end)
{
	char *line = *p;

	if (line >= end)
		return NULL;
	char *nl = memchr(line, '\n', (size_t)(end - line));
	if (nl) {
		*nl = '\0';
		*p = nl + 1;
	} else {
		*p = end;
	}
	return line;
}

static int parse_key_text(const char *path, char *text, size_t len,
			  uint8_t uuid[16], uint8_t key[PFS_KEY_BYTES])
{
	char *p = text, *end = text + len;
	char *line;
	size_t bin_len;
	const char *hex_end;

	if (memchr(text, '\0', len)) {
		pfs_err("key file %s: not a text file", path);
		return -EINVAL;
	}
	line = next_line(&p, end);
	if (!line || strcmp(line, KEY_FILE_MAGIC) != 0) {
		pfs_err("key file %s: line 1: expected \"%s\"", path, KEY_FILE_MAGIC);
		return -EINVAL;
	}
	line = next_line(&p, end);
	if (!line || strncmp(line, "uuid ", 5) != 0 ||
	    uuid_parse16(line + 5, uuid) < 0) {
		pfs_err("key file %s: line 2: expected \"uuid\" and a UUID", path);
		return -EINVAL;
	}
	line = next_line(&p, end);
	if (!line || strncmp(line, "key ", 4) != 0 ||
	    strlen(line + 4) != PFS_KEY_BYTES * 2 ||
	    sodium_hex2bin(key, PFS_KEY_BYTES, line + 4, PFS_KEY_BYTES * 2,
			   NULL, &bin_len, &hex_end) != 0 ||
	    bin_len != PFS_KEY_BYTES || *hex_end != '\0') {
		pfs_err("key file %s: line 3: expected \"key\" and %u hex digits",
			path, PFS_KEY_BYTES * 2);
		sodium_memzero(key, PFS_KEY_BYTES);
		return -EINVAL;
	}
	if (p != end) {
		pfs_err("key file %s: unexpected text after line 3", path);
		sodium_memzero(key, PFS_KEY_BYTES);
		return -EINVAL;
	}
	return 0;
}

int key_file_read(const char *path, uint8_t uuid[16], uint8_t key[PFS_KEY_BYTES])
{
	char text[KEY_FILE_MAX + 1];
	size_t len = 0;
	struct stat st;
	int ret;

	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		pfs_err("key file %s: not a regular file", path);
		ret = -EINVAL;
		goto out_close;
	}
	if (st.st_mode & 0077)
		pfs_warn("key file %s: readable by others (mode %04o), "
			 "it should be 0600", path, (unsigned)(st.st_mode & 07777));
	for (;;) {
		ssize_t n = read(fd, text + len, sizeof(text) - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto out_wipe;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == sizeof(text)) {
			pfs_err("key file %s: too large to be a key file", path);
			ret = -EINVAL;
			goto out_wipe;
		}
	}
	ret = parse_key_text(path, text, len, uuid, key);
out_wipe:
	sodium_memzero(text, sizeof(text));
out_close:
	close(fd);
	return ret;
}
