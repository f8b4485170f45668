# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # How a diagnostic module makes its HTTP requests (health endpoints).
    DOCUMENTATION = r"""
options:
  use_proxy:
    description:
      - Use the proxy of the E(http_proxy) / E(https_proxy) environment variables (honouring E(no_proxy)).
    type: bool
    default: true
  validate_certs:
    description:
      - Verify the TLS certificate of C(https) endpoints.
    type: bool
    default: true
"""
