"""Offline stand-in for the get-pip.py that ansible-test downloads to bootstrap pip into its virtualenvs.

ansible-test (ansible_test/_util/target/setup/requirements.py) first looks for a cached bootstrap script at
~/.ansible/test/cache/get_pip_<version>.py and runs it as ``python get_pip_X.py [options] pip==X [--no-setuptools]
[--no-wheel]``. `scripts/ansible-test-offline/install.sh` copies this file there together with the pip wheel it
names (fetched from the package index with ``pip download``), so the bootstrap needs no network at all.
"""

from __future__ import annotations

import glob
import os
import sys

# Options of the real get-pip.py that plain `pip install` does not know.
GET_PIP_ONLY_OPTIONS = ("--no-setuptools", "--no-wheel")


def plan(argv: list[str], here: str) -> tuple[str | None, list[str]]:
    """Return (the pip wheel to run pip from, or None if absent; the `pip install` arguments)."""
    args = [arg for arg in argv if arg not in GET_PIP_ONLY_OPTIONS]
    wanted = [arg.split("==", 1)[1] for arg in args if arg.startswith("pip==")]
    pattern = f"pip-{wanted[0]}-*.whl" if wanted else "pip-*.whl"
    wheels = sorted(glob.glob(os.path.join(here, pattern)))
    install = ["install", "--no-index", "--find-links", here, "--upgrade", *args]
    return (wheels[-1] if wheels else None), install


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    wheel, install = plan(sys.argv[1:], here)
    if wheel is None:
        sys.stderr.write(f"get_pip stand-in: no pip wheel in {here}; run scripts/ansible-test-offline/install.sh\n")
        return 1
    # Run pip from its own wheel (a wheel is importable as a zip), as the real get-pip.py does.
    sys.path.insert(0, wheel)
    from pip._internal.cli.main import main as pip_main

    return pip_main(install)


if __name__ == "__main__":
    sys.exit(main())
