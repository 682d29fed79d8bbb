"""Warnings: choices that are valid but likely wrong, reported without failing the render."""

from __future__ import annotations


from scaffold import messages
from scaffold.spec.models import Spec
from scaffold.spec.values import Problem

# The servers' default connection limits: PostgreSQL max_connections (postgresql.org/docs/current/
# runtime-config-connection.html), MySQL max_connections (dev.mysql.com/doc/refman/8.0/en/
# server-system-variables.html).
DEFAULT_MAX_CONNECTIONS = {"postgresql": 100, "mysql": 151}


def spec_warnings(spec: Spec) -> list[Problem]:
    """Choices that are valid but likely wrong, each as (field path, message); never an error."""
    return _timeout_warnings(spec) + _connection_warnings(spec)


def _timeout_warnings(spec: Spec) -> list[Problem]:
    a = spec.app_server
    if a.timeout <= a.graceful_timeout:
        return []
    return [(("app_server", "timeout"),
             f"requests may run {a.timeout}s, but a reload or stop gives them {a.graceful_timeout}s "
             "(graceful_timeout): longer ones are cut off on every deploy")]


def held_connections(spec: Spec) -> int | None:
    """Database connections the web app can hold open at once across its hosts, when known.

    WSGI with CONN_MAX_AGE > 0: one per worker thread, kept between requests. PostgreSQL under
    ASGI: each process's pool. None when unknown (workers "auto": counted on the host) or unbounded.
    """
    a, db = spec.app_server, spec.django.database
    if db is None or db.engine == "sqlite" or not isinstance(a.workers, int):
        return None
    if a.interface == "asgi":
        per_host = a.workers * db.pool_max_size if db.engine == "postgresql" else None
    else:
        per_host = a.workers * a.threads if db.conn_max_age > 0 else None
    servers = [s for s in (spec.upstream.servers if spec.upstream else []) if not s.down]
    return None if per_host is None else per_host * max(1, len(servers))


def _connection_warnings(spec: Spec) -> list[Problem]:
    db, held = spec.django.database, held_connections(spec)
    limit = DEFAULT_MAX_CONNECTIONS.get(db.engine if db else "", 0)
    if held is None or held <= limit:
        return []
    assert db is not None
    return [(("django", "database"),
             f"the web app can hold {held} connections (workers x threads or pool size, x app hosts), "
             f"more than {db.engine}'s default max_connections ({limit}), before any background program: "
             "raise max_connections on the server, or lower workers, conn_max_age or pool_max_size")]


def describe_warnings(spec: Spec) -> list[str]:
    """spec_warnings as lines like problems: `field.path: message`."""
    return [f"{messages.format_location(loc)}: {message}" for loc, message in spec_warnings(spec)]
