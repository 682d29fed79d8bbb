"""`djdeploy init`: the wizard asks, re-asks bad answers, takes flags, and writes a spec that renders."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pexpect
import pytest
import yaml

from scaffold import cli, wizard
from scaffold.cli import app
from scaffold.errors import SpecExistsError
from scaffold.spec import Spec, load_spec, schema_json
from scaffold.writer import write_new_file
from support import TESTS

ROOT = TESTS.parent


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make CliRunner's stdin count as a terminal, so init asks instead of exiting 2."""
    monkeypatch.setattr(cli, "_stdin_is_terminal", lambda: True)


def _lines(*answers: str) -> str:
    return "".join(f"{a}\n" for a in answers)


def _render_end_to_end(runner, spec: Path, out: Path) -> list[str]:
    """validate, render, then render --check: the written spec is valid, renders, and is stable."""
    assert runner.invoke(app, ["validate", str(spec)]).exit_code == 0
    rendered = runner.invoke(app, ["render", str(spec), "--out", str(out)])
    assert rendered.exit_code == 0, rendered.output
    assert runner.invoke(app, ["render", str(spec), "--out", str(out), "--check"]).exit_code == 0
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def test_happy_path_writes_the_answers_in_spec_order(runner, terminal, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    answers = _lines("shop.example.com", "", "www.shop.example.com", "", "", "asgi", "4", "", "off", "both")
    result = runner.invoke(app, ["init", str(spec)], input=answers)
    assert result.exit_code == 0, result.output
    assert "Name (a slug naming files, programs and the socket) [shop]:" in result.output
    text = spec.read_text()
    assert text.startswith("# yaml-language-server: $schema=./djdeploy.schema.json\n")
    assert (tmp_path / "djdeploy.schema.json").read_text() == schema_json()
    assert yaml.safe_load(text) == {
        "version": 1, "name": "shop", "domain": "shop.example.com", "aliases": ["www.shop.example.com"],
        "django": {"project": "shop"}, "app_server": {"kind": "gunicorn", "interface": "asgi", "workers": 4},
        "tls": {"mode": "off"}, "process_manager": "both",
    }
    top_keys = [line.split(":")[0] for line in text.splitlines() if line[:1].isalpha()]
    assert top_keys == [k for k in Spec.model_fields if k in top_keys]
    files = _render_end_to_end(runner, spec, tmp_path / "deploy")
    assert "django/settings_production.py" in files


def test_bad_answer_is_re_asked_with_the_message(runner, terminal, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    answers = _lines("Shop.Example.com", "shop.example.com", "", "", "", "nginx", "uvicorn", "0", "3",
                     "10.0.0.11:8000, 10.0.0.12:9000", "10.0.0.11:8000, 10.0.0.12:8000",
                     "", "10.0.0.5", "", "yes", "", "")
    result = runner.invoke(app, ["init", str(spec)], input=answers)
    assert result.exit_code == 0, result.output
    for message in ("Error: domain: host names must be lowercase ('shop.example.com')",
                    "Error: app_server.kind: 'nginx' is not allowed",
                    "Error: app_server.workers: must be an integer >= 1",
                    "Error: upstream.servers[1].address: the app server listens on 0.0.0.0:8000",
                    "Error: app_server.trusted_proxies: required when upstream.servers lists other hosts",
                    "Error: media.shared: upstream.servers lists several app hosts"):
        assert message in result.output
    assert result.output.count("Domain (the site's primary host name):") == 2
    loaded = load_spec(spec)
    assert [s.address for s in loaded.upstream.servers] == ["10.0.0.11:8000", "10.0.0.12:8000"]
    assert loaded.app_server.trusted_proxies == ["10.0.0.5"]
    _render_end_to_end(runner, spec, tmp_path / "deploy")


def test_whole_spec_check_re_asks_the_answer_a_cross_field_rule_rejects(runner, terminal, tmp_path) -> None:
    # 'class' is a keyword, so the project has no default and the alias is checked against the
    # domain only once the project is known: by the final check over the whole spec.
    spec = tmp_path / "spec.yaml"
    answers = _lines("class.example.com", "", "class.example.com", "classes", "", "", "", "", "", "",
                     "www.class.example.com")
    result = runner.invoke(app, ["init", str(spec)], input=answers)
    assert result.exit_code == 0, result.output
    assert "Error: aliases[0]: 'class.example.com' repeats the domain" in result.output
    assert load_spec(spec).aliases == ["www.class.example.com"]


def test_defaults_with_flags_asks_nothing(runner, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    result = runner.invoke(app, ["init", str(spec), "--defaults", "--domain", "www.blog.example.org",
                                 "--app-server", "uvicorn", "--tls", "files", "--certificate", "/etc/ssl/b/c.pem"])
    assert result.exit_code == 0, result.output
    assert "[" not in result.output  # no prompt was shown
    assert yaml.safe_load(spec.read_text()) == {
        "version": 1, "name": "blog", "domain": "www.blog.example.org", "django": {"project": "blog"},
        "app_server": {"kind": "uvicorn", "workers": 2},
        "tls": {"mode": "files", "certificate": "/etc/ssl/b/c.pem", "certificate_key": "/etc/ssl/blog/privkey.pem"},
        "process_manager": "supervisor",
    }
    files = _render_end_to_end(runner, spec, tmp_path / "deploy")
    assert any(f.startswith("uvicorn/") for f in files)


@pytest.mark.parametrize("args, needed", [
    ([], "--domain (it has no default)"),
    (["--domain", "shop.example.com"], "--name, or pass --defaults to accept 'shop'"),
    (["--defaults", "--domain", "9.example.com"], "--name (it has no default)"),
    (["--defaults", "--domain", "shop.example.com", "--upstream", "10.0.0.11:8000"],
     "--trusted-proxies: its default does not fit (app_server.trusted_proxies: required"),
])
def test_needed_answer_without_a_terminal_exits_2(runner, tmp_path: Path, args, needed) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "spec.yaml"), *args])
    assert result.exit_code == 2
    assert "stdin is not a terminal" in result.output
    assert f"Pass the answer as {needed}" in result.output
    assert "--defaults accepts the default of each one left out: --domain --name" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag, value, field", [
    ("--domain", "Shop.example.com", "domain"),
    ("--aliases", "shop.example.com", "aliases"),
    ("--workers", "0", "app_server"),
    ("--workers", "²", "app_server"),
    ("--app-server", "nginx", "app_server"),
    ("--tls", "self-signed", "tls"),
    ("--certificate", "/etc/ssl/x.pem", "tls"),
    ("--process-manager", "runit", "process_manager"),
])
def test_bad_flag_gets_the_message_validate_gives(runner, tmp_path: Path, flag, value, field) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "spec.yaml"), "--defaults",
                                 "--domain", "shop.example.com", flag, value])
    assert result.exit_code == 2
    assert list(tmp_path.iterdir()) == []
    # The same value in a hand-written spec: validate must report the very same problem.
    data = wizard.build_spec({"domain": "shop.example.com"}, None, use_defaults=True)
    bad = _with_flag(data, flag, value)
    hand_written = tmp_path / "hand.yaml"
    hand_written.write_text(yaml.safe_dump(bad))
    problem = runner.invoke(app, ["validate", str(hand_written)]).output.splitlines()[1].strip()
    assert problem.startswith(field)
    assert problem.split(" (line ")[0] in result.output


def _with_flag(data: dict, flag: str, value: str) -> dict:
    q = next(q for q in wizard.QUESTIONS if q.flag == flag)
    *parents, leaf = q.key.split(".")
    section = data
    for parent in parents:
        section = section.setdefault(parent, {})
    section[leaf] = q.parse(value)
    return data


def test_refuses_to_overwrite_without_force(runner, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("hand-written\n")
    args = ["init", str(spec), "--defaults", "--domain", "shop.example.com"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "already exists; pass --force" in result.output
    assert spec.read_text() == "hand-written\n"
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
    assert load_spec(spec).name == "shop"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["djdeploy.schema.json", "spec.yaml"]


def test_modeline_names_the_schema_beside_the_spec(runner, tmp_path: Path) -> None:
    """The editor's path resolves from the spec's folder to the schema file, offline."""
    spec = tmp_path / "site" / "spec.yaml"
    spec.parent.mkdir()
    args = ["init", str(spec), "--defaults", "--domain", "shop.example.com"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "djdeploy.schema.json" in result.output
    first = spec.read_text().splitlines()[0]
    prefix = "# yaml-language-server: $schema="
    assert first.startswith(prefix)
    target = (spec.parent / first.removeprefix(prefix)).resolve()
    assert target == (spec.parent / "djdeploy.schema.json").resolve()
    assert json.loads(target.read_text()) == json.loads(schema_json())
    assert "://" not in first


def test_an_older_schema_beside_the_spec_is_replaced(runner, tmp_path: Path) -> None:
    schema = tmp_path / "djdeploy.schema.json"
    schema.write_text('{"$comment": "djdeploy:generated: an older version"}\n')
    args = ["init", str(tmp_path / "spec.yaml"), "--defaults", "--domain", "shop.example.com"]
    assert runner.invoke(app, args).exit_code == 0
    assert schema.read_text() == schema_json()


def test_a_hand_written_file_named_like_the_schema_is_kept(runner, tmp_path: Path) -> None:
    schema = tmp_path / "djdeploy.schema.json"
    schema.write_text("{}\n")
    args = ["init", str(tmp_path / "spec.yaml"), "--defaults", "--domain", "shop.example.com"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "was not written by djdeploy; pass --force" in result.output
    assert schema.read_text() == "{}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["djdeploy.schema.json"]
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
    assert schema.read_text() == schema_json()


def test_write_refuses_a_file_that_appeared_meanwhile(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("mine\n")
    with pytest.raises(SpecExistsError):
        write_new_file(spec, "version: 1\n", force=False)
    assert spec.read_text() == "mine\n"
    assert [p.name for p in tmp_path.iterdir()] == ["spec.yaml"]


@pytest.mark.parametrize("value", ["yes", "on", "null", "1.22", "0x1F", "a: b", "#x", "- y", "'q'", "é"])
def test_values_are_quoted_by_yaml_rules(value: str) -> None:
    assert yaml.safe_load(f"key: {wizard._flow(value)}") == {"key": value}
    assert yaml.safe_load(f"key: {wizard._flow([value, 'x'])}") == {"key": [value, "x"]}


@pytest.mark.parametrize("domain, name", [
    ("shop.example.com", "shop"), ("www.shop.example.com", "shop"), ("my-shop.example.com", "my-shop"),
    ("9lives.example.com", None), ("a" * 40 + ".example.com", "a" * 32),
])
def test_name_default_comes_from_the_domain(domain: str, name: str | None) -> None:
    assert wizard._name_from_domain({"domain": domain}) == name


def _spawn_init(tmp_path: Path) -> pexpect.spawn:
    return pexpect.spawn(sys.executable, ["-m", "scaffold", "init", "spec.yaml"], cwd=str(tmp_path),
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "TERM": "dumb"},
                         encoding="utf-8", timeout=20, preexec_fn=_default_sigint)


def _default_sigint() -> None:
    """A shell's background job starts with SIGINT ignored, and the child would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_real_terminal_answers_every_prompt(runner, tmp_path: Path) -> None:
    child = _spawn_init(tmp_path)
    script = [
        ("Domain (the site's primary host name): ", "shop.example.com"),
        ("Name (a slug naming files, programs and the socket) [shop]: ", "shop-eu"),
        ("Other host names, comma-separated (redirected to the domain) [none]: ", "www.shop.example.com"),
        ("Django project package (holds wsgi.py / asgi.py) [shop_eu]: ", "shop"),
        ("App server (gunicorn, uwsgi, uvicorn, daphne, hypercorn) [gunicorn]: ", "gunicorn"),
        ("Interface (wsgi, asgi) [wsgi]: ", "wsgi"),
        ("Workers per app host (a number; gunicorn and uwsgi also take auto) [auto]: ", "3"),
        ("App hosts as HOST:PORT, comma-separated (none: the app runs beside nginx) [none]: ",
         "10.0.0.11:8000,10.0.0.12:8000"),
        ("Addresses nginx connects to the app hosts from, comma-separated [none]: ", "10.0.0.5"),
        ("Is the media root one shared file system (e.g. NFS) on every app host and the nginx host? (yes, no) "
         "[no]: ", "yes"),
        ("TLS (off, files, letsencrypt) [letsencrypt]: ", "files"),
        ("Certificate chain file (PEM) [/etc/ssl/shop-eu/fullchain.pem]: ", ""),
        ("Certificate key file (PEM) [/etc/ssl/shop-eu/privkey.pem]: ", "/etc/ssl/private/shop.key"),
        ("Process manager (supervisor, systemd, both, pm2) [supervisor]: ", "systemd"),
    ]
    for prompt, answer in script:
        child.expect_exact(prompt)
        child.sendline(answer)
    child.expect_exact("wrote spec.yaml")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    loaded = load_spec(tmp_path / "spec.yaml")
    assert (loaded.name, loaded.django.project, loaded.app_server.bind) == ("shop-eu", "shop", "0.0.0.0:8000")
    assert loaded.tls.certificate_key == "/etc/ssl/private/shop.key"
    files = _render_end_to_end(runner, tmp_path / "spec.yaml", tmp_path / "deploy")
    assert any(f.startswith("gunicorn/") for f in files)


def test_ctrl_c_exits_130_and_leaves_nothing(tmp_path: Path) -> None:
    child = _spawn_init(tmp_path)
    child.expect_exact("Domain (the site's primary host name): ")
    child.sendline("shop.example.com")
    child.expect_exact("[shop]: ")
    child.sendintr()
    child.expect_exact("interrupted; nothing was written")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_is_reported_before_any_question(runner, terminal, tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "nope" / "spec.yaml")], input="")
    assert result.exit_code == 1
    assert "is not a directory" in result.output
    assert "Domain" not in result.output
