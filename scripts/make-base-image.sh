#!/usr/bin/env bash
# Makes the Debian 12 (bookworm) base image the driftscope Dockerfiles start
# FROM, without any container registry: debootstrap fetches a minimal
# bookworm from a Debian mirror, and the tree is imported into the local
# Docker engine as a tag. Does nothing when the tag already exists.
#
#   sudo scripts/make-base-image.sh                 # tag driftscope-base:bookworm
#   sudo scripts/make-base-image.sh --tag T --mirror http://deb.debian.org/debian
#   sudo scripts/make-base-image.sh --force         # rebuild even if present
#
# Needs root (debootstrap chroots), debootstrap and docker on PATH.
set -euo pipefail

TAG=driftscope-base:bookworm
MIRROR=http://deb.debian.org/debian
SUITE=bookworm
FORCE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) TAG=$2; shift 2 ;;
    --mirror) MIRROR=$2; shift 2 ;;
    --force) FORCE=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "make-base-image: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$FORCE" -eq 0 ] && docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "make-base-image: $TAG already present"
  exit 0
fi
for tool in debootstrap docker tar; do
  command -v "$tool" >/dev/null || {
    echo "make-base-image: $tool not found; on Debian: apt-get install debootstrap docker.io" >&2
    exit 2
  }
done
if [ "$(id -u)" -ne 0 ]; then
  echo "make-base-image: debootstrap needs root; run it with sudo" >&2
  exit 2
fi

ROOT=$(mktemp -d /tmp/driftscope-base.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
echo "make-base-image: debootstrap $SUITE from $MIRROR"
debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR"
# Smaller and reproducible-ish: no apt caches or lists, no docs' man pages.
chroot "$ROOT" apt-get clean
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin \
  "$ROOT"/usr/share/man/* "$ROOT"/tmp/*
# apt inside `docker build` uses the same mirror.
echo "deb $MIRROR $SUITE main" > "$ROOT/etc/apt/sources.list"
echo "deb $MIRROR $SUITE-updates main" >> "$ROOT/etc/apt/sources.list"
echo "deb http://security.debian.org/debian-security $SUITE-security main" \
  >> "$ROOT/etc/apt/sources.list"
rm -f "$ROOT"/etc/apt/sources.list.d/debian.sources
tar --numeric-owner -C "$ROOT" -c . |
  docker import --change 'CMD ["/bin/bash"]' \
    --change 'ENV LANG=C.UTF-8' - "$TAG"
echo "make-base-image: imported $TAG"
