"""Interoperability: a Python client written from proto/PROTOCOL.md alone
(amity_client.py: Debian's python3-zmq + python3-msgpack) against the real
daemons.

Part 1 (development mode, 2 shards, 2 validators, base port 19800):
subscribe from Python to "2019/" first; submit ~230 records for two offices
(every kind, invalid ones whose reasons must name the field, an explicit
resend = duplicate, a resend after lost replies, corrections rev 2, a
conflict, a stale revision, retractions, a tombstone, Vietnamese notes and a
Vietnamese unknown field name), wait for every verdict; then Python `query`
== the subscriber's folded state == `amity-query 2019/` == an independent
reference computed here. Also: documented `error` replies, a forced resync
(a dropped upd), and a notify restart (epoch change -> resync).

Part 2 (secure mode, base port 19900): when amity-keygen and ingest's
--key/--clients-dir exist, the submit part again over CurveZMQ with a
certificate made by `amity-keygen NAME --office ID`."""

import atexit
import calendar
import os
import random
import shutil
import subprocess
import tempfile
import time
import unicodedata

import harness as h
import amity_client as ac

BASE_PORT = 19800
SECURE_BASE_PORT = 19900
OFFICES = ["hoi-viet-my", "lhh-da-nang"]
PREFIX = "2019/"

# ---------------------------------------------------------------------------
# Domain reference, written here from PROTOCOL.md 4 and 6 (and DOMAIN.md)

EXPONENT = {"USD": 2, "EUR": 2, "VND": 0, "JPY": 0}
REGION = {"US": "americas", "CU": "americas", "JP": "asia", "LA": "asia", "KR": "asia",
          "CN": "asia", "FR": "europe", "DE": "europe", "RU": "europe", "AU": "oceania",
          "NZ": "oceania", "ZA": "africa", "MZ": "africa"}
# kind -> (count metrics, money, country required)
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
KIND_NAMES = list(KINDS)
METRICS = ("delegations", "people", "activities", "projects", "awards", "partners", "orgs")
NOTES = [
    "Đoàn đại biểu Hội hữu nghị Việt - Mỹ thăm Thành phố Đà Nẵng",
    "Tiếp đoàn Hội hữu nghị Lào - Việt Nam; trao Huân chương Hữu nghị",
    "Cứu trợ đồng bào miền Trung bị lũ lụt – quyên góp được 1,2 tỷ đồng",
    "Giao lưu nhân dân Việt Nam - Cu Ba, kỷ niệm năm thiết lập quan hệ ngoại giao",
    "Hội nghị xúc tiến vận động viện trợ phi chính phủ nước ngoài năm 2019",
]


def minor_units(amount, cur):
    e = EXPONENT[cur]
    if type(amount) is int:
        return amount * 10 ** e
    whole, _, frac = amount.partition(".")
    assert len(frac) <= e
    return int(whole) * 10 ** e + (int(frac.ljust(e, "0")) if e else 0)


def contribution(office, rec):
    """{key: value} one live record adds (PROTOCOL.md 4)."""
    y, m, _ = (int(x) for x in rec["date"].split("-"))
    periods = ["%d" % y, "%d-H%d" % (y, 1 if m <= 6 else 2), "%d-Q%d" % (y, (m - 1) // 3 + 1),
               "%d-%02d" % (y, m)]
    geos = ["all"]
    if "country" in rec:
        geos += [REGION[rec["country"]], rec["country"]]
    metrics = [(n, rec[n]) for n in METRICS if n in rec]
    if "amount" in rec:
        metrics.append(("amount." + rec["currency"], minor_units(rec["amount"], rec["currency"])))
    out = {}
    for p in periods:
        for o in (office, "all"):
            for g in geos:
                for n, v in metrics:
                    k = "/".join((p, o, rec["kind"], g, n))
                    out[k] = out.get(k, 0) + v
    return out


def content(rec):
    """What "same content" compares (canonical: no x- fields, no office,
    amount in minor units, rev default 1)."""
    c = {k: v for k, v in rec.items() if not k.startswith("x-") and k != "office"}
    c["rev"] = rec.get("rev", 1)
    if c.get("retract"):
        return (("id", c["id"]), ("retract", True), ("rev", c["rev"]))
    if "amount" in c:
        c["amount"] = minor_units(c["amount"], c["currency"])
    return tuple(sorted(c.items()))


class Reference:
    """Highest rev wins; same rev + same content = duplicate; same rev +
    other content = rejected (conflict); retraction = tombstone."""

    def __init__(self):
        self.recs = {}   # (office, id) -> record dict

    def verdict(self, office, rec):
        key = (office, rec["id"])
        old = self.recs.get(key)
        rev = rec.get("rev", 1)
        if old is None or rev > old.get("rev", 1):
            self.recs[key] = rec
            return "accepted"
        if rev < old.get("rev", 1):
            return "duplicate"
        return "duplicate" if content(old) == content(rec) else "rejected"

    def totals(self, prefix=""):
        out = {}
        for (office, _), rec in self.recs.items():
            if rec.get("retract"):
                continue
            for k, v in contribution(office, rec).items():
                if k.startswith(prefix):
                    out[k] = out.get(k, 0) + v
        return {k: v for k, v in out.items() if v}


# ---------------------------------------------------------------------------
# Data

def make_record(rng, rid, kind, rev=None, year=None):
    metrics, money, needs_country = KINDS[kind]
    y = year or rng.choice([2019] * 6 + [2018, 2020])
    m = rng.randint(1, 12)
    rec = {"id": rid}
    if rev is not None:
        rec["rev"] = rev
    rec["kind"] = kind
    rec["date"] = "%04d-%02d-%02d" % (y, m, rng.randint(1, calendar.monthrange(y, m)[1]))
    if needs_country or rng.random() < 0.5:
        rec["country"] = rng.choice(sorted(REGION))
    for n in metrics:
        rec[n] = rng.randint(0, 60)
    if money:
        cur = rng.choice(sorted(EXPONENT))
        whole = rng.randint(0, 5 * 10 ** 8)
        e = EXPONENT[cur]
        r = rng.random()
        if r < 0.3:
            rec["amount"] = whole                              # uint: whole units
        elif e and r < 0.5:
            rec["amount"] = "%d.%d" % (whole, rng.randint(0, 9))  # fewer decimals
        elif e:
            rec["amount"] = "%d.%02d" % (whole, rng.randint(0, 99))
        else:
            rec["amount"] = str(whole)
        rec["currency"] = cur
    if kind == "activity" and rng.random() < 0.5:
        rec["scope"] = rng.choice(["bilateral", "multilateral"])
    if kind == "org_founded" and rng.random() < 0.5:
        rec["level"] = rng.choice(["central", "local"])
    if rng.random() < 0.4:
        rec["note"] = rng.choice(NOTES)
    if rng.random() < 0.1:
        rec["x-nguồn"] = {"tệp": "báo cáo 6 tháng", "dòng": [1, 2, {"ghi chú": "Hà Nội"}]}
    return rec


def invalid_records(rng, office, other):
    """(record, substring its reason must contain) for records that break a
    rule of PROTOCOL.md 6."""
    def base(rid, kind):
        return make_record(rng, rid, kind, year=2019)
    out = []
    r = base("bad-date", "activity"); r["date"] = "2019-02-29"; out.append((r, "date"))
    r = base("bad-future", "activity"); r["date"] = "2099-01-01"; out.append((r, "date"))
    r = base("bad-early", "award"); r["date"] = "1944-12-31"; out.append((r, "date"))
    r = base("bad-field-vi", "contact"); r["ghi_chú"] = NOTES[1]; out.append((r, "ghi_chú"))
    r = base("bad-country", "award"); r["country"] = "us"; out.append((r, "country"))
    r = base("bad-country-2", "contact"); r["country"] = "XX"; out.append((r, "country"))
    r = base("bad-no-country", "delegation_out"); del r["country"]; out.append((r, "country"))
    r = base("bad-missing", "delegation_in"); del r["people"]; out.append((r, "people"))
    r = base("bad-float", "relief"); r["amount"] = 12.5; r["currency"] = "USD"
    out.append((r, "amount"))
    r = base("bad-decimals", "aid_disbursement"); r["amount"] = "12.345"; r["currency"] = "USD"
    out.append((r, "amount"))
    r = base("bad-vnd-decimals", "relief"); r["amount"] = "1000.5"; r["currency"] = "VND"
    out.append((r, "amount"))
    r = base("bad-no-currency", "relief"); del r["currency"]; out.append((r, "currency"))
    r = base("bad-kind", "activity"); r["kind"] = "banquet"; out.append((r, "kind"))
    r = base("bad-office", "award"); r["office"] = other; out.append((r, "office"))
    r = base("bad-note-bin", "activity"); r["note"] = "Hà Nội".encode("utf-8")
    out.append((r, "note"))
    r = base("bad-note-long", "activity"); r["note"] = "Đà Nẵng " * 120   # > 1024 bytes
    out.append((r, "note"))
    r = base("bad-scope", "delegation_out"); r["scope"] = "bilateral"; out.append((r, "scope"))
    r = base("bad-metric", "award"); r["awards"] = 10 ** 9 + 1; out.append((r, "awards"))
    r = base("bad-negative", "delegation_in"); r["people"] = -1; out.append((r, "people"))
    r = base("bad-extra-metric", "award"); r["people"] = 3; out.append((r, "people"))
    r = base("bad id/1", "activity"); out.append((r, "id"))
    r = base("bad-retract-rev1", "activity"); r = {"id": r["id"], "retract": True}
    out.append((r, "re"))                      # "rev"/"retract": needs rev >= 2
    out.append(("Hà Nội", ""))                 # not a map: rejected, some reason
    return out


# ---------------------------------------------------------------------------

class Checker:
    """problems fail the test; doc notes are places where the daemons and
    PROTOCOL.md disagree without hurting a client that follows the document
    (printed; they fail the test only with AMITY_IT_STRICT_DOC=1)."""

    def __init__(self):
        self.problems = []
        self.doc_notes = []
        self.violations = []

    def check(self, cond, msg):
        if not cond:
            self.problems.append(msg)
            h.log("PROBLEM: " + msg)
        return cond

    def doc(self, cond, msg):
        if not cond:
            self.doc_notes.append(msg)
            h.log("DOC: " + msg)
        return cond

    def verdicts(self, label, office, sent, got, ref):
        """sent: list of (record, expected status or None for the
        reference's, reason substring or None); got: Verdicts."""
        counts = {}
        for (rec, exp, why_sub), v in zip(sent, got):
            rid = rec.get("id") if isinstance(rec, dict) else repr(rec)
            if exp == "invalid":          # breaks a rule: the reference never sees it
                exp = "rejected"
            else:
                want = ref.verdict(office, rec)
                if exp is None:
                    exp = want
                elif want != exp:
                    raise AssertionError("test bug: reference says %s for %s/%s, script %s" % (
                        want, office, rid, exp))
            counts[v.st] = counts.get(v.st, 0) + 1
            if not self.check(v.st == exp, "%s %s/%s: verdict %s (why %r), expected %s" % (
                    label, office, rid, v.st, v.why, exp)):
                continue
            if exp == "rejected":
                self.check(isinstance(v.why, str) and v.why != "",
                           "%s %s/%s: rejected without a reason" % (label, office, rid))
                if why_sub:
                    self.check(why_sub in (v.why or ""),
                               "%s %s/%s: reason %r does not name %r" % (
                                   label, office, rid, v.why, why_sub))
            if v.st == "rejected" and label == "phase A" and office == OFFICES[0]:
                h.log("  %s: rejected: %s" % (rid, v.why))
        h.log("%s %s: %d records: %s" % (label, office, len(sent), counts))
        return counts


def submit_checked(chk, ing, label, office, sent, ref, **kw):
    got = ing.submit([r for r, _, _ in sent], **kw)
    chk.verdicts(label, office, sent, got, ref)
    return got


def error_checks(chk, c):
    """Documented `error` replies (PROTOCOL.md 2.2, 2.4, 3.14, 7)."""
    rec = make_record(random.Random(1), "err-1", "activity", year=2019)
    with ac.Ingest(c.ingest_ep) as ing:
        m = ing.request(ing.submit_msg([(1, rec)]))           # dev mode: office required
        chk.check(m is not None and m.get("t") == "error" and "office" in (m.get("why") or ""),
                  "submit without office: expected error naming office, got %r" % (m,))
        m = ing.request({"v": 2, "t": "submit", "office": OFFICES[0],
                         "recs": [{"tag": 1, "rec": rec}]})
        chk.check(m is not None and m.get("t") == "error" and
                  (m.get("why") or "").startswith("v: unsupported version 2"),
                  "submit v=2: expected error 'v: unsupported version 2 ...', got %r" % (m,))
        m = ing.request({"v": 1, "t": "submit", "office": OFFICES[0],
                         "recs": [{"tag": 1, "rec": rec}, {"tag": "2", "rec": rec}]})
        chk.check(m is not None and m.get("t") == "error" and
                  (m.get("why") or "").startswith("recs[1].tag"),
                  "submit with a str tag: expected error 'recs[1].tag: ...', got %r" % (m,))
        m = ing.request(ac.pack({"v": 1, "t": "submit", "office": OFFICES[0],
                                 "recs": [{"tag": 1, "rec": rec}]}) + b"\x00")
        chk.check(m is not None and m.get("t") == "error" and
                  "trailing bytes" in (m.get("why") or ""),
                  "submit with a trailing byte: expected error 'trailing bytes', got %r" % (m,))
        m = ing.request({"v": 1, "t": "submit", "office": OFFICES[0]})
        chk.check(m is not None and m.get("t") == "error" and "recs" in (m.get("why") or ""),
                  "submit without recs: expected error naming recs, got %r" % (m,))
        chk.violations += ing.violations
    # notify
    with ac.Ingest(c.notify_ep) as n:     # a plain DEALER; Ingest is just the socket helper
        m = n.request({"v": 1, "t": "query", "req": 77})
        if chk.check(m is not None and m.get("t") == "error" and "prefix" in (m.get("why") or ""),
                     "query without prefix: expected an error naming prefix, got %r" % (m,)):
            chk.doc(m.get("req") == 77 and m["why"].startswith("prefix:"),
                    "query {req: 77} without prefix: PROTOCOL.md 3.14 says error.req is 'the "
                    "refused request's req, when it had one' and 2.4 shows reasons starting "
                    "with the field; notify answered %r" % (m,))
        m = n.request({"v": 1, "t": "ping"})
        chk.check(m is not None and m.get("t") == "error" and m.get("why") == "not subscribed",
                  "ping without sub: expected error 'not subscribed', got %r" % (m,))
        m = n.request({"v": 1, "t": "sub", "req": 78, "prefixes": ["2019/"] * 65})
        if chk.check(m is not None and m.get("t") == "error" and
                     "prefixes: 65 prefixes exceed the limit of 64" in (m.get("why") or ""),
                     "sub with 65 prefixes: expected error 'prefixes: 65 prefixes exceed the "
                     "limit of 64', got %r" % (m,)):
            chk.doc(m.get("req") == 78 and m["why"] == "prefixes: 65 prefixes exceed the limit "
                    "of 64", "sub {req: 78} with 65 prefixes: PROTOCOL.md 3.14 gives the reason "
                    "'prefixes: 65 prefixes exceed the limit of 64' and error.req = the "
                    "request's req; notify answered %r" % (m,))
        chk.violations += n.violations


def wait_equal(get, expected, timeout, label):
    deadline = time.monotonic() + timeout
    while True:
        actual = {k: v for k, v in get().items() if v}
        if actual == expected:
            h.log("%s == reference (%d keys)" % (label, len(expected)))
            return
        if time.monotonic() >= deadline:
            h.assert_totals_equal(actual, expected, label)
        time.sleep(0.2)


def part_dev(chk):
    rng = random.Random(20190519)
    ref = Reference()
    with h.Cluster("pyclient", BASE_PORT, shards=2, validators=2) as c:
        h.require_binaries(["amity-query"])
        c.start_all()
        sub = ac.Subscriber(c.notify_ep, [PREFIX], log=h.log, label="sub['2019/']").start()
        sub_all = None
        ings = {}
        try:
            sub.wait(lambda s: s.synced, 20, "the first snapshot")
            h.log("subscribed to %r: %s" % (PREFIX, sub.stats()))
            error_checks(chk, c)
            for o in OFFICES:
                ings[o] = ac.Ingest(c.ingest_ep, office=o, timeout=5.0)
            base = {o: {} for o in OFFICES}

            # ---- phase A: every kind, Vietnamese notes, invalid records
            for i, o in enumerate(OFFICES):
                other = OFFICES[1 - i]
                sent = []
                for j in range(90):
                    rec = make_record(rng, "r-%04d" % j, KIND_NAMES[j % len(KIND_NAMES)])
                    base[o][rec["id"]] = rec
                    sent.append((rec, None, None))
                vn = make_record(rng, "vn-note", "activity", year=2019)
                vn["note"] = ("Hội hữu nghị Việt Nam – Hoa Kỳ tổ chức giao lưu tại Đà Nẵng; "
                              "đồng chủ trì: ông Nguyễn Văn Ánh, bà Trần Thị Ửng. ✓ 日本")
                vn["x-chi-tiết"] = {"địa điểm": "Hội An", "số người": [12, {"khách": "Mỹ"}]}
                base[o]["vn-note"] = vn
                sent.append((vn, None, None))
                own = make_record(rng, "own-office", "delegation_in", year=2019)
                own["office"] = o                  # equal to the sender: fine
                sent.append((own, None, None))
                for rec, why in invalid_records(rng, o, other):
                    sent.append((rec, "invalid", why))
                submit_checked(chk, ings[o], "phase A", o, sent, ref)

            # ---- phase B: resends, lost replies, corrections, conflicts, tombstone
            sub.drop_next_upd()                    # must be noticed: resync
            for o in OFFICES:
                sent = []
                for rid in ("r-0001", "r-0010", "r-0020", "r-0055", "r-0089", "vn-note"):
                    sent.append((base[o][rid], "duplicate", None))        # explicit resends
                for rid in ("r-0002", "r-0011", "r-0023", "r-0034", "r-0045", "r-0050",
                            "r-0067", "r-0078"):
                    kind = base[o][rid]["kind"]
                    sent.append((make_record(rng, rid, kind, rev=2), "accepted", None))
                conf = dict(base[o]["r-0003"])
                conf["rev"] = 1
                conf["date"] = "2019-12-31" if conf["date"] != "2019-12-31" else "2019-12-30"
                sent.append((conf, "rejected", "rev"))                     # conflict
                nfd = dict(base[o]["vn-note"])
                nfd["note"] = unicodedata.normalize("NFD", nfd["note"])
                assert nfd["note"] != base[o]["vn-note"]["note"]
                sent.append((nfd, "rejected", "rev"))      # bytes differ: a conflict
                sent.append(({"id": "tomb-1", "rev": 2, "retract": True}, "accepted", None))
                submit_checked(chk, ings[o], "phase B", o, sent, ref)
                # lost replies: the client resends after its timeout, the
                # records are counted once (duplicate = success)
                lost = [make_record(rng, "lost-%d" % k, KIND_NAMES[k], year=2019)
                        for k in range(4)]
                for rec in lost:
                    ref.verdict(o, rec)
                got = ings[o].submit(lost, timeout=4.0, lose_first_replies=True)
                chk.check(ings[o].resends >= len(lost) and ings[o].lost >= len(lost),
                          "lost replies: resends %d, lost %d" % (ings[o].resends, ings[o].lost))
                for v in got:
                    chk.check(v.st == "duplicate" and v.attempt >= 1,
                              "resend after lost replies: %r (attempt %d), expected a duplicate"
                              % (v, v.attempt))
            h.log("phase B done; lost-reply resends: %s" % (
                {o: ings[o].resends for o in OFFICES}))

            # ---- phase C: stale revision, retractions, tombstoned id, rev 2 note
            for o in OFFICES:
                sent = [(base[o]["r-0011"], "duplicate", None),            # stale rev 1
                        ({"id": "r-0005", "rev": 2, "retract": True}, "accepted", None),
                        ({"id": "r-0023", "rev": 3, "retract": True}, "accepted", None),
                        ({"id": "r-0060", "rev": 9, "retract": True, "kind": "ignored"},
                         "accepted", None),
                        (make_record(rng, "tomb-1", "relief", year=2019), "duplicate", None)]
                vn2 = dict(base[o]["vn-note"])
                vn2["rev"] = 2
                vn2["note"] = "Đính chính: số người tham dự là 35 – không phải 12."
                vn2["activities"] = vn2["activities"] + 7
                sent.append((vn2, "accepted", None))
                submit_checked(chk, ings[o], "phase C", o, sent, ref)
            # ---- phase D: older years (outside "2019/"), enough keys that a
            # snapshot of everything needs several chunks (10000 keys each)
            for o in OFFICES:
                bulk = [(make_record(rng, "old-%04d" % j, KIND_NAMES[j % len(KIND_NAMES)],
                                     year=rng.randint(1946, 2018)), None, None)
                        for j in range(160)]
                for rec, _, _ in bulk:
                    if "country" not in rec:
                        rec["country"] = rng.choice(sorted(REGION))
                submit_checked(chk, ings[o], "phase D", o, bulk, ref)
            for o in OFFICES:
                chk.violations += ings[o].violations
            sub_all = ac.Subscriber(c.notify_ep, ["19", "20"], log=h.log,
                                    label="sub['19','20']").start()

            # ---- the example client of PROTOCOL.md 9, as printed
            doc_example(chk, c, ref)

            # ---- compare
            exp = ref.totals(PREFIX)
            h.log("reference: %d non-zero keys under %r over %d records" % (
                len(exp), PREFIX, len(ref.recs)))
            chk.check(len(exp) > 300, "test data too small: %d keys" % len(exp))
            qviol = []
            wait_equal(lambda: ac.query(c.notify_ep, PREFIX, violations=qviol).kv, exp, 30,
                       "python query %r" % PREFIX)
            snap = ac.query(c.notify_ep, PREFIX, violations=qviol)
            h.log("python query: %r" % snap)
            wait_equal(sub.state, exp, 20, "python subscriber %r" % PREFIX)
            h.assert_totals_equal(c.query(PREFIX), exp, "amity-query %r" % PREFIX)
            h.log("amity-query %r == reference" % PREFIX)
            exp2019 = ref.totals("2019")
            h.assert_totals_equal(ac.query(c.notify_ep, "2019", violations=qviol).kv, exp2019,
                                  "python query '2019'")
            chk.check(len(exp2019) > len(exp), "'2019' should match more keys than '2019/'")
            every = ref.totals()
            snap_all = ac.query(c.notify_ep, "", violations=qviol)
            h.assert_totals_equal(snap_all.kv, every, "python query ''")
            h.log("python queries '2019' (%d keys) and '' (%d keys) == reference; %r" % (
                len(exp2019), len(every), snap_all))
            chk.check(snap_all.chunks >= 2, "query '': %d keys came in %d chunk(s); the test "
                      "wanted several" % (len(snap_all.kv), snap_all.chunks))
            zeros = sorted(k for k, v in snap_all.kv.items() if v == 0)
            h.log("query '': %d keys hold 0 (totals moved back to 0 by corrections and "
                  "retractions), e.g. %s" % (len(zeros), zeros[:2]))
            h.assert_totals_equal(c.query(""), every, "amity-query ''")
            sub_all.wait(lambda s: s.synced, 20, "the ['19', '20'] subscriber's snapshot")
            wait_equal(sub_all.state, every, 20, "python subscriber ['19', '20']")
            h.log("subscriber ['19', '20']: %s" % sub_all.stats())
            chk.check(sub.pongs_ok > 0, "no pong matched the subscriber's last seq")
            chk.check(sub.dropped == 1, "the dropped-upd hook did not fire (%d)" % sub.dropped)
            chk.check(any("prev" in r or "pong seq" in r for r in sub.resyncs),
                      "a dropped upd did not cause a resync: %s" % sub.resyncs)
            h.log("subscriber: %s" % sub.stats())

            # ---- notify restart: new epoch, the subscriber resyncs
            n_snap = sub.snapshots
            epoch0 = sub.epoch
            c.restart("notify")
            sub.wait(lambda s: s.synced and s.epoch != epoch0 and s.snapshots > n_snap, 30,
                     "a resync with notify's new epoch")
            wait_equal(sub.state, exp, 20, "python subscriber after notify restart")
            h.assert_totals_equal(ac.query(c.notify_ep, PREFIX, violations=qviol).kv, exp,
                                  "python query after notify restart")
            h.log("after notify restart: %s" % sub.stats())
            sub_all.wait(lambda s: s.synced and s.epoch != epoch0, 30,
                         "the ['19', '20'] subscriber's resync")
            wait_equal(sub_all.state, every, 20, "python subscriber ['19', '20'] after restart")
            chk.violations += qviol
        finally:
            sub.close()
            if sub_all is not None:
                sub_all.close()
            for i in ings.values():
                i.close()
        for s in (sub, sub_all):
            chk.violations += s.violations
            chk.check(s.exc is None, "subscriber thread: %r" % (s.exc,))


def doc_example(chk, c, ref):
    """Runs the Python client printed in PROTOCOL.md section 9 unchanged
    (its functions; endpoints passed as arguments)."""
    path = os.path.join(h.SOURCE_DIR, "proto", "PROTOCOL.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start = text.index("```python\n") + len("```python\n")
    code = text[start:text.index("```", start)]
    ns = {"__name__": "protocol_md_example"}
    exec(compile(code, "PROTOCOL.md section 9", "exec"), ns)
    rec = {"id": "doc-example", "kind": "delegation_in", "date": "2019-09-02",
           "country": "US", "delegations": 1, "people": 12,
           "note": "Đoàn Hội hữu nghị Việt – Mỹ"}
    try:
        res = ns["submit"]([rec], office=OFFICES[0], ep=c.ingest_ep, timeout=5.0)
        ref.verdict(OFFICES[0], rec)
        chk.check(res == {1: ("accepted", None)}, "PROTOCOL.md 9 submit(): %r" % (res,))
        res = ns["submit"]([rec], office=OFFICES[0], ep=c.ingest_ep, timeout=5.0)
        chk.check(res == {1: ("duplicate", None)}, "PROTOCOL.md 9 submit() again: %r" % (res,))
        gen = ns["subscribe"]([PREFIX], ep=c.notify_ep)
        t0 = time.monotonic()
        snapshot, seq, kv = next(gen)       # the first thing it yields: the snapshot
        gen.close()
        want = ref.totals(PREFIX)
        got = {k: v for k, v in kv.items() if v}
        # the snapshot may predate the doc-example record's totals by a moment
        if got != want:
            h.log("PROTOCOL.md 9 subscribe(): first snapshot differs (%d vs %d keys); "
                  "retrying once" % (len(got), len(want)))
            time.sleep(1.0)
            gen = ns["subscribe"]([PREFIX], ep=c.notify_ep)
            snapshot, seq, kv = next(gen)
            gen.close()
            got = {k: v for k, v in kv.items() if v}
        chk.check(snapshot is True and got == want,
                  "PROTOCOL.md 9 subscribe(): snapshot=%r, %d keys, reference %d" % (
                      snapshot, len(got), len(want)))
        h.log("PROTOCOL.md 9 example: submit accepted then duplicate; subscribe() snapshot "
              "at seq %d == reference (%d keys) in %.2fs" % (seq, len(got),
                                                           time.monotonic() - t0))
    finally:
        ns["ctx"].destroy(linger=0)


def secure_available():
    if not os.access(h.binary("amity-keygen"), os.X_OK):
        return "amity-keygen not built"
    r = subprocess.run([h.binary("amity-ingest"), "--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    text = r.stdout.decode("utf-8", "replace")
    if "--key" not in text or "--clients-dir" not in text:
        return "amity-ingest has no --key/--clients-dir"
    return None


def keygen(path, *args):
    r = subprocess.run([h.binary("amity-keygen"), path] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    if r.returncode != 0:
        raise AssertionError("amity-keygen %s %s: rc %d: %s" % (
            path, " ".join(args), r.returncode, r.stdout.decode("utf-8", "replace")))


def part_secure(chk):
    import zmq.auth
    why = secure_available()
    if why:
        h.log("NOTE: secure part skipped: %s" % why)
        return
    keys = h.mkdtemp("pykeys")
    clients = os.path.join(keys, "clients")
    os.mkdir(clients)
    office, other = OFFICES
    keygen(os.path.join(keys, "ingest"), "--name", "ingest")
    keygen(os.path.join(keys, office), "--office", office)
    keygen(os.path.join(keys, "stranger"), "--office", other)      # not admitted
    shutil.copy(os.path.join(keys, office), os.path.join(clients, office))
    server_public, _ = zmq.auth.load_certificate(os.path.join(keys, "ingest"))
    public, secret = zmq.auth.load_certificate(os.path.join(keys, office + "_secret"))
    s_public, s_secret = zmq.auth.load_certificate(os.path.join(keys, "stranger_secret"))
    rng = random.Random(4242)
    ref = Reference()
    extra = {"ingest": ["--key", os.path.join(keys, "ingest_secret"), "--clients-dir", clients]}
    with h.Cluster("pyclient-sec", SECURE_BASE_PORT, shards=1, validators=1, extra=extra) as c:
        c.start_all()
        curve = (server_public, public, secret)
        with ac.Ingest(c.ingest_ep, office=other, curve=curve, timeout=5.0) as ing:
            # PROTOCOL.md 1.2: a submit whose office names another office than
            # the key's is refused as a whole with error "office: ..."
            probe = make_record(rng, "s-probe", "contact", year=2019)
            try:
                got = ing.submit([probe])
                chk.doc(False, "secure: a submit whose office names another office was "
                        "answered %r (PROTOCOL.md 1.2: refused with error)" % got)
                ref.verdict(office, probe)
                chk.check(got[0].st == "accepted", "secure probe: %r" % got[0])
            except ac.Refused as e:
                chk.check(e.why.startswith("office:"),
                          "secure: refusal does not start with 'office:': %r" % e.why)
                h.log("secure: submit naming another office refused: %r" % e.why)
        with ac.Ingest(c.ingest_ep, office=None, curve=curve, timeout=5.0) as ing:
            sent = [(make_record(rng, "s-%03d" % j, KIND_NAMES[j % 9]), None, None)
                    for j in range(45)]
            own = make_record(rng, "s-own", "award", year=2019)
            own["office"] = office
            sent.append((own, None, None))
            bad = make_record(rng, "s-other", "award", year=2019)
            bad["office"] = other                 # differs from the key's office
            sent.append((bad, "invalid", "office"))
            sent.append((make_record(rng, "s-bad", "award", year=2019) | {"kind": "x"},
                         "invalid", "kind"))
            submit_checked(chk, ing, "secure", office, sent, ref)
            again = ing.submit([sent[0][0]], office=office)   # the key's own office: fine
            chk.check(again[0].st == "duplicate", "secure resend: %r" % again[0])
            chk.violations += ing.violations
        exp = ref.totals("")
        qviol = []
        wait_equal(lambda: ac.query(c.notify_ep, "", violations=qviol).kv, exp, 30,
                   "secure: python query ''")
        chk.check(not any(("/%s/" % other) in k for k in exp), "test bug: other office keys")
        h.assert_totals_equal(c.query(PREFIX), ref.totals(PREFIX), "secure: amity-query 2019/")
        h.log("secure: amity-query %r == reference" % PREFIX)
        chk.violations += qviol
        # a key the ingest does not know, and no key at all: no verdict
        for label, curve in (("unknown key", (server_public, s_public, s_secret)),
                             ("no key", None)):
            with ac.Ingest(c.ingest_ep, office=other, curve=curve) as ing:
                try:
                    got = ing.submit([make_record(rng, "intruder", "award", year=2019)],
                                     timeout=2.0, attempts=1)
                    chk.check(False, "secure: %s client got a verdict: %r" % (label, got))
                except AssertionError:
                    h.log("secure: %s client got no verdict (as it should)" % label)
        h.assert_totals_equal(ac.query(c.notify_ep, "").kv, exp, "secure: after intruders")


def private_tmp():
    """The harness's temp dirs go below a private directory of this test (a
    shared /tmp saw /tmp/amity-it-* removed under a running test)."""
    top = tempfile.mkdtemp(prefix="pyclient-it-")
    tempfile.tempdir = top
    atexit.register(shutil.rmtree, top, True)
    h._ALL_TMPDIRS.append(top)   # removed by the harness's cleanup on a signal too
    return top


def main():
    t0 = time.monotonic()
    top = private_tmp()
    chk = Checker()
    try:
        part_dev(chk)
        h.log("part 1 (development mode) done in %.1fs" % (time.monotonic() - t0))
        part_secure(chk)
    finally:
        if not os.environ.get("AMITY_IT_KEEP"):
            shutil.rmtree(top, ignore_errors=True)
    for v in chk.violations:
        chk.problems.append("protocol violation: %s" % v)
    if chk.doc_notes:
        h.log("%d places where the daemons and PROTOCOL.md disagree:\n  %s" % (
            len(chk.doc_notes), "\n  ".join(chk.doc_notes)))
        if os.environ.get("AMITY_IT_STRICT_DOC"):
            chk.problems += ["doc: " + n for n in chk.doc_notes]
    if chk.problems:
        raise AssertionError("%d problems:\n  %s" % (len(chk.problems),
                                                     "\n  ".join(chk.problems[:60])))


if __name__ == "__main__":
    h.run(main, budget_s=280)
