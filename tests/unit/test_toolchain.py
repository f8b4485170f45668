"""The collection's metadata and toolchain agree with what is installed in .venv."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_yaml(relpath: str) -> dict:
    return yaml.safe_load((REPO_ROOT / relpath).read_text(encoding="utf-8"))


def pinned(requirements: str) -> dict[str, Requirement]:
    reqs = {}
    for line in (REPO_ROOT / requirements).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            reqs[req.name.lower()] = req
    return reqs


@pytest.mark.parametrize("fqcn,spec", sorted(load_yaml("galaxy.yml")["dependencies"].items()))
def test_galaxy_dependency_ships_in_the_ansible_package(fqcn: str, spec: str) -> None:
    namespace, name = fqcn.split(".")
    found = importlib.util.find_spec(f"ansible_collections.{namespace}.{name}")
    assert found is not None, f"{fqcn} is not installed (it should come from the `ansible` package)"
    manifest = Path(next(iter(found.submodule_search_locations))) / "MANIFEST.json"
    version = json.loads(manifest.read_text(encoding="utf-8"))["collection_info"]["version"]
    assert Version(version) in SpecifierSet(spec), f"{fqcn} {version} does not satisfy galaxy.yml's {spec}"


def test_requires_ansible_admits_the_pinned_core() -> None:
    core = importlib.metadata.version("ansible-core")
    assert pinned("requirements.txt")["ansible-core"].specifier.contains(core)
    assert Version(core) in SpecifierSet(load_yaml("meta/runtime.yml")["requires_ansible"])


def test_pinned_ansible_bundles_the_pinned_core() -> None:
    """requirements.txt pins both; they must be a pair the `ansible` package itself accepts."""
    needs = [Requirement(r) for r in importlib.metadata.requires("ansible") or []]
    core_spec = next(r.specifier for r in needs if r.name == "ansible-core")
    pin = pinned("requirements.txt")["ansible-core"]
    assert core_spec.contains(next(iter(pin.specifier)).version)


def test_every_requirement_is_pinned_exactly() -> None:
    for requirements in ("requirements.txt", "requirements-dev.txt"):
        for name, req in pinned(requirements).items():
            ops = [spec.operator for spec in req.specifier]
            assert ops == ["=="], f"{requirements}: {name} is not pinned with =="


def test_action_group_members_are_modules() -> None:
    groups = load_yaml("meta/runtime.yml").get("action_groups", {})
    assert "diagnostics" in groups
    for group, members in groups.items():
        for member in members:
            if isinstance(member, str):
                short = member.rsplit(".", 1)[-1]
                assert (REPO_ROOT / "plugins" / "modules" / f"{short}.py").is_file(), f"{group}: no module {member}"


def load_get_pip_stand_in():
    path = REPO_ROOT / "scripts" / "ansible-test-offline" / "get_pip.py"
    spec = importlib.util.spec_from_file_location("get_pip_stand_in", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_get_pip_stand_in_drops_get_pip_only_options_and_uses_the_named_wheel(tmp_path: Path) -> None:
    get_pip = load_get_pip_stand_in()
    for version in ("24.0", "25.2"):
        (tmp_path / f"pip-{version}-py3-none-any.whl").write_bytes(b"")
    argv = ["--disable-pip-version-check", "pip==24.0", "--no-setuptools", "--no-wheel"]
    wheel, install = get_pip.plan(argv, str(tmp_path))
    assert wheel == str(tmp_path / "pip-24.0-py3-none-any.whl")
    assert install == ["install", "--no-index", "--find-links", str(tmp_path), "--upgrade",
                       "--disable-pip-version-check", "pip==24.0"]


def test_get_pip_stand_in_without_wheel_fails_with_remedy(tmp_path: Path, monkeypatch, capsys) -> None:
    get_pip = load_get_pip_stand_in()
    monkeypatch.setattr(get_pip, "__file__", str(tmp_path / "get_pip_25_2.py"))
    monkeypatch.setattr(sys, "argv", ["get_pip_25_2.py", "pip==25.2"])
    assert get_pip.main() == 1
    assert "install.sh" in capsys.readouterr().err
