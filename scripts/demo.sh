#!/usr/bin/env bash
# demo: the whole pipeline on loopback with sample data and totals live.
#
#   scripts/demo.sh BIN_DIR
#
# Starts amity-stack (2 validators, state in a temporary directory), follows
# this year's national totals per kind with amity-subscribe, generates
# sample records for six offices with amity-gen and submits each office's
# file in small chunks over about a minute (amity-submit), then keeps
# showing updates until Ctrl-C, which stops everything and removes the
# temporary directory. The daemons' logs go to $TMP/stack.log (printed at
# start; removed at exit). AMITY_DEMO_BASE_PORT moves every port (default
# 7700: ingest 7700, notify 7702, shard 7710..7713).
set -euo pipefail

BIN=$(cd "${1:?usage: demo.sh BIN_DIR}" && pwd)
BASE=${AMITY_DEMO_BASE_PORT:-7700}
INGEST=tcp://127.0.0.1:$BASE
NOTIFY=tcp://127.0.0.1:$((BASE + 2))
YEAR=$(date +%Y)
OFFICES=(hoi-viet-my hoi-viet-nhat lien-hiep-ha-noi lien-hiep-da-nang ngo-desk hoi-viet-phap)
KINDS=(delegation_in delegation_out activity aid_commitment aid_disbursement relief award
       contact org_founded)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/amity-demo.XXXXXX")
STACK_PID=""
SUB_PID=""
FEED_PIDS=()

cleanup() {
    trap - EXIT INT TERM
    set +e
    for pid in "${FEED_PIDS[@]}"; do
        pkill -TERM -P "$pid" 2>/dev/null   # its amity-submit or sleep
        kill -TERM "$pid" 2>/dev/null
    done
    if [ -n "$SUB_PID" ]; then
        kill -TERM "$SUB_PID" 2>/dev/null
    fi
    if [ -n "$STACK_PID" ]; then
        echo "demo: stopping the stack (SIGTERM)" >&2
        kill -TERM "$STACK_PID" 2>/dev/null
        wait "$STACK_PID" 2>/dev/null
    fi
    wait 2>/dev/null
    rm -rf "$TMP"
    echo "demo: stopped, $TMP removed" >&2
}
trap cleanup EXIT
trap 'echo; exit 0' INT TERM

for tool in amity-stack amity-gen amity-submit amity-subscribe amity-query; do
    if [ ! -x "$BIN/$tool" ]; then
        echo "demo: $BIN/$tool is missing (build first)" >&2
        exit 1
    fi
done

# 1. the stack, in the background; wait for its "ready" line
echo "demo: starting amity-stack (logs: $TMP/stack.log)" >&2
"$BIN/amity-stack" --state "$TMP/state" --validators 2 --base-port "$BASE" \
    >"$TMP/stack.out" 2>"$TMP/stack.log" &
STACK_PID=$!
for _ in $(seq 200); do
    grep -qx ready "$TMP/stack.out" 2>/dev/null && break
    if ! kill -0 "$STACK_PID" 2>/dev/null; then
        echo "demo: amity-stack exited; its log:" >&2
        cat "$TMP/stack.log" >&2
        exit 1
    fi
    sleep 0.1
done
if ! grep -qx ready "$TMP/stack.out"; then
    echo "demo: the stack is not ready after 20 s (ports $BASE.. in use?); its log:" >&2
    tail -n 30 "$TMP/stack.log" >&2
    exit 1
fi
sed 's/^/demo: stack: /' "$TMP/stack.out" | grep -v ': ready$' >&2

# 2. live totals: this year, all offices, each kind, all geographies
prefixes=()
for k in "${KINDS[@]}"; do
    prefixes+=("$YEAR/all/$k/all/")
done
show() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -u -c '
import json, sys
names = {"delegation_in": "in", "delegation_out": "out", "activity": "activities",
         "aid_commitment": "aid committed", "aid_disbursement": "disbursed",
         "relief": "relief", "award": "awards", "contact": "partners",
         "org_founded": "orgs founded"}
totals = {}
def money(v):
    whole, _, frac = v.partition(".")
    return "{:,}".format(int(whole)) + ("." + frac if frac else "")
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("snapshot"):
        totals = {}
    totals.update(msg["totals"])
    parts = {}
    for key, value in sorted(totals.items()):
        _, _, kind, _, metric = key.split("/", 4)
        label = names.get(kind, kind)
        if metric.startswith("amount."):
            text = money(value) + " " + metric[7:]
        elif metric in ("people",):
            text = "{} people".format(value)
        elif metric in ("delegations", "activities", "projects", "awards", "partners", "orgs"):
            text = "{:,}".format(value) + (" projects" if metric == "projects" else "")
        else:
            text = "{} {}".format(value, metric)
        parts.setdefault(label, []).append(text)
    order = [names[k] for k in names if names[k] in parts]
    body = " | ".join(l + " " + ", ".join(parts[l]) for l in order)
    print("{} seq {:>4}: {}".format("SNAP" if msg.get("snapshot") else "    ",
                                  msg["seq"], body or "(nothing yet)"))
'
    else
        cat
    fi
}
echo "demo: following $YEAR national totals per kind (amity-subscribe)" >&2
"$BIN/amity-subscribe" --notify "$NOTIFY" "${prefixes[@]}" 2>>"$TMP/stack.log" > >(show) &
SUB_PID=$!

# 3. sample data, one file per office, submitted in chunks over about a minute
"$BIN/amity-gen" --out-dir "$TMP/data" --offices ${#OFFICES[@]} --records 240 \
    --years "$YEAR-$YEAR" --bad-rate 0.02 --seed 1 >/dev/null
feed() {
    local office=$1
    local file="$TMP/data/$office.jsonl"
    mkdir -p "$TMP/chunks/$office"
    split -l 12 "$file" "$TMP/chunks/$office/part-"
    sleep "$(( RANDOM % 3 ))"
    for chunk in "$TMP/chunks/$office"/part-*; do
        "$BIN/amity-submit" --ingest "$INGEST" --office "$office" --deadline-s 15 "$chunk" \
            2>>"$TMP/stack.log" |
            sed "s|^$TMP/chunks/||; s|^|demo: submit [$office] |" >&2 || true
        sleep "$(( 2 + RANDOM % 2 ))"
    done
}
for office in "${OFFICES[@]}"; do
    feed "$office" &
    FEED_PIDS+=($!)
done
echo "demo: submitting ${#OFFICES[@]} offices' records in chunks; Ctrl-C stops everything" >&2

# 4. when the data is in, show a query, then keep following until Ctrl-C
wait "${FEED_PIDS[@]}" 2>/dev/null || true
FEED_PIDS=()
echo "demo: all records submitted. amity-query $YEAR/all/aid_commitment/all/ says:" >&2
"$BIN/amity-query" --notify "$NOTIFY" "$YEAR/all/aid_commitment/all/" >&2 || true
echo "demo: still following updates; Ctrl-C to stop" >&2
wait "$SUB_PID" 2>/dev/null || true
