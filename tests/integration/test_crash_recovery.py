"""Crash recovery: 1 shard, 2 validators; ~20k records from two offices
submitted with amity-submit (resends on timeout) while aggregate, ingest and
a validator are killed with -9 and restarted. At the end every amity-submit
exits 0 (every record got a verdict) and the totals equal the reference
exactly: nothing lost, nothing counted twice."""

import os
import random
import signal
import time

import harness as h

BASE_PORT = 17800
OFFICES = ["lhhn-khanh-hoa", "hoi-viet-phap"]
N_PER_OFFICE = 8500   # plus corrections, retractions and resends: ~10k lines each


def main():
    rng = random.Random(77)
    with h.Cluster("crash", BASE_PORT, shards=1, validators=2) as c:
        h.require_binaries(["amity-submit", "amity-query", "amity-subscribe"])
        model = h.Model()
        paths = {}
        for o in OFFICES:
            stream = h.gen_stream(rng, o, N_PER_OFFICE, "cr", correct_frac=0.1,
                                  retract_frac=0.05, resend_frac=0.02)
            for rec in stream:
                model.apply(o, rec)   # final state does not depend on the order
            paths[o] = h.write_lines(os.path.join(c.dir, "stream-%s.jsonl" % o),
                                     [h.jsonl(r) for r in stream])
            h.log("%s: %d lines" % (o, len(stream)))
        ref = model.totals()
        c.start_all()
        sub = c.subscribe([""], label="crash", strict_seq=False)
        sub.wait_first_snapshot()

        procs = [c.submit_async(o, paths[o], ["--timeout-ms", "1000", "--deadline-s", "200"])
                 for o in OFFICES]

        def running():
            return any(p.running() for p in procs)

        # chaos schedule: (delay before, action)
        plan = [
            (0.7, "aggregate0"), (1.0, "ingest"), (1.0, "aggregate0"), (1.0, "validate1"),
            (1.0, "aggregate0"), (1.0, "ingest"), (1.0, "validate0"), (1.0, "aggregate0"),
        ]
        done = []
        for delay, name in plan:
            time.sleep(delay)
            if not running():
                break
            h.log("chaos: kill -9 %s" % name)
            c.kill(name, signal.SIGKILL)
            time.sleep(1.0 if name.startswith("aggregate") else 0.3)
            c.start(name)
            done.append(name)
        h.log("chaos actions during the stream: %d of %d (%s)%s" % (
            len(done), len(plan), ", ".join(done),
            "" if len(done) == len(plan) else " -- stream ended early, fewer crashes exercised"))
        results = [p.wait(230) for p in procs]
        for o, r in zip(OFFICES, results):
            if r.returncode != 0:
                raise AssertionError("amity-submit for %s exited %d (expected 0); summary %s; "
                                     "stdout tail:\n%s\nstderr tail:\n%s" % (
                                         o, r.returncode, r.summary, r.stdout[-1500:],
                                         r.stderr[-1500:]))
            if r.summary is None or r.summary[2] != 0:
                raise AssertionError("amity-submit %s: bad summary %r" % (o, r.stdout[-300:]))
            n_lines = sum(1 for _ in open(paths[o], encoding="utf-8"))
            if r.summary[0] + r.summary[1] != n_lines:
                raise AssertionError("amity-submit %s: accepted+duplicate = %d, lines %d" % (
                    o, r.summary[0] + r.summary[1], n_lines))
        c.check_daemons_alive()
        h.log("reference: %d non-zero keys over %d live records" % (
            len(h.nonzero(ref)), len(model.live_records())))
        h.assert_totals_equal(c.query(""), ref, "amity-query after crashes")
        sub.wait_equal(ref, timeout=40, what="reference")
        # durability across a clean restart of the whole state side
        c.stop("aggregate0")
        c.start("aggregate0")
        h.wait_until(lambda: h.nonzero(c.query("")) == h.nonzero(ref), 30, 0.5,
                     "totals after a clean aggregate restart")
        h.assert_totals_equal(c.query(""), ref, "amity-query after clean aggregate restart")


if __name__ == "__main__":
    h.run(main, budget_s=290)
