# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Doc fragment: how modules of taskscheduler.ops reach Alertmanager (API v2)."""

from __future__ import annotations


class ModuleDocFragment:
    """Options of module_utils._alertmanager.alertmanager_argument_spec()."""

    DOCUMENTATION = r"""
options:
  url:
    description:
      - Base URL of Alertmanager, without C(/api/v2) (the inventory's C(tsops_alertmanager_url)).
      - Only API v2 is used; API v1 was removed in Alertmanager 0.27.
    type: str
    default: http://127.0.0.1:9093
    aliases: [alertmanager_url]
  timeout:
    description: Seconds to wait for each API call.
    type: int
    default: 10
  validate_certs:
    description: Verify the TLS certificate of an C(https) URL.
    type: bool
    default: true
  bearer_token:
    description: Token sent as C(Authorization Bearer), for an Alertmanager behind an authenticating proxy.
    type: str
  username:
    description: User for HTTP basic authentication.
    type: str
  password:
    description: Password for HTTP basic authentication.
    type: str
"""
