"""deploy/ cannot rot silently: every YAML file parses, the Kubernetes
objects and the compose file hang together (selectors, volumes, ports,
secrets, the names workers register under), every daemon flag they pass
exists in that daemon's --helpfull, and the images copy files the build
makes.

No Docker engine or cluster is needed: this checks what can be checked
without one. ctest sets DRIFTSCOPE_BIN (the build directory) and
DRIFTSCOPE_SOURCE_DIR.
"""
import glob
import json
import os
import re
import subprocess

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("DRIFTSCOPE_SOURCE_DIR",
                        os.path.join(HERE, "..", ".."))
DEPLOY = os.path.join(SOURCE, "deploy")
DAEMONS = {"driftscope-worker": ("server", "driftscope-worker"),
           "driftscope-coordinator": ("server", "driftscope-coordinator")}
WORKLOADS = ("Deployment", "StatefulSet")


def _bin(*parts):
    build = os.environ.get("DRIFTSCOPE_BIN")
    if not build:
        pytest.fail("DRIFTSCOPE_BIN (the build directory) is not set")
    path = os.path.join(build, *parts)
    assert os.path.exists(path), f"{path} was not built"
    return path


def _yaml_files():
    files = sorted(glob.glob(os.path.join(DEPLOY, "**", "*.yaml"),
                             recursive=True))
    assert files, f"no YAML under {DEPLOY}"
    return files


def _docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def _k8s_objects():
    objs = []
    for path in glob.glob(os.path.join(DEPLOY, "k8s", "*.yaml")):
        for d in _docs(path):
            if d.get("kind") != "Kustomization":
                objs.append(d)
    return objs


def _compose():
    return _docs(os.path.join(DEPLOY, "compose.yaml"))[0]


def _flags(argv):
    """{name: value} of the --name=value arguments (value None if absent)."""
    out = {}
    for a in argv[1:]:
        assert a.startswith("--"), f"{argv[0]}: unexpected argument {a!r}"
        name, eq, value = a[2:].partition("=")
        out[name] = value if eq else None
    return out


def _daemon_commands():
    """(where, argv) of every daemon command in the manifests and compose."""
    cmds = []
    for name, svc in _compose()["services"].items():
        cmds.append((f"compose.yaml:{name}", svc["command"]))
    for o in _k8s_objects():
        if o["kind"] in WORKLOADS:
            for c in o["spec"]["template"]["spec"]["containers"]:
                cmds.append((f"k8s:{o['metadata']['name']}",
                             c.get("command", []) + c.get("args", [])))
    return [(w, argv) for w, argv in cmds if argv and argv[0] in DAEMONS]


def _port(address):
    return int(address.rsplit(":", 1)[1])


def _host(address):
    return address.rsplit(":", 1)[0]


def test_every_yaml_file_parses_into_objects():
    for path in _yaml_files():
        docs = _docs(path)
        assert docs, f"{path}: empty"
        for d in docs:
            assert isinstance(d, dict), f"{path}: a document is not a map"
    for o in _k8s_objects():
        assert {"apiVersion", "kind", "metadata"} <= o.keys(), o
        assert o["metadata"].get("name"), o


def test_kustomization_lists_every_manifest():
    k = _docs(os.path.join(DEPLOY, "k8s", "kustomization.yaml"))[0]
    files = {os.path.basename(p)
             for p in glob.glob(os.path.join(DEPLOY, "k8s", "*.yaml"))}
    assert set(k["resources"]) == files - {"kustomization.yaml"}


def test_daemon_flags_exist_in_the_built_binaries():
    known = {}
    for daemon, parts in DAEMONS.items():
        p = subprocess.run([_bin(*parts), "--helpfull"], capture_output=True,
                           text=True, timeout=60)
        known[daemon] = set(re.findall(r"^\s+--([A-Za-z0-9_]+) \(",
                                       p.stdout + p.stderr, re.M))
        assert "listen" in known[daemon], (daemon, p.stdout[:500])
    commands = _daemon_commands()
    used = {argv[0] for _, argv in commands}
    assert used == set(DAEMONS), f"manifests start {used}"
    for where, argv in commands:
        unknown = set(_flags(argv)) - known[argv[0]]
        assert not unknown, f"{where}: {argv[0]} has no flag {sorted(unknown)}"


def test_default_profiles_are_presets_this_build_knows():
    p = subprocess.run([_bin("client", "driftscope"), "env", "--json"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    presets = set(json.loads(p.stdout)["profiles"])
    for where, argv in _daemon_commands():
        if argv[0] == "driftscope-worker":
            profile = _flags(argv).get("default_profile")
            assert profile in presets, f"{where}: {profile}"


def test_compose_workers_register_with_the_coordinator_they_can_reach():
    c = _compose()
    services = c["services"]
    coordinator = _flags(services["coordinator"]["command"])
    assert "store" in c["volumes"]
    profiles = set()
    for name, svc in services.items():
        argv = svc["command"]
        f = _flags(argv)
        for v in svc.get("volumes", []):
            assert v.split(":")[0] in c["volumes"], f"{name}: volume {v}"
        probe = [a for a in svc["healthcheck"]["test"] if a.startswith("-addr=")]
        assert probe and _port(probe[0]) == _port(f["listen"]), name
        if argv[0] != "driftscope-worker":
            continue
        assert _host(f["coordinator"]) == "coordinator", name
        assert _port(f["coordinator"]) == _port(coordinator["listen"]), name
        # The coordinator dials what the worker advertises.
        assert _host(f["advertise_address"]) == svc["hostname"] == name
        assert _port(f["advertise_address"]) == _port(f["listen"])
        assert f["name"] == name
        profiles.add(f["default_profile"])
    assert profiles == {"ref64", "fp32", "fp32-sse2", "tf32"}


def test_k8s_workloads_hang_together():
    objs = _k8s_objects()
    services = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Service"}
    workloads = [o for o in objs if o["kind"] in WORKLOADS]
    assert {o["metadata"]["namespace"] for o in objs
            if o["kind"] != "Namespace"} == {"driftscope"}
    secrets = set()
    for w in workloads:
        where = w["metadata"]["name"]
        spec = w["spec"]["template"]["spec"]
        labels = w["spec"]["template"]["metadata"]["labels"]
        assert w["spec"]["selector"]["matchLabels"].items() <= labels.items()
        volumes = {v["name"] for v in spec.get("volumes", [])}
        volumes |= {t["metadata"]["name"]
                    for t in w["spec"].get("volumeClaimTemplates", [])}
        for v in spec.get("volumes", []):
            if "secret" in v:
                secrets.add(v["secret"]["secretName"])
        for c in spec["containers"]:
            argv = c["command"]
            f = _flags(argv)
            for m in c.get("volumeMounts", []):
                assert m["name"] in volumes, f"{where}: mount {m['name']}"
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    secrets.add(ref["name"])
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            assert ports["grpc"] == _port(f["listen"]), where
            for probe in ("readinessProbe", "livenessProbe"):
                cmd = c[probe]["exec"]["command"]
                addr = [a for a in cmd if a.startswith("-addr=")][0]
                assert _port(addr) == _port(f["listen"]), f"{where} {probe}"
            # Every file flag points into a mounted volume.
            for k, v in f.items():
                if v and v.startswith("/etc/driftscope/"):
                    assert any(v.startswith(m["mountPath"] + "/")
                               for m in c["volumeMounts"]), f"{where}: --{k}"
            assert "requests" in c["resources"], where
            if argv[0] != "driftscope-worker":
                continue
            # Registers with the coordinator Service, under a DNS name the
            # headless workers Service publishes for this pod.
            svc, ns = _host(f["coordinator"]).split(".")[:2]
            assert ns == "driftscope"
            assert _port(f["coordinator"]) == services[svc]["spec"]["ports"][0]["port"]
            host, sub, ns = _host(f["advertise_address"]).split(".")[:3]
            assert (host, sub, ns) == (spec["hostname"], spec["subdomain"],
                                       "driftscope"), where
            assert services[sub]["spec"]["clusterIP"] == "None"
            assert f["name"] == spec["hostname"] == where
    for s in services.values():
        sel = s["spec"]["selector"].items()
        assert any(sel <= w["spec"]["template"]["metadata"]["labels"].items()
                   for w in workloads), s["metadata"]["name"]
    coordinator = [w for w in workloads
                   if w["metadata"]["name"] == "driftscope-coordinator"][0]
    assert coordinator["kind"] == "StatefulSet"
    assert coordinator["spec"]["replicas"] == 1  # SQLite: one writer
    gpu = [w for w in workloads if "gpu" in w["metadata"]["name"]]
    assert gpu, "no GPU worker"
    for w in gpu:
        limits = w["spec"]["template"]["spec"]["containers"][0]["resources"]
        assert limits["limits"]["nvidia.com/gpu"] >= 1
    # deploy/README.md says how to create every secret the manifests use.
    with open(os.path.join(DEPLOY, "README.md")) as f:
        readme = f.read()
    for s in secrets:
        assert s in readme, f"deploy/README.md does not say how to make {s}"


def test_images_copy_files_the_build_makes():
    for dockerfile in glob.glob(os.path.join(DEPLOY, "Dockerfile.*")):
        with open(dockerfile) as f:
            text = f.read().replace("\\\n", " ")
        copies = re.findall(r"^COPY --from=build (.+)$", text, re.M)
        assert copies, dockerfile
        for line in copies:
            for src in line.split()[:-1]:
                rel = os.path.relpath(src, "/src/build")
                matches = glob.glob(os.path.join(_bin(), rel))
                assert matches, f"{dockerfile}: {src} is not built"
