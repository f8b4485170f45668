# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # What every diagnostic module of the action group taskscheduler.ops.diagnostics shares: read-only, same result
    # in check mode, posix, member of the group. Used together with ansible.builtin.action_common_attributes (and its
    # .actiongroups), which describe the attributes; a module states only where it differs.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    details: Only reads; the result is the same as in a normal run.
  diff_mode:
    support: none
  platform:
    platforms: posix
  action_group:
    support: full
    membership: [taskscheduler.ops.diagnostics]
notes:
  - Accepts every connection option of the C(taskscheduler.ops.diagnostics) action group (compose project, database,
    Redis, HTTP), using those it needs, so one C(module_defaults) entry for
    C(group/taskscheduler.ops.diagnostics) serves all the diagnostic modules.
"""

    # Return values with the same meaning in every diagnostic module; a module documents its own where they differ.
    RETURN = r"""
checked_at:
  description: When the check ran (UTC, ISO 8601).
  returned: always
  type: str
  sample: "2025-01-10T09:14:03+00:00"
duration_seconds:
  description: Wall time of the check.
  returned: always
  type: float
  sample: 1.04
"""
