"""runbook target: INSTALL.md names the spec's real paths and its shell blocks are valid bash."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from support import EXAMPLES, example_paths, require_tool
from scaffold.render import render_all
from scaffold.spec import load_spec

_BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.S | re.M)


def _install_md(path: Path) -> str:
    files = render_all(load_spec(path))
    return next(f.content for f in files if str(f.dest) == "INSTALL.md")


@pytest.mark.parametrize("path", example_paths(), ids=lambda p: p.stem)
def test_shell_blocks_are_valid_bash(path: Path) -> None:
    bash = require_tool("bash")
    blocks = _BLOCK.findall(_install_md(path))
    assert len(blocks) >= 8
    for block in blocks:
        result = subprocess.run([bash, "-n"], input=block, capture_output=True, text=True)
        assert result.returncode == 0, (result.stderr, block)


@pytest.mark.parametrize("path", example_paths(), ids=lambda p: p.stem)
def test_mentions_every_real_path_and_file(path: Path) -> None:
    spec = load_spec(path)
    text = _install_md(path)
    rendered = [str(f.dest) for f in render_all(spec)
                if f.dest.parts[0] in ("nginx", "supervisor", "gunicorn", "uvicorn", "django", "pm2")]
    wanted = [spec.django.root, spec.django.venv, spec.static.root, spec.media.root, spec.paths.log_dir,
              f"/etc/{spec.name}/secrets/DJANGO_SECRET_KEY", *rendered]
    missing = [w for w in wanted if w not in text]
    assert not missing


def test_systemd_runbook_enables_units_and_one_host_timers() -> None:
    text = _install_md(next(p for p in example_paths() if p.stem == "uvicorn-systemd"))
    assert "systemctl enable --now chat-web.socket chat-web.target\n" in text
    assert "systemctl enable --now chat-clearsessions.timer" in text
    assert "supervisorctl" not in text


def test_letsencrypt_has_a_reload_hook_and_no_secret_values() -> None:
    text = _install_md(next(p for p in example_paths() if p.stem == "asgi-both"))
    assert "--deploy-hook 'systemctl reload nginx'" in text
    assert "certbot renew --dry-run" in text
    assert "install -m 0644 supervisor/market-beat.conf /etc/supervisor/conf.d/market-beat.conf" in text


def test_secret_key_command_makes_a_strong_key(tmp_path: Path) -> None:
    bash = require_tool("bash")
    text = _install_md(next(p for p in example_paths() if p.stem == "minimal"))
    line = next(l for l in text.splitlines() if "token_urlsafe" in l)
    command = line.split("|| ", 1)[1].split(" | install", 1)[0]
    key = subprocess.run([bash, "-c", command], capture_output=True, text=True, check=True).stdout
    assert len(key) >= 50 and "\n" not in key


@pytest.mark.parametrize(("django", "app_server", "pip", "apt"), [
    ({}, {}, ["gunicorn>=23", "whitenoise>=6.6"], []),
    ({"database": {"engine": "postgresql"}, "cache": {"backend": "redis"}}, {},
     ["gunicorn>=23", "psycopg[binary]>=3.1", "redis>=5", "whitenoise>=6.6"], []),
    ({"database": {"engine": "postgresql"}}, {"interface": "asgi"},
     ["gunicorn>=23", "uvicorn-worker>=0.4", "uvicorn[standard]>=0.36", "psycopg[binary,pool]>=3.1",
      "whitenoise>=6.6"], []),
    ({"database": {"engine": "mysql"}, "cache": {"backend": "memcached"}}, {"kind": "uvicorn", "workers": 2},
     ["uvicorn[standard]>=0.36", "mysqlclient>=2.2", "pymemcache>=4", "whitenoise>=6.6"],
     ["python3-dev", "default-libmysqlclient-dev", "build-essential", "pkg-config"]),
], ids=["minimal", "postgresql-redis", "asgi-pool", "mysql-memcached"])
def test_runbook_installs_the_drivers_and_websocket_library_the_settings_use(django, app_server, pip,
                                                                             apt) -> None:
    from scaffold.spec import validate_data
    from scaffold.targets import runbook

    data = {"version": 1, "name": "blog", "domain": "blog.example.org",
            "django": {"project": "blog", **django}, "app_server": app_server}
    spec = validate_data(data)
    assert runbook.app_server_packages(spec) == pip
    assert [p for p in runbook.system_packages(spec) if p in runbook.MYSQL_BUILD_PACKAGES] == apt
    text = next(f.content for f in render_all(spec) if str(f.dest) == "INSTALL.md")
    assert " ".join(runbook.q(p) for p in pip) in text


@pytest.mark.parametrize("brotli", [False, True])
def test_runbook_installs_what_writes_and_serves_the_compressed_copies(brotli: bool) -> None:
    from scaffold.spec import validate_data
    from scaffold.targets import django as django_target, runbook

    spec = validate_data({"version": 1, "name": "blog", "domain": "blog.example.org",
                          "django": {"project": "blog"}, "static": {"brotli": brotli}})
    # The settings' storage is WhiteNoise's; its brotli extra writes the .br copies brotli_static sends.
    assert django_target.STATIC_STORAGE.startswith("whitenoise.")
    assert ("whitenoise[brotli]>=6.6" if brotli else "whitenoise>=6.6") in runbook.app_server_packages(spec)
    assert ("libnginx-mod-http-brotli-static" in runbook.system_packages(spec)) is brotli


@pytest.mark.parametrize(("django", "postfix", "check"), [
    ({}, True, False),
    ({"admins": ["ops@example.org"]}, True, True),
    ({"admins": ["ops@example.org"], "email_host": "smtp.example.org", "email_port": 587}, False, True),
])
def test_runbook_installs_or_checks_the_mail_relay(django, postfix, check) -> None:
    from scaffold.spec import validate_data

    spec = validate_data({"version": 1, "name": "blog", "domain": "blog.example.org",
                          "django": {"project": "blog", **django}})
    text = next(f.content for f in render_all(spec) if str(f.dest) == "INSTALL.md")
    assert ("apt-get install -y postfix" in text) is postfix
    assert ("postconf -e inet_interfaces=loopback-only" in text) is postfix
    assert ("manage sendtestemail --admins" in text) is check
    settings = next(f.content for f in render_all(spec) if f.dest.parts[0] == "django")
    assert f"(django.email_relay: {'postfix' if postfix else 'external'})" in settings


def test_systemd_deploy_step_restarts_background_programs_too() -> None:
    text = _install_md(EXAMPLES / "asgi-both.yaml")
    assert "systemctl reload market-web.service\nsystemctl try-restart market-celery@1.service" in text
    assert "market-beat.service" in text.split("systemctl try-restart", 1)[1].splitlines()[0]


def test_runbook_stops_what_a_smaller_spec_left_behind(tmp_path: Path) -> None:
    """Instances beyond `workers` are found by the runbook's own pipeline, and only those."""
    bash = require_tool("bash")
    text = _install_md(EXAMPLES / "uvicorn-systemd.yaml")
    line = next(l for l in text.splitlines() if l.startswith("systemctl list-units --all"))
    fake = tmp_path / "systemctl"
    listed = "chat-web@1.service loaded active running x\nchat-web@2.service loaded\nchat-web@3.service a\nchat-web@12.service b\n"
    fake.write_text(f"#!/bin/sh\nif [ \"$1\" = list-units ]; then printf '{listed}'; else echo \"$@\" >>{tmp_path}/calls; fi\n")
    fake.chmod(0o755)
    subprocess.run([bash, "-euo", "pipefail", "-c", line], check=True, env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert (tmp_path / "calls").read_text().split() == ["disable", "--now", "chat-web@3.service", "chat-web@12.service"]


def test_checks_trust_a_self_signed_certificate_and_read_the_journal() -> None:
    text = _install_md(EXAMPLES / "uvicorn-systemd.yaml")
    assert "--cacert /etc/ssl/chat/fullchain.pem --resolve chat.example.net:443:127.0.0.1" in text
    assert "journalctl --no-pager -n 50 -u 'chat-web@*' -u chat-clearsessions.service" in text
    assert "ls -l /var/log/chat" not in text


def test_migrate_runs_as_the_app_user_with_a_private_umask() -> None:
    text = _install_md(EXAMPLES / "uvicorn-systemd.yaml")
    assert "umask 0027 && runuser -u chat --" in text


@pytest.mark.parametrize("tls", [{"mode": "off"}, {"mode": "files", "certificate": "/etc/ssl/c.pem",
                                                   "certificate_key": "/etc/ssl/k.pem"}])
def test_checks_go_through_the_load_balancer_when_there_is_one(tls: dict) -> None:
    from scaffold.spec import validate_data

    data = {"version": 1, "name": "blog", "domain": "blog.example.org", "django": {"project": "blog"}, "tls": tls}
    if tls["mode"] == "off":
        data["nginx"] = {"load_balancer": {"addresses": ["10.0.0.0/24"]}}
    text = next(f.content for f in render_all(validate_data(data)) if str(f.dest) == "INSTALL.md")
    through_lb = "curl -sS -o /dev/null -w '%{http_code}\\n' https://blog.example.org/"
    assert (through_lb in text) is (tls["mode"] == "off")
    assert "--resolve blog.example.org:" in text


def _spec(**extra):
    from scaffold.spec import validate_data

    return validate_data({"version": 1, "name": "blog", "domain": "blog.example.org",
                          "django": {"project": "blog", **extra.pop("django", {})}, **extra})


def _runbook(spec) -> str:
    return next(f.content for f in render_all(spec) if str(f.dest) == "INSTALL.md")


@pytest.mark.parametrize(("extra", "pip"), [
    ({"static": {"server": "whitenoise", "brotli": True}}, []),
    ({"django": {"error_tracking": {}}}, ["sentry-sdk>=2"]),
    ({"background": [{"name": "tasks", "preset": "db_worker"}]}, ["django-tasks-db>=0.13"]),
    ({"background": [{"name": "tasks", "command": "manage.py db_worker --interval 5"}]}, ["django-tasks-db>=0.13"]),
], ids=["whitenoise", "sentry", "db-worker-preset", "db-worker-command"])
def test_runbook_installs_what_the_extras_import(extra, pip) -> None:
    from scaffold.targets import runbook

    spec = _spec(**extra)
    static = "whitenoise[brotli]>=6.6" if spec.static.brotli else "whitenoise>=6.6"  # the static storage's
    assert runbook.app_server_packages(spec) == ["gunicorn>=23", static, *pip]
    text = _runbook(spec)
    assert ("'django-tasks>=0.12'" in text) is ("django-tasks-db>=0.13" in pip)  # the 5.2 backport, on 5.2 only


def test_optional_dsn_is_asked_for_and_named_but_never_a_credential(tmp_path: Path) -> None:
    spec = _spec(django={"error_tracking": {}}, process_manager="both")
    files = {str(f.dest): f.content for f in render_all(spec)}
    path = "/etc/blog/secrets/SENTRY_DSN"
    assert f"test -e {path} ||" in files["INSTALL.md"] and "Enter alone for none" in files["INSTALL.md"]
    assert f"SENTRY_DSN_FILE={path}" in files["INSTALL.md"]  # manage() reads it too
    assert f'SENTRY_DSN_FILE="{path}"' in files["supervisor/blog.conf"]
    service = files["systemd/blog-web.service"]
    assert f'"SENTRY_DSN_FILE={path}"' in service and "LoadCredential=SENTRY_DSN" not in service
    bash = require_tool("bash")
    line = next(ln for ln in files["INSTALL.md"].splitlines() if ln.startswith(f"test -e {path}"))
    fake = line.replace(path, str(tmp_path / "dsn")).replace("install -o root -g blog", "install")
    for typed, written in (("\n", None), ("https://key@errors.example.org/1\n", "https://key@errors.example.org/1")):
        done = subprocess.run([bash, "-c", fake], input=typed, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert ((tmp_path / "dsn").read_text() if (tmp_path / "dsn").exists() else None) == written


def test_checks_call_the_health_endpoint_on_the_socket_and_through_nginx() -> None:
    text = _runbook(_spec(health={"path": "/-/up"}))
    assert "--unix-socket /run/blog/app.sock http://localhost/-/up" in text
    assert "--resolve blog.example.org:443:127.0.0.1 https://blog.example.org/-/up" in text
    assert "install -d -o blog -g www-data -m 2750 /srv/blog/protected" in _runbook(_spec(media={"protected": {}}))


def _checks_block(text: str) -> str:
    return next(b for b in _BLOCK.findall(text.split("## 9. Checks", 1)[1]))


@pytest.mark.parametrize("bind", ["unix", "tcp"])
def test_uwsgi_checks_connect_to_its_socket_instead_of_speaking_http_to_it(bind: str, tmp_path: Path) -> None:
    """uWSGI speaks the uwsgi protocol: curl to it would fail with an empty reply. The check
    connects, and says so; it fails when nothing listens."""
    import socket

    if bind == "unix":
        address, listener = str(tmp_path / "app.sock"), socket.socket(socket.AF_UNIX)
        listener.bind(address)
        spec_bind = f"unix:{address}"
    else:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        spec_bind = f"127.0.0.1:{listener.getsockname()[1]}"
    listener.listen()
    spec = _spec(app_server={"kind": "uwsgi", "bind": spec_bind},
                 **({"paths": {"run_dir": str(tmp_path)}} if bind == "unix" else {}))
    checks = _checks_block(_runbook(spec))
    assert "--unix-socket" not in checks and "http://127.0.0.1" not in checks and "health" not in checks.split(
        "through nginx")[0]
    (line,) = [ln for ln in checks.splitlines() if "python3 -c" in ln]
    command = line.removeprefix("runuser -u www-data -- ")
    bash = require_tool("bash")
    done = subprocess.run([bash, "-c", command], capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout) == (0, "connected\n"), done.stderr
    listener.close()
    if bind == "unix":
        Path(address).unlink()
    done = subprocess.run([bash, "-c", command], capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "connected" not in done.stdout
    assert "Error" in done.stderr  # Python names what refused it (FileNotFoundError, ConnectionRefusedError)
