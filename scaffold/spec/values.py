"""Value types of spec fields (each checked by scaffold.grammar) and the JSON Schema fragments they share."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BeforeValidator, Field, PlainValidator
from pydantic_core import PydanticCustomError

from scaffold import grammar

WEB_PROGRAM = "web"
# nginx CHANGES 1.19.4: ssl_reject_handshake, which the catch-all default server is built on.
NGINX_OLDEST = (1, 19, 4)
# nginx CHANGES 1.27.3: the `resolve` parameter of upstream servers re-resolves names at run time.
NGINX_RESOLVE_SINCE = (1, 27, 3)


class JsonSchema:
    """Annotation metadata: the JSON Schema of a type, stated beside the validator it mirrors.

    pydantic asks metadata for ``__get_pydantic_json_schema__`` (the protocol WithJsonSchema
    uses), so this needs no import of pydantic.json_schema when a spec is only validated.
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        return json.loads(json.dumps(self.schema))


class OrAlso:
    """Annotation metadata: the type's own JSON Schema, or also *alternative* (a shorthand)."""

    def __init__(self, alternative: dict[str, Any]) -> None:
        self.alternative = alternative

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        return {"anyOf": [handler(core_schema), dict(self.alternative)]}


def _text(check: Any, name: str) -> Any:
    """A string type checked by grammar.*check*, with the JSON Schema of the same grammar."""
    return Annotated[str, AfterValidator(check), JsonSchema(grammar.SCHEMAS[name])]


Slug = _text(grammar.check_slug, "slug")
Hostname = _text(grammar.check_hostname, "hostname")
AbsPath = _text(grammar.check_abs_path, "abs_path")
UrlPath = _text(grammar.check_url_path, "url_path")
EndpointPath = _text(grammar.check_endpoint_path, "endpoint_path")
StaticUrl = _text(grammar.check_static_url, "static_url")
UnixName = _text(grammar.check_unix_name, "unix_name")
Module = _text(grammar.check_module, "module")
Email = _text(grammar.check_email, "email")
NginxSize = _text(grammar.check_nginx_size, "nginx_size")
NginxTime = _text(grammar.check_nginx_time, "nginx_time")
IpOrNetwork = _text(grammar.check_ip_or_network, "ip_or_network")
Line = _text(grammar.check_line, "line")
DjangoCheckId = _text(grammar.check_django_check_id, "django_check_id")
HashKey = _text(grammar.check_nginx_variable_expr, "nginx_variable_expr")
InventoryHost = _text(grammar.check_inventory_host, "inventory_host")
DbHost = Annotated[str, AfterValidator(grammar.check_db_host), JsonSchema(grammar.SCHEMAS["db_host"])]
# An address nginx proxies to: host names other than localhost need nginx 1.27.3 (`resolve`);
# _check_upstream_hosts refuses them before, and the Spec's schema says so for nginx.version.
ProxiedAddress = Annotated[str, AfterValidator(grammar.check_address), JsonSchema(grammar.SCHEMAS["address"])]
# nginx 1.27.3, or its series written alone ("1.27", its newest patch release): names resolve at run time.
RESOLVE_VERSION_PATTERN = f"{grammar.version_at_least_pattern(1, 27, 3)}|0*1\\.0*27"


def _ip_address(value: str) -> str:
    grammar.check_ip_or_network(value)
    if "/" in value:
        raise ValueError(f"{value!r} is a network; give one address, like 127.0.0.53")
    return value


# Where the app server listens: an IP address, localhost or a socket, never a host name.
BindAddress = Annotated[str, AfterValidator(grammar.check_address), JsonSchema(grammar.SCHEMAS["proxied_address"])]
IpAddress = Annotated[str, AfterValidator(_ip_address), JsonSchema(grammar.pattern_schema(
    f"{grammar.IPV4_PATTERN}|{grammar.IPV6_PATTERN}", "an IPv4 or IPv6 address"))]
# A network that is not every address (x/0): what trusted_proxies and real_ip_from may list.
TrustedNetwork = Annotated[str, AfterValidator(grammar.check_ip_or_network),
                           JsonSchema({"allOf": [grammar.SCHEMAS["ip_or_network"], {"not": {"pattern": "/0$"}}]})]


def whole_number(value: Any) -> Any:
    """YAML's integers, and the same numbers quoted (as YAML 1.2 tools and templating write them)."""
    if isinstance(value, bool):
        raise ValueError("must be a whole number, not true or false")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        if not grammar.INTEGER_TEXT.fullmatch(value):
            raise ValueError(f"must be a whole number written with digits only, like 8080 (not {value!r})")
        return int(value)
    return value


def whole(low: int, high: int | None = None) -> Any:
    """A whole number from *low* to *high* (no limit when None), quoted or not."""
    return Annotated[int, BeforeValidator(whole_number), Field(ge=low, le=high),
                     JsonSchema(grammar.integer_schema(low, high))]


# The words YAML 1.1 reads as booleans, which a YAML 1.2 reader (editors, check-jsonschema)
# leaves as strings: a flag accepts them either way, and nothing else.
FLAG_WORDS = {word: value for base, value in (("true", True), ("yes", True), ("on", True), ("y", True),
                                               ("false", False), ("no", False), ("off", False), ("n", False))
               for word in (base, base.capitalize(), base.upper())}


def flag(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in FLAG_WORDS:
        return FLAG_WORDS[value]
    raise ValueError("must be true or false")


Flag = Annotated[bool, BeforeValidator(flag), JsonSchema(
    {"anyOf": [{"type": "boolean"}, {"enum": sorted(FLAG_WORDS)}]})]
Port = whole(1, 65535)
Seconds = whole(1, 86400)
Count = whole(0)


def _workers(value: Any) -> int | str:
    if value == "auto":
        return "auto"
    try:
        number = whole_number(value)
    except ValueError:
        number = None
    if isinstance(number, int) and number >= 1:
        return number
    raise ValueError('must be an integer >= 1 or "auto" (2 x CPUs + 1, computed at start-up)')


def _version_text(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise PydanticCustomError("quoted_text", 'write the version as a quoted string, like "{value}"',
                                  {"value": value})
    if not isinstance(value, str):
        raise ValueError('must be a version string like "1.22"')
    return grammar.check_nginx_version(value)


def yaml_off(value: Any) -> Any:
    """YAML 1.1 reads an unquoted `off` as false; where "off" is an allowed value, that is what it meant."""
    return "off" if value is False else value


def section_off(value: Any) -> Any:
    """`tls: off` (or false, or "off") is short for `tls: {mode: off}`."""
    return {"mode": "off"} if value is False or value == "off" else value


Workers = Annotated[Union[int, str], PlainValidator(_workers), JsonSchema(
    {"anyOf": [*grammar.integer_schema(1, None)["anyOf"], {"const": "auto"}]})]
NginxVersion = Annotated[str, PlainValidator(_version_text), JsonSchema(grammar.pattern_schema(
    grammar.version_at_least_pattern(*NGINX_OLDEST), 'a quoted nginx version like "1.22", 1.19.4 or newer'))]
OpensslVersion = Annotated[str, PlainValidator(_version_text), JsonSchema(grammar.pattern_schema(
    grammar.VERSION_PATTERN, 'a quoted OpenSSL version like "3.0" or "3.5"'))]
SpecVersion = Annotated[Literal[1], BeforeValidator(whole_number), JsonSchema(
    {"anyOf": [{"const": 1}, {"const": "1"}]})]
TlsMode = Annotated[Literal["off", "files", "letsencrypt"], BeforeValidator(yaml_off), JsonSchema(
    {"enum": ["off", "files", "letsencrypt", False]})]


def section_field(model: Any, description: str) -> Any:
    """A section with defaults for all its fields: omitted, it is the empty mapping."""
    return Field(default_factory=model, description=description, json_schema_extra={"default": {}})


def list_field(description: str, default: Any = list, unique: bool = False, **constraints: Any) -> Any:
    """A list field; its JSON Schema states the default the factory makes."""
    extra: dict[str, Any] = {"default": default()}
    if unique:
        extra["uniqueItems"] = True
    return Field(default_factory=default, description=description, json_schema_extra=extra, **constraints)


def schema_when(field: str, condition: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    """An if/then for a rule between fields: when *field* is given and matches *condition*."""
    return {"if": {"required": [field], "properties": {field: condition}}, "then": then}


def schema_fields(**schemas: Any) -> dict[str, Any]:
    return {"properties": schemas}


SCHEMA_TRUE = {"enum": [True, *sorted(w for w, v in FLAG_WORDS.items() if v)]}
SCHEMA_FALSE = {"enum": [False, *sorted(w for w, v in FLAG_WORDS.items() if not v)]}
SCHEMA_ONE = grammar.integer_schema(1, 1)
# _check_home_paths: a path in (or above) a home directory that ProtectHome=yes hides.
# A null (the default) is no path in a home directory: "pattern" alone would let `not` refuse it.
SCHEMA_NOT_HOME = {"anyOf": [{"type": "null"}, {"not": {"pattern": "^(?:/home|/root|/run/user)(?:/|$)|^/run/*$"}}]}
LOCAL_ADDRESS_PATTERN = "^(?:unix:|localhost:|127\\.|\\[::1\\]:)"


def schema_nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}

# A problem found in a spec: (field path, message).
Problem = tuple[tuple[Union[str, int], ...], str]
