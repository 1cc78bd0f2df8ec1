#!/usr/bin/env python3
"""Fails when a file includes a layer above its own.

The layers (docs/architecture.md), lowest first:
  engine/                 the numerical core: no gRPC, no protobuf
  proto/lib/              the protocol layer (may use the generated code)
  client/lib/, server/    the client library and the daemons, side by side
  client/import/          Keras model files (HDF5, libzip) to job specs
  client/cli/             the command, on top of the client library
A file may include its own layer and the layers below. The one edge between
server and client: the coordinator uses the worker client. The public
headers (include/driftscope/) may include what they export.

Usage: layering_check.py SOURCE_DIR
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]', re.M)

ENGINE = ("engine/",)
PROTOCOL = ENGINE + ("proto/lib/", "driftscope/v1/")
# (directory, what its files may include from this repository)
RULES = [
    ("engine/", ENGINE),
    ("proto/lib/", PROTOCOL),
    ("client/lib/", PROTOCOL + ("client/lib/",)),
    ("server/common/", PROTOCOL + ("server/common/",)),
    ("server/daemon/", PROTOCOL + ("server/common/", "server/daemon/")),
    ("server/worker/", PROTOCOL + ("server/common/", "server/daemon/",
                                   "server/worker/")),
    ("server/coordinator/", PROTOCOL + ("server/common/", "server/daemon/",
                                        "server/coordinator/",
                                        "client/lib/worker_client.h",
                                        "client/lib/grpc_channel.h")),
    ("client/import/", PROTOCOL + ("client/import/",)),
    ("client/cli/", PROTOCOL + ("client/lib/", "client/import/",
                                "client/cli/")),
    ("include/driftscope/", PROTOCOL + ("client/lib/",)),
]
OURS = ("engine/", "proto/", "driftscope/", "client/", "server/")
# Headers the engine must never see, whatever the quoting.
FORBIDDEN_IN_ENGINE = ("grpc", "grpcpp/", "google/protobuf/", "driftscope/v1/")


def violations(src):
    found = []
    for top, allowed in RULES:
        root = os.path.join(src, top)
        for dirpath, _, files in os.walk(root):
            for name in files:
                if not name.endswith((".h", ".cc", ".cu")):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, src)
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                for quote, inc in INCLUDE.findall(text):
                    if top == "engine/" and inc.startswith(FORBIDDEN_IN_ENGINE):
                        found.append(f"{rel}: includes {inc}: the engine has "
                                     "no gRPC or protobuf in it")
                        continue
                    if quote != '"' or not inc.startswith(OURS):
                        continue
                    if inc.startswith("driftscope/") and \
                            not inc.startswith("driftscope/v1/"):
                        continue  # a public header (include/driftscope/)
                    if not inc.startswith(allowed):
                        found.append(f"{rel}: includes {inc}, a layer above "
                                     f"{top} (allowed: {', '.join(allowed)})")
    return found


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    found = violations(sys.argv[1])
    for v in found:
        print(v)
    if found:
        print(f"{len(found)} include(s) against the layering "
              "(docs/architecture.md)")
        return 1
    print("layering: every include goes down or sideways within its layer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
