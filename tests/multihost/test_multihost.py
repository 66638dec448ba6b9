#!/usr/bin/python3
"""amity on several hosts: network namespaces joined by a switch.

Hosts (one network namespace each, named amity-mh-<pid>-<rand>-<host>):

    edge    10.77.0.1   amity-ingest (offices 7700, work 7701) + amity-validate 1
    val2    10.77.0.2   amity-validate 2
    val3    10.77.0.3   amity-validate 3 (joins mid-stream, step "join")
    shard0  10.77.0.10  amity-aggregate 0 (base 7710: 7710..7713)
    shard1  10.77.0.11  amity-aggregate 1 (base 7710) + amity-notify (7702)
    office  10.77.0.20  amity-submit (two offices, one key each)
    sub     10.77.0.21  amity-subscribe + amity-query (a subscriber key)

A "switch" namespace holds a Linux bridge and one veth per host; the other
end of each veth is eth0 in the host. Addresses exist only inside these
namespaces; the root namespace gets nothing. Every link carries CurveZMQ:
every daemon has its own key, servers admit only the certificates in their
directories, clients check the server's key.

Steps (each timed, each PASS/FAIL in the summary):
  security  a daemon without keys refuses a non-loopback bind; a client
            without keys gets nothing accepted
  baseline  two offices stream; exact totals at the subscriber host
            (amity-query and the folded amity-subscribe output)
  kill      mid-stream: every process of host shard1 (aggregate 1 and
            notify) is SIGKILLed, restarted 3 s later; exact totals
  cut       mid-stream: the val2 <-> shard0 path is cut for 10 s (a
            blackhole route on both ends, i.e. a silent drop; or with
            AMITY_MH_CUT=link the val2 port of the switch goes down); a
            daemon on either end must log the dead peer within 8 s
            (heartbeats); exact totals after it heals
  join      mid-stream: host val3 is created and its validator started;
            its stats line must show validated > 0; exact totals
  curve     every server (ingest, both aggregates, notify) logged a ZAP
            admission of every peer's key from that peer's host; every
            connecting daemon's ready line says *_curve=on
  stop      SIGTERM to every daemon: exit 0; per-validator final counts;
            no sanitizer report in any log
Cleanup (always, also on failure, SIGINT/SIGTERM/SIGHUP and the time
budget): SIGKILL every process in our namespaces, delete the namespaces
(and with them the bridge and veths), remove the temp dir (kept with
AMITY_MH_KEEP=1). Leftovers of a SIGKILLed earlier run (its pid is gone)
are swept at start.

Exit 0 pass, 1 fail, 77 skip (not root, or no `ip netns`).
The expected totals come from tests/integration/harness.py's domain
reference (a Python model of DOMAIN.md, independent of the C code).

Environment: AMITY_BIN_DIR (required unless build-mh/bin exists),
AMITY_MH_SEED (data seed, default 7), AMITY_MH_BUDGET (seconds, default
380), AMITY_MH_CUT (route | link), AMITY_MH_KEEP=1 (keep the temp dir),
AMITY_MH_RATE (records/s per stream, default 250).
"""

import calendar
import ctypes
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration"))
sys.dont_write_bytecode = True
import harness as ref  # noqa: E402  (domain reference: model, generator, JSON normalisation)

SKIP = 77
BIN_DIR = os.environ.get("AMITY_BIN_DIR") or os.path.join(SOURCE_DIR, "build-mh", "bin")
SEED = int(os.environ.get("AMITY_MH_SEED", "7"))
BUDGET_S = int(os.environ.get("AMITY_MH_BUDGET", "380"))
CUT_MODE = os.environ.get("AMITY_MH_CUT", "route")
RATE = int(os.environ.get("AMITY_MH_RATE", "250"))
KEEP = bool(os.environ.get("AMITY_MH_KEEP"))

NET = "10.77.0"
HOSTS = {"edge": 1, "val2": 2, "val3": 3, "shard0": 10, "shard1": 11, "office": 20, "sub": 21}
INGEST_PORT, WORK_PORT, NOTIFY_PORT, SHARD_BASE = 7700, 7701, 7702, 7710
OFFICES = ["hoi-viet-my", "hoi-viet-nhat"]
SUB_NAME = "secretariat"
HEARTBEAT_NOTICE_S = 8.0      # ZMQ heartbeat TTL is 5 s; "within a few seconds"
CUT_S = 10.0

# CurveZMQ option names (docs/DESIGN.md, --help of each program)
OPT_KEY = "--key"
OPT_CLIENTS_DIR = "--clients-dir"
OPT_PEERS_DIR = "--peers-dir"
OPT_SHARD_KEYS = "--shard-keys"
OPT_INGEST_KEYS = "--ingest-keys"
OPT_SERVER_KEY = "--server-key"
NEEDED_OPTIONS = {
    "amity-ingest": [OPT_KEY, OPT_CLIENTS_DIR, OPT_PEERS_DIR, OPT_SHARD_KEYS],
    "amity-validate": [OPT_KEY, OPT_INGEST_KEYS, OPT_SHARD_KEYS],
    "amity-aggregate": [OPT_KEY, OPT_PEERS_DIR],
    "amity-notify": [OPT_KEY, OPT_CLIENTS_DIR, OPT_SHARD_KEYS],
    "amity-submit": [OPT_KEY, OPT_SERVER_KEY],
    "amity-query": [OPT_KEY, OPT_SERVER_KEY],
    "amity-subscribe": [OPT_KEY, OPT_SERVER_KEY],
    "amity-keygen": ["--office", "--name", "--prefixes"],
}

_T0 = time.monotonic()
_LIBC = ctypes.CDLL(None, use_errno=True)


def log(msg):
    sys.stdout.write("[%7.2f] %s\n" % (time.monotonic() - _T0, msg))
    sys.stdout.flush()


def binary(name):
    return os.path.join(BIN_DIR, name)


def _child_setup():
    # between fork and exec: die with the test (survives the exec of `ip`
    # and of the daemon it execs)
    _LIBC.prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    os.setpgid(0, 0)


def child_env():
    env = dict(os.environ)
    for k in list(env):
        # no configuration from the caller's environment, timestamps in logs
        if k.startswith("AMITY_") and k != "AMITY_BIN_DIR" or k == "JOURNAL_STREAM":
            del env[k]
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


def sh(argv, timeout=15, check=True):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("%s -> rc %d: %s" % (" ".join(argv), r.returncode,
                                                   r.stderr.decode("utf-8", "replace").strip()))
    return r


class Abort(AssertionError):
    """Raised by a wait_until predicate to stop waiting at once."""


class BudgetExceeded(BaseException):
    """The time budget ran out: not caught by steps or waits."""


def wait_until(pred, timeout, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Abort:
            raise
        except Exception as e:  # noqa: BLE001 - reported at the timeout
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.0fs waiting for %s%s" % (
                timeout, what, "" if last is None else " (last error: %s)" % (last,)))
        time.sleep(interval)


def tail(path, n=25):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError as e:
        return "<cannot read %s: %s>" % (path, e)
    return "\n".join(lines[-n:])


LOG_TS_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z ")


def log_line_time(line):
    """Wall time (epoch s) of a daemon log line, or None."""
    m = LOG_TS_RE.match(line)
    if not m:
        return None
    y, mo, d, hh, mm, ss, ms = (int(x) for x in m.groups())
    return calendar.timegm((y, mo, d, hh, mm, ss)) + ms / 1000.0


# --------------------------------------------------------------------------
# The network: namespaces, a bridge, veths


class Net:
    """Namespaces amity-mh-<pid>-<rand>-<host> and a switch namespace with a
    bridge; a host's eth0 is a veth whose peer p-<host> is a bridge port."""

    def __init__(self):
        self.tag = "amity-mh-%d-%04x" % (os.getpid(), random.SystemRandom().getrandbits(16))
        self.sw = self.tag + "-sw"
        self.created = []          # namespaces, in creation order
        self.blackholes = []       # (ns, dst) routes added by cut()
        self.lock = threading.Lock()

    def ns(self, host):
        return "%s-%s" % (self.tag, host)

    def ip(self, host):
        return "%s.%d" % (NET, HOSTS[host])

    def _add_ns(self, name):
        sh(["ip", "netns", "add", name])
        with self.lock:
            self.created.append(name)
        sh(["ip", "-n", name, "link", "set", "lo", "up"])

    def up_switch(self):
        self._add_ns(self.sw)
        sh(["ip", "-n", self.sw, "link", "add", "br0", "type", "bridge", "forward_delay", "0"])
        sh(["ip", "-n", self.sw, "link", "set", "br0", "up"])

    def add_host(self, host):
        ns = self.ns(host)
        self._add_ns(ns)
        port = "p-" + host
        # created inside the switch namespace with its peer straight in the
        # host namespace: nothing ever appears in the root namespace
        sh(["ip", "-n", self.sw, "link", "add", port, "type", "veth", "peer", "name", "eth0",
            "netns", ns])
        sh(["ip", "-n", self.sw, "link", "set", port, "master", "br0"])
        sh(["ip", "-n", self.sw, "link", "set", port, "up"])
        sh(["ip", "-n", ns, "addr", "add", self.ip(host) + "/24", "dev", "eth0"])
        sh(["ip", "-n", ns, "link", "set", "eth0", "up"])

    def cut(self, a, b):
        """Cuts the path between hosts a and b (both directions)."""
        if CUT_MODE == "link":
            sh(["ip", "-n", self.sw, "link", "set", "p-" + a, "down"])
            return "switch port p-%s down (host %s off the network)" % (a, a)
        for src, dst in ((a, b), (b, a)):
            sh(["ip", "-n", self.ns(src), "route", "add", "blackhole", self.ip(dst) + "/32"])
            self.blackholes.append((self.ns(src), self.ip(dst)))
        return "blackhole routes %s -> %s and back (silent drop)" % (a, b)

    def heal(self, a, b):
        if CUT_MODE == "link":
            sh(["ip", "-n", self.sw, "link", "set", "p-" + a, "up"])
            return
        while self.blackholes:
            ns, dst = self.blackholes.pop()
            sh(["ip", "-n", ns, "route", "del", "blackhole", dst + "/32"])

    def pids(self, name):
        r = sh(["ip", "netns", "pids", name], check=False)
        return [int(x) for x in r.stdout.split()]

    def kill_all_in(self, name):
        pids = self.pids(name)
        for p in pids:
            try:
                os.kill(p, signal.SIGCONT)
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        return pids

    def destroy(self):
        """Kills every process in our namespaces, deletes them. Idempotent;
        returns a list of problems (empty: all gone)."""
        problems = []
        with self.lock:
            names = list(reversed(self.created))
        for name in names:
            self.kill_all_in(name)
        deadline = time.monotonic() + 5
        for name in names:
            while self.pids(name) and time.monotonic() < deadline:
                time.sleep(0.05)
            left = self.pids(name)
            if left:
                problems.append("processes %s still in %s" % (left, name))
        for name in names:
            r = sh(["ip", "netns", "del", name], check=False)
            if r.returncode != 0:
                problems.append("ip netns del %s: %s" % (name, r.stderr.decode().strip()))
        with self.lock:
            self.created = []
        r = sh(["ip", "netns", "list"], check=False)
        left = [l.split()[0] for l in r.stdout.decode().splitlines()
                if l.startswith(self.tag + "-")]
        if left:
            problems.append("namespaces left: %s" % left)
        return problems


STALE_RE = re.compile(r"^amity-mh-(\d+)-[0-9a-f]{4}-")


def sweep_stale():
    """Deletes the namespaces of earlier runs whose test process is gone."""
    r = sh(["ip", "netns", "list"], check=False)
    for line in r.stdout.decode().splitlines():
        if not line.strip():
            continue
        name = line.split()[0]
        m = STALE_RE.match(name)
        if not m:
            continue
        pid = int(m.group(1))
        if pid != os.getpid() and os.path.exists("/proc/%d" % pid):
            continue
        for p in [int(x) for x in sh(["ip", "netns", "pids", name], check=False).stdout.split()]:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.1)
        sh(["ip", "netns", "del", name], check=False)
        log("swept stale namespace %s" % name)
    # temp dirs of runs that were SIGKILLed (not those kept on purpose)
    tmp = tempfile.gettempdir()
    for d in os.listdir(tmp):
        m = re.match(r"^amity-mh-(\d+)-", d)
        path = os.path.join(tmp, d)
        if not m or not os.path.isdir(path) or os.path.exists(os.path.join(path, "KEEP")):
            continue
        if int(m.group(1)) != os.getpid() and not os.path.exists("/proc/%s" % m.group(1)):
            shutil.rmtree(path, ignore_errors=True)
            log("swept stale temp dir %s" % path)


# --------------------------------------------------------------------------
# Processes in a host


class Proc:
    def __init__(self, t, host, name, prog, args, stdin=None):
        self.t = t
        self.host = host
        self.name = name
        self.prog = prog
        self.args = list(args)
        self.log_path = os.path.join(t.dir, "logs", name + ".log")
        self.proc = None
        self.offset = 0
        self.starts = 0
        self.stdin = stdin

    def argv(self):
        return ["ip", "netns", "exec", self.t.net.ns(self.host), binary(self.prog)] + self.args

    def start(self, stdout=None):
        """Starts the program in its host. Its stderr goes to the log;
        stdout too unless stdout is given (a path, or subprocess.PIPE)."""
        self.starts += 1
        with open(self.log_path, "ab") as f:
            f.write(("=== test: start #%d on %s: %s\n" % (
                self.starts, self.host, " ".join([self.prog] + self.args))).encode())
            self.offset = f.tell()
        err = open(self.log_path, "ab")
        out = err
        try:
            if isinstance(stdout, str):
                out = open(stdout, "wb")
            elif stdout is not None:
                out = stdout
            self.proc = subprocess.Popen(
                self.argv(), stdin=self.stdin if self.stdin is not None else subprocess.DEVNULL,
                stdout=out, stderr=err, cwd=self.t.host_dir(self.host),
                env=self.t.env, preexec_fn=_child_setup)
        finally:
            err.close()
            if out is not err and isinstance(stdout, str):
                out.close()
        if self not in self.t.procs:
            self.t.procs.append(self)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def text(self, since=None):
        with open(self.log_path, "rb") as f:
            f.seek(self.offset if since is None else since)
            return f.read().decode("utf-8", "replace")

    def size(self):
        return os.path.getsize(self.log_path)

    def wait_ready(self, timeout=30):
        def ready():
            if not self.alive():
                raise Abort("%s exited rc %s before logging 'ready':\n%s" % (
                    self.name, self.proc.returncode, tail(self.log_path)))
            return re.search(r"\bready\b", self.text()) is not None
        wait_until(ready, timeout, 0.05, "%s to log 'ready'" % self.name)

    def kill(self):
        if self.alive():
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
                self.proc.kill()
            except OSError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def term(self, timeout=10):
        """SIGTERM; returns (rc or None, seconds)."""
        t0 = time.monotonic()
        if not self.alive():
            return self.proc.returncode, 0.0
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = None
        return rc, time.monotonic() - t0


# --------------------------------------------------------------------------
# Data: the domain reference's generator, narrowed to two years and eight
# countries so that the totals stay a few thousand keys


COUNTRIES = ["US", "CU", "JP", "LA", "FR", "DE", "AU", "ZA"]


def narrow(rng, recs):
    seen = set()
    for r in recs:
        if id(r) in seen:          # exact resends are the same object
            continue
        seen.add(id(r))
        if "date" in r:
            y = rng.choice([2023, 2024])
            m = rng.randint(1, 12)
            r["date"] = "%04d-%02d-%02d" % (y, m, rng.randint(1, calendar.monthrange(y, m)[1]))
        if "country" in r:
            r["country"] = rng.choice(COUNTRIES)
    return recs


def make_stream(rng, prefix, n):
    return narrow(rng, ref.gen_stream(rng, None, n, prefix))


# --------------------------------------------------------------------------
# The test


class Subscriber:
    """amity-subscribe "" at host sub; a thread folds its lines."""

    def __init__(self, t):
        self.t = t
        self.state = {}
        self.lock = threading.Lock()
        self.snapshots = 0
        self.updates = 0
        self.errors = []
        self.out_path = os.path.join(t.dir, "logs", "subscribe.out")
        self.p = Proc(t, "sub", "subscribe", "amity-subscribe",
                      t.client_keys("sub", SUB_NAME, "notify") +
                      ["--notify", t.notify_ep, ""])
        self.p.start(stdout=subprocess.PIPE)   # stdout: the data; stderr: the log
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        with open(self.out_path, "w", encoding="utf-8") as out:
            for raw in self.p.proc.stdout:
                line = raw.decode("utf-8", "replace")
                out.write(line)
                out.flush()
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    totals = ref.normalize_totals(obj["totals"], "amity-subscribe")
                except Exception as e:  # noqa: BLE001
                    with self.lock:
                        self.errors.append("bad line %r: %s" % (line[:200], e))
                    continue
                with self.lock:
                    if obj.get("snapshot") is True:
                        self.snapshots += 1
                        self.state = dict(totals)
                    else:
                        self.updates += 1
                        self.state.update(totals)

    def folded(self):
        with self.lock:
            return dict(self.state)

    def stats(self):
        with self.lock:
            return "%d snapshots, %d updates" % (self.snapshots, self.updates)


class Stream:
    """One office's records fed to amity-submit at the office host through
    a pipe at `rate` lines/s (so that events happen mid-stream)."""

    def __init__(self, t, office, recs, rate, label):
        self.t = t
        self.office = office
        self.lines = [ref.jsonl(r) + "\n" for r in recs]
        self.rate = rate
        self.label = "%s-%s" % (label, office)
        self.written = 0
        self.error = None
        self.p = Proc(t, "office", "submit-" + self.label, "amity-submit",
                      t.client_keys("office", office, "ingest") +
                      ["--ingest", t.ingest_ep, "--window", "512", "--batch", "32",
                       "--timeout-ms", "3000", "--deadline-s", "60", "-"],
                      stdin=subprocess.PIPE)
        self.out_path = os.path.join(t.dir, "logs", "submit-%s.out" % self.label)
        self.p.start(stdout=self.out_path)     # stdout: rejections and the summary
        self.t0 = time.monotonic()
        self.thread = threading.Thread(target=self._feed, daemon=True)
        self.thread.start()

    def _feed(self):
        tick = 0.05
        per_tick = max(1, int(self.rate * tick))
        try:
            i = 0
            next_t = time.monotonic()
            while i < len(self.lines):
                chunk = "".join(self.lines[i:i + per_tick]).encode()
                self.p.proc.stdin.write(chunk)
                self.p.proc.stdin.flush()
                i += per_tick
                self.written = min(i, len(self.lines))
                next_t += tick
                d = next_t - time.monotonic()
                if d > 0:
                    time.sleep(d)
        except (BrokenPipeError, ValueError, OSError) as e:
            self.error = "feeding amity-submit: %s" % e
        finally:
            try:
                self.p.proc.stdin.close()
            except OSError:
                pass

    def elapsed(self):
        return time.monotonic() - self.t0

    def wait(self, timeout):
        self.thread.join(timeout)
        left = max(1.0, timeout - self.elapsed())
        try:
            rc = self.p.proc.wait(timeout=left)
        except subprocess.TimeoutExpired:
            self.p.kill()
            raise AssertionError("stream %s: amity-submit did not finish within %.0fs "
                                 "(%d/%d lines fed); log:\n%s" % (
                                     self.label, timeout, self.written, len(self.lines),
                                     tail(self.p.log_path))) from None
        with open(self.out_path, "rb") as f:
            out = f.read().decode("utf-8", "replace")
        lines = [l for l in out.splitlines() if l.strip()]
        m = re.match(r"^accepted (\d+), duplicate (\d+), rejected (\d+)$", lines[-1]) \
            if lines else None
        if self.error:
            raise AssertionError("stream %s: %s" % (self.label, self.error))
        if rc != 0 or not m:
            raise AssertionError("stream %s: amity-submit rc %s, output %r; log:\n%s" % (
                self.label, rc, out[-600:], tail(self.p.log_path)))
        a, d, r = (int(x) for x in m.groups())
        if r != 0 or a + d != len(self.lines):
            raise AssertionError("stream %s: %d lines but accepted %d, duplicate %d, "
                                 "rejected %d" % (self.label, len(self.lines), a, d, r))
        log("stream %s: %d lines, accepted %d, duplicate %d, in %.1fs" % (
            self.label, len(self.lines), a, d, self.elapsed()))
        return a, d


class Test:
    def __init__(self):
        self.net = Net()
        self.dir = tempfile.mkdtemp(prefix="amity-mh-%d-" % os.getpid())
        os.makedirs(os.path.join(self.dir, "logs"))
        self.env = child_env()
        self.procs = []
        self.daemons = {}
        self.sub = None
        self.model = ref.Model()
        self.rng = random.Random(SEED)
        self.results = []          # (step, ok, seconds, detail)
        self.findings = []         # defects / observations for the report
        self.ingest_ep = "tcp://%s:%d" % (self.net.ip("edge"), INGEST_PORT)
        self.work_ep = "tcp://%s:%d" % (self.net.ip("edge"), WORK_PORT)
        self.notify_ep = "tcp://%s:%d" % (self.net.ip("shard1"), NOTIFY_PORT)
        self.shard_eps = ["tcp://%s:%d" % (self.net.ip(h), SHARD_BASE)
                          for h in ("shard0", "shard1")]
        self.cleaned = False

    # -- layout -----------------------------------------------------------

    def host_dir(self, host):
        d = os.path.join(self.dir, "hosts", host)
        os.makedirs(d, exist_ok=True)
        return d

    def keys_dir(self):
        return os.path.join(self.dir, "keygen")

    def make_keys(self):
        """Every key made once by the "operator" (amity-keygen), then each
        host gets its own secret, the public certs of the servers it
        connects to, and the directories of the peers it admits."""
        kd = self.keys_dir()
        os.makedirs(kd)
        services = ["ingest", "val1", "val2", "val3", "shard0", "shard1", "notify"]
        for s in services:
            sh([binary("amity-keygen"), os.path.join(kd, s), "--name", "svc-" + s])
        for o in OFFICES:
            sh([binary("amity-keygen"), os.path.join(kd, o), "--office", o])
        sh([binary("amity-keygen"), os.path.join(kd, SUB_NAME), "--name", SUB_NAME,
            "--prefixes", "*"])

        def give(host, sub, names, secret=False):
            d = os.path.join(self.host_dir(host), sub)
            os.makedirs(d, exist_ok=True)
            for n in names:
                shutil.copy(os.path.join(kd, n), d)
                if secret:
                    shutil.copy(os.path.join(kd, n + "_secret"), d)
            return d

        # own key pairs
        give("edge", "secret", ["ingest", "val1"], secret=True)
        give("val2", "secret", ["val2"], secret=True)
        give("val3", "secret", ["val3"], secret=True)
        give("shard0", "secret", ["shard0"], secret=True)
        give("shard1", "secret", ["shard1", "notify"], secret=True)
        give("office", "secret", OFFICES, secret=True)
        give("sub", "secret", [SUB_NAME], secret=True)
        # servers' public certificates, for connecting
        for h in ("edge", "val2", "val3", "shard1"):
            give(h, "servers", ["ingest", "shard0", "shard1"])
        give("office", "servers", ["ingest"])
        give("sub", "servers", ["notify"])
        # who may connect
        give("edge", "offices", OFFICES)                         # ingest, offices
        give("edge", "peers", ["val1", "val2", "val3"])           # ingest's work socket
        for h in ("shard0", "shard1"):                            # aggregate's 4 sockets
            give(h, "peers", ["val1", "val2", "val3", "ingest", "notify"])
        give("shard1", "subscribers", [SUB_NAME])                # notify's clients

    def secret(self, host, name):
        return os.path.join(self.host_dir(host), "secret", name + "_secret")

    def server_cert(self, host, name):
        return os.path.join(self.host_dir(host), "servers", name)

    def client_keys(self, host, name, server):
        return [OPT_KEY, self.secret(host, name), OPT_SERVER_KEY, self.server_cert(host, server)]

    def shard_keys(self, host):
        return ",".join(self.server_cert(host, s) for s in ("shard0", "shard1"))

    # -- daemons ----------------------------------------------------------

    def add_daemon(self, name, host, prog, args):
        p = Proc(self, host, name, prog, args)
        self.daemons[name] = p
        return p

    def define_daemons(self):
        hd = self.host_dir
        shards = ",".join(self.shard_eps)
        for k, h in enumerate(("shard0", "shard1")):
            self.add_daemon("aggregate%d" % k, h, "amity-aggregate", [
                "--bind", self.shard_eps[k], "--index", str(k),
                "--state", os.path.join(hd(h), "state", "shard-%d" % k), "--batch-ms", "5",
                OPT_KEY, self.secret(h, h), OPT_PEERS_DIR, os.path.join(hd(h), "peers")])
        self.add_daemon("ingest", "edge", "amity-ingest", [
            "--bind", self.ingest_ep, "--work", self.work_ep, "--shards", shards,
            OPT_KEY, self.secret("edge", "ingest"),
            OPT_CLIENTS_DIR, os.path.join(hd("edge"), "offices"),
            OPT_PEERS_DIR, os.path.join(hd("edge"), "peers"),
            OPT_SHARD_KEYS, self.shard_keys("edge")])
        for i, h in ((1, "edge"), (2, "val2"), (3, "val3")):
            self.add_daemon("validate%d" % i, h, "amity-validate", [
                "--ingest", self.work_ep, "--shards", shards,
                OPT_KEY, self.secret(h, "val%d" % i),
                OPT_INGEST_KEYS, self.server_cert(h, "ingest"),
                OPT_SHARD_KEYS, self.shard_keys(h)])
        self.add_daemon("notify", "shard1", "amity-notify", [
            "--bind", self.notify_ep, "--shards", shards,
            OPT_KEY, self.secret("shard1", "notify"),
            OPT_CLIENTS_DIR, os.path.join(hd("shard1"), "subscribers"),
            OPT_SHARD_KEYS, self.shard_keys("shard1")])

    def start(self, name, timeout=30):
        d = self.daemons[name]
        d.start()
        d.wait_ready(timeout)
        ready = [l for l in d.text().splitlines() if re.search(r"\bready\b", l)]
        log("%s ready on %s: %s" % (name, d.host, ready[0][ready[0].find("ready"):][:200]
                                    if ready else "?"))

    def check_alive(self, names=None):
        for n in names or self.daemons:
            d = self.daemons[n]
            if d.starts and not d.alive():
                raise AssertionError("%s on %s died (rc %s):\n%s" % (
                    n, d.host, d.proc.returncode, tail(d.log_path)))

    # -- clients ----------------------------------------------------------

    def run_client(self, host, prog, args, timeout=30, label=None):
        argv = ["ip", "netns", "exec", self.net.ns(host), binary(prog)] + args
        logp = os.path.join(self.dir, "logs", "%s.log" % (label or prog))
        try:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout, env=self.env,
                               cwd=self.host_dir(host), preexec_fn=_child_setup)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s timed out after %ss" % (prog, timeout)) from None
        with open(logp, "ab") as f:
            f.write(("$ %s\nrc=%d\n" % (" ".join(argv), r.returncode)).encode() +
                    r.stderr[-4000:] + b"\n")
        return r

    def query(self):
        r = self.run_client("sub", "amity-query",
                            self.client_keys("sub", SUB_NAME, "notify") +
                            ["--notify", self.notify_ep, "--timeout-ms", "5000", ""], timeout=30)
        if r.returncode != 0:
            raise AssertionError("amity-query rc %d: %s" % (
                r.returncode, r.stderr.decode("utf-8", "replace")[-500:]))
        return ref.normalize_totals(json.loads(r.stdout.decode("utf-8")), "amity-query")

    def check_exact(self, label, timeout=30):
        """amity-query and the folded subscriber output equal the model."""
        exp = ref.nonzero(self.model.totals())
        t0 = time.monotonic()
        last = {}

        def q_ok():
            last["q"] = self.query()
            return ref.nonzero(last["q"]) == exp
        try:
            wait_until(q_ok, timeout, 0.5, "amity-query to equal the reference")
        except AssertionError:
            if "q" not in last:
                raise
            ref.assert_totals_equal(last["q"], exp, "%s: amity-query" % label)
        tq = time.monotonic() - t0
        try:
            wait_until(lambda: ref.nonzero(self.sub.folded()) == exp, timeout, 0.2,
                       "the subscriber to equal the reference")
        except AssertionError:
            ref.assert_totals_equal(self.sub.folded(), exp, "%s: amity-subscribe" % label)
        if not self.sub.p.alive():
            raise AssertionError("amity-subscribe exited rc %s" % self.sub.p.proc.returncode)
        if self.sub.errors:
            raise AssertionError("amity-subscribe: %s" % "; ".join(self.sub.errors[:3]))
        log("%s: exact: %d keys, %d live records; query after %.1fs, subscriber (%s) "
            "after %.1fs" % (label, len(exp), len(self.model.live_records()), tq,
                             self.sub.stats(), time.monotonic() - t0))

    def feed_model(self, office, recs):
        for r in recs:
            self.model.apply(office, r)

    def stream(self, office, n, label, rate=RATE):
        recs = make_stream(self.rng, "%s-%s" % (label, office[-2:]), n)
        self.feed_model(office, recs)
        return Stream(self, office, recs, rate, label)

    # -- steps ------------------------------------------------------------

    def step(self, name, fn):
        t0 = time.monotonic()
        log("=== step %s" % name)
        try:
            detail = fn() or ""
            ok = True
        except Exception as e:  # noqa: BLE001 - reported in the summary
            ok = False
            detail = "%s: %s" % (type(e).__name__, e)
            traceback.print_exc(file=sys.stdout)
        dt = time.monotonic() - t0
        self.results.append((name, ok, dt, detail))
        log("=== step %s: %s in %.1fs %s" % (name, "PASS" if ok else "FAIL", dt,
                                             detail.splitlines()[0] if detail else ""))
        return ok

    def setup(self):
        self.net.up_switch()
        for h in ("edge", "val2", "shard0", "shard1", "office", "sub"):
            self.net.add_host(h)
        self.make_keys()
        self.define_daemons()
        for n in ("aggregate0", "aggregate1", "ingest", "validate1", "validate2", "notify"):
            self.start(n)
        self.sub = Subscriber(self)
        wait_until(lambda: self.sub.snapshots > 0 or not self.sub.p.alive(), 30, 0.1,
                   "the subscriber's first snapshot")
        if not self.sub.p.alive():
            raise AssertionError("amity-subscribe exited rc %s:\n%s" % (
                self.sub.p.proc.returncode, tail(self.sub.p.log_path)))
        return "namespaces %s-*, switch %s" % (self.net.tag, self.net.sw)

    def step_security(self):
        # a daemon without keys refuses a non-loopback endpoint
        r = self.run_client("edge", "amity-ingest",
                            ["--bind", "tcp://%s:7800" % self.net.ip("edge"),
                             "--work", "tcp://%s:7801" % self.net.ip("edge"),
                             "--shards", ",".join(self.shard_eps)],
                            timeout=20, label="ingest-without-keys")
        if r.returncode != 2:
            raise AssertionError("amity-ingest without keys on a non-loopback endpoint exited "
                                 "%d (expected 2)" % r.returncode)
        # a client without keys gets nothing in
        path = os.path.join(self.host_dir("office"), "plain.jsonl")
        ref.write_lines(path, [ref.jsonl(r) for r in make_stream(self.rng, "plain", 5)])
        off = self.daemons["ingest"].size()
        r = self.run_client("office", "amity-submit",
                            ["--ingest", self.ingest_ep, "--office", OFFICES[0],
                             "--deadline-s", "3", "--timeout-ms", "1000", path],
                            timeout=30, label="submit-without-keys")
        out = r.stdout.decode("utf-8", "replace")
        if r.returncode == 0 or "accepted 0," not in out:
            raise AssertionError("a client without keys: rc %d, %r" % (r.returncode, out))
        refused = [l for l in self.daemons["ingest"].text(off).splitlines()
                   if re.search(r"handshake|refused|mechanism", l, re.I)]
        return "unkeyed ingest bind: rc 2; unkeyed submit: rc %d, ingest logged: %s" % (
            r.returncode, refused[0][refused[0].find(" ") + 1:][:160] if refused else "nothing")

    def step_baseline(self):
        streams = [self.stream(o, 400, "base", rate=RATE) for o in OFFICES]
        for s in streams:
            s.wait(90)
        self.check_alive()
        self.check_exact("baseline")

    def step_kill(self):
        s = self.stream(OFFICES[0], 2500, "kill")
        wait_until(lambda: s.elapsed() >= 4 or not s.p.alive(), 10, 0.05)
        killed = self.net.kill_all_in(self.net.ns("shard1"))
        for n in ("aggregate1", "notify"):
            self.daemons[n].kill()
        t_kill = time.monotonic()
        log("host shard1: SIGKILLed pids %s at %d/%d lines" % (killed, s.written, len(s.lines)))
        time.sleep(3)
        self.start("aggregate1")
        self.start("notify")
        t_back = time.monotonic() - t_kill
        s.wait(120)
        self.check_alive()
        self.check_exact("kill")
        seqs = re.findall(r"ready .*?seq=(\d+)", self.daemons["aggregate1"].text())
        return "shard1 host down %.1fs (killed pids %s); aggregate1 restarted at seq %s" % (
            t_back, killed, seqs[-1] if seqs else "?")

    def step_cut(self):
        s = self.stream(OFFICES[1], 3500, "cut")
        wait_until(lambda: s.elapsed() >= 3 or not s.p.alive(), 10, 0.05)
        watched = ["validate2", "aggregate0"] if CUT_MODE == "route" else \
            ["validate2", "ingest", "aggregate0", "aggregate1"]
        offsets = {n: d.size() for n, d in self.daemons.items() if d.starts}
        t_cut = time.time()
        how = self.net.cut("val2", "shard0")
        log("cut: %s at %d/%d lines" % (how, s.written, len(s.lines)))
        hb_re = re.compile(r"disconnect|heartbeat|peer .*(lost|gone|down|dead|silent)|"
                           r"connection .*(lost|closed|dropped)|timed? ?out", re.I)
        seen = []
        end = time.monotonic() + CUT_S
        while time.monotonic() < end:
            time.sleep(0.25)
        for n, off in offsets.items():
            for line in self.daemons[n].text(off).splitlines():
                if " stats" in line or not hb_re.search(line):
                    continue
                ts = log_line_time(line)
                seen.append((ts - t_cut if ts else None, n, line))
        self.net.heal("val2", "shard0")
        t_heal = time.time()
        log("healed after %.1fs" % (t_heal - t_cut))
        s.wait(120)
        self.check_alive()
        self.check_exact("cut")
        seen.sort(key=lambda x: (x[0] is None, x[0]))
        for dt, n, line in seen[:8]:
            log("  cut: %s logged after %s: %s" % (n, "%.1fs" % dt if dt is not None else "?",
                                                 line[:200]))
        noticed = [x for x in seen if x[1] in watched and x[0] is not None
                   and x[0] <= HEARTBEAT_NOTICE_S]
        # evidence that the connection really was dropped: the shard admits
        # validator 2's key again (a new handshake) after the heal
        rehs = []
        for line in self.daemons["aggregate0"].text(offsets["aggregate0"]).splitlines():
            ts = log_line_time(line)
            if ts and ts >= t_heal - 0.5 and re.search(r"admitted svc-val2\b", line):
                rehs.append(ts - t_heal)
        again = ("; aggregate0 admitted svc-val2 again %.1fs after the heal (a new "
                 "handshake: the old connection had been dropped)" % rehs[0]) if rehs else \
            "; no new handshake of svc-val2 at aggregate0 after the heal"
        log("cut: %s" % again[2:])
        if not noticed:
            self.findings.append(
                "DEFECT heartbeats: the val2<->shard0 path was cut for %.0fs (%s); neither "
                "amity-validate (val2) nor amity-aggregate (shard0) logged the dead peer "
                "within %.0fs (lines matching /%s/ seen: %s). ZMQ heartbeats are set (sock.c) "
                "but no daemon logs the disconnect (auth.c's monitor ignores "
                "ZMQ_EVENT_DISCONNECTED, and validate/aggregate have no monitor on these "
                "links)%s." % (CUT_S, how, HEARTBEAT_NOTICE_S, hb_re.pattern,
                               ["%s@%s" % (n, "%.1fs" % dt if dt is not None else "?")
                                for dt, n, _ in seen[:5]] or "none", again))
            raise AssertionError("no daemon at either end logged the dead peer within %.0fs "
                                 "of the cut (totals after healing were exact)" %
                                 HEARTBEAT_NOTICE_S)
        dt, n, line = noticed[0]
        return "%s; %s noticed after %.1fs: %s%s" % (how, n, dt, line[line.find(" ") + 1:][:160],
                                                     again)

    def step_join(self):
        s = self.stream(OFFICES[0], 3500, "join")
        wait_until(lambda: s.elapsed() >= 2 or not s.p.alive(), 10, 0.05)
        self.net.add_host("val3")
        self.start("validate3")
        t_join = time.monotonic()
        log("host val3 joined at %d/%d lines" % (s.written, len(s.lines)))
        v3 = self.daemons["validate3"]

        def counted():
            self.check_alive(["validate3"])
            n = [int(x) for x in re.findall(r"stats.*?\bvalidated=(\d+)", v3.text())]
            return n and n[-1] > 0 and n[-1]
        n3 = wait_until(counted, 25, 0.25, "validate3 to log stats with validated > 0")
        t_share = time.monotonic() - t_join
        s.wait(120)
        self.check_alive()
        self.check_exact("join")
        return "validate3 logged validated=%d %.1fs after it started" % (n3, t_share)

    def step_curve(self):
        """Every link is CURVE: each server logged a ZAP admission of each
        peer's key, from that peer's host (a key is only seen under CURVE),
        and the connecting daemons report their links encrypted."""
        ip = self.net.ip
        svc = [("svc-ingest", ip("edge")), ("svc-val1", ip("edge")), ("svc-val2", ip("val2")),
               ("svc-val3", ip("val3")), ("svc-notify", ip("shard1"))]
        expect = {
            "ingest": [(o, ip("office")) for o in OFFICES] + svc[1:4],
            "aggregate0": svc,
            "aggregate1": svc,
            "notify": [(SUB_NAME, ip("sub"))],
        }
        missing = []
        seen = 0
        for n, pairs in expect.items():
            got = set(re.findall(r"admitted (\S+) \([a-z-]+\) from ([0-9.]+)",
                                 self.daemons[n].text(0)))
            seen += len(got)
            missing += ["%s: %s from %s" % (n, k, a) for k, a in pairs if (k, a) not in got]
        plain = []
        for n in ("validate1", "validate2", "validate3", "ingest", "notify"):
            for line in self.daemons[n].text(0).splitlines():
                if re.search(r"\bready\b", line):
                    plain += ["%s: %s" % (n, m) for m in re.findall(r"\b\w+_curve=(?!on\b)\S+", line)]
        if missing or plain:
            raise AssertionError("CURVE handshakes missing: %s; links not encrypted: %s" % (
                missing or "none", plain or "none"))
        return "%d distinct (key, host) admissions at ingest, aggregate 0/1 and notify; " \
               "every *_curve=on" % seen

    def step_stop(self):
        order = ["notify", "ingest", "validate1", "validate2", "validate3",
                 "aggregate0", "aggregate1"]
        bad = []
        times = []
        self.sub.p.term(5)
        for n in order:
            d = self.daemons[n]
            if not d.starts:
                continue
            rc, dt = d.term(10)
            times.append("%s %.2fs" % (n, dt))
            if rc != 0:
                bad.append("%s exited %s after SIGTERM" % (n, rc))
        counts = {}
        for n in ("validate1", "validate2", "validate3"):
            v = [int(x) for x in re.findall(r"stats.*?\bvalidated=(\d+)",
                                             self.daemons[n].text(0))]
            counts[n] = v[-1] if v else None
        log("per-validator counts (last stats line): %s" % counts)
        if not counts.get("validate3"):
            bad.append("validate3 counted nothing")
        san = []
        for p in self.procs:
            try:
                with open(p.log_path, "rb") as f:
                    if ref.SANITIZER_RE.search(f.read().decode("utf-8", "replace")):
                        san.append(p.name)
            except OSError:
                pass
        if san:
            bad.append("sanitizer reports in %s" % sorted(set(san)))
        if bad:
            raise AssertionError("; ".join(bad))
        return "exit 0: %s; validated: %s" % (", ".join(times), counts)

    # -- cleanup ----------------------------------------------------------

    def print_tails(self):
        for p in self.procs:
            if p.starts:
                sys.stdout.write("----- %s (%s) %s -----\n%s\n" % (
                    p.name, p.host, p.log_path, tail(p.log_path, 20)))
        sys.stdout.flush()

    def cleanup(self):
        if self.cleaned:
            return []
        self.cleaned = True
        for p in self.procs:
            p.kill()
        problems = self.net.destroy()
        for p in self.procs:
            if p.alive():
                problems.append("%s (pid %d) still running" % (p.name, p.proc.pid))
        if KEEP:
            with open(os.path.join(self.dir, "KEEP"), "w") as f:
                f.write("kept by AMITY_MH_KEEP; the next run's sweep leaves it alone\n")
            log("keeping %s (AMITY_MH_KEEP)" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        return problems


def preflight():
    """Returns None, or the reason to skip."""
    if os.geteuid() != 0:
        return "not root: ip netns needs CAP_SYS_ADMIN and CAP_NET_ADMIN"
    if not shutil.which("ip"):
        return "no `ip` (iproute2)"
    probe = "amity-mh-%d-probe" % os.getpid()
    r = subprocess.run(["ip", "netns", "add", probe], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if r.returncode != 0:
        return "ip netns add failed: %s" % r.stderr.decode().strip()
    subprocess.run(["ip", "netns", "del", probe], stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE)
    return None


def check_binaries():
    missing = []
    for prog, opts in sorted(NEEDED_OPTIONS.items()):
        if not os.access(binary(prog), os.X_OK):
            missing.append("%s (not built in %s)" % (prog, BIN_DIR))
            continue
        r = subprocess.run([binary(prog), "--help"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=20, env=child_env())
        text = r.stdout.decode("utf-8", "replace")
        lack = [o for o in opts if not re.search(r"(^|\s)%s\b" % re.escape(o), text)]
        if lack:
            missing.append("%s lacks %s" % (prog, " ".join(lack)))
    if missing:
        raise AssertionError("the programs cannot run this test: " + "; ".join(missing))


def main():
    why = preflight()
    if why:
        print("SKIP: %s" % why)
        return SKIP
    sweep_stale()
    t = Test()
    state = {"t": t}

    def on_signal(signum, frame):
        if signum == signal.SIGALRM:
            raise BudgetExceeded("the test exceeded its %ds budget (AMITY_MH_BUDGET)" % BUDGET_S)
        sys.stdout.write("signal %d: cleaning up\n" % signum)
        sys.stdout.flush()
        problems = state["t"].cleanup()
        if problems:
            sys.stdout.write("cleanup problems: %s\n" % problems)
        os._exit(128 + signum)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
        signal.signal(s, on_signal)
    signal.alarm(BUDGET_S)
    t0 = time.monotonic()
    failed = True
    try:
        log("bin %s, seed %d, cut mode %s, rate %d/s, dir %s" % (BIN_DIR, SEED, CUT_MODE, RATE,
                                                                 t.dir))
        ok = t.step("build-check", check_binaries)
        ok = ok and t.step("setup", t.setup)
        if ok:
            t.step("security", t.step_security)
            for name, fn in (("baseline", t.step_baseline), ("kill", t.step_kill),
                             ("cut", t.step_cut), ("join", t.step_join), ("curve", t.step_curve)):
                if not t.step(name, fn):
                    # a dead daemon makes the later steps meaningless
                    try:
                        t.check_alive()
                    except AssertionError as e:
                        log("stopping after %s: %s" % (name, str(e).splitlines()[0]))
                        break
            t.step("stop", t.step_stop)
        failed = not all(ok for _, ok, _, _ in t.results)
    except BudgetExceeded as e:
        log(str(e))
        t.results.append(("(budget)", False, time.monotonic() - t0, str(e)))
    except Exception:  # noqa: BLE001 - a bug in the test
        traceback.print_exc(file=sys.stdout)
        t.results.append(("(aborted)", False, 0.0, "see the traceback"))
    finally:
        signal.alarm(0)
        if failed:
            t.print_tails()
        problems = t.cleanup()
        t.results.append(("cleanup", not problems, 0.0, "; ".join(problems) or
                          "processes, namespaces, bridge and veths removed; temp dir %s" % (
                              "kept: " + t.dir if KEEP else "removed")))
    print("\n===== multihost summary (seed %d, cut %s) =====" % (SEED, CUT_MODE))
    for name, ok, dt, detail in t.results:
        print("%-12s %s %6.1fs  %s" % (name, "PASS" if ok else "FAIL", dt,
                                      detail.splitlines()[0][:300] if detail else ""))
    for f in t.findings:
        print("finding: %s" % f)
    failed = not all(ok for _, ok, _, _ in t.results)
    print("%s in %.1fs" % ("FAIL" if failed else "PASS", time.monotonic() - t0))
    sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
