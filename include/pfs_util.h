/*
 * pfs_util.h -- small helpers shared by every module: endian conversion,
 * checked arithmetic, logging and assertions.
 */
#ifndef PFS_UTIL_H
#define PFS_UTIL_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include <endian.h>

static inline uint16_t le16_to_cpu(uint16_t v) { return le16toh(v); }
static inline uint32_t le32_to_cpu(uint32_t v) { return le32toh(v); }
static inline uint64_t le64_to_cpu(uint64_t v) { return le64toh(v); }
static inline uint16_t cpu_to_le16(uint16_t v) { return htole16(v); }
static inline uint32_t cpu_to_le32(uint32_t v) { return htole32(v); }
static inline uint64_t cpu_to_le64(uint64_t v) { return htole64(v); }

#define PFS_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PFS_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PFS_MAX(a, b) ((a) > (b) ? (a) : (b))
#define PFS_DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))

/* crc32c (Castagnoli), software slicing-by-8 or SSE4.2 when available. */
uint32_t pfs_crc32c(uint32_t crc, const void *buf, size_t len);

/*
 * Logging.  Every message carries the context set for the thread or the
 * process ("node=2 slot=2:") so multi-node logs can be told apart.
 * Levels: 0 error, 1 warning, 2 info, 3 debug.  The default sink is
 * stderr; the daemon switches to syslog when it runs in the background.
 */
enum { PFS_LOG_ERR = 0, PFS_LOG_WARN = 1, PFS_LOG_INFO = 2, PFS_LOG_DEBUG = 3 };
void pfs_log_set_level(int level);
void pfs_log_set_context(const char *ctx);     /* copied; "" to clear */
void pfs_log_use_syslog(bool on);
void pfs_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define pfs_err(...)   pfs_log(PFS_LOG_ERR, __VA_ARGS__)
#define pfs_warn(...)  pfs_log(PFS_LOG_WARN, __VA_ARGS__)
#define pfs_info(...)  pfs_log(PFS_LOG_INFO, __VA_ARGS__)
#define pfs_debug(...) pfs_log(PFS_LOG_DEBUG, __VA_ARGS__)

/*
 * Assertions.  PFS_ASSERT is a debug check (compiled out with NDEBUG);
 * PFS_BUG_ON is always on, for states the code cannot continue from: it
 * logs the condition and aborts, so a broken invariant never reaches disk.
 */
void pfs_bug(const char *file, int line, const char *cond) __attribute__((noreturn));
#define PFS_BUG_ON(c) do { if (__builtin_expect(!!(c), 0)) pfs_bug(__FILE__, __LINE__, #c); } while (0)
#ifdef NDEBUG
#define PFS_ASSERT(c) ((void)0)
#else
#define PFS_ASSERT(c) PFS_BUG_ON(!(c))
#endif

/* Monotonic and realtime clocks in nanoseconds. */
uint64_t pfs_now_mono_ns(void);
uint64_t pfs_now_real_ns(void);

/* Parse a size with an optional K/M/G/T suffix (powers of 1024). */
int pfs_parse_size(const char *s, uint64_t *out);

#endif /* PFS_UTIL_H */
