#!/usr/bin/env bash
# Installs every build and test dependency of driftscope by package name.
# Idempotent: installs only what is missing. Debian 12; run as root (or with
# sudo available). Python packages come from PyPI.
#   scripts/install-deps.sh           build + test dependencies
#   scripts/install-deps.sh --golden  also TensorFlow/PyTorch (regenerating
#                                     golden files, bench/compare_pytorch.py)
set -euo pipefail

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libeigen3-dev libabsl-dev libssl-dev
  libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
  libsqlite3-dev sqlite3
  libhdf5-dev libzip-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang clang-format libclang-rt-14-dev python3 python3-pip chromium
  docker-compose iproute2 openssl docker.io debootstrap
)
PIP_PACKAGES=(numpy pytest grpcio grpcio-tools pyyaml kubernetes-validate)
GOLDEN_PIP_PACKAGES=(tensorflow-cpu torch)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PY=python3
want=("${PIP_PACKAGES[@]}")
if [ "${1:-}" = "--golden" ]; then want+=("${GOLDEN_PIP_PACKAGES[@]}"); fi
pip_missing=()
for p in "${want[@]}"; do
  mod=$p
  case $p in tensorflow-cpu) mod=tensorflow ;; grpcio) mod=grpc ;; grpcio-tools) mod=grpc_tools ;; pyyaml) mod=yaml ;; kubernetes-validate) mod=kubernetes_validate ;; esac
  $PY -c "import $mod" 2>/dev/null || pip_missing+=("$p")
done
if [ ${#pip_missing[@]} -gt 0 ]; then
  echo "install-deps: pip install ${pip_missing[*]}"
  # Debian's own python3 is "externally managed"; a pyenv/venv python is not.
  $PY -m pip install -q "${pip_missing[@]}" 2>/dev/null ||
    $PY -m pip install -q --break-system-packages "${pip_missing[@]}"
fi
echo "install-deps: all dependencies present"
