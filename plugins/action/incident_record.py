# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of taskscheduler.ops.incident_record: runs the module unchanged, except that it still accepts the
two spellings the module had before 0.1.0 was released, with a deprecation warning:

* ``message`` -> ``update`` (``message`` is reserved by ansible-core for module arguments), and
* ``state: list`` -> ``state: query`` (``list`` is not a valid ``state`` choice for modules).
"""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()


class ActionModule(ActionBase):
    """Translate the old argument spellings, then execute the module."""

    _supports_check_mode = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        if "message" in args:
            display.deprecated(
                "taskscheduler.ops.incident_record: the 'message' option is now 'update'",
                version="1.0.0", collection_name="taskscheduler.ops",
            )
            message = args.pop("message")
            args.setdefault("update", message)
        if args.get("state") == "list":
            display.deprecated(
                "taskscheduler.ops.incident_record: state=list is now state=query",
                version="1.0.0", collection_name="taskscheduler.ops",
            )
            args["state"] = "query"
        result.update(self._execute_module(module_name="taskscheduler.ops.incident_record", module_args=args,
                                           task_vars=task_vars))
        return result
