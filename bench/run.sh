#!/usr/bin/env bash
# bench/run.sh: how amity performs, and how that compares, in one command.
#
#   bench/run.sh [--smoke] [--bin-dir DIR] [--base-port P] [--budget SECONDS]
#                [--out FILE] [--no-redis] [--no-growth]
#
# Runs, in one go on this machine: the references (the ZeroMQ limit:
# amity-bench_zmq_chain; the LMDB ceiling: amity-bench_lmdb; the Redis peer:
# amity-bench_redis against a redis-server it starts on loopback with
# appendfsync always) and amity itself (amity-stack, durable commits,
# 1/2 validators x 1/2 shards, driven by amity-bench_e2e through libamity),
# then prints every amity figure with its ratio to the limit and to the peer
# (bench/report.py). Without --bin-dir it builds Release into build-bench.
#
# The full run is bounded by --budget (default 570 s): a step that would not
# fit is skipped and says so; growth (10^7 stored) is last and its preload is
# bounded by what remains. --smoke runs tiny sizes in a few seconds (the
# ctest "bench_smoke"); without redis-server the Redis part is skipped.
# Everything started here (stack, redis-server, benches) is stopped on exit,
# Ctrl-C included, and the temporary directory is removed.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=full
BIN_DIR=""
BASE=27600
BUDGET=""
OUT=""
REDIS=1
GROWTH=1
while [ $# -gt 0 ]; do
    case "$1" in
    --smoke) MODE=smoke ;;
    --bin-dir) BIN_DIR=$2; shift ;;
    --base-port) BASE=$2; shift ;;
    --budget) BUDGET=$2; shift ;;
    --out) OUT=$2; shift ;;
    --no-redis) REDIS=0 ;;
    --no-growth) GROWTH=0 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$BUDGET" ]; then
    if [ "$MODE" = smoke ]; then BUDGET=100; else BUDGET=570; fi
fi
if [ "$MODE" = smoke ] && [ "$BASE" = 27600 ]; then
    BASE=28600
fi
REDIS_PORT=$BASE
CHAIN_PORT=$((BASE + 100))
STACK_PORT=$((BASE + 300))
T_START=$SECONDS

log() { echo "run.sh: $*" >&2; }
left() { echo $((BUDGET - (SECONDS - T_START))); }

# ---------------------------------------------------------------- build
if [ -z "$BIN_DIR" ]; then
    B="$ROOT/build-bench"
    if [ ! -f "$B/CMakeCache.txt" ]; then
        cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=Release -DAMITY_BUILD_TESTS=OFF >/dev/null ||
            exit 1
    fi
    log "building $B (Release)"
    cmake --build "$B" -j"$(nproc)" >"$B/bench-build.log" 2>&1 || {
        tail -30 "$B/bench-build.log" >&2
        exit 1
    }
    BIN_DIR="$B/bin"
fi
for b in amity-bench_lmdb amity-bench_zmq_chain amity-bench_e2e amity-stack; do
    if [ ! -x "$BIN_DIR/$b" ]; then
        log "missing $BIN_DIR/$b"
        exit 1
    fi
done
if [ "$REDIS" = 1 ] && { ! command -v redis-server >/dev/null || [ ! -x "$BIN_DIR/amity-bench_redis" ]; }; then
    log "redis-server or amity-bench_redis missing: the Redis peer is skipped"
    REDIS=0
fi

# ---------------------------------------------------------------- bookkeeping
TMP=$(mktemp -d "${TMPDIR:-/tmp}/amity-bench.XXXXXX")
RES="$TMP/results.txt"
: >"$RES"
STACK_PID=""
REDIS_PID=""
SAMPLER_PID=""
BENCH_PID=""
FAILED=0

stop_pid() { # pid, seconds before SIGKILL
    local pid=$1 grace=$2 i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}
cleanup() {
    trap - EXIT INT TERM
    stop_pid "$SAMPLER_PID" 1
    stop_pid "$BENCH_PID" 2
    stop_pid "$STACK_PID" 15
    stop_pid "$REDIS_PID" 5
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# Runs a bench in the background (so the sampler can watch it), waits, and
# appends its RESULT line to $RES prefixed with the figure's tags.
run() { # tags seconds command...
    local tags=$1 secs=$2
    shift 2
    if [ "$(left)" -lt 5 ]; then
        log "skipped ($tags): out of time budget"
        echo "SKIPPED $tags" >>"$RES"
        return 1
    fi
    [ "$secs" -gt "$(left)" ] && secs=$(left)
    timeout --signal=TERM --kill-after=5 "$secs" "$@" >"$TMP/bench.out" 2>"$TMP/bench.err" &
    BENCH_PID=$!
    if [ -n "${WATCH_DAEMONS:-}" ]; then
        start_sampler
    fi
    wait "$BENCH_PID"
    local rc=$?
    BENCH_PID=""
    local line
    line=$(grep '^RESULT ' "$TMP/bench.out" | tail -1)
    if [ $rc -ne 0 ] || [ -z "$line" ]; then
        log "FAILED ($tags, exit $rc): $*"
        tail -5 "$TMP/bench.err" >&2
        FAILED=1
        [ -n "$line" ] && echo "$tags failed=1 ${line#RESULT }" >>"$RES"
        return 1
    fi
    echo "$tags ${line#RESULT }" >>"$RES"
    log "$tags: $(echo "$line" | grep -o 'rps=[0-9]*' | head -1)"
    return 0
}

# ---------------------------------------------------------------- amity stack
daemon_pids() {
    [ -n "$STACK_PID" ] && cat /proc/"$STACK_PID"/task/*/children 2>/dev/null
}
start_stack() { # validators shards batch state
    local v=$1 s=$2 batch=$3 state=$4 i
    AMITY_AGGREGATE_BATCH=$batch AMITY_AGGREGATE_LOG_LEVEL=warn AMITY_INGEST_LOG_LEVEL=warn \
        AMITY_VALIDATE_LOG_LEVEL=warn AMITY_NOTIFY_LOG_LEVEL=warn \
        "$BIN_DIR/amity-stack" --state "$state" --validators "$v" --shards "$s" \
        --base-port "$STACK_PORT" --bin-dir "$BIN_DIR" --log-level warn \
        >"$TMP/stack.out" 2>>"$TMP/stack.err" &
    STACK_PID=$!
    for ((i = 0; i < 300; i++)); do
        grep -q '^ready' "$TMP/stack.out" 2>/dev/null && return 0
        kill -0 "$STACK_PID" 2>/dev/null || break
        sleep 0.1
    done
    log "amity-stack did not become ready:"
    tail -5 "$TMP/stack.err" >&2
    stop_stack
    return 1
}
stop_stack() {
    stop_pid "$STACK_PID" 15
    STACK_PID=""
}
# The peak-RSS sampler: RssAnon of every daemon every 0.2 s (VmHWM also
# counts the LMDB file pages mapped in, which are cache, not the daemon's).
start_sampler() {
    stop_pid "$SAMPLER_PID" 1
    local pids
    pids="$(daemon_pids)"
    (
        declare -A peak
        while :; do
            for p in $pids; do
                a=$(awk '/^RssAnon/{print $2}' /proc/"$p"/status 2>/dev/null)
                [ -n "$a" ] && [ "$a" -gt "${peak[$p]:-0}" ] && peak[$p]=$a
            done
            : >"$TMP/anon.tmp"
            for p in "${!peak[@]}"; do echo "$p ${peak[$p]}" >>"$TMP/anon.tmp"; done
            mv "$TMP/anon.tmp" "$TMP/anon"
            sleep 0.2
        done
    ) &
    SAMPLER_PID=$!
}
# One line per daemon: name, VmHWM, peak RssAnon (KiB).
record_rss() { # tags
    local tags=$1 p name hwm anon
    for p in $(daemon_pids) ; do
        name=$(cat /proc/"$p"/comm 2>/dev/null) || continue
        hwm=$(awk '/^VmHWM/{print $2}' /proc/"$p"/status)
        anon=$(awk -v p="$p" '$1 == p {print $2}' "$TMP/anon" 2>/dev/null)
        echo "$tags daemon=$name pid=$p vmhwm_kib=$hwm peak_anon_kib=${anon:-0}" >>"$RES"
    done
}

E2E=("$BIN_DIR/amity-bench_e2e" --ingest "tcp://127.0.0.1:$STACK_PORT"
    --notify "tcp://127.0.0.1:$((STACK_PORT + 2))" --timeout-ms 30000)
TAP="tcp://127.0.0.1:$((STACK_PORT + 12))"

# ---------------------------------------------------------------- sizes
if [ "$MODE" = smoke ]; then
    N_CHAIN=20000; N_LMDB=4000; N_REDIS_RATE=2000
    N_BIG=10000; N_CFG=4000; N_RATE=5000; RATE=5000
    CONFIGS="1x1 2x2"; BATCHES=""; GROWTH_SIZES="2000"; N_GROWTH=1000; WARMUP=200
else
    N_CHAIN=1000000; N_LMDB=100000; N_REDIS_RATE=100000
    N_BIG=1000000; N_CFG=200000; N_RATE=100000; RATE=10000
    CONFIGS="1x1 1x2 2x1 2x2"; BATCHES="256 1024 16384"; GROWTH_SIZES="100000 1000000 10000000"
    N_GROWTH=40000; WARMUP=1000
fi
BATCH=4096 # the aggregate's default batch
log "mode $MODE, budget ${BUDGET}s, results in $RES"
{
    echo "# amity bench run, $(date -u +%Y-%m-%dT%H:%M:%SZ), mode $MODE, nproc $(nproc)," \
        "$(uname -r), $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
    echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >>"$RES"

# ---------------------------------------------------------------- the limit: ZeroMQ
for cfg in $CONFIGS; do
    v=${cfg%x*}; s=${cfg#*x}
    run "fig=throughput sys=chain v=$v s=$s" 60 "$BIN_DIR/amity-bench_zmq_chain" \
        --records "$N_CHAIN" --validators "$v" --shards "$s" --base-port "$CHAIN_PORT"
done
run "fig=latency sys=chain v=1 s=1" 60 "$BIN_DIR/amity-bench_zmq_chain" \
    --records "$N_RATE" --rate "$RATE" --base-port "$CHAIN_PORT"

# ---------------------------------------------------------------- the limit: LMDB
run "fig=throughput sys=lmdb batch=$BATCH" 120 "$BIN_DIR/amity-bench_lmdb" \
    --records "$N_CFG" --batch "$BATCH" --dir "$TMP/lmdb-$BATCH"
rm -rf "$TMP/lmdb-$BATCH"
for keys in all none; do
    run "fig=design sys=lmdb keys=$keys batch=$BATCH" 120 "$BIN_DIR/amity-bench_lmdb" \
        --records "$N_LMDB" --batch "$BATCH" --keys "$keys" --dir "$TMP/lmdb-$keys"
    rm -rf "$TMP/lmdb-$keys"
done
for b in $BATCHES; do
    run "fig=batch sys=lmdb batch=$b" 120 "$BIN_DIR/amity-bench_lmdb" \
        --records "$N_LMDB" --batch "$b" --dir "$TMP/lmdb-$b"
    rm -rf "$TMP/lmdb-$b"
done

# ---------------------------------------------------------------- the peer: Redis
if [ "$REDIS" = 1 ]; then
    mkdir -p "$TMP/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --appendonly yes --appendfsync always \
        --auto-aof-rewrite-percentage 0 --dir "$TMP/redis" --save '' --daemonize no \
        --logfile "$TMP/redis/log" &
    REDIS_PID=$!
    for ((i = 0; i < 50; i++)); do
        redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    run "fig=throughput sys=redis" 120 "$BIN_DIR/amity-bench_redis" --port "$REDIS_PORT" \
        --records "$N_CFG"
    run "fig=latency sys=redis" 60 "$BIN_DIR/amity-bench_redis" --port "$REDIS_PORT" \
        --records "$N_REDIS_RATE" --rate "$RATE" --first "$N_CFG"
    stop_pid "$REDIS_PID" 5
    REDIS_PID=""
    rm -rf "$TMP/redis"
fi

# ---------------------------------------------------------------- amity
# (1): every configuration, on the same records as the LMDB ceiling
for cfg in $CONFIGS; do
    v=${cfg%x*}; s=${cfg#*x}
    if [ "$(left)" -lt 20 ]; then
        echo "SKIPPED fig=throughput sys=amity v=$v s=$s" >>"$RES"
        continue
    fi
    rm -rf "$TMP/state"
    start_stack "$v" "$s" "$BATCH" "$TMP/state" || { FAILED=1; continue; }
    run "fig=throughput sys=amity v=$v s=$s" 120 "${E2E[@]}" --records "$N_CFG"
    stop_stack
done

# (3): peak RSS of each daemon and of the client through N_BIG (1M) records
rm -rf "$TMP/state"
if [ "$(left)" -gt 60 ] && start_stack 1 1 "$BATCH" "$TMP/state"; then
    WATCH_DAEMONS=1 run "fig=rss sys=amity v=1 s=1 records=$N_BIG" 240 "${E2E[@]}" \
        --records "$N_BIG"
    echo "fig=rss sys=amity records=$N_BIG daemon=client vmhwm_kib=$(grep -o \
        'client_rss_kib=[0-9]*' "$TMP/bench.out" | cut -d= -f2)" >>"$RES"
    record_rss "fig=rss sys=amity records=$N_BIG"
    stop_pid "$SAMPLER_PID" 1
    SAMPLER_PID=""
    stop_stack
else
    echo "SKIPPED fig=rss sys=amity" >>"$RES"
fi

# (2): latency at the fixed offered rate, with commit -> subscriber
rm -rf "$TMP/state"
if [ "$(left)" -gt 20 ] && start_stack 1 1 "$BATCH" "$TMP/state"; then
    run "fig=latency sys=amity v=1 s=1 agg_batch=$BATCH" 90 "${E2E[@]}" --records "$N_RATE" \
        --rate "$RATE" --warmup-ms "$WARMUP" --timeout-ms 3000 --tap "$TAP" --shards 1
    stop_stack
else
    echo "SKIPPED fig=latency sys=amity" >>"$RES"
fi

# (5): batch size against throughput and latency (4096 is above)
for b in $BATCHES; do
    rm -rf "$TMP/state"
    if [ "$(left)" -lt 40 ] || ! start_stack 1 1 "$b" "$TMP/state"; then
        echo "SKIPPED fig=batch sys=amity agg_batch=$b" >>"$RES"
        continue
    fi
    run "fig=batch sys=amity agg_batch=$b" 60 "${E2E[@]}" --records "$N_LMDB"
    run "fig=batchlat sys=amity agg_batch=$b" 60 "${E2E[@]}" --records $((RATE * 5)) \
        --rate "$RATE" --warmup-ms "$WARMUP" --timeout-ms 3000 --first "$N_LMDB"
    stop_stack
done

# (4): growth: the store preloaded to 10^5, 10^6, 10^7 records (bench_lmdb
# writes the aggregate's layout), then the LMDB ceiling and amity measured on it
if [ "$GROWTH" = 1 ]; then
    G="$TMP/growth"
    mkdir -p "$G"
    for size in $GROWTH_SIZES; do
        # keep ~60 s for measuring; the preload gets the rest
        pre_secs=$(($(left) - 60))
        if [ "$pre_secs" -lt 10 ]; then
            echo "SKIPPED fig=growth stored=$size" >>"$RES"
            continue
        fi
        run "fig=growth sys=lmdb target=$size" $((pre_secs + 60)) "$BIN_DIR/amity-bench_lmdb" \
            --dir "$G/shard-0" --keep --preload "$size" --preload-secs "$pre_secs" \
            --records "$N_GROWTH" --batch "$BATCH" || continue
        stored=$(tail -1 "$RES" | grep -o 'stored_after=[0-9]*' | cut -d= -f2)
        if [ "$(left)" -lt 15 ] || ! start_stack 1 1 "$BATCH" "$G"; then
            echo "SKIPPED fig=growth sys=amity target=$size" >>"$RES"
            continue
        fi
        run "fig=growth sys=amity target=$size stored_before=$stored" 90 "${E2E[@]}" \
            --records "$N_GROWTH" --first "$stored"
        stop_stack
        echo "fig=growthbytes sys=amity target=$size file_bytes=$(stat -c %s "$G/shard-0/data.mdb")" \
            "records=$((stored + N_GROWTH))" >>"$RES"
    done
fi

log "done in $((SECONDS - T_START)) s"
python3 "$ROOT/bench/report.py" "$RES" || FAILED=1
if [ -n "$OUT" ]; then
    cp "$RES" "$OUT"
    log "raw results copied to $OUT"
fi
exit $FAILED
