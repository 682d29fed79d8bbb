"""Fixtures of the machine tests: root, the host tools, the private network the machines share."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from support import UNDER_CI, require_tool

from machines import machines

CONTROL = machines.name("ctl")  # the test client's network namespace


def skip_or_fail(message: str) -> None:
    """Skip on a developer's machine; under CI=true, where .ci/run provides everything, fail."""
    if UNDER_CI:
        pytest.fail(f"{message} (CI=true: the machine tests must run)")
    pytest.skip(message)


def require_machines() -> None:
    """Root, systemd-nspawn and debootstrap, and a cgroup2 mount to start each machine in."""
    if os.geteuid() != 0:
        skip_or_fail("booting machines needs root (systemd-nspawn, network namespaces, cgroups)")
    for tool in machines.TOOLS:
        require_tool(tool, "for the machine tests (Debian: systemd-container, debootstrap, util-linux, iproute2)")
    if not (machines.CGROUP2 / "cgroup.procs").exists():
        skip_or_fail(f"no cgroup2 hierarchy at {machines.CGROUP2}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the machine tests of a variant its release does not run (tests/machines/hosts.py)."""
    from machines.hosts import RELEASE_VARIANTS

    def runs(item: pytest.Item) -> bool:
        params = getattr(item, "callspec", None) and item.callspec.params
        if not params or "release_hosts" not in params or "host" not in params:
            return True
        return params["host"] in RELEASE_VARIANTS[params["release_hosts"]]

    left_out = [item for item in items if not runs(item)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if runs(item)]


@dataclass(frozen=True)
class PrivateNetwork:
    """The private network, and the namespace on it the test client runs in."""

    network: machines.Network
    control: str
    control_address: str


@pytest.fixture(scope="session")
def testbed() -> Iterator[PrivateNetwork]:
    """A bridge in its own namespace and the client's namespace on it; everything torn down at the end."""
    require_machines()
    machines.exit_on_sigterm()
    machines.remove_stale()
    network = machines.Network(machines.RUN)
    try:
        address = network.join(CONTROL, 1)
        yield PrivateNetwork(network, CONTROL, address)
    finally:
        machines.close_everything()
