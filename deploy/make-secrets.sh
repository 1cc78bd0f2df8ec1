#!/usr/bin/env bash
# Makes the secrets of a driftscope deployment in one directory: a CA, a
# certificate for the coordinator and one for the workers (both allow
# serverAuth and clientAuth: the coordinator presents its own to workers,
# which require client certificates, and a worker's health probe presents
# the worker's), and one token per role. Files that exist are kept, so a
# second run changes nothing; delete a file to make it anew.
#
#   sudo deploy/make-secrets.sh                     # deploy/secrets, compose names
#   sudo deploy/make-secrets.sh --dir certs \
#     --coordinator-san DNS:coord.example.net \
#     --worker-san DNS:worker1.example.net,DNS:worker2.example.net
#
# The daemons in the images run as uid 10001, gid 10001: every file they read
# is made group 10001, mode 0640 (readable by root, by the owner, and by the
# daemons; nobody else), and the directory group 10001, mode 0750. The CA
# key stays 0600 and is never mounted.
# Needs openssl; chgrp to 10001 needs root.
set -euo pipefail

DIR=deploy/secrets
# The names the other side dials: compose's service names, and the host's
# loopback for the published coordinator port and the probes.
COORD_SAN=DNS:coordinator,DNS:localhost,IP:127.0.0.1
WORKER_SAN=DNS:worker-ref64,DNS:worker-fp32,DNS:worker-fp32-sse2,DNS:localhost,IP:127.0.0.1
GROUP=10001
DAYS=825
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --coordinator-san) COORD_SAN=$2; shift 2 ;;
    --worker-san) WORKER_SAN=$2; shift 2 ;;
    --group) GROUP=$2; shift 2 ;;
    --days) DAYS=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "make-secrets: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for s in "$COORD_SAN" "$WORKER_SAN"; do
  if ! [[ "$s" =~ ^((DNS|IP):[^,[:space:]]+)(,(DNS|IP):[^,[:space:]]+)*$ ]]; then
    echo "make-secrets: '$s' is not a subjectAltName list like DNS:name,IP:1.2.3.4" >&2
    exit 2
  fi
done
command -v openssl >/dev/null || {
  echo "make-secrets: openssl not found; on Debian: apt-get install openssl" >&2
  exit 2
}

install -d -m 0750 "$DIR"
cd "$DIR"
umask 077
if [ ! -e ca.crt ]; then
  openssl req -x509 -newkey rsa:3072 -nodes -days "$DAYS" \
    -subj /CN=driftscope-ca -keyout ca.key -out ca.crt 2>/dev/null
fi
cert() {  # NAME SANS
  [ -e "$1.crt" ] && return 0
  openssl req -newkey rsa:3072 -nodes -subj "/CN=$1" -keyout "$1.key" \
    -out "$1.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$2" \
    > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
    -days "$DAYS" -out "$1.crt" -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
cert coordinator "$COORD_SAN"
cert worker "$WORKER_SAN"
for t in client-token registration-token worker-token; do
  [ -e "$t" ] || openssl rand -hex 32 > "$t"
done
readable=(ca.crt coordinator.crt coordinator.key worker.crt worker.key
          client-token registration-token worker-token)
chmod 0640 "${readable[@]}"
chmod 0600 ca.key
# The directory too: mounted whole (plain Docker, -v DIR:/etc/driftscope),
# the daemons must be able to enter it.
if ! chgrp "$GROUP" . "${readable[@]}" 2>/dev/null; then
  echo "make-secrets: cannot chgrp $GROUP (not root?); the daemons (uid" \
       "10001, gid 10001) cannot read the files until you run:" >&2
  echo "  sudo chgrp $GROUP $DIR $DIR/{$(IFS=,; echo "${readable[*]}")}" >&2
  exit 1
fi
echo "make-secrets: $DIR holds ${readable[*]} (group $GROUP, mode 0640) and ca.key (0600)"
