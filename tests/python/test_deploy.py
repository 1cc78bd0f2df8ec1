"""deploy/ cannot rot silently. Without a Docker engine or a cluster, this
checks what can be checked offline:

- the images: built only FROM the local base image (no registry, no Go
  proxy), packages installed before the sources are copied, NVIDIA wheels
  pinned, and `cmake --install` of this build yields the programs and
  libraries the images run;
- compose: Compose file format 3.x as Debian's docker-compose 1.29 reads it
  (and `docker-compose config` when installed), one secret per role, health
  checks by `driftscope health` on the port each daemon listens on;
- Kubernetes: every manifest passes kubernetes-validate --strict (when
  installed), every pod meets the "restricted" Pod Security Standard, GPU
  workers are pinned per GPU model, workers hold no client credential, only
  the coordinator reaches workers, the coordinator is exposed outside,
  images carry the release version;
- every daemon flag the files pass exists in the built daemons' --helpfull.

ctest sets DRIFTSCOPE_BIN (the build directory) and DRIFTSCOPE_SOURCE_DIR.
"""
import copy
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("DRIFTSCOPE_SOURCE_DIR",
                        os.path.join(HERE, "..", ".."))
DEPLOY = os.path.join(SOURCE, "deploy")
K8S = os.path.join(DEPLOY, "k8s")
DAEMONS = {"driftscope-worker": ("server", "driftscope-worker"),
           "driftscope-coordinator": ("server", "driftscope-coordinator")}
WORKLOADS = ("Deployment", "StatefulSet")

# Flags and presets the files use that come from branches developed beside
# this one; tolerated only while this build lacks them (once merged they are
# checked like every other flag).


def _bin(*parts):
    build = os.environ.get("DRIFTSCOPE_BIN")
    if not build:
        pytest.fail("DRIFTSCOPE_BIN (the build directory) is not set")
    path = os.path.join(build, *parts)
    assert os.path.exists(path), f"{path} was not built"
    return path


def _docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def _version():
    with open(os.path.join(SOURCE, "CMakeLists.txt")) as f:
        return re.search(r"project\(driftscope VERSION ([0-9.]+)",
                         f.read()).group(1)


def _render(directory):
    """The objects `kubectl apply -k directory` creates: the resources of
    its kustomization, recursively, with its `images` tags applied (the
    only transformation these kustomizations use)."""
    k = _docs(os.path.join(directory, "kustomization.yaml"))[0]
    assert set(k) <= {"apiVersion", "kind", "resources", "images"}, (
        f"{directory}: a kustomize feature this render does not know")
    objs = []
    for r in k["resources"]:
        path = os.path.normpath(os.path.join(directory, r))
        if os.path.isdir(path):
            objs += _render(path)
        else:
            objs += _docs(path)
    tags = {i["name"]: i["newTag"] for i in k.get("images", [])}
    for o in objs:
        if o["kind"] in WORKLOADS:
            for c in o["spec"]["template"]["spec"]["containers"]:
                name = c["image"].split(":")[0]
                if name in tags:
                    c["image"] = f"{name}:{tags[name]}"
    return objs


def _deployments():
    """{name: objects} of every deployable kustomization."""
    out = {"base": _render(os.path.join(K8S, "base"))}
    for d in sorted(glob.glob(os.path.join(K8S, "overlays", "*"))):
        out[os.path.basename(d)] = _render(d)
    return out


def _all_k8s_objects():
    objs = {}
    for rendered in _deployments().values():
        for o in rendered:
            objs[(o["kind"], o["metadata"]["name"])] = o
    return list(objs.values())


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


def _option(argv, name):
    """The value after `name` in a `driftscope health` command line."""
    return argv[argv.index(name) + 1] if name in argv else None


def _daemon_commands():
    """(where, argv) of every daemon command in the manifests and compose."""
    cmds = [(f"compose.yaml:{name}", svc["command"])
            for name, svc in _compose()["services"].items()]
    for o in _all_k8s_objects():
        if o["kind"] in WORKLOADS:
            for c in o["spec"]["template"]["spec"]["containers"]:
                cmds.append((f"k8s:{o['metadata']['name']}",
                             c.get("command", []) + c.get("args", [])))
    return [(w, argv) for w, argv in cmds if argv and argv[0] in DAEMONS]


def _port(address):
    return int(address.rsplit(":", 1)[1])


def _host(address):
    return address.rsplit(":", 1)[0]


def _dockerignore_allows():
    """What the repository's .dockerignore lets into the build context: it
    is an allow list (`*`, then `!NAME` per directory or file)."""
    with open(os.path.join(SOURCE, ".dockerignore")) as f:
        lines = [ln.strip() for ln in f if ln.strip()
                 and not ln.startswith("#")]
    assert lines[0] == "*", ".dockerignore must start by excluding everything"
    return {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}


def _dockerfile(name):
    """The instructions, continuation lines joined, comments left out."""
    with open(os.path.join(DEPLOY, name)) as f:
        lines = [ln for ln in f.read().splitlines()
                 if not ln.lstrip().startswith("#")]
    return "\n".join(lines).replace("\\\n", " ")


# ---- images ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.cuda"])
def test_images_come_from_the_local_base_only(name):
    text = _dockerfile(name)
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M)
    assert base and base.group(1) == "driftscope-base:bookworm", name
    with open(os.path.join(SOURCE, "scripts", "make-base-image.sh")) as f:
        assert base.group(1) in f.read(), "make-base-image.sh makes another tag"
    stages = set()
    for m in re.finditer(r"^FROM (\S+)(?: AS (\S+))?$", text, re.M):
        assert m.group(1) == "${BASE_IMAGE}" or m.group(1) in stages, (
            f"{name}: FROM {m.group(1)} is neither the base nor a stage")
        if m.group(2):
            stages.add(m.group(2))
    for banned in ("go install", "golang", "grpc_health_probe",
                   "grpc-health-probe", "docker.io/", "nvidia/cuda"):
        assert banned not in text, f"{name}: {banned}"
    # Packages before sources: every apt-get install of the build stage
    # comes before its first COPY of the sources, and it copies only the
    # directories .dockerignore lets into the context (so an edit to docs,
    # tests or deploy leaves the build cache valid).
    build = text.split(" AS build", 1)[1].split("\nFROM ", 1)[0]
    assert build.rindex("apt-get install") < build.index("\nCOPY "), name
    copied = {m.group(1).rstrip("/")
              for m in re.finditer(r"^COPY (\S+) \S+$", build, re.M)}
    assert copied == _dockerignore_allows(), name
    # Only the three programs are compiled: no tests, benchmarks, examples.
    assert "-DDRIFTSCOPE_TESTS=OFF" in build and "-DDRIFTSCOPE_BENCH=OFF" in build
    assert re.search(r"--target driftscope driftscope-worker "
                     r"driftscope-coordinator( |$)", build, re.M), name
    assert '-j "$(nproc)"' in build, name
    # The version is a build argument and a label, not a floating tag.
    assert re.search(r"org\.opencontainers\.image\.version=\"\$\{VERSION\}\"",
                     text), name
    assert "USER 10001:10001" in text and "--uid 10001" in text, name
    assert "--gid 10001" in text, f"{name}: the secrets' group is 10001"


def test_cuda_image_takes_pinned_nvidia_wheels():
    text = _dockerfile("Dockerfile.cuda")
    installs = re.findall(r"pip install (?:--\S+ )*([^&\n]+)", text)
    packages = [p for line in installs for p in line.split()]
    assert packages, "no pip install of NVIDIA's wheels"
    for p in packages:
        assert re.fullmatch(r"nvidia-[a-z0-9-]+==\$\{[A-Z_]+\}", p), p
    for arg in set(re.findall(r"==\$\{([A-Z_]+)\}", " ".join(packages))):
        assert re.search(rf"^ARG {arg}=[0-9][0-9.]+$", text, re.M), arg
    for needed in ("nvidia-cuda-runtime", "nvidia-cublas", "nvidia-cudnn-cu13",
                   "nvidia-cuda-nvcc"):
        assert any(p.startswith(needed + "==") for p in packages), needed
    assert "libcuda" not in text
    assert "zlib1g" in text  # cuDNN needs libz.so.1


def test_install_gives_the_programs_the_images_run(tmp_path):
    """The images run what `cmake --install` puts under /opt/driftscope:
    install this build the same way and run the programs from there."""
    prefix = tmp_path / "opt"
    p = subprocess.run(["cmake", "--install", _bin(), "--prefix", str(prefix)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    for program in ("driftscope", "driftscope-worker",
                    "driftscope-coordinator"):
        assert (prefix / "bin" / program).exists(), program
    assert glob.glob(str(prefix / "lib*" / "libdriftscope_kernels_*.so"))
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    p = subprocess.run([str(prefix / "bin" / "driftscope"), "health",
                        "--help"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert p.returncode == 0 and "grpc.health.v1" in p.stdout, p.stderr
    p = subprocess.run([str(prefix / "bin" / "driftscope-worker"),
                        "--helpfull"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert "--listen" in p.stdout + p.stderr


def test_base_image_script_refuses_bad_arguments_without_docker():
    script = os.path.join(SOURCE, "scripts", "make-base-image.sh")
    assert subprocess.run(["bash", "-n", script]).returncode == 0
    p = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "debootstrap" in p.stdout
    p = subprocess.run([script, "--frobnicate"], capture_output=True,
                       text=True)
    assert p.returncode == 2 and "--frobnicate" in p.stderr


# ---- compose --------------------------------------------------------------

def test_compose_is_a_format_docker_compose_1_29_reads():
    c = _compose()
    assert "name" not in c, "top-level name: is refused by docker-compose 1.29"
    assert re.fullmatch(r"3\.[0-9]+", str(c.get("version"))), (
        "without version: docker-compose 1.29 reads the legacy v1 format")
    assert isinstance(c["version"], str), "version must be a string"
    for key in c:
        assert key in {"version", "services", "volumes", "secrets",
                       "networks"} or key.startswith("x-"), key


def test_docker_compose_accepts_the_file():
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (apt-get install "
                    "docker-compose); the format checks above still ran")
    p = subprocess.run([tool, "-f", os.path.join(DEPLOY, "compose.yaml"),
                        "config", "-q"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr


def test_compose_services_hang_together():
    c = _compose()
    services = c["services"]
    coordinator = _flags(services["coordinator"]["command"])
    assert "store" in c["volumes"]
    assert services["coordinator"]["ports"] == [
        "127.0.0.1:${DRIFTSCOPE_PORT:-7000}:7000"]
    profiles = set()
    for name, svc in services.items():
        argv = svc["command"]
        f = _flags(argv)
        assert svc["image"] == f"driftscope-cpu:{_version()}", name
        # TLS on every connection, workers require client certificates.
        assert not {"insecure", "coordinator_insecure",
                    "worker_insecure"} & set(f), f"{name}: plaintext"
        assert "--insecure" not in svc["healthcheck"]["test"], name
        for v in svc.get("volumes", []):
            assert v.split(":")[0] in c["volumes"], f"{name}: volume {v}"
        probe = svc["healthcheck"]["test"]
        assert probe[:3] == ["CMD", "driftscope", "health"], name
        assert _port(probe[3]) == _port(f["listen"]), name
        # Every secret file a flag names is mounted in this service.
        for k, v in f.items():
            if v and v.startswith("/run/secrets/"):
                assert v[len("/run/secrets/"):] in svc["secrets"], (name, k)
        if argv[0] != "driftscope-worker":
            continue
        assert "client_token" not in svc["secrets"], (
            f"{name}: a worker must not hold the client token")
        assert _host(f["coordinator"]) == "coordinator", name
        assert _port(f["coordinator"]) == _port(coordinator["listen"]), name
        # The coordinator dials what the worker advertises.
        assert _host(f["advertise_address"]) == svc["hostname"] == name
        assert _port(f["advertise_address"]) == _port(f["listen"])
        assert f["name"] == name
        # Registration and the coordinator's calls use different tokens.
        assert f["coordinator_token_file"] != f["auth_token_file"]
        assert "tls_client_ca" in f, f"{name}: workers require mTLS"
        profiles.add(f["default_profile"])
    assert profiles == {"ref64", "fp32", "fp32-sse2"}
    assert set(c["secrets"]) == {"client_token", "registration_token",
                                 "worker_token", "ca_crt", "coordinator_crt",
                                 "coordinator_key", "worker_crt",
                                 "worker_key"}


def _san(cert):
    p = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout",
                        "-ext", "subjectAltName"], capture_output=True,
                       text=True, check=True)
    return set(re.findall(r"DNS:([^,\s]+)", p.stdout)) | set(
        re.findall(r"IP Address:([^,\s]+)", p.stdout))


def test_make_secrets_gives_every_compose_secret_readable_by_the_daemons(
        tmp_path):
    """deploy/make-secrets.sh makes each file compose mounts, group-readable
    (the daemons' gid, or the test's own when not root), certificates for the names
    compose's services dial, and changes nothing on a second run."""
    script = os.path.join(DEPLOY, "make-secrets.sh")
    out = tmp_path / "secrets"
    # The daemons' group where the test may chgrp to it, else its own.
    gid = "10001" if os.geteuid() == 0 else str(os.getegid())
    p = subprocess.run([script, "--dir", str(out), "--group", gid],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    c = _compose()
    for name, secret in c["secrets"].items():
        path = out / os.path.basename(secret["file"])
        st = os.stat(path)
        assert oct(st.st_mode & 0o777) == "0o640", name
        assert st.st_gid == int(gid), name
    assert oct(os.stat(out / "ca.key").st_mode & 0o777) == "0o600"
    # Mounted whole (plain Docker), the daemons must be able to enter it.
    st = os.stat(out)
    assert st.st_gid == int(gid) and oct(st.st_mode & 0o777) == "0o750"
    services = c["services"]
    coordinator_names = {_host(_flags(s["command"])["coordinator"])
                         for s in services.values()
                         if s["command"][0] == "driftscope-worker"}
    assert coordinator_names | {"127.0.0.1"} <= _san(out / "coordinator.crt")
    worker_names = {_host(_flags(s["command"])["advertise_address"])
                    for s in services.values()
                    if s["command"][0] == "driftscope-worker"}
    assert worker_names | {"127.0.0.1"} <= _san(out / "worker.crt")
    for cert in ("coordinator.crt", "worker.crt"):
        v = subprocess.run(["openssl", "verify", "-CAfile", out / "ca.crt",
                            out / cert], capture_output=True, text=True)
        assert v.returncode == 0, v.stdout + v.stderr
    before = {f: (out / f).read_bytes() for f in os.listdir(out)}
    p = subprocess.run([script, "--dir", str(out), "--group", gid],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert {f: (out / f).read_bytes() for f in os.listdir(out)} == before
    p = subprocess.run([script, "--dir", str(tmp_path / "x"),
                        "--worker-san", "worker1"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and "DNS:name" in p.stderr, p.stderr
    assert not (tmp_path / "x").exists()


# ---- Kubernetes -----------------------------------------------------------

def test_every_deployment_renders_and_is_complete():
    deployments = _deployments()
    assert {"gpu-h100", "gpu-a100", "gpu-l4"} <= set(deployments)
    base_files = {os.path.basename(p)
                  for p in glob.glob(os.path.join(K8S, "base", "*.yaml"))}
    k = _docs(os.path.join(K8S, "base", "kustomization.yaml"))[0]
    assert set(k["resources"]) == base_files - {"kustomization.yaml"}
    version = _version()
    for name, objs in deployments.items():
        kinds = [(o["kind"], o["metadata"]["name"]) for o in objs]
        assert len(kinds) == len(set(kinds)), f"{name}: duplicate objects"
        for o in objs:
            assert o["metadata"].get("namespace", "driftscope") == "driftscope"
            if o["kind"] in WORKLOADS:
                for c in o["spec"]["template"]["spec"]["containers"]:
                    assert c["image"].endswith(":" + version), (
                        f"{name}: {c['image']} is not the release {version}")


def test_kubernetes_validate_strict_accepts_every_manifest(tmp_path):
    kv = pytest.importorskip("kubernetes_validate",
                             reason="pip install kubernetes-validate")
    del kv
    files = sorted(glob.glob(os.path.join(K8S, "**", "*.yaml"),
                             recursive=True))
    manifests = [f for f in files if not f.endswith("kustomization.yaml")]
    p = subprocess.run(["kubernetes-validate", "--strict", "--quiet",
                        *manifests], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    # The validator does reject what a cluster would: an unknown field.
    broken = _docs(os.path.join(K8S, "base", "coordinator.yaml"))
    broken[-1]["spec"]["template"]["spec"]["containers"][0]["runAsRoot"] = 1
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump_all(broken))
    p = subprocess.run(["kubernetes-validate", "--strict", "--quiet",
                        str(path)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode != 0 and "runAsRoot" in p.stdout + p.stderr


def test_every_pod_meets_the_restricted_pod_security_standard():
    objs = _all_k8s_objects()
    ns = [o for o in objs if o["kind"] == "Namespace"][0]
    assert ns["metadata"]["labels"][
        "pod-security.kubernetes.io/enforce"] == "restricted"
    workloads = [o for o in objs if o["kind"] in WORKLOADS]
    assert workloads
    for w in workloads:
        where = w["metadata"]["name"]
        spec = w["spec"]["template"]["spec"]
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert not spec.get("hostNetwork") and not spec.get("hostPID")
        for v in spec.get("volumes", []):
            assert "hostPath" not in v, f"{where}: hostPath {v['name']}"
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc.get("privileged") is not True, where
            assert "runAsUser" not in sc or sc["runAsUser"] != 0, where
            # A read-only root needs somewhere writable for temporary files.
            assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])


def test_gpu_workers_are_pinned_per_gpu_model():
    products = set()
    for d in sorted(glob.glob(os.path.join(K8S, "overlays", "gpu-*"))):
        gpu = [o for o in _render(d) if o["kind"] == "Deployment"
               and "gpu" in o["metadata"]["name"]]
        assert len(gpu) == 1, d
        spec = gpu[0]["spec"]["template"]["spec"]
        assert spec["runtimeClassName"] == "nvidia", d
        product = spec["nodeSelector"]["nvidia.com/gpu.product"]
        assert product not in products, f"{d}: {product} twice"
        products.add(product)
        c = spec["containers"][0]
        assert c["image"].startswith("driftscope-cuda:"), d
        assert c["resources"]["limits"]["nvidia.com/gpu"] >= 1, d
    assert len(products) >= 2


def test_k8s_workloads_hang_together_with_one_secret_per_role():
    objs = _all_k8s_objects()
    services = {o["metadata"]["name"]: o for o in objs
                if o["kind"] == "Service"}
    workloads = [o for o in objs if o["kind"] in WORKLOADS]
    secrets = set()
    for w in workloads:
        where = w["metadata"]["name"]
        spec = w["spec"]["template"]["spec"]
        labels = w["spec"]["template"]["metadata"]["labels"]
        assert w["spec"]["selector"]["matchLabels"].items() <= labels.items()
        volumes = {v["name"] for v in spec.get("volumes", [])}
        volumes |= {t["metadata"]["name"]
                    for t in w["spec"].get("volumeClaimTemplates", [])}
        mine = {v["secret"]["secretName"] for v in spec.get("volumes", [])
                if "secret" in v}
        secrets |= mine
        for c in spec["containers"]:
            argv = c["command"]
            f = _flags(argv)
            assert not any("valueFrom" in e for e in c.get("env", [])), (
                f"{where}: secrets are files, not environment variables")
            for m in c.get("volumeMounts", []):
                assert m["name"] in volumes, f"{where}: mount {m['name']}"
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            assert ports["grpc"] == _port(f["listen"]), where
            for probe in ("readinessProbe", "livenessProbe"):
                cmd = c[probe]["exec"]["command"]
                assert cmd[:2] == ["driftscope", "health"], f"{where} {probe}"
                assert _port(cmd[2]) == _port(f["listen"]), f"{where} {probe}"
                for flag in ("--tls-ca", "--tls-client-cert",
                             "--tls-client-key"):
                    path = _option(cmd, flag)
                    if path:
                        assert any(path.startswith(m["mountPath"] + "/")
                                   for m in c["volumeMounts"]), (where, flag)
            # Every file flag points into a mounted volume.
            for k, v in f.items():
                if v and v.startswith("/etc/driftscope/"):
                    assert any(v.startswith(m["mountPath"] + "/")
                               for m in c["volumeMounts"]), f"{where}: --{k}"
            assert "requests" in c["resources"], where
            if argv[0] != "driftscope-worker":
                continue
            assert "driftscope-client-token" not in mine, (
                f"{where}: a worker must not hold the client token")
            assert "tls_client_ca" in f, f"{where}: workers require mTLS"
            # Registers with the coordinator Service, under a DNS name the
            # headless workers Service publishes for this pod.
            svc, ns = _host(f["coordinator"]).split(".")[:2]
            assert ns == "driftscope"
            assert (_port(f["coordinator"])
                    == services[svc]["spec"]["ports"][0]["port"])
            advertised = _host(f["advertise_address"]).replace(
                "$(POD_DNS_NAME)", c["env"][0]["value"])
            host, sub, ns = advertised.split(".")[:3]
            assert (host, sub, ns) == (spec["hostname"], spec["subdomain"],
                                       "driftscope"), where
            assert services[sub]["spec"]["clusterIP"] == "None"
            assert f["name"] == spec["hostname"] == where
            # The probe verifies the name the certificate is issued for.
            server_name = _option(c["readinessProbe"]["exec"]["command"],
                                  "--tls-server-name")
            assert server_name == advertised, where
    assert secrets == {"driftscope-coordinator-tls", "driftscope-worker-tls",
                       "driftscope-client-token",
                       "driftscope-registration-token",
                       "driftscope-worker-token"}
    for s in services.values():
        sel = s["spec"]["selector"].items()
        assert any(sel <= w["spec"]["template"]["metadata"]["labels"].items()
                   for w in workloads), s["metadata"]["name"]
    coordinator = [w for w in workloads
                   if w["metadata"]["name"] == "driftscope-coordinator"][0]
    assert coordinator["kind"] == "StatefulSet"
    assert coordinator["spec"]["replicas"] == 1  # SQLite: one writer
    # Reachable from outside the cluster.
    external = [s for s in services.values()
                if s["spec"].get("type") == "LoadBalancer"]
    assert len(external) == 1
    assert external[0]["spec"]["selector"] == \
        coordinator["spec"]["selector"]["matchLabels"]
    # deploy/README.md says how to create every secret the manifests use.
    with open(os.path.join(DEPLOY, "README.md")) as f:
        readme = f.read()
    for s in secrets:
        assert s in readme, f"deploy/README.md does not say how to make {s}"


def test_only_the_coordinator_reaches_the_workers():
    objs = _all_k8s_objects()
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    worker_labels = {"app.kubernetes.io/name": "driftscope",
                     "app.kubernetes.io/component": "worker"}
    coordinator_labels = {"app.kubernetes.io/name": "driftscope",
                          "app.kubernetes.io/component": "coordinator"}
    covering = [p for p in policies
                if p["spec"]["podSelector"]["matchLabels"].items()
                <= worker_labels.items()]
    assert covering, "no NetworkPolicy selects the workers"
    for p in covering:
        assert "Ingress" in p["spec"]["policyTypes"]
        for rule in p["spec"].get("ingress", []):
            sources = rule.get("from")
            assert sources, f"{p['metadata']['name']}: ingress from anywhere"
            for s in sources:
                assert set(s) == {"podSelector"}, s
                assert s["podSelector"]["matchLabels"] == coordinator_labels
            assert [x["port"] for x in rule["ports"]] == [7070]
    # Every worker pod is covered.
    for w in objs:
        if w["kind"] == "Deployment":
            labels = w["spec"]["template"]["metadata"]["labels"]
            assert worker_labels.items() <= labels.items()


# ---- flags, presets, docs -------------------------------------------------

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
    env = json.loads(p.stdout)
    # Known to this build, runnable here or not (the cuda presets on a host
    # without a GPU).
    presets = set(env["profiles"]) | set(env["profiles_unavailable"])
    assert "cuda" in presets
    for where, argv in _daemon_commands():
        if argv[0] == "driftscope-worker":
            profile = _flags(argv).get("default_profile")
            assert profile in presets, f"{where}: {profile}"


def test_documented_commands_keep_tokens_out_of_ps():
    docs = [os.path.join(DEPLOY, "README.md"),
            os.path.join(DEPLOY, "compose.yaml")]
    for path in docs:
        with open(path) as f:
            text = f.read()
        for line in text.splitlines():
            assert not re.search(r"--token[ =](?!-file)", line), (path, line)
            assert "--auth_token=" not in line, (path, line)
    with open(os.path.join(DEPLOY, "README.md")) as f:
        readme = f.read()
    assert "--token-file" in readme
    assert "docker-compose" in readme and "10001" in readme
