#!/usr/bin/env bash
# Make sure the only base image of the lab, debian:bookworm-slim, exists locally.
# Order: already present -> pulled from a registry -> built here with debootstrap + docker import.
# The Debian mirror is read from this machine's own apt sources, so nothing is hard-coded.
set -euo pipefail
BASE_IMAGE="${BASE_IMAGE:-debian:bookworm-slim}"
SUITE="${BASE_SUITE:-bookworm}"

log() { printf '[base-image] %s\n' "$*" >&2; }

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "$BASE_IMAGE present"
  exit 0
fi

if [ "${LAB_TRY_PULL:-1}" = 1 ] && timeout 60 docker pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
  log "$BASE_IMAGE pulled"
  exit 0
fi

apt_mirror() {
  local uri=""
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '/^URIs:/ {for (i=2;i<=NF;i++) if ($i !~ /security/) {print $i; exit}}' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk '$1=="deb" && $0 !~ /security/ {for (i=2;i<=NF;i++) if ($i ~ /^(https?|file):/) {print $i; exit}}' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  return 1
}

if ! command -v debootstrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null || {
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
  else
    log "ERROR: $BASE_IMAGE is missing, no registry answered, and debootstrap is not installed (needs root on Debian)"
    exit 1
  fi
fi

mirror=$(apt_mirror) || { log "ERROR: no Debian mirror found in /etc/apt sources; set DEBIAN_MIRROR"; exit 1; }
work=$(mktemp -d /var/tmp/lab-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
log "building $BASE_IMAGE with debootstrap ($SUITE, minbase)"
debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2; log "ERROR: debootstrap failed"; exit 1; }
# Slim it like the official image: no docs, man pages or apt lists.
rm -rf "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/var/cache/apt/*.bin \
       "$work"/rootfs/usr/share/doc/* "$work"/rootfs/usr/share/man/* "$work"/rootfs/usr/share/info/*
cat > "$work/rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
CFG
cat > "$work/rootfs/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
tar -C "$work/rootfs" -c . | docker import \
  --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$BASE_IMAGE" >/dev/null
log "$BASE_IMAGE imported"
