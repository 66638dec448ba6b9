"""amity-report (issue 6): two offices submit a small data set for H1 2016
and H1 2017 (plus records of other periods, a correction and a
retraction); amity-report --period 2017-H1 in English, Vietnamese and JSON,
for all offices and with --office, must show every item's numbers beside
the previous year's with the right percentages. Expected values come from
the harness's independent reference model; the text formatting (grouping,
decimals, U+2212, "new"/"mới", "—") is recomputed here in exact integer
arithmetic. Also: exit 2 on a bad --period/--office/--lang, 69 when notify
does not answer."""

import json
import os

import harness as h

BASE_PORT = 19700
OFFICES = ["hoi-viet-my", "lhht-khanh-hoa"]
PERIOD, PREV = "2017-H1", "2016-H1"
MINUS = "\u2212"


def rec(rid, kind, date, country=None, **fields):
    r = {"id": rid, "kind": kind, "date": date}
    if country:
        r["country"] = country
    r.update(fields)
    return r


def data_set():
    """{office: [record dicts]} in submission order."""
    my = [
        # H1 2017
        rec("in-1", "delegation_in", "2017-03-10", "US", delegations=3, people=25,
            note="Đoàn cựu chiến binh Mỹ thăm Hà Nội"),
        rec("in-2", "delegation_in", "2017-05-02", "US", delegations=2, people=10),
        rec("in-3", "delegation_in", "2017-06-30", "CU", delegations=1, people=4),
        rec("out-1", "delegation_out", "2017-04-11", "US", delegations=1, people=6),
        rec("act-1", "activity", "2017-01-20", activities=12, scope="bilateral"),
        rec("aid-1", "aid_commitment", "2017-02-14", "US", projects=2, amount="1500000.00",
            currency="USD"),
        rec("aid-2", "aid_commitment", "2017-06-01", "US", projects=1, amount="1234.50",
            currency="USD"),
        rec("dis-1", "aid_disbursement", "2017-03-03", "US", amount="250000.00", currency="USD"),
        rec("awd-1", "award", "2017-05-19", "US", awards=3),
        rec("con-1", "contact", "2017-02-02", "US", partners=7),
        # H1 2016
        rec("in-0", "delegation_in", "2016-04-04", "US", delegations=4, people=30),
        rec("out-0", "delegation_out", "2016-03-03", "US", delegations=1, people=5),
        rec("act-0", "activity", "2016-02-02", activities=10),
        rec("aid-0", "aid_commitment", "2016-05-05", "US", projects=1, amount="2000000.00",
            currency="USD"),
        rec("con-0", "contact", "2016-06-06", "US", partners=7),
        # other periods: must count nowhere in this report
        rec("in-h2", "delegation_in", "2017-07-15", "US", delegations=5, people=50),
        rec("act-h2", "activity", "2016-12-01", activities=99),
        rec("in-2015", "delegation_in", "2015-03-01", "US", delegations=9, people=9),
    ]
    kh = [
        # H1 2017
        rec("k-in-1", "delegation_in", "2017-02-10", "LA", delegations=10, people=40,
            note="Tiếp đoàn Hội hữu nghị Lào - Việt Nam"),
        rec("k-in-2", "delegation_in", "2017-03-21", "KR", delegations=1, people=3),
        rec("k-rel-1", "relief", "2017-04-01", amount="600000000", currency="VND",
            note="Cứu trợ đồng bào miền Trung bị lũ lụt"),
        rec("k-org-1", "org_founded", "2017-03-30", orgs=1, level="local"),
        rec("k-act-1", "activity", "2017-05-05", activities=30),
        rec("k-aid-1", "aid_commitment", "2017-06-15", "JP", projects=1, amount="5000000",
            currency="JPY"),
        rec("k-con-1", "contact", "2017-01-09", "LA", partners=2),
        # H1 2016
        rec("k-in-0", "delegation_in", "2016-02-10", "LA", delegations=8, people=20),
        rec("k-in-x", "delegation_in", "2016-03-10", "LA", delegations=5, people=5),
        rec("k-rel-0", "relief", "2016-04-01", amount="500000000", currency="VND"),
        rec("k-act-0", "activity", "2016-05-05", activities=40),
        rec("k-dis-0", "aid_disbursement", "2016-06-06", "JP", amount="10000.00",
            currency="EUR"),
        rec("k-rel-eur", "relief", "2016-01-15", amount="300.00", currency="EUR"),
        # a correction (rev 2) and retractions (rev 2) of records above
        dict(rec("k-act-1", "activity", "2017-05-05", activities=33), rev=2),
        {"id": "k-in-x", "rev": 2, "retract": True},
        {"id": "k-rel-eur", "rev": 2, "retract": True},
    ]
    return {"hoi-viet-my": my, "lhht-khanh-hoa": kh}


# ---------------------------------------------------------------------------
# Expected formatting, independent of the C code


def group(n, lang):
    return "{:,}".format(n).replace(",", "." if lang == "vi" else ",")


def fmt_count(v, lang):
    return (MINUS if v < 0 else "") + group(abs(v), lang)


def fmt_money(minor, cur, lang):
    e = h.EXPONENT[cur]
    whole, frac = divmod(abs(minor), 10 ** e)
    s = (MINUS if minor < 0 else "") + group(whole, lang)
    if frac:
        s += ("," if lang == "vi" else ".") + str(frac).zfill(e)
    return s


def change_tenths(cur, prev):
    """|change| in tenths of a percent, rounded half away from zero, and
    its sign; None when prev is 0."""
    if prev == 0:
        return None
    num, den = abs(cur - prev) * 1000, abs(prev)
    tenths = (2 * num + den) // (2 * den)      # half up on the magnitude
    return (-tenths if cur < prev else tenths)


def fmt_change(cur, prev, lang):
    t = change_tenths(cur, prev)
    if t is None:
        return "\u2014" if cur == 0 else ("mới" if lang == "vi" else "new")
    sign = "" if t == 0 else (MINUS if t < 0 else "+")
    return "%s%s%s%d%%" % (sign, group(abs(t) // 10, lang), "," if lang == "vi" else ".",
                           abs(t) % 10)


# kind -> (en label, vi label, [(metric, en singular, en plural, vi unit)], money)
ITEMS = [
    ("delegation_in", "Delegations received", "Đón đoàn vào",
     [("delegations", "delegation", "delegations", "đoàn"),
      ("people", "person", "people", "khách")], False),
    ("delegation_out", "Delegations sent", "Cử đoàn ra",
     [("delegations", "delegation", "delegations", "đoàn"),
      ("people", "person", "people", "lượt người")], False),
    ("activity", "Local activities", "Hoạt động đối ngoại tại chỗ",
     [("activities", "activity", "activities", "hoạt động")], False),
    ("aid_commitment", "Aid committed", "Viện trợ cam kết",
     [("projects", "project", "projects", "dự án")], True),
    ("aid_disbursement", "Aid disbursed", "Giải ngân", [], True),
    ("relief", "Relief mobilised", "Cứu trợ", [], True),
    ("award", "Awards (orders, medals, commemorative medals)",
     "Khen thưởng (huân, huy chương, kỷ niệm chương)",
     [("awards", "award", "awards", "phần thưởng")], False),
    ("contact", "Partners met", "Đối tác đã gặp",
     [("partners", "partner", "partners", "đối tác")], False),
    ("org_founded", "Organisations founded", "Tổ chức được thành lập",
     [("orgs", "organisation", "organisations", "tổ chức")], False),
]


def value(totals, period, office, kind, metric):
    return totals.get("%s/%s/%s/all/%s" % (period, office, kind, metric), 0)


def currencies(totals, office, kind):
    out = set()
    for p in (PERIOD, PREV):
        pre = "%s/%s/%s/all/amount." % (p, office, kind)
        out |= {k[len(pre):] for k, v in totals.items() if k.startswith(pre) and v != 0}
    return sorted(out)


def expected_lines(totals, office, lang):
    vi = lang == "vi"
    then = "cùng kỳ %s" % PREV[:4] if vi else PREV
    if vi:
        title = ("Báo cáo công tác đối ngoại nhân dân: 6 tháng đầu năm 2017, %s, so với cùng kỳ "
                 "năm trước (6 tháng đầu năm 2016)" % (
                     "toàn Liên hiệp" if office == "all" else "đơn vị " + office))
    else:
        title = ("People's diplomacy report: First half of 2017, %s, compared with the same "
                 "period of the previous year (First half of 2016)" % (
                     "all offices" if office == "all" else "office " + office))
    lines = [title]
    for kind, en, vil, metrics, money in ITEMS:
        parts = []
        for metric, one, many, vunit in metrics:
            cur = value(totals, PERIOD, office, kind, metric)
            prev = value(totals, PREV, office, kind, metric)
            unit = vunit if vi else (one if abs(cur) == 1 else many)
            parts.append("%s %s (%s: %s, %s)" % (fmt_count(cur, lang), unit, then,
                                                 fmt_count(prev, lang),
                                                 fmt_change(cur, prev, lang)))
        if money:
            curs = currencies(totals, office, kind)
            for c in curs:
                cur = value(totals, PERIOD, office, kind, "amount." + c)
                prev = value(totals, PREV, office, kind, "amount." + c)
                parts.append("%s %s (%s: %s %s, %s)" % (fmt_money(cur, c, lang), c, then,
                                                        fmt_money(prev, c, lang), c,
                                                        fmt_change(cur, prev, lang)))
            if not curs and not metrics:
                parts.append("0 (%s: 0, %s)" % (then, fmt_change(0, 0, lang)))
        lines.append("%s: %s" % (vil if vi else en, "; ".join(parts)))
    top = sorted(((v, k.split("/")[3]) for k, v in totals.items()
                  if k.startswith("%s/%s/delegation_in/" % (PERIOD, office))
                  and k.endswith("/delegations") and len(k.split("/")[3]) == 2
                  and k.split("/")[3].isupper() and v > 0),
                 key=lambda x: (-x[0], x[1]))[:5]
    if top:
        lines.append("%s: %s" % ("Nhiều đoàn vào nhất từ" if vi else
                                 "Most delegations received from",
                                 ", ".join("%s %s" % (c, fmt_count(v, lang)) for v, c in top)))
    return lines


# ---------------------------------------------------------------------------


def run_report(c, args, expect_rc=0):
    r = c.run_client(["amity-report", "--notify", c.notify_ep] + args, timeout=30,
                     quiet=expect_rc != 0)
    if r.returncode != expect_rc:
        raise AssertionError("amity-report %s exited %d (expected %d): %s" % (
            " ".join(args), r.returncode, expect_rc, r.stderr[-800:]))
    return r


def check_text(c, totals, office, lang):
    args = ["--period", PERIOD, "--lang", lang] + (["--office", office] if office != "all" else [])
    out = run_report(c, args).stdout
    got = out.split("\n")
    want = expected_lines(totals, office, lang)
    if got[-1] != "":
        raise AssertionError("report output does not end in a newline: %r" % out[-80:])
    got = got[:-1]
    if got != want:
        diff = ["%s report for %s differs:" % (lang, office)]
        for i in range(max(len(got), len(want))):
            g = got[i] if i < len(got) else "<missing>"
            w = want[i] if i < len(want) else "<missing>"
            if g != w:
                diff.append("  line %d\n    got:  %s\n    want: %s" % (i + 1, g, w))
        raise AssertionError("\n".join(diff))
    h.log("%s report for %s: %d lines as expected" % (lang, office, len(got)))
    return out


def check_json(c, totals, office):
    args = ["--period", PERIOD, "--json"] + (["--office", office] if office != "all" else [])
    obj = json.loads(run_report(c, args).stdout)
    assert obj["period"] == PERIOD and obj["previous_period"] == PREV, obj
    assert obj["office"] == office, obj["office"]
    items = obj["items"]
    assert sorted(items) == sorted(i[0] for i in ITEMS), sorted(items)

    def check_pair(node, cur, prev, label, money_cur=None):
        if money_cur:
            assert node["current"] == h.money_str(cur, money_cur), (label, node)
            assert node["previous"] == h.money_str(prev, money_cur), (label, node)
        else:
            assert node["current"] == cur and node["previous"] == prev, (label, node)
        t = change_tenths(cur, prev)
        want = None if t is None else t / 10
        got = node["change_percent"]
        assert got == want and (want is None or isinstance(got, float)), (
            "%s: change_percent %r, expected %r" % (label, got, want))

    for kind, _, _, metrics, money in ITEMS:
        for metric, _, _, _ in metrics:
            check_pair(items[kind][metric], value(totals, PERIOD, office, kind, metric),
                       value(totals, PREV, office, kind, metric), kind + "/" + metric)
        if money:
            curs = currencies(totals, office, kind)
            assert sorted(items[kind]["amount"]) == curs, (kind, items[kind]["amount"], curs)
            for cu in curs:
                check_pair(items[kind]["amount"][cu],
                           value(totals, PERIOD, office, kind, "amount." + cu),
                           value(totals, PREV, office, kind, "amount." + cu),
                           kind + "/amount." + cu, cu)
    h.log("JSON report for %s as expected" % office)
    return obj


def main():
    sets = data_set()
    with h.Cluster("report", BASE_PORT, shards=2, validators=1) as c:
        h.require_binaries(["amity-submit", "amity-query", "amity-report"])
        c.start_all()
        model = h.Model()
        for office in OFFICES:
            for r in sets[office]:
                model.apply(office, r)
            path = h.write_lines(os.path.join(c.dir, office + ".jsonl"),
                                 [h.jsonl(r) for r in sets[office]])
            res = c.submit(office, path, ["--timeout-ms", "2000", "--deadline-s", "60"], timeout=90)
            assert res.returncode == 0 and res.summary is not None and res.summary[2] == 0, res
        expected = model.totals()
        h.wait_until(lambda: h.nonzero(c.query("")) == h.nonzero(expected), 30, 0.3,
                     "amity-query to equal the reference")
        totals = c.query("")
        # the data set is what the test means it to be
        assert value(totals, PERIOD, "all", "delegation_in", "delegations") == 17
        assert value(totals, PREV, "all", "delegation_in", "delegations") == 12   # one retracted
        assert value(totals, PERIOD, "all", "activity", "activities") == 45      # corrected 30->33
        assert value(totals, PREV, "all", "relief", "amount.EUR") == 0           # retracted

        en = check_text(c, totals, "all", "en")
        vi = check_text(c, totals, "all", "vi")
        # spot checks, written out by hand
        assert ("Delegations received: 17 delegations (2016-H1: 12, +41.7%); "
                "82 people (2016-H1: 50, +64.0%)\n") in en, en
        assert ("Aid committed: 4 projects (2016-H1: 1, +300.0%); 5,000,000 JPY (2016-H1: 0 JPY, "
                "new); 1,501,234.50 USD (2016-H1: 2,000,000 USD, \u221224.9%)\n") in en, en
        assert ("Hoạt động đối ngoại tại chỗ: 45 hoạt động (cùng kỳ 2016: 50, "
                "\u221210,0%)\n") in vi, vi
        assert "Cứu trợ: 600.000.000 VND (cùng kỳ 2016: 500.000.000 VND, +20,0%)\n" in vi, vi
        assert "EUR" not in vi.split("Cứu trợ")[1].split("\n")[0], vi
        assert "Nhiều đoàn vào nhất từ: LA 10, US 5, CU 1, KR 1\n" in vi, vi
        for office in OFFICES:
            check_text(c, totals, office, "en")
            check_text(c, totals, office, "vi")
            check_json(c, totals, office)
        obj = check_json(c, totals, "all")
        assert obj["items"]["aid_commitment"]["amount"]["USD"]["change_percent"] == -24.9
        assert obj["top_countries_received"][0] == {"country": "LA", "delegations": 10}

        # usage errors and an unreachable notify
        for args, word in [(["--period", "2017-H3"], "--period"),
                           (["--period", "2017-13"], "--period"),
                           ([], "--period"),
                           (["--period", "2017-H1", "--office", "All"], "--office"),
                           (["--period", "2017-H1", "--lang", "fr"], "--lang")]:
            r = run_report(c, args, expect_rc=2)
            assert word in r.stderr and r.stdout == "", (args, r.stderr)
        r = c.run_client(["amity-report", "--notify", h.ep(c.base + 9), "--timeout-ms", "500",
                          "--period", PERIOD], timeout=30, quiet=True)
        assert r.returncode == 69 and r.stdout == "", (r.returncode, r.stderr)
        h.log("usage errors exit 2, unreachable notify exits 69")


if __name__ == "__main__":
    h.run(main, budget_s=150)
