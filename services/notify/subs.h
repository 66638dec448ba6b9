/*  subs: notify's subscribers, by ROUTER routing id: their prefixes, the
 *  seq of the last message sent to each (the next upd's `prev`), and when
 *  each was last heard from. Fans a batch of changed sums out as one `upd`
 *  per subscriber with at least one matching key. No sockets.
 */
#ifndef NOTIFY_SUBS_H
#define NOTIFY_SUBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amity/auth.h"
#include "amity/proto.h"
#include "outbox.h"

#define NOTIFY_SUB_TIMEOUT_MS 10000 /**< a subscriber silent this long is forgotten */

typedef struct notify_subs notify_subs_t;

/*  max: most subscribers at once (>= 1). Returns 0 or AMITY_ENOMEM. */
int notify_subs_new(notify_subs_t **out, size_t max);
void notify_subs_destroy(notify_subs_t **self_p);

/*  Registers rid with prefixes (copied), replacing an earlier subscription
 *  of the same rid; last_sent = seq, last heard = now. peer (copied; NULL
 *  in development mode) is the key behind rid: only keys it may read
 *  (amity_auth_allows) are ever sent to rid. Returns 0, AMITY_EFULL (max
 *  reached, rid unknown), AMITY_EINVAL (rid empty or longer than
 *  NOTIFY_RID_MAX), AMITY_ENOMEM. */
int notify_subs_put(notify_subs_t *self, const uint8_t *rid, size_t rid_len,
                    const amity_view_t *prefixes, size_t n_prefixes, const amity_peer_t *peer,
                    uint64_t seq, int64_t now_ms);

/*  Maps a subscriber's public key to its current certificate, NULL when
 *  the key is no longer registered. */
typedef const amity_peer_t *(*notify_peer_fn)(void *arg, const char *public_txt);

/*  After a certificate reload: forgets every subscriber whose key lookup
 *  gives NULL and refreshes the others' peers (their allowed prefixes may
 *  have changed). Subscribers without a peer are kept. Returns how many
 *  were forgotten, or AMITY_ENOMEM (negative). */
int notify_subs_revalidate(notify_subs_t *self, notify_peer_fn lookup, void *arg);

/*  A ping: refreshes rid's last heard time and gives its last_sent.
 *  Returns 0 or AMITY_ENOTFOUND. */
int notify_subs_touch(notify_subs_t *self, const uint8_t *rid, size_t rid_len, int64_t now_ms,
                      uint64_t *last_sent);

/*  Forgets rid. Returns 0 or AMITY_ENOTFOUND. */
int notify_subs_remove(notify_subs_t *self, const uint8_t *rid, size_t rid_len);

/*  Forgets subscribers not heard from for NOTIFY_SUB_TIMEOUT_MS; returns
 *  how many. */
size_t notify_subs_expire(notify_subs_t *self, int64_t now_ms);

size_t notify_subs_count(const notify_subs_t *self);

/*  True when key starts with one of the prefixes ("" matches everything). */
bool notify_prefix_match(const amity_view_t *prefixes, size_t n_prefixes, const void *key,
                         size_t key_len);

/*  Sends each subscriber an `upd` {epoch, seq, prev = its last_sent, kv =
 *  its keys among the n changes (under its prefixes, and allowed to its
 *  peer)} when that is non-empty, then sets its last_sent = seq. *n_sent (may be NULL) gets the
 * number queued. Returns 0 or AMITY_ENOMEM. */
int notify_subs_fanout(notify_subs_t *self, const amity_kv_t *changes, size_t n, uint64_t epoch,
                       uint64_t seq, notify_outbox_t *out, size_t *n_sent);

#endif
