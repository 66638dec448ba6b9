#!/usr/bin/env python3
"""bench/report.py RESULTS: prints bench/run.sh's figures as tables, every
amity figure beside the ZeroMQ limit, the LMDB ceiling and the Redis peer,
with ratios (amity / reference; > 1 means amity is ahead for throughput,
behind for latency and memory), and the issue's targets.

RESULTS holds one line per measurement: key=value tokens (the figure's tags
from run.sh, then the bench's RESULT fields); '#' lines are the header."""
import sys


def parse(path):
    rows, header, skipped = [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                header.append(line[1:].strip())
                continue
            if line.startswith("SKIPPED"):
                skipped.append(line[8:])
                continue
            row = {}
            for tok in line.split():
                if "=" in tok:
                    k, v = tok.split("=", 1)
                    row[k] = v
            rows.append(row)
    return rows, header, skipped


def find(rows, **tags):
    for r in rows:
        if all(r.get(k) == str(v) for k, v in tags.items()):
            return r
    return None


def num(r, key):
    if r is None or key not in r:
        return None
    # a percentile over no samples is no figure
    if key.endswith("_ms") and "_p" in key:
        n = r.get(key[:key.index("_p")] + "_n")
        if n is not None and n == "0":
            return None
    try:
        return float(r[key])
    except ValueError:
        return None


def fmt(x, unit=""):
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}{unit}"
    if abs(x) >= 10:
        return f"{x:.1f}{unit}"
    return f"{x:.2f}{unit}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    r = a / b
    return f"{r:.3f}" if r < 10 else f"{r:.1f}"


def table(head, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(x).rjust(w) if i else str(x).ljust(w)
                        for i, (x, w) in enumerate(zip(r, widths))))
    print()


def main():
    rows, header, skipped = parse(sys.argv[1])
    targets = []
    print()
    print("amity bench: " + (header[0] if header else ""))
    for h in header[1:]:
        print("  " + h)
    print("  ratio = amity / reference, measured in this run on this machine")
    print()

    # (1) throughput
    lmdb = find(rows, fig="throughput", sys="lmdb")
    redis = find(rows, fig="throughput", sys="redis")
    lmdb_rps, redis_rps = num(lmdb, "rps"), num(redis, "rps")
    print("(1) end-to-end throughput, submit -> verdict, records/s "
          f"(durable commits, aggregate batch {lmdb.get('batch', '?') if lmdb else '?'})")
    t = []
    best = None
    for v, s in (("1", "1"), ("1", "2"), ("2", "1"), ("2", "2")):
        a = find(rows, fig="throughput", sys="amity", v=v, s=s)
        c = find(rows, fig="throughput", sys="chain", v=v, s=s)
        if a is None and c is None:
            continue
        ar = num(a, "rps")
        if ar is not None and (best is None or ar > best):
            best = ar
        t.append([f"{v} validator(s) x {s} shard(s)", fmt(ar), fmt(num(c, "rps")),
                  ratio(ar, num(c, "rps")), fmt(lmdb_rps), ratio(ar, lmdb_rps),
                  fmt(redis_rps), ratio(ar, redis_rps),
                  a.get("done", "-") + "/" + a.get("records", "-") if a else "-"])
    table(["config", "amity", "ZMQ limit", "ratio", "LMDB ceiling", "ratio", "Redis peer",
           "ratio", "verdicts"], t)
    if best is not None:
        targets.append(("end-to-end >= 150k records/s (best configuration)", f"{fmt(best)}",
                        best >= 150000))
        if redis_rps:
            targets.append(("end-to-end >= 5x the Redis peer",
                            f"{best / redis_rps:.2f}x", best >= 5 * redis_rps))
        one = num(find(rows, fig="throughput", sys="amity", v=1, s=1), "rps")
        if lmdb_rps and one:
            # one shard is one LMDB environment, as in the ceiling
            targets.append(("end-to-end >= 0.6x the LMDB ceiling at the same batch (1 shard)",
                            f"{one / lmdb_rps:.2f}x", one >= 0.6 * lmdb_rps))
    d = [r for r in rows if r.get("fig") == "design"]
    if d and lmdb:
        print("    LMDB ceiling by what is materialised (same records, same batch):")
        # runs before the aggregate stored finest keys only had no keys= on
        # the ceiling line: all keys was the default then
        names = {"finest": "finest keys only (amity: month/office/country)",
                 "all": "all 48 keys (amity before)",
                 "none": "records only (no totals)"}
        t = [[names.get(lmdb.get("keys", "all"), lmdb.get("keys")), fmt(lmdb_rps),
              lmdb.get("key_writes_per_record", "-"),
              fmt(num(lmdb, "bytes_per_record")), fmt(num(lmdb, "commit_p50_ms"))]]
        for r in d:
            t.append([names.get(r.get("keys"), r.get("keys")),
                      fmt(num(r, "rps")), r.get("key_writes_per_record", "-"),
                      fmt(num(r, "bytes_per_record")), fmt(num(r, "commit_p50_ms"))])
        table(["    materialised", "records/s", "key writes/record", "bytes/record",
               "commit p50 ms"], t)

    # (2) latency
    a = find(rows, fig="latency", sys="amity")
    c = find(rows, fig="latency", sys="chain")
    r = find(rows, fig="latency", sys="redis")
    rate = a.get("rate") if a else (c.get("rate") if c else "?")
    print(f"(2) latency at a fixed offered rate of {rate} records/s, ms")
    t = []
    for p in ("p50", "p99", "p999"):
        av, cv, rv = num(a, f"verdict_{p}_ms"), num(c, f"verdict_{p}_ms"), num(r, f"reply_{p}_ms")
        t.append([f"submit -> verdict {p.replace('p999', 'p99.9')}", fmt(av), fmt(cv),
                  ratio(av, cv), fmt(rv), ratio(av, rv)])
    for p in ("p50", "p99", "p999"):
        t.append([f"commit -> subscriber {p.replace('p999', 'p99.9')}",
                  fmt(num(a, f"commit_sub_{p}_ms")), "-", "-", "-", "-"])
    table(["", "amity", "ZMQ limit", "ratio", "Redis peer", "ratio"], t)
    if a is not None:
        print(f"    amity: {a.get('done')}/{a.get('records')} verdicts in {a.get('secs')} s, "
              f"{a.get('messages')} submit messages, {a.get('resends')} records resent after "
              f"the client's timeout (max {fmt(num(a, 'verdict_max_ms'))} ms); "
              f"{a.get('commit_sub_n', 0)} probes seen by the subscriber")
        print()
        p99 = num(a, "verdict_p99_ms")
        targets.append((f"p99 submit -> verdict <= 5 ms at {rate}/s", f"{fmt(p99)} ms",
                        p99 is not None and p99 <= 5 and a.get("done") == a.get("records")))

    # (3) RSS
    rss = [x for x in rows if x.get("fig") == "rss" and "daemon" in x]
    rss_run = find(rows, fig="rss", sys="amity", bench="e2e")
    if rss:
        n = rss[0].get("records", "?")
        chain_rss = max((num(x, "chain_peak_rss_kib") or 0) for x in rows
                        if x.get("sys") == "chain") if c else None
        redis_rss = max((num(x, "server_rss_kib") or 0) for x in rows
                        if x.get("sys") == "redis") if r else None
        print(f"(3) peak RSS through {n} records, MiB (VmHWM counts the LMDB pages mapped "
              "in; peak anon excludes them)")
        t = []
        worst = 0.0
        for x in rss:
            hwm = (num(x, "vmhwm_kib") or 0) / 1024
            anon = num(x, "peak_anon_kib")
            anon = anon / 1024 if anon is not None else None
            if x.get("daemon") != "client":
                worst = max(worst, hwm)
            t.append([x.get("daemon"), fmt(hwm), fmt(anon),
                      ratio(hwm, chain_rss / 1024 if chain_rss else None),
                      ratio(hwm, redis_rss / 1024 if redis_rss else None)])
        table(["process", "VmHWM", "peak anon", "/ ZMQ hop", "/ redis-server"], t)
        print(f"    references: ZMQ chain process peak {fmt((chain_rss or 0) / 1024)} MiB, "
              f"redis-server peak {fmt((redis_rss or 0) / 1024)} MiB")
        if rss_run is not None:
            print(f"    the run: {rss_run.get('done')}/{rss_run.get('records')} verdicts at "
                  f"{fmt(num(rss_run, 'rps'))} records/s (1 validator x 1 shard, the store "
                  f"growing from empty to {rss_run.get('records')} records)")
        print()
        targets.append(("every daemon <= 50 MiB RSS through 1M records (VmHWM)",
                        f"worst {fmt(worst)} MiB", worst <= 50 and n == "1000000"))

    # (4) growth
    g = [x for x in rows if x.get("fig") == "growth"]
    if g:
        print("(4) growth: throughput and bytes per stored record with the store preloaded")
        t = []
        base = None
        last = None
        for x in [y for y in g if y.get("sys") == "lmdb"]:
            target = x.get("target")
            am = find(rows, fig="growth", sys="amity", target=target)
            gb = find(rows, fig="growthbytes", target=target)
            ar, lr = num(am, "rps"), num(x, "rps")
            abytes = (num(gb, "file_bytes") or 0) / (num(gb, "records") or 1) if gb else None
            t.append([x.get("stored_before"), fmt(ar), fmt(lr), ratio(ar, lr),
                      fmt(num(x, "bytes_per_record")), fmt(abytes),
                      fmt(num(redis, "aof_bytes_per_record")),
                      fmt(num(redis, "mem_bytes_per_record")),
                      x.get("totals_keys", "-")])
            if ar is not None:
                base = ar if base is None else base
                last = (x.get("stored_before"), ar)
        table(["stored", "amity rec/s", "LMDB rec/s", "ratio", "LMDB B/rec", "amity file B/rec",
               "Redis AOF B/rec", "Redis mem B/rec", "totals keys"], t)
        if base and last:
            targets.append(("throughput with 10^7 stored >= 0.8x with 10^5",
                            f"{last[1] / base:.2f}x at {last[0]} stored",
                            last[1] >= 0.8 * base and last[0] is not None
                            and int(last[0]) >= 10**7))

    # (5) batch
    bl = [x for x in rows if x.get("fig") in ("batch",) and x.get("sys") == "lmdb"]
    if bl or find(rows, fig="batch", sys="amity"):
        print("(5) aggregate batch size against throughput and latency "
              f"(latency at {rate} records/s offered)")
        t = []
        batches = sorted({int(x["agg_batch"]) for x in rows if "agg_batch" in x}
                         | {int(x["batch"]) for x in rows
                            if x.get("sys") == "lmdb" and x.get("fig") in ("batch", "throughput")})
        for b in batches:
            if lmdb is not None and b == int(lmdb.get("batch", 0)):
                am = find(rows, fig="throughput", sys="amity", v=1, s=1)
                al = find(rows, fig="latency", sys="amity")
                lm = lmdb
            else:
                am = find(rows, fig="batch", sys="amity", agg_batch=b)
                al = find(rows, fig="batchlat", sys="amity", agg_batch=b)
                lm = find(rows, fig="batch", sys="lmdb", batch=b)
            t.append([b, fmt(num(am, "rps")), fmt(num(lm, "rps")),
                      ratio(num(am, "rps"), num(lm, "rps")), fmt(redis_rps),
                      ratio(num(am, "rps"), redis_rps), fmt(num(al, "verdict_p50_ms")),
                      fmt(num(al, "verdict_p99_ms")), fmt(num(al, "verdict_p999_ms")),
                      al.get("resends", "-") if al else "-"])
        table(["batch", "amity rec/s", "LMDB rec/s", "ratio", "Redis rec/s", "ratio",
               "p50 ms", "p99 ms", "p99.9 ms", "resends"], t)

    if skipped:
        print("skipped (time budget or failure): " + "; ".join(skipped))
        print()
    print("targets (goals, not assertions):")
    for name, got, ok in targets:
        print(f"  [{'met' if ok else 'NOT met'}] {name}: {got}")
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
