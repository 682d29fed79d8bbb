"""Questions about a validated spec that both the rules and the targets ask."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from scaffold import grammar
from scaffold.spec.models import Background, Spec, UpstreamServer

def remote_servers(spec: Spec) -> list[UpstreamServer]:
    """Upstream servers on another host (TCP to a non-loopback address)."""
    servers = spec.upstream.servers if spec.upstream else []
    return [s for s in servers if is_remote(s.address)]


def is_remote(address: str) -> bool:
    """Whether nginx reaches *address* over the network (TCP to a host other than this one)."""
    if address.startswith("unix:"):
        return False
    host, _ = grammar.split_address(address)
    return not (host == "localhost" or host.startswith("127.") or host == "[::1]")


def static_origin(spec: Spec) -> tuple[str | None, str]:
    """(CDN host or None, URL path) of static.url: nginx serves the path, whatever host browsers use."""
    return grammar.split_static_url(spec.static.url)


def is_db_worker(program: Background) -> bool:
    """Whether a background program is the tasks framework's database worker (django-tasks-db)."""
    words = split_command(program.command or "") or []
    return program.preset == "db_worker" or words[:2] == ["manage.py", "db_worker"]


def is_celery_beat(words: Sequence[str]) -> bool:
    """Whether a background command runs the celery beat scheduler."""
    return bool(words) and words[0] == "celery" and "beat" in words[1:]


def is_singleton(program: Background) -> bool:
    """Whether a background program must run on exactly one host."""
    if program.singleton is not None:
        return program.singleton
    return is_celery_beat(split_command(program.command or "") or [])


def split_command(command: str) -> list[str] | None:
    """The words of a background command as a shell reads them; None when its quotes do not close."""
    try:
        return shlex.split(command)
    except ValueError:
        return None
