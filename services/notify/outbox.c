/*  outbox: encoded messages waiting for notify's loop to send them. */
#include "outbox.h"

#include <stdlib.h>
#include <string.h>

#include "amity/err.h"

/*  Bodies bigger than this are freed on reset rather than kept: one large
 *  snapshot burst must not pin its memory forever. */
#define S_KEEP_BODY_MAX ((size_t)256 * 1024)

void
notify_outbox_init(notify_outbox_t *o)
{
    AMITY_ASSERT(o);
    memset(o, 0, sizeof(*o));
}

void
notify_outbox_clear(notify_outbox_t *o)
{
    size_t i;

    AMITY_ASSERT(o);
    for (i = 0; i < o->cap; i++) {
        amity_buf_clear(&o->msgs[i].body);
    }
    free(o->msgs);
    memset(o, 0, sizeof(*o));
}

void
notify_outbox_reset(notify_outbox_t *o)
{
    size_t i;

    AMITY_ASSERT(o);
    for (i = 0; i < o->n; i++) {
        if (o->msgs[i].body.cap > S_KEEP_BODY_MAX) {
            amity_buf_clear(&o->msgs[i].body);
        } else {
            amity_buf_reset(&o->msgs[i].body);
        }
    }
    o->n = 0;
}

int
notify_outbox_add(notify_outbox_t *o, notify_dest_t dest, size_t shard, const uint8_t *rid,
                  size_t rid_len, const amity_msg_t *m)
{
    notify_out_msg_t *e;
    int rc;

    AMITY_ASSERT(o && m);
    if (dest == NOTIFY_TO_CLIENT && (rid_len == 0 || rid_len > NOTIFY_RID_MAX)) {
        return AMITY_EINVAL;
    }
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 16;
        notify_out_msg_t *msgs = realloc(o->msgs, cap * sizeof(*msgs));

        if (!msgs) {
            return AMITY_ENOMEM;
        }
        memset(msgs + o->cap, 0, (cap - o->cap) * sizeof(*msgs));
        for (size_t i = o->cap; i < cap; i++) {
            amity_buf_init(&msgs[i].body);
        }
        o->msgs = msgs;
        o->cap = cap;
    }
    e = &o->msgs[o->n];
    amity_buf_reset(&e->body);
    rc = amity_msg_encode(m, &e->body);
    if (rc != 0) {
        amity_buf_reset(&e->body);
        return rc;
    }
    e->dest = dest;
    e->shard = shard;
    e->rid_len = 0;
    if (dest == NOTIFY_TO_CLIENT) {
        memcpy(e->rid, rid, rid_len);
        e->rid_len = rid_len;
    }
    e->type = m->type;
    o->n++;
    return 0;
}
