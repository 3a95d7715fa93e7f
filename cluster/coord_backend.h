/*
 * coord_backend.h -- private interface between the coordination front
 * (cluster/coord.c) and its backends (cluster/coord_local.c, later zk).
 *
 * The front owns struct coord: it parses cfg->spec, checks arguments that
 * do not depend on the backend (slot ranges, modes, resource ids, the
 * read-only flag), fills configuration defaults, and dispatches through
 * the backend's ops table.  A backend keeps its own state behind c->be.
 *
 * Every op is called with validated arguments and returns 0 or a
 * negative errno as documented in pfs_coord.h.  Ops are called without
 * any lock of the front held (the front has none).
 */
#ifndef PFS_COORD_BACKEND_H
#define PFS_COORD_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pfs_coord.h"

/* Defaults applied by the front when cfg leaves them at 0 (or < 0). */
#define COORD_DEFAULT_HEARTBEAT_MS 500
#define COORD_DEFAULT_DEAD_MS      3000
#define COORD_HOSTNAME_MAX         64

struct coord_ops;

/* The handle.  Read-only after coord_open/coord_attach_readonly returns,
 * except what the backend keeps behind be (its own locking). */
struct coord {
	const struct coord_ops *ops;
	struct coord_config cfg;        /* copy; cfg.hostname points to hostname,
					 * cfg.spec is NULL after open */
	char hostname[COORD_HOSTNAME_MAX];
	bool readonly;                  /* attached by coord_attach_readonly */
	void *be;                       /* backend state */
};

struct coord_ops {
	const char *name;
	/* Connect and join as c->cfg.slot (sets c->be). */
	int (*open)(struct coord *c);
	/* Connect without joining (sets c->be); c->readonly is set. */
	int (*attach_readonly)(struct coord *c);
	/* Leave (unless readonly) and disconnect; frees c->be. */
	void (*close)(struct coord *c);

	int (*heartbeat)(struct coord *c);
	void (*set_blocking_cb)(struct coord *c, coord_blocking_cb cb, void *arg);
	int (*silent_nodes)(struct coord *c, uint32_t *slots, size_t max);
	int (*declare_dead)(struct coord *c, uint32_t slot);
	int (*node_info)(struct coord *c, uint32_t slot, struct coord_node_info *out);

	int (*lock)(struct coord *c, uint64_t res, enum coord_mode mode, int timeout_ms);
	int (*unlock)(struct coord *c, uint64_t res);
	int (*unlock_all)(struct coord *c);
	int (*downgrade)(struct coord *c, uint64_t res, enum coord_mode mode);
	int (*release_retained)(struct coord *c, uint32_t slot, uint64_t res);
	int (*wanted_retained)(struct coord *c, uint32_t slot, uint64_t *res, size_t max);
	int (*locks)(struct coord *c, struct coord_lock_info *out, size_t max);

	int (*reg)(struct coord *c, uint32_t dead_slot, int lease_ms);
	int (*renew)(struct coord *c, uint32_t dead_slot, int lease_ms);
	int (*unregister)(struct coord *c, uint32_t dead_slot);
	int (*reg_info)(struct coord *c, uint32_t slot, struct coord_reg_info *out);

	/* Advisory locks: lk->slot is the caller's slot, arguments checked. */
	int (*plock_test)(struct coord *c, struct coord_plock *lk);
	int (*plock_set)(struct coord *c, const struct coord_plock *lk, bool wait,
			 bool (*cancelled)(void *arg), void *arg);
	int (*plock_interrupt)(struct coord *c);
	int (*plock_release_owner)(struct coord *c, uint64_t ino, uint64_t owner,
				   enum coord_plock_kind kind);
	int (*plocks)(struct coord *c, struct coord_plock *out, size_t max);
	int (*set_progress)(struct coord *c, uint32_t dead_slot, const struct coord_progress *p);
	int (*progress)(struct coord *c, uint32_t slot, struct coord_progress *out);
};

extern const struct coord_ops coord_local_ops;

/* The lock compatibility matrix (cluster/coord.c): may a node be granted
 * `wanted` while another node holds `held`?
 *            held NL  SH  EX
 *   want SH       yes yes no
 *   want EX       yes no  no                                           */
bool coord_mode_compatible(enum coord_mode held, enum coord_mode wanted);

/* Does a holder in mode `held` block a request for `wanted` (the negation
 * of the matrix, with NL never blocking)?  Used to pick the holders that
 * get a blocking callback. */
static inline bool coord_mode_conflicts(enum coord_mode held, enum coord_mode wanted)
{
	return held != COORD_NL && !coord_mode_compatible(held, wanted);
}

/* The backend clock: cfg.clock_ns if set, else CLOCK_MONOTONIC. */
uint64_t coord_clock_ns(const struct coord *c);

#endif /* PFS_COORD_BACKEND_H */
