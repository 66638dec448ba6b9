"""amity-submit and amity-spool (issue 6, the office's side).

Part 1, formats: the same records (corrections, retractions, resends,
multi-line Vietnamese notes) as JSON Lines from office-a and as CSV from
office-b give identical totals under each office (and equal the reference
model); malformed lines are reported as FILE:LINE with the line they start
on; --rejects writes the rejected records' original text (CSV: header
first) and that file can be submitted again; CSV from stdin with --format;
exit codes 0, 65, 69; a progress bar only on a terminal.

Part 2, spool: with ingest down, `amity-submit --spool DIR` spools a JSON
Lines file and a CSV file durably and exits 75 ("N records spooled, N
pending"); ingest starts; `amity-spool drain DIR` is killed with SIGKILL
mid-drain and started again; afterwards nothing is pending, the rejected
records are listed with their reasons, and office-c's totals equal the
reference: nothing lost, nothing counted twice. The spool belongs to
office-c: submitting into it or draining it as office-d is refused (exit 2,
naming both offices) and sends nothing.

Part 3, a slow pipe: amity-submit reading from a pipe whose writer goes
quiet (`tail -f | amity-submit -`) sends what it has read, prints the
verdicts and keeps resending while it waits: the rejection lines come
out, and the accepted records are counted, before the pipe is closed."""

import csv
import io
import json
import os
import random
import re
import select
import signal
import subprocess
import time

import harness as h

BASE_PORT = 20900
COLUMNS = ["id", "rev", "retract", "kind", "date", "country", "delegations", "people",
           "activities", "projects", "awards", "partners", "orgs", "amount", "currency", "scope",
           "level", "note", "x-source"]
BAD_DATE_WHY = "date: 2017-02-30 is not a calendar date"
MULTILINE_NOTE = "Dòng một, có dấu phẩy\nDòng hai với \"ngoặc kép\" và Hà Nội"


def csv_cell(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    return str(v)


def csv_text(row):
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(row)
    return buf.getvalue()


def csv_row(rec):
    extra = set(rec) - set(COLUMNS)
    assert not extra, extra
    return csv_text([csv_cell(rec[c]) if c in rec else "" for c in COLUMNS])


def bad_date(rid):
    return {"id": rid, "kind": "activity", "date": "2017-02-30", "activities": 1}


class Files:
    """A list of entries (("rec", dict) or ("raw-json", text) / ("raw-csv",
    text)) written as JSON Lines and as CSV, with the line each starts on."""

    def __init__(self, entries):
        self.entries = entries

    def write_jsonl(self, path):
        lines, starts = [], []
        for kind, v in self.entries:
            starts.append(len(lines) + 1)
            lines.append(h.jsonl(v) if kind == "rec" else v["json"])
        h.write_lines(path, lines)
        return starts, lines

    def write_csv(self, path):
        text = csv_text(COLUMNS)
        starts, rows = [], []
        line = 2
        for kind, v in self.entries:
            row = csv_row(v) if kind == "rec" else v["csv"]
            starts.append(line)
            rows.append(row)
            text += row
            line += row.count("\n")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return starts, rows


def summary_of(stdout):
    m = re.search(r"^accepted (\d+), duplicate (\d+), rejected (\d+)$", stdout, re.M)
    assert m, "no summary line in %r" % stdout[-500:]
    return tuple(int(x) for x in m.groups())


def office_totals(all_totals, office):
    """{key with the office part replaced by OFFICE: value} for one office."""
    out = {}
    for k, v in all_totals.items():
        parts = k.split("/")
        if parts[1] == office:
            parts[1] = "OFFICE"
            out["/".join(parts)] = v
    return out


def reference(office, records):
    model = h.Model()
    for r in records:
        model.apply(office, r)
    return office_totals(model.totals(), office)


def run_submit(cluster, office, argv, input_bytes=None, timeout=240):
    base = ["amity-submit", "--ingest", cluster.ingest_ep] + \
        (["--office", office] if office else [])
    return cluster.run_client(base + argv, timeout=timeout, input_bytes=input_bytes)


# --------------------------------------------------------------------------
# Part 1: JSON Lines and CSV


def part_formats(c, rng):
    base = h.gen_stream(rng, "x", 400, "f")
    for i in range(3):
        r = h.random_record(rng, "ml-%d" % i, "activity")
        r["note"] = MULTILINE_NOTE
        base.insert(10 + 37 * i, r)
    entries = [("rec", r) for r in base]
    malformed = [
        (5, {"json": '{"id": "broken-1", "kind": "activity",', "csv": "broken-1,activity\n",
             "json_why": "-: json: ", "csv_why": "-: csv: 2 fields, the header has %d" % len(COLUMNS)}),
        (60, {"json": '["not", "an", "object"]',
              "csv": ",".join(["broken-2", "", "", 'act"ivity'] + [""] * (len(COLUMNS) - 4))
              + "\n",
              "json_why": "-: record: not a JSON object", "csv_why": "-: csv: line "}),
        (120, None),
    ]
    for pos, m in malformed:
        if m is None:
            entries.insert(pos, ("rec", bad_date("bad-date-1")))
        else:
            entries.insert(pos, ("raw", m))
    files = Files(entries)
    pa = os.path.join(c.dir, "office-a.jsonl")
    pb = os.path.join(c.dir, "office-b.csv")
    starts_a, lines_a = files.write_jsonl(pa)
    starts_b, rows_b = files.write_csv(pb)
    valid = [v for k, v in entries if k == "rec" and v["id"] != "bad-date-1"]
    n_rec = sum(1 for k, _ in entries if k == "rec")
    assert sum(r.count("\n") for r in rows_b) > len(rows_b), "no CSV row spans lines"

    rej_a = os.path.join(c.dir, "rejects-a.jsonl")
    rej_b = os.path.join(c.dir, "rejects-b.csv")
    ra = run_submit(c, "office-a", ["--rejects", rej_a, pa])
    rb = run_submit(c, "office-b", ["--rejects", rej_b, pb])
    h.log("jsonl: rc %d %s; csv: rc %d %s" % (ra.returncode, summary_of(ra.stdout),
                                              rb.returncode, summary_of(rb.stdout)))
    for r in (ra, rb):
        assert r.returncode == 65, (r.returncode, r.stderr[-800:])
        assert "\r" not in r.stderr, "progress bar drawn although stderr is not a terminal"
    sa, sb = summary_of(ra.stdout), summary_of(rb.stdout)
    assert sa[2] == 3 and sb[2] == 3, (sa, sb)
    assert sa[0] + sa[1] == n_rec - 1 and sb[0] + sb[1] == n_rec - 1, (sa, sb, n_rec)

    # each rejection at the line its record starts on
    def reject_lines(r):
        return [l for l in r.stdout.splitlines() if not l.startswith("accepted ")]
    got_a, got_b = reject_lines(ra), reject_lines(rb)
    assert len(got_a) == 3 and len(got_b) == 3, (got_a, got_b)
    for (pos, m) in malformed:
        if m is None:
            want_a = "%s:%d: bad-date-1: %s" % (pa, starts_a[pos], BAD_DATE_WHY)
            want_b = "%s:%d: bad-date-1: %s" % (pb, starts_b[pos], BAD_DATE_WHY)
            assert want_a in got_a, (want_a, got_a)
            assert want_b in got_b, (want_b, got_b)
            continue
        pre_a = "%s:%d: %s" % (pa, starts_a[pos], m["json_why"])
        pre_b = "%s:%d: %s" % (pb, starts_b[pos], m["csv_why"])
        assert any(l.startswith(pre_a) for l in got_a), (pre_a, got_a)
        assert any(l.startswith(pre_b) for l in got_b), (pre_b, got_b)
    assert any("stray quote" in l for l in got_b), got_b
    h.log("rejections reported at lines %s (jsonl) and %s (csv)" % (
        [starts_a[p] for p, _ in malformed], [starts_b[p] for p, _ in malformed]))

    # --rejects: the original text, ready to fix and send again
    bad_idx = [p for p, _ in malformed]
    with open(rej_a, encoding="utf-8") as f:
        ja = f.read().splitlines()
    assert sorted(ja) == sorted(lines_a[p] for p in bad_idx), ja
    with open(rej_b, encoding="utf-8") as f:
        jb = f.read()
    assert jb.startswith(csv_text(COLUMNS)), jb[:200]
    body = jb[len(csv_text(COLUMNS)):]
    assert sorted(body.splitlines(True)) == sorted(rows_b[p] for p in bad_idx), body
    for path in (rej_a, rej_b):
        r = run_submit(c, "office-a", [path])
        assert r.returncode == 65 and summary_of(r.stdout) == (0, 0, 3), (r.returncode, r.stdout)
        assert re.search(r":1: ", r.stdout) or re.search(r":2: ", r.stdout), r.stdout

    # the same totals under each office, equal to the reference
    totals = c.query("")
    ta, tb = office_totals(totals, "office-a"), office_totals(totals, "office-b")
    ref = reference("office-a", valid)
    assert ta, "no totals for office-a"
    h.assert_totals_equal(ta, ref, "office-a (JSON Lines) vs reference")
    h.assert_totals_equal(tb, ta, "office-b (CSV) vs office-a (JSON Lines)")
    for year in ("2020", "2023"):
        qa = office_totals(c.query("%s/office-a/" % year), "office-a")
        qb = office_totals(c.query("%s/office-b/" % year), "office-b")
        assert qa, "no %s totals" % year
        h.assert_totals_equal(qb, qa, "%s/office-b/ vs %s/office-a/" % (year, year))
    h.log("JSON Lines and CSV: %d identical totals per office" % len(nonzero_keys(ta)))

    # CSV from stdin with --format csv: every record is a resend now
    with open(pb, "rb") as f:
        data = f.read()
    r = run_submit(c, "office-b", ["--format", "csv", "-"], input_bytes=data)
    assert r.returncode == 65, (r.returncode, r.stderr[-500:])
    assert summary_of(r.stdout) == (0, n_rec - 1, 3), r.stdout[-300:]
    assert ("-:%d: bad-date-1: %s" % (starts_b[120], BAD_DATE_WHY)) in r.stdout, r.stdout
    h.assert_totals_equal(office_totals(c.query(""), "office-b"), ta, "after the CSV resend")

    # exit 0: all accepted or duplicate
    good = os.path.join(c.dir, "good.csv")
    with open(good, "w", encoding="utf-8") as f:
        f.write("\ufeff" + csv_text(COLUMNS).replace("\n", "\r\n"))
        for r in valid[:20]:
            f.write(csv_row(r).replace("\n", "\r\n") if "\n" not in r.get("note", "")
                    else csv_row(r))
    r = run_submit(c, "office-b", [good])
    assert r.returncode == 0 and summary_of(r.stdout) == (0, 20, 0), (r.returncode, r.stdout)

    # exit 69: nobody listens
    dead = h.ep(c.base + 99)
    r = c.run_client(["amity-submit", "--ingest", dead, "--office", "office-a",
                      "--deadline-s", "1", good], timeout=60)
    assert r.returncode == 69, (r.returncode, r.stderr)

    # a progress bar on a terminal: rate and time left, erased at the end
    master, slave = os.openpty()
    try:
        p = subprocess.Popen([h.binary("amity-submit"), "--ingest", c.ingest_ep, "--office",
                              "office-a", "--window", "8", pa], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=slave, preexec_fn=h._child_setup)
        os.close(slave)
        slave = None
        err = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            err += chunk
        out = p.communicate(timeout=120)[0].decode()
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    text = err.decode("utf-8", "replace")
    assert p.returncode == 65, (p.returncode, text[-500:])
    assert re.search(r"\rsending \[[#.]+\] +\d+% \d+/\d+ records, \d+ rec/s, [\d:?]+ left", text), \
        text[:500]
    assert text.endswith("\r\x1b[K"), repr(text[-100:])
    assert summary_of(out)[2] == 3
    h.log("progress bar on a terminal: %d redraws" % text.count("\rsending"))


def nonzero_keys(d):
    return [k for k, v in d.items() if v != 0]


# --------------------------------------------------------------------------
# Part 2: the office spool


def spool_status(c, spool, verbose=False):
    argv = ["amity-spool", "status", spool] + (["--verbose"] if verbose else [])
    r = c.run_client(argv, timeout=30, quiet=True)
    assert r.returncode == 0, (r.returncode, r.stderr)
    st = {}
    for key in ("pending", "rejected"):
        m = re.search(r"^%s: (\d+)$" % key, r.stdout, re.M)
        assert m, r.stdout
        st[key] = int(m.group(1))
    m = re.search(r"^all time: (\d+) spooled, (\d+) accepted, (\d+) duplicate, (\d+) rejected$",
                  r.stdout, re.M)
    assert m, r.stdout
    st["spooled"], st["accepted"], st["duplicate"], st["rejected_ever"] = \
        (int(x) for x in m.groups())
    st["text"] = r.stdout
    return st


def part_spool(c, rng):
    office = "office-c"
    spool = os.path.join(c.dir, "spool")
    stream = h.gen_stream(rng, office, 16000, "s")
    cut = len(stream) * 2 // 3
    part1 = [("rec", r) for r in stream[:cut]]
    part2 = [("rec", r) for r in stream[cut:]]
    part1.insert(5000, ("rec", bad_date("bad-date-j2")))
    part1.insert(100, ("rec", bad_date("bad-date-j1")))
    part1.insert(7, ("raw", {"json": "{not json", "csv": ""}))
    part2.insert(50, ("rec", bad_date("bad-date-c1")))

    def index_of(entries, rid):
        return next(i for i, (k, v) in enumerate(entries) if k == "rec" and v["id"] == rid)
    j1, j2, c1 = index_of(part1, "bad-date-j1"), index_of(part1, "bad-date-j2"), 50
    p1 = os.path.join(c.dir, "spool-part1.jsonl")
    p2 = os.path.join(c.dir, "spool-part2.csv")
    starts1, lines1 = Files(part1).write_jsonl(p1)
    starts2, rows2 = Files(part2).write_csv(p2)
    n1 = len(part1) - 1        # the malformed line is not spooled
    n2 = len(part2)
    total = n1 + n2

    # ingest down: the records are spooled, durably, and the run says so
    c.stop("ingest")
    t0 = time.monotonic()
    r = run_submit(c, office, ["--spool", spool, "--deadline-s", "2", p1])
    assert r.returncode == 75, (r.returncode, r.stdout[-300:], r.stderr[-500:])
    assert "%d records spooled, %d pending" % (n1, n1) in r.stdout, r.stdout[-300:]
    assert summary_of(r.stdout) == (0, 0, 1), r.stdout[-300:]
    assert "%s:%d: -: json: " % (p1, starts1[7]) in r.stdout, r.stdout[:300]
    r = run_submit(c, office, ["--spool", spool, "--deadline-s", "2", p2])
    assert r.returncode == 75, (r.returncode, r.stderr[-500:])
    assert "%d records spooled, %d pending" % (n2, total) in r.stdout, r.stdout[-300:]
    st = spool_status(c, spool)
    assert st["pending"] == total and st["spooled"] == total, st
    assert re.search(r"^oldest pending: \d+[dhms]( \d+[hms])? \(spooled ", st["text"], re.M), \
        st["text"]
    assert re.search(r"^belongs to: office %s$" % office, st["text"], re.M), st["text"]
    h.log("ingest down: %d records spooled in %.1fs, exit 75" % (total, time.monotonic() - t0))

    # the spool is office-c's: another office may neither add to it nor
    # send its records (which would count them as that office's)
    intruder = "office-d"
    r = run_submit(c, intruder, ["--spool", spool, "--deadline-s", "2", p2])
    want = "spool %s belongs to office %s, not office %s" % (spool, office, intruder)
    assert r.returncode == 2 and want in r.stderr, (r.returncode, r.stderr[-500:])
    r = c.run_client(["amity-spool", "drain", spool, "--ingest", c.ingest_ep, "--office",
                      intruder, "--deadline-s", "2"], timeout=60)
    assert r.returncode == 2 and want in r.stderr, (r.returncode, r.stderr[-500:])
    st = spool_status(c, spool)
    assert st["pending"] == total and st["spooled"] == total, st
    h.log("office-d refused on office-c's spool (exit 2): %s" % want)

    # ingest back; the drain is killed (-9) in the middle and started again
    c.start("ingest")
    drain_argv = [h.binary("amity-spool"), "drain", spool, "--ingest", c.ingest_ep,
                  "--office", office, "--window", "32", "--batch", "16"]
    logp = os.path.join(c.dir, "drain-1.log")
    c.client_logs.append(logp)
    with open(logp, "wb") as lf:
        proc = h._register(subprocess.Popen(drain_argv, stdin=subprocess.DEVNULL, stdout=lf,
                                            stderr=subprocess.STDOUT, preexec_fn=h._child_setup,
                                            cwd=c.dir))
    target = total * 2 // 3

    def some_drained():
        if proc.poll() is not None:
            raise h.Abort("the drain finished before it could be killed (rc %s): make the data "
                          "bigger" % proc.returncode)
        return spool_status(c, spool)["pending"] <= target
    h.wait_until(some_drained, 120, 0.05, "a third of the spool to drain")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    st = spool_status(c, spool)
    assert 0 < st["pending"] < total, st
    h.log("drain killed with SIGKILL, %d of %d records still pending" % (st["pending"], total))

    r = c.run_client(["amity-spool", "drain", spool, "--ingest", c.ingest_ep, "--office",
                      office], timeout=240)
    assert r.returncode in (0, 65), (r.returncode, r.stdout[-300:], r.stderr[-500:])
    assert re.search(r"^0 pending$", r.stdout, re.M), r.stdout[-300:]
    # and the submit side finds nothing left either
    r = run_submit(c, office, ["--spool", spool])
    assert r.returncode == 0, (r.returncode, r.stderr[-300:])
    assert "0 records spooled, 0 pending" in r.stdout and summary_of(r.stdout) == (0, 0, 0), \
        r.stdout

    st = spool_status(c, spool, verbose=True)
    assert st["pending"] == 0 and st["rejected"] == 3, st
    assert st["spooled"] == total, st
    assert st["accepted"] + st["duplicate"] + st["rejected_ever"] == total, st
    for rid, path, line in (("bad-date-j1", p1, starts1[j1]), ("bad-date-j2", p1, starts1[j2]),
                            ("bad-date-c1", p2, starts2[c1])):
        want = "%s:%d: %s: %s" % (path, line, rid, BAD_DATE_WHY)
        assert want in st["text"].splitlines(), (want, st["text"])

    # the rejected records' original text, to fix and send again
    r = c.run_client(["amity-spool", "rejects", spool], timeout=30)
    assert r.returncode == 0, r.stderr
    assert lines1[j1] + "\n" in r.stdout and lines1[j2] + "\n" in r.stdout, r.stdout
    assert csv_text(COLUMNS) + rows2[c1] in r.stdout, r.stdout

    # nothing lost, nothing counted twice
    valid = [v for k, v in part1 + part2 if k == "rec" and not v["id"].startswith("bad-date")]
    h.assert_totals_equal(office_totals(c.query(""), office), reference(office, valid),
                          "office-c (spooled, drain killed and restarted) vs reference")
    h.log("spool drained: %d records, totals equal the reference" % total)


# --------------------------------------------------------------------------
# Part 3: a pipe whose writer goes quiet


class Reader:
    """Reads a child's stdout without blocking, line by line."""

    def __init__(self, f):
        self.f = f
        self.buf = b""
        self.eof = False

    def pump(self, seconds):
        end = time.monotonic() + seconds
        while not self.eof:
            left = end - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([self.f], [], [], left)
            if not r:
                continue
            chunk = os.read(self.f.fileno(), 65536)
            if not chunk:
                self.eof = True
            self.buf += chunk

    def text(self):
        return self.buf.decode("utf-8", "replace")


def part_slow_pipe(c, rng):
    office = "office-e"
    timeout_ms = 500
    argv = [h.binary("amity-submit"), "--ingest", c.ingest_ep, "--office", office,
            "--timeout-ms", str(timeout_ms), "-"]
    logp = os.path.join(c.dir, "slow-pipe.log")
    c.client_logs.append(logp)
    errf = open(logp, "wb")
    proc = h._register(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=errf, preexec_fn=h._child_setup, cwd=c.dir))
    out = Reader(proc.stdout)
    sent = []
    try:
        for burst in range(2):
            # a few records, one of them rejected, then the writer goes quiet
            # (the pipe stays open) for longer than the resend timeout
            recs = [h.random_record(rng, "pipe-%d-%d" % (burst, i)) for i in range(5)]
            bad = bad_date("pipe-bad-%d" % burst)
            lines = [h.jsonl(r) for r in recs[:3]] + [h.jsonl(bad)] + \
                [h.jsonl(r) for r in recs[3:]]
            proc.stdin.write(("\n".join(lines) + "\n").encode())
            proc.stdin.flush()
            sent += recs
            first = len(sent) - len(recs) + burst  # lines before this burst
            want = "-:%d: pipe-bad-%d: %s" % (first + 4, burst, BAD_DATE_WHY)
            t0 = time.monotonic()
            while want not in out.text() and time.monotonic() - t0 < 3 * timeout_ms / 1000 + 5:
                out.pump(0.1)
            assert want in out.text(), \
                "burst %d: no rejection line while the pipe is open (waited %.1fs; got %r)" % (
                    burst, time.monotonic() - t0, out.text())
            took = time.monotonic() - t0
            out.pump(2 * timeout_ms / 1000)  # quiet for longer than the resend timeout
            assert proc.poll() is None, "amity-submit exited with its input still open"
            # the accepted ones are counted already
            h.wait_until(lambda: office_totals(c.query("%s" % ""), office) ==
                         reference(office, sent), 10, 0.2,
                         "burst %d's records counted while the pipe is open" % burst)
            h.log("slow pipe, burst %d: rejection printed after %.2fs, %d records counted, "
                  "input still open" % (burst, took, len(sent)))
        proc.stdin.close()
        proc.wait(timeout=60)
        out.pump(5)
    finally:
        if proc.poll() is None:
            proc.kill()
        errf.close()
    assert proc.returncode == 65, (proc.returncode, out.text()[-500:], h.tail(logp))
    assert summary_of(out.text()) == (len(sent), 0, 2), out.text()
    h.log("slow pipe: exit 65 at EOF, %s" % (summary_of(out.text()),))


def main():
    h.require_binaries(["amity-submit", "amity-spool", "amity-query"])
    rng = random.Random(20900)
    with h.Cluster("submit-tools", BASE_PORT, shards=1, validators=2) as c:
        c.start_all()
        part_formats(c, rng)
        part_slow_pipe(c, rng)
        part_spool(c, rng)
        c.check_daemons_alive()


if __name__ == "__main__":
    h.run(main, budget_s=300)
