"""The djdeploy spec, version 1.

One module per concern, in the order a spec goes through them: values (field types and their
grammar), models (the sections), defaults (what other fields imply), rules (cross-field checks),
advice (warnings), loading (YAML to a complete Spec) and schema (the JSON Schema). A new
app-server kind or process manager touches each of them in one obvious place: its Literal value in
models, its derived defaults in defaults, its constraints in rules.
"""

from scaffold.spec.advice import DEFAULT_MAX_CONNECTIONS, describe_warnings, held_connections, spec_warnings
from scaffold.spec.facts import (is_celery_beat, is_db_worker, is_remote, is_singleton, remote_servers, split_command,
                                 static_origin)
from scaffold.spec.loading import load_spec, parse_spec, resolve_spec, validate_data
from scaffold.spec.models import (
    Admin, AppServer, Background, Cache, Csp, Database, Django, ErrorTracking, Health, Hosts, Media, Nginx,
    Paths, ProtectedMedia, RateLimit, Spec, Static, Tls, Upstream, UpstreamServer,
)
from scaffold.spec.schema import SCHEMA_FILE, SCHEMA_MARKER, schema_json
from scaffold.spec.values import NGINX_OLDEST, WEB_PROGRAM, Problem

__all__ = [
    "DEFAULT_MAX_CONNECTIONS", "NGINX_OLDEST", "SCHEMA_FILE", "SCHEMA_MARKER", "WEB_PROGRAM",
    "Admin", "AppServer", "Background", "ErrorTracking", "Health", "ProtectedMedia", "Cache", "Csp", "Database", "Django", "Hosts", "Media", "Nginx",
    "Paths", "Problem", "RateLimit", "Spec", "Static", "Tls", "Upstream", "UpstreamServer",
    "describe_warnings", "held_connections", "is_celery_beat", "is_db_worker", "is_remote", "is_singleton",
    "load_spec", "parse_spec", "remote_servers", "resolve_spec", "schema_json", "spec_warnings",
    "split_command", "static_origin", "validate_data",
]
