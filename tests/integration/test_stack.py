"""amity-stack (DESIGN.md "Command lines"): starts the four daemons from
its own directory (2 validators, 2 shards on --base-port), prints 'ready',
restarts a daemon that dies (kill -9 of an aggregate and of ingest: no
record lost), and on SIGTERM stops everything and exits 0."""

import os
import random
import signal
import subprocess
import time

import harness as h

BASE_PORT = 25200
OFFICES = ["hoi-viet-nga", "lien-hiep-da-nang"]


def daemons_of(stack_pid):
    """{program basename: [pids]} among amity-stack's descendants."""
    out = {}
    for pid in h.descendants(stack_pid):
        name = os.path.basename(h.cmdline(pid))
        out.setdefault(name, []).append(pid)
    return out


def main():
    h.require_binaries(["amity-stack", "amity-submit", "amity-query", "amity-aggregate",
                        "amity-ingest", "amity-validate", "amity-notify"])
    rng = random.Random(31)
    tmp = h.mkdtemp("stack")
    base = h.pick_base(BASE_PORT, 2)
    notify_ep, ingest_ep = h.ep(base + 2), h.ep(base)
    out_path, err_path = os.path.join(tmp, "stack.out"), os.path.join(tmp, "stack.err")
    with open(out_path, "wb") as o, open(err_path, "wb") as e:
        stack = h._register(subprocess.Popen(
            [h.binary("amity-stack"), "--state", os.path.join(tmp, "state"), "--validators", "2",
             "--shards", "2", "--base-port", str(base)],
            stdin=subprocess.DEVNULL, stdout=o, stderr=e, preexec_fn=h._child_setup, cwd=tmp))
    try:
        def ready():
            if stack.poll() is not None:
                raise h.Abort("amity-stack exited %s:\n%s" % (stack.returncode, h.tail(err_path)))
            with open(out_path, encoding="utf-8", errors="replace") as f:
                return any(l.strip() == "ready" for l in f)
        h.wait_until(ready, 60, 0.1, "amity-stack to print 'ready'")
        procs = daemons_of(stack.pid)
        h.log("amity-stack ready: %s" % {k: len(v) for k, v in procs.items()})
        want = {"amity-aggregate": 2, "amity-validate": 2, "amity-ingest": 1, "amity-notify": 1}
        got = {k: len(procs.get(k, [])) for k in want}
        assert got == want, "amity-stack runs %s, expected %s" % (got, want)

        model = h.Model()

        def submit(tag, n):
            ps = []
            for o in OFFICES:
                recs = [h.random_record(rng, "%s-%04d" % (tag, i)) for i in range(n)]
                for r in recs:
                    model.apply(o, r)
                path = h.write_lines(os.path.join(tmp, "%s-%s.jsonl" % (tag, o)),
                                     [h.jsonl(r) for r in recs])
                ps.append((path, subprocess.Popen(
                    [h.binary("amity-submit"), "--ingest", ingest_ep, "--office", o,
                     "--timeout-ms", "1000", "--deadline-s", "120", path],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    preexec_fn=h._child_setup)))
            return ps

        def finish(ps):
            for path, p in ps:
                out, err = p.communicate(timeout=150)
                assert p.returncode == 0, "amity-submit %s rc %d: %s %s" % (
                    path, p.returncode, out.decode()[-500:], err.decode()[-500:])

        def query():
            r = subprocess.run([h.binary("amity-query"), "--notify", notify_ep, ""],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=30, preexec_fn=h._child_setup)
            assert r.returncode == 0, "amity-query rc %d: %s" % (r.returncode, r.stderr[-300:])
            return h.normalize_totals(h.json.loads(r.stdout), "amity-query")

        finish(submit("a", 1000))
        h.assert_totals_equal(query(), model.totals(), "totals through amity-stack")

        # a daemon that dies is restarted; submits in flight still complete exactly
        for victim in ("amity-aggregate", "amity-ingest", "amity-notify"):
            old = daemons_of(stack.pid)[victim][0]
            ps = submit("b-" + victim[6:], 1000)
            time.sleep(0.2)
            h.log("kill -9 %s (pid %d)" % (victim, old))
            os.kill(old, signal.SIGKILL)

            def restarted():
                now = daemons_of(stack.pid).get(victim, [])
                return len(now) == want[victim] and old not in now
            h.wait_until(restarted, 30, 0.1, "amity-stack to restart %s" % victim)
            finish(ps)
            h.wait_until(lambda: h.nonzero(query()) == h.nonzero(model.totals()), 30, 0.5,
                         "totals after %s restart" % victim)
            h.log("%s restarted by amity-stack; totals exact" % victim)

        # SIGTERM: everything stops, exit 0
        kids = h.descendants(stack.pid)
        t0 = time.monotonic()
        stack.send_signal(signal.SIGTERM)
        rc = stack.wait(timeout=20)
        dt = time.monotonic() - t0
        left = [p for p in kids if os.path.exists("/proc/%d" % p) and h.cmdline(p)]
        assert rc == 0, "amity-stack exited %d after SIGTERM" % rc
        assert not left, "daemons still running after amity-stack exited: %s" % left
        h.log("amity-stack: SIGTERM -> exit 0 in %.2fs, all daemons gone" % dt)
        with open(err_path, "rb") as f:
            m = h.SANITIZER_RE.search(f.read().decode("utf-8", "replace"))
        assert not m, "sanitizer report in amity-stack's stderr:\n%s" % h.tail(err_path, 60)
    except BaseException:
        h.log("amity-stack stderr tail:\n%s" % h.tail(err_path, 60))
        raise


if __name__ == "__main__":
    h.run(main, budget_s=200)
