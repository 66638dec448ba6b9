#!/bin/sh
# secrets.sh KEYS — prints the Secrets and ConfigMaps holding amity's keys
# for deploy/k8s, from a directory laid out by
# deploy/examples/four-hosts/make-keys.sh (KEYS/ca, KEYS/hosts/...):
#
#   deploy/k8s/secrets.sh keys | kubectl apply -f -
#
#   Secret amity-ingest-keys     key (svc-ingest: offices and validators check it)
#   Secret amity-validate-key    key (svc-validate-1, shared by all replicas)
#   Secret amity-aggregate-keys  svc-shard-N.key for every shard N (pod N reads its own)
#   Secret amity-notify-keys     key (svc-notify: subscribers and shards check it)
#   ConfigMap amity-peers        public certs of all amity services (svc-*.cert)
#   ConfigMap amity-offices      offices' public certs, for ingest
#                                (edge's clients directory)
#   ConfigMap amity-clients      offices' and subscribers' public certs, for notify
#                                (store-0's clients directory)
#
# Registering or revoking an office: change both clients directories
# (make-keys.sh KEYS OFFICE... does), run this again, then restart ingest and
# notify so they read it at once (both are stateless; clients reconnect and
# resend): kubectl -n amity rollout restart deployment/amity-ingest deployment/amity-notify
set -eu
[ $# -eq 1 ] || { echo "usage: $0 KEYS" >&2; exit 2; }
K=$1
CA=$K/ca
NS=${AMITY_NAMESPACE:-amity}

gen() { kubectl create "$@" --namespace "$NS" --dry-run=client -o yaml; echo ---; }

gen secret generic amity-ingest-keys --from-file=key="$CA/svc-ingest.cert_secret"
gen secret generic amity-validate-key --from-file=key="$CA/svc-validate-1.cert_secret"
set --
for f in "$CA"/svc-shard-*.cert_secret; do
    n=$(basename "$f" .cert_secret)
    set -- "$@" --from-file="$n.key=$f"
done
gen secret generic amity-aggregate-keys "$@"
gen secret generic amity-notify-keys --from-file=key="$CA/svc-notify.cert_secret"
gen configmap amity-peers --from-file="$K/hosts/store-0/etc/amity/peers"
gen configmap amity-offices --from-file="$K/hosts/edge/etc/amity/clients"
gen configmap amity-clients --from-file="$K/hosts/store-0/etc/amity/clients"
