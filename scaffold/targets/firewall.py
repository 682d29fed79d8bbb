"""firewall: an nftables table that admits only trusted_proxies to the app's port, where supervisor owns the socket.

A systemd socket unit carries its own access list (IPAddressAllow=/IPAddressDeny=); supervisor's
socket has none, so on app hosts reached over the network this table is what keeps everyone but
nginx away from the app: anyone else would skip nginx's host checks, body-size limit, request
buffering and forwarded-header overwrite.
"""

from __future__ import annotations

import ipaddress
from pathlib import PurePosixPath

from scaffold import grammar
from scaffold.spec import Spec, remote_servers
from scaffold.targets._base import HASH, RenderJob

NAME = "firewall"
FOLDER = "nftables"
INCLUDE_DIR = "/etc/nftables.d"


def jobs(spec: Spec) -> list[RenderJob]:
    """nftables/<name>.nft when supervisor runs the web app on a TCP port nginx reaches from another host."""
    bind = spec.app_server.bind or ""
    if spec.process_manager not in ("supervisor", "both") or bind.startswith("unix:") or not remote_servers(spec):
        return []
    return [RenderJob("firewall/table.nft.j2", PurePosixPath(FOLDER, f"{spec.name}.nft"), context(spec), comment=HASH)]


def installed_path(spec: Spec) -> str:
    """Where the table is installed: a directory /etc/nftables.conf includes."""
    return f"{INCLUDE_DIR}/{spec.name}.nft"


def context(spec: Spec) -> dict[str, object]:
    """The table's name, the app's port and the trusted networks by family."""
    _, port = grammar.split_address(spec.app_server.bind or "")
    trusted = spec.app_server.trusted_proxies or []
    v4 = [n for n in trusted if ipaddress.ip_network(n, strict=False).version == 4]
    return {"table": f"djdeploy_{spec.name.replace('-', '_')}", "port": port,
            "ipv4": v4, "ipv6": [n for n in trusted if n not in v4]}
