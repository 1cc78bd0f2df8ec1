#!/usr/bin/env python3
"""Runs one job on a driftscope-worker and saves what comes back as .npy.

    submit_run.py --worker HOST:PORT --insecure --out DIR [SPEC.json]
                  [--profile fp32] [--tls-root CA.pem] [--token TOKEN]
                  [--tls-cert CERT.pem --tls-key KEY.pem]

TLS is the default (verified against --tls-root, else the system roots);
a worker that requires client certificates (mTLS, its --tls_client_ca) is
reached with --tls-cert and --tls-key (PEM, both or neither).

Without SPEC.json it runs the built-in default job (the one `driftscope
train` runs without a spec). DIR receives the layout `driftscope train
--out` writes: outputs.npy, losses.npy, weights/<name>.npy,
epoch_outputs/epoch<k>.npy, states_h.npy / states_c.npy, fingerprints.json.
Every chunk's crc32c and every tensor's sha256 are checked on arrival.
"""
import argparse
import hashlib
import json
import os
import sys

import grpc
import numpy as np
from google.protobuf import json_format

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from driftscope_stubs import load  # noqa: E402

# DefaultJobSpec() of the engine (engine/job/job_spec.h), spelled out.
DEFAULT_SPEC = {
    "seed": 42,
    "model": {"input": {"timesteps": 10, "features": 1},
              "layers": [{"lstm": {"units": 64, "return_sequences": True}},
                         {"lstm": {"units": 32, "return_sequences": True}}]},
    "optimizer": {"adam": {"learning_rate": 0.001}, "clipnorm": 1.0},
    "loss": "MSE",
    "data": {"synthetic": {"generator": "SINE", "samples": 1024,
                           "eval_samples": 128}},
    "training": {"epochs": 3, "batch_size": 32, "shuffle": True},
}

_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ (0x82F63B78 if _c & 1 else 0)
    _CRC_TABLE.append(_c)


def _crc32c(data):
    """CRC-32C (Castagnoli) with numpy-free table lookups; fine for tests
    and small results (a C extension would be the production choice)."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


class _Tensor:
    def __init__(self, chunk):
        self.dtype = chunk.dtype
        self.shape = tuple(chunk.shape)
        self.total = chunk.total_bytes
        self.buf = bytearray()


def run(stub, spec, profile, token=None, timeout=3600, check_crc=True):
    """Returns (accepted, summary, fingerprints, {name: ndarray})."""
    job_pb2, worker_pb2, _ = load()
    request = worker_pb2.RunRequest(run_id="py-" + os.urandom(8).hex())
    json_format.ParseDict(spec, request.spec)
    if profile:
        request.profile.text = profile
    c = request.capture
    c.outputs = c.losses = c.final_weights = c.epoch_outputs = c.states = True
    metadata = [("authorization", f"Bearer {token}")] if token else None
    accepted, summary, fingerprints, partial, tensors = None, None, [], {}, {}
    for event in stub.Run(request, timeout=timeout, metadata=metadata):
        kind = event.WhichOneof("event")
        if kind == "accepted":
            accepted = event.accepted
        elif kind == "fingerprints":
            fingerprints.extend(event.fingerprints.fingerprints)
        elif kind == "fingerprint":
            fingerprints.append(event.fingerprint)
        elif kind == "tensor_chunk":
            ch = event.tensor_chunk
            t = partial.setdefault(ch.name, _Tensor(ch))
            if ch.offset != len(t.buf):
                raise IOError(f"tensor {ch.name!r}: chunk at {ch.offset}, "
                              f"expected {len(t.buf)}")
            if check_crc and _crc32c(ch.data) != ch.crc32c:
                raise IOError(f"tensor {ch.name!r}: crc32c mismatch")
            t.buf += ch.data
            if len(t.buf) == t.total:
                if hashlib.sha256(t.buf).hexdigest() != ch.sha256:
                    raise IOError(f"tensor {ch.name!r}: sha256 mismatch")
                dtype = np.float32 if t.dtype == job_pb2.FLOAT32 else np.float64
                tensors[ch.name] = np.frombuffer(
                    bytes(t.buf), dtype=np.dtype(dtype).newbyteorder("<")
                ).reshape(t.shape)
                del partial[ch.name]
        elif kind == "done":
            summary = event.done.summary
        elif kind == "failed":
            raise RuntimeError(f"run failed: {event.failed.message}")
    if summary is None or partial:
        raise IOError(f"stream truncated (incomplete: {sorted(partial)})")
    return accepted, summary, fingerprints, tensors


def save(out, summary, fingerprints, tensors):
    os.makedirs(out, exist_ok=True)
    for name, array in tensors.items():
        if name in ("outputs", "losses"):
            path = os.path.join(out, f"{name}.npy")
        elif name.startswith("epoch"):
            os.makedirs(os.path.join(out, "epoch_outputs"), exist_ok=True)
            path = os.path.join(out, "epoch_outputs", f"{name}.npy")
        elif name.startswith("state_"):
            path = os.path.join(out, "states_" + name[len("state_"):] + ".npy")
        else:
            os.makedirs(os.path.join(out, "weights"), exist_ok=True)
            path = os.path.join(out, "weights", f"{name}.npy")
        np.save(path, array)
    with open(os.path.join(out, "fingerprints.json"), "w") as f:
        json.dump([{"step": fp.step, "sha256": fp.sha256,
                    "sha256_f32": fp.sha256_f32} for fp in fingerprints], f)
    with open(os.path.join(out, "summary.json"), "w") as f:
        f.write(json_format.MessageToJson(summary))


def _read(path, flag):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError(f"{flag}: cannot read {path}: {e.strerror}")
    if not data.strip():
        raise ValueError(f"{flag}: {path} is empty")
    return data


def channel_credentials(args):
    """TLS credentials from the flags; ValueError naming the flag at fault."""
    if args.insecure and (args.tls_root or args.tls_cert or args.tls_key):
        raise ValueError("--insecure contradicts --tls-root/--tls-cert/"
                         "--tls-key: choose plaintext or TLS")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together (the client "
                         "certificate and its key, for mTLS)")
    roots = _read(args.tls_root, "--tls-root") if args.tls_root else None
    cert = _read(args.tls_cert, "--tls-cert") if args.tls_cert else None
    key = _read(args.tls_key, "--tls-key") if args.tls_key else None
    return grpc.ssl_channel_credentials(root_certificates=roots,
                                        private_key=key,
                                        certificate_chain=cert)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("spec", nargs="?", help="job spec JSON (default job if absent)")
    p.add_argument("--worker", required=True, help="HOST:PORT")
    p.add_argument("--out", required=True)
    p.add_argument("--profile", default="")
    p.add_argument("--insecure", action="store_true", help="plaintext")
    p.add_argument("--tls-root", "--tls-ca", dest="tls_root",
                   help="PEM roots to verify the worker")
    p.add_argument("--tls-cert", help="PEM client certificate (mTLS)")
    p.add_argument("--tls-key", help="PEM key of --tls-cert")
    p.add_argument("--token", help="bearer token")
    p.add_argument("--timeout", type=float, default=3600)
    args = p.parse_args()
    _, _, worker_pb2_grpc = load()
    if args.insecure and not (args.tls_root or args.tls_cert or args.tls_key):
        channel = grpc.insecure_channel(args.worker)
    else:
        try:
            credentials = channel_credentials(args)
        except ValueError as e:
            print(f"submit_run: {e}", file=sys.stderr)
            return 2
        channel = grpc.secure_channel(args.worker, credentials)
    spec = DEFAULT_SPEC
    if args.spec:
        with open(args.spec) as f:
            spec = json.load(f)
    stub = worker_pb2_grpc.WorkerStub(channel)
    try:
        _, summary, fps, tensors = run(stub, spec, args.profile, args.token,
                                       args.timeout)
    except grpc.RpcError as e:
        print(f"submit_run: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    save(args.out, summary, fps, tensors)
    print(f"{summary.profile}: {summary.steps} steps, final loss "
          f"{summary.final_loss:.6g}, {len(tensors)} tensors -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
