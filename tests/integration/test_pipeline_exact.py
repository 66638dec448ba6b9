"""Pipeline exactness: 1 shard, 2 validators, three offices submitting
concurrently a stream with resends, corrections, retractions, conflicts,
tombstones, stale revisions and invalid records. Checks amity-submit's
verdict summary, FILE:LINE rejection lines and exit codes, and that
amity-query and a subscriber started before the stream end equal an
independent reference computation.

Phases keep verdicts deterministic: inside one phase every (office, id) has
at most one distinct content, so arrival order inside a phase cannot change
any verdict; conflicts and stale revisions come in a later phase than the
revision they clash with."""

import os
import random
import re

import harness as h

BASE_PORT = 24700
OFFICES = ["hoi-viet-my", "hoi-viet-nhat", "ban-ngo"]


def long_vi_note(max_bytes):
    """A Vietnamese note of at most max_bytes UTF-8 bytes, as long as possible."""
    unit = "Đoàn đại biểu Hội hữu nghị Nhật - Việt thăm Hà Nội. "
    s = ""
    for ch in unit * 40:
        if len((s + ch).encode()) > max_bytes:
            break
        s += ch
    return s


def hcm_tomorrow():
    """(tomorrow, the day after) in Asia/Ho_Chi_Minh as YYYY-MM-DD, or
    (None, None) within 10 minutes of a local midnight (the validator's
    "tomorrow" could move while the test runs)."""
    import datetime
    try:
        from zoneinfo import ZoneInfo
        now = datetime.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh"))
    except Exception:  # noqa: BLE001 - no tz database: skip these records
        return None, None
    midnight = (now + datetime.timedelta(days=1)).replace(hour=0, minute=0, second=0,
                                                         microsecond=0)
    if (midnight - now).total_seconds() < 600 or now.hour == 0 and now.minute < 10:
        return None, None
    d1 = now.date() + datetime.timedelta(days=1)
    return d1.isoformat(), (d1 + datetime.timedelta(days=1)).isoformat()


class OfficeScript:
    """Builds the three phase files of one office and the expected verdicts."""

    def __init__(self, office, rng, tmpdir):
        self.office = office
        self.rng = rng
        self.dir = tmpdir
        self.phases = [[], [], []]   # per phase: list of (record dict or raw line, valid, why)
        self.base = {}

    def add(self, phase, rec, valid=True, why=None):
        self.phases[phase].append((rec, valid, why))

    def build(self):
        rng, office = self.rng, self.office
        others = [o for o in OFFICES if o != office]
        # ---- phase 1: new records of every kind, resends, invalid records
        n = 60
        for i in range(n):
            kind = h.KIND_NAMES[i % len(h.KIND_NAMES)]
            rec = h.random_record(rng, "r-%04d" % i, kind)   # same ids in every office
            self.base[rec["id"]] = rec
            self.add(0, rec)
        for i in rng.sample(range(n), 5):                     # exact resends, same file
            self.add(0, self.base["r-%04d" % i])
        # valid edge cases
        leap = h.random_record(rng, "leap-2016", "activity")
        leap["date"] = "2016-02-29"
        self.add(0, leap)
        leap2 = h.random_record(rng, "leap-2024", "award")
        leap2["date"] = "2024-02-29"
        self.add(0, leap2)
        longnote = h.random_record(rng, "note-1024", "contact")
        longnote["note"] = long_vi_note(1024)
        assert len(longnote["note"].encode()) <= 1024 and len(longnote["note"].encode()) >= 1020
        self.add(0, longnote)
        own = h.random_record(rng, "own-office", "delegation_in")
        own["office"] = office
        self.add(0, own)
        xf = h.random_record(rng, "x-field", "activity")
        xf["x-reporter"] = "Nguyễn Văn A"
        self.add(0, xf)
        half = {"id": "usd-half", "kind": "aid_disbursement", "date": "2020-07-15",
                "country": "US", "amount": "12.5", "currency": "USD",
                "note": "Đoàn đại biểu Hội hữu nghị Nhật - Việt thăm Hà Nội"}
        self.add(0, half)
        vnd_int = {"id": "vnd-int", "kind": "relief", "date": "2020-10-20",
                   "amount": 60000000000, "currency": "VND"}
        self.add(0, vnd_int)
        # region edge cases: AQ is assigned but in no region (keys: all and AQ only);
        # Cyprus and Turkey are asia, Greenland americas in the UN geoscheme
        self.add(0, {"id": "antarctica", "kind": "contact", "date": "2019-12-01",
                     "country": "AQ", "partners": 2})
        for rid, kind, cc in (("geo-cy", "delegation_in", "CY"), ("geo-tr", "award", "TR"),
                              ("geo-gl", "contact", "GL")):
            g = h.random_record(rng, rid, kind)
            g["country"] = cc
            self.add(0, g)
        self.add(0, {"id": "tomb-1", "rev": 2, "retract": True})   # tombstone of an unseen id
        self.add(0, {"id": "tomb-2", "rev": 2, "retract": True})
        self.add(0, h.random_record(rng, "stale-1", "aid_commitment", rev=5))
        # invalid records: (record, field the reason must name)
        def inv(rid, base_kind, **changes):
            r = h.random_record(rng, rid, base_kind)
            for k, v in changes.items():
                if v is None:
                    r.pop(k, None)
                else:
                    r[k] = v
            return r
        invalid = [
            (inv("bad-date", "activity", date="2017-02-30"), "date"),
            (inv("bad-date-1944", "activity", date="1944-12-31"), "date"),
            (inv("bad-date-future", "award", date="2099-01-01"), "date"),
            (inv("bad-date-format", "award", date="2017-2-3"), "date"),
            (inv("bad-kind", "activity", kind="banquet"), "kind"),
            (inv("no-country", "delegation_in", country=None), "country"),
            (inv("lower-country", "contact", country="us"), "country"),
            (inv("xx-country", "contact", country="XX"), "country"),
            (inv("usd-3-dec", "aid_disbursement", amount="12.345", currency="USD"), "amount"),
            (inv("vnd-dec", "relief", amount="100.5", currency="VND"), "amount"),
            (inv("neg-amount", "relief", amount="-5", currency="EUR"), "amount"),
            (inv("no-currency", "relief", currency=None), ("currency", "amount")),
            (inv("bad-currency", "relief", currency="XYZ", amount="10"), "currency"),
            (inv("unknown-field", "activity", colour="red"), "colour"),
            (inv("wrong-metric", "activity", people=3), "people"),
            (inv("big-metric", "delegation_out", delegations=1000000001), "delegations"),
            (inv("missing-metric", "award", awards=None), "awards"),
            (inv("bad-scope", "activity", scope="trilateral"), "scope"),
            (inv("long-note", "activity", note=long_vi_note(1100)), "note"),
            (inv("other-office", "delegation_in", office=others[0]), "office"),
            ({"id": "bad id!", "kind": "activity", "date": "2019-05-05", "activities": 1}, "id"),
            # JSON types the record model does not take (money is never floating point)
            (inv("float-amount", "relief", amount=12.5, currency="USD"), "amount"),
            (inv("float-metric", "activity", activities=3.5), "activities"),
            (inv("string-metric", "award", awards="3"), "awards"),
            # 10^22 is beyond what the client's JSON parser takes: the line cannot be
            # parsed, so the reason may name the JSON error instead of the field
            (inv("huge-metric", "delegation_in", people=10 ** 22), ("people", "json")),
            (inv("neg-metric", "contact", partners=-2), "partners"),
            (inv("neg-rev", "activity", rev=-1), "rev"),
            (inv("str-rev", "activity", rev="2"), "rev"),
            (inv("obj-note", "activity", note={"vi": "Hà Nội"}), "note"),
            ({"id": "str-retract", "rev": 2, "retract": "yes"}, "retract"),
            (inv("amount-dot", "relief", amount="12.", currency="EUR"), "amount"),
            (inv("amount-exp", "relief", amount="1e5", currency="USD"), "amount"),
            (inv("amount-space", "relief", amount=" 12", currency="USD"), "amount"),
            (inv("x" * 129, "activity"), "id"),
            (inv("feb-29-2023", "activity", date="2023-02-29"), "date"),
        ]
        assert len(invalid[18][0]["note"].encode()) > 1024 and len(invalid[18][0]["note"]) < 1024
        self.other_office_rec = invalid[19][0]
        assert self.other_office_rec["id"] == "other-office"
        tomorrow, after = hcm_tomorrow()
        if after is not None:
            invalid.append((inv("after-tomorrow", "award", date=after), "date"))
        for rec, field in invalid:
            self.add(0, rec, valid=False, why=field)
        # boundaries that are valid
        b = h.random_record(rng, "x" * 128, "activity")              # id of 128 bytes
        self.add(0, b)
        b = h.random_record(rng, "max-metric", "delegation_in")
        b["people"] = 10 ** 9                                          # the largest count
        self.add(0, b)
        b = h.random_record(rng, "first-day", "org_founded")
        b["date"] = "1945-01-01"                                       # the earliest date
        self.add(0, b)
        b = {"id": "small-usd", "kind": "relief", "date": "2021-11-11", "amount": "0.05",
             "currency": "USD"}
        self.add(0, b)
        b = h.random_record(rng, "x-nested", "contact")
        b["x-meta"] = {"source": "amity-it", "tags": [1, 2, "ba"]}     # x- fields: kept, ignored
        self.add(0, b)
        if tomorrow is not None:
            b = h.random_record(rng, "tomorrow", "activity")
            b["date"] = tomorrow                                       # "not later than tomorrow"
            self.add(0, b)

        # ---- phase 2: corrections, resends, same content re-encoded, conflicts, stale tombstoned
        ids = ["r-%04d" % i for i in range(n)]
        rng.shuffle(ids)
        self.corrected = ids[:15]
        self.conflict1 = ids[15:19]
        self.retract_plain = ids[19:24]
        for rid in self.corrected:
            self.add(1, h.corrected(rng, self.base[rid], 2))
        for rid in ids[24:29]:
            self.add(1, self.base[rid])                    # resend from an earlier phase
        same = {"currency": "USD", "amount": "12.50", "note": half["note"], "country": "US",
                "date": "2020-07-15", "kind": "aid_disbursement", "rev": 1, "id": "usd-half"}
        self.add(1, same)                                  # same content, other encoding
        for rid in self.conflict1:
            c = h.corrected(rng, self.base[rid], 1)
            if rng.random() < 0.5:
                del c["rev"]                               # default rev 1
            self.add(1, c, valid=True, why="conflict")
        self.add(1, h.random_record(rng, "tomb-1", "activity"))   # rev 1 after tombstone rev 2
        self.add(1, h.random_record(rng, "stale-1", "aid_commitment", rev=4))  # stale
        self.add(1, self.other_office_rec, valid=False, why="office")         # rejected again

        # ---- phase 3: retractions, conflicts at rev 2, resurrect, retraction conflict
        for rid in self.corrected[:5] + self.retract_plain:
            self.add(2, {"id": rid, "rev": 3, "retract": True})
        for rid in self.corrected[5:8]:
            self.add(2, h.corrected(rng, self.base[rid], 2), valid=True, why="conflict")
        self.add(2, h.random_record(rng, "tomb-2", "delegation_out", rev=3))  # resurrect
        self.add(2, h.random_record(rng, "tomb-1", "relief", rev=1))          # stale (conflict w/ nothing)
        rid = ids[30]
        # a retraction at the stored rev: a conflict, or refused outright since a
        # retraction needs a higher rev (DOMAIN.md) -- rejected either way
        self.add(2, {"id": rid, "rev": 1, "retract": True}, valid=False,
                 why=("retract", "conflict"))

    def files(self):
        paths = []
        for p, items in enumerate(self.phases):
            lines = [h.jsonl(rec) for rec, _, _ in items]
            paths.append(h.write_lines(os.path.join(self.dir, "phase%d-%s.jsonl" % (p + 1, self.office)),
                                       lines))
        return paths


def expected_verdicts(model, script, phase):
    """Runs the phase's lines through the model: (counts, {lineno: (id, why)})."""
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    rejects = {}
    for lineno, (rec, valid, why) in enumerate(script.phases[phase], 1):
        v = model.apply(script.office, rec, valid)
        if why == "conflict":
            assert v == "rejected", "test bug: %r expected to conflict, model says %s" % (rec, v)
        counts[v] += 1
        if v == "rejected":
            rejects[lineno] = (rec.get("id"), why or "conflict")
    return counts, rejects


REJECT_RE = re.compile(r"^(.*):(\d+): (.*?): (.+)$")


def check_submit(res, path, counts, rejects):
    exp_summary = (counts["accepted"], counts["duplicate"], counts["rejected"])
    problems = []
    if res.summary != exp_summary:
        problems.append("summary %s, expected accepted %d, duplicate %d, rejected %d" % (
            (res.summary,) + exp_summary))
    exp_rc = 65 if counts["rejected"] else 0
    if res.returncode != exp_rc:
        problems.append("exit code %d, expected %d" % (res.returncode, exp_rc))
    seen = {}
    for line in res.reject_lines:
        m = REJECT_RE.match(line)
        if not m:
            problems.append("unparsable stdout line %r" % line)
            continue
        f, lineno, rid, why = m.group(1), int(m.group(2)), m.group(3), m.group(4)
        if f not in (path, os.path.basename(path)):
            problems.append("rejection line names file %r, expected %r" % (f, path))
        if lineno not in rejects:
            problems.append("unexpected rejection %r" % line)
            continue
        eid, field = rejects[lineno]
        unparsable = isinstance(field, tuple) and "json" in field and rid == "-"
        too_long = len(eid or "") > 128 and len(rid) >= 64 and eid.startswith(rid)
        if rid != eid and not unparsable and not too_long:
            problems.append("line %d: id %r, expected %r (%r)" % (lineno, rid, eid, line))
        fields = field if isinstance(field, tuple) else (field,)
        if not any(f_ in why for f_ in fields):
            problems.append("line %d (%s): reason %r does not name %r" % (lineno, eid, why, field))
        seen[lineno] = line
    for lineno, (eid, field) in sorted(rejects.items()):
        if lineno not in seen:
            problems.append("no rejection line for %s:%d (%s, %s)" % (path, lineno, eid, field))
    if problems:
        raise AssertionError("amity-submit %s:\n  %s\n--- stdout:\n%s--- stderr tail:\n%s" % (
            path, "\n  ".join(problems), res.stdout[-3000:], res.stderr[-1500:]))


# records amity-submit cannot turn into msgpack: rejected by the client, never
# reaching the aggregate's rejects database
CLIENT_LOCAL = {"huge-metric", "obj-note"}


def check_state(c, model, scripts):
    """Reads shard 0's LMDB with mdb_dump: every (office, id) the model holds
    is stored at its latest rev with its note intact (Vietnamese UTF-8), and
    every rejection that reached the aggregate is kept for the operator, with
    the original bytes (notes intact)."""
    records = h.mdb_dump(c.state_dir(0), "records")
    if records is None:
        h.log("mdb_dump not installed: LMDB contents not checked")
        return
    stored = {}
    for k, v in records:
        office, rid = k.split(b"\0", 1)
        stored[(office.decode(), rid.decode())] = h.mp_unpack(v)
    missing = sorted(set(model.state) - set(stored))
    extra = sorted(set(stored) - set(model.state))
    assert not missing and not extra, "records db: missing %s, unexpected %s" % (
        missing[:5], extra[:5])
    bad = []
    for key, canon in model.state.items():
        want = dict(canon)
        got = stored[key]
        if got.get("rev", 1) != want["rev"]:
            bad.append("%s: rev %s, expected %s" % (key, got.get("rev"), want["rev"]))
        if "note" in want and got.get("note") != want["note"]:
            bad.append("%s: note %r, expected %r" % (key, got.get("note"), want["note"]))
    assert not bad, "records db: %d wrong: %s" % (len(bad), "; ".join(bad[:5]))
    n_notes = sum(1 for canon in model.state.values() if "note" in dict(canon))
    h.log("records db: %d records at their latest rev, %d Vietnamese notes intact" % (
        len(stored), n_notes))

    rejects = h.mdb_dump(c.state_dir(0), "rejects")
    kept = {}
    for k, v in rejects:
        office = k.split(b"\0", 1)[0].decode()
        m = h.mp_unpack(v)
        kept.setdefault((office, m.get("id")), []).append(m)
    expected = {}
    for s in scripts:
        for phase in s.phases:
            for rec, valid, why in phase:
                if (not valid or why) and rec.get("id") not in CLIENT_LOCAL:
                    # an over-long id is listed cut to 128 bytes (the rec keeps it whole)
                    expected[(s.office, rec.get("id")[:128])] = rec
    # the office-mismatch record is sent twice and rejected twice
    not_kept = sorted(k for k in expected if k not in kept)
    assert not not_kept, "rejects db: %d rejected records not kept for the operator: %s" % (
        len(not_kept), not_kept[:8])
    for s in scripts:
        ln = kept.get((s.office, "long-note"))
        assert ln, "rejects db: long-note of %s not kept" % s.office
        orig = h.mp_unpack(ln[0]["rec"])
        want = [r for r, _, _ in s.phases[0] if r.get("id") == "long-note"][0]["note"]
        assert orig.get("note") == want, "rejects db: the rejected note was altered"
        assert "note" in ln[0].get("why", ""), "rejects db: why %r" % ln[0].get("why")
    h.log("rejects db: %d entries; every server-side rejection kept with its original bytes"
          % len(rejects))


def main():
    rng = random.Random(20240611)
    with h.Cluster("pipeline", BASE_PORT, shards=1, validators=2) as c:
        h.require_binaries(["amity-submit", "amity-query", "amity-subscribe"])
        scripts = [OfficeScript(o, rng, c.dir) for o in OFFICES]
        for s in scripts:
            s.build()
        files = {s.office: s.files() for s in scripts}
        c.start_all()
        sub = c.subscribe([""], label="early")
        sub.wait_first_snapshot()
        model = h.Model()
        problems = []
        for phase in range(3):
            exp = {}
            for s in scripts:   # model order = office order; phases make it order-free
                exp[s.office] = expected_verdicts(model, s, phase)
            procs = {s.office: c.submit_async(s.office, files[s.office][phase],
                                              ["--timeout-ms", "2000", "--deadline-s", "120"])
                     for s in scripts}
            errors = []
            for office, p in procs.items():
                res = p.wait(180)
                try:
                    check_submit(res, files[office][phase], *exp[office])
                except AssertionError as e:
                    errors.append(str(e))
            if errors:
                # keep going: the totals below are checked whatever the verdict lines say
                problems.append("phase %d:\n%s" % (phase + 1, "\n\n".join(errors)))
                h.log("phase %d: verdict problems (reported at the end):\n%s" % (
                    phase + 1, "\n\n".join(errors)))
            else:
                h.log("phase %d verdicts as expected" % (phase + 1))
        ref = model.totals()
        h.log("reference: %d non-zero keys over %d live records" % (
            len(h.nonzero(ref)), len(model.live_records())))
        c.check_daemons_alive()
        h.assert_totals_equal(c.query(""), ref, "amity-query \"\"")
        for prefix in ("2016-H1/", "2020/all/", "2020/hoi-viet-my/aid_disbursement/US/",
                       "2017-02/", "zzz"):
            h.assert_totals_equal(c.query(prefix), h.filter_prefixes(ref, [prefix]),
                                  "amity-query %r" % prefix)
        sub.wait_equal(ref, timeout=30, what="reference")
        # the example keys of DOMAIN.md have the documented shape
        assert any(k.startswith("2020/all/aid_disbursement/US/amount.USD") for k in ref)
        check_state(c, model, scripts)
        if problems:
            raise AssertionError("totals exact, but amity-submit's verdict report is wrong:\n"
                                 + "\n".join(problems))


if __name__ == "__main__":
    h.run(main, budget_s=280)
