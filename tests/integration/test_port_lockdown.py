"""docker_port_lockdown against the real firewall of this host and a real Docker container, without the lab.

The set-up is the test's own and is taken down afterwards: a network namespace ``tsl-ext`` joined to the host by a
veth pair (host side 10.213.0.1; the namespace has 10.213.0.2, not allowed, and 10.213.0.3, allowed) plays the
outside world, and a container of this test publishes port PORT on every host address. The namespace also serves
port PORT itself: the "test host" the container connects to outbound. iptables is host-global, so the test touches
only rules whose comment is ``tsops-lockdown tcp/<PORT>`` (and removes them whatever happens).

Sequence as community.docker tests each module: check mode, real run, idempotent check, idempotent run, then the
lift the same four ways; then the fail-open cases (a bad allow_sources entry, a failure between two steps, IPv6
exposure, SSH/connection port).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PORT = 18471
V6_PORT = 18472
NS = "tsl-ext"
HOST_IF, NS_IF = "tsl-h", "tsl-e"
HOST_IP, DENIED_IP, ALLOWED_IP = "10.213.0.1", "10.213.0.2", "10.213.0.3"
CONTAINER = "tsl-lockdown-web"
IMAGE = "tsops-lab/app:latest"  # the lab's own image: python3 and curl
MODULE = "taskscheduler.ops.docker_port_lockdown"

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("iptables") or not shutil.which("docker"),
                                reason="needs root, iptables and Docker on this host")


def sh(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout)


def ansible_bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def module(args: dict[str, Any], check: bool = False) -> dict[str, Any]:
    """Run the module once on this host through ansible, as a playbook task would; its result."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_NOCOLOR="1")
    cmd = [ansible_bin("ansible"), "localhost", "-c", "local", "-i", "localhost,", "-m", MODULE,
           "-a", json.dumps(args)] + (["--check"] if check else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=REPO, check=False)
    try:
        result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError) as exc:
        raise AssertionError(f"ansible gave no result ({exc}): {proc.stdout[-2000:]} {proc.stderr[-2000:]}") from None
    result.pop("invocation", None)
    return result


def our_rules(port: int = PORT) -> list[str]:
    """This test's rules in the filter table (DOCKER-USER and INPUT), as iptables -S prints them."""
    needle = f'"tsops-lockdown tcp/{port}"'
    return [ln for chain in ("DOCKER-USER", "INPUT") for ln in sh("iptables", "-w", "-S", chain).stdout.splitlines()
            if needle in ln]


def remove_our_rules(port: int) -> None:
    """Independent of the module: delete every rule carrying this port's tag."""
    import shlex

    for line in our_rules(port):
        sh("iptables", "-w", "-D", *shlex.split(line)[1:], check=False)


def connects(*argv: str) -> bool:
    """curl (in the given context) to an HTTP server: True when an answer came back within 3 s."""
    return sh(*argv, check=False, timeout=30).returncode == 0


def inbound(source: str) -> bool:
    """From outside (the namespace, with this source address) to the published port on the host's address."""
    return connects("ip", "netns", "exec", NS, "curl", "-sS", "-o", "/dev/null", "--max-time", "3", "--interface",
                    source, f"http://{HOST_IP}:{PORT}/")


def outbound() -> bool:
    """From the container to port PORT of the test host (the namespace): not published traffic."""
    return connects("docker", "exec", CONTAINER, "curl", "-sS", "-o", "/dev/null", "--max-time", "3",
                    f"http://{DENIED_IP}:{PORT}/")


def wait_for(fn, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not fn():
        if time.monotonic() > deadline:
            raise AssertionError(f"set-up: {what} within {timeout} s")
        time.sleep(0.5)


def teardown() -> None:
    for port in (PORT, V6_PORT):
        remove_our_rules(port)
    sh("docker", "rm", "-f", CONTAINER, check=False)
    sh("ip", "netns", "del", NS, check=False)  # takes the listener's namespace and the veth pair with it
    sh("ip", "link", "del", HOST_IF, check=False)


@pytest.fixture(scope="module")
def world() -> Iterator[None]:
    if sh("iptables", "-w", "-S", "DOCKER-USER", check=False).returncode != 0:
        pytest.fail("Docker's DOCKER-USER chain is missing: Docker runs without its iptables integration")
    if sh("docker", "image", "inspect", IMAGE, check=False).returncode != 0:
        env = dict(os.environ, LAB_INSTANCE="tsops-h2", LAB_PORT_OFFSET="200")
        subprocess.run([str(REPO / "lab/scripts/lab.sh"), "images"], check=True, env=env, timeout=900)
    teardown()
    listener = None
    try:
        sh("ip", "netns", "add", NS)
        sh("ip", "link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF)
        sh("ip", "link", "set", NS_IF, "netns", NS)
        sh("ip", "addr", "add", f"{HOST_IP}/29", "dev", HOST_IF)
        sh("ip", "link", "set", HOST_IF, "up")
        for cmd in (["addr", "add", f"{DENIED_IP}/29", "dev", NS_IF], ["addr", "add", f"{ALLOWED_IP}/29", "dev", NS_IF],
                    ["link", "set", NS_IF, "up"], ["link", "set", "lo", "up"],
                    ["route", "add", "default", "via", HOST_IP]):
            sh("ip", "netns", "exec", NS, "ip", *cmd)
        listener = subprocess.Popen(["ip", "netns", "exec", NS, sys.executable, "-m", "http.server", str(PORT),
                                     "--bind", DENIED_IP], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sh("docker", "run", "-d", "--rm", "--name", CONTAINER, "--label", "tsops-test=port-lockdown",
           "-p", f"0.0.0.0:{PORT}:8000", "--entrypoint", "python3", IMAGE, "-m", "http.server", "8000")
        wait_for(lambda: inbound(DENIED_IP), "the published port answers from outside")
        wait_for(outbound, "the container reaches the test host on the same port")
        yield
    finally:
        if listener is not None:
            listener.kill()
            listener.wait(timeout=10)
        teardown()


@pytest.fixture
def clean(world: None) -> Iterator[None]:
    remove_our_rules(PORT)
    yield
    remove_our_rules(PORT)


def test_lockdown_four_ways_cuts_inbound_only_and_lifts_exactly(clean: None) -> None:
    args = {"port": PORT, "allow_sources": [ALLOWED_IP]}
    started = time.monotonic()

    checked = module(args, check=True)
    assert checked["changed"] is True and not checked.get("failed"), checked
    assert our_rules() == [], "check mode touched the firewall"
    assert [s.split()[0:2] for s in checked["steps"]] == [["-I", "DOCKER-USER"], ["-I", "INPUT"],
                                                          ["-I", "DOCKER-USER"], ["-I", "INPUT"]]

    applied = module(args)
    assert applied["changed"] is True and applied["drop_in_place"] is True, applied
    assert applied["steps"] == checked["steps"], "check mode must announce what the real run does"
    assert len(our_rules()) == 4 and applied["rules"] == our_rules()

    again_checked = module(args, check=True)
    again = module(args)
    assert again_checked["changed"] is False and again["changed"] is False, (again_checked, again)
    assert again["steps"] == [] and again["rules"] == applied["rules"]

    assert not inbound(DENIED_IP), "a client that is not allowed still reaches the published port"
    assert inbound(ALLOWED_IP), "an allowed source lost access"
    assert outbound(), "the lockdown cut the container's own outbound connections to the same port"

    lift = {"port": PORT, "state": "absent"}
    lift_checked = module(lift, check=True)
    assert lift_checked["changed"] is True and len(our_rules()) == 4
    lifted = module(lift)
    assert lifted["changed"] is True and sorted(lifted["removed"]) == sorted(applied["rules"])
    assert our_rules() == [] and lifted["drop_in_place"] is False
    assert module(lift, check=True)["changed"] is False and module(lift)["changed"] is False
    assert inbound(DENIED_IP), "the port stays blocked after the lift"
    print(f"\nfour-way sequence, connections and lift: {time.monotonic() - started:.1f} s")


def test_a_changed_allow_list_never_opens_a_window(clean: None) -> None:
    module({"port": PORT, "allow_sources": [ALLOWED_IP]})
    changed = module({"port": PORT, "allow_sources": ["192.0.2.250"]})
    assert changed["changed"] is True, changed
    assert not any("DROP" in s for s in changed["steps"]), "the DROP must stay while the exceptions change"
    kinds = [s.split()[0] for s in changed["steps"]]
    assert kinds == ["-I", "-I", "-D", "-D"], changed["steps"]
    assert not inbound(ALLOWED_IP) and not inbound(DENIED_IP)


def test_a_bad_allow_sources_entry_changes_nothing(clean: None) -> None:
    bad = module({"port": PORT, "allow_sources": [ALLOWED_IP, "10.213.0.0/33"]})
    assert bad.get("failed") and "'10.213.0.0/33'" in bad["msg"] and "Nothing was changed" in bad["msg"], bad
    assert "Traceback" not in json.dumps(bad)
    assert our_rules() == []

    module({"port": PORT, "allow_sources": [ALLOWED_IP]})
    before = our_rules()
    bad = module({"port": PORT, "allow_sources": ["bastion.example"]})
    assert bad.get("failed") and our_rules() == before, "a bad entry changed a lockdown in place"


def test_a_failure_between_two_steps_leaves_the_drop(clean: None, tmp_path: Path) -> None:
    """A real iptables behind a wrapper that refuses the exception: the DROPs went in first and stay."""
    wrapper = tmp_path / "iptables"
    refuse = f'*"-I "*"-s {ALLOWED_IP}/32"*) echo "injected failure" >&2; exit 4;;'
    wrapper.write_text(f'#!/bin/sh\ncase "$*" in {refuse} esac\nexec {shutil.which("iptables")} "$@"\n')
    wrapper.chmod(0o755)
    result = module({"port": PORT, "allow_sources": [ALLOWED_IP], "iptables": str(wrapper)})
    assert result.get("failed") and "injected failure" in result["msg"], result
    assert result["drop_in_place"] is True and result["changed"] is True
    assert [s.split()[:2] for s in result["applied"]] == [["-I", "DOCKER-USER"], ["-I", "INPUT"]]
    assert f"-s {ALLOWED_IP}/32" in result["failed_step"]
    assert [ln.split()[1] for ln in our_rules()] == ["DOCKER-USER", "INPUT"]
    assert all(ln.endswith("-j DROP") for ln in our_rules())
    assert not inbound(DENIED_IP) and not inbound(ALLOWED_IP), "the port is open after a failure part-way"


def test_a_port_reachable_over_ipv6_is_refused(world: None) -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("::", V6_PORT))
        sock.listen()
        result = module({"port": V6_PORT})
    assert result.get("failed") and "IPv6" in result["msg"] and f"[::]:{V6_PORT}" in result["msg"], result
    assert our_rules(V6_PORT) == []


@pytest.mark.parametrize("args", [{"port": 22}, {"port": PORT, "connection_port": PORT}])
def test_ssh_and_the_connection_port_are_refused(world: None, args: dict[str, Any]) -> None:
    result = module(args)
    assert result.get("failed") and "lock the responders out" in result["msg"], result
    assert our_rules(args["port"]) == []
