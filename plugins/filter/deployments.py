# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter ``taskscheduler.ops.deployments``: the deployments of one service from a JSON Lines deployment log
(documented in deployments.yml beside this file).

The log (``respond_api_down_deployments_file``; ``lab/scripts/lab.sh deploy`` writes it) holds one
``{"at", "service", "previous_image", "new_image", "deployed_by"[, "rollback", "incident"]}`` object per line.
A line that is not such an object (a torn write, a hand edit) is skipped and reported with its line number, never a
Jinja traceback; ``unsure`` says when such a line comes after the service's last readable deployment, i.e. the
last deployment cannot be known and nothing should be rolled back on the strength of the log.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError


def parse_deployments(text: Any, service: str = "", path: str = "") -> dict[str, Any]:
    """``{deployments, skipped, unsure, lines}`` of ``service`` from the log ``text`` (see the module docstring)."""
    if text is None:
        text = ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str):
        raise AnsibleFilterError(f"taskscheduler.ops.deployments: expected the log's text, got {type(text).__name__}")
    where = path or "deployments file"
    deployments: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    last_match = 0
    lines = text.split("\n")
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        error = ""
        try:
            value = json.loads(line)
        except ValueError as exc:
            value, error = None, f"not JSON ({getattr(exc, 'msg', exc)})"
        if not error and not isinstance(value, Mapping):
            error = f"a JSON {type(value).__name__}, not a deployment object"
        elif not error and not isinstance(value.get("service"), str):
            error = "no 'service' string"
        elif not error and "at" in value and not _timestamp(value["at"]):
            error = f"'at' is not an ISO 8601 time ({value['at']!r})"
        if error:
            skipped.append({"line": lineno, "error": error, "message": f"{where}:{lineno}: skipped, {error}"})
            continue
        if not service or value["service"] == service:
            deployments.append(dict(value))
            last_match = lineno
    unsure = any(s["line"] > last_match for s in skipped)
    return {"deployments": deployments, "skipped": skipped, "unsure": unsure, "lines": len(lines)}


def _timestamp(value: Any) -> bool:
    """Whether ``value`` reads as ``YYYY-MM-DDTHH:MM:SS`` (what the rollback window compares)."""
    if not isinstance(value, str):
        return False
    try:
        _dt.datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return False
    return True


class FilterModule:
    """taskscheduler.ops deployment log filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"deployments": parse_deployments}
