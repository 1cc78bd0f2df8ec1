"""A Python gRPC client (stubs generated from proto/ at test time) runs a job
on a real driftscope-worker; the .npy files it saves are bit for bit those of
a local `driftscope train` of the same spec and profile.

ctest sets DRIFTSCOPE_BIN to the build directory.
"""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_PY = os.path.join(HERE, "..", "..", "client", "python")

SPEC = {
    "seed": 7,
    "model": {"input": {"timesteps": 8, "features": 2},
              "layers": [{"lstm": {"units": 16, "return_sequences": True}},
                         {"gru": {"units": 8, "return_sequences": True}},
                         {"dense": {"units": 2}}]},
    "optimizer": {"adam": {"learning_rate": 0.01}, "clipnorm": 1.0},
    "data": {"synthetic": {"generator": "SINE", "samples": 64,
                           "eval_samples": 16}},
    "training": {"epochs": 2, "batch_size": 16,
                 "capture_epoch_outputs": True},
}


def _bin(*parts):
    build = os.environ.get("DRIFTSCOPE_BIN")
    if not build:
        pytest.fail("DRIFTSCOPE_BIN (the build directory) is not set")
    path = os.path.join(build, *parts)
    assert os.path.exists(path), f"{path} was not built"
    return path


@pytest.fixture
def worker():
    proc = subprocess.Popen(
        [_bin("server", "driftscope-worker"), "--listen=127.0.0.1:0",
         "--insecure"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True)
    line = proc.stdout.readline().strip()
    assert line.startswith("listening on "), line
    yield proc, line[len("listening on "):]
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _npy_files(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            if f.endswith(".npy"):
                out[os.path.relpath(os.path.join(d, f), root)] = \
                    os.path.join(d, f)
    return out


def test_remote_run_matches_local_train_bit_for_bit(tmp_path, worker):
    proc, address = worker
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    remote, local = tmp_path / "remote", tmp_path / "local"
    r = subprocess.run(
        [sys.executable, os.path.join(CLIENT_PY, "submit_run.py"), str(spec),
         "--worker", address, "--insecure", "--profile", "fp32",
         "--out", str(remote), "--timeout", "60"],
        capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(
        [_bin("client", "driftscope"), "train", str(spec), "--profile", "fp32",
         "--out", str(local)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr

    remote_files, local_files = _npy_files(remote), _npy_files(local)
    assert "outputs.npy" in remote_files
    assert "epoch_outputs/epoch1.npy" in remote_files
    assert "weights/layer2_kernel.npy" in remote_files
    assert sorted(remote_files) == sorted(local_files)
    for name, path in remote_files.items():
        a, b = np.load(path), np.load(local_files[name])
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.tobytes() == b.tobytes(), f"{name} differs"
    assert np.load(remote_files["outputs.npy"]).shape == (16, 8, 2)

    fps_remote = json.loads((remote / "fingerprints.json").read_text())
    fps_local = json.loads((local / "fingerprints.json").read_text())
    assert len(fps_remote) == 1 + 2 * 4  # initial + one per step
    assert [f["sha256"] for f in fps_remote] == \
        [f["sha256"] for f in fps_local]

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_bad_spec_is_invalid_argument_naming_the_field(tmp_path, worker):
    _, address = worker
    bad = json.loads(json.dumps(SPEC))
    bad["model"]["layers"][1]["gru"]["units"] = 0
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps(bad))
    r = subprocess.run(
        [sys.executable, os.path.join(CLIENT_PY, "submit_run.py"), str(spec),
         "--worker", address, "--insecure", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "INVALID_ARGUMENT" in r.stderr
    assert "model.layers[1].gru.units" in r.stderr


def test_standard_health_service_reports_serving(worker):
    import grpc  # grpcio
    _, address = worker
    with grpc.insecure_channel(address) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        name = b"driftscope.v1.Worker"
        # HealthCheckRequest{service}; HealthCheckResponse{status: SERVING=1}
        for request in (b"", b"\x0a" + bytes([len(name)]) + name):
            assert check(request, timeout=10) == b"\x08\x01"
        with pytest.raises(grpc.RpcError) as e:
            check(b"\x0a\x03foo", timeout=10)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.fixture
def mtls_worker(tmp_path):
    """A worker that requires a client certificate (--tls_client_ca). One
    self-signed certificate for localhost/127.0.0.1 is its server
    certificate, the CA it trusts and the client's certificate."""
    certs = tmp_path / "certs"
    certs.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
         "1", "-subj", "/CN=localhost", "-addext",
         "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(certs / "key.pem"), "-out", str(certs / "cert.pem")],
        check=True, capture_output=True, timeout=60)
    cert, key = str(certs / "cert.pem"), str(certs / "key.pem")
    proc = subprocess.Popen(
        [_bin("server", "driftscope-worker"), "--listen=127.0.0.1:0",
         "--tls_cert=" + cert, "--tls_key=" + key, "--tls_client_ca=" + cert],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline().strip()
    assert line.startswith("listening on "), line
    yield line[len("listening on "):], cert, key
    proc.kill()
    proc.wait()


def _submit(tmp_path, address, *flags):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    return subprocess.run(
        [sys.executable, os.path.join(CLIENT_PY, "submit_run.py"), str(spec),
         "--worker", address, "--profile", "fp32", "--out",
         str(tmp_path / "out"), "--timeout", "60", *flags],
        capture_output=True, text=True, timeout=120)


def test_client_certificate_reaches_an_mtls_worker(tmp_path, mtls_worker):
    address, cert, key = mtls_worker
    # Without a client certificate the worker refuses the handshake ...
    r = _submit(tmp_path, address, "--tls-root", cert)
    assert r.returncode == 1
    assert "UNAVAILABLE" in r.stderr
    assert not (tmp_path / "out" / "outputs.npy").exists()
    # ... with one (--tls-cert/--tls-key, as the CLI has) the run comes back.
    r = _submit(tmp_path, address, "--tls-root", cert, "--tls-cert", cert,
                "--tls-key", key)
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "out" / "outputs.npy").shape == (16, 8, 2)


def test_half_a_client_certificate_is_refused_naming_the_flag(tmp_path):
    # Checked before any connection: the address is never dialled.
    r = _submit(tmp_path, "127.0.0.1:1", "--tls-cert", "c.pem")
    assert r.returncode == 2
    assert "--tls-cert and --tls-key go together" in r.stderr
    r = _submit(tmp_path, "127.0.0.1:1", "--tls-cert", str(tmp_path / "no"),
                "--tls-key", str(tmp_path / "no"))
    assert r.returncode == 2
    assert "--tls-cert: cannot read" in r.stderr
    r = _submit(tmp_path, "127.0.0.1:1", "--insecure", "--tls-cert", "c.pem",
                "--tls-key", "k.pem")
    assert r.returncode == 2
    assert "--insecure contradicts" in r.stderr
