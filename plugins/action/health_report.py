# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of taskscheduler.ops.health_report: the reports are files on the control node, so they are written
here, in the controller's process, instead of shipping the results to a module run (which would cost a Python
start and the transfer of every host's results, for a step every health check run takes)."""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase
from ansible_collections.taskscheduler.ops.plugins.module_utils._report import REPORT_ARGS, ReportError, run


class ActionModule(ActionBase):
    """Validate the arguments like the module would, then build and write the reports locally."""

    _supports_check_mode = True
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=REPORT_ARGS)
        check_mode = bool(self._task.check_mode)
        try:
            result.update(run(args, check_mode))
        except ReportError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        result["changed"] = not check_mode
        return result
