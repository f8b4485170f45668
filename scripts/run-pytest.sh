#!/usr/bin/env bash
# Run pytest on one test directory and make "no tests collected" (pytest exit 5) an explicit decision:
#   --require-tests  exit 5 fails the gate (tests must exist here);
#   --allow-empty    exit 5 passes, saying so, but only while WHEN_CODE has no Python files: once there is code
#                    (e.g. plugins/), a gate without tests fails.
# Usage: run-pytest.sh (--require-tests | --allow-empty WHEN_CODE) TESTDIR [PYTEST ARGS...]
set -uo pipefail

mode="$1"; shift
code_dir=""
if [[ "$mode" == "--allow-empty" ]]; then code_dir="$1"; shift; fi
testdir="$1"; shift

if [[ ! -d "$testdir" ]]; then
  echo "run-pytest: $testdir does not exist"
  rc=5
else
  python -m pytest "$testdir" "$@"
  rc=$?
fi
if ((rc != 5)); then exit "$rc"; fi

if [[ "$mode" == "--require-tests" ]]; then
  echo "run-pytest: NO TESTS in $testdir - this gate requires tests, failing"
  exit 1
fi
if [[ -n "$(find "$code_dir" -name '*.py' -not -name '__init__.py' -print -quit 2>/dev/null)" ]]; then
  echo "run-pytest: NO TESTS in $testdir while $code_dir has Python code - failing"
  exit 1
fi
echo "run-pytest: no tests in $testdir and no code in $code_dir yet - nothing to test, passing"
exit 0
