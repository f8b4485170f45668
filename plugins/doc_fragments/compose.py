# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options that select the Docker host and the compose project a diagnostic module looks at.
    DOCUMENTATION = r"""
options:
  project:
    description:
      - Name of the compose project (the C(com.docker.compose.project) label); the lab inventory has it as
        C(tsops_compose_project).
      - Containers are found by the compose labels C(com.docker.compose.project) and C(com.docker.compose.service).
        A wanted service without a labelled container is looked up by name, V(api) or V(api-1) say, as on
        production hosts whose compose file sets C(container_name) (the runbook's C(docker exec postgres ...)).
      - When omitted, only that lookup by name is done.
    type: str
  services:
    description:
      - The core services of the system. A core service without any running container is V(down); some of its
        replicas not running is V(degraded). Other containers of the project (exporters, Prometheus, ...) only
        ever make the containers area V(degraded).
    type: list
    elements: str
    default: [api, postgres, redis, scheduler, worker]
  docker_host:
    description:
      - The Docker daemon, V(unix:///path/to/docker.sock) or V(tcp://host:port) (plain HTTP).
      - Defaults to the E(DOCKER_HOST) environment variable, else V(unix:///var/run/docker.sock).
      - Daemons behind SSH or TLS are not supported; run the module on the Docker host instead.
    type: str
  docker_cli:
    description:
      - The C(docker) client used for C(docker exec) (psql, redis-cli); a name on E(PATH) or a path.
    type: str
    default: docker
  timeout:
    description:
      - Seconds allowed to each probe (HTTP request, C(docker exec), SQL statement, Docker API call).
    type: float
    default: 10
"""
