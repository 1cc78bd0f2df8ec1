"""Generates the driftscope.v1 Python modules from proto/ with grpc_tools.

Nothing generated is committed: `load()` runs protoc into a directory (a
temporary one by default), puts it on sys.path and returns the modules, so
the stubs always match the protos of this checkout.

    from driftscope_stubs import load
    job_pb2, worker_pb2, worker_pb2_grpc = load()
"""
import importlib
import os
import sys
import tempfile

PROTO_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                          "..", "proto")
PROTOS = ["driftscope/v1/job.proto", "driftscope/v1/worker.proto",
          "driftscope/v1/coordinator.proto"]


def generate(out_dir):
    """Writes driftscope/v1/*_pb2.py and *_pb2_grpc.py under out_dir."""
    from grpc_tools import protoc  # grpcio-tools
    import grpc_tools

    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    protos = [p for p in PROTOS if os.path.exists(os.path.join(PROTO_ROOT, p))]
    rc = protoc.main(["protoc", f"-I{PROTO_ROOT}", f"-I{include}",
                      f"--python_out={out_dir}", f"--grpc_python_out={out_dir}",
                      *protos])
    if rc != 0:
        raise RuntimeError(f"protoc failed ({rc}) on {protos}")


_loaded = None


def load(out_dir=None):
    """Generates (once per process) and imports job_pb2, worker_pb2 and
    worker_pb2_grpc."""
    global _loaded
    if _loaded is None:
        out_dir = out_dir or tempfile.mkdtemp(prefix="driftscope_stubs_")
        generate(out_dir)
        sys.path.insert(0, out_dir)
        _loaded = tuple(importlib.import_module(f"driftscope.v1.{m}")
                        for m in ("job_pb2", "worker_pb2", "worker_pb2_grpc"))
    return _loaded
