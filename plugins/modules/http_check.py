#!/usr/bin/python
# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: http_check
short_description: Status code and response time of health endpoints, with repeated timing samples
version_added: 0.1.0
description:
  - The runbook's C(curl -s -o /dev/null -w "%{http_code} (%{time_total}s)") for each endpoint, all endpoints
    at the same time, and its C(for i in {1..5}) timing loop with O(http_samples).
  - An endpoint fails when it does not answer or answers another status than O(endpoints[].expect_status); the
    verdict is then the endpoint's O(endpoints[].severity). With several samples, failing requests above the
    HighErrorRate ratio count as failing; a response time (the p95 with several samples) above the HighAPILatency
    threshold is V(degraded).
  - For an endpoint answering 503 with a JSON C(reason) (the API's C(/health/ready)) the reason is quoted.
  - Standard library only. Read-only; supports check mode.
author:
  - taskscheduler.ops contributors (!UNKNOWN)
extends_documentation_fragment:
  - taskscheduler.ops.compose
  - taskscheduler.ops.database
  - taskscheduler.ops.redis
  - taskscheduler.ops.http_options
  - taskscheduler.ops.diagnostics
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    details: Only sends the configured requests (GET); the result is the same as in a normal run.
options:
  endpoints:
    description:
      - The endpoints to probe.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Label of the endpoint in the results.
        type: str
        required: true
      url:
        description: Full URL; when empty the endpoint is reported as not configured (V(skipped)).
        type: str
      area:
        description: Group of the endpoint; the result has one summary line per group.
        type: str
        choices: [api, monitoring]
        default: api
      severity:
        description: Verdict when the endpoint fails.
        type: str
        choices: [down, degraded]
        default: down
      expect_status:
        description: Status codes that count as success.
        type: list
        elements: int
        default: [200]
      timeout:
        description: Seconds to wait for this endpoint; default O(timeout).
        type: float
      samples:
        description: Number of requests; default O(http_samples).
        type: int
      headers:
        description: Request headers (for example C(Authorization)).
        type: dict
        default: {}
  http_samples:
    description:
      - Requests per endpoint, one after the other; more than one adds each attempt and min/avg/p95/max times.
    type: int
    default: 1
  http_interval:
    description:
      - Seconds between the requests of one endpoint.
    type: float
    default: 0
seealso:
  - module: taskscheduler.ops.system_health
  - module: ansible.builtin.uri
"""

EXAMPLES = r"""
- name: API liveness and readiness
  taskscheduler.ops.http_check:
    endpoints:
      - name: api /health
        url: "{{ tsops_api_url }}/health"
      - name: api /health/ready
        url: "{{ tsops_api_url }}/health/ready"
        severity: degraded
  register: api

- name: Response time test (runbook performance_check.sh, 5 attempts)
  taskscheduler.ops.http_check:
    endpoints:
      - name: api /health
        url: "{{ tsops_api_url }}/health"
    http_samples: 5
  register: timing

- name: Print the p95
  ansible.builtin.debug:
    msg: "p95 {{ timing.endpoints[0].time_stats.p95 }}s"
"""

RETURN = r"""
extends_documentation_fragment:
  - taskscheduler.ops.diagnostics
status:
  description: Worst verdict of the endpoints, V(healthy), V(degraded) or V(down) (V(skipped) if none configured).
  returned: always
  type: str
  sample: degraded
reasons:
  description: Why the verdict is not V(healthy).
  returned: always
  type: list
  elements: str
  sample: ["api /health/ready: HTTP 503: postgres error: ConnectionRefusedError: connect call failed"]
notes:
  description: Observations that do not change the verdict (endpoints not configured).
  returned: always
  type: list
  elements: str
  sample: ["grafana: not configured"]
error:
  description: Always null (a failing endpoint is a verdict, not an error).
  returned: always
  type: str
  sample: null
summary:
  description: One line per group of endpoints (O(endpoints[].area)).
  returned: always
  type: list
  elements: str
  sample: ["api         HEALTHY  api /health 200 (0.002s), api /health/ready 200 (0.004s)"]
endpoints:
  description: One entry per endpoint.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Label of the endpoint.
      type: str
      sample: api /health
    url:
      description: URL requested (null when not configured).
      type: str
      sample: http://127.0.0.1:8080/health
    area:
      description: Group of the endpoint.
      type: str
      sample: api
    severity:
      description: Verdict when failing.
      type: str
      sample: down
    expect_status:
      description: Status codes counted as success.
      type: list
      elements: int
      sample: [200]
    status:
      description: Verdict of this endpoint.
      type: str
      sample: healthy
    reasons:
      description: Why this endpoint is not healthy.
      type: list
      elements: str
      sample: []
    status_code:
      description: HTTP status of the last request (0 when there was no HTTP answer).
      type: int
      sample: 200
    time_seconds:
      description: Total time of the last request.
      type: float
      sample: 0.0021
    error:
      description: Why the last request got no HTTP answer (C(connection refused), C(timed out), ...), else null.
      type: str
      sample: null
    body:
      description: The last answer's body (parsed when JSON, at most 2 KiB read).
      type: raw
      sample: {status: ok, version: 1.0.0}
    samples:
      description: Number of requests made.
      type: int
      sample: 5
    failures:
      description: Requests without an HTTP answer or with a 5xx status.
      type: int
      sample: 0
    server_errors:
      description: Requests answered with a 5xx status.
      type: int
      sample: 0
    attempts:
      description: Each request's C(status_code), C(time_seconds) and C(error), with more than one sample.
      type: list
      elements: dict
      returned: when more than one sample
    time_stats:
      description: C(min), C(avg), C(p95) and C(max) of the successful requests' times, with more than one sample.
      type: dict
      returned: when more than one sample
      sample: {min: 0.0018, avg: 0.0024, p95: 0.0031, max: 0.0031}
"""

from ansible_collections.taskscheduler.ops.plugins.module_utils._diag_module import (
    CONNECTION_ARGS,
    ENDPOINT_OPTIONS,
    http_check,
    run_module,
)


def main() -> None:
    argument_spec = dict(
        CONNECTION_ARGS,
        endpoints=dict(type="list", elements="dict", required=True, options=ENDPOINT_OPTIONS),
        http_samples=dict(type="int", default=1),
        http_interval=dict(type="float", default=0.0),
    )
    run_module(argument_spec, http_check, "http_check")


if __name__ == "__main__":
    main()
