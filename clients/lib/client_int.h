/*  libamity internals shared by client.c, sub.c, query.c and json.c;
 *  not installed. */
#ifndef AMITY_CLIENT_INT_H
#define AMITY_CLIENT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amity/client.h"
#include "amity/proto.h"
#include "amity/sock.h"

/*  A parsed JSON record: the field list borrows from the document. */
typedef struct amity_json_doc amity_json_doc_t;

int amity_json_doc_parse(amity_json_doc_t **out, const char *json, size_t len, char *why,
                         size_t why_len);
const amity_fields_t *amity_json_doc_fields(const amity_json_doc_t *self);
void amity_json_doc_destroy(amity_json_doc_t **self_p);

/*  A DEALER connected to endpoint in its own context, ZMQ_IMMEDIATE so a
 *  send to a peer that is not connected fails (AMITY_EAGAIN) instead of
 *  queueing. */
typedef struct {
    void *ctx;  /* zmq context (owned) */
    void *sock; /* the DEALER (owned) */
} amity_dealer_t;

/*  opts->key and opts->server_key (both or neither; read here) make the
 *  DEALER a CURVE client. Returns 0, AMITY_EINVAL (a key file is missing
 *  or unreadable, or only one of the two is set: logged), AMITY_EIO. */
int amity_dealer_open(amity_dealer_t *d, const char *endpoint, int linger_ms,
                      const amity_client_opts_t *opts);
void amity_dealer_close(amity_dealer_t *d);

/*  Sends one message (encoded from m) without blocking. Returns 0,
 *  AMITY_EAGAIN (no peer / pipe full), AMITY_EIO, AMITY_ENOMEM. */
int amity_dealer_send(amity_dealer_t *d, const amity_msg_t *m, amity_buf_t *scratch);

/*  One received message: the frames own the bytes m's views point into. */
typedef struct {
    amity_frame_t frames[4];
    int n_frames;
    amity_msg_t msg;
} amity_rx_t;

/*  Receives and decodes one message without blocking. Returns 1 with rx
 *  filled (release with amity_rx_clear), 0 when nothing is waiting,
 *  AMITY_EPROTO (undecodable message, logged and dropped: try again),
 *  AMITY_EIO / AMITY_ETERM. */
int amity_dealer_recv(amity_dealer_t *d, amity_rx_t *rx);
void amity_rx_clear(amity_rx_t *rx);

/*  A request to notify answered by one or more chunks (query -> snap,
 *  rejreq -> rejects). The driver sends the request under a fresh req id,
 *  re-sends it (new id; chunks of an older one are ignored) when no chunk
 *  came for silence_ms, and ends when a chunk has more=false. */
typedef struct {
    const char *what;                         /* names the request in logs ("query for '2017/'") */
    amity_msg_type_t reply;                   /* the chunks' type */
    int silence_ms;                           /* no chunk this long: ask again */
    void (*build)(void *arg, amity_msg_t *q); /* fills the request; req is set after */
    void (*reset)(void *arg); /* drops what earlier chunks gave; before every (re)send */
    int (*chunk)(void *arg, const amity_msg_t *m); /* 0 go on, 1 start over, < 0 fail */
    void *arg;
} amity_chunked_t;

/*  Runs rq against notify until the last chunk or timeout_ms (< 0: 5 s).
 *  Returns 0, AMITY_EAGAIN (timed out), AMITY_EINVAL (notify answered
 *  `error`: logged with its reason), a chunk callback's code, AMITY_EIO. */
int amity_request_chunks(const amity_client_opts_t *opts, const amity_chunked_t *rq,
                         int timeout_ms);

/*  Copies the endpoint option or its default. */
const char *amity_opts_ingest(const amity_client_opts_t *opts);
const char *amity_opts_notify(const amity_client_opts_t *opts);

/*  Sorts totals by key (byte order). */
void amity_totals_sort(amity_total_t *t, size_t n);

/*  A random non-zero 64-bit number (request ids, so that replies to an
 *  earlier process or request are never taken for ours). */
uint64_t amity_random64(void);

#endif
