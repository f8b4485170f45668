#!/usr/bin/env bash
# Put the offline pip bootstrap where ansible-test looks for a cached get-pip script, so `ansible-test sanity`
# never reaches for the host it would otherwise download get-pip.py from (not reachable from here or CI).
# Usage: install.sh PYTHON   (the interpreter whose ansible-test is used: its pinned pip version is read from it)
set -euo pipefail

PY="${1:?usage: install.sh PYTHON}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${HOME}/.ansible/test/cache"

# The pip version ansible-test bootstraps into its venvs (ansible_test/_internal/python_requirements.py).
PIP_VERSION="$("$PY" -c '
import sys, types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version="%d.%d" % sys.version_info[:2]))["pip"])')"
target="$CACHE/get_pip_${PIP_VERSION//./_}.py"
mkdir -p "$CACHE"
if ! compgen -G "$CACHE/pip-${PIP_VERSION}-*.whl" >/dev/null; then
  "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --dest "$CACHE" "pip==${PIP_VERSION}"
fi
if ! cmp -s "$HERE/get_pip.py" "$target"; then
  cp "$HERE/get_pip.py" "$target"
fi
echo "ansible-test pip bootstrap: $target (pip ${PIP_VERSION}, offline)"
