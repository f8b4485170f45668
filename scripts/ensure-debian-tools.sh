#!/usr/bin/env bash
# Install Debian packages that a gate needs, when their command is missing (as root, with apt-get).
# Usage: ensure-debian-tools.sh COMMAND=PACKAGE ...   e.g. ensure-debian-tools.sh shellcheck=shellcheck
set -euo pipefail

missing=()
for spec in "$@"; do
  cmd="${spec%%=*}" pkg="${spec#*=}"
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
((${#missing[@]})) || exit 0

if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
  echo "ensure-debian-tools: missing ${missing[*]}; install them (as root: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "ensure-debian-tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists yet; a stale list may name versions that are gone.
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
