"""Security (issue 4): offices and subscribers are their keys.

The four daemons run on loopback in secure mode with keys made by
amity-keygen into a temporary directory: CurveZMQ on the offices' socket
(ingest), the subscribers' socket (notify) and every internal link
(--peers-dir on ingest's work endpoint and on the shard, --ingest-keys and
--shard-keys on the connecting side). Raw clients use Debian's python3-zmq
and python3-msgpack, reading amity-keygen's certificates with
zmq.auth.load_certificate.

Checked:
- a Python client holding an amity-keygen certificate submits and gets its
  verdicts; amity-submit/-query/-subscribe work with --key/--server-key;
- unknown key, no key (NULL mechanism), wrong server key: no reply, totals
  unchanged, the refusal logged (ZAP "unknown key", monitor codes for
  mechanism mismatch and cryptographic failure) and counted;
- an office key on the validators' work endpoint pulls nothing (domains);
- cross-office write (record `office` field, and submit `office` field):
  rejected, logged, the other office's totals untouched;
- routing-id spoofing: a client holding hoi-viet-my's key with routing id
  b"hoi-viet-nhat" is counted for hoi-viet-my only; a client copying a live
  connection's routing id does not take its route (no handover);
- a subscriber limited to "2020/all/" gets every key inside and nothing
  outside; a query or subscription entirely outside gets `error` and
  nothing else; an office key reads its own totals and the `all` ones;
- an oversized frame and a 5,000-part message are refused while another
  office's submit keeps flowing;
- SIGHUP revocation: an office's live connection is refused from its next
  message and its new connections at the handshake; a subscriber's live
  subscription ends and its new connections are refused;
- without keys a daemon refuses to bind anything but loopback (exit 2,
  naming the option to set); --key without --clients-dir is a config error.

Not checked here: a daemon whose ZAP handler is not running refuses every
client. The daemons always run their handler (there is no switch to turn it
off, on purpose); tests/unit/test_auth.c (test_auth_no_handler_refuses_
everyone) shows that a CURVE server socket made by amity_curve_server, which
every daemon uses, admits nobody without a handler (ZMQ_ZAP_ENFORCE_DOMAIN).
"""

import atexit
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time

import harness as h

BASE_PORT = 18700       # ports 18700..18713 (and 18790..18799 for refused binds)
MAX_MSG = 65536         # ingest --max-msg in this test
SUBMIT_ARGS = ["--timeout-ms", "2000", "--deadline-s", "60", "--batch", "64"]

OFFICES = {"hvm": "hoi-viet-my", "hvn": "hoi-viet-nhat", "hvd": "hoi-viet-duc",
           "hvu": "hoi-viet-uc"}


# --------------------------------------------------------------------------
# keys

class Keys:
    """Every certificate of the test, made by amity-keygen."""

    def __init__(self, root):
        self.root = root
        self.dir = os.path.join(root, "keys")
        self.offices = os.path.join(root, "offices")          # ingest --clients-dir
        self.subscribers = os.path.join(root, "subscribers")  # notify --clients-dir
        self.services = os.path.join(root, "services")        # --peers-dir
        for d in (self.dir, self.offices, self.subscribers, self.services):
            os.makedirs(d)
        for name in ("ingest", "notify", "shard0", "validate"):
            self.gen(name, "--name", name)
        for short, office in OFFICES.items():
            self.gen(short, "--office", office)
        self.gen("stranger", "--office", "hoi-viet-phap")      # never registered
        self.gen("sec", "--name", "secretariat", "--prefixes", "*")
        self.gen("s2020", "--name", "dashboard-2020", "--prefixes", "2020/all/")
        self.gen("gone", "--name", "former-partner", "--prefixes", "*")
        for short in OFFICES:
            self.register(short, self.offices)
        for name in ("sec", "s2020", "gone", "hvm"):
            self.register(name, self.subscribers)
        for name in ("ingest", "validate", "notify"):
            self.register(name, self.services)

    def gen(self, name, *args):
        path = os.path.join(self.dir, name)
        r = subprocess.run([h.binary("amity-keygen"), path] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        if r.returncode != 0:
            raise AssertionError("amity-keygen %s: rc %d: %s" % (name, r.returncode, r.stderr))
        mode = os.stat(path + "_secret").st_mode & 0o777
        if mode != 0o600:
            raise AssertionError("%s_secret has mode %o, expected 600" % (name, mode))

    def register(self, name, directory):
        with open(self.pub(name), "rb") as src, \
                open(os.path.join(directory, name), "wb") as dst:
            dst.write(src.read())

    def pub(self, name):
        return os.path.join(self.dir, name)

    def sec(self, name):
        return os.path.join(self.dir, name + "_secret")

    def z85(self, name):
        import zmq.auth
        return zmq.auth.load_certificate(self.pub(name))[0].decode()


# --------------------------------------------------------------------------
# raw clients (pyzmq + msgpack)

class Raw:
    """A DEALER speaking amity's protocol; CURVE when own is given."""

    def __init__(self, endpoint, own=None, server=None, routing_id=None, sock_type=None):
        import zmq
        import zmq.auth
        self.zmq = zmq
        self.sock = zmq.Context.instance().socket(sock_type or zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RECONNECT_IVL, 500)  # a refused client retries: keep it slow
        if own is not None:
            pub, sec = zmq.auth.load_certificate(own)
            self.sock.curve_publickey = pub
            self.sock.curve_secretkey = sec
            self.sock.curve_serverkey = zmq.auth.load_certificate(server)[0]
        if routing_id is not None:
            self.sock.setsockopt(zmq.ROUTING_ID, routing_id)
        self.sock.connect(endpoint)
        self.tag = 0

    def send(self, obj):
        """Never blocks: a refused connection leaves nobody to send to."""
        import msgpack
        try:
            self.sock.send(msgpack.packb(obj, use_bin_type=True), self.zmq.NOBLOCK)
        except self.zmq.Again:
            pass

    def submit(self, recs, office=None):
        """Sends one submit; returns the tags used."""
        items = []
        for r in recs:
            self.tag += 1
            items.append({"tag": self.tag, "rec": r})
        msg = {"v": 1, "t": "submit", "recs": items}
        if office is not None:
            msg["office"] = office
        self.send(msg)
        return [it["tag"] for it in items]

    def replies(self, timeout, until=None):
        """Decoded replies within timeout (until(list) ends early)."""
        import msgpack
        out = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or (until is not None and until(out)):
                return out
            if self.sock.poll(max(1, int(left * 1000))):
                frames = self.sock.recv_multipart()
                out.append(msgpack.unpackb(frames[-1], raw=False))

    def verdicts(self, tags, timeout=20):
        """Waits for a verdict on every tag; returns {tag: (st, why)} and the
        error replies seen."""
        got = {}
        errors = []

        def done(msgs):
            for m in msgs[len(done.seen):]:
                if m.get("t") == "verdicts":
                    for it in m["items"]:
                        got[it["tag"]] = (it["st"], it.get("why", ""))
                elif m.get("t") == "error":
                    errors.append(m.get("why", ""))
            done.seen = list(msgs)
            return all(t in got for t in tags) or errors
        done.seen = []
        self.replies(timeout, done)
        return got, errors

    def close(self):
        self.sock.close(0)


def record(rng, rid, year=None, office_field=None):
    r = h.random_record(rng, rid)
    if year is not None:
        r["date"] = "%04d%s" % (year, r["date"][4:])
        if r["date"].endswith("-02-29"):
            r["date"] = r["date"][:-2] + "28"
    if office_field is not None:
        r["office"] = office_field
    return r


# --------------------------------------------------------------------------
# helpers

def query(c, keys, prefix, who="sec"):
    r = c.run_client(["amity-query", "--notify", c.notify_ep, "--key", keys.sec(who),
                      "--server-key", keys.pub("notify"), prefix], timeout=30)
    if r.returncode != 0:
        raise AssertionError("amity-query %r as %s: rc %d: %s" % (prefix, who, r.returncode,
                                                                  r.stderr[-800:]))
    return h.normalize_totals(json.loads(r.stdout), "amity-query")


def office_part(totals, office):
    return {k: v for k, v in totals.items() if k.split("/")[1] == office}


def wait_totals(c, keys, model, what, timeout=30):
    exp = h.nonzero(model.totals())
    try:
        h.wait_until(lambda: h.nonzero(query(c, keys, "")) == exp, timeout, 0.3, what)
    except AssertionError:
        h.assert_totals_equal(query(c, keys, ""), model.totals(), what)
    h.log("totals equal the model: %s (%d keys)" % (what, len(exp)))


def submit_file(c, keys, short, path, expect_accepted):
    res = c.submit(OFFICES[short], path, ["--key", keys.sec(short), "--server-key",
                                          keys.pub("ingest")] + SUBMIT_ARGS, timeout=120)
    if res.returncode != 0 or res.summary is None or res.summary[0] != expect_accepted:
        raise AssertionError("amity-submit as %s: rc %s, summary %s, stderr %s" % (
            short, res.returncode, res.summary, res.stderr[-800:]))
    return res


def log_text(c, name):
    with open(c.daemons[name].log_path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def wait_log(c, name, pattern, timeout=15, what=None):
    rx = re.compile(pattern)
    return h.wait_until(lambda: rx.search(log_text(c, name)), timeout, 0.1,
                        what or "%s log to match %r" % (name, pattern))


def final_stats(text):
    lines = [l for l in text.splitlines() if "stats final" in l or
             (" stats " in l and "seq=" in l)]
    if not lines:
        raise AssertionError("no stats line in log")
    return {k: int(v) for k, v in re.findall(r"\b([a-z_]+)=(\d+)\b", lines[-1])}


def expect_silence(raw, seconds, what):
    got = raw.replies(seconds)
    if got:
        raise AssertionError("%s: expected no reply, got %r" % (what, got[:3]))
    h.log("%s: no reply in %.1fs (as expected)" % (what, seconds))


# --------------------------------------------------------------------------
# scenarios

def python_client(c, keys, model, rng):
    cli = Raw(c.ingest_ep, keys.sec("hvu"), keys.pub("ingest"))
    recs = [record(rng, "py-%03d" % i) for i in range(20)]
    tags = cli.submit(recs)
    got, errors = cli.verdicts(tags)
    cli.close()
    if errors or sorted(got) != sorted(tags) or any(st != "accepted" for st, _ in got.values()):
        raise AssertionError("python client: verdicts %r errors %r" % (got, errors))
    for r in recs:
        model.apply("hoi-viet-uc", r)
    h.log("python client (pyzmq, amity-keygen certificate): 20 records, 20 accepted")


def strangers(c, keys, model, rng):
    before = query(c, keys, "")
    cases = [
        ("unknown key", keys.sec("stranger"), keys.pub("ingest"),
         r"auth: refused CURVE client .*unknown key key=" + re.escape(keys.z85("stranger"))),
        ("no key (NULL mechanism)", None, None,
         r"clients: handshake failed .*\(code %d\)" % 0x11000002),
        ("wrong server key", keys.sec("hvn"), keys.pub("notify"),
         r"clients: handshake failed .*\(code %d\)" % 0x11000001),
    ]
    for what, own, server, pattern in cases:
        cli = Raw(c.ingest_ep, own, server)
        cli.submit([record(rng, "stranger-%d" % i) for i in range(5)], office="hoi-viet-nhat")
        expect_silence(cli, 2.5, what)
        cli.close()
        wait_log(c, "ingest", pattern, what="ingest to log the refusal (%s)" % what)
        h.log("%s: refused and logged" % what)
        time.sleep(1.1)  # the monitor's warning is rate-limited to one a second
    after = query(c, keys, "")
    if after != before:
        raise AssertionError("totals changed after refused clients")


def domains(c, keys, model, rng):
    """An office key cannot pull work: it is not a service's."""
    import zmq
    rogue = Raw(c.work_ep, keys.sec("hvm"), keys.pub("ingest"), sock_type=zmq.PULL)
    return rogue


def cross_office(c, keys, model, rng):
    hvn_before = office_part(query(c, keys, ""), "hoi-viet-nhat")
    cli = Raw(c.ingest_ep, keys.sec("hvm"), keys.pub("ingest"))
    bad = record(rng, "cross-1", office_field="hoi-viet-nhat")
    good = record(rng, "cross-2", office_field="hoi-viet-my")
    tags = cli.submit([bad, good])
    got, errors = cli.verdicts(tags)
    if errors or got.get(tags[0], ("?",))[0] != "rejected" or \
            not got[tags[0]][1].startswith("office:") or got.get(tags[1], ("?",))[0] != "accepted":
        raise AssertionError("cross-office record: verdicts %r errors %r" % (got, errors))
    model.apply("hoi-viet-my", good)
    h.log("record naming another office: rejected (%s)" % got[tags[0]][1])
    tags = cli.submit([record(rng, "cross-3")], office="hoi-viet-nhat")
    got, errors = cli.verdicts(tags, timeout=10)
    if got or not errors or not errors[0].startswith("office:"):
        raise AssertionError("submit naming another office: verdicts %r errors %r" % (got, errors))
    h.log("submit naming another office: refused (%s)" % errors[0])
    cli.close()
    wait_log(c, "validate0", r"cross-office record rejected sender=hoi-viet-my")
    wait_log(c, "ingest", r"cross-office attempt .*office=hoi-viet-my claimed=\"hoi-viet-nhat\"")
    wait_totals(c, keys, model, "after cross-office attempts")
    if office_part(query(c, keys, ""), "hoi-viet-nhat") != hvn_before:
        raise AssertionError("hoi-viet-nhat's totals changed")


def spoofing(c, keys, model, rng):
    hvn_before = office_part(query(c, keys, ""), "hoi-viet-nhat")
    spoof = Raw(c.ingest_ep, keys.sec("hvm"), keys.pub("ingest"), routing_id=b"hoi-viet-nhat")
    recs = [record(rng, "spoof-%02d" % i) for i in range(10)]
    tags = spoof.submit(recs)
    got, errors = spoof.verdicts(tags)
    if errors or any(got.get(t, ("?",))[0] != "accepted" for t in tags):
        raise AssertionError("spoofed routing id: verdicts %r errors %r" % (got, errors))
    spoof.close()
    for r in recs:
        model.apply("hoi-viet-my", r)
    wait_totals(c, keys, model, "after routing-id spoofing")
    if office_part(query(c, keys, ""), "hoi-viet-nhat") != hvn_before:
        raise AssertionError("routing-id spoofing changed hoi-viet-nhat's totals")
    h.log("routing id b'hoi-viet-nhat' with hoi-viet-my's key: counted for hoi-viet-my only")

    # a live connection's route cannot be taken over by copying its id
    owner = Raw(c.ingest_ep, keys.sec("hvn"), keys.pub("ingest"), routing_id=b"conn-x")
    r1 = record(rng, "route-1")
    got, errors = owner.verdicts(owner.submit([r1]))
    if errors or len(got) != 1:
        raise AssertionError("route owner: %r %r" % (got, errors))
    model.apply("hoi-viet-nhat", r1)
    thief = Raw(c.ingest_ep, keys.sec("hvm"), keys.pub("ingest"), routing_id=b"conn-x")
    thief.submit([record(rng, "thief-1")])
    expect_silence(thief, 2.0, "second connection with a live routing id")
    r2 = record(rng, "route-2")
    got, errors = owner.verdicts(owner.submit([r2]))
    if errors or len(got) != 1:
        raise AssertionError("route owner after the copy: %r %r" % (got, errors))
    model.apply("hoi-viet-nhat", r2)
    owner.close()
    thief.close()
    wait_totals(c, keys, model, "after the route copy")
    h.log("copying a live routing id takes nothing over (owner still gets its verdicts)")


class RawSub:
    """A raw subscriber: sub, then collects snap/upd/error; pings."""

    def __init__(self, c, keys, who, prefixes):
        self.raw = Raw(c.notify_ep, keys.sec(who), keys.pub("notify"))
        self.raw.send({"v": 1, "t": "sub", "req": 7, "prefixes": prefixes})
        self.msgs = []

    def pump(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.msgs += self.raw.replies(min(0.5, max(0.01, end - time.monotonic())))
            self.raw.send({"v": 1, "t": "ping"})
        return self.msgs

    def kinds(self):
        return [m.get("t") for m in self.msgs]

    def keys(self, types=("snap", "upd")):
        out = set()
        for m in self.msgs:
            if m.get("t") in types:
                out.update(m.get("kv", {}).keys())
        return out


def subscribers(c, keys, model, rng):
    # inside its prefixes: everything
    sub = c.subscribe(["--key", keys.sec("s2020"), "--server-key", keys.pub("notify"), "2020/"],
                      label="s2020")
    sub.wait_first_snapshot()
    # entirely outside: an error and nothing else
    outside = RawSub(c, keys, "s2020", ["2021/", "2019/all/"])
    outside.pump(1.0)
    if not outside.msgs or not outside.msgs[0].get("why", "").startswith("prefix: outside") or \
            set(outside.kinds()) != {"error"}:
        raise AssertionError("subscription outside the prefixes: got %r" % outside.msgs[:3])
    q = Raw(c.notify_ep, keys.sec("s2020"), keys.pub("notify"))
    q.send({"v": 1, "t": "query", "req": 9, "prefix": "2021/"})
    got = q.replies(3.0, lambda m: len(m) > 0)
    q.close()
    if [m.get("t") for m in got] != ["error"]:
        raise AssertionError("query outside the prefixes: got %r" % got)
    h.log("query and subscription outside the prefixes: one error each")

    recs = [record(rng, "sub-%03d" % i, year=2020 + (i % 2)) for i in range(120)]
    path = h.write_lines(os.path.join(c.dir, "sub-hvn.jsonl"), [h.jsonl(r) for r in recs])
    submit_file(c, keys, "hvn", path, 120)
    for r in recs:
        model.apply("hoi-viet-nhat", r)
    wait_totals(c, keys, model, "after the 2020/2021 records")
    inside = h.filter_prefixes(model.totals(), ["2020/all/"])
    sub.wait_equal(inside, timeout=30, what="the model under 2020/all/")
    stray = [k for k in sub.snapshot_state() if not k.startswith("2020/all/")]
    if stray:
        raise AssertionError("subscriber got keys outside 2020/all/: %r" % stray[:5])
    outside.pump(1.0)
    if set(outside.kinds()) != {"error"}:   # its pings are answered "not subscribed"
        raise AssertionError("refused subscription received %r" % outside.kinds())
    outside.raw.close()
    h.log("subscriber limited to 2020/all/: %d keys inside, 0 outside; refused one: 0 updates"
          % len(h.nonzero(inside)))

    # an office's key: its own totals and the "all" ones
    mine = query(c, keys, "2020/", who="hvm")
    others = [k for k in mine if k.split("/")[1] not in ("hoi-viet-my", "all")]
    if others or not mine:
        raise AssertionError("office key query: %d keys, foreign ones %r" % (len(mine),
                                                                              others[:5]))
    h.log("office key reads its own and the all totals (%d keys)" % len(mine))


def limits(c, keys, model, rng, rogue):
    """Oversized frame and 5,000-part message while hoi-viet-nhat submits."""
    recs = [record(rng, "flow-%04d" % i) for i in range(1500)]
    path = h.write_lines(os.path.join(c.dir, "flow-hvn.jsonl"), [h.jsonl(r) for r in recs])
    proc = c.submit_async("hoi-viet-nhat", path, ["--key", keys.sec("hvn"), "--server-key",
                                                  keys.pub("ingest")] + SUBMIT_ARGS)
    big = Raw(c.ingest_ep, keys.sec("hvm"), keys.pub("ingest"))
    many = Raw(c.ingest_ep, keys.sec("hvm"), keys.pub("ingest"))
    n_err = 0
    for i in range(3):
        # past ZMQ_MAXMSGSIZE libzmq drops the connection: nothing reaches ingest
        big.sock.send(b"\x81\xa1t\xa6submit" + b"x" * (MAX_MSG + 1024))
        many.sock.send_multipart([b"\x80"] * 5000)
        got = many.replies(5.0, lambda m: len(m) > 0)
        for m in got:
            if m.get("t") == "error" and "got 5000" in m.get("why", ""):
                n_err += 1
            else:
                raise AssertionError("unexpected reply %r" % m)
        got = big.replies(0.5)
        if got:
            raise AssertionError("reply to an oversized frame: %r" % got[:2])
    big.close()
    many.close()
    if n_err != 3:
        raise AssertionError("%d error replies for three 5000-part messages" % n_err)
    res = proc.wait(120)
    if res.returncode != 0 or res.summary != (1500, 0, 0):
        raise AssertionError("submit during the abuse: rc %s summary %s" % (res.returncode,
                                                                           res.summary))
    for r in recs:
        model.apply("hoi-viet-nhat", r)
    wait_totals(c, keys, model, "after the oversized and 5000-part messages")
    h.log("oversized frame and 5000-part messages refused (%d error replies) while 1500 records "
          "of another office were accepted" % n_err)
    try:
        work = rogue.sock.recv(rogue.zmq.NOBLOCK)
        raise AssertionError("an office key pulled work: %r" % work[:80])
    except rogue.zmq.Again:
        pass
    rogue.close()
    h.log("an office key on the work endpoint pulled nothing")


def revocation(c, keys, model, rng):
    # an office
    live = Raw(c.ingest_ep, keys.sec("hvd"), keys.pub("ingest"))
    r1 = record(rng, "rev-1")
    got, errors = live.verdicts(live.submit([r1]))
    if errors or got.get(1, ("?",))[0] != "accepted":
        raise AssertionError("office before revocation: %r %r" % (got, errors))
    model.apply("hoi-viet-duc", r1)
    wait_totals(c, keys, model, "before the revocation")
    hvd_before = office_part(query(c, keys, ""), "hoi-viet-duc")

    # a subscriber, subscribed to everything
    gone = RawSub(c, keys, "gone", [""])
    gone.pump(1.0)
    if "snap" not in gone.kinds():
        raise AssertionError("subscriber before revocation: %r" % gone.kinds())

    os.unlink(os.path.join(keys.offices, "hvd"))
    os.unlink(os.path.join(keys.subscribers, "gone"))
    os.kill(c.pid("ingest"), signal.SIGHUP)
    os.kill(c.pid("notify"), signal.SIGHUP)
    wait_log(c, "ingest", r"SIGHUP: certificates reloaded offices=3")
    wait_log(c, "notify", r"forgot 1 subscriber\(s\) whose key was removed")
    gone.msgs += gone.raw.replies(0.5)   # answers to pings sent before the reload
    n_before = len(gone.msgs)

    got, errors = live.verdicts(live.submit([record(rng, "rev-2")]), timeout=5)
    if got or not errors or not errors[0].startswith("auth:"):
        raise AssertionError("revoked office's live connection: %r %r" % (got, errors))
    wait_log(c, "ingest", r"client message refused .*key not registered")
    live.close()
    again = Raw(c.ingest_ep, keys.sec("hvd"), keys.pub("ingest"))
    again.submit([record(rng, "rev-3")])
    expect_silence(again, 2.0, "revoked office's new connection")
    again.close()
    wait_log(c, "ingest", r"unknown key key=" + re.escape(keys.z85("hvd")))
    h.log("revoked office: live connection refused per message, new one at the handshake")

    # more traffic: the revoked subscriber must get no update
    recs = [record(rng, "after-rev-%02d" % i) for i in range(20)]
    path = h.write_lines(os.path.join(c.dir, "after-rev.jsonl"), [h.jsonl(r) for r in recs])
    submit_file(c, keys, "hvn", path, 20)
    for r in recs:
        model.apply("hoi-viet-nhat", r)
    wait_totals(c, keys, model, "after the revocation")
    gone.pump(1.5)
    late = [m.get("t") for m in gone.msgs[n_before:] if m.get("t") in ("snap", "upd", "pong")]
    if late:
        raise AssertionError("revoked subscriber still received %r" % late[:5])
    gone.raw.close()
    newsub = RawSub(c, keys, "gone", [""])
    newsub.pump(2.0)
    if newsub.msgs:
        raise AssertionError("revoked subscriber's new connection got %r" % newsub.kinds())
    newsub.raw.close()
    if office_part(query(c, keys, ""), "hoi-viet-duc") != hvd_before:
        raise AssertionError("the revoked office's totals changed")
    h.log("revoked subscriber: live subscription ended, new connection refused")


def loopback_rule(keys):
    """Without keys nothing but loopback is bound (exit 2, option named)."""
    p = BASE_PORT + 90
    cases = [
        (["amity-ingest", "--bind", "tcp://0.0.0.0:%d" % p, "--work", h.ep(p + 1),
          "--shards", h.ep(p + 2)], "set --key and --clients-dir"),
        (["amity-ingest", "--bind", h.ep(p), "--work", "tcp://0.0.0.0:%d" % (p + 1),
          "--shards", h.ep(p + 2)], "set --key and --peers-dir"),
        (["amity-ingest", "--bind", h.ep(p), "--work", h.ep(p + 1), "--shards", h.ep(p + 2),
          "--key", keys.sec("ingest")], "--key and --clients-dir together"),
        (["amity-notify", "--bind", "tcp://0.0.0.0:%d" % p, "--shards", h.ep(p + 2)],
         "set --key and --clients-dir"),
        (["amity-notify", "--bind", h.ep(p), "--shards", h.ep(p + 2),
          "--clients-dir", keys.subscribers], "--key and --clients-dir together"),
        (["amity-aggregate", "--bind", "tcp://0.0.0.0:%d" % (p + 2), "--state",
          os.path.join(keys.root, "never")], "set --key and --peers-dir"),
        (["amity-validate", "--ingest", h.ep(p + 1), "--shards", h.ep(p + 2),
          "--shard-keys", keys.pub("shard0")], "shard-keys: needs --key"),
    ]
    for argv, needle in cases:
        r = subprocess.run([h.binary(argv[0])] + argv[1:], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20, stdin=subprocess.DEVNULL)
        err = r.stderr.decode("utf-8", "replace")
        if r.returncode != 2 or needle not in err:
            raise AssertionError("%s: rc %d (expected 2), stderr %r (expected %r)" % (
                " ".join(argv), r.returncode, err[-600:], needle))
    h.log("without keys: %d refused configurations, each exit 2 naming the option" % len(cases))


def private_tmp():
    """The harness's temp dirs go below a private directory of this test:
    something sweeps /tmp/amity-it-* on the shared machine."""
    top = tempfile.mkdtemp(prefix="security-it-")
    tempfile.tempdir = top
    if not os.environ.get("AMITY_IT_KEEP"):
        atexit.register(shutil.rmtree, top, True)
    return top


def main():
    private_tmp()
    h.require_binaries(["amity-keygen", "amity-ingest", "amity-validate", "amity-aggregate",
                        "amity-notify", "amity-submit", "amity-query", "amity-subscribe"])
    rng = random.Random(4404)
    keys = Keys(h.mkdtemp("sec-keys"))
    loopback_rule(keys)
    extra = {
        "aggregate": ["--key", keys.sec("shard0"), "--peers-dir", keys.services],
        "ingest": ["--key", keys.sec("ingest"), "--clients-dir", keys.offices,
                   "--peers-dir", keys.services, "--shard-keys", keys.pub("shard0"),
                   "--max-msg", str(MAX_MSG)],
        "validate": ["--key", keys.sec("validate"), "--ingest-keys", keys.pub("ingest"),
                     "--shard-keys", keys.pub("shard0")],
        "notify": ["--key", keys.sec("notify"), "--clients-dir", keys.subscribers,
                   "--shard-keys", keys.pub("shard0")],
    }
    with h.Cluster("sec", BASE_PORT, shards=1, validators=1, extra=extra) as c:
        for name in c.order:
            c.start(name)
        h.wait_until(lambda: c.run_client(
            ["amity-query", "--notify", c.notify_ep, "--key", keys.sec("sec"),
             "--server-key", keys.pub("notify"), ""], timeout=15, quiet=True).returncode == 0,
            60, 0.3, "amity-query (with keys) to answer")
        for name in ("ingest", "notify", "aggregate0"):
            wait_log(c, name, r"\bready\b.*(mode=secure|mode=curve)")
        model = h.Model()

        python_client(c, keys, model, rng)
        recs = [record(rng, "base-%03d" % i) for i in range(200)]
        path = h.write_lines(os.path.join(c.dir, "base-hvn.jsonl"), [h.jsonl(r) for r in recs])
        submit_file(c, keys, "hvn", path, 200)
        for r in recs:
            model.apply("hoi-viet-nhat", r)
        wait_totals(c, keys, model, "baseline")

        strangers(c, keys, model, rng)
        cross_office(c, keys, model, rng)
        spoofing(c, keys, model, rng)
        subscribers(c, keys, model, rng)
        limits(c, keys, model, rng, domains(c, keys, model, rng))
        revocation(c, keys, model, rng)
        wait_totals(c, keys, model, "at the end")
        c.check_daemons_alive()
    # the daemons stopped (exit 0 checked): their last stats lines count the refusals
    ingest_log = log_text(c, "ingest")
    notify_log = log_text(c, "notify")
    agg_log = log_text(c, "aggregate0")
    s = final_stats(ingest_log)
    want = {"zap_refused": 2, "handshake_failures": 2, "unauthenticated": 1,
            "office_mismatch": 1, "bad_frames": 3}
    short = {k: (s.get(k), v) for k, v in want.items() if s.get(k, 0) < v}
    if short:
        raise AssertionError("ingest counters below expectation (got, want): %r" % short)
    h.log("ingest counted: %s" % {k: s.get(k) for k in want})
    n = final_stats(notify_log)
    want = {"zap_refused": 1, "denied": 2, "revoked": 1}
    short = {k: (n.get(k), v) for k, v in want.items() if n.get(k, 0) < v}
    if short:
        raise AssertionError("notify counters below expectation (got, want): %r" % short)
    h.log("notify counted: %s" % {k: n.get(k) for k in want})
    a = final_stats(agg_log)
    if a.get("zap_admitted", 0) < 3 or a.get("zap_refused", 0) != 0:
        raise AssertionError("aggregate admitted %s, refused %s (expected >= 3, 0)" % (
            a.get("zap_admitted"), a.get("zap_refused")))
    h.log("aggregate admitted its %d service connections over CURVE" % a["zap_admitted"])


if __name__ == "__main__":
    h.run(main)
