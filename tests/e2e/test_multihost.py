"""driftscope across hosts, without Docker: network namespaces joined by
veth links to a bridge give the coordinator, three workers and the client
their own hosts and addresses. Everything it makes (namespaces, links,
processes, files) is its own and is torn down afterwards; the addresses are
from 198.18.0.0/15, the range reserved for network tests (RFC 2544).

Over TLS (certificates for the hosts' names and addresses) with tokens:
- the job across the hosts gives the same report, byte for byte, as
  `driftscope run` in one process;
- a worker's link is cut while it runs a run: the run is retried on another
  worker; when the link returns, the worker registers again;
- the coordinator is stopped (SIGTERM) and restarted, then killed (-9)
  and restarted, mid-job: the job and the `watch` and `submit --wait`
  clients carry on to the end.

Needs root (ip netns) and the build (DRIFTSCOPE_BIN); run by ctest
`e2e_multihost`.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

BIN = os.environ.get("DRIFTSCOPE_BIN", "")
NET = "198.18.0"
HOSTS = {"coord": f"{NET}.1", "client": f"{NET}.2", "w1": f"{NET}.11",
         "w2": f"{NET}.12", "w3": f"{NET}.13"}
PROFILES = {"w1": "ref64", "w2": "fp32", "w3": "fp32-sse2"}
# Long enough (tens of seconds here) to cut a link and restart the
# coordinator while it runs.
SLOW_SPEC = {"seed": 5,
             "model": {"input": {"timesteps": 20, "features": 1},
                       "layers": [{"gru": {"units": 48,
                                           "return_sequences": True}}]},
             "data": {"synthetic": {"generator": "SINE", "samples": 512,
                                    "eval_samples": 8}},
             "training": {"epochs": 80, "batch_size": 32}}

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="needs root and iproute2 (ip netns) for the namespaces")


def sh(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, capture_output=True,
                          text=True, **kw)


class Hosts:
    """The namespaces, links and daemons; close() undoes all of it."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.prefix = f"ds{os.getpid() % 100000}"
        self.bridge_ns = f"{self.prefix}-net"
        self.procs = {}
        self.made = []
        sh("ip", "netns", "add", self.bridge_ns)
        self.made.append(self.bridge_ns)
        self.exec_in(self.bridge_ns, "ip", "link", "add", "br0", "type",
                     "bridge")
        self.exec_in(self.bridge_ns, "ip", "link", "set", "br0", "up")
        for host, addr in HOSTS.items():
            ns = self.ns(host)
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            # One veth pair per host: eth0 in the host, the other end on
            # the bridge (named after the host, for cutting the link).
            sh("ip", "link", "add", "eth0", "netns", ns, "type", "veth",
               "peer", "name", f"l-{host}", "netns", self.bridge_ns)
            self.exec_in(self.bridge_ns, "ip", "link", "set", f"l-{host}",
                         "master", "br0", "up")
            self.exec_in(ns, "ip", "addr", "add", f"{addr}/24", "dev", "eth0")
            self.exec_in(ns, "ip", "link", "set", "eth0", "up")
            self.exec_in(ns, "ip", "link", "set", "lo", "up")

    def ns(self, host):
        return f"{self.prefix}-{host}"

    def exec_in(self, ns, *args, **kw):
        return sh("ip", "netns", "exec", ns, *args, **kw)

    def start(self, name, host, argv):
        log = open(os.path.join(self.tmp, f"{name}.log"), "w")
        self.procs[name] = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(host), *argv], stdout=log,
            stderr=subprocess.STDOUT)
        return self.procs[name]

    def log(self, name):
        with open(os.path.join(self.tmp, f"{name}.log")) as f:
            return f.read()

    def link(self, host, up):
        self.exec_in(self.bridge_ns, "ip", "link", "set", f"l-{host}",
                     "up" if up else "down")

    def close(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        for ns in reversed(self.made):
            sh("ip", "netns", "del", ns, check=False)


def make_tls(d):
    """A CA and one certificate for every host (names and addresses),
    allowing serverAuth and clientAuth."""
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
       "1", "-subj", "/CN=driftscope-test-ca", "-keyout", f"{d}/ca.key",
       "-out", f"{d}/ca.crt")
    sans = ",".join([f"DNS:{h}.driftscope.test" for h in HOSTS] +
                    [f"IP:{a}" for a in HOSTS.values()])
    ext = f"{d}/ext.cnf"
    with open(ext, "w") as f:
        f.write(f"subjectAltName={sans}\n"
                "extendedKeyUsage=serverAuth,clientAuth\n")
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj",
       "/CN=driftscope-host", "-keyout", f"{d}/host.key", "-out",
       f"{d}/host.csr")
    sh("openssl", "x509", "-req", "-in", f"{d}/host.csr", "-CA",
       f"{d}/ca.crt", "-CAkey", f"{d}/ca.key", "-CAcreateserial", "-days",
       "1", "-out", f"{d}/host.crt", "-extfile", ext)


def has_flag(binary, flag):
    p = sh(binary, "--helpfull", check=False)
    return f"--{flag} (" in p.stdout + p.stderr


@pytest.fixture
def cluster():
    if not BIN:
        pytest.fail("DRIFTSCOPE_BIN (the build directory) is not set")
    tmp = tempfile.mkdtemp(prefix="driftscope-e2e-")
    hosts = Hosts(tmp)
    try:
        make_tls(tmp)
        for name in ("client-token", "registration-token", "worker-token"):
            with open(f"{tmp}/{name}", "w") as f:
                f.write(os.urandom(16).hex() + "\n")
        coordinator = f"{BIN}/server/driftscope-coordinator"
        worker = f"{BIN}/server/driftscope-worker"
        # One credential per role where the daemons have it; otherwise the
        # workers register with the client token.
        per_role = has_flag(coordinator, "registration_token_file")
        registration = "registration-token" if per_role else "client-token"
        coord_argv = [
            coordinator, f"--listen={HOSTS['coord']}:7000",
            f"--store_dir={tmp}/store", "--lease_seconds=3",
            f"--tls_cert={tmp}/host.crt", f"--tls_key={tmp}/host.key",
            f"--auth_token_file={tmp}/client-token",
            f"--worker_tls_ca={tmp}/ca.crt",
            f"--worker_tls_cert={tmp}/host.crt",
            f"--worker_tls_key={tmp}/host.key",
            f"--worker_auth_token_file={tmp}/worker-token",
            "--grace_period=1s"]
        if per_role:
            coord_argv.append(
                f"--registration_token_file={tmp}/registration-token")
        hosts.coord_argv = coord_argv
        hosts.start("coordinator", "coord", coord_argv)
        for w, profile in PROFILES.items():
            hosts.start(w, w, [
                worker, f"--listen={HOSTS[w]}:7070",
                f"--tls_cert={tmp}/host.crt", f"--tls_key={tmp}/host.key",
                f"--tls_client_ca={tmp}/ca.crt",
                f"--auth_token_file={tmp}/worker-token",
                f"--coordinator={HOSTS['coord']}:7000",
                f"--coordinator_tls_ca={tmp}/ca.crt",
                f"--coordinator_token_file={tmp}/{registration}",
                f"--name={w}", f"--advertise_address={HOSTS[w]}:7070",
                f"--default_profile={profile}", "--grace_period=1s"])
        hosts.tmp = tmp
        yield hosts
    finally:
        hosts.close()
        shutil.rmtree(tmp, ignore_errors=True)


def cli(hosts, *args, timeout=600, background=False):
    argv = ["ip", "netns", "exec", hosts.ns("client"),
            f"{BIN}/client/driftscope", *args,
            "--coordinator", f"{HOSTS['coord']}:7000",
            "--tls-ca", f"{hosts.tmp}/ca.crt",
            "--token-file", f"{hosts.tmp}/client-token"]
    if background:
        return subprocess.Popen(argv, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(argv, capture_output=True, text=True,
                          timeout=timeout)


def wait_for(what, predicate, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def available_workers(hosts):
    r = cli(hosts, "workers", "--json", timeout=30)
    if r.returncode != 0:
        return set()
    return {w["worker"]["name"] for w in json.loads(r.stdout).get("workers", [])
            if w.get("state") == "WORKER_AVAILABLE"}


def job_status(hosts, job):
    r = cli(hosts, "status", job, "--json", timeout=30)
    return json.loads(r.stdout) if r.returncode == 0 else None


def test_a_job_across_hosts_survives_a_cut_link_and_a_coordinator_restart(
        cluster):
    hosts = cluster
    wait_for("three workers registered",
             lambda: available_workers(hosts) == set(PROFILES), timeout=90)
    # Health over the network, through TLS, as a probe from another host.
    r = subprocess.run(
        ["ip", "netns", "exec", hosts.ns("client"),
         f"{BIN}/client/driftscope", "health", f"{HOSTS['w1']}:7070",
         "--tls-ca", f"{hosts.tmp}/ca.crt", "--tls-client-cert",
         f"{hosts.tmp}/host.crt", "--tls-client-key", f"{hosts.tmp}/host.key"],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout == "SERVING\n", r.stderr

    # The default job across the hosts: the same bytes as in one process.
    default_profiles = ",".join(PROFILES.values())
    # No --profiles: each worker runs its own default profile.
    remote = cli(hosts, "submit", "--wait", "--format", "json")
    local = subprocess.run([f"{BIN}/client/driftscope", "run", "--profiles",
                            default_profiles, "--format", "json"],
                           capture_output=True, text=True, timeout=600)
    assert remote.returncode != 2, remote.stderr
    assert local.returncode != 2, local.stderr
    if remote.stdout != local.stdout:
        for name, text in (("remote", remote.stdout), ("local", local.stdout)):
            with open(f"/tmp/driftscope-e2e-{name}.json", "w") as f:
                f.write(text)
    assert remote.stdout == local.stdout
    assert remote.returncode == local.returncode

    spec = f"{hosts.tmp}/slow.json"
    with open(spec, "w") as f:
        json.dump(SLOW_SPEC, f)
    profiles = ",".join(PROFILES.values())
    request_id = "req-e2e-" + os.urandom(8).hex()
    waiter = cli(hosts, "submit", spec, "--wait",
                 "--request-id", request_id, "--format", "json",
                 background=True)
    job = None

    def find_job():
        nonlocal job
        r = cli(hosts, "jobs", "--json", timeout=30)
        jobs = json.loads(r.stdout).get("jobs", []) if r.returncode == 0 \
            else []
        for j in jobs:
            if j.get("client_request_id") == request_id:
                job = j["job_id"]
        return job is not None
    wait_for("the submitted job", find_job)
    watcher = cli(hosts, "watch", job, background=True)

    # Cut the link of a worker while its run trains.
    cut = None

    def training():
        nonlocal cut
        s = job_status(hosts, job) or {}
        for run in s.get("runs", []):
            if run.get("state") == "RUN_RUNNING" and \
                    int(run.get("step", 0)) > 0 and \
                    run.get("worker") in PROFILES:
                cut = run["worker"]
                return True
        return False
    wait_for("a run training", training, timeout=120)
    hosts.link(cut, up=False)

    # The coordinator restarted mid-job, same address and store: first
    # stopped as `docker restart` stops it (SIGTERM: it drains and ends the
    # clients' streams), then killed (-9).
    def still_running():
        s = job_status(hosts, job)
        assert s and s["state"] in ("JOB_QUEUED", "JOB_RUNNING"), (
            "the job ended before the restart it is meant to survive; "
            "make SLOW_SPEC longer")

    time.sleep(1)
    still_running()
    hosts.procs["coordinator"].send_signal(signal.SIGTERM)
    assert hosts.procs["coordinator"].wait(timeout=60) == 0, \
        hosts.log("coordinator")
    hosts.start("coordinator2", "coord", hosts.coord_argv)
    time.sleep(2)
    still_running()
    hosts.procs["coordinator2"].send_signal(signal.SIGKILL)
    hosts.procs["coordinator2"].wait()
    hosts.start("coordinator3", "coord", hosts.coord_argv)

    # The job finishes; both clients carry on to the end.
    out, err = waiter.communicate(timeout=900)
    assert waiter.returncode in (0, 1), err  # 1: drift above tolerance
    watched_out, watched_err = watcher.communicate(timeout=120)
    assert watcher.returncode == 0, watched_err
    final = job_status(hosts, job)
    assert final["state"] == "JOB_SUCCEEDED", final
    moved = [r for r in final["runs"] if r.get("worker") == cut]
    assert moved and all(
        r["attempts"][-1]["worker"] != cut for r in moved), final["runs"]

    # The report equals the one `driftscope run` computes in one process.
    local = subprocess.run([f"{BIN}/client/driftscope", "run", spec,
                            "--profiles", profiles, "--format", "json"],
                           capture_output=True, text=True, timeout=900)
    assert local.returncode in (0, 1), local.stderr
    report = cli(hosts, "report", job, "--format", "json")
    assert report.stdout == local.stdout
    assert out == local.stdout

    # The link returns: the worker registers again.
    hosts.link(cut, up=True)
    wait_for(f"{cut} registered again",
             lambda: cut in available_workers(hosts), timeout=90)
