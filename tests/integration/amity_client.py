"""A Python client of the amity wire protocol, version 1, written from
proto/PROTOCOL.md alone (ZeroMQ DEALER sockets, one MessagePack map per
single-frame message). Debian's python3-zmq and python3-msgpack.

- Ingest:     submit records with tags, collect `verdicts` (in any order, in
              any number of messages), resend what has no verdict after the
              timeout (same tag, same record: a resend is safe).
- query():    one-shot `query`, assembling `snap` chunks until more=false.
- Subscriber: `sub` + snapshot chunks, `upd` applied only when epoch = E and
              prev = last seq, `ping` every second with `pong` checking, and a
              resync (new `sub` with a new req) on a prev gap, a pong seq
              mismatch, an epoch change, an `error`, or 3 s of silence.

Every message received is checked against the tables of PROTOCOL.md section
3 (types of every key, `v` = 1, required keys); what breaks them is kept in
`violations` (the test fails on any)."""

import threading
import time

import msgpack
import zmq

VERSION = 1
VERDICT_STATES = ("accepted", "duplicate", "rejected")


class ProtocolViolation(AssertionError):
    pass


class Refused(Exception):
    """The daemon answered `error` (section 3.14)."""

    def __init__(self, why, req=None):
        Exception.__init__(self, why)
        self.why = why
        self.req = req


def pack(msg):
    # msgpack 1.0: str -> str, bytes -> bin, shortest integer formats
    return msgpack.packb(msg, use_bin_type=True)


def unpack(frame):
    """One frame -> one object. unpackb refuses trailing bytes (ExtraData)."""
    return msgpack.unpackb(frame, raw=False)


# --------------------------------------------------------------------------
# Checks of received messages (PROTOCOL.md 2.1, 2.2, 3.x)

def _is_uint(x):
    return type(x) is int and 0 <= x < 2 ** 64


def _is_int64(x):
    return type(x) is int and -2 ** 63 <= x < 2 ** 63


def _is_str(x):
    return type(x) is str


def _check_kv(kv, where, out):
    if type(kv) is not dict:
        out.append("%s.kv: not a map (got %s)" % (where, type(kv).__name__))
        return
    for k, v in kv.items():
        if not _is_str(k):
            out.append("%s.kv: key %r is not a str" % (where, k))
        if not _is_int64(v):
            out.append("%s.kv[%r]: value %r is not an int64" % (where, k, v))


def check_message(m, frames=1):
    """Returns a list of violations of PROTOCOL.md by a client-bound message."""
    out = []
    if frames != 1:
        out.append("reply of %d frames (section 1: single-frame replies)" % frames)
    if type(m) is not dict:
        return out + ["message is not a map (got %s)" % type(m).__name__]
    for k in m:
        if not _is_str(k):
            out.append("top-level key %r is not a str" % (k,))
    if m.get("v") != VERSION or not _is_uint(m.get("v")):
        out.append("v: %r (expected 1)" % (m.get("v"),))
    t = m.get("t")
    if not _is_str(t):
        return out + ["t: %r is not a str" % (t,)]
    if t == "verdicts":
        if "conn" in m:
            out.append("verdicts: conn present on the way to the client (section 3.4)")
        items = m.get("items")
        if type(items) is not list:
            return out + ["verdicts.items: not an array"]
        if len(items) > 8192:
            out.append("verdicts.items: %d > 8192" % len(items))
        for i, it in enumerate(items):
            w = "verdicts.items[%d]" % i
            if type(it) is not dict:
                out.append("%s: not a map" % w)
                continue
            if not _is_uint(it.get("tag")):
                out.append("%s.tag: %r not a uint" % (w, it.get("tag")))
            if it.get("st") not in VERDICT_STATES:
                out.append("%s.st: %r" % (w, it.get("st")))
            if it.get("st") == "rejected" and not _is_str(it.get("why")):
                out.append("%s.why: required for rejected, got %r" % (w, it.get("why")))
            if "why" in it and not _is_str(it["why"]):
                out.append("%s.why: not a str" % w)
    elif t == "error":
        if not _is_str(m.get("why")):
            out.append("error.why: %r is not a str" % (m.get("why"),))
        if "req" in m and (not _is_uint(m["req"]) or m["req"] == 0):
            out.append("error.req: %r (a uint, absent when 0)" % (m["req"],))
    elif t == "snap":
        for k in ("req", "seq"):
            if not _is_uint(m.get(k)):
                out.append("snap.%s: %r not a uint" % (k, m.get(k)))
        if not _is_uint(m.get("epoch")) or m.get("epoch") == 0:
            out.append("snap.epoch: %r (notify's replies carry a non-zero epoch)" % (
                m.get("epoch"),))
        if type(m.get("more")) is not bool:
            out.append("snap.more: %r not a bool" % (m.get("more"),))
        _check_kv(m.get("kv"), "snap", out)
        if type(m.get("kv")) is dict and len(m["kv"]) > 10000:
            out.append("snap.kv: %d keys in one chunk (at most 10000)" % len(m["kv"]))
    elif t == "upd":
        for k in ("epoch", "seq", "prev"):
            if not _is_uint(m.get(k)):
                out.append("upd.%s: %r not a uint" % (k, m.get(k)))
        _check_kv(m.get("kv"), "upd", out)
    elif t == "pong":
        for k in ("epoch", "seq"):
            if not _is_uint(m.get(k)):
                out.append("pong.%s: %r not a uint" % (k, m.get(k)))
    else:
        out.append("t: %r is not a message a client receives" % (t,))
    return out


def _recv(sock, violations):
    frames = sock.recv_multipart()
    try:
        m = unpack(frames[-1])
    except Exception as e:  # noqa: BLE001 - reported as a violation
        violations.append("undecodable reply %r: %s" % (frames[-1][:64], e))
        return None
    v = check_message(m, len(frames))
    violations.extend(v)
    return m if type(m) is dict else None


def _socket(ctx, endpoint, curve=None):
    """DEALER connected to endpoint. curve = (server_public, public, secret)
    (Z85 or raw 32-byte keys) selects CurveZMQ (section 1.2)."""
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        server_public, public, secret = curve
        s.curve_serverkey = server_public
        s.curve_publickey = public
        s.curve_secretkey = secret
    s.connect(endpoint)
    return s


# --------------------------------------------------------------------------
# Ingest: submit and verdicts

class Verdict:
    __slots__ = ("tag", "st", "why", "attempt")

    def __init__(self, tag, st, why, attempt):
        self.tag, self.st, self.why, self.attempt = tag, st, why, attempt

    def __repr__(self):
        return "Verdict(tag=%d, st=%s%s)" % (self.tag, self.st,
                                             "" if self.why is None else ", why=%r" % self.why)


class Ingest:
    """One DEALER connection to ingest (one office in development mode)."""

    def __init__(self, endpoint, office=None, ctx=None, curve=None, timeout=5.0):
        self.ctx = ctx or zmq.Context.instance()
        self.endpoint = endpoint
        self.office = office
        self.timeout = timeout
        self.sock = _socket(self.ctx, endpoint, curve)
        self.next_tag = 1
        self.violations = []
        self.resends = 0          # records sent again after a timeout
        self.stray = []           # verdicts for tags no longer pending
        self.lost = 0             # verdicts discarded by the lose_first_replies hook

    def close(self):
        self.sock.close(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def send(self, msg):
        self.sock.send(pack(msg))

    def send_raw(self, data):
        self.sock.send(data)

    def recv(self, timeout):
        """Next decoded message, or None after timeout seconds."""
        if not self.sock.poll(max(0, int(timeout * 1000))):
            return None
        return _recv(self.sock, self.violations)

    def submit_msg(self, items, office=None):
        msg = {"v": VERSION, "t": "submit"}
        office = office if office is not None else self.office
        if office is not None:
            msg["office"] = office
        msg["recs"] = [{"tag": t, "rec": r} for t, r in items]
        return msg

    def submit(self, records, timeout=None, attempts=5, batch=1000, office=None,
               lose_first_replies=False):
        """Submits records (any objects, normally dicts); returns one Verdict
        per record, in the order given. Records without a verdict after
        `timeout` seconds are resent with the same tag (at most `attempts`
        sends). An `error` reply raises Refused. lose_first_replies is a test
        hook that simulates the loss of every reply to the first send, so
        that the resend path runs."""
        timeout = self.timeout if timeout is None else timeout
        tags = []
        pending = {}
        for r in records:
            t = self.next_tag
            self.next_tag += 1
            tags.append(t)
            pending[t] = r
        result = {}
        for attempt in range(attempts):
            if not pending:
                break
            items = list(pending.items())
            if attempt:
                self.resends += len(items)
            for i in range(0, len(items), batch):     # <= 8192 per message
                self.send(self.submit_msg(items[i:i + batch], office))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not lose_first_replies or attempt:
                    if not pending:
                        break
                m = self.recv(min(0.1, max(0.0, deadline - time.monotonic())))
                if m is None:
                    continue
                t = m.get("t")
                if t == "error":
                    raise Refused(m.get("why"), m.get("req"))
                if t != "verdicts" or type(m.get("items")) is not list:
                    continue
                for v in m["items"]:
                    if type(v) is not dict:
                        continue
                    tag = v.get("tag")
                    vd = Verdict(tag, v.get("st"), v.get("why"), attempt)
                    if lose_first_replies and attempt == 0:
                        self.lost += 1
                        continue
                    if tag in pending:
                        del pending[tag]
                        result[tag] = vd
                    else:
                        self.stray.append(vd)
        if pending:
            raise AssertionError("no verdict for %d of %d records after %d sends of %.1fs "
                                 "(tags %s...)" % (len(pending), len(records), attempts,
                                                   timeout, sorted(pending)[:10]))
        return [result[t] for t in tags]

    def request(self, msg, timeout=5.0):
        """Sends one message (dict, or bytes sent as they are); returns the
        first reply, or None."""
        if isinstance(msg, (bytes, bytearray)):
            self.send_raw(bytes(msg))
        else:
            self.send(msg)
        return self.recv(timeout)


# --------------------------------------------------------------------------
# Notify: query

class Snapshot:
    def __init__(self, req, epoch, seq, kv, chunks):
        self.req, self.epoch, self.seq, self.kv, self.chunks = req, epoch, seq, kv, chunks

    def __repr__(self):
        return "Snapshot(req=%d, epoch=%d, seq=%d, %d keys, %d chunks)" % (
            self.req, self.epoch, self.seq, len(self.kv), self.chunks)


class SnapAssembler:
    """Collects the chunks of one `snap` reply (section 3.7): same req, same
    seq and epoch in every chunk, keys ascending in byte order across the
    whole reply, done at more=false."""

    def __init__(self, req):
        self.req = req
        self.kv = {}
        self.seq = None
        self.epoch = None
        self.chunks = 0
        self.last_key = None
        self.problems = []

    def add(self, m):
        """Returns True when m was the last chunk."""
        self.chunks += 1
        if self.seq is None:
            self.seq, self.epoch = m.get("seq"), m.get("epoch")
        else:
            if m.get("seq") != self.seq:
                self.problems.append("snap req %d: chunk %d has seq %r, chunk 1 had %r" % (
                    self.req, self.chunks, m.get("seq"), self.seq))
            if m.get("epoch") != self.epoch:
                self.problems.append("snap req %d: chunk %d has epoch %r, chunk 1 had %r" % (
                    self.req, self.chunks, m.get("epoch"), self.epoch))
        kv = m.get("kv") if type(m.get("kv")) is dict else {}
        for k, v in kv.items():
            kb = k.encode("utf-8")
            if self.last_key is not None and kb <= self.last_key:
                self.problems.append("snap req %d: key %r not after %r (ascending byte order)"
                                     % (self.req, k, self.last_key.decode("utf-8", "replace")))
            self.last_key = kb
            if k in self.kv:
                self.problems.append("snap req %d: key %r twice" % (self.req, k))
            self.kv[k] = v
        return m.get("more") is False

    def snapshot(self):
        return Snapshot(self.req, self.epoch, self.seq, self.kv, self.chunks)


_REQ_LOCK = threading.Lock()
_REQ = [1000]


def _next_req():
    with _REQ_LOCK:
        _REQ[0] += 1
        return _REQ[0]


def query(endpoint, prefix, timeout=10.0, ctx=None, curve=None, violations=None):
    """One-shot `query` (section 3.8): returns a Snapshot (kv = merged totals
    under prefix, money in minor units). Raises Refused on `error`."""
    ctx = ctx or zmq.Context.instance()
    violations = violations if violations is not None else []
    s = _socket(ctx, endpoint, curve)
    try:
        req = _next_req()
        s.send(pack({"v": VERSION, "t": "query", "req": req, "prefix": prefix}))
        asm = SnapAssembler(req)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not s.poll(int(left * 1000)):
                raise AssertionError("query %r: no complete reply within %.1fs (%d chunks)" % (
                    prefix, timeout, asm.chunks))
            m = _recv(s, violations)
            if m is None:
                continue
            if m.get("t") == "error":
                if m.get("req") in (None, req):
                    raise Refused(m.get("why"), m.get("req"))
                continue
            if m.get("t") != "snap" or m.get("req") != req:
                violations.append("query req %d: unexpected reply %r" % (req, m))
                continue
            if asm.add(m):
                break
        violations.extend(asm.problems)
        for k in asm.kv:
            if not k.startswith(prefix):
                violations.append("query %r: key %r outside the prefix" % (prefix, k))
        return asm.snapshot()
    finally:
        s.close(0)


# --------------------------------------------------------------------------
# Notify: subscription (section 7)

class Subscriber:
    """A subscription kept by a background thread; `state()` is the folded
    totals under the prefixes (money in minor units)."""

    def __init__(self, endpoint, prefixes, ctx=None, curve=None, ping_interval=1.0,
                 silence=3.0, log=None, label="subscriber"):
        self.ctx = ctx or zmq.Context.instance()
        self.label = label
        self.endpoint = endpoint
        self.prefixes = list(prefixes)
        self.curve = curve
        self.ping_interval = ping_interval
        self.silence = silence
        self.log = log or (lambda msg: None)
        self.lock = threading.Lock()
        self._state = {}
        self.synced = False
        self.epoch = None
        self.last_seq = None
        self.req = 0
        self.snapshots = 0      # complete snapshots applied
        self.updates = 0        # upd messages applied
        self.ignored = 0        # snap/upd/pong of an older sync, ignored
        self.pings = 0
        self.pongs_ok = 0
        self.resyncs = []       # reasons
        self.errors = []        # `error` replies (why)
        self.epochs = []        # distinct epochs seen, in order
        self.violations = []
        self.exc = None
        self._drop_next_upd = 0
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="amity-sub", daemon=True)

    # -- public ---------------------------------------------------------

    def start(self):
        self._thread.start()
        return self

    def state(self):
        with self.lock:
            return dict(self._state)

    def drop_next_upd(self, n=1):
        """Test hook: discard the next n `upd` messages as if the network had
        lost them; the client must notice (prev gap or pong) and resync."""
        with self.lock:
            self._drop_next_upd += n

    def stats(self):
        with self.lock:
            return ("snapshots %d, updates %d, pings %d, pongs ok %d, resyncs %d %s, "
                    "errors %s, dropped %d, ignored %d, epoch %s, last seq %s" % (
                        self.snapshots, self.updates, self.pings, self.pongs_ok,
                        len(self.resyncs), self.resyncs[-5:], self.errors[-3:], self.dropped,
                        self.ignored, self.epoch, self.last_seq))

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            if self.exc is not None:
                raise AssertionError("subscriber thread failed: %r" % (self.exc,))
            with self.lock:
                ok = pred(self)
            if ok:
                return
            if time.monotonic() >= deadline:
                raise AssertionError("subscriber: timed out after %.1fs waiting for %s (%s)" % (
                    timeout, what, self.stats()))
            time.sleep(0.05)

    def close(self):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    # -- thread ---------------------------------------------------------

    def _send(self, sock, msg):
        sock.send(pack(msg))

    def _sub(self, sock, reason):
        if reason is not None:
            self.resyncs.append(reason)
            self.log("%s: resync (%s)" % (self.label, reason))
        self.req += 1
        self.synced = False
        self._asm = SnapAssembler(self.req)
        self._send(sock, {"v": VERSION, "t": "sub", "req": self.req,
                          "prefixes": self.prefixes})

    def _under(self, k):
        return any(k.startswith(p) for p in self.prefixes)

    def _run(self):
        sock = _socket(self.ctx, self.endpoint, self.curve)
        try:
            self._loop(sock)
        except Exception as e:  # noqa: BLE001 - reported by wait()
            self.exc = e
        finally:
            try:
                sock.send(pack({"v": VERSION, "t": "unsub"}), zmq.NOBLOCK)
            except zmq.ZMQError:
                pass
            sock.close(0)

    def _loop(self, sock):
        with self.lock:
            self._sub(sock, None)
        last_rx = last_ping = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now - last_ping >= self.ping_interval:
                self._send(sock, {"v": VERSION, "t": "ping"})
                self.pings += 1
                last_ping = now
            if now - last_rx > self.silence:
                with self.lock:
                    self._sub(sock, "silence for %.1fs" % (now - last_rx))
                last_rx = now
                continue
            if not sock.poll(100):
                continue
            m = _recv(sock, self.violations)
            last_rx = time.monotonic()
            if m is None:
                continue
            with self.lock:
                self._handle(sock, m)

    def _handle(self, sock, m):
        t = m.get("t")
        if t == "snap":
            if m.get("req") != self.req or self.synced:
                self.ignored += 1        # an older sync's chunks
                return
            if not self._asm.add(m):
                return
            self.violations.extend(self._asm.problems)
            snap = self._asm.snapshot()
            for k in snap.kv:
                if not self._under(k):
                    self.violations.append("snap: key %r under none of %r" % (k, self.prefixes))
            # replace everything held under the prefixes
            self._state = {k: v for k, v in self._state.items() if not self._under(k)}
            self._state.update(snap.kv)
            self.epoch, self.last_seq, self.synced = snap.epoch, snap.seq, True
            if not self.epochs or self.epochs[-1] != snap.epoch:
                self.epochs.append(snap.epoch)
            self.snapshots += 1
        elif t == "upd":
            if not self.synced:
                self.ignored += 1
                return
            if self._drop_next_upd:
                self._drop_next_upd -= 1
                self.dropped += 1
                return
            if m.get("epoch") != self.epoch:
                self._sub(sock, "upd epoch %r != %r" % (m.get("epoch"), self.epoch))
                return
            if m.get("prev") != self.last_seq:
                self._sub(sock, "upd prev %r != last seq %r" % (m.get("prev"), self.last_seq))
                return
            kv = m.get("kv") if type(m.get("kv")) is dict else {}
            for k, v in kv.items():
                if not self._under(k):
                    self.violations.append("upd: key %r under none of %r" % (k, self.prefixes))
                self._state[k] = v
            self.last_seq = m.get("seq")
            self.updates += 1
        elif t == "pong":
            if not self.synced:
                self.ignored += 1
                return
            if m.get("epoch") != self.epoch:
                self._sub(sock, "pong epoch %r != %r" % (m.get("epoch"), self.epoch))
            elif m.get("seq") != self.last_seq:
                self._sub(sock, "pong seq %r != last seq %r" % (m.get("seq"), self.last_seq))
            else:
                self.pongs_ok += 1
        elif t == "error":
            self.errors.append(m.get("why"))
            self._sub(sock, "error %r" % (m.get("why"),))
        else:
            self.violations.append("subscriber: unexpected message %r" % (m,))
