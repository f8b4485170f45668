#!/usr/bin/env bash
# Run one gate of `make test`: a banner, the command, then its verdict and wall time.
# Each finished gate is appended to $GATE_LOG (default tests/output/gates.log); `gate.sh --summary` prints it.
# Usage: gate.sh NAME COMMAND [ARG...]  |  gate.sh --summary
set -uo pipefail

GATE_LOG="${GATE_LOG:-tests/output/gates.log}"

if [[ "${1:-}" == "--summary" ]]; then
  printf '\n==================== make test: gates ====================\n'
  [[ -f "$GATE_LOG" ]] && cat "$GATE_LOG"
  exit 0
fi

name="$1"; shift
mkdir -p "$(dirname "$GATE_LOG")"
printf '\n==================== gate: %s ====================\n' "$name"
printf '$ %s\n' "$*"
start=$(date +%s%N)
"$@"
rc=$?
secs=$(( ($(date +%s%N) - start) / 1000000 ))
elapsed=$(printf '%d.%03ds' $((secs / 1000)) $((secs % 1000)))
if ((rc == 0)); then verdict=ok; else verdict="FAILED (exit $rc)"; fi
printf '%-12s %-18s %10s\n' "$name" "$verdict" "$elapsed" >>"$GATE_LOG"
printf -- '-------------------- gate: %s %s in %s --------------------\n' "$name" "$verdict" "$elapsed"
exit "$rc"
