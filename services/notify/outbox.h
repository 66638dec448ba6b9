/*  outbox: messages notify's socket-free core wants sent (snapreqs to
 *  shards, replies and updates to clients), encoded, in order. The daemon
 *  loop flushes it after every handled input; unit tests decode it. Entries
 *  and their buffers are reused from one flush to the next.
 */
#ifndef NOTIFY_OUTBOX_H
#define NOTIFY_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "amity/buf.h"
#include "amity/proto.h"

#define NOTIFY_RID_MAX 256 /**< a ZeroMQ routing id is 1..255 bytes */

typedef enum {
    NOTIFY_TO_SHARD = 1, /**< the snapshot DEALER of shard `shard` */
    NOTIFY_TO_CLIENT,    /**< the ROUTER, routing id `rid` */
} notify_dest_t;

typedef struct {
    notify_dest_t dest;          /**< which socket */
    size_t shard;                /**< NOTIFY_TO_SHARD: shard index */
    uint8_t rid[NOTIFY_RID_MAX]; /**< NOTIFY_TO_CLIENT: routing id */
    size_t rid_len;              /**< bytes of rid used */
    amity_msg_type_t type;       /**< what body holds (for counting) */
    amity_buf_t body;            /**< the encoded message */
} notify_out_msg_t;

typedef struct {
    notify_out_msg_t *msgs; /**< entries [0, n) are pending; [n, cap) are spare */
    size_t n;               /**< pending entries */
    size_t cap;             /**< entries allocated */
} notify_outbox_t;

void notify_outbox_init(notify_outbox_t *o);
/*  Frees everything. Safe twice. */
void notify_outbox_clear(notify_outbox_t *o);
/*  Forgets the pending entries, keeping (modest) buffers for reuse. */
void notify_outbox_reset(notify_outbox_t *o);

/*  Encodes m and appends it for dest (shard for NOTIFY_TO_SHARD, rid for
 *  NOTIFY_TO_CLIENT; rid is copied). Returns 0, AMITY_EINVAL (rid too
 *  long, or m not encodable), AMITY_ENOMEM. On failure nothing is added. */
int notify_outbox_add(notify_outbox_t *o, notify_dest_t dest, size_t shard, const uint8_t *rid,
                      size_t rid_len, const amity_msg_t *m);

#endif
