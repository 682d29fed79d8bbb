"""`djdeploy init`: questions → a spec dict → commented YAML; the prompt function is injected.

Every answer, typed or passed as a flag, is checked by the spec models themselves
(``spec.validate_data`` on the spec as it would be with every remaining default
accepted), so the wizard and `djdeploy validate` can never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Optional, get_args, get_origin

import yaml

from scaffold import grammar
from scaffold.errors import AnswerError, SpecError
from scaffold.spec import SCHEMA_FILE, AppServer, Spec, Tls, validate_data
from scaffold.spec.kinds import PROCESS_PER_WORKER

Answers = dict[str, Any]
Ask = Callable[[str, Optional[str]], str]
"""Prompt with a text and an optional default; return what the user typed."""
Warn = Callable[[str], None]

NONE = "none"
# init writes the schema beside the spec; a relative path works offline and moves with both files.
SCHEMA_REF = f"./{SCHEMA_FILE}"


def _parse_text(text: str) -> str:
    return text


def _parse_list(text: str) -> list[str]:
    items = [item for item in re.split(r"[,\s]+", text) if item]
    return [] if [i.lower() for i in items] == [NONE] else items


def _parse_servers(text: str) -> list[dict[str, str]]:
    return [{"address": address} for address in _parse_list(text)]


def _parse_yes_no(text: str) -> bool | str:
    word = text.strip().lower()
    return {"yes": True, "y": True, "true": True, "no": False, "n": False, "false": False}.get(word, word)


def _several_hosts(answers: Answers) -> bool:
    return len(answers.get("upstream") or []) > 1


def _parse_workers(text: str) -> int | str:
    # ASCII digits only: str.isdigit() also accepts '²', which int() rejects.
    return int(text) if re.fullmatch(r"[0-9]+", text) else text


def _name_from_domain(answers: Answers) -> str | None:
    """The first label of the domain that is not ``www``, when it is a valid slug."""
    labels = [label for label in str(answers.get("domain", "")).split(".") if label != "www"]
    return _valid_or_none(grammar.check_slug, labels[0][:32].rstrip("-") if labels else "")


def _project_from_name(answers: Answers) -> str | None:
    return _valid_or_none(grammar.check_module, str(answers.get("name", "")).replace("-", "_"))


def _default_workers(answers: Answers) -> str:
    # gunicorn and uWSGI compute "auto" on the host at start-up; uvicorn's, Daphne's and Hypercorn's
    # processes are started by the process manager, so they need a number (spec rule): 2 keeps
    # serving while one restarts.
    return "2" if answers.get("app_server") in PROCESS_PER_WORKER else "auto"


def _valid_or_none(check: Callable[[str], str], value: str) -> str | None:
    try:
        return check(value)
    except ValueError:
        return None


def _constant(value: str) -> Callable[[Answers], str]:
    return lambda answers: value


def _no_default(answers: Answers) -> None:
    return None


def _always(answers: Answers) -> bool:
    return True


def _choices(model: type, field: str) -> tuple[str, ...]:
    """The allowed values of a Literal field, read from the model so they cannot drift."""
    annotation = model.model_fields[field].annotation
    while get_origin(annotation) is not Literal:
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    return get_args(annotation)


@dataclass(frozen=True)
class Question:
    """One question: where its answer goes in the spec, how it is asked, parsed and defaulted."""

    name: str                   # the flag is --<name with '-' for '_'>
    key: str                    # dotted field path in the spec
    prompt: str
    comment: str                # written beside the value in the YAML
    default: Callable[[Answers], Optional[str]] = _no_default
    parse: Callable[[str], Any] = _parse_text
    applies: Callable[[Answers], bool] = _always
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        """The command-line option that answers this question."""
        return "--" + self.name.replace("_", "-")

    @property
    def text(self) -> str:
        """The prompt as shown, with the choices when there are some."""
        return f"{self.prompt} ({', '.join(self.choices)})" if self.choices else self.prompt


QUESTIONS: tuple[Question, ...] = (
    Question("domain", "domain", "Domain (the site's primary host name)",
             "primary host name (server_name, ALLOWED_HOSTS)"),
    Question("name", "name", "Name (a slug naming files, programs and the socket)",
             "slug: names files, programs, upstream, socket", default=_name_from_domain),
    Question("aliases", "aliases", "Other host names, comma-separated (redirected to the domain)",
             "other names; nginx 301-redirects them to `domain`", default=_constant(NONE),
             parse=_parse_list),
    Question("project", "django.project", "Django project package (holds wsgi.py / asgi.py)",
             "import package holding wsgi.py / asgi.py", default=_project_from_name),
    Question("app_server", "app_server.kind", "App server",
             "gunicorn | uwsgi (WSGI) | uvicorn | daphne | hypercorn (ASGI)",
             default=_constant("gunicorn"), choices=_choices(AppServer, "kind")),
    Question("interface", "app_server.interface", "Interface", "wsgi | asgi (gunicorn + asgi = uvicorn worker)",
             default=_constant("wsgi"), choices=_choices(AppServer, "interface"),
             applies=lambda a: a.get("app_server") == "gunicorn"),
    Question("workers", "app_server.workers", "Workers per app host (a number; gunicorn and uwsgi also take auto)",
             'integer >= 1; gunicorn and uwsgi also take "auto" (2 x CPUs + 1 on the host)',
             default=_default_workers,
             parse=_parse_workers),
    Question("upstream", "upstream.servers",
             "App hosts as HOST:PORT, comma-separated (none: the app runs beside nginx)",
             "app hosts; each runs the app server listening on this address",
             default=_constant(NONE), parse=_parse_servers),
    Question("trusted_proxies", "app_server.trusted_proxies",
             "Addresses nginx connects to the app hosts from, comma-separated",
             "addresses nginx connects from; forwarded headers are trusted from these only",
             default=_constant(NONE), parse=_parse_list, applies=lambda a: bool(a.get("upstream"))),
    Question("media_shared", "media.shared",
             "Is the media root one shared file system (e.g. NFS) on every app host and the nginx host?",
             "uploads land on whichever app host took the request: several hosts need one shared media.root",
             default=_constant("no"), parse=_parse_yes_no, applies=_several_hosts, choices=("yes", "no")),
    Question("tls", "tls.mode", "TLS", "off | files | letsencrypt",
             default=_constant("letsencrypt"), choices=_choices(Tls, "mode")),
    Question("certificate", "tls.certificate", "Certificate chain file (PEM)", "full chain, PEM",
             default=lambda a: f"/etc/ssl/{a.get('name')}/fullchain.pem",
             applies=lambda a: a.get("tls") == "files"),
    Question("certificate_key", "tls.certificate_key", "Certificate key file (PEM)", "private key, PEM",
             default=lambda a: f"/etc/ssl/{a.get('name')}/privkey.pem",
             applies=lambda a: a.get("tls") == "files"),
    Question("process_manager", "process_manager", "Process manager", "supervisor | systemd | both | pm2",
             default=_constant("supervisor"), choices=_choices(Spec, "process_manager")),
)
FLAGS = tuple(q.flag for q in QUESTIONS)


def build_spec(given: Mapping[str, str], ask: Ask | None, *, use_defaults: bool = False,
               warn: Warn = lambda message: None) -> dict[str, Any]:
    """Answer every question that applies (flags first, then defaults or *ask*); return valid spec data.

    *given* maps question names to flag values. *ask* is None when nobody can be asked
    (stdin is not a terminal); a needed answer then raises AnswerError naming the flags.
    """
    answers: Answers = {}
    for q in QUESTIONS:
        if q.name in given or q.applies(answers):
            answers[q.name] = _answer(q, answers, given, ask, use_defaults, warn)
    return _settle(answers, given, ask, warn)


def _answer(q: Question, answers: Answers, given: Mapping[str, str], ask: Ask | None,
            use_defaults: bool, warn: Warn) -> Any:
    if q.name in given:
        value, problems = check_answer(q, given[q.name], answers)
        if problems:
            raise AnswerError(f"{q.flag} {given[q.name]!r}: " + "; ".join(problems))
        return value
    default = q.default(answers)
    if use_defaults and default is not None:
        value, problems = check_answer(q, default, answers)
        if not problems:
            return value
        if ask is None:
            raise AnswerError(_cannot_ask(q, default, problems))
        for problem in problems:
            warn(problem)
    if ask is None:
        raise AnswerError(_cannot_ask(q, default, []))
    return _ask_until_valid(q, answers, ask, warn)


def _ask_until_valid(q: Question, answers: Answers, ask: Ask, warn: Warn) -> Any:
    while True:
        value, problems = check_answer(q, ask(q.text, q.default(answers)), answers)
        if not problems:
            return value
        for problem in problems:
            warn(problem)


def check_answer(q: Question, text: str, answers: Answers) -> tuple[Any, list[str]]:
    """Parse *text* as the answer to *q*; return it and the spec's problems with it (empty: valid)."""
    value = q.parse(text.strip())
    candidate = _with_defaults({**answers, q.name: value})
    return value, [p for p in _problems(to_data(candidate)) if _is_about(p, q.key)]


def _with_defaults(answers: Answers) -> Answers:
    """The answers plus the default of every question still to come: the spec if you pressed Enter."""
    filled = dict(answers)
    for q in QUESTIONS:
        default = q.default(filled) if q.name not in filled and q.applies(filled) else None
        if default is not None:
            filled[q.name] = q.parse(default)
    return filled


def _settle(answers: Answers, given: Mapping[str, str], ask: Ask | None, warn: Warn) -> dict[str, Any]:
    """Validate the whole spec; re-ask a typed answer that a cross-field rule rejects."""
    while True:
        data = to_data(answers)
        problems = _problems(data)
        if not problems:
            return data
        owner = next((q for q in QUESTIONS if q.name in answers and _is_about(problems[0], q.key)), None)
        if ask is None or owner is None or owner.name in given:
            raise SpecError("the answers", problems)
        warn(problems[0])
        answers[owner.name] = _ask_until_valid(owner, answers, ask, warn)


def _problems(data: dict[str, Any]) -> list[str]:
    try:
        validate_data(data)
    except SpecError as e:
        return e.problems
    return []


def _is_about(problem: str, key: str) -> bool:
    """Whether a `path: message` problem names the field *key* or something inside it."""
    return problem.startswith(key) and problem[len(key):len(key) + 1] in (".", "[", ":")


def _cannot_ask(q: Question, default: str | None, problems: list[str]) -> str:
    if problems:
        advice = f"{q.flag}: its default does not fit ({'; '.join(problems)})"
    elif default is None:
        advice = f"{q.flag} (it has no default)"
    else:
        advice = f"{q.flag}, or pass --defaults to accept {default!r}"
    return (f"stdin is not a terminal, so init cannot ask: {q.text}\n"
            f"Pass the answer as {advice}.\n"
            "Every question is a flag, and --defaults accepts the default of each one left out: "
            + " ".join(FLAGS))


def to_data(answers: Answers) -> dict[str, Any]:
    """The spec data for *answers*: `version: 1` plus each non-empty answer, in the spec format's own order (the README's reference table)."""
    data: dict[str, Any] = {"version": 1}
    for q in QUESTIONS:
        if q.name in answers and answers[q.name] != []:
            *parents, leaf = q.key.split(".")
            section = data
            for parent in parents:
                section = section.setdefault(parent, {})
            section[leaf] = answers[q.name]
    return _in_model_order(data, Spec)


def _in_model_order(data: dict[str, Any], model: Any) -> dict[str, Any]:
    order = list(model.model_fields)
    ordered = {}
    for key in sorted(data, key=order.index):
        value = data[key]
        ordered[key] = _in_model_order(value, _section_model(model, key)) if isinstance(value, dict) else value
    return ordered


def _section_model(model: Any, key: str) -> Any:
    annotation = model.model_fields[key].annotation
    return next(a for a in (annotation, *get_args(annotation)) if hasattr(a, "model_fields"))


def dump_spec(data: dict[str, Any]) -> str:
    """Commented YAML for *data*, with the schema line editors read; parses back to exactly *data*."""
    rows = list(_rows(data, ()))
    column = max(32, *(len(text) + 2 for text, _ in rows))  # the comment column of the README's example spec
    body = "".join(f"{text:<{column}}# {comment}\n" if comment else f"{text}\n" for text, comment in rows)
    text = (f"# yaml-language-server: $schema={SCHEMA_REF}\n"
            "# Written by `djdeploy init`. Fields left out take their defaults, most derived from\n"
            f"# `name`; {SCHEMA_FILE} beside this file describes every field (`djdeploy schema\n"
            f"# --out {SCHEMA_FILE}` rewrites it). Check: `djdeploy validate <this file>`.\n"
            + body)
    if yaml.safe_load(text) != data:
        raise AssertionError(f"bug: the YAML written for {data!r} reads back differently")
    return text


_COMMENTS = {q.key: q.comment for q in QUESTIONS}
_COMMENTS["django"] = "root /srv/<name>/app, venv /srv/<name>/venv, user <name> unless set"


def _rows(mapping: dict[str, Any], path: tuple[str, ...]) -> Iterator[tuple[str, str | None]]:
    pad = "  " * len(path)
    for key, value in mapping.items():
        where = ".".join((*path, key))
        if isinstance(value, dict):
            yield f"{pad}{key}:", _COMMENTS.get(where)
            yield from _rows(value, (*path, key))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            yield f"{pad}{key}:", _COMMENTS.get(where)
            for item in value:
                for i, (k, v) in enumerate(item.items()):
                    yield f"{pad}  {'- ' if i == 0 else '  '}{k}: {_flow(v)}", None
        else:
            yield f"{pad}{key}: {_flow(value)}", _COMMENTS.get(where)


def _flow(value: Any) -> str:
    """One value as inline YAML, quoted by PyYAML wherever YAML needs it."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1 << 16)
    text = text.removesuffix("\n...\n").removesuffix("\n")
    if "\n" in text:
        raise ValueError(f"{value!r} does not fit on one line")
    return text
