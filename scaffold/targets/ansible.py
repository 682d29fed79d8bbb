"""ansible: an inventory and a playbook that put the other targets' rendered files on every host.

djdeploy stays the one renderer: the roles copy files from the render output (the folder that
holds ``ansible/``), and every value they need is data in ``group_vars/all.yml`` or the
inventory, never an Ansible template. What differs between app hosts (the address each one
listens on) is rendered once per host under ``ansible/host_files/<host>/``.

Plays, in order: the nginx hosts (packages, certificate and mount checks, sites validated
against the running configuration before a reload), then the app hosts one at a time
(``serial: 1``). Each app host is taken out of nginx's rotation before its app restarts and
put back once it answers; the singleton host ships the collected static files to every nginx
host before its own app restarts, and it is the first host of the rolling order.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any

from scaffold import grammar
from scaffold.spec import Spec
from scaffold.targets import appserver, firewall, nginx, runbook, supervisor, systemd
from scaffold.targets._base import HASH, RenderJob
from scaffold.targets._programs import SECRET_FILE_MODE, programs, secret_files

NAME = "ansible"
# The files each app host may need its own copy of: the ones that say where the app listens.
PER_HOST_TARGETS = ("gunicorn", "uvicorn", "supervisor", "systemd")
HOST_FILES = PurePosixPath(NAME, "host_files")
WILDCARDS = ("0.0.0.0", "::")
LB_GROUP, APP_GROUP = "lb", "app"
# What Ansible's own modules need on an app host: the pip module reads requirements with packaging.
ANSIBLE_NEEDS = ("python3-packaging",)
# Roles and their files, rendered as they are: their values all come from group_vars/all.yml.
STATIC_FILES = (
    "ansible.cfg", "site.yml",
    "roles/lb/tasks/main.yml", "roles/lb/handlers/main.yml", "roles/lb/files/djdeploy-nginx-check",
    "roles/app/tasks/main.yml",
    "roles/static/tasks/main.yml",
    "roles/web/tasks/main.yml", "roles/web/tasks/systemd.yml", "roles/web/tasks/supervisor.yml",
    "roles/web/handlers/main.yml",
)
EXECUTABLE = {"roles/lb/files/djdeploy-nginx-check": 0o755}


def jobs(spec: Spec) -> list[RenderJob]:
    """ansible/ when the spec asks for it (by default: when it names several hosts)."""
    if not spec.hosts.ansible:
        return []
    found = [RenderJob(f"ansible/{name}.j2", PurePosixPath(NAME, name), comment=HASH,
                       mode=EXECUTABLE.get(name, 0o644)) for name in STATIC_FILES]
    found.append(_data_job("inventory.yml", inventory(spec)))
    found.append(_data_job("group_vars/all.yml", fleet_vars(spec)))
    return found + [job for host in app_hosts(spec) for job in host_jobs(spec, host)]


def _data_job(name: str, data: dict[str, Any]) -> RenderJob:
    return RenderJob("ansible/data.yml.j2", PurePosixPath(NAME, name), {"data": data}, comment=HASH)


def app_hosts(spec: Spec) -> list[str]:
    """The app hosts as the inventory names them, in upstream.servers order."""
    return list(spec.hosts.app or [])


def rolling_order(spec: Spec) -> list[str]:
    """The app group's order, which serial: 1 follows: the singleton first (it ships static files)."""
    hosts = app_hosts(spec)
    return [spec.hosts.singleton or hosts[0], *(h for h in hosts if h != spec.hosts.singleton)]


def upstream_address(spec: Spec, host: str) -> str | None:
    """The address nginx proxies to for one app host: its upstream.servers entry."""
    servers = spec.upstream.servers if spec.upstream else []
    return servers[app_hosts(spec).index(host)].address if servers else None


def host_spec(spec: Spec, host: str) -> Spec:
    """The spec as one app host runs it: a wildcard bind narrowed to the address nginx uses.

    A name (localhost) keeps the spec's bind: systemd's ListenStream= takes addresses only.
    """
    address = upstream_address(spec, host)
    bind = spec.app_server.bind or ""
    if address is None or bind.startswith("unix:") or address.startswith("unix:"):
        return spec
    bind_host, bind_port = grammar.split_address(bind)
    host_ip, port = grammar.split_address(address)
    if bind_host not in WILDCARDS or port != bind_port or not _is_ip(host_ip):
        return spec
    narrowed = spec.model_copy(deep=True)
    narrowed.app_server.bind = address
    return narrowed


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _per_host_jobs(spec: Spec) -> list[RenderJob]:
    from scaffold.targets import load_targets

    return [job for t in load_targets() if t.NAME in PER_HOST_TARGETS for job in t.jobs(spec)]


def host_jobs(spec: Spec, host: str) -> list[RenderJob]:
    """The files whose content on this host differs from the shared render, under host_files/<host>/."""
    own = host_spec(spec, host)
    if own is spec:
        return []
    shared = {(j.dest, j.template): j.context for j in _per_host_jobs(spec)}
    return [replace(j, dest=HOST_FILES / host / j.dest) for j in _per_host_jobs(own)
            if shared.get((j.dest, j.template)) != j.context]


def per_host_files(spec: Spec, host: str) -> set[str]:
    """The rendered paths (relative to the output) this host takes from its own folder."""
    return {str(PurePosixPath(*j.dest.parts[3:])) for j in host_jobs(spec, host)}


def inventory(spec: Spec) -> dict[str, Any]:
    """Groups lb and app; the singleton and each host's upstream address as host variables."""
    lb = {h: ({"ansible_connection": "local"} if h == "localhost" else {}) for h in spec.hosts.nginx}
    app = {h: _app_host_vars(spec, h) for h in rolling_order(spec)}
    top: dict[str, Any] = {"children": {LB_GROUP: {"hosts": lb}, APP_GROUP: {"hosts": app}}}
    if spec.hosts.ssh_user:
        top["vars"] = {"ansible_user": spec.hosts.ssh_user}
    return {"all": top}


def _app_host_vars(spec: Spec, host: str) -> dict[str, Any]:
    found: dict[str, Any] = {"djdeploy_singleton": host == spec.hosts.singleton}
    address = upstream_address(spec, host)
    if address is not None:
        found["djdeploy_upstream"] = address
    own = sorted(per_host_files(spec, host))
    if own:
        found["djdeploy_host_dir"] = str(HOST_FILES / host)   # relative to the render output
        found["djdeploy_host_files"] = own
    if host == "localhost":
        found["ansible_connection"] = "local"
    return found


def fleet_vars(spec: Spec) -> dict[str, Any]:
    """Every value the roles use, decided here from the spec and the other targets."""
    d = spec.django
    return {
        "djdeploy_name": spec.name, "djdeploy_domain": spec.domain,
        # The render output: the folder that holds ansible/.
        "djdeploy_output": "{{ playbook_dir }}/..",
        "djdeploy_fetch_dir": "{{ lookup('ansible.builtin.env', 'HOME') }}/.cache/djdeploy/" + spec.name,
        "djdeploy_user": d.user, "djdeploy_group": d.group, "djdeploy_socket_group": spec.app_server.socket_group,
        "djdeploy_home": str(PurePosixPath(d.root or "").parent), "djdeploy_root": d.root, "djdeploy_venv": d.venv,
        "djdeploy_process_manager": "systemd" if spec.process_manager == "both" else spec.process_manager,
        "djdeploy_lb_packages": runbook.lb_packages(spec),
        "djdeploy_app_packages": [*runbook.app_packages(spec), *ANSIBLE_NEEDS],
        "djdeploy_pip_packages": runbook.app_server_packages(spec),
        "djdeploy_postfix": d.email_relay == "postfix",
        "djdeploy_app_directories": app_directories(spec),
        "djdeploy_app_files": app_files(spec),
        "djdeploy_secrets": [{"name": n, "path": p} for n, p in secret_files(spec).items()],
        "djdeploy_secret_mode": f"{SECRET_FILE_MODE:04o}",
        "djdeploy_manage": manage_command(spec), "djdeploy_manage_environment": manage_environment(spec),
        "djdeploy_check_deploy": True, "djdeploy_static_root": spec.static.root,
        "djdeploy_static_archive": f"/var/lib/{spec.name}/static.tar",
        "djdeploy_media_root": spec.media.root, "djdeploy_media_shared": spec.media.shared,
        "djdeploy_nginx_sites": [{"src": str(f), "name": f.name, "site": f == nginx.site_file(spec)}
                                 for f in nginx.output_files(spec)],
        "djdeploy_nginx_site": f"{runbook.NGINX_SITES}/{nginx.site_file(spec).name}",
        "djdeploy_tls": tls_vars(spec),
        "djdeploy_systemd": systemd_vars(spec), "djdeploy_supervisor": supervisor_vars(spec),
        "djdeploy_nftables": firewall_vars(spec),
        "djdeploy_stage_dir": f"/var/lib/djdeploy/{spec.name}",
        "djdeploy_answer_headers": {"Host": spec.domain, "X-Forwarded-Proto": "https"},
        "djdeploy_health_path": spec.health.path,
        # uWSGI speaks the uwsgi protocol: the rolling deploy waits for it to accept connections.
        "djdeploy_app_protocol": "uwsgi" if nginx.speaks_uwsgi(spec) else "http",
    }


def app_directories(spec: Spec) -> list[dict[str, str]]:
    """The runbook's directories, as file-module arguments."""
    return [{"path": _word(p), "owner": _word(o), "group": _word(g), "mode": m}
            for o, g, m, p, _ in runbook.directories(spec)]


def _word(quoted: str) -> str:
    """The runbook's values are shell words; the spec grammar keeps them free of quoting."""
    return quoted.strip("'")


def app_files(spec: Spec) -> list[dict[str, str]]:
    """The app-server file and the settings module: root-owned, readable by the app's group."""
    return [{"src": _word(src), "dest": _word(dest), "group": _word(group), "mode": "0640"}
            for src, dest, group in runbook.rendered_installs(spec)]


def manage_command(spec: Spec) -> list[str]:
    """argv that runs manage.py as the app user with the runbook's umask (files the group reads, nobody else)."""
    d = spec.django
    return ["sh", "-c", 'umask 0027 && exec "$@"', "manage", "runuser", "-u", d.user or "", "--",
            f"{d.venv}/bin/python", f"{d.root}/manage.py"]


def manage_environment(spec: Spec) -> dict[str, str]:
    """The environment the process manager gives the app: settings module and secret files."""
    env = {**appserver.environment(spec), **{f"{n}_FILE": p for n, p in secret_files(spec).items()}}
    return dict(sorted(env.items()))


def tls_vars(spec: Spec) -> dict[str, Any]:
    """What the nginx play checks or fetches before the site can load."""
    t = spec.tls
    found: dict[str, Any] = {"mode": t.mode, "certificate": t.certificate, "certificate_key": t.certificate_key}
    if t.mode == "letsencrypt":
        contact = ["-m", spec.django.admins[0]] if spec.django.admins else ["--register-unsafely-without-email"]
        found["webroot"] = nginx.ACME_WEBROOT
        names = [w for name in [spec.domain, *spec.aliases] for w in ("-d", name)]
        common = ["--non-interactive", "--agree-tos", *contact, "--cert-name", spec.domain, *names]
        found["certbot"] = ["certbot", "certonly", "--standalone", *common]
        found["certbot_webroot"] = ["certbot", "certonly", "--webroot", "-w", nginx.ACME_WEBROOT, *common,
                                    "--force-renewal", "--deploy-hook", "systemctl reload nginx"]
        found["renewal"] = f"/etc/letsencrypt/renewal/{spec.domain}.conf"
    return found


def systemd_vars(spec: Spec) -> dict[str, Any] | None:
    """Units to stage, verify and install; what to enable on every app host and on the singleton."""
    steps = runbook.systemd_steps(spec)
    if steps is None:
        return None
    every, one = [f"{spec.name}-web.socket", *systemd.web_units(spec)], []
    for program in programs(spec)[1:]:
        target = one if program.singleton or program.schedule else every
        target += [f"{program.name}.timer"] if program.schedule else systemd.instance_names(program)
    web = programs(spec)[0]
    if web.reload_signal is not None:   # gunicorn reloads on HUP; uvicorn instances restart in turn
        restart = [["systemctl", "reload", systemd.instance_names(web)[0]]]
    else:
        restart = [["systemctl", "restart", n] for n in systemd.instance_names(web)]
    background = [n for p in programs(spec)[1:] if not p.schedule for n in systemd.instance_names(p)]
    if background:   # try-restart: a singleton restarts only where it runs
        restart.append(["systemctl", "try-restart", *background])
    return {"units": [f"{systemd.NAME}/{u.filename}" for u in systemd.units(spec)],
            "every": every, "one": one, "tmpfiles": _tmpfiles(spec, systemd.NAME), "restart": restart}


def supervisor_vars(spec: Spec) -> dict[str, Any] | None:
    """Program files for every app host and for the singleton, and the reload commands."""
    if spec.process_manager not in ("supervisor", "both"):
        return None
    confs = [j.dest for j in supervisor.jobs(spec) if j.dest.suffix == ".conf"]
    web = programs(spec)[0]
    return {"shared": [_install(f) for f in confs if f.name == f"{spec.name}.conf"],
            "singletons": [_install(f) for f in confs if f.name != f"{spec.name}.conf"],
            "tmpfiles": _tmpfiles(spec, supervisor.NAME), "restart": supervisor_restart(spec)}


def supervisor_restart(spec: Spec) -> list[list[str]]:
    """New code with no lost request: HUP where the server reloads itself, else one process at a time.

    Background processes restart one by one; a singleton is its own file, restarted by update.
    """
    web = programs(spec)[0]
    if web.reload_signal is not None and not supervisor.uses_fcgi(spec, web):
        found = [["supervisorctl", "signal", web.reload_signal, f"{spec.name}:{web.name}"]]
    else:
        found = [["supervisorctl", "restart", f"{web.name}:{web.name}-{n}"] for n in range(web.numprocs)]
    names = []
    for p in programs(spec)[1:]:
        if p.schedule is None and not p.singleton:
            names += [f"{p.name}-{n}" for n in range(p.numprocs)] if p.numprocs > 1 else [p.name]
    return found + [["supervisorctl", "restart", f"{spec.name}:{n}"] for n in names]


def _install(rendered: PurePosixPath) -> dict[str, str]:
    return {"src": str(rendered), "dest": f"{supervisor.INCLUDE_DIR}/{rendered.name}"}


def _tmpfiles(spec: Spec, target: str) -> dict[str, str]:
    return {"src": f"{target}/{spec.name}.tmpfiles", "dest": f"{runbook.TMPFILES_DIR}/{spec.name}.conf"}


def firewall_vars(spec: Spec) -> dict[str, str] | None:
    """The nftables file supervisor hosts load (systemd's socket carries its own access list)."""
    found = firewall.jobs(spec)
    return {"src": str(found[0].dest), "dest": firewall.installed_path(spec)} if found else None
