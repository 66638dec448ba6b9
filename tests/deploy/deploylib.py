"""Helpers shared by the deploy checks (Python 3 standard library only,
except PyYAML where a check parses YAML: Debian's python3-yaml)."""
import configparser
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("AMITY_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.environ.get("AMITY_BIN_DIR") or os.path.join(SRC, "build", "bin")
DEPLOY = os.path.join(SRC, "deploy")
UNITS_DIR = os.path.join(DEPLOY, "systemd")
EXAMPLE = os.path.join(DEPLOY, "examples", "four-hosts")
HOSTS = ["edge", "worker", "store-0", "store-1"]
DAEMONS = ["ingest", "validate", "aggregate", "notify"]

# The daemons' security options (amity-D --help), which the units,
# examples, compose and k8s files pass: every daemon has --key (its own
# secret certificate, for its public socket and its internal links alike);
# the servers of offices and subscribers --clients-dir; the servers of
# other services --peers-dir; a daemon connecting to shards or ingests
# their public certificates, in the order of the endpoints.
SECURITY_OPTIONS = {
    "ingest": {"key", "clients-dir", "peers-dir", "shard-keys"},
    "validate": {"key", "ingest-keys", "shard-keys"},
    "aggregate": {"key", "peers-dir"},
    "notify": {"key", "clients-dir", "shard-keys"},
}

T0 = time.monotonic()


class Checks:
    """Collects failures; prints every check as it goes."""

    def __init__(self, name):
        self.name = name
        self.failures = []
        self.passed = 0
        self.notes = []

    def ok(self, cond, what, detail=""):
        if cond:
            self.passed += 1
            print("ok   %s" % what, flush=True)
        else:
            self.failures.append(what)
            print("FAIL %s%s" % (what, (": " + detail) if detail else ""), flush=True)
        return cond

    def note(self, msg):
        self.notes.append(msg)
        print("note %s" % msg, flush=True)

    def finish(self):
        print("%s: %d passed, %d failed (%.1f s)" % (self.name, self.passed,
                                                   len(self.failures), time.monotonic() - T0))
        for n in self.notes:
            print("  note: " + n)
        sys.exit(1 if self.failures else 0)


def skip(msg):
    print("SKIP: " + msg, flush=True)
    sys.exit(77)


def run(args, timeout=60, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)


_HELP = {}


def options_of(daemon):
    """Option names (without dashes) a built program lists in --help, or
    None when the binary is missing."""
    prog = daemon if daemon.startswith("amity-") else "amity-" + daemon
    if prog not in _HELP:
        path = os.path.join(BIN, prog)
        if not os.access(path, os.X_OK):
            _HELP[prog] = None
        else:
            out = run([path, "--help"], timeout=20).stdout
            _HELP[prog] = set(re.findall(r"^\s+--([a-z][a-z0-9-]*)", out, re.M))
    return _HELP[prog]


def check_security_options(c):
    """Fails c unless every daemon lists every option of SECURITY_OPTIONS
    (a renamed option would make every file that passes it wrong)."""
    for d, opts in sorted(SECURITY_OPTIONS.items()):
        have = options_of(d)
        missing = sorted(opts - (have or set()))
        c.ok(have is not None and not missing,
             "amity-%s has the security options %s" % (d, ", ".join(sorted(opts))),
             "missing: %s" % ", ".join(missing) if have is not None else "not built")


def read_ini(path):
    """{section: {key: value}} the way inih reads amity's files (';' and '#'
    start comment lines; no inline comments are used in these files)."""
    cp = configparser.ConfigParser(interpolation=None, comment_prefixes=(";", "#"),
                                   inline_comment_prefixes=None, strict=True,
                                   delimiters=("=",))
    cp.optionxform = str
    with open(path, encoding="utf-8") as f:
        cp.read_file(f)
    return {s: dict(cp.items(s)) for s in cp.sections()}


def split_list(value):
    return [x.strip() for x in value.split(",") if x.strip()]


def unit_lines(path):
    """[(key, value)] of a unit file, comments and sections dropped."""
    out = []
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line or line[0] in "#;[":
            continue
        k, _, v = line.partition("=")
        out.append((k.strip(), v.strip()))
    return out


def unit_value(path, key):
    vals = [v for k, v in unit_lines(path) if k == key]
    return vals[-1] if vals else None


def unit_values(path, key):
    return [v for k, v in unit_lines(path) if k == key]


def unit_files():
    return sorted(f for f in os.listdir(UNITS_DIR) if f.endswith((".service", ".target")))


def unit_for(daemon):
    for name in ("amity-%s.service" % daemon, "amity-%s@.service" % daemon):
        if os.path.exists(os.path.join(UNITS_DIR, name)):
            return name
    return None


def exec_flags(cmdline):
    """{flag: value} of an ExecStart-like command line ("--a b --c d")."""
    words = cmdline.split()
    flags = {}
    i = 1
    while i < len(words):
        w = words[i]
        if w.startswith("--"):
            if i + 1 < len(words) and not words[i + 1].startswith("--"):
                flags[w[2:]] = words[i + 1]
                i += 2
                continue
            flags[w[2:]] = True
        i += 1
    return flags
