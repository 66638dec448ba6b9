/*  auth: CurveZMQ identity. Offices and subscribers are their keys.
 *
 *  A daemon that serves remote peers loads a directory of public
 *  certificates (zcert format: `metadata` with `office = ID` or
 *  `name = NAME`, optional `prefixes = a/,b/`; `curve` with `public-key`)
 *  and answers libzmq's ZAP requests itself, from a REP socket bound at
 *  inproc://zeromq.zap.01 that the daemon polls in its own loop. A known
 *  key is admitted with User-Id = its Z85 public key; the application
 *  maps that to the office or subscriber with amity_auth_peer on every
 *  message, so a key removed by amity_auth_reload (SIGHUP) is refused from
 *  its next connection and its live connections' messages are dropped.
 *  Server sockets set ZMQ_ZAP_ENFORCE_DOMAIN, so with no handler running
 *  libzmq refuses everyone.
 */
#ifndef AMITY_AUTH_H
#define AMITY_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AMITY_KEY_TXT 41          /**< Z85 key text, NUL included */

/*  ZAP domains: offices and subscribers on the public sockets; amity's own
 *  services on the internal links. A key of one domain is refused on a
 *  socket of the other, so an office key can never pull work. */
#define AMITY_ZAP_CLIENTS  "amity"
#define AMITY_ZAP_SERVICES "amity-services"
#define AMITY_PREFIXES_TXT 1024   /**< bytes of a subscriber's prefix list */

typedef struct amity_auth amity_auth_t;

/*  One admitted peer, from its certificate's metadata. */
typedef struct {
    char public_txt[AMITY_KEY_TXT];   /**< Z85 public key */
    char name[65];                    /**< office id ("office") or subscriber name ("name") */
    bool is_office;                   /**< the certificate names an office */
    char prefixes[AMITY_PREFIXES_TXT];/**< allowed key prefixes, comma-separated ("" = none given) */
} amity_peer_t;

/*  A key pair as Z85 text. */
typedef struct {
    char public_txt[AMITY_KEY_TXT];
    char secret_txt[AMITY_KEY_TXT];   /**< "" when only the public key is known */
} amity_keypair_t;

/*  Binds the ZAP handler in ctx, with no keys admitted yet. Returns 0,
 *  AMITY_EIO (the handler could not bind: another one runs in ctx). */
int amity_auth_new(amity_auth_t **out, void *ctx);

/*  Loads every certificate in certs_dir (files ending in "_secret" are
 *  skipped) as the keys admitted to domain (AMITY_ZAP_CLIENTS or
 *  AMITY_ZAP_SERVICES). Returns 0 or AMITY_EINVAL (directory unreadable,
 *  a malformed certificate, a key twice: logged with its path). */
int amity_auth_load(amity_auth_t *self, const char *domain, const char *certs_dir);

/*  Reads every certificate in certs_dir as amity_auth_load would, keeping
 *  none and needing no handler: for --check-config. *n_out (may be NULL)
 *  receives how many there are. Returns 0, AMITY_EINVAL (logged with the
 *  path, as amity_auth_load) or AMITY_ENOMEM. */
int amity_auth_check_dir(const char *certs_dir, size_t *n_out);
void amity_auth_destroy(amity_auth_t **self_p);

/*  The ZAP socket to poll for ZMQ_POLLIN. */
void *amity_auth_socket(amity_auth_t *self);

/*  Answers every pending ZAP request without blocking; returns how many. */
int amity_auth_process(amity_auth_t *self);

/*  Re-reads every loaded directory. On error the previous set of that
 *  domain stays in force (and the error is returned). */
int amity_auth_reload(amity_auth_t *self);

/*  The admitted peer behind a User-Id, or NULL when the key is unknown or
 *  has been removed. Borrowed until the next reload. */
const amity_peer_t *amity_auth_peer(const amity_auth_t *self, const char *domain,
                                    const char *user_id);

/*  True when key lies under one of peer's allowed prefixes. An office
 *  peer with no explicit list may read "<period>/<office>/..." and
 *  "<period>/all/..." keys; a subscriber with no list reads nothing. */
bool amity_auth_allows(const amity_peer_t *peer, const char *key, size_t key_len);

/*  True when some key under prefix may be allowed to peer (the prefix
 *  overlaps what amity_auth_allows lets it read): a query or subscription
 *  for a prefix where this is false would only ever get nothing. */
bool amity_auth_may_read(const amity_peer_t *peer, const char *prefix, size_t prefix_len);

/*  Counters: handshakes admitted and refused by the handler. */
void amity_auth_stats(const amity_auth_t *self, uint64_t *admitted, uint64_t *refused);
size_t amity_auth_count(const amity_auth_t *self, const char *domain);

/*  Loads a certificate file (public part, and the secret part from
 *  path or path + "_secret" when present). Returns 0 or AMITY_EINVAL. */
int amity_keypair_load(const char *path, amity_keypair_t *out);

/*  Makes sock a CURVE server with the given secret key and ZAP domain,
 *  ZMQ_ZAP_ENFORCE_DOMAIN on. Call before bind. */
int amity_curve_server(void *sock, const amity_keypair_t *server, const char *domain);

/*  Makes sock a CURVE client: own key pair and the server's public key. */
int amity_curve_client(void *sock, const amity_keypair_t *own, const char *server_public_txt);

/*  ------------------------------------------------------------------
 *  Connection monitor: a PAIR socket receiving one ZeroMQ socket's
 *  monitor events, polled by the daemon's loop. It logs and counts
 *  handshake failures (NULL mechanism, wrong server key, unknown key),
 *  connections and disconnections (a peer that closed, or went silent
 *  past the heartbeat timeout: the only sign of a cut link).
 *
 *  Lines name the peer. On a connecting socket libzmq's events carry the
 *  endpoint connected to, which is the peer's. On a bound socket they
 *  carry our own endpoint, so the monitor keeps a table of the accepted
 *  connections (the event's value is the fd) with the peer's address read
 *  by getpeername() at accept time, and names that peer when the fd
 *  disconnects. The fd belongs to libzmq's I/O thread, so poll the
 *  monitor promptly: a connection already gone when its accept event is
 *  handled is named "?" (its disconnect event is read in the same batch;
 *  only one closed and replaced by another on the same fd in the instant
 *  between reading and handling a batch could be misnamed). Log lines are
 *  rate-limited per monitor (8 a second), so one dead host costing several
 *  links is logged for each.
 */

#define AMITY_PEER_TXT 128 /**< a peer's address as text, NUL included (cut to fit) */

typedef struct amity_monitor amity_monitor_t;

typedef struct {
    uint64_t handshake_failures;    /**< handshakes that failed */
    uint64_t connects;              /**< connecting socket: handshakes completed; bound socket:
                                         connections accepted */
    uint64_t disconnects;           /**< connections that ended (connecting socket: only those
                                         whose handshake had completed) */
    uint64_t live;                  /**< connections up now (as counted above) */
    char last_peer[AMITY_PEER_TXT]; /**< peer of the last disconnect ("" before any): a bound
                                         socket's "127.0.0.1:PORT" / "[::1]:PORT" (the
                                         endpoint, when not TCP), else the endpoint */
} amity_monitor_stats_t;

/*  Monitors sock (created in ctx; call before it binds or connects, so no
 *  event is missed). name (copied, up to 63 bytes) starts every line:
 *  "clients", "shard 1". Returns the monitor, or NULL (logged). */
amity_monitor_t *amity_monitor_new(void *ctx, void *sock, const char *name);

/*  Closes the PAIR socket and frees the monitor. NULL-safe; sets *self_p
 *  to NULL. Close the monitor before the monitored socket's context ends. */
void amity_monitor_destroy(amity_monitor_t **self_p);

/*  The PAIR socket to poll for ZMQ_POLLIN. */
void *amity_monitor_socket(const amity_monitor_t *self);

/*  Handles every waiting event without blocking: handshake failures logged
 *  at warn ("NAME: handshake failed ... from EP (code N)"), "NAME: connected
 *  peer=EP" (connecting sockets) and "NAME: peer disconnected peer=ADDR"
 *  at info. Returns the number of handshake failures seen in this call. */
int amity_monitor_process(amity_monitor_t *self);

/*  Counters since amity_monitor_new. */
void amity_monitor_stats(const amity_monitor_t *self, amity_monitor_stats_t *out);

#endif
