"""A skipped integration test must not pass for a green gate: the skip policy (see tests/integration/README.md).

Every skip (or xfail) of a test under the policy's directory is checked against ONE list, allowed_skips.yml: each
entry names a test node id pattern (fnmatch), a regular expression the skip message must contain (`message`) and why
that skip is legitimate (`reason`). Under CI (CI=true, as .ci/run sets it) a skip or xfail that no entry allows makes
the run fail (exit 1) and the terminal summary names it; elsewhere the summary only warns. Collection-time skips
(pytest.importorskip, module-level pytest.skip) count like any other.

The conftest of tests/integration registers it with ``register(config, directory, allowed_file)``.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

TRUE_WORDS = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Allowed:
    test: str
    message: re.Pattern[str]
    reason: str

    def allows(self, nodeid: str, text: str) -> bool:
        return fnmatch.fnmatchcase(nodeid, self.test) and bool(self.message.search(text))


@dataclass(frozen=True)
class Skip:
    nodeid: str
    kind: str  # "skipped" or "xfailed"
    text: str


def strict_from_env(env: dict[str, str] | os._Environ[str]) -> bool:
    """CI=true (any of 1/true/yes/on, any case) makes unlisted skips fail the run."""
    return env.get("CI", "").strip().lower() in TRUE_WORDS


def load_allowed(path: Path) -> list[Allowed]:
    """The entries of the allowed-skips file; a clear UsageError (file, entry, what is wrong) on bad content."""
    try:
        data = yaml.safe_load(path.read_text()) if path.exists() else []
    except (OSError, yaml.YAMLError) as exc:
        raise pytest.UsageError(f"skip policy: cannot read {path}: {exc}") from None
    if data is None:
        data = []
    if not isinstance(data, list):
        raise pytest.UsageError(f"skip policy: {path} must hold a list of entries (test, message, reason)")
    out: list[Allowed] = []
    for i, entry in enumerate(data, start=1):
        where = f"skip policy: {path} entry {i}"
        if not isinstance(entry, dict):
            raise pytest.UsageError(f"{where} is not a mapping with test, message, reason")
        unknown = set(entry) - {"test", "message", "reason"}
        if unknown:
            raise pytest.UsageError(f"{where} has unknown keys {sorted(unknown)} (allowed: test, message, reason)")
        for key in ("test", "message", "reason"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise pytest.UsageError(f"{where} needs a non-empty string `{key}`")
        try:
            message = re.compile(entry["message"])
        except re.error as exc:
            raise pytest.UsageError(f"{where}: `message` is not a regular expression ({exc})") from None
        out.append(Allowed(entry["test"].strip(), message, entry["reason"].strip()))
    return out


def skip_text(report: Any) -> str:
    """The message a skipped/xfailed report carries."""
    if getattr(report, "wasxfail", None) is not None:
        return f"xfail: {report.wasxfail}"
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def judge(skips: list[Skip], allowed: list[Allowed]) -> tuple[list[tuple[Skip, Allowed]], list[Skip]]:
    """Split skips into (allowed, with the entry that allows it) and unlisted."""
    listed: list[tuple[Skip, Allowed]] = []
    unlisted: list[Skip] = []
    for skip in skips:
        entry = next((a for a in allowed if a.allows(skip.nodeid, skip.text)), None)
        if entry is None:
            unlisted.append(skip)
        else:
            listed.append((skip, entry))
    return listed, unlisted


class SkipPolicy:
    """The pytest plugin: collects the skips under ``directory`` and judges them at the end of the session."""

    def __init__(self, directory: Path, allowed_file: Path, strict: bool) -> None:
        self.directory = directory.resolve()
        self.allowed_file = allowed_file
        self.allowed = load_allowed(allowed_file)
        self.strict = strict
        self.skips: dict[str, Skip] = {}
        self.rootpath: Path | None = None

    def in_scope(self, nodeid: str) -> bool:
        path = (self.rootpath or Path.cwd()) / nodeid.split("::", 1)[0]
        try:
            path.resolve().relative_to(self.directory)
        except ValueError:
            return False
        return True

    def record(self, report: Any) -> None:
        if report.skipped and report.nodeid and self.in_scope(report.nodeid):
            kind = "xfailed" if getattr(report, "wasxfail", None) is not None else "skipped"
            self.skips.setdefault(report.nodeid, Skip(report.nodeid, kind, skip_text(report)))

    # --- hooks ------------------------------------------------------------------------------------
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.rootpath = session.config.rootpath

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.record(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self.record(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        _listed, unlisted = judge(list(self.skips.values()), self.allowed)
        if unlisted and self.strict and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        listed, unlisted = judge(list(self.skips.values()), self.allowed)
        if not listed and not unlisted:
            return
        tr = terminalreporter
        tr.section("skip policy")
        for skip, entry in listed:
            tr.line(f"allowed {skip.kind}: {skip.nodeid}: {skip.text} (listed: {entry.reason})")
        if unlisted:
            verdict = ("FAILS the run (CI=true)" if self.strict
                       else "would fail the run under CI=true")
            tr.line(f"{len(unlisted)} skip(s) not listed in {self.allowed_file}: {verdict}", red=self.strict,
                    yellow=not self.strict, bold=True)
            for skip in unlisted:
                tr.line(f"UNLISTED {skip.kind}: {skip.nodeid}: {skip.text}", red=self.strict, yellow=not self.strict)


def register(config: pytest.Config, directory: Path, allowed_file: Path) -> SkipPolicy:
    policy = SkipPolicy(directory, allowed_file, strict_from_env(os.environ))
    config.pluginmanager.register(policy, "tsops-skip-policy")
    return policy
