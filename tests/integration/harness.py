"""Integration test harness for amity (Python 3 standard library only).

- Cluster: starts the four daemons individually (amity-aggregate per shard,
  amity-ingest, amity-validate x N, amity-notify) on a private port range,
  waits for readiness, kills / stops / restarts a named daemon, and always
  cleans up (try/finally, atexit, SIGTERM/SIGINT/SIGHUP handlers, and
  PR_SET_PDEATHSIG on every child so a SIGKILLed test leaves no orphans).
- Clients: amity-submit / amity-query / amity-subscribe wrappers.
- Data: deterministic record generation (random.Random(seed)).
- Reference: an independent Python computation of every totals key of
  DOMAIN.md over the latest accepted revision of each (office, id).

Port layout for base port P (same as amity-stack --base-port P):
  ingest P, validators' work P+1, notify P+2, shard k base P+10+10k.
"""

import atexit
import calendar
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

# --------------------------------------------------------------------------
# Environment

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN_DIR = os.environ.get("AMITY_BIN_DIR") or os.path.join(SOURCE_DIR, "build-it", "bin")

# Inherited by every child: daemons are killed with -9, leak reports are noise.
os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1")
os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")

_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _child_setup():
    # Runs in the child between fork and exec: die when the test dies.
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def log(msg):
    sys.stdout.write("[%7.2f] %s\n" % (time.monotonic() - _T0, msg))
    sys.stdout.flush()


_T0 = time.monotonic()


def binary(name):
    return os.path.join(BIN_DIR, name)


def require_binaries(names):
    missing = [n for n in names if not os.access(binary(n), os.X_OK)]
    if missing:
        raise AssertionError("binaries missing in %s: %s" % (BIN_DIR, ", ".join(missing)))


def ep(port):
    return "tcp://127.0.0.1:%d" % port


# --------------------------------------------------------------------------
# Process registry and global cleanup

_ALL_PROCS = []          # every Popen we started (daemons and clients)
_ALL_TMPDIRS = []
_CLEANED = False
_CLEAN_LOCK = threading.Lock()


def _register(proc):
    _ALL_PROCS.append(proc)
    return proc


def children_of(pid):
    """Direct children of pid (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d, "rb") as f:
                st = f.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = st[st.rfind(")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            out.append(int(d))
    return out


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        for c in children_of(todo.pop()):
            out.append(c)
            todo.append(c)
    return out


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")[0].decode("utf-8", "replace")
    except OSError:
        return ""


def cleanup_all():
    """Kill every process we started (by pid) and their descendants (found
    by pid in /proc), remove temp dirs. Idempotent."""
    global _CLEANED
    with _CLEAN_LOCK:
        for p in _ALL_PROCS:
            if p.poll() is None:
                for d in descendants(p.pid):
                    try:
                        os.kill(d, signal.SIGKILL)
                    except OSError:
                        pass
                try:
                    os.kill(p.pid, signal.SIGCONT)  # a SIGSTOPped child must die too
                    p.kill()
                except OSError:
                    pass
        for p in _ALL_PROCS:
            try:
                p.wait(timeout=5)
            except Exception:
                pass
        if os.environ.get("AMITY_IT_KEEP"):
            for d in _ALL_TMPDIRS:
                log("keeping %s (AMITY_IT_KEEP)" % d)
        else:
            for d in _ALL_TMPDIRS:
                shutil.rmtree(d, ignore_errors=True)
        _ALL_TMPDIRS.clear()
        _CLEANED = True


def _on_signal(signum, frame):
    sys.stdout.write("harness: signal %d, cleaning up\n" % signum)
    sys.stdout.flush()
    for c in list(_CLUSTERS):
        try:
            c.print_log_tails()
        except Exception:
            pass
    cleanup_all()
    os._exit(128 + signum)


_CLUSTERS = []
atexit.register(cleanup_all)
for _s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_s, _on_signal)


def mkdtemp(prefix):
    d = tempfile.mkdtemp(prefix="amity-it-%s-" % prefix)
    _ALL_TMPDIRS.append(d)
    return d


class Abort(AssertionError):
    """Raised by a wait_until predicate to stop waiting at once."""


def wait_until(pred, timeout, interval=0.1, what="condition"):
    """Polls pred() until true; returns its value. Bounded by timeout.
    Exceptions from pred are retried (and reported at the timeout), except
    Abort, which ends the wait at once."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Abort:
            raise
        except Exception as e:  # noqa: BLE001 - reported below
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s%s" % (
                timeout, what, ("" if last_exc is None else " (last error: %r)" % (last_exc,))))
        time.sleep(interval)


def tail(path, n=40):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return "<cannot read %s: %s>" % (path, e)
    lines = data.decode("utf-8", "replace").splitlines()
    return "\n".join(lines[-n:])


SANITIZER_RE = re.compile(r"ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer|"
                          r"AddressSanitizer:DEADLYSIGNAL|SUMMARY: UndefinedBehaviorSanitizer")

# --------------------------------------------------------------------------
# Daemons


class Daemon:
    def __init__(self, name, prog, args, log_path, cwd):
        self.name = name
        self.prog = prog
        self.args = list(args)
        self.log_path = log_path
        self.cwd = cwd
        self.proc = None
        self.starts = 0
        self.log_offset = 0

    def argv(self):
        return [binary(self.prog)] + self.args

    def start(self):
        self.starts += 1
        with open(self.log_path, "ab") as f:
            f.write(("=== harness: start #%d: %s\n" % (self.starts, " ".join(self.argv()))).encode())
            self.log_offset = f.tell()
        logf = open(self.log_path, "ab")
        try:
            self.proc = _register(subprocess.Popen(
                self.argv(), stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                cwd=self.cwd, preexec_fn=_child_setup))
        finally:
            logf.close()
        return self.proc

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_since_start(self):
        with open(self.log_path, "rb") as f:
            f.seek(self.log_offset)
            return f.read().decode("utf-8", "replace")


READY_RE = re.compile(r"\bready\b", re.IGNORECASE)


def port_free(port):
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def pick_base(base_port, shards, tries=5):
    """base_port, or base_port + 1000*i when something else (another
    session's stack, say) holds one of the ports this layout needs."""
    for i in range(tries):
        b = base_port + 1000 * i
        ports = [b, b + 1, b + 2] + [b + 10 + 10 * k + j for k in range(shards) for j in range(4)]
        busy = [p for p in ports if not port_free(p)]
        if not busy:
            if i:
                log("ports of base %d busy; using base %d" % (base_port, b))
            return b
        log("base %d: ports %s are in use" % (b, busy))
    raise AssertionError("no free port range near %d" % base_port)


class Cluster:
    """One amity deployment on 127.0.0.1 ports base..base+10+10*shards+3."""

    def __init__(self, name, base_port, shards=1, validators=2, batch_ms=5, extra=None):
        self.name = name
        base_port = pick_base(base_port, shards)
        self.base = base_port
        self.n_shards = shards
        self.n_validators = validators
        self.dir = mkdtemp(name)
        self.ingest_ep = ep(base_port)
        self.work_ep = ep(base_port + 1)
        self.notify_ep = ep(base_port + 2)
        self.shard_bases = [base_port + 10 + 10 * k for k in range(shards)]
        self.shards_list = ",".join(ep(b) for b in self.shard_bases)
        self.daemons = {}
        self.order = []
        self.failures = []       # problems found during stop/cleanup
        self.client_logs = []
        self._nclient = 0
        self.subscribers = []
        extra = extra or {}
        for k, b in enumerate(self.shard_bases):
            self._add("aggregate%d" % k, "amity-aggregate",
                      ["--bind", ep(b), "--index", str(k),
                       "--state", os.path.join(self.dir, "shard-%d" % k),
                       "--batch-ms", str(batch_ms)] + extra.get("aggregate", []))
        self._add("ingest", "amity-ingest",
                  ["--bind", self.ingest_ep, "--work", self.work_ep,
                   "--shards", self.shards_list] + extra.get("ingest", []))
        for i in range(validators):
            self._add("validate%d" % i, "amity-validate",
                      ["--ingest", self.work_ep, "--shards", self.shards_list]
                      + extra.get("validate", []))
        self._add("notify", "amity-notify",
                  ["--bind", self.notify_ep, "--shards", self.shards_list]
                  + extra.get("notify", []))
        _CLUSTERS.append(self)

    def _add(self, name, prog, args):
        d = Daemon(name, prog, args, os.path.join(self.dir, name + ".log"), self.dir)
        self.daemons[name] = d
        self.order.append(name)

    def state_dir(self, k):
        return os.path.join(self.dir, "shard-%d" % k)

    # -- lifecycle -------------------------------------------------------

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        ok = et is None
        try:
            if ok:
                self.stop_all(check=True)
                self.check_sanitizers()
                if self.failures:
                    self.print_log_tails()
                    raise AssertionError("cluster %s: %s" % (self.name, "; ".join(self.failures)))
            else:
                log("test failed: %s: %s" % (et.__name__, ev))
                self.print_log_tails()
        finally:
            for s in self.subscribers:
                s.kill()
            for d in self.daemons.values():
                if d.alive():
                    d.proc.kill()
                    try:
                        d.proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        pass
            if self in _CLUSTERS:
                _CLUSTERS.remove(self)
        return False

    def start_all(self, ready_timeout=60):
        require_binaries(sorted({d.prog for d in self.daemons.values()}))
        for name in self.order:
            self.start(name, ready_timeout=ready_timeout)
        self.wait_query_ready(timeout=ready_timeout)

    def start(self, name, ready_timeout=60):
        d = self.daemons[name]
        if d.alive():
            raise AssertionError("%s already running" % name)
        d.start()
        self.wait_ready(name, ready_timeout)

    def wait_ready(self, name, timeout=60):
        d = self.daemons[name]

        def ready():
            if not d.alive():
                raise Abort("%s exited with %s before it was ready:\n%s" % (
                    name, d.proc.returncode, tail(d.log_path, 30)))
            return READY_RE.search(d.log_since_start()) is not None
        wait_until(ready, timeout, 0.05, "%s to log 'ready'" % name)

    def wait_query_ready(self, timeout=60):
        def ok():
            r = self.run_client(["amity-query", "--notify", self.notify_ep, ""], timeout=15,
                                quiet=True)
            return r.returncode == 0
        wait_until(ok, timeout, 0.3, "amity-query to answer")

    def pid(self, name):
        return self.daemons[name].proc.pid

    def kill(self, name, sig=signal.SIGKILL, wait=5.0):
        d = self.daemons[name]
        if not d.alive():
            raise AssertionError("kill %s: not running (rc %s)" % (name, d.proc.returncode))
        os.kill(d.proc.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            try:
                return d.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                return None
        return None

    def stop(self, name, timeout=5.0):
        """SIGTERM; the daemon must exit 0 within timeout seconds."""
        d = self.daemons[name]
        if not d.alive():
            msg = "%s was not running at stop (rc %s)" % (name, d.proc.returncode)
            self.failures.append(msg)
            return d.proc.returncode
        t0 = time.monotonic()
        os.kill(d.proc.pid, signal.SIGTERM)
        try:
            rc = d.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.failures.append("%s did not exit within %.0fs of SIGTERM" % (name, timeout))
            d.proc.kill()
            d.proc.wait(timeout=5)
            return None
        dt = time.monotonic() - t0
        if rc != 0:
            self.failures.append("%s exited %s after SIGTERM (expected 0)" % (name, rc))
        else:
            log("%s: SIGTERM -> exit 0 in %.2fs" % (name, dt))
        return rc

    def restart(self, name, ready_timeout=60):
        d = self.daemons[name]
        if d.alive():
            self.kill(name, signal.SIGKILL)
        self.start(name, ready_timeout)

    def stop_all(self, check=True):
        for s in self.subscribers:
            s.close()
        # clients of the pipeline first, state last
        order = ["notify", "ingest"] + [n for n in self.order if n.startswith("validate")] + \
                [n for n in self.order if n.startswith("aggregate")]
        for n in order:
            if self.daemons[n].proc is not None:
                self.stop(n)

    def check_daemons_alive(self):
        dead = ["%s (rc %s)" % (n, d.proc.returncode) for n, d in self.daemons.items()
                if d.proc is not None and not d.alive()]
        if dead:
            raise AssertionError("daemons died unexpectedly: " + ", ".join(dead))

    def check_sanitizers(self):
        paths = [d.log_path for d in self.daemons.values()] + self.client_logs
        for p in paths:
            try:
                with open(p, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            m = SANITIZER_RE.search(text)
            if m:
                i = max(0, m.start() - 200)
                self.failures.append("sanitizer report in %s: %s" % (
                    os.path.basename(p), text[i:m.start() + 1500]))

    def print_log_tails(self, n=40):
        for name in self.order:
            d = self.daemons[name]
            if d.starts == 0:
                continue
            sys.stdout.write("----- %s log (%s) tail -----\n%s\n" % (
                name, d.log_path, tail(d.log_path, n)))
        for p in self.client_logs[-6:]:
            sys.stdout.write("----- %s tail -----\n%s\n" % (os.path.basename(p), tail(p, 15)))
        for s in self.subscribers:
            sys.stdout.write("----- subscriber %s stderr tail -----\n%s\n" % (
                s.label, tail(s.err_path, 15)))
        sys.stdout.flush()

    # -- clients ---------------------------------------------------------

    def _client_log(self, prog):
        self._nclient += 1
        p = os.path.join(self.dir, "client-%03d-%s.log" % (self._nclient, prog))
        self.client_logs.append(p)
        return p

    def run_client(self, argv, timeout=60, input_bytes=None, quiet=False):
        """Runs a client to completion (bounded); returns CompletedProcess(text)."""
        prog = argv[0]
        logp = self._client_log(prog)
        try:
            r = subprocess.run([binary(prog)] + argv[1:], input=input_bytes,
                               stdin=None if input_bytes is not None else subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=timeout, preexec_fn=_child_setup, cwd=self.dir)
        except subprocess.TimeoutExpired as e:
            with open(logp, "wb") as f:
                f.write(b"TIMEOUT\n" + (e.stdout or b"") + b"\n--- stderr\n" + (e.stderr or b""))
            raise AssertionError("%s timed out after %ss" % (" ".join(argv), timeout)) from None
        with open(logp, "wb") as f:
            f.write(("$ %s\nrc=%d\n" % (" ".join(argv), r.returncode)).encode())
            f.write(r.stdout + b"\n--- stderr\n" + r.stderr)
        r.stdout = r.stdout.decode("utf-8", "replace")
        r.stderr = r.stderr.decode("utf-8", "replace")
        if not quiet and r.returncode != 0:
            log("%s -> rc %d; stderr: %s" % (" ".join(argv), r.returncode, r.stderr[-500:]))
        return r

    def query(self, prefix="", timeout=30):
        r = self.run_client(["amity-query", "--notify", self.notify_ep, prefix], timeout=timeout)
        if r.returncode != 0:
            raise AssertionError("amity-query %r exited %d: %s" % (prefix, r.returncode,
                                                                    r.stderr[-1000:]))
        try:
            obj = json.loads(r.stdout)
        except ValueError as e:
            raise AssertionError("amity-query output is not one JSON object (%s): %r" % (
                e, r.stdout[:500])) from None
        return normalize_totals(obj, "amity-query")

    def submit_async(self, office, path, extra=()):
        return SubmitProc(self, office, path, list(extra))

    def submit(self, office, path, extra=(), timeout=240):
        s = self.submit_async(office, path, extra)
        return s.wait(timeout)

    def subscribe(self, prefixes=("",), label=None, strict_seq=True):
        s = Subscriber(self, list(prefixes), label or "sub%d" % len(self.subscribers),
                       strict_seq=strict_seq)
        self.subscribers.append(s)
        return s


class SubmitResult:
    def __init__(self, rc, stdout, stderr, duration):
        self.returncode = rc
        self.stdout = stdout
        self.stderr = stderr
        self.duration = duration
        lines = [l for l in stdout.splitlines() if l.strip()]
        self.summary = None
        m = re.match(r"^accepted (\d+), duplicate (\d+), rejected (\d+)$", lines[-1]) if lines \
            else None
        if m:
            self.summary = tuple(int(x) for x in m.groups())
        self.reject_lines = lines[:-1] if m else lines

    def __repr__(self):
        return "SubmitResult(rc=%s, summary=%s, %d reject lines)" % (
            self.returncode, self.summary, len(self.reject_lines))


class SubmitProc:
    def __init__(self, cluster, office, path, extra):
        self.cluster = cluster
        self.argv = ["amity-submit", "--ingest", cluster.ingest_ep, "--office", office] + \
            extra + [path]
        self.out_path = cluster._client_log("amity-submit")
        self.err_path = self.out_path + ".stderr"
        cluster.client_logs.append(self.err_path)
        self.t0 = time.monotonic()
        self.t_end = None   # first time running() saw it finished
        with open(self.out_path, "wb") as o, open(self.err_path, "wb") as e:
            self.proc = _register(subprocess.Popen(
                [binary(self.argv[0])] + self.argv[1:], stdin=subprocess.DEVNULL, stdout=o,
                stderr=e, preexec_fn=_child_setup, cwd=cluster.dir))

    def running(self):
        if self.proc.poll() is None:
            return True
        if self.t_end is None:
            self.t_end = time.monotonic()
        return False

    def wait(self, timeout):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            raise AssertionError("%s did not finish within %ss; stderr tail:\n%s" % (
                " ".join(self.argv), timeout, tail(self.err_path, 20))) from None
        dt = (self.t_end or time.monotonic()) - self.t0
        with open(self.out_path, "rb") as f:
            out = f.read().decode("utf-8", "replace")
        with open(self.err_path, "rb") as f:
            err = f.read().decode("utf-8", "replace")
        res = SubmitResult(rc, out, err, dt)
        log("%s -> rc %d in %.2fs, summary %s" % (" ".join(self.argv[3:]), rc, dt, res.summary))
        return res


class Subscriber:
    """amity-subscribe PREFIX...; a thread folds its JSON lines:
    snapshot lines replace everything, update lines overwrite keys."""

    def __init__(self, cluster, prefixes, label, strict_seq=True):
        self.cluster = cluster
        self.label = label
        self.prefixes = prefixes
        self.strict_seq = strict_seq
        self.state = {}
        self.lock = threading.Lock()
        self.lines = 0
        self.snapshots = 0
        self.updates = 0
        self.errors = []
        self.last_seq = None
        self.out_path = os.path.join(cluster.dir, "subscriber-%s.out" % label)
        self.err_path = os.path.join(cluster.dir, "subscriber-%s.err" % label)
        cluster.client_logs.append(self.err_path)
        self._out = open(self.out_path, "w", encoding="utf-8")
        errf = open(self.err_path, "wb")
        self.proc = _register(subprocess.Popen(
            [binary("amity-subscribe"), "--notify", cluster.notify_ep] + prefixes,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf,
            preexec_fn=_child_setup, cwd=cluster.dir))
        errf.close()
        self.thread = threading.Thread(target=self._reader, daemon=True)
        self.thread.start()

    def _reader(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace")
            self._out.write(line)
            self._out.flush()
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
                seq = obj["seq"]
                totals = normalize_totals(obj["totals"], "amity-subscribe")
                if not isinstance(seq, int):
                    raise ValueError("seq is not an integer")
            except Exception as e:  # noqa: BLE001
                with self.lock:
                    self.errors.append("bad line %r: %s" % (line[:200], e))
                continue
            with self.lock:
                self.lines += 1
                if obj.get("snapshot") is True:
                    self.snapshots += 1
                    if self.strict_seq and self.last_seq is not None and seq < self.last_seq:
                        self.errors.append("snapshot seq %d < previous seq %d" % (
                            seq, self.last_seq))
                    self.state = dict(totals)
                else:
                    self.updates += 1
                    if self.snapshots == 0:
                        self.errors.append("update line before any snapshot: %r" % line[:200])
                    if self.strict_seq and self.last_seq is not None and seq <= self.last_seq:
                        self.errors.append("update seq %d <= previous seq %d" % (
                            seq, self.last_seq))
                    self.state.update(totals)
                self.last_seq = seq

    def snapshot_state(self):
        with self.lock:
            return dict(self.state)

    def stats(self):
        with self.lock:
            return "lines %d (snapshots %d, updates %d), last seq %s" % (
                self.lines, self.snapshots, self.updates, self.last_seq)

    def wait_equal(self, expected, timeout=30, what="reference"):
        """Waits until the folded state equals expected (non-zero values)."""
        exp = nonzero(expected)
        try:
            wait_until(lambda: nonzero(self.snapshot_state()) == exp, timeout, 0.2,
                       "subscriber %s to equal %s" % (self.label, what))
        except AssertionError:
            assert_totals_equal(self.snapshot_state(), expected,
                                "subscriber %s vs %s (after %ss)" % (self.label, what, timeout))
        if self.proc.poll() is not None:
            raise AssertionError("subscriber %s exited rc %s" % (self.label, self.proc.returncode))
        with self.lock:
            if self.errors:
                raise AssertionError("subscriber %s: %s" % (self.label, "; ".join(self.errors[:5])))
        log("subscriber %s equals %s: %s" % (self.label, what, self.stats()))

    def wait_first_snapshot(self, timeout=30):
        wait_until(lambda: self.snapshots > 0, timeout, 0.05,
                   "subscriber %s's first snapshot" % self.label)

    def stop_signal(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def cont_signal(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def close(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
                self.proc.terminate()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self.thread.join(timeout=5)
        try:
            self._out.close()
        except Exception:
            pass

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
                self.proc.kill()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass


# --------------------------------------------------------------------------
# Domain reference (independent of the C code)

EXPONENT = {"USD": 2, "EUR": 2, "VND": 0, "JPY": 0}

# UN geoscheme (M49) regions, written down independently of common/src/iso.c.
REGION = {
    # americas
    "US": "americas", "CU": "americas", "BR": "americas", "CA": "americas", "AR": "americas",
    "CL": "americas", "MX": "americas", "VE": "americas", "PE": "americas", "CO": "americas",
    "NI": "americas", "PA": "americas", "GL": "americas",
    # asia (Western Asia included: CY, TR, GE, AM, AZ are asia in M49)
    "JP": "asia", "LA": "asia", "KR": "asia", "KP": "asia", "CN": "asia", "KH": "asia",
    "IN": "asia", "ID": "asia", "MM": "asia", "MN": "asia", "MY": "asia", "PH": "asia",
    "SG": "asia", "TH": "asia", "VN": "asia", "TL": "asia", "BN": "asia", "BD": "asia",
    "LK": "asia", "NP": "asia", "PK": "asia", "KZ": "asia", "IR": "asia", "IQ": "asia",
    "IL": "asia", "SA": "asia", "AE": "asia", "CY": "asia", "TR": "asia", "GE": "asia",
    "AM": "asia", "AZ": "asia",
    # europe
    "FR": "europe", "DE": "europe", "RU": "europe", "GB": "europe", "SE": "europe",
    "BE": "europe", "CH": "europe", "CZ": "europe", "DK": "europe", "FI": "europe",
    "HU": "europe", "IE": "europe", "IT": "europe", "NL": "europe", "NO": "europe",
    "PL": "europe", "AT": "europe", "ES": "europe", "PT": "europe", "GR": "europe",
    "UA": "europe", "BY": "europe",
    # oceania
    "AU": "oceania", "NZ": "oceania", "FJ": "oceania", "PG": "oceania",
    # africa
    "ZA": "africa", "EG": "africa", "MZ": "africa", "AO": "africa", "DZ": "africa",
    "NG": "africa", "KE": "africa", "ET": "africa", "GH": "africa", "TZ": "africa",
    "MA": "africa", "TN": "africa", "SD": "africa",
    # assigned, but in no region of the geoscheme
    "AQ": "",
}
COUNTRIES = sorted(c for c, r in REGION.items() if r)

# kind -> (count metrics, has amount, country required)
KINDS = {
    "delegation_in": (("delegations", "people"), False, True),
    "delegation_out": (("delegations", "people"), False, True),
    "activity": (("activities",), False, False),
    "aid_commitment": (("projects",), True, True),
    "aid_disbursement": ((), True, True),
    "relief": ((), True, False),
    "award": (("awards",), False, True),
    "contact": (("partners",), False, True),
    "org_founded": (("orgs",), False, False),
}
KIND_NAMES = sorted(KINDS)
ALL_METRICS = ("delegations", "people", "activities", "projects", "awards", "partners", "orgs")

NOTES = [
    "Đoàn đại biểu Hội hữu nghị Nhật - Việt thăm Hà Nội",
    "Hội Việt - Mỹ tổng kết công tác năm 2023, triển khai nhiệm vụ năm 2024",
    "Tiếp đoàn Hội hữu nghị Lào - Việt Nam tại Thành phố Hồ Chí Minh",
    "Trao Huân chương Hữu nghị cho bạn bè quốc tế",
    "Cứu trợ đồng bào miền Trung bị lũ lụt",
    "Giao lưu nhân dân Việt Nam - Cu Ba, kỷ niệm 63 năm quan hệ ngoại giao",
    "Hội nghị xúc tiến vận động viện trợ phi chính phủ nước ngoài",
    "Thành lập Liên hiệp các tổ chức hữu nghị tỉnh Khánh Hòa",
]


def money_str(minor, cur):
    e = EXPONENT[cur]
    if e == 0:
        return str(minor)
    return "%d.%0*d" % (minor // 10 ** e, e, minor % 10 ** e)


def to_minor(amount, cur):
    e = EXPONENT[cur]
    if isinstance(amount, int):
        return amount * 10 ** e
    if "." in amount:
        whole, frac = amount.split(".")
        assert len(frac) <= e, (amount, cur)
        return int(whole) * 10 ** e + int(frac.ljust(e, "0"))
    return int(amount) * 10 ** e


def key_exponent(key):
    m = re.search(r"/amount\.([A-Z]{3})$", key)
    if not m:
        return None
    if m.group(1) not in EXPONENT:
        raise AssertionError("unexpected currency in key %r" % key)
    return EXPONENT[m.group(1)]


MONEY_RE = re.compile(r"^(-?)(\d+)(?:\.(\d+))?$")


def normalize_totals(obj, source):
    """JSON totals object -> {key: int}, money in minor units. Checks the
    formatting contract: money is a decimal string with exactly the
    currency's decimals, counts are integers."""
    if not isinstance(obj, dict):
        raise AssertionError("%s: totals is not a JSON object: %r" % (source, obj))
    out = {}
    for k, v in obj.items():
        e = key_exponent(k)
        if e is None:
            if not isinstance(v, int) or isinstance(v, bool):
                raise AssertionError("%s: count %s = %r is not an integer" % (source, k, v))
            out[k] = v
        else:
            if not isinstance(v, str):
                raise AssertionError("%s: money %s = %r is not a decimal string" % (source, k, v))
            m = MONEY_RE.match(v)
            if not m or len(m.group(3) or "") != e or (e > 0 and m.group(3) is None):
                raise AssertionError("%s: money %s = %r does not have exactly %d decimals" % (
                    source, k, v, e))
            n = int(m.group(2)) * 10 ** e + int(m.group(3) or "0")
            out[k] = -n if m.group(1) else n
    return out


def nonzero(d):
    return {k: v for k, v in d.items() if v != 0}


def assert_totals_equal(actual, expected, label):
    a, e = nonzero(actual), nonzero(expected)
    if a == e:
        return
    missing = sorted(k for k in e if k not in a)
    extra = sorted(k for k in a if k not in e)
    diff = sorted(k for k in e if k in a and a[k] != e[k])
    lines = ["%s: totals differ: %d keys expected, %d actual; %d missing, %d unexpected, "
             "%d different" % (label, len(e), len(a), len(missing), len(extra), len(diff))]
    for k in missing[:10]:
        lines.append("  missing    %s = %d" % (k, e[k]))
    for k in extra[:10]:
        lines.append("  unexpected %s = %d" % (k, a[k]))
    for k in diff[:15]:
        lines.append("  different  %s: expected %d, got %d" % (k, e[k], a[k]))
    raise AssertionError("\n".join(lines))


def periods(y, m):
    return ["%04d" % y, "%04d-H%d" % (y, 1 if m <= 6 else 2), "%04d-Q%d" % (y, (m - 1) // 3 + 1),
            "%04d-%02d" % (y, m)]


def record_deltas(office, canon):
    """Totals keys and values one live canonical record contributes."""
    c = dict(canon)
    y, m, _ = (int(x) for x in c["date"].split("-"))
    geos = ["all"]
    if c.get("country"):
        if c["country"] not in REGION:
            raise AssertionError("test data: no region known for country %r" % c["country"])
        if REGION[c["country"]]:
            geos.append(REGION[c["country"]])
        geos.append(c["country"])
    metrics = [(name, c[name]) for name in ALL_METRICS if name in c]
    if "amount" in c:
        metrics.append(("amount." + c["currency"], c["amount"]))
    out = {}
    for p in periods(y, m):
        for o in (office, "all"):
            for g in geos:
                for name, val in metrics:
                    k = "%s/%s/%s/%s/%s" % (p, o, c["kind"], g, name)
                    out[k] = out.get(k, 0) + val
    return out


def canonical(rec):
    """Canonical content of a VALID record dict (what the server compares):
    x- fields and the office field left out, amount in minor units."""
    c = {"rev": int(rec.get("rev", 1))}
    if rec.get("retract"):
        c["retract"] = True
        return tuple(sorted(c.items()))
    for k, v in rec.items():
        if k in ("id", "rev", "office") or k.startswith("x-"):
            continue
        if k == "amount":
            v = to_minor(v, rec["currency"])
        c[k] = v
    return tuple(sorted(c.items()))


class Model:
    """Server state per (office, id): highest rev wins; same rev other
    content = conflict (rejected); retraction = tombstone."""

    def __init__(self):
        self.state = {}  # (office, id) -> canon tuple

    def apply(self, office, rec, valid=True):
        """Returns 'accepted' | 'duplicate' | 'rejected' as the server should."""
        if not valid:
            return "rejected"
        key = (office, rec["id"])
        new = canonical(rec)
        rev = dict(new)["rev"]
        old = self.state.get(key)
        if old is None:
            self.state[key] = new
            return "accepted"
        old_rev = dict(old)["rev"]
        if rev < old_rev:
            return "duplicate"
        if rev == old_rev:
            return "duplicate" if new == old else "rejected"
        self.state[key] = new
        return "accepted"

    def totals(self):
        out = {}
        for (office, _id), canon in self.state.items():
            if dict(canon).get("retract"):
                continue
            for k, v in record_deltas(office, canon).items():
                out[k] = out.get(k, 0) + v
        return out

    def live_records(self):
        return {k: v for k, v in self.state.items() if not dict(v).get("retract")}


def filter_prefixes(totals, prefixes):
    return {k: v for k, v in totals.items() if any(k.startswith(p) for p in prefixes)}


# --------------------------------------------------------------------------
# Data generation


def random_date(rng, y0=2015, y1=2024):
    y = rng.randint(y0, y1)
    m = rng.randint(1, 12)
    d = rng.randint(1, calendar.monthrange(y, m)[1])
    return "%04d-%02d-%02d" % (y, m, d)


METRIC_RANGES = {"delegations": (1, 5), "people": (1, 60), "activities": (1, 30),
                 "projects": (1, 4), "awards": (1, 10), "partners": (1, 20), "orgs": (1, 3)}
AMOUNT_RANGES = {"USD": (100, 500000000), "EUR": (100, 200000000),
                 "VND": (1000000, 60000000000), "JPY": (10000, 100000000)}


def random_record(rng, rid, kind=None, rev=None):
    """A valid record dict of the given (or a random) kind."""
    kind = kind or rng.choice(KIND_NAMES)
    metrics, has_amount, needs_country = KINDS[kind]
    r = {"id": rid, "kind": kind, "date": random_date(rng)}
    if rev is not None:
        r["rev"] = rev
    if needs_country or rng.random() < 0.6:
        r["country"] = rng.choice(COUNTRIES)
    for name in metrics:
        lo, hi = METRIC_RANGES[name]
        r[name] = rng.randint(lo, hi)
    if has_amount:
        cur = rng.choice(sorted(EXPONENT))
        lo, hi = AMOUNT_RANGES[cur]
        minor = rng.randint(lo, hi)
        if EXPONENT[cur] == 0 and rng.random() < 0.3:
            r["amount"] = minor            # an int amount: whole units
        else:
            r["amount"] = money_str(minor, cur)
        r["currency"] = cur
    if kind == "activity" and rng.random() < 0.5:   # scope: activities only
        r["scope"] = rng.choice(["bilateral", "multilateral"])
    if kind == "org_founded" and rng.random() < 0.7:
        r["level"] = rng.choice(["central", "local"])
    if rng.random() < 0.5:
        r["note"] = rng.choice(NOTES)
    if rng.random() < 0.1:
        r["x-source"] = "amity-it"
    return r


def corrected(rng, rec, rev):
    """Another revision of rec with other numbers (same kind)."""
    r = random_record(rng, rec["id"], rec["kind"], rev=rev)
    return r


def jsonl(rec):
    return json.dumps(rec, ensure_ascii=False, separators=(",", ":"))


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        for l in lines:
            f.write(l + "\n")
    return path


def gen_stream(rng, office, n, prefix, correct_frac=0.1, retract_frac=0.05, resend_frac=0.02):
    """A valid stream (list of record dicts) of about n lines for one office:
    new records, later corrections (rev 2), retractions (rev 3), exact
    resends. Every line is valid; order within the stream does not change
    the final totals."""
    base = [random_record(rng, "%s-%06d" % (prefix, i)) for i in range(n)]
    out = list(base)
    ids = list(range(len(base)))
    rng.shuffle(ids)
    n_corr = int(n * correct_frac)
    n_retr = int(n * retract_frac)
    for i in ids[:n_corr]:
        out.append(corrected(rng, base[i], 2))
    for i in ids[n_corr // 2:n_corr // 2 + n_retr]:
        out.append({"id": base[i]["id"], "rev": 3, "retract": True})
    for i in rng.sample(range(len(base)), int(n * resend_frac)):
        out.append(base[i])
    return out


# --------------------------------------------------------------------------
# Sharding (DESIGN: FNV-1a 64 of office, NUL, id, modulo n)

def shard_of(office, rid, n):
    h = 0xcbf29ce484222325
    for b in office.encode() + b"\0" + rid.encode():
        h ^= b
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h % n


# --------------------------------------------------------------------------
# Test runner


def run(main, budget_s=280):
    """Runs main() with an overall alarm (a bit under ctest's TIMEOUT, from
    AMITY_IT_BUDGET) so that cleanup and log tails still happen; prints
    PASS/FAIL; exits 0/1."""
    if os.environ.get("AMITY_IT_BUDGET"):
        budget_s = max(30, int(os.environ["AMITY_IT_BUDGET"]) - 15)
    def on_alarm(signum, frame):
        raise AssertionError("test exceeded its %ds budget" % budget_s)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(budget_s)
    t0 = time.monotonic()
    rc = 1
    try:
        main()
        rc = 0
    except Exception:  # noqa: BLE001
        traceback.print_exc(file=sys.stdout)
    finally:
        signal.alarm(0)
        cleanup_all()
    sys.stdout.write("%s in %.1fs\n" % ("PASS" if rc == 0 else "FAIL", time.monotonic() - t0))
    sys.stdout.flush()
    sys.exit(rc)


# --------------------------------------------------------------------------
# Raw sockets (Debian's python3-zmq / python3-msgpack, only where a raw
# socket helps)

def raw_request(endpoint, frames, timeout=5.0, max_replies=1000, until=None):
    """Sends one multi-frame message on a fresh DEALER; collects replies
    until `until(decoded)` is true, or timeout. Returns the list of reply
    frame lists (raw bytes)."""
    import zmq
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    try:
        s.send_multipart(frames)
        replies = []
        deadline = time.monotonic() + timeout
        while len(replies) < max_replies:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if not s.poll(int(left * 1000)):
                break
            msg = s.recv_multipart()
            replies.append(msg)
            if until is not None and until(msg):
                break
        return replies
    finally:
        s.close(0)


def mp_pack(obj):
    import msgpack
    return msgpack.packb(obj, use_bin_type=True)


def mp_unpack(data):
    import msgpack
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def shard_snapshot(base_port, prefix="", timeout=10.0):
    """Partial totals of one aggregate shard via its snapshot ROUTER
    (base+3): `snapreq` {v,t,req,prefix} -> `snap` chunks until more=false.
    Returns {key: int} (money in minor units, as stored)."""
    req = 4711

    def last(msg):
        try:
            m = mp_unpack(msg[-1])
            return m.get("t") in ("snap", "error") and not m.get("more", False)
        except Exception:
            return False
    replies = raw_request(ep(base_port + 3),
                          [mp_pack({"v": 1, "t": "snapreq", "req": req, "prefix": prefix})],
                          timeout=timeout, until=last)
    out = {}
    seqs = set()
    complete = False
    for msg in replies:
        m = mp_unpack(msg[-1])
        if m.get("t") == "error":
            raise AssertionError("shard %d refused snapreq: %r" % (base_port, m))
        if m.get("t") != "snap":
            raise AssertionError("shard %d: unexpected reply %r" % (base_port, m))
        seqs.add(m.get("seq"))
        kv = m.get("kv")
        if isinstance(kv, dict):
            out.update(kv)
        elif isinstance(kv, list):  # [[k, v], ...] or flat
            for item in kv:
                out[item[0]] = item[1]
        if not m.get("more", False):
            complete = True
    if not complete:
        raise AssertionError("shard %d: no complete snapshot within %ss (%d chunks)" % (
            base_port, timeout, len(replies)))
    if len(seqs) != 1:
        raise AssertionError("shard %d: snapshot chunks carry different seqs %s" % (
            base_port, seqs))
    return out


def mdb_dump(state_dir, db, timeout=60):
    """[(key bytes, value bytes)] of one named LMDB database, read with the
    operator's tool mdb_dump (lmdb-utils); None when mdb_dump is missing."""
    exe = shutil.which("mdb_dump")
    if not exe:
        return None
    r = subprocess.run([exe, "-s", db, state_dir], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                       preexec_fn=_child_setup)
    if r.returncode != 0:
        raise AssertionError("mdb_dump -s %s %s: rc %d: %s" % (db, state_dir, r.returncode,
                                                                r.stderr.decode()[-300:]))
    lines = r.stdout.decode("ascii").splitlines()
    i = lines.index("HEADER=END") + 1
    out = []
    while lines[i] != "DATA=END":
        out.append((bytes.fromhex(lines[i].strip()), bytes.fromhex(lines[i + 1].strip())))
        i += 2
    return out
