/*
 * pfs_peer.h -- peer recovery (recovery/peer.c): a surviving node backs
 * out a dead node's journal as its registered counterpart.
 */
#ifndef PFS_PEER_H
#define PFS_PEER_H

#include <stdint.h>

struct pfs_fs;

enum peer_phase {
	PEER_REGISTER = 0,      /* coord_register under a lease */
	PEER_INIT,              /* the dead slot taken over on disk */
	PEER_BACKOUT,           /* journal scan and backout */
	PEER_RELEASE,           /* slot freed, retained locks released */
	PEER_UNREGISTER,
	PEER_NPHASES
};

struct peer_stats {
	uint32_t slot;
	uint32_t locks_released;
	double phase_ms[PEER_NPHASES];
	double total_ms;
};

/* Recover dead node `dead` as its counterpart (the whole flow).  0 done;
 * -EBUSY another peer is its counterpart; other errors leave its locks
 * retained for a later attempt. */
int peer_recover(struct pfs_fs *fs, uint32_t dead, struct peer_stats *st);
/* An operator's request (peerfsctl recover): node n whatever its state
 * at the coordinator: LIVE but silent (declared dead first), DEAD, or
 * unknown with its slot left mounted on disk. */
int peer_recover_node(struct pfs_fs *fs, uint32_t n, struct peer_stats *st);
/* A slot left mounted that the coordinator does not know (its state was
 * lost with every node): back out its journal and free it. */
int peer_recover_unowned_slot(struct pfs_fs *fs, uint32_t s);
/* At mount, before serving (unless recovery=manual): declare dead the
 * peers silent at the coordinator and on disk (their processes are gone,
 * e.g. every node died) and recover every dead node nobody recovers.
 * Returns the number recovered. */
int peer_recover_at_mount(struct pfs_fs *fs);
/* The recovery thread (automatic recovery unless recovery=manual). */
int peer_start(struct pfs_fs *fs);
void peer_stop(struct pfs_fs *fs);
void peer_kick(struct pfs_fs *fs);

#endif /* PFS_PEER_H */
