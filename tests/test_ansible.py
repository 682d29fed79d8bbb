"""ansible target: Ansible accepts the inventory and playbook, ansible-lint is clean, and what they decide per host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import nginx_harness as harness
from support import EXAMPLES, require_tool
from scaffold.render import render_all
from scaffold.spec import validate_data

FLEETS = ("full", "fleet")


def _data(example: str, **changes: object) -> dict:
    data = yaml.safe_load((EXAMPLES / f"{example}.yaml").read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return data


def _write(data: dict, out: Path) -> Path:
    """Render the spec into *out* as `djdeploy render` would; return the ansible/ folder."""
    for f in render_all(validate_data(data)):
        path = out / f.dest
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f.content)
        path.chmod(f.mode)
    return out / "ansible"


def _ansible_env(tmp: Path) -> dict[str, str]:
    """Ansible's and ansible-lint's caches in the test's own folder, never in the user's home."""
    return {**os.environ, "HOME": str(tmp), "ANSIBLE_HOME": str(tmp / ".ansible-home"), "NO_COLOR": "1",
            "ANSIBLE_LOCAL_TEMP": str(tmp / ".ansible-tmp")}


def _run(argv: list[str], cwd: Path, tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=_ansible_env(tmp), capture_output=True, text=True, timeout=300)


VARIANTS = {
    "full": ("full", {}),
    "fleet": ("fleet", {}),
    "uvicorn-supervisor": ("fleet", {"process_manager": "supervisor", "background": []}),
    "gunicorn-systemd-letsencrypt": ("full", {"process_manager": "systemd", "tls": {"mode": "letsencrypt"}}),
    "single-host-on-request": ("minimal", {"hosts": {"ansible": True}}),
    "uwsgi": ("fleet", {"app_server.kind": "uwsgi", "app_server.interface": None}),
}


@pytest.mark.parametrize("variant", VARIANTS, ids=list(VARIANTS))
def test_playbook_passes_syntax_check(variant: str, tmp_path: Path) -> None:
    playbook = require_tool("ansible-playbook")
    example, changes = VARIANTS[variant]
    folder = _write(_data(example, **changes), tmp_path / "out")
    syntax = _run([playbook, "--syntax-check", "site.yml"], folder, tmp_path)
    assert syntax.returncode == 0, syntax.stdout + syntax.stderr


def test_every_variant_is_lint_clean(tmp_path: Path) -> None:
    """ansible-lint's production profile, warnings as errors; one run over every variant (it starts slowly)."""
    lint = require_tool("ansible-lint")
    folders = [_write(_data(example, **changes), tmp_path / variant) for variant, (example, changes) in VARIANTS.items()]
    linted = _run([lint, "--offline", "--strict", *(str(f.relative_to(tmp_path)) for f in folders)], tmp_path, tmp_path)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "0 failure(s), 0 warning(s)" in linted.stdout + linted.stderr
    assert "'production'" in linted.stdout + linted.stderr


def test_lint_catches_a_planted_defect(tmp_path: Path) -> None:
    """The lint gate can fail: a module without its collection name, a file without a mode."""
    lint = require_tool("ansible-lint")
    folder = _write(_data("fleet"), tmp_path / "out")
    tasks = folder / "roles/lb/tasks/main.yml"
    tasks.write_text(tasks.read_text().replace("ansible.builtin.file:", "file:", 1))
    linted = _run([lint, "--offline", "--strict"], folder, tmp_path)
    assert linted.returncode != 0
    assert "fqcn" in linted.stdout + linted.stderr


def _inventory(folder: Path, tmp: Path) -> dict:
    listed = _run([require_tool("ansible-inventory"), "--list"], folder, tmp)
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


def test_inventory_groups_and_singleton(tmp_path: Path) -> None:
    folder = _write(_data("fleet"), tmp_path / "out")
    inventory = _inventory(folder, tmp_path)
    assert inventory["lb"]["hosts"] == ["lb.fleet.internal"]
    # serial: 1 follows the group's order: the singleton (which ships static files) goes first.
    assert inventory["app"]["hosts"] == ["app2.fleet.internal", "app1.fleet.internal"]
    hostvars = inventory["_meta"]["hostvars"]
    assert hostvars["app2.fleet.internal"]["djdeploy_singleton"] is True
    assert hostvars["app1.fleet.internal"]["djdeploy_singleton"] is False
    assert hostvars["app1.fleet.internal"]["djdeploy_upstream"] == "10.0.1.11:8000"
    assert hostvars["lb.fleet.internal"]["djdeploy_lb_packages"] == ["nginx", "certbot", "curl"]
    assert "nginx" not in hostvars["app1.fleet.internal"]["djdeploy_app_packages"]


def test_ssh_user_and_local_hosts(tmp_path: Path) -> None:
    full = _inventory(_write(_data("full"), tmp_path / "full"), tmp_path)
    assert full["_meta"]["hostvars"]["lb1.example.com"]["ansible_user"] == "deploy"
    single = _inventory(_write(_data("minimal", **{"hosts.ansible": True}), tmp_path / "one"), tmp_path)
    assert single["_meta"]["hostvars"]["localhost"]["ansible_connection"] == "local"


@pytest.mark.parametrize(("example", "changes", "written"), [
    ("minimal", {}, False),
    ("minimal", {"hosts.ansible": True}, True),
    ("full", {}, True),
    ("full", {"hosts.ansible": False}, False),
    ("asgi-both", {}, False),   # a unix socket on this host: nginx and the app share it
])
def test_ansible_folder_only_for_several_hosts_or_on_request(example: str, changes: dict, written: bool) -> None:
    dests = {f.dest.parts[0] for f in render_all(validate_data(_data(example, **changes)))}
    assert ("ansible" in dests) is written


def _files(example: str, **changes: object) -> dict[str, str]:
    return {str(f.dest): f.content for f in render_all(validate_data(_data(example, **changes)))}


def test_each_app_host_listens_only_on_its_upstream_address() -> None:
    files = _files("fleet")
    socket = "ansible/host_files/app1.fleet.internal/systemd/fleet-web.socket"
    assert "ListenStream=10.0.1.11:8000\n" in files[socket]
    assert "FreeBind=yes\n" in files[socket]
    assert "ListenStream=10.0.1.12:8000\n" in files["ansible/host_files/app2.fleet.internal/systemd/fleet-web.socket"]
    # Only what differs is per host; the inventory says which files those are.
    assert not any(name.startswith("ansible/host_files/app1.fleet.internal/systemd/fleet-web@") for name in files)
    full = _files("full")
    assert "bind = ['10.0.0.13:8000']" in full["ansible/host_files/app3.example.com/gunicorn/gunicorn.conf.py"]
    supervised = _files("fleet", process_manager="supervisor", background=[])
    assert "socket=tcp://10.0.1.11:8000" in supervised["ansible/host_files/app1.fleet.internal/supervisor/fleet.conf"]


def test_tcp_socket_admits_only_trusted_proxies() -> None:
    socket = _files("fleet")["systemd/fleet-web.socket"]
    assert "IPAddressAllow=10.0.1.5\nIPAddressDeny=any\n" in socket
    unix = _files("uvicorn-systemd")["systemd/chat-web.socket"]
    assert "IPAddress" not in unix


def test_nftables_table_where_supervisor_owns_the_socket(tmp_path: Path) -> None:
    nft = require_tool("nft", "apt-get install nftables")
    files = _files("full")
    table = files["nftables/shop.nft"]
    assert "tcp dport 8000 ip saddr @trusted_proxies_v4 accept" in table
    assert "elements = { 10.0.0.5 }" in table and "tcp dport 8000 drop" in table
    path = tmp_path / "shop.nft"
    path.write_text(table)
    checked = subprocess.run([nft, "-c", "-f", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    path.write_text(table.replace("flags interval", "flags intervall"))
    assert subprocess.run([nft, "-c", "-f", str(path)], capture_output=True, text=True).returncode != 0
    assert "nftables/fleet.nft" not in _files("fleet")   # systemd's socket carries its own list


def test_no_secret_value_and_no_template_of_ansible_own(tmp_path: Path) -> None:
    """The roles copy rendered files; none uses Ansible's template module or holds a secret value."""
    folder = _write(_data("fleet"), tmp_path / "out")
    tasks = "\n".join(p.read_text() for p in folder.rglob("*.yml"))
    assert "ansible.builtin.template" not in tasks and "template:" not in tasks
    assert 'content: ""' in tasks   # secret files start as empty placeholders
    assert not list(folder.rglob("*.j2"))


def test_nginx_check_tests_the_site_inside_the_running_configuration(tmp_path: Path) -> None:
    """The validate wrapper of the lb role: it accepts the rendered site and refuses a broken one."""
    require_tool("nginx")
    if not Path("/etc/nginx/nginx.conf").is_file() or os.geteuid() != 0:
        pytest.skip("needs Debian's /etc/nginx layout and root, as on an nginx host")
    out = tmp_path / "out"
    folder = _write(_data("fleet", tls={"mode": "off"}), out)
    check = folder / "roles/lb/files/djdeploy-nginx-check"
    site = out / "nginx/fleet.conf"
    good = subprocess.run([str(check), str(site), "fleet.conf"], capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    site.write_text(site.read_text().replace("proxy_pass", "proxy_passs", 1))
    bad = subprocess.run([str(check), str(site), "fleet.conf"], capture_output=True, text=True)
    assert bad.returncode != 0 and "proxy_passs" in bad.stderr


def _handler(folder: Path, name: str) -> dict:
    handlers = yaml.safe_load((folder / "roles/web/handlers/main.yml").read_text())
    return next(h for h in handlers if h["name"] == name)


def test_drain_marks_only_this_host_down_once(tmp_path: Path) -> None:
    """The rolling deploy's first handler, run by Ansible on a copy of the site: one `down`, on one server."""
    ansible, nginx = require_tool("ansible"), require_tool("nginx")
    out = tmp_path / "out"
    folder = _write(_data("full", tls={"mode": "off"}), out)
    args = _handler(folder, "Take the host out of nginx's rotation")["ansible.builtin.replace"]
    site = out / "nginx/shop.conf"
    module_args = json.dumps({"path": str(site), "regexp": args["regexp"], "replace": args["replace"]})
    for _ in range(2):   # a second drain (a deploy that stopped half way) changes nothing
        ran = _run([ansible, "localhost", "-c", "local", "-i", "localhost,", "-m", "ansible.builtin.replace",
                    "-a", module_args, "-e", "djdeploy_upstream=10.0.0.11:8000",
                    "-e", f"ansible_python_interpreter={sys.executable}"], tmp_path, tmp_path)
        assert ran.returncode == 0, ran.stdout + ran.stderr
    servers = [line.strip() for line in site.read_text().splitlines() if line.strip().startswith("server 10.")]
    assert servers == ["server 10.0.0.11:8000 weight=2 max_fails=0 down;", "server 10.0.0.12:8000 max_fails=0;",
                       "server 10.0.0.13:8000 max_fails=0 backup;"]
    (tmp_path / "nginx").mkdir()
    tested = harness.run_nginx_test(nginx, harness.write_wrapper(tmp_path / "nginx", [site]))
    assert tested.returncode == 0, tested.stderr


def test_runbook_puts_each_part_on_its_hosts() -> None:
    """By hand too: nginx and certbot only on the nginx hosts, the firewall table on the app hosts."""
    text = _files("full")["INSTALL.md"]
    assert "apt-get install -y python3 python3-venv curl supervisor nftables\n" in text
    assert "apt-get install -y nginx libnginx-mod-http-brotli-static curl\n" in text   # full has static.brotli
    assert "curl -sS --fail-with-body http://10.0.0.12:8000/healthz; echo\n" in text
    assert "nft -c -f /etc/nftables.d/shop.nft && nft -f /etc/nftables.d/shop.nft\n" in text
    assert "tar -C /srv/shop/static --no-same-owner -xf -" in text
    assert "-H 'X-Forwarded-Proto: https' http://10.0.0.12:8000/\n" in text
    assert "http://127.0.0.1:8000/" not in text   # the app admits nginx only
    single = _files("minimal")["INSTALL.md"]
    assert "nftables" not in single and "On each nginx host" not in single


def test_rolling_deploy_waits_for_the_health_endpoint(tmp_path: Path) -> None:
    """A host goes back into rotation only when its health endpoint says 200 (database and cache up)."""
    folder = _write(_data("full", **{"health.path": "/-/up"}), tmp_path / "out")
    wait = _handler(folder, "Wait until the app answers nginx")
    assert wait["ansible.builtin.uri"]["url"] == "http://{{ djdeploy_upstream }}{{ djdeploy_health_path }}"
    assert wait["until"] == "web_answer.status | default(-1) == 200"
    data = yaml.safe_load((folder / "group_vars/all.yml").read_text())
    assert data["djdeploy_health_path"] == "/-/up"


@pytest.mark.parametrize("upstream", ["127.0.0.1:{port}", "[::1]:{port}"])
def test_rolling_deploy_waits_for_uwsgi_to_accept_connections(upstream: str, tmp_path: Path) -> None:
    """uWSGI speaks the uwsgi protocol: the handler waits for a connection, and the health check is
    left out. Run by Ansible against a listening socket, then against none."""
    import socket

    ansible = require_tool("ansible")
    folder = _write(_data("fleet", **{"app_server.kind": "uwsgi", "app_server.interface": None}), tmp_path / "out")
    assert yaml.safe_load((folder / "group_vars/all.yml").read_text())["djdeploy_app_protocol"] == "uwsgi"
    wait = _handler(folder, "Wait until uWSGI accepts nginx's connections")
    assert "uwsgi" in wait["when"] and "http" in _handler(folder, "Wait until the app answers nginx")["when"]
    family = socket.AF_INET6 if upstream.startswith("[") else socket.AF_INET
    listener = socket.socket(family)
    listener.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
    listener.listen()
    address = upstream.format(port=listener.getsockname()[1])
    args = {**wait["ansible.builtin.wait_for"], "timeout": 3}

    def run() -> subprocess.CompletedProcess:
        return _run([ansible, "localhost", "-c", "local", "-i", "localhost,", "-m", "ansible.builtin.wait_for",
                     "-a", json.dumps(args), "-e", f"djdeploy_upstream={address}",
                     "-e", f"ansible_python_interpreter={sys.executable}"], tmp_path, tmp_path)

    ran = run()
    assert ran.returncode == 0, ran.stdout + ran.stderr
    listener.close()
    ran = run()
    assert ran.returncode != 0 and "Timeout" in ran.stdout, ran.stdout


def test_the_only_app_host_is_not_taken_out_of_rotation(tmp_path: Path) -> None:
    """Draining the one app host would leave nginx no server: it stays in, its socket holds requests.
    The drain's condition, evaluated by Ansible on the rendered inventories of two fleets."""
    ansible = require_tool("ansible")
    condition = None
    for servers, drains in ((2, True), (1, False)):
        data = _data("fleet")
        data["upstream"]["servers"] = data["upstream"]["servers"][:servers]
        data["hosts"]["app"] = data["hosts"]["app"][:servers]
        data["hosts"]["singleton"] = data["hosts"]["app"][-1]
        if servers == 1:
            data["media"].pop("shared", None)
        folder = _write(data, tmp_path / f"out{servers}")
        condition = _handler(folder, "Take the host out of nginx's rotation")["when"]
        ran = _run([ansible, "localhost", "-c", "local", "-i", "inventory.yml", "-m", "ansible.builtin.debug",
                    "-a", "msg={{ %s }}" % condition, "-e", "djdeploy_upstream=10.0.0.11:8000",
                    "-e", f"ansible_python_interpreter={sys.executable}"], folder, tmp_path)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert f'"msg": {str(drains).lower()}' in ran.stdout, ran.stdout
