# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to the collection: do not import from outside taskscheduler.ops.

Verdicts of the diagnostic modules. Every area of a check (containers, api, postgres, ...) ends in one
status with the reasons behind it:

* ``healthy``  nothing crosses a threshold;
* ``degraded`` a P1 condition of the runbook (HighAPILatency, WorkerHealthDegraded, DiskSpaceCritical, ...);
* ``down``     a P0 condition (TaskSchedulerAPIDown, TaskSchedulerDatabaseDown, NoActiveWorkers, ...);
* ``unknown``  the area could not be assessed (e.g. the database it is read from is unreachable);
* ``skipped``  not selected or not configured (e.g. no Grafana URL).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

HEALTHY = "healthy"
DEGRADED = "degraded"
DOWN = "down"
UNKNOWN = "unknown"
SKIPPED = "skipped"

STATUSES = (SKIPPED, HEALTHY, UNKNOWN, DEGRADED, DOWN)
_RANK = {s: i for i, s in enumerate(STATUSES)}


def worst(statuses: Iterable[str]) -> str:
    """The most severe status of several (skipped < healthy < unknown < degraded < down)."""
    out = SKIPPED
    for status in statuses:
        if _RANK[status] > _RANK[out]:
            out = status
    return out


class Area:
    """Figures and verdict of one area; ``as_dict()`` is what the modules return for it."""

    def __init__(self, name: str, status: str = HEALTHY) -> None:
        self.name = name
        self.status = status
        self.reasons: list[str] = []
        self.notes: list[str] = []
        self.figures: dict[str, Any] = {}
        self.headline = ""
        self.error: str | None = None

    def flag(self, status: str, reason: str) -> None:
        """Record a finding: the area becomes at least `status`."""
        self.reasons.append(reason)
        self.status = worst((self.status, status))

    def note(self, text: str) -> None:
        """Record an observation that does not change the verdict."""
        self.notes.append(text)

    def fail(self, status: str, error: str) -> None:
        """The probe itself failed: `status` is down for the component probed, unknown for areas read through it."""
        self.error = error
        self.flag(status, error)

    def summary_line(self) -> str:
        text = f"{self.name:<11} {self.status.upper():<8}"
        if self.headline:
            text += f" {self.headline}"
        if self.reasons:
            text += " | " + "; ".join(self.reasons)
        return text

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.figures)
        out.update(status=self.status, reasons=list(self.reasons), notes=list(self.notes), error=self.error,
                   summary=self.summary_line())
        return out


def skipped(name: str, why: str) -> Area:
    area = Area(name, SKIPPED)
    area.headline = why
    return area


def ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None
