#!/usr/bin/python3
"""Traces the four daemons (strace -f) through a short loopback run — start,
records submitted, a query, a subscription, SIGHUP, SIGTERM — and checks that
every system call they made is allowed by the SystemCallFilter= lines of
their unit in deploy/systemd (as expanded by `systemd-analyze syscall-filter`),
and that every socket address family they opened is in RestrictAddressFamilies=.

It also takes deploy/README.md's hot backup (mdb_copy -c of the running
shard) and checks the copy holds the shard's databases.

A call outside the filter would kill the daemon (or fail with EPERM) in
production, so this is the check that the hardening does not break the
program. Sanitizer builds (ASan/UBSan) make extra calls of their own; those
are reported but do not fail the test (set AMITY_SYSCALLS_STRICT=1 to fail).

Exit 0 pass, 1 fail, 77 skip (strace or systemd-analyze missing).
Environment: AMITY_BIN_DIR (built binaries), AMITY_SOURCE_DIR.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("AMITY_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.environ.get("AMITY_BIN_DIR") or os.path.join(SRC, "build", "bin")
UNITS = os.path.join(SRC, "deploy", "systemd")
BASE = int(os.environ.get("AMITY_SYSCALLS_PORT", "19300"))  # 19300..19313: this test only
DEADLINE = time.monotonic() + float(os.environ.get("AMITY_SYSCALLS_BUDGET", "100"))

# Made by the sanitizer runtimes, never by the program itself.
SANITIZER_CALLS = {"personality", "sigaltstack", "prctl", "setrlimit", "sched_getaffinity",
                   "process_vm_readv", "ptrace", "sched_yield"}

FAILS = []


def log(msg):
    print(msg, flush=True)


def fail(msg):
    FAILS.append(msg)
    log("FAIL: " + msg)


def skip(msg):
    log("SKIP: " + msg)
    sys.exit(77)


def ep(port):
    return "tcp://127.0.0.1:%d" % port


def expand_group(names):
    """Set of syscall names for a list of names and @groups."""
    out = set()
    groups = [n for n in names if n.startswith("@")]
    out.update(n for n in names if not n.startswith("@"))
    if groups:
        text = subprocess.run(["systemd-analyze", "syscall-filter"] + groups, check=True,
                              capture_output=True, text=True, timeout=30).stdout
        for line in text.splitlines():
            s = line.strip()
            if not s or s.startswith("#") or s.startswith("@") and line[0] != " ":
                continue
            if s.startswith("@"):
                out |= expand_group([s])
            else:
                out.add(s)
    return out


def unit_filter(path):
    """(allowed set, families set) from a unit file's SystemCallFilter= and
    RestrictAddressFamilies= lines, applied in order as systemd does."""
    allowed = None
    families = None
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if line.startswith("SystemCallFilter="):
            val = line.split("=", 1)[1].split()
            if val and val[0].startswith("~"):
                deny = expand_group([val[0][1:]] + val[1:])
                allowed = (allowed or set()) - deny
            else:
                allowed = (allowed or set()) | expand_group(val)
        elif line.startswith("RestrictAddressFamilies="):
            families = set(line.split("=", 1)[1].split())
    return allowed, families


TRACE_LINE = re.compile(r"^\d+\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()")
SOCKET_FAMILY = re.compile(r"socket\((AF_\w+)")


def parse_trace(path):
    calls, families = set(), set()
    for line in open(path, encoding="utf-8", errors="replace"):
        m = TRACE_LINE.match(line)
        if not m:
            continue
        name = m.group(1) or m.group(2)
        calls.add(name)
        f = SOCKET_FAMILY.search(line)
        if f:
            families.add(f.group(1))
    calls.discard("exit")  # strace prints exit_group's thread exits as "exit"
    return calls, families


class Proc:
    """A daemon under strace, with its own sd_notify socket (as systemd would
    give it with Type=notify and WatchdogSec=)."""

    def __init__(self, name, args, tmp):
        self.name = name
        self.trace = os.path.join(tmp, name + ".trace")
        self.out = open(os.path.join(tmp, name + ".log"), "w")
        self.notify_path = os.path.join(tmp, name + ".notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.notify.setblocking(False)
        self.states = []
        env = dict(os.environ, NOTIFY_SOCKET=self.notify_path, WATCHDOG_USEC="2000000")
        env.pop("WATCHDOG_PID", None)
        # LeakSanitizer cannot run under ptrace: it would turn exit 0 into 1
        env["ASAN_OPTIONS"] = ":".join(x for x in [env.get("ASAN_OPTIONS", ""),
                                                   "detect_leaks=0"] if x)
        self.p = subprocess.Popen(["strace", "-f", "-qq", "-o", self.trace,
                                   os.path.join(BIN, args[0])] + args[1:],
                                  stdout=self.out, stderr=subprocess.STDOUT, cwd=tmp, env=env)

    def drain(self):
        while True:
            try:
                data = self.notify.recv(4096)
            except BlockingIOError:
                return
            self.states.extend(data.decode("utf-8", "replace").split("\n"))

    def signal(self, sig):
        # strace's child is the daemon: signal it, not strace
        try:
            for child in open("/proc/%d/task/%d/children" % (self.p.pid, self.p.pid)).read().split():
                os.kill(int(child), sig)
        except (FileNotFoundError, ProcessLookupError):
            pass

    def stop(self):
        self.signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout=max(1, min(20, DEADLINE - time.monotonic())))
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            return None


def run_client(args, timeout=20, stdin=None):
    return subprocess.run([os.path.join(BIN, args[0])] + args[1:], input=stdin,
                          capture_output=True, text=True,
                          timeout=max(1, min(timeout, DEADLINE - time.monotonic())))


RECORDS = "\n".join([
    '{"id":"sys-1","kind":"delegation_in","date":"2024-03-08","country":"US",'
    '"delegations":1,"people":12}',
    '{"id":"sys-2","kind":"delegation_out","date":"2024-04-02","country":"FR",'
    '"delegations":1,"people":5}',
    '{"id":"sys-3","kind":"delegation_in","date":"not a date"}',
]) + "\n"


def backup_check(state, dest):
    """deploy/README.md's hot backup: mdb_copy -c while the shard runs."""
    if not shutil.which("mdb_copy"):
        log("note: mdb_copy (lmdb-utils) missing: hot backup not checked")
        return
    os.makedirs(dest)
    r = subprocess.run(["mdb_copy", "-c", state, dest], capture_output=True, text=True,
                       timeout=30)
    if r.returncode != 0:
        fail("mdb_copy -c of a running shard: %s" % r.stderr)
        return
    r = subprocess.run(["mdb_stat", "-a", dest], capture_output=True, text=True, timeout=30)
    names = re.findall(r"^Status of (\S+)", r.stdout, re.M)
    if r.returncode != 0 or not {"records", "totals"} <= set(names):
        fail("the hot copy is not a shard (mdb_stat -a: %s %s)" % (names, r.stderr))
    else:
        log("hot backup: mdb_copy -c of the running shard holds %s" % " ".join(names))


def main():
    if not shutil.which("strace"):
        skip("strace is not installed (apt-get install strace)")
    if not shutil.which("systemd-analyze"):
        skip("systemd-analyze is not installed")
    for b in ("amity-ingest", "amity-validate", "amity-aggregate", "amity-notify",
              "amity-submit", "amity-query"):
        if not os.access(os.path.join(BIN, b), os.X_OK):
            fail("%s missing in %s" % (b, BIN))
    if FAILS:
        return 1
    sanitized = b"__asan_init" in open(os.path.join(BIN, "amity-ingest"), "rb").read()
    strict = os.environ.get("AMITY_SYSCALLS_STRICT") == "1" or not sanitized

    tmp = tempfile.mkdtemp(prefix="amity-syscalls-")
    shard, ingest, work, notify = ep(BASE + 10), ep(BASE), ep(BASE + 1), ep(BASE + 2)
    procs = {}
    try:
        procs["aggregate"] = Proc("aggregate", ["amity-aggregate", "--bind", shard,
                                                "--state", os.path.join(tmp, "shard-0")], tmp)
        procs["ingest"] = Proc("ingest", ["amity-ingest", "--bind", ingest, "--work", work,
                                          "--shards", shard], tmp)
        procs["validate"] = Proc("validate", ["amity-validate", "--ingest", work,
                                              "--shards", shard], tmp)
        procs["notify"] = Proc("notify", ["amity-notify", "--bind", notify,
                                          "--shards", shard], tmp)
        time.sleep(2.0)
        for p in procs.values():
            p.drain()
        r = run_client(["amity-submit", "--ingest", ingest, "--office", "hoi-viet-my",
                        "--deadline-s", "20", "-"], stdin=RECORDS, timeout=30)
        log("submit: exit %d: %s" % (r.returncode, r.stdout.strip().splitlines()[-1:]))
        if r.returncode not in (0, 65):
            fail("amity-submit exited %d: %s" % (r.returncode, r.stderr[-500:]))
        r = run_client(["amity-query", "--notify", notify, "2024/"], timeout=20)
        log("query: exit %d" % r.returncode)
        if "amity-subscribe" in os.listdir(BIN):
            sub = subprocess.Popen([os.path.join(BIN, "amity-subscribe"), "--notify", notify,
                                    "2024/"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
            time.sleep(1.5)
            sub.terminate()
            sub.wait(timeout=10)
        backup_check(os.path.join(tmp, "shard-0"), os.path.join(tmp, "backup"))
        for p in procs.values():
            p.signal(signal.SIGHUP)  # reload (clients/peers directories) where supported
        time.sleep(2.5)  # > WATCHDOG_USEC/2: every daemon pinged at least once
    finally:
        codes = {name: p.stop() for name, p in procs.items()}
        for p in procs.values():
            p.drain()
            p.notify.close()
    log("exit codes: %s" % codes)

    for name, p in procs.items():
        unit = os.path.join(UNITS, "amity-%s.service" % name)
        if not os.path.exists(unit):
            unit = os.path.join(UNITS, "amity-%s@.service" % name)
        allowed, families = unit_filter(unit)
        calls, used_families = parse_trace(p.trace)
        outside = sorted(calls - allowed) if allowed is not None else []
        san = sorted(c for c in outside if c in SANITIZER_CALLS)
        real = [c for c in outside if c not in SANITIZER_CALLS]
        log("%s: %d distinct system calls; families %s" % (name, len(calls),
                                                           sorted(used_families)))
        if real:
            fail("%s: calls outside %s's SystemCallFilter: %s" % (name, os.path.basename(unit),
                                                                   " ".join(real)))
        if san:
            msg = "%s: calls outside the filter made by the sanitizer runtime: %s" % (
                name, " ".join(san))
            if strict:
                fail(msg)
            else:
                log("note: " + msg)
        if families is not None and used_families - families:
            fail("%s: socket families outside RestrictAddressFamilies=: %s" % (
                name, " ".join(sorted(used_families - families))))
        binary = open(os.path.join(BIN, "amity-" + name), "rb").read()
        states = [x for x in p.states if x]
        log("%s: sd_notify: %s" % (name, " ".join(sorted(set(states))) or "nothing"))
        if b"READY=1" in binary:
            for want in ("READY=1", "STOPPING=1"):
                if want not in states:
                    fail("%s: no %s on its NOTIFY_SOCKET (Type=notify units need it)" %
                         (name, want))
            if b"WATCHDOG=1" in binary:
                if "WATCHDOG=1" not in states:
                    fail("%s: WATCHDOG_USEC=2000000 but no WATCHDOG=1 ping in 4.5 s" % name)
            else:
                log("note: %s does not send WATCHDOG=1 yet; the units set WatchdogSec=30, "
                    "so systemd would kill it after 30 s" % name)
        else:
            log("note: amity-%s built without libsystemd: sd_notify not checked "
                "(Type=notify units need a libsystemd build)" % name)
        if codes[name] not in (0,):
            fail("%s exited %s on SIGTERM (log: %s)" % (name, codes[name],
                                                        open(p.out.name).read()[-800:]))
    if FAILS:
        log("kept for inspection: " + tmp)
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    log("syscalls: all calls and address families allowed by the units")
    return 0


if __name__ == "__main__":
    sys.exit(main())
