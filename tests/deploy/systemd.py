#!/usr/bin/python3
"""Checks the systemd units of deploy/systemd:

- `systemd-analyze verify` on copies whose ExecStart points at the built
  binaries (AMITY_BIN_DIR), templates as instances, alone and with each
  example host's drop-ins: no error and no warning;
- `systemd-analyze security --offline=yes`: each unit's overall exposure
  at most THRESHOLD (what they score on Debian 12's systemd 252: 1.2, or
  1.1 with the example's IP allow lists);
- the directives issue 7 asks for (Type=notify, WatchdogSec=30,
  Restart=on-failure, RestartPreventExitStatus=2, LoadCredential= passed
  through %d, the hardening set);
- every flag in ExecStart is an option of the built daemon, and every
  daemon has the security options (deploylib.SECURITY_OPTIONS).

Exit 0 pass, 1 fail, 77 skip (no systemd-analyze).
"""
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib as dl  # noqa: E402

THRESHOLD = 1.2

INSTANCES = {
    "amity-ingest.service": "amity-ingest.service",
    "amity-notify.service": "amity-notify.service",
    "amity-validate@.service": "amity-validate@1.service",
    "amity-aggregate@.service": "amity-aggregate@0.service",
}

REQUIRED = {
    "Type": "notify",
    "WatchdogSec": "30",
    "Restart": "on-failure",
    "RestartPreventExitStatus": "2",
    "DynamicUser": "yes",
    "NoNewPrivileges": "yes",
    "PrivateTmp": "yes",
    "ProtectHome": "yes",
    "ProtectSystem": "strict",
    "MemoryDenyWriteExecute": "yes",
    "CapabilityBoundingSet": "",
    "SystemCallArchitectures": "native",
}


def copy_units(dst, dropins_from=None):
    os.makedirs(dst)
    for f in dl.unit_files():
        text = open(os.path.join(dl.UNITS_DIR, f), encoding="utf-8").read()
        text = text.replace("/usr/local/bin/", dl.BIN.rstrip("/") + "/")
        with open(os.path.join(dst, f), "w", encoding="utf-8") as out:
            out.write(text)
    if dropins_from and os.path.isdir(dropins_from):
        shutil.copytree(dropins_from, dst, dirs_exist_ok=True)


def verify(c, where, label):
    names = list(INSTANCES.values()) + ["amity.target"]
    r = dl.run(["systemd-analyze", "verify"] + ["./" + n for n in names], cwd=where,
               timeout=60)
    out = (r.stdout + r.stderr).strip()
    c.ok(r.returncode == 0 and not out, "verify %s: no error, no warning" % label,
         "exit %d:\n%s" % (r.returncode, out))


def exposure(c, where, unit, label, threshold):
    r = dl.run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                # --threshold takes tenths: 12 is an exposure of 1.2
                "--threshold=%d" % round(threshold * 10), "./" + unit], cwd=where, timeout=60)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
    score = float(m.group(1)) if m else None
    c.ok(score is not None and score <= threshold and r.returncode == 0,
         "security %s %s: exposure %s <= %s" % (label, unit, score, threshold),
         "exit %d\n%s" % (r.returncode, "\n".join(
             l for l in (r.stdout + r.stderr).splitlines() if l.startswith("\u2717"))))
    return score


def static_checks(c):
    for f in dl.unit_files():
        path = os.path.join(dl.UNITS_DIR, f)
        if not f.endswith(".service"):
            continue
        for k, v in REQUIRED.items():
            got = dl.unit_value(path, k)
            c.ok(got == v, "%s: %s=%s" % (f, k, v), "found %r" % got)
        fams = set((dl.unit_value(path, "RestrictAddressFamilies") or "").split())
        c.ok({"AF_UNIX", "AF_INET", "AF_INET6"} <= fams and fams <= {
            "AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"},
            "%s: RestrictAddressFamilies= AF_UNIX AF_INET AF_INET6 (+AF_NETLINK)" % f, str(fams))
        filters = dl.unit_values(path, "SystemCallFilter")
        c.ok("@system-service" in filters, "%s: SystemCallFilter=@system-service" % f)
        c.ok(dl.unit_value(path, "WantedBy") == "amity.target", "%s: WantedBy=amity.target" % f)
        start = dl.unit_value(path, "ExecStart") or ""
        c.ok(start.startswith("/usr/local/bin/amity-") and "--config /etc/amity/amity.ini" in start,
             "%s: ExecStart runs /usr/local/bin/amity-* --config /etc/amity/amity.ini" % f, start)
        creds = dl.unit_values(path, "LoadCredential")
        c.ok(bool(creds), "%s: secret keys come through LoadCredential=" % f)
        for cred in creds:
            cid, _, src = cred.partition(":")
            c.ok(src.startswith("/etc/amity/secret/") and src.endswith(".cert_secret"),
                 "%s: credential %s read from /etc/amity/secret/*.cert_secret" % (f, cid), src)
            c.ok("%%d/%s" % cid in start, "%s: ExecStart reads credential %s as %%d/%s" %
                 (f, cid, cid), start)
        if "aggregate" in f:
            c.ok(dl.unit_value(path, "StateDirectory") == "amity/shard-%i",
                 "%s: StateDirectory=amity/shard-%%i" % f)
            c.ok("--index %i" in start and "--state %S/amity/shard-%i" in start,
                 "%s: --index %%i --state %%S/amity/shard-%%i" % f, start)


def option_checks(c):
    dl.check_security_options(c)
    for d in dl.DAEMONS:
        unit = dl.unit_for(d)
        have = dl.options_of(d)
        if not c.ok(have is not None, "amity-%s is built in %s" % (d, dl.BIN)):
            continue
        flags = set(dl.exec_flags(dl.unit_value(os.path.join(dl.UNITS_DIR, unit), "ExecStart")))
        missing = flags - have - {"config"}
        c.ok(not missing, "%s: every ExecStart flag is an option of amity-%s" % (unit, d),
             "unknown: %s" % ", ".join(sorted(missing)))


def main():
    if not shutil.which("systemd-analyze"):
        dl.skip("systemd-analyze is not installed (Debian package systemd)")
    c = dl.Checks("deploy_systemd")
    static_checks(c)
    option_checks(c)
    for d in dl.DAEMONS:
        if not os.access(os.path.join(dl.BIN, "amity-" + d), os.X_OK):
            c.ok(False, "amity-%s built in %s (verify needs the binaries)" % (d, dl.BIN))
            c.finish()
    tmp = tempfile.mkdtemp(prefix="amity-units-")
    try:
        plain = os.path.join(tmp, "plain")
        copy_units(plain)
        verify(c, plain, "deploy/systemd")
        scores = {}
        for tmpl, inst in INSTANCES.items():
            scores[inst] = exposure(c, plain, inst, "deploy/systemd", THRESHOLD)
        for host in dl.HOSTS:
            where = os.path.join(tmp, host)
            copy_units(where, os.path.join(dl.EXAMPLE, host, "systemd"))
            verify(c, where, "four-hosts/%s (units + drop-ins)" % host)
            for line in open(os.path.join(dl.EXAMPLE, host, "units.txt")):
                unit = line.strip()
                if unit:
                    exposure(c, where, unit, "four-hosts/%s" % host, THRESHOLD)
        print("exposure: " + ", ".join("%s %s" % kv for kv in scores.items()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    c.finish()


if __name__ == "__main__":
    main()
