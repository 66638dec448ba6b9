#!/usr/bin/python3
"""Checks deploy/examples/four-hosts: make-keys.sh (with the built
amity-keygen) lays out one bundle per host; each host's amity.ini names only
options its daemons have, only files its bundle holds, and the four files
agree with each other (shards, shard keys, endpoints); each host gets the
secret keys its units load and no others. Each daemon's `--check-config`
passes on its host's bundle (real keys) with the flags its unit adds.

Exit 0 pass, 1 fail.
"""
import os
import re
import shutil
import stat
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib as dl  # noqa: E402

OFFICES = ["hoi-viet-my", "vusta"]


def cert_meta(path):
    """(metadata dict, public key) of a zcert file."""
    meta, public = {}, None
    for line in open(path, encoding="utf-8"):
        m = re.match(r'^\s+([a-z-]+)\s*=\s*"(.*)"\s*$', line)
        if m:
            if m.group(1) == "public-key":
                public = m.group(2)
            else:
                meta[m.group(1)] = m.group(2)
    return meta, public


def unit_daemon(unit):
    return re.match(r"amity-([a-z]+)", unit).group(1)


def unit_instance(unit):
    m = re.match(r"amity-[a-z]+@([^.]+)\.service$", unit)
    return m.group(1) if m else None


def credentials(unit):
    """[(id, source path)] LoadCredential= of a unit instance."""
    tmpl = unit if "@" not in unit else re.sub(r"@[^.]*\.", "@.", unit)
    out = []
    for v in dl.unit_values(os.path.join(dl.UNITS_DIR, tmpl), "LoadCredential"):
        cid, _, src = v.partition(":")
        out.append((cid, src.replace("%i", unit_instance(unit) or "")))
    return out, tmpl


def main():
    c = dl.Checks("deploy_examples")
    keygen = os.path.join(dl.BIN, "amity-keygen")
    if not c.ok(os.access(keygen, os.X_OK), "amity-keygen built in %s" % dl.BIN):
        c.finish()
    dl.check_security_options(c)
    scripts = [os.path.join(dl.EXAMPLE, "make-keys.sh"), os.path.join(dl.DEPLOY, "k8s", "secrets.sh")]
    if shutil.which("shellcheck"):
        r = dl.run(["shellcheck", "-s", "sh"] + scripts, timeout=60)
        c.ok(r.returncode == 0, "shellcheck: make-keys.sh, secrets.sh", r.stdout[-1500:])
    else:
        c.note("shellcheck not installed: deploy scripts not linted")
    tmp = tempfile.mkdtemp(prefix="amity-examples-")
    try:
        keys = os.path.join(tmp, "keys")
        r = dl.run(["/bin/sh", os.path.join(dl.EXAMPLE, "make-keys.sh"), keys] + OFFICES,
                   env=dict(os.environ, AMITY_KEYGEN=keygen), timeout=60)
        if not c.ok(r.returncode == 0, "make-keys.sh makes the keys and bundles",
                    r.stdout + r.stderr):
            c.finish()
        # again: keeps the keys, rebuilds the bundles
        before = cert_meta(os.path.join(keys, "ca", "svc-shard-0.cert"))[1]
        r = dl.run(["/bin/sh", os.path.join(dl.EXAMPLE, "make-keys.sh"), keys] + OFFICES,
                   env=dict(os.environ, AMITY_KEYGEN=keygen), timeout=60)
        c.ok(r.returncode == 0 and before == cert_meta(
            os.path.join(keys, "ca", "svc-shard-0.cert"))[1],
            "make-keys.sh run again keeps the existing keys")

        inis = {h: dl.read_ini(os.path.join(dl.EXAMPLE, h, "amity.ini")) for h in dl.HOSTS}
        units = {h: [l.strip() for l in open(os.path.join(dl.EXAMPLE, h, "units.txt"))
                     if l.strip()] for h in dl.HOSTS}
        all_units = [u for h in dl.HOSTS for u in units[h]]
        c.ok(sorted(unit_daemon(u) for u in all_units) ==
             sorted(["ingest", "validate", "validate", "aggregate", "aggregate", "notify"]),
             "four hosts run ingest, 2 validators, 2 shards, notify", str(all_units))

        shards = None
        for h in dl.HOSTS:
            ini, root = inis[h], os.path.join(keys, "hosts", h)
            etc = os.path.join(root, "etc", "amity")
            daemons = sorted(set(unit_daemon(u) for u in units[h]))
            c.ok(sorted(ini) == daemons, "%s: amity.ini has a section per daemon of units.txt"
                 % h, "%s vs %s" % (sorted(ini), daemons))
            # options
            for sec, kv in ini.items():
                have = dl.options_of(sec)
                if have is None:
                    c.ok(False, "amity-%s built" % sec)
                    continue
                unknown = set(kv) - have
                c.ok(not unknown, "%s [%s]: every key is an option of amity-%s" % (h, sec, sec),
                     ", ".join(sorted(unknown)))
                # every file the section names is in the host's bundle
                for k, v in kv.items():
                    for item in dl.split_list(v):
                        if item.startswith("/etc/amity/"):
                            p = os.path.join(root, item.lstrip("/"))
                            want_dir = k.endswith("-dir")
                            c.ok(os.path.isdir(p) if want_dir else os.path.isfile(p),
                                 "%s [%s] %s: %s is in the bundle" % (h, sec, k, item))
                if "shards" in kv:
                    s = dl.split_list(kv["shards"])
                    if shards is None:
                        shards = s
                    c.ok(s == shards, "%s [%s]: same shards list as the others" % (h, sec),
                         "%s vs %s" % (s, shards))
                    sk = dl.split_list(kv.get("shard-keys", ""))
                    c.ok(sk == ["/etc/amity/peers/svc-shard-%d.cert" % i for i in range(len(s))],
                         "%s [%s]: shard-keys = svc-shard-N.cert in shard order" % (h, sec), str(sk))
            # secrets: exactly what this host's units load
            want = set()
            for u in units[h]:
                creds, tmpl = credentials(u)
                c.ok(os.path.exists(os.path.join(dl.UNITS_DIR, tmpl)), "%s: unit %s exists" % (h, u))
                for cid, src in creds:
                    want.add(os.path.basename(src))
                    p = os.path.join(root, src.lstrip("/"))
                    ok = os.path.isfile(p)
                    c.ok(ok and stat.S_IMODE(os.stat(p).st_mode) == 0o600,
                         "%s: %s's credential %s (%s) is in the bundle, mode 0600" % (h, u, cid, src))
            sdir = os.path.join(etc, "secret")
            c.ok(stat.S_IMODE(os.stat(sdir).st_mode) == 0o700, "%s: secret dir is 0700" % h)
            have = set(os.listdir(sdir))
            c.ok(have == want, "%s: holds exactly the secret keys its units load" % h,
                 "has %s, units load %s" % (sorted(have), sorted(want)))
            # peers: services only; clients: offices (+ subscribers on notify's host)
            for f in os.listdir(os.path.join(etc, "peers")):
                meta, _ = cert_meta(os.path.join(etc, "peers", f))
                c.ok("office" not in meta and f.startswith("svc-"),
                     "%s: peers/%s is a service key" % (h, f))
            cdir = os.path.join(etc, "clients")
            if "ingest" in daemons or "notify" in daemons:
                certs = {f: cert_meta(os.path.join(cdir, f))[0] for f in os.listdir(cdir)}
                offices = sorted(m["office"] for m in certs.values() if "office" in m)
                c.ok(offices == sorted(OFFICES), "%s: clients/ admits the offices" % h, str(offices))
                subs = [f for f, m in certs.items() if "office" not in m]
                if "notify" in daemons:
                    c.ok(subs == ["secretariat.cert"], "%s: clients/ admits the subscriber" % h)
                else:
                    c.ok(subs == [], "%s: ingest's clients/ holds offices only" % h, str(subs))
            else:
                c.ok(not os.path.exists(cdir), "%s: no clients/ (no server for offices here)" % h)
            c.ok(sorted(open(os.path.join(etc, "units.txt")).read().split()) == sorted(units[h]),
                 "%s: bundle carries units.txt" % h)

        # endpoints agree across hosts
        ing = inis["edge"]["ingest"]
        for h in dl.HOSTS:
            if "validate" in inis[h]:
                v = inis[h]["validate"]
                c.ok(dl.split_list(v["ingest"]) == [ing["work"]],
                     "%s: validate connects to ingest's work endpoint" % h)
                c.ok(dl.split_list(v.get("ingest-keys", "")) ==
                     ["/etc/amity/peers/svc-ingest.cert"],
                     "%s: validate's ingest-keys is svc-ingest's public cert" % h)
            for u in units[h]:
                if unit_daemon(u) == "aggregate":
                    i = int(unit_instance(u))
                    c.ok(shards and i < len(shards) and inis[h]["aggregate"]["bind"] == shards[i],
                         "%s: shard %d binds shards[%d]" % (h, i, i))
                    sec = os.path.join(keys, "hosts", h, "etc", "amity", "secret",
                                       "svc-shard-%d.cert_secret" % i)
                    for other in dl.HOSTS:
                        pub = os.path.join(keys, "hosts", other, "etc", "amity", "peers",
                                           "svc-shard-%d.cert" % i)
                        c.ok(cert_meta(pub)[1] == cert_meta(sec)[1],
                             "%s's svc-shard-%d.cert matches shard %d's secret key" % (other, i, i))
        c.ok(len(shards or []) == 2, "two shards", str(shards))

        check_configs(c, keys, inis, units)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    c.finish()


def check_configs(c, keys, inis, units):
    """amity-D --config (bundle copy) --check-config + the unit's flags."""
    for h in dl.HOSTS:
        root = os.path.join(keys, "hosts", h)
        text = open(os.path.join(dl.EXAMPLE, h, "amity.ini"), encoding="utf-8").read()
        ini = os.path.join(root, "amity-test.ini")
        with open(ini, "w", encoding="utf-8") as f:
            f.write(text.replace("/etc/amity/", root + "/etc/amity/"))
        for u in units[h]:
            d = unit_daemon(u)
            creds, tmpl = credentials(u)
            flags = []
            start = dl.exec_flags(dl.unit_value(os.path.join(dl.UNITS_DIR, tmpl), "ExecStart"))
            for flag, val in start.items():
                if flag == "config" or val is True:
                    continue
                for cid, src in creds:
                    val = val.replace("%d/" + cid, root + src)
                val = val.replace("%i", unit_instance(u) or "").replace("%S", root + "/var/lib")
                flags += ["--" + flag, val]
            r = dl.run([os.path.join(dl.BIN, "amity-" + d), "--config", ini] + flags +
                       ["--check-config"], timeout=20)
            c.ok(r.returncode == 0, "%s: %s --check-config passes on the bundle" % (h, u),
                 (r.stdout + r.stderr)[-1500:])


if __name__ == "__main__":
    main()
