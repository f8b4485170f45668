"""The integration skip policy (tests/integration/skip_policy.py): under CI=true an integration skip or xfail fails
the run unless tests/integration/allowed_skips.yml lists it with its reason; without CI it only warns."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

INTEGRATION_DIR = Path(__file__).resolve().parents[1] / "integration"
sys.path.insert(0, str(INTEGRATION_DIR))

import skip_policy  # noqa: E402 - tests/integration is not a package

pytest_plugins = ["pytester"]

CONFTEST = """
from pathlib import Path
from skip_policy import register

def pytest_configure(config):
    register(config, Path(__file__).parent, Path(__file__).parent / "allowed_skips.yml")
"""
SKIPPING = """
import pytest

def test_passes():
    pass

def test_needs_browser():
    pytest.skip("chromium is not installed here")
"""
ALLOW_BROWSER = """
- test: "test_x.py::test_needs_browser"
  message: "^chromium is not installed"
  reason: the browser cannot be installed on this machine
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.syspathinsert(INTEGRATION_DIR)
    pytester.makeconftest(CONFTEST)
    return pytester


def run(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None) -> pytest.RunResult:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    return project.runpytest("-p", "no:cacheprovider")


def test_unlisted_skip_fails_under_ci(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    project.makepyfile(test_x=SKIPPING)
    result = run(project, monkeypatch, "true")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*1 skip(s) not listed in *allowed_skips.yml: FAILS the run (CI=true)*",
                                 "UNLISTED skipped: test_x.py::test_needs_browser: chromium is not installed here"])


def test_listed_skip_passes_under_ci_and_shows_its_reason(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    project.makepyfile(test_x=SKIPPING)
    project.path.joinpath("allowed_skips.yml").write_text(ALLOW_BROWSER)
    result = run(project, monkeypatch, "true")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["allowed skipped: test_x.py::test_needs_browser: chromium is not installed here "
                                 "(listed: the browser cannot be installed on this machine)"])
    result.stdout.no_fnmatch_line("*UNLISTED*")


def test_listed_test_skipping_for_another_cause_fails(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    project.makepyfile(test_x=SKIPPING.replace("chromium is not installed here", "Alertmanager is down"))
    project.path.joinpath("allowed_skips.yml").write_text(ALLOW_BROWSER)
    result = run(project, monkeypatch, "true")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["UNLISTED skipped: test_x.py::test_needs_browser: Alertmanager is down"])


def test_without_ci_an_unlisted_skip_only_warns(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    project.makepyfile(test_x=SKIPPING)
    for ci in (None, "false"):
        result = run(project, monkeypatch, ci)
        assert result.ret == pytest.ExitCode.OK
        result.stdout.fnmatch_lines(["*1 skip(s) not listed in *: would fail the run under CI=true*",
                                     "UNLISTED skipped: test_x.py::test_needs_browser: *"])


def test_skips_in_fixtures_at_collection_and_xfails_count(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    project.makepyfile(
        test_fixture="""
import pytest

@pytest.fixture
def browser():
    pytest.skip("no browser")

def test_page(browser):
    pass
""",
        test_module="""
import pytest
pytest.importorskip("no_such_module_anywhere")
""",
        test_xfail="""
import pytest

@pytest.mark.xfail(reason="known bug 12")
def test_bug():
    assert False
""")
    result = run(project, monkeypatch, "1")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines_random(["UNLISTED skipped: test_fixture.py::test_page: no browser",
                                        "UNLISTED skipped: test_module.py: *no_such_module_anywhere*",
                                        "UNLISTED xfailed: test_xfail.py::test_bug: xfail: known bug 12"])


def test_a_real_failure_keeps_its_exit_status(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    project.makepyfile(test_x=SKIPPING + "\ndef test_fails():\n    assert False\n")
    result = run(project, monkeypatch, "true")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, skipped=1, failed=1)


def test_skips_outside_the_directory_are_not_judged(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    project.makeconftest(CONFTEST.replace('Path(__file__).parent, Path', 'Path(__file__).parent / "sub", Path'))
    project.mkdir("sub")
    project.makepyfile(test_x=SKIPPING)
    result = run(project, monkeypatch, "true")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.no_fnmatch_line("*skip policy*")


@pytest.mark.parametrize("content, error", [
    ("{test: x}", "must hold a list"),
    ("- just a string", "entry 1 is not a mapping"),
    ("- {test: 'a::b', message: 'x'}", "entry 1 needs a non-empty string `reason`"),
    ("- {test: 'a::b', message: '(', reason: r}", "entry 1: `message` is not a regular expression"),
    ("- {test: 'a::b', message: 'x', reason: r, why: w}", "entry 1 has unknown keys ['why']"),
    ("- [unclosed", "cannot read"),
])
def test_a_bad_allowed_skips_file_is_a_clear_usage_error(tmp_path: Path, content: str, error: str):
    path = tmp_path / "allowed_skips.yml"
    path.write_text(content)
    with pytest.raises(pytest.UsageError, match=error.replace("[", r"\[").replace("`", "`")):
        skip_policy.load_allowed(path)


def test_the_committed_list_loads_and_every_entry_names_an_existing_test_file():
    allowed = skip_policy.load_allowed(INTEGRATION_DIR / "allowed_skips.yml")
    repo = INTEGRATION_DIR.parents[1]
    for entry in allowed:
        assert (repo / entry.test.split("::")[0]).is_file(), entry


CI_VALUES = [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("", False), ("false", False), ("0", False)]


@pytest.mark.parametrize("value, strict", CI_VALUES)
def test_ci_values(value: str, strict: bool):
    assert skip_policy.strict_from_env({"CI": value}) is strict
    assert skip_policy.strict_from_env({}) is False


def test_alertmanager_down_is_a_failure_not_a_skip(monkeypatch: pytest.MonkeyPatch):
    """incident_support.alertmanager_url(): under the integration gate the lab is up, so an Alertmanager that does
    not answer fails the test (it used to skip it)."""
    import socket

    import incident_support

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("TSOPS_ALERTMANAGER_URL", f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(pytest.fail.Exception, match=f"Alertmanager is not up at http://127.0.0.1:{port}"):
            incident_support.alertmanager_url()
    except pytest.skip.Exception as exc:  # a skip would pass for a skip here too: turn it into the failure it is
        pytest.fail(f"alertmanager_url() skipped instead of failing: {exc}")


def test_the_integration_conftest_applies_the_policy_with_the_committed_list(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """tests/integration/conftest.py (copied with allowed_skips.yml next to a skipping test) registers the policy."""
    pytester.syspathinsert(INTEGRATION_DIR)
    pytester.makeconftest((INTEGRATION_DIR / "conftest.py").read_text())
    pytester.path.joinpath("allowed_skips.yml").write_text((INTEGRATION_DIR / "allowed_skips.yml").read_text())
    pytester.makepyfile(test_x=SKIPPING)
    result = run(pytester, monkeypatch, "true")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["UNLISTED skipped: test_x.py::test_needs_browser: chromium is not installed here"])
