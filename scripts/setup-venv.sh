#!/usr/bin/env bash
# Create or refresh the project's virtualenv at .venv and make the collection importable.
#
#  * idempotent: a second run with unchanged requirements does nothing but check (about a second);
#  * re-installs only when requirements*.txt, the interpreter or the pinned pip changed
#    (stamp file .venv/.requirements.sha256 keyed on their hash);
#  * makes taskscheduler.ops importable WITHOUT copying: collections/ansible_collections/taskscheduler/ops
#    is a git-ignored symlink to the repository root, and ansible.cfg puts ./collections on collections_path.
#
# Environment: PYTHON=/path/to/python3.X overrides the interpreter search (must be >= 3.12, ansible-core 2.21).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.requirements.sha256"
PIP_VERSION="26.3"
MIN_MINOR=12 # ansible-core 2.21 supports controller Python 3.12 - 3.14
MAX_MINOR=14

log() { printf 'setup-venv: %s\n' "$*"; }

# Prints "3.X" when $1 is a working interpreter in the supported range with venv available.
py_minor() {
  "$1" - "$MIN_MINOR" "$MAX_MINOR" <<'EOF' 2>/dev/null
import sys, venv  # noqa: F401  (venv: Debian splits it into python3.X-venv)
lo, hi = int(sys.argv[1]), int(sys.argv[2])
if sys.version_info[0] == 3 and lo <= sys.version_info[1] <= hi:
    print(f"3.{sys.version_info[1]}")
else:
    sys.exit(1)
EOF
}

find_python() {
  local cand pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
  if [[ -n "${PYTHON:-}" ]]; then
    py_minor "$PYTHON" >/dev/null || { log "PYTHON=$PYTHON is not a usable Python 3.$MIN_MINOR-3.$MAX_MINOR"; exit 1; }
    echo "$PYTHON"; return
  fi
  # Newest first: pyenv installs, then whatever is on PATH (python3.13, python3.12, python3).
  local -a cands=()
  if compgen -G "$pyenv_root/versions/3.*/bin/python3" >/dev/null; then
    while IFS= read -r cand; do cands+=("$cand"); done < <(
      printf '%s\n' "$pyenv_root"/versions/3.*/bin/python3 | sort -V -r)
  fi
  for m in $(seq "$MAX_MINOR" -1 "$MIN_MINOR"); do cands+=("python3.$m"); done
  cands+=(python3)
  for cand in "${cands[@]}"; do
    # pyenv versions may be pre-releases ("3.14.0a1"): py_minor accepts them, so skip those by name.
    [[ "$cand" =~ /versions/[0-9.]+/ || "$cand" != */versions/* ]] || continue
    if py_minor "$cand" >/dev/null; then command -v "$cand" || echo "$cand"; return; fi
  done
  log "no Python 3.$MIN_MINOR-3.$MAX_MINOR found (ansible-core 2.21 needs one on the control node)."
  log "Install one (e.g. pyenv install 3.13) or point PYTHON= at it, then re-run."
  exit 1
}

changed=""
PY="$(find_python)"
PY_FULL="$("$PY" -c 'import sys; print(sys.version.split()[0])')"

# Recreate the venv when it is missing, broken or built from another interpreter version.
if [[ -x "$VENV/bin/python" ]]; then
  have="$("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || true)"
  if [[ "$have" != "$PY_FULL" ]]; then
    log "existing .venv runs Python '${have:-broken}', want $PY_FULL: recreating"
    rm -rf "$VENV"
  fi
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating .venv with $PY (Python $PY_FULL)"
  "$PY" -m venv "$VENV"
fi

want="$( { cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt"; echo "python=$PY_FULL pip=$PIP_VERSION"; } \
  | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  log "requirements unchanged (.venv, Python $PY_FULL): nothing to install"
  touch "$STAMP" # newer than the requirements files again, so make skips this script next time
else
  log "installing requirements into .venv (Python $PY_FULL); this takes a few minutes the first time"
  rm -f "$STAMP"
  export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
  "$VENV/bin/python" -m pip install --quiet "pip==$PIP_VERSION"
  "$VENV/bin/python" -m pip install --quiet -r "$ROOT/requirements.txt" -r "$ROOT/requirements-dev.txt"
  "$VENV/bin/python" -m pip check
  echo "$want" >"$STAMP"
  changed=1
fi

# The collection, importable in place: collections/ansible_collections/taskscheduler/ops -> repository root.
link="$ROOT/collections/ansible_collections/taskscheduler/ops"
mkdir -p "$(dirname "$link")"
if [[ "$(readlink "$link" 2>/dev/null || true)" != "../../.." ]]; then
  rm -rf "$link"
  ln -s ../../.. "$link"
  log "linked $link -> repository root"
  changed=1
fi

# After a change, check that ansible really sees our collection (the community ones come with the package).
cd "$ROOT"
if [[ -n "$changed" ]]; then
  listing="$("$VENV/bin/ansible-galaxy" collection list taskscheduler.ops 2>/dev/null || true)"
  if [[ "$listing" != *taskscheduler.ops* ]]; then
    log "taskscheduler.ops is not visible to ansible-galaxy (check ansible.cfg collections_path)"; exit 1
  fi
fi
versions="$("$VENV/bin/python" -c 'import importlib.metadata as m; print("ansible", m.version("ansible"), "/ ansible-core", m.version("ansible-core"))')"
log "ready: $versions, Python $PY_FULL, taskscheduler.ops linked in place"
