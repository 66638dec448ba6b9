#!/usr/bin/python3
"""Checks deploy/k8s without a cluster:

- every manifest parses (PyYAML); kustomization.yaml lists them all and
  `kubectl kustomize` renders them (when kubectl is installed);
- Deployments ingest (1), validate (2), notify; a StatefulSet aggregate with
  a volumeClaimTemplate and a headless Service; restricted pod security;
- the ConfigMap's amity.ini names only options the daemons have, as many
  shards as the StatefulSet has replicas, in pod order, and files that are
  mounted in the pods that read them;
- every ConfigMap and Secret a pod mounts is made by config.yaml or by
  secrets.sh (run on keys from make-keys.sh when kubectl is installed), and
  every key file a command names is in that Secret;
- the aggregate entrypoint derives shard index, state and key from the pod
  name (run with /bin/sh and a stand-in amity-aggregate).

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

K8S = os.path.join(dl.DEPLOY, "k8s")


def load_all(yaml):
    docs = {}
    for f in sorted(os.listdir(K8S)):
        if f.endswith(".yaml"):
            docs[f] = [d for d in yaml.safe_load_all(open(os.path.join(K8S, f))) if d]
    return docs


def pod_spec(obj):
    return obj["spec"]["template"]["spec"]


def main():
    c = dl.Checks("deploy_k8s")
    try:
        import yaml
    except ImportError:
        c.ok(False, "PyYAML importable (Debian package python3-yaml)")
        c.finish()
    docs = load_all(yaml)
    c.ok(bool(docs), "deploy/k8s has manifests")
    kust = docs.pop("kustomization.yaml")[0]
    c.ok(sorted(kust.get("resources", [])) == sorted(docs),
         "kustomization.yaml lists every manifest", "%s vs %s" % (kust.get("resources"), sorted(docs)))
    objs = [o for f in docs.values() for o in f]
    by = {(o["kind"], o["metadata"]["name"]): o for o in objs}

    # workloads
    work = {"ingest": ("Deployment", 1), "validate": ("Deployment", 2),
            "notify": ("Deployment", 1), "aggregate": ("StatefulSet", 2)}
    for d, (kind, replicas) in work.items():
        o = by.get((kind, "amity-" + d))
        if not c.ok(o is not None, "%s amity-%s" % (kind, d)):
            continue
        c.ok(o["spec"].get("replicas") == replicas, "amity-%s: replicas %d" % (d, replicas))
        ps = pod_spec(o)
        sc = ps.get("securityContext", {})
        c.ok(sc.get("runAsNonRoot") is True and sc.get("runAsUser", 0) > 0 and
             sc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
             "amity-%s: pod runs as non-root with the runtime's seccomp profile" % d)
        c.ok(ps.get("automountServiceAccountToken") is False,
             "amity-%s: no service account token" % d)
        for ctr in ps["containers"]:
            csc = ctr.get("securityContext", {})
            c.ok(csc.get("allowPrivilegeEscalation") is False and
                 csc.get("readOnlyRootFilesystem") is True and
                 csc.get("capabilities", {}).get("drop") == ["ALL"],
                 "amity-%s: container restricted (no escalation, read-only root, no caps)" % d)
            c.ok(ctr.get("image") == "amity", "amity-%s: image amity (kustomize sets the tag)" % d)
            c.ok("limits" in ctr.get("resources", {}), "amity-%s: resource limits" % d)
    sts = by.get(("StatefulSet", "amity-aggregate"))
    if sts:
        c.ok(any(t["metadata"]["name"] == "state" for t in sts["spec"].get("volumeClaimTemplates", [])),
             "aggregate: volumeClaimTemplate state")
        svc = by.get(("Service", sts["spec"].get("serviceName")))
        c.ok(svc is not None and svc["spec"].get("clusterIP") == "None",
             "aggregate: its serviceName is a headless Service")
        mounts = pod_spec(sts)["containers"][0].get("volumeMounts", [])
        c.ok({"name": "state", "mountPath": "/var/lib/amity"} in mounts,
             "aggregate: state volume at /var/lib/amity")
    # services point at named container ports of the pods they select
    for (kind, name), o in by.items():
        if kind != "Service":
            continue
        sel = o["spec"].get("selector", {})
        pods = [w for w in by.values() if w["kind"] in ("Deployment", "StatefulSet") and
                all(w["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items())]
        c.ok(len(pods) == 1, "Service %s selects one workload" % name)
        if pods:
            ports = {p["name"]: p["containerPort"] for ctr in pod_spec(pods[0])["containers"]
                     for p in ctr.get("ports", [])}
            for p in o["spec"]["ports"]:
                tp = p.get("targetPort", p["port"])
                c.ok(tp in ports or tp in ports.values(),
                     "Service %s port %s reaches a container port" % (name, p["port"]))

    # amity.ini
    cm = by.get(("ConfigMap", "amity-config"))
    ini_path = None
    if c.ok(cm is not None and "amity.ini" in cm["data"], "ConfigMap amity-config has amity.ini"):
        tmp = tempfile.mkdtemp(prefix="amity-k8s-ini-")
        ini_path = os.path.join(tmp, "amity.ini")
        with open(ini_path, "w") as f:
            f.write(cm["data"]["amity.ini"])
        ini = dl.read_ini(ini_path)
        shutil.rmtree(tmp)
        c.ok(sorted(ini) == sorted(dl.DAEMONS), "amity.ini: a section per daemon")
        for sec, kv in ini.items():
            have = dl.options_of(sec) or set()
            unknown = set(kv) - have
            c.ok(not unknown, "amity.ini [%s]: keys are options of amity-%s" % (sec, sec),
                 ", ".join(sorted(unknown)))
            if "shards" in kv:
                n = sts["spec"]["replicas"] if sts else -1
                want = ["tcp://amity-aggregate-%d.amity-aggregate:7710" % i for i in range(n)]
                c.ok(dl.split_list(kv["shards"]) == want,
                     "amity.ini [%s]: shards = the StatefulSet's %d pods in order" % (sec, n))
                c.ok(dl.split_list(kv.get("shard-keys", "")) ==
                     ["/etc/amity/peers/svc-shard-%d.cert" % i for i in range(n)],
                     "amity.ini [%s]: shard-keys in shard order" % sec)
            # every /etc/amity path is mounted in the pods of that daemon
            w = by.get(("Deployment", "amity-" + sec)) or by.get(("StatefulSet", "amity-" + sec))
            if w:
                mps = [m["mountPath"] for m in pod_spec(w)["containers"][0].get("volumeMounts", [])]
                for k, v in kv.items():
                    for item in dl.split_list(v):
                        if item.startswith("/etc/amity/"):
                            c.ok(any(item == mp or item.startswith(mp + "/") for mp in mps),
                                 "amity-%s: %s (%s) is mounted" % (sec, item, k))
        c.ok(ini.get("validate", {}).get("ingest") == "tcp://amity-ingest:7701" and
             by.get(("Service", "amity-ingest")) is not None,
             "validators reach ingest's work port through Service amity-ingest")

    # what secrets.sh makes
    made = {}
    secrets_sh = os.path.join(K8S, "secrets.sh")
    if shutil.which("kubectl"):
        tmp = tempfile.mkdtemp(prefix="amity-k8s-")
        try:
            keys = os.path.join(tmp, "keys")
            r = dl.run(["/bin/sh", os.path.join(dl.EXAMPLE, "make-keys.sh"), keys, "hoi-viet-my"],
                       env=dict(os.environ, AMITY_KEYGEN=os.path.join(dl.BIN, "amity-keygen")),
                       timeout=60)
            c.ok(r.returncode == 0, "make-keys.sh lays out keys", r.stderr[-400:])
            r = dl.run(["/bin/sh", secrets_sh, keys], timeout=120)
            if c.ok(r.returncode == 0, "secrets.sh renders the Secrets and ConfigMaps offline",
                    r.stderr[-800:]):
                for o in yaml.safe_load_all(r.stdout):
                    if o:
                        made[(o["kind"], o["metadata"]["name"])] = set(o.get("data", {}))
                        c.ok(o["metadata"].get("namespace") == "amity",
                             "%s %s in namespace amity" % (o["kind"], o["metadata"]["name"]))
            r = dl.run(["kubectl", "kustomize", K8S], timeout=120)
            if c.ok(r.returncode == 0, "kubectl kustomize deploy/k8s renders", r.stderr[-800:]):
                out = [o for o in yaml.safe_load_all(r.stdout) if o]
                c.ok(len(out) == len(objs), "kustomize output has every object (%d)" % len(objs))
                c.ok(all(o["metadata"].get("namespace") == "amity" for o in out
                         if o["kind"] != "Namespace"), "kustomize puts everything in amity")
                imgs = {ct["image"] for o in out if o["kind"] in ("Deployment", "StatefulSet")
                        for ct in o["spec"]["template"]["spec"]["containers"]}
                c.ok(imgs == {"amity:0.1.0"}, "kustomize sets image amity:0.1.0", str(imgs))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        c.note("kubectl not installed: secrets.sh and kustomize not run; names read from the script")
        text = open(secrets_sh).read()
        for kind, name in re.findall(r"^gen (secret generic|configmap) (\S+)", text, re.M):
            made[("Secret" if kind.startswith("secret") else "ConfigMap", name)] = None
    made[("ConfigMap", "amity-config")] = {"amity.ini"}

    for d in work:
        w = by.get((work[d][0], "amity-" + d))
        if not w:
            continue
        ps = pod_spec(w)
        vols = {v["name"]: v for v in ps.get("volumes", [])}
        secret_keys = None
        secret_mount = None
        for v in vols.values():
            if "configMap" in v:
                c.ok(("ConfigMap", v["configMap"]["name"]) in made,
                     "amity-%s: ConfigMap %s is made" % (d, v["configMap"]["name"]))
            if "secret" in v:
                key = ("Secret", v["secret"]["secretName"])
                c.ok(key in made, "amity-%s: Secret %s is made by secrets.sh" % (d, key[1]))
                secret_keys = made.get(key)
                for m in ps["containers"][0].get("volumeMounts", []):
                    if m["name"] == v["name"]:
                        secret_mount = m["mountPath"]
        cmd = " ".join(ps["containers"][0].get("command", []))
        words = re.findall(r"/etc/amity/secret/([A-Za-z0-9_.$-]+)", cmd)
        c.ok(bool(words) and secret_mount == "/etc/amity/secret",
             "amity-%s: reads its keys from the Secret at /etc/amity/secret" % d)
        if secret_keys is not None:
            for wd in words:
                pat = re.compile("^" + re.escape(wd).replace(r"\$i", r"\d+") + "$")
                c.ok(any(pat.match(k) for k in secret_keys),
                     "amity-%s: key file %s is in its Secret" % (d, wd), str(sorted(secret_keys)))
        cmdline = ps["containers"][0].get("command", [])
        if cmdline and cmdline[0].startswith("amity-"):
            flags = dl.exec_flags(" ".join(cmdline))
            have = dl.options_of(d) or set()
            unknown = set(flags) - have - {"config"}
            c.ok(not unknown, "amity-%s: command flags are options" % d, ", ".join(sorted(unknown)))

    # the aggregate entrypoint, with a stand-in binary
    if sts:
        ctr = pod_spec(sts)["containers"][0]
        script = ctr["command"][2]
        c.ok(ctr["command"][:2] == ["/bin/sh", "-c"], "aggregate: /bin/sh -c entrypoint")
        tmp = tempfile.mkdtemp(prefix="amity-k8s-sh-")
        try:
            stub = os.path.join(tmp, "amity-aggregate")
            with open(stub, "w") as f:
                f.write('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
            os.chmod(stub, stat.S_IRWXU)
            env = dict(os.environ, PATH=tmp + ":/usr/bin:/bin", POD_NAME="amity-aggregate-1")
            r = dl.run(["/bin/sh", "-c", script], env=env, timeout=20)
            args = r.stdout.split("\n")
            flags = dl.exec_flags("x " + " ".join(a for a in args if a))
            c.ok(r.returncode == 0 and flags.get("index") == "1" and
                 flags.get("state") == "/var/lib/amity/shard-1" and
                 flags.get("key") == "/etc/amity/secret/svc-shard-1.key" and
                 flags.get("config") == "/etc/amity/amity.ini",
                 "aggregate entrypoint: pod amity-aggregate-1 -> --index 1, its state, its key",
                 r.stdout + r.stderr)
            env["POD_NAME"] = "amity-aggregate"
            r = dl.run(["/bin/sh", "-c", script], env=env, timeout=20)
            c.ok(r.returncode == 2 and not r.stdout, "aggregate entrypoint: no index -> exit 2")
            c.ok(any(e.get("name") == "POD_NAME" and
                     e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name"
                     for e in ctr.get("env", [])), "aggregate: POD_NAME from metadata.name")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    c.finish()


if __name__ == "__main__":
    main()
