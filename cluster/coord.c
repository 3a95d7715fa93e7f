/*
 * coord.c -- the backend-independent front of the coordination layer:
 * picks the backend named by cfg->spec, checks the arguments every
 * backend would check the same way, and dispatches through the backend's
 * ops table (coord_backend.h).
 *
 * Design notes
 *
 * Backends by spec:
 *   NULL, "" or "local"   the embedded backend (coord_local.c);
 *   "zk://..."            ZooKeeper: not available in this build,
 *                         coord_open fails with -EPROTONOSUPPORT;
 *   anything else         -EINVAL.
 *
 * The front is stateless apart from the handle, which is immutable once
 * coord_open returns (its backend state has its own locking), so it needs
 * no lock of its own and adds nothing to the backends' lock orders.
 *
 * Checks done here, before any backend runs:
 *   F1. slots are < PFS_MAX_SLOTS, resource ids are nonzero (0 means "every
 *       resource" to coord_release_retained), lock modes are SH or EX,
 *       downgrade modes NL, SH or EX, lease_ms > 0;
 *   F2. a read-only handle (coord_attach_readonly) only reads: every call
 *       that changes state fails with -EROFS;
 *   F3. the configuration handed to a backend has its defaults filled in
 *       (heartbeat_ms 500, dead_ms 3000, the host name) and dead_ms is
 *       longer than heartbeat_ms.
 *   F4. advisory lock requests are well formed (cpl_validate) and carry
 *       the caller's slot: a node acts only for its own owners.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coord_backend.h"
#include "coord_plock.h"
#include "pfs_format.h"
#include "pfs_util.h"

static const bool coord_compat[3][3] = {
	/*               wanted NL    SH     EX  */
	[COORD_NL] = {        true,  true,  true  },
	[COORD_SH] = {        true,  true,  false },
	[COORD_EX] = {        true,  false, false },
};

bool coord_mode_compatible(enum coord_mode held, enum coord_mode wanted)
{
	PFS_ASSERT((unsigned)held <= COORD_EX && (unsigned)wanted <= COORD_EX);
	return coord_compat[held][wanted];
}

const char *coord_mode_name(enum coord_mode m)
{
	switch (m) {
	case COORD_NL: return "NL";
	case COORD_SH: return "SH";
	case COORD_EX: return "EX";
	}
	return "invalid";
}

const char *coord_node_state_name(enum coord_node_state s)
{
	switch (s) {
	case COORD_ABSENT: return "absent";
	case COORD_LIVE: return "live";
	case COORD_DEAD: return "dead";
	}
	return "invalid";
}

uint64_t coord_clock_ns(const struct coord *c)
{
	if (c->cfg.clock_ns)
		return c->cfg.clock_ns(c->cfg.clock_arg);
	return pfs_now_mono_ns();
}

static bool cl_slot_ok(uint32_t slot)
{
	return slot < PFS_MAX_SLOTS;
}

/* Map cfg->spec to a backend. */
static int coord_pick_backend(const char *spec, const struct coord_ops **ops)
{
	if (!spec || !*spec || !strcmp(spec, "local")) {
		*ops = &coord_local_ops;
		return 0;
	}
	if (!strncmp(spec, "zk://", 5)) {
		pfs_err("coord=%s: the ZooKeeper backend is not available in this build; "
			"use coord=local (nodes on one host)", spec);
		return -EPROTONOSUPPORT;
	}
	pfs_err("coord=%s: unknown coordination backend (expected \"local\" or zk://host:port/path)",
		spec);
	return -EINVAL;
}

/* F3: copy cfg into the handle with defaults filled in. */
static int coord_setup_handle(const struct coord_config *cfg, struct coord **out)
{
	const struct coord_ops *ops;
	int err = coord_pick_backend(cfg->spec, &ops);
	if (err)
		return err;

	struct coord *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->ops = ops;
	c->cfg = *cfg;
	c->cfg.spec = NULL;
	if (c->cfg.heartbeat_ms <= 0)
		c->cfg.heartbeat_ms = COORD_DEFAULT_HEARTBEAT_MS;
	if (c->cfg.dead_ms <= 0)
		c->cfg.dead_ms = COORD_DEFAULT_DEAD_MS;
	if (cfg->hostname)
		snprintf(c->hostname, sizeof(c->hostname), "%s", cfg->hostname);
	else if (gethostname(c->hostname, sizeof(c->hostname) - 1) < 0)
		snprintf(c->hostname, sizeof(c->hostname), "unknown");
	c->cfg.hostname = c->hostname;
	if (c->cfg.dead_ms <= c->cfg.heartbeat_ms) {
		pfs_err("coord: dead_ms=%d must exceed heartbeat_ms=%d",
			c->cfg.dead_ms, c->cfg.heartbeat_ms);
		free(c);
		return -EINVAL;
	}
	*out = c;
	return 0;
}

int coord_open(const struct coord_config *cfg, struct coord **out)
{
	struct coord *c;
	int err;

	if (!cfg || !out)
		return -EINVAL;
	if (!cl_slot_ok(cfg->slot)) {
		pfs_err("coord: slot %u out of range (0..%u)", cfg->slot, PFS_MAX_SLOTS - 1);
		return -EINVAL;
	}
	err = coord_setup_handle(cfg, &c);
	if (err)
		return err;
	err = c->ops->open(c);
	if (err)
		goto out_free;
	*out = c;
	return 0;

out_free:
	free(c);
	return err;
}

int coord_attach_readonly(const struct coord_config *cfg, struct coord **out)
{
	struct coord *c;
	int err;

	if (!cfg || !out)
		return -EINVAL;
	err = coord_setup_handle(cfg, &c);
	if (err)
		return err;
	c->readonly = true;
	err = c->ops->attach_readonly(c);
	if (err)
		goto out_free;
	*out = c;
	return 0;

out_free:
	free(c);
	return err;
}

void coord_close(struct coord *c)
{
	if (!c)
		return;
	c->ops->close(c);
	free(c);
}

int coord_heartbeat(struct coord *c)
{
	if (c->readonly)
		return -EROFS;                                  /* F2 */
	return c->ops->heartbeat(c);
}

void coord_set_blocking_cb(struct coord *c, coord_blocking_cb cb, void *arg)
{
	if (c->readonly)
		return;
	c->ops->set_blocking_cb(c, cb, arg);
}

int coord_silent_nodes(struct coord *c, uint32_t *slots, size_t max)
{
	if (!slots && max)
		return -EINVAL;
	return c->ops->silent_nodes(c, slots, max);
}

int coord_declare_dead(struct coord *c, uint32_t slot)
{
	if (c->readonly)
		return -EROFS;
	if (!cl_slot_ok(slot))
		return -EINVAL;
	return c->ops->declare_dead(c, slot);
}

int coord_node_info(struct coord *c, uint32_t slot, struct coord_node_info *out)
{
	if (!cl_slot_ok(slot) || !out)
		return -EINVAL;
	return c->ops->node_info(c, slot, out);
}

int coord_lock(struct coord *c, uint64_t res, enum coord_mode mode, int timeout_ms)
{
	if (c->readonly)
		return -EROFS;
	if (res == 0 || (mode != COORD_SH && mode != COORD_EX))   /* F1 */
		return -EINVAL;
	return c->ops->lock(c, res, mode, timeout_ms);
}

int coord_unlock(struct coord *c, uint64_t res)
{
	if (c->readonly)
		return -EROFS;
	if (res == 0)
		return -EINVAL;
	return c->ops->unlock(c, res);
}

int coord_unlock_all(struct coord *c)
{
	if (c->readonly)
		return -EROFS;
	return c->ops->unlock_all(c);
}

int coord_downgrade(struct coord *c, uint64_t res, enum coord_mode mode)
{
	if (c->readonly)
		return -EROFS;
	if (res == 0 || (unsigned)mode > COORD_EX)
		return -EINVAL;
	return c->ops->downgrade(c, res, mode);
}

int coord_release_retained(struct coord *c, uint32_t slot, uint64_t res)
{
	if (c->readonly)
		return -EROFS;
	if (!cl_slot_ok(slot))
		return -EINVAL;
	return c->ops->release_retained(c, slot, res);
}

int coord_wanted_retained(struct coord *c, uint32_t slot, uint64_t *res, size_t max)
{
	if (!cl_slot_ok(slot) || (!res && max))
		return -EINVAL;
	return c->ops->wanted_retained(c, slot, res, max);
}

int coord_locks(struct coord *c, struct coord_lock_info *out, size_t max)
{
	if (!out && max)
		return -EINVAL;
	return c->ops->locks(c, out, max);
}

int coord_register(struct coord *c, uint32_t dead_slot, int lease_ms)
{
	if (c->readonly)
		return -EROFS;
	if (!cl_slot_ok(dead_slot) || lease_ms <= 0)
		return -EINVAL;
	return c->ops->reg(c, dead_slot, lease_ms);
}

int coord_renew(struct coord *c, uint32_t dead_slot, int lease_ms)
{
	if (c->readonly)
		return -EROFS;
	if (!cl_slot_ok(dead_slot) || lease_ms <= 0)
		return -EINVAL;
	return c->ops->renew(c, dead_slot, lease_ms);
}

int coord_unregister(struct coord *c, uint32_t dead_slot)
{
	if (c->readonly)
		return -EROFS;
	if (!cl_slot_ok(dead_slot))
		return -EINVAL;
	return c->ops->unregister(c, dead_slot);
}

int coord_reg_info(struct coord *c, uint32_t slot, struct coord_reg_info *out)
{
	if (!cl_slot_ok(slot) || !out)
		return -EINVAL;
	return c->ops->reg_info(c, slot, out);
}

/* ---- advisory locks ---- */

int coord_plock_test(struct coord *c, struct coord_plock *lk)
{
	if (c->readonly)
		return -EROFS;
	if (!lk)
		return -EINVAL;
	lk->slot = c->cfg.slot;                                 /* F4 */
	if (cpl_validate(lk, false))
		return -EINVAL;
	return c->ops->plock_test(c, lk);
}

int coord_plock_set(struct coord *c, const struct coord_plock *lk, bool wait,
		    bool (*cancelled)(void *arg), void *arg)
{
	if (c->readonly)
		return -EROFS;
	if (!lk)
		return -EINVAL;
	struct coord_plock req = *lk;
	req.slot = c->cfg.slot;                                 /* F4 */
	if (req.kind == COORD_PLOCK_FLOCK) {
		req.start = 0;
		req.end = COORD_PLOCK_EOF;
	}
	if (cpl_validate(&req, true))
		return -EINVAL;
	return c->ops->plock_set(c, &req, wait && req.type != COORD_PLOCK_UNLCK, cancelled, arg);
}

int coord_plock_interrupt(struct coord *c)
{
	if (c->readonly)
		return -EROFS;
	return c->ops->plock_interrupt(c);
}

int coord_plock_release_owner(struct coord *c, uint64_t ino, uint64_t owner,
			      enum coord_plock_kind kind)
{
	if (c->readonly)
		return -EROFS;
	if (kind != COORD_PLOCK_POSIX && kind != COORD_PLOCK_FLOCK)
		return -EINVAL;
	return c->ops->plock_release_owner(c, ino, owner, kind);
}

int coord_plocks(struct coord *c, struct coord_plock *out, size_t max)
{
	if (!out && max)
		return -EINVAL;
	return c->ops->plocks(c, out, max);
}

int coord_set_progress(struct coord *c, uint32_t dead_slot, const struct coord_progress *p)
{
	if (c->readonly)
		return -EROFS;
	if (!cl_slot_ok(dead_slot) || !p)
		return -EINVAL;
	return c->ops->set_progress(c, dead_slot, p);
}

int coord_progress(struct coord *c, uint32_t slot, struct coord_progress *out)
{
	if (!cl_slot_ok(slot) || !out)
		return -EINVAL;
	return c->ops->progress(c, slot, out);
}
