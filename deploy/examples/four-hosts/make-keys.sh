#!/bin/sh
# make-keys.sh OUT [OFFICE...] — the keys of the four-host example, and one
# bundle per host with exactly the files that host needs.
#
#   OUT/ca/               every certificate (public NAME.cert, secret
#                         NAME.cert_secret): keep this directory offline
#   OUT/hosts/HOST/       copy onto HOST as is (rsync -a OUT/hosts/HOST/ root@HOST:/):
#       etc/amity/amity.ini             this host's configuration
#       etc/amity/secret/*.cert_secret  this host's daemons' secret keys (0600, dir 0700)
#       etc/amity/clients/*.cert        offices (edge; store-0 also subscribers)
#       etc/amity/peers/svc-*.cert      every amity service's public cert
#       etc/systemd/system/...          the units and this host's drop-ins
#       etc/amity/units.txt             the units to enable on this host
#   OUT/offices/OFFICE/   what to hand to an office: its secret cert and the
#                         public certs of ingest and notify (svc-ingest.cert,
#                         svc-notify.cert)
#
# Keys that exist already in OUT/ca are kept, so running it again with more
# OFFICEs adds those and rebuilds the bundles. Subscriber "secretariat"
# (prefixes "*", reads everything) is made as an example.
# AMITY_KEYGEN: the amity-keygen to use (default: the one on PATH).
set -eu

usage() { echo "usage: $0 OUT [OFFICE...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
OUT=$1
shift
KEYGEN=${AMITY_KEYGEN:-amity-keygen}
HERE=$(cd "$(dirname "$0")" && pwd)
UNITS=$(cd "$HERE/../../systemd" && pwd)
OFFICES=${*:-hoi-viet-my}

umask 022
mkdir -p "$OUT/ca"

# key FILE-NAME [amity-keygen options]: make OUT/ca/NAME.cert unless present
key() {
    name=$1
    shift
    if [ ! -f "$OUT/ca/$name.cert" ]; then
        "$KEYGEN" "$OUT/ca/$name.cert" "$@" >/dev/null
    fi
}

# one key per daemon process, for its public socket and its internal links
# alike (offices check svc-ingest's public key, subscribers svc-notify's)
SERVICES="svc-ingest svc-validate-1 svc-validate-2 svc-shard-0 svc-shard-1 svc-notify"
for s in $SERVICES; do
    key "$s" --name "$s"
done
for o in $OFFICES; do
    key "$o" --office "$o"
done
key secretariat --name secretariat --prefixes '*'

# host HOST "SECRET..." CLIENTS(none|offices|offices+subscribers)
host() {
    h=$1 secrets=$2 clients=$3
    root="$OUT/hosts/$h"
    rm -rf "$root"
    mkdir -p "$root/etc/amity/peers" "$root/etc/systemd/system"
    mkdir -m 0700 "$root/etc/amity/secret"
    for s in $secrets; do
        cp "$OUT/ca/$s.cert_secret" "$root/etc/amity/secret/"
        chmod 0600 "$root/etc/amity/secret/$s.cert_secret"
    done
    for s in $SERVICES; do
        cp "$OUT/ca/$s.cert" "$root/etc/amity/peers/"
    done
    if [ "$clients" != none ]; then
        mkdir -p "$root/etc/amity/clients"
        for o in $OFFICES; do
            cp "$OUT/ca/$o.cert" "$root/etc/amity/clients/"
        done
        if [ "$clients" = offices+subscribers ]; then
            cp "$OUT/ca/secretariat.cert" "$root/etc/amity/clients/"
        fi
    fi
    cp "$HERE/$h/amity.ini" "$root/etc/amity/amity.ini"
    cp "$HERE/$h/units.txt" "$root/etc/amity/units.txt"
    cp "$UNITS"/amity-*.service "$UNITS"/amity.target "$root/etc/systemd/system/"
    if [ -d "$HERE/$h/systemd" ]; then
        cp -R "$HERE/$h/systemd/." "$root/etc/systemd/system/"
    fi
}

host edge "svc-ingest svc-validate-1" offices
host worker "svc-validate-2" none
host store-0 "svc-shard-0 svc-notify" offices+subscribers
host store-1 "svc-shard-1" none

for o in $OFFICES; do
    mkdir -p "$OUT/offices/$o"
    cp "$OUT/ca/$o.cert_secret" "$OUT/ca/svc-ingest.cert" "$OUT/ca/svc-notify.cert" \
        "$OUT/offices/$o/"
    chmod 0600 "$OUT/offices/$o/$o.cert_secret"
done
echo "keys in $OUT/ca; bundles in $OUT/hosts/{edge,worker,store-0,store-1}; offices in $OUT/offices"
