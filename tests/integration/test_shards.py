"""Shards: 2 aggregate shards, 2 validators. Merged totals are exact at
amity-query and at a subscriber; each shard holds exactly the partial sums
of the records that hash to it (FNV-1a 64 of office NUL id, mod 2, computed
here independently), both shards got records, and after kill -9 and restart
of one shard the merged totals (query and subscriber) are still exact."""

import os
import random
import signal
import time

import harness as h

BASE_PORT = 25000
OFFICES = ["hoi-viet-duc", "hoi-viet-uc", "ngo-desk"]


def main():
    rng = random.Random(9001)
    with h.Cluster("shards", BASE_PORT, shards=2, validators=2) as c:
        h.require_binaries(["amity-submit", "amity-query", "amity-subscribe"])
        model = h.Model()
        files = {}
        for o in OFFICES:
            st = h.gen_stream(rng, o, 1500, "sh")
            for r in st:
                model.apply(o, r)
            files[o] = h.write_lines(os.path.join(c.dir, "stream-%s.jsonl" % o),
                                     [h.jsonl(r) for r in st])
        # a few invalid records land on either shard as rejections
        bad = [{"id": "bad-%d" % i, "kind": "activity", "date": "2019-02-29", "activities": 1}
               for i in range(6)]
        bad_path = h.write_lines(os.path.join(c.dir, "bad.jsonl"), [h.jsonl(r) for r in bad])
        assert {h.shard_of(OFFICES[0], r["id"], 2) for r in bad} == {0, 1}
        ref = model.totals()
        per_shard = [h.Model(), h.Model()]
        for (o, rid), canon in model.state.items():
            per_shard[h.shard_of(o, rid, 2)].state[(o, rid)] = canon
        shard_refs = [m.totals() for m in per_shard]
        for k in (0, 1):
            assert h.nonzero(shard_refs[k]), "test data puts nothing on shard %d" % k
            h.log("shard %d: %d records, %d keys expected" % (
                k, len(per_shard[k].state), len(h.nonzero(shard_refs[k]))))

        c.start_all()
        sub = c.subscribe([""], label="merged")
        sub.wait_first_snapshot()
        ps = [c.submit_async(o, files[o], ["--timeout-ms", "2000", "--deadline-s", "200"])
              for o in OFFICES]
        for p in ps:
            r = p.wait(230)
            assert r.returncode == 0 and r.summary and r.summary[2] == 0, \
                "amity-submit rc %d summary %s: %s" % (r.returncode, r.summary, r.stderr[-500:])
        r = c.submit(OFFICES[0], bad_path, ["--timeout-ms", "2000", "--deadline-s", "60"])
        assert r.returncode == 65 and r.summary == (0, 0, len(bad)), \
            "invalid records: rc %d summary %s" % (r.returncode, r.summary)
        for line in r.reject_lines:
            assert "date" in line, "reason does not name the date: %r" % line

        h.assert_totals_equal(c.query(""), ref, "amity-query (merged)")
        sub.wait_equal(ref, what="reference")

        # each shard's partials, straight from its snapshot socket
        for k in (0, 1):
            part = h.shard_snapshot(c.shard_bases[k])
            h.assert_totals_equal(part, shard_refs[k], "shard %d partial totals" % k)
            d = c.state_dir(k)
            size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
            assert size > 0, "shard %d state dir %s is empty" % (k, d)
            h.log("shard %d: partials exact, state dir %d bytes" % (k, size))

        # lose shard 1 for a moment, with more records pending for it
        extra = {}
        for o in OFFICES:
            st = [h.random_record(rng, "late-%04d" % i) for i in range(300)]
            for rr in st:
                model.apply(o, rr)
            extra[o] = h.write_lines(os.path.join(c.dir, "late-%s.jsonl" % o),
                                     [h.jsonl(x) for x in st])
        ref2 = model.totals()
        c.kill("aggregate1", signal.SIGKILL)
        ps = [c.submit_async(o, extra[o], ["--timeout-ms", "1000", "--deadline-s", "120"])
              for o in OFFICES]
        time.sleep(1.5)
        c.start("aggregate1")
        for p in ps:
            r = p.wait(150)
            assert r.returncode == 0, "amity-submit with a shard down: rc %d %s" % (
                r.returncode, r.stderr[-500:])
        h.wait_until(lambda: h.nonzero(c.query("")) == h.nonzero(ref2), 30, 0.5,
                     "merged totals after shard restart")
        h.assert_totals_equal(c.query(""), ref2, "amity-query after shard 1 restart")
        sub.wait_equal(ref2, timeout=30, what="reference after shard 1 restart")

        # amity-gen's realistic data (corrections and retractions included)
        gen_dir = os.path.join(c.dir, "gen")
        os.mkdir(gen_dir)
        r = c.run_client(["amity-gen", "--seed", "7", "--records", "800", "--offices", "3",
                          "--years", "2015-2024", "--out-dir", gen_dir], timeout=60)
        assert r.returncode == 0, "amity-gen rc %d: %s" % (r.returncode, r.stderr[-500:])
        gen_files = sorted(os.path.join(gen_dir, f) for f in os.listdir(gen_dir))
        assert len(gen_files) == 3, "amity-gen --out-dir wrote %s" % gen_files
        ps = []
        for path in gen_files:
            office = os.path.basename(path)[:-len(".jsonl")]
            n_lines = 0
            with open(path, encoding="utf-8") as f:
                for line in f:
                    rec = h.json.loads(line)
                    assert model.apply(office, rec) != "rejected", \
                        "amity-gen produced a conflicting record: %r" % line
                    n_lines += 1
            h.log("amity-gen: %s, %d lines" % (office, n_lines))
            ps.append(c.submit_async(office, path, ["--timeout-ms", "2000", "--deadline-s", "120"]))
        for p in ps:
            r = p.wait(150)
            assert r.returncode == 0, "amity-submit of amity-gen data: rc %d %s %s" % (
                r.returncode, r.stdout[-800:], r.stderr[-300:])
        ref3 = model.totals()
        h.assert_totals_equal(c.query(""), ref3, "amity-query after amity-gen data")
        sub.wait_equal(ref3, timeout=30, what="reference after amity-gen data")


if __name__ == "__main__":
    h.run(main, budget_s=280)
