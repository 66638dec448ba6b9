#!/usr/bin/python3
"""Checks deploy/container without a container engine (none runs here):

Dockerfile
- the build stage runs the README's steps: ./scripts/setup.sh, then the
  cmake configure and build lines of scripts/run.sh (Release, no tests),
  then `cmake --install` into a staging root;
- the runtime stage is debian:12-slim, runs as a non-root numeric user,
  declares the state volume; every runtime package exists in apt;
- `cmake --install` of the build tree under test installs the daemons and
  the tools, and every library they need (ELF NEEDED) comes from a package
  the runtime stage installs (or the base image, or the install itself);
- the BuildKit ignore file keeps build trees and keys out of the context.
compose.yaml
- parses; every service runs an amity daemon with options it has, the
  four-host example's amity.ini for its host, its own secrets, hardening;
  the addresses are the example's; one volume per shard; with keys made by
  make-keys.sh every mounted file exists; `docker-compose config` (v1, if
  installed) accepts it.

Exit 0 pass, 1 fail.
"""
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib as dl  # noqa: E402

CONTAINER = os.path.join(dl.DEPLOY, "container")
# in debian:12-slim already (essential, or needed by apt itself)
BASE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g", "libzstd1", "liblzma5",
                 "libcap2", "libgcrypt20", "liblz4-1", "libgpg-error0", "libudev1",
                 "libseccomp2", "libselinux1", "libpcre2-8-0", "libmd0", "libbsd0"}
SANITIZER_PACKAGES = re.compile(r"^lib(asan|ubsan|lsan|tsan)\d+$")
WANT_BIN = ["amity-ingest", "amity-validate", "amity-aggregate", "amity-notify", "amity-keygen"]
HOST_ADDR = {"edge": "10.0.0.11", "worker": "10.0.0.12", "store-0": "10.0.0.13",
             "store-1": "10.0.0.14"}


def dockerfile_stages(text):
    """[(from-line, [instructions])], line continuations joined."""
    text = re.sub(r"\\\n", " ", text)
    stages = []
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.upper().startswith("FROM "):
            stages.append((s, []))
        elif stages:
            stages[-1][1].append(s)
    return stages


def norm_cmake(cmd):
    """A cmake command without build type, redirections and -j."""
    cmd = re.sub(r"-DCMAKE_BUILD_TYPE=\S+", "", cmd)
    cmd = re.sub(r"\s*>\s*/dev/null", "", cmd)
    cmd = re.sub(r'-j"?\$\(nproc\)"?', "", cmd)
    return " ".join(cmd.split())


def check_dockerfile(c):
    path = os.path.join(CONTAINER, "Dockerfile")
    text = open(path, encoding="utf-8").read()
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.M))
    stages = dockerfile_stages(text)
    c.ok(len(stages) == 2, "Dockerfile: two stages (build, runtime)", str(len(stages)))
    if len(stages) != 2:
        return []
    (b_from, b_ins), (r_from, r_ins) = stages

    def image(from_line):
        ref = from_line.split()[1]
        return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), ref)

    c.ok(image(b_from) == "debian:12" and " AS build" in b_from, "build stage FROM debian:12",
         b_from)
    c.ok(image(r_from) == "debian:12-slim", "runtime stage FROM debian:12-slim", r_from)
    runs = " && ".join(i[4:] for i in b_ins if i.upper().startswith("RUN "))
    cmds = [x.strip() for x in re.split(r"&&|;", runs)]
    c.ok("./scripts/setup.sh" in cmds, "build stage runs ./scripts/setup.sh")
    # the same cmake lines as scripts/run.sh (the README's run command)
    run_sh = open(os.path.join(dl.SRC, "scripts", "run.sh"), encoding="utf-8").read()
    c.ok("./scripts/setup.sh" in run_sh, "scripts/run.sh runs ./scripts/setup.sh too")
    readme = open(os.path.join(dl.SRC, "README.md"), encoding="utf-8").read()
    c.ok("scripts/run.sh" in readme and "scripts/setup.sh" in readme,
         "README.md gives scripts/run.sh and scripts/setup.sh")
    ref = [norm_cmake(l) for l in run_sh.splitlines() if l.strip().startswith("cmake ")]
    mine = [norm_cmake(x) for x in cmds if x.startswith("cmake ")]
    for r in ref:
        c.ok(r in mine, "build stage runs scripts/run.sh's `%s`" % r, "has %s" % mine)
    c.ok(any("-DCMAKE_BUILD_TYPE=Release" in x for x in cmds), "build stage builds Release")
    c.ok(any("-DAMITY_BUILD_TESTS=OFF" in x for x in cmds), "build stage builds no tests")
    c.ok(any(re.search(r"DESTDIR=\S+ cmake --install build", x) for x in cmds),
         "build stage runs `DESTDIR=... cmake --install build`")
    setup_idx = cmds.index("./scripts/setup.sh") if "./scripts/setup.sh" in cmds else 99
    cmake_idx = min([i for i, x in enumerate(cmds) if x.startswith("cmake ")] or [-1])
    c.ok(0 <= setup_idx < cmake_idx, "setup.sh runs before cmake")

    r_text = " ".join(r_ins)
    m = re.search(r"apt-get install (.*?)(&&|$)", r_text)
    pkgs = [p for p in (m.group(1).split() if m else []) if not p.startswith("-")]
    c.ok(bool(pkgs), "runtime stage installs packages", r_text[:200])
    c.ok("rm -rf /var/lib/apt/lists/*" in r_text, "runtime stage drops the apt lists")
    user = [i.split()[1] for i in r_ins if i.upper().startswith("USER ")]
    c.ok(user and re.match(r"^[1-9][0-9]*(:[1-9][0-9]*)?$", user[-1]),
         "runtime stage runs as a numeric non-root USER", str(user))
    c.ok(any(i.upper().startswith("VOLUME ") and "/var/lib/amity" in i for i in r_ins),
         "runtime stage declares VOLUME /var/lib/amity")
    c.ok(any(i.startswith("COPY --from=build /staging/usr/local/") for i in r_ins),
         "runtime stage copies the staged install")
    # the packages exist in Debian 12's apt (when the lists are there)
    if shutil.which("apt-cache"):
        probe = dl.run(["apt-cache", "policy", "libc6"], timeout=30).stdout
        if "Candidate: (none)" in probe or "Candidate:" not in probe:
            c.note("apt lists missing (run apt-get update): package names not checked")
        else:
            for p in pkgs:
                out = dl.run(["apt-cache", "policy", p], timeout=30).stdout
                c.ok(re.search(r"Candidate: (?!\(none\))\S+", out) is not None,
                     "runtime package %s exists in apt" % p)
    else:
        c.note("apt-cache missing: runtime package names not checked")

    ign = open(os.path.join(CONTAINER, "Dockerfile.dockerignore"), encoding="utf-8").read().split()
    for pat in ("build", "build-*", ".git", "deploy/container/keys"):
        c.ok(pat in ign, "Dockerfile.dockerignore excludes %s" % pat)
    return pkgs


def lib_package(name, cache):
    """Debian package of a shared library soname, or None."""
    path = cache.get(name)
    if not path:
        return None
    cands = [path, os.path.realpath(path)]
    cands += [re.sub(r"^/usr", "", p) if p.startswith("/usr/") else "/usr" + p for p in cands]
    for p in cands:
        r = dl.run(["dpkg", "-S", p], timeout=30)
        if r.returncode == 0:
            return r.stdout.split(":")[0].strip()
    return None


def check_install(c, pkgs):
    build = os.environ.get("AMITY_BUILD_DIR") or os.path.dirname(dl.BIN.rstrip("/"))
    if not os.path.exists(os.path.join(build, "cmake_install.cmake")):
        c.ok(False, "build tree with cmake_install.cmake at %s (AMITY_BUILD_DIR)" % build)
        return
    for tool in ("readelf", "dpkg", "ldconfig"):
        if not shutil.which(tool) and not os.path.exists("/sbin/" + tool):
            c.note("%s missing: runtime libraries not checked" % tool)
            return
    tmp = tempfile.mkdtemp(prefix="amity-install-")
    try:
        r = dl.run(["cmake", "--install", build, "--prefix", "/usr/local"],
                   env=dict(os.environ, DESTDIR=tmp), timeout=120)
        if not c.ok(r.returncode == 0, "cmake --install of %s into a staging root" % build,
                    r.stdout[-500:] + r.stderr[-1500:]):
            return
        bindir = os.path.join(tmp, "usr", "local", "bin")
        have = set(os.listdir(bindir)) if os.path.isdir(bindir) else set()
        for b in WANT_BIN:
            c.ok(b in have, "the install puts %s in /usr/local/bin" % b)
        ldc = dl.run(["ldconfig", "-p"], timeout=30).stdout
        cache = {}
        for m in re.finditer(r"^\s+(\S+) \(([^)]*)\) => (\S+)$", ldc, re.M):
            if "x86-64" in m.group(2) or "x86_64" in m.group(2) or "64" in m.group(2):
                cache.setdefault(m.group(1), m.group(3))
        own = set()
        elves = []
        for d, _, files in os.walk(os.path.join(tmp, "usr", "local")):
            for f in files:
                p = os.path.join(d, f)
                if os.path.islink(p):
                    own.add(f)
                    continue
                with open(p, "rb") as fh:
                    if fh.read(4) == b"\x7fELF":
                        elves.append(p)
                        own.add(f)
        needed = {}
        for p in elves:
            out = dl.run(["readelf", "-d", p], timeout=30).stdout
            for lib in re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out):
                needed.setdefault(lib, set()).add(os.path.basename(p))
        missing, sanitizer = [], []
        for lib, users in sorted(needed.items()):
            if lib in own:
                continue
            pkg = lib_package(lib, cache)
            if pkg is None:
                missing.append("%s (no package found)" % lib)
            elif SANITIZER_PACKAGES.match(pkg):
                sanitizer.append(pkg)
            elif pkg not in pkgs and pkg not in BASE_PACKAGES:
                missing.append("%s from %s (needed by %s)" % (lib, pkg, ", ".join(sorted(users))))
        c.ok(not missing, "every library the installed programs need is in the runtime stage",
             "; ".join(missing))
        if sanitizer:
            c.note("this build is sanitized (%s): a Release build does not need those" %
                   ", ".join(sorted(set(sanitizer))))
        print("runtime libraries needed: %s" % ", ".join(sorted(needed)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_compose(c):
    try:
        import yaml
    except ImportError:
        c.ok(False, "PyYAML importable (Debian package python3-yaml)")
        return
    path = os.path.join(CONTAINER, "compose.yaml")
    doc = yaml.safe_load(open(path, encoding="utf-8"))
    c.ok(isinstance(doc, dict) and "services" in doc, "compose.yaml parses")
    services = doc.get("services", {})
    secrets = doc.get("secrets", {})
    tmp = tempfile.mkdtemp(prefix="amity-compose-")
    try:
        keys = os.path.join(tmp, "keys")
        r = dl.run(["/bin/sh", os.path.join(dl.EXAMPLE, "make-keys.sh"), keys, "hoi-viet-my"],
                   env=dict(os.environ, AMITY_KEYGEN=os.path.join(dl.BIN, "amity-keygen")),
                   timeout=60)
        have_keys = c.ok(r.returncode == 0, "make-keys.sh lays out keys for compose",
                         r.stderr[-500:])

        def resolve(p):
            p = p.replace("${AMITY_KEYS:-./keys}", keys)
            return p if os.path.isabs(p) else os.path.normpath(os.path.join(CONTAINER, p))

        daemons_seen = []
        shard_volumes = set()
        for name, svc in services.items():
            cmd = svc.get("command") or []
            d = cmd[0][len("amity-"):] if cmd and cmd[0].startswith("amity-") else None
            if not c.ok(d in dl.DAEMONS, "compose %s runs an amity daemon" % name, str(cmd[:1])):
                continue
            daemons_seen.append(d)
            flags = dl.exec_flags(" ".join(str(x) for x in cmd))
            have = dl.options_of(d) or set()
            unknown = set(flags) - have - {"config"}
            c.ok(not unknown, "compose %s: flags are options of amity-%s" % (name, d),
                 ", ".join(sorted(unknown)))
            c.ok(svc.get("read_only") is True and svc.get("cap_drop") == ["ALL"] and
                 "no-new-privileges:true" in (svc.get("security_opt") or []),
                 "compose %s: read-only, no capabilities, no-new-privileges" % name)
            c.ok(svc.get("build", {}).get("dockerfile") == "deploy/container/Dockerfile",
                 "compose %s: image built from deploy/container/Dockerfile" % name)
            mounts = {}
            for v in svc.get("volumes", []):
                v = re.sub(r":(ro|rw)$", "", v)
                src, dst = v.rsplit(":", 1)
                mounts[dst] = src
            ini_src = mounts.get("/etc/amity/amity.ini", "")
            m = re.search(r"examples/four-hosts/([^/]+)/amity\.ini$", ini_src)
            host = m.group(1) if m else None
            c.ok(host in dl.HOSTS and os.path.isfile(resolve(ini_src)),
                 "compose %s: mounts the four-host example's amity.ini" % name, ini_src)
            if host:
                ini = dl.read_ini(os.path.join(dl.EXAMPLE, host, "amity.ini"))
                c.ok(d in ini, "compose %s: %s's amity.ini has a [%s] section" % (name, host, d))
                # the host's address: own network or the shared namespace's
                owner = svc
                nm = svc.get("network_mode", "")
                if nm.startswith("service:"):
                    owner = services.get(nm[len("service:"):], {})
                addr = (owner.get("networks", {}).get("backplane") or {}).get("ipv4_address")
                c.ok(addr == HOST_ADDR[host], "compose %s: runs at %s's address %s" %
                     (name, host, HOST_ADDR[host]), str(addr))
                for k, v in ini.get(d, {}).items():
                    for item in dl.split_list(v):
                        if item.startswith("/etc/amity/"):
                            sub = item.split("/")[3]
                            c.ok("/etc/amity/" + sub in mounts,
                                 "compose %s: %s (%s) is mounted" % (name, item, k))
            if have_keys:
                for dst, src in mounts.items():
                    if "/" in src:
                        c.ok(os.path.exists(resolve(src)),
                             "compose %s: mount source %s exists (with make-keys.sh's keys)" %
                             (name, src))
            used = svc.get("secrets", [])
            v = flags.get("key")
            sec = v[len("/run/secrets/"):] if v and v.startswith("/run/secrets/") else None
            c.ok(sec in used and sec in secrets and used == [sec],
                 "compose %s: --key is its own secret %s, its only one" % (name, sec), str(v))
            if d == "aggregate":
                idx = flags.get("index")
                c.ok(flags.get("state") == "/var/lib/amity/shard-%s" % idx,
                     "compose %s: --state /var/lib/amity/shard-%s" % (name, idx))
                vol = mounts.get("/var/lib/amity")
                c.ok(vol == "shard-%s" % idx and vol in (doc.get("volumes") or {}),
                     "compose %s: its own volume shard-%s" % (name, idx))
                shard_volumes.add(vol)
        c.ok(sorted(daemons_seen) == sorted(dl.DAEMONS + ["validate", "aggregate"]),
             "compose runs ingest, 2 validators, 2 shards, notify", str(daemons_seen))
        if have_keys:
            for sname, s in secrets.items():
                c.ok(os.path.isfile(resolve(s.get("file", ""))),
                     "compose secret %s's file exists (with make-keys.sh's keys)" % sname)
        if shutil.which("docker-compose"):
            # docker-compose v1 predates the top-level `name`: drop that line
            text = open(path, encoding="utf-8").read()
            text = re.sub(r"(?m)^name: .*$", "", text)
            copy = os.path.join(CONTAINER, ".compose-check-%d.yaml" % os.getpid())
            try:
                with open(copy, "w", encoding="utf-8") as f:
                    f.write(text)
                r = dl.run(["docker-compose", "-f", copy, "config", "-q"],
                           env=dict(os.environ, AMITY_KEYS=keys), timeout=60)
            finally:
                os.unlink(copy)
            c.ok(r.returncode == 0, "docker-compose (v1) config accepts compose.yaml",
                 r.stdout + r.stderr)
        else:
            c.note("docker-compose not installed: compose.yaml checked for structure only")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    c = dl.Checks("deploy_container")
    pkgs = check_dockerfile(c)
    check_install(c, pkgs)
    check_compose(c)
    c.note("no container engine runs here: the image was not built, compose not started")
    c.finish()


if __name__ == "__main__":
    main()
