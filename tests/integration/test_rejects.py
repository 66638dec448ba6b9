"""Rejected records and tables (issue 6): `amity-query --rejects`,
`amity-query --table`, `amity-subscribe --table`.

Two shards. Two offices submit records, some of them invalid (a Vietnamese
note and a Vietnamese kind among them, a conflicting revision, a record
that is not a map at all, sent raw); then:

- `amity-query --rejects` lists every rejected record, oldest first, with
  the reason amity-submit printed for it, its id, an ISO-8601 UTC time and
  the record as sent (a JSON object, Vietnamese byte for byte; base64 for
  the record that is not a map);
- `--office X` lists only X's; `--table` prints time, office, id, reason;
- with a shard stopped the listing fails within seconds with an error
  naming that shard, and works again once it is back;
- `amity-query --table PREFIX` prints the totals as an aligned table whose
  values (commas removed) are amity-query's JSON values;
- `amity-subscribe --table` (and, under `script`, on a terminal) draws a
  table frame; piped without --table it still prints JSON lines;
- secure mode (keys from amity-keygen, CurveZMQ on every link): an
  office's key lists its own office's rejects only and is refused another
  office's; the operator's key (prefixes "*") lists all and filters; a
  subscriber key without "*" is refused.

Base port 21900 (development mode) and 22900 (secure mode).
"""

import json
import os
import random
import re
import shutil
import subprocess
import time

import harness as h

BASE_PORT = 21900
SECURE_BASE_PORT = 22900
SUBMIT_ARGS = ["--timeout-ms", "2000", "--deadline-s", "60"]

A = "hoi-viet-my"
B = "hoi-viet-nhat"
NOTE_VI = "Đoàn Hội hữu nghị Việt – Mỹ thăm Hà Nội, trao tặng 12 suất học bổng"
KIND_VI = "giao_lưu_hữu_nghị"

ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SUBMIT_REJECT_RE = re.compile(r"^.*?:(\d+): (\S+): (.*)$")


def invalid_records(office, other):
    """Records each breaking one rule (their ids say which)."""
    p = "a" if office == A else "b"
    return [
        {"id": p + "-bad-date", "kind": "delegation_in", "date": "2023-02-30", "country": "US",
         "delegations": 1, "people": 4},
        {"id": p + "-bad-country", "kind": "contact", "date": "2023-03-01", "country": "XX",
         "partners": 2},
        {"id": p + "-vi", "kind": KIND_VI, "date": "2023-04-02", "note": NOTE_VI},
        {"id": p + "-colour", "kind": "activity", "date": "2023-05-03", "activities": 1,
         "colour": "đỏ", "note": NOTE_VI},
        {"id": p + "-float", "kind": "relief", "date": "2023-06-04", "amount": 12.5,
         "currency": "USD"},
        {"id": p + "-cross", "kind": "activity", "date": "2023-07-05", "activities": 1,
         "office": other},
        {"id": p + "-people", "kind": "delegation_out", "date": "2023-08-06", "country": "JP",
         "delegations": 1, "people": 2000000000},
    ]


def conflict_pair(office):
    p = "a" if office == A else "b"
    first = {"id": p + "-conflict", "kind": "award", "date": "2023-09-07", "country": "FR",
             "awards": 3}
    second = dict(first, awards=4)
    return first, second


def submit_lines(c, office, name, recs, extra=()):
    path = h.write_lines(os.path.join(c.dir, name), [h.jsonl(r) for r in recs])
    res = c.submit(office, path, list(extra) + SUBMIT_ARGS, timeout=120)
    if res.returncode not in (0, 65) or res.summary is None:
        raise AssertionError("amity-submit %s as %s: rc %s, summary %s, stderr %s" % (
            name, office, res.returncode, res.summary, res.stderr[-800:]))
    got = {}
    for line in res.reject_lines:
        m = SUBMIT_REJECT_RE.match(line)
        if m:
            got[m.group(2)] = m.group(3)
    return res, got


def raw_submit_not_a_map(c, office):
    """A record that is not a map (a msgpack array), sent raw: ingest
    forwards its bytes, validate rejects it, the shard keeps it."""
    import msgpack
    import zmq
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(c.ingest_ep)
    rec = msgpack.packb([1, 2, 3])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            s.send(msgpack.packb({"v": 1, "t": "submit", "office": office,
                                  "recs": [{"tag": 1, "rec": [1, 2, 3]}]}))
            if s.poll(3000):
                m = msgpack.unpackb(s.recv_multipart()[-1], raw=False)
                if m.get("t") == "verdicts":
                    v = m["items"][0]
                    if v["st"] != "rejected":
                        raise AssertionError("array record: verdict %r" % (v,))
                    return rec, v["why"]
        raise AssertionError("no verdict for the raw array record")
    finally:
        s.close(0)


def query_args(c, keys=None, who=None):
    args = ["amity-query", "--notify", c.notify_ep]
    if keys is not None:
        args += ["--key", keys.sec(who), "--server-key", keys.pub("notify")]
    return args


def list_rejects(c, office=None, keys=None, who=None, expect_rc=0, table=False):
    argv = query_args(c, keys, who) + ["--rejects"]
    if office is not None:
        argv += ["--office", office]
    if table:
        argv += ["--table"]
    r = c.run_client(argv, timeout=30, quiet=expect_rc != 0)
    if r.returncode != expect_rc:
        raise AssertionError("%s: rc %d (expected %d): %s" % (" ".join(argv), r.returncode,
                                                              expect_rc, r.stderr[-800:]))
    if expect_rc != 0 or table:
        return r
    items = []
    for line in r.stdout.splitlines():
        if line.strip():
            items.append(json.loads(line))
    return items


def check_listing(items, expected, what):
    """items (amity-query --rejects JSON lines) against expected
    {(office, id): why}."""
    got = {}
    for it in items:
        for k in ("office", "id", "why", "time", "record"):
            if k not in it:
                raise AssertionError("%s: item without %r: %r" % (what, k, it))
        if not ISO_RE.match(it["time"]):
            raise AssertionError("%s: time %r is not ISO-8601 UTC with ms" % (what, it["time"]))
        key = (it["office"], it["id"])
        if key in got:
            raise AssertionError("%s: %r listed twice" % (what, key))
        got[key] = it["why"]
    if got != expected:
        missing = {k: v for k, v in expected.items() if got.get(k) != v}
        extra = {k: v for k, v in got.items() if expected.get(k) != v}
        raise AssertionError("%s: listing differs\n  expected but not listed: %r\n"
                             "  listed but not expected: %r" % (what, missing, extra))
    times = [it["time"] for it in items]
    if times != sorted(times):
        raise AssertionError("%s: not oldest first: %r" % (what, times))
    h.log("%s: %d rejected records listed with their reasons" % (what, len(items)))


def check_records(items, sent):
    """The record of each listed item is the record as sent."""
    by_id = {(it["office"], it["id"]): it for it in items}
    for (office, rid), rec in sent.items():
        it = by_id[(office, rid)]
        if isinstance(rec, bytes):
            import base64
            if it["record"] != base64.b64encode(rec).decode():
                raise AssertionError("%s: record %r is not the base64 of %r" % (
                    rid, it["record"], rec))
        elif it["record"] != rec:
            raise AssertionError("%s/%s: record %r, sent %r" % (office, rid, it["record"], rec))
    vi = [it for it in items if it["id"].endswith("-vi")]
    for it in vi:
        if it["record"].get("note") != NOTE_VI or it["record"].get("kind") != KIND_VI:
            raise AssertionError("Vietnamese text changed: %r" % (it["record"],))
        if KIND_VI not in it["why"]:
            raise AssertionError("the reason does not quote the Vietnamese kind: %r" % it["why"])
    h.log("records as sent, Vietnamese byte for byte (%d with Vietnamese text)" % len(vi))


def check_rejects_table(r, expected):
    lines = r.stdout.splitlines()
    if len(lines) < 2 or lines[0].split() != ["TIME", "OFFICE", "ID", "REASON"] or \
            set(lines[1].replace(" ", "")) != {"-"}:
        raise AssertionError("--rejects --table: no heading and rule: %r" % lines[:3])
    rows = lines[2:]
    if len(rows) != len(expected):
        raise AssertionError("--rejects --table: %d rows for %d rejects" % (len(rows),
                                                                           len(expected)))
    for (office, rid), why in expected.items():
        shown = rid or "-"  # a record without an id
        if not any(office in row and (" %s " % shown) in row and row.endswith(why)
                   for row in rows):
            raise AssertionError("--rejects --table: no row for %s %s %r:\n%s" % (
                office, rid, why, r.stdout))
    h.log("--rejects --table: %d rows" % len(rows))


def check_totals_table(c, prefix):
    j = json.loads(c.run_client(query_args(c) + [prefix], timeout=30).stdout)
    r = c.run_client(query_args(c) + ["--table", prefix], timeout=30)
    if r.returncode != 0:
        raise AssertionError("amity-query --table: rc %d: %s" % (r.returncode, r.stderr))
    lines = r.stdout.splitlines()
    if lines[0].split() != ["KEY", "VALUE"] or set(lines[1].replace(" ", "")) != {"-"}:
        raise AssertionError("amity-query --table: no heading and rule: %r" % lines[:3])
    width = len(lines[1])
    got = {}
    for line in lines[2:]:
        key, value = line.split()
        if len(line) != width:
            raise AssertionError("amity-query --table: row not aligned: %r" % line)
        got[key] = value.replace(",", "")
    want = {k: str(v) for k, v in j.items()}
    if got != want or not got:
        raise AssertionError("amity-query --table differs from the JSON (%d vs %d keys)" % (
            len(got), len(want)))
    money = [line for line in lines[2:] if "/amount." in line and "," in line]
    h.log("amity-query --table %r: %d aligned rows equal to the JSON (%d with grouped money)"
          % (prefix, len(got), len(money)))


def check_subscribe_table(c, prefix, key, update):
    argv = [h.binary("amity-subscribe"), "--notify", c.notify_ep]
    # --table with stdout a pipe: the live table all the same; an update
    # while it runs marks the keys it changed
    # stdout to a file: a pipe nobody reads would fill with frames and block
    out_path = os.path.join(c.dir, "subscribe-table.out")
    with open(out_path, "wb") as out:
        p = subprocess.Popen(argv + ["--table", prefix], stdout=out, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, preexec_fn=h._child_setup)
    time.sleep(1.5)
    update()
    time.sleep(1.5)
    p.terminate()
    _, err = p.communicate(timeout=10)
    with open(out_path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    frames = text.split("\x1b[H\x1b[2J")
    # (the last frame may be cut short by the SIGTERM that ends the run)
    marked = [f for f in frames[1:] if "KEY" in f and key in f and "(update)" in f and
              re.search(r"^\*  ", f, re.M)]
    if p.returncode != 0 or len(frames) < 3 or not marked:
        raise AssertionError("amity-subscribe --table: rc %s, no table frame with the update "
                             "marked: %r / %r" % (p.returncode, frames[-1][:800], err[-300:]))
    h.log("amity-subscribe --table: %d frame(s), the last update's keys marked"
          % (len(frames) - 1))
    # piped without --table: JSON lines as before
    with open(out_path, "wb") as out:
        p = subprocess.Popen(argv + [prefix], stdout=out, stderr=subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL, preexec_fn=h._child_setup)
    time.sleep(1.5)
    p.terminate()
    p.wait(timeout=10)
    with open(out_path, "rb") as f:
        out = f.read()
    first = json.loads(out.decode().splitlines()[0])
    if first.get("snapshot") is not True or key not in first["totals"]:
        raise AssertionError("amity-subscribe piped: not the JSON lines: %r" % out[:300])
    script = shutil.which("script")
    if script is None:
        h.log("no script(1): the terminal case is not checked")
        return
    # on a terminal (script gives it a pty): the table by default
    cmd = "timeout -s INT 2 %s %s" % (" ".join(argv), "'%s'" % prefix)
    r = subprocess.run([script, "-qec", cmd, "/dev/null"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=30,
                       preexec_fn=h._child_setup)
    text = r.stdout.decode("utf-8", "replace")
    if "\x1b[H\x1b[2J" not in text or "KEY" not in text or key not in text:
        raise AssertionError("amity-subscribe on a terminal: no table frame: rc %s %r" % (
            r.returncode, text[:600]))
    h.log("amity-subscribe on a terminal (script): table frame drawn")


def development_mode():
    with h.Cluster("rejects", BASE_PORT, shards=2, validators=1) as c:
        c.start_all()
        rng = random.Random(6006)
        expected = {}
        sent = {}
        # valid records and invalid ones, both offices
        for office, other, tag in ((A, B, "a"), (B, A, "b")):
            bad = invalid_records(office, other)
            good = [h.random_record(rng, "%s-ok-%03d" % (tag, i)) for i in range(12)]
            first, second = conflict_pair(office)
            res, why = submit_lines(c, office, "%s-1.jsonl" % tag, good + bad + [first])
            if res.summary[2] != len(bad) or set(why) != {r["id"] for r in bad}:
                raise AssertionError("%s: rejections %r" % (office, res.summary))
            _, why2 = submit_lines(c, office, "%s-2.jsonl" % tag, [second])
            why.update(why2)
            for rid, reason in why.items():
                expected[(office, rid)] = reason
            for r in bad:
                if r["id"].endswith(("-vi", "-colour", "-bad-date")):
                    sent[(office, r["id"])] = r
            # a conflict is found by the shard, which keeps the canonical form
            sent[(office, second["id"])] = dict(second, rev=1)
        rec, why = raw_submit_not_a_map(c, A)
        expected[(A, "")] = why
        sent[(A, "")] = rec
        if not any(k[1].endswith("-conflict") and "conflict" in v for k, v in expected.items()):
            raise AssertionError("no conflict rejection: %r" % expected)

        items = list_rejects(c)
        check_listing(items, expected, "all offices")
        check_records(items, sent)
        for office in (A, B):
            check_listing(list_rejects(c, office=office),
                          {k: v for k, v in expected.items() if k[0] == office},
                          "--office %s" % office)
        check_rejects_table(list_rejects(c, table=True), expected)

        check_totals_table(c, "2023/")
        check_totals_table(c, "")
        snap = c.query("")
        key = sorted(snap)[0]

        def update():
            submit_lines(c, A, "a-3.jsonl", [h.random_record(rng, "a-ok-late")])
        check_subscribe_table(c, "", key, update)

        # a shard down: the listing fails soon, naming it; back, it works
        c.stop("aggregate1")
        t0 = time.monotonic()
        r = list_rejects(c, expect_rc=1)
        dt = time.monotonic() - t0
        if "shard 1" not in r.stderr or "did not answer" not in r.stderr or dt > 10:
            raise AssertionError("shard down: %.1fs, stderr %r" % (dt, r.stderr[-500:]))
        h.log("shard 1 down: listing refused in %.1fs: %s" % (
            dt, r.stderr.strip().splitlines()[-2][-160:]))
        c.start("aggregate1")
        h.wait_until(lambda: len(list_rejects(c)) == len(expected), 30, 0.5,
                     "the listing with shard 1 back")
        c.check_daemons_alive()


class Keys:
    """Certificates made by amity-keygen."""

    def __init__(self, root):
        self.dir = os.path.join(root, "keys")
        self.offices = os.path.join(root, "offices")
        self.subscribers = os.path.join(root, "subscribers")
        self.services = os.path.join(root, "services")
        for d in (self.dir, self.offices, self.subscribers, self.services):
            os.makedirs(d)
        for name in ("ingest", "notify", "shard", "validate"):
            self.gen(name, "--name", name)
        self.gen("hvm", "--office", A)
        self.gen("hvn", "--office", B)
        self.gen("ops", "--name", "operator", "--prefixes", "*")
        self.gen("dash", "--name", "dashboard-2023", "--prefixes", "2023/all/")
        for name in ("hvm", "hvn"):
            self.register(name, self.offices)
        for name in ("hvm", "hvn", "ops", "dash"):
            self.register(name, self.subscribers)
        for name in ("ingest", "validate", "notify"):
            self.register(name, self.services)

    def gen(self, name, *args):
        r = subprocess.run([h.binary("amity-keygen"), os.path.join(self.dir, name)] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        if r.returncode != 0:
            raise AssertionError("amity-keygen %s: %s" % (name, r.stderr))

    def register(self, name, directory):
        shutil.copyfile(self.pub(name), os.path.join(directory, name))

    def pub(self, name):
        return os.path.join(self.dir, name)

    def sec(self, name):
        return os.path.join(self.dir, name + "_secret")


def secure_mode():
    keys = Keys(h.mkdtemp("rejects-keys"))
    shard_keys = ",".join([keys.pub("shard")] * 2)
    extra = {
        "aggregate": ["--key", keys.sec("shard"), "--peers-dir", keys.services],
        "ingest": ["--key", keys.sec("ingest"), "--clients-dir", keys.offices,
                   "--peers-dir", keys.services, "--shard-keys", shard_keys],
        "validate": ["--key", keys.sec("validate"), "--ingest-keys", keys.pub("ingest"),
                     "--shard-keys", shard_keys],
        "notify": ["--key", keys.sec("notify"), "--clients-dir", keys.subscribers,
                   "--shard-keys", shard_keys],
    }
    with h.Cluster("rejects-sec", SECURE_BASE_PORT, shards=2, validators=1, extra=extra) as c:
        for name in c.order:
            c.start(name)
        h.wait_until(lambda: c.run_client(query_args(c, keys, "ops") + [""], timeout=15,
                                          quiet=True).returncode == 0,
                     60, 0.3, "amity-query (operator key) to answer")
        expected = {}
        for office, other, who in ((A, B, "hvm"), (B, A, "hvn")):
            bad = invalid_records(office, other)[:3]
            _, why = submit_lines(c, office, "%s-sec.jsonl" % who, bad,
                                  ["--key", keys.sec(who), "--server-key", keys.pub("ingest")])
            if set(why) != {r["id"] for r in bad}:
                raise AssertionError("%s: rejections %r" % (office, why))
            for rid, reason in why.items():
                expected[(office, rid)] = reason
        own_a = {k: v for k, v in expected.items() if k[0] == A}
        own_b = {k: v for k, v in expected.items() if k[0] == B}
        check_listing(list_rejects(c, keys=keys, who="hvm"), own_a, "office key A")
        check_listing(list_rejects(c, office=A, keys=keys, who="hvm"), own_a,
                      "office key A, --office A")
        check_listing(list_rejects(c, keys=keys, who="hvn"), own_b, "office key B")
        r = list_rejects(c, office=B, keys=keys, who="hvm", expect_rc=1)
        if "only its own office" not in r.stderr or r.stdout.strip():
            raise AssertionError("office key A asking for B: %r / %r" % (r.stdout, r.stderr))
        h.log("office key A asking for B's rejects: refused")
        check_listing(list_rejects(c, keys=keys, who="ops"), expected, "operator key")
        check_listing(list_rejects(c, office=B, keys=keys, who="ops"), own_b,
                      "operator key, --office B")
        r = list_rejects(c, keys=keys, who="dash", expect_rc=1)
        if "may not list rejected records" not in r.stderr or r.stdout.strip():
            raise AssertionError("subscriber key: %r / %r" % (r.stdout, r.stderr))
        h.log("subscriber key without \"*\": refused")
        c.check_daemons_alive()


def main():
    h.require_binaries(["amity-ingest", "amity-validate", "amity-aggregate", "amity-notify",
                        "amity-submit", "amity-query", "amity-subscribe", "amity-keygen"])
    development_mode()
    secure_mode()


if __name__ == "__main__":
    h.run(main, budget_s=220)
