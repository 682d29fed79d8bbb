"""Benchmark the rendered stack on loopback as browsers load it, beside what a user would pick instead.

    sudo python tests/bench.py [--seconds 3] [--rounds 5] [--connections 16] [--kinds sync,gthread,uvicorn]

One run starts the rendered stack three times (gunicorn sync, gunicorn gthread, uvicorn) and measures,
with wrk over keep-alive connections and `Accept-Encoding: gzip, deflate, br` on every request:

- a small Django page (no template) through the rendered nginx, through nginx configured in the shape
  of gunicorn's documentation (benoitc/gunicorn, docs/content/deploy.md) in front of the same app
  server, from the app server alone over plain HTTP, and from the app server alone serving HTTPS
  itself (what a host without nginx has to run);
- a page rendered from a template (25 table rows, as sites render them) through the rendered nginx
  and from the app server alone;
- both pages through the least nginx that can stand in front of the app (TLS and a proxy_pass over
  kept-alive connections, nothing else): what the hop through nginx costs on this machine, whatever
  a configuration says;
- both pages through the rendered nginx again with nginx on wrk's CPU, off the app's: whether nginx
  keeps the app's workers as busy as clients of their own do, when its CPU is not taken from them
  (as on a load balancer host in front of app hosts);
- a 120 kB stylesheet collected with a hashed name, from the rendered nginx, from a bare `alias`
  location in that documentation-shaped server (Debian's `gzip on;` compresses only text/html), and
  from Django with WhiteNoise's middleware on gunicorn alone;
- the page while nginx reloads and gunicorn gets HUP every second (errors must stay 0).

Targets run in interleaved rounds (each round visits every target once, starting one further along);
the table shows each target's median over the rounds and the ratios, also at equal host CPU (requests
per CPU-second of nginx and the app together). wrk runs on the last CPU and everything the bench starts
on the others, as if the clients were elsewhere (--no-pin: wrk shares every CPU, and the rows with nginx on
a CPU of its own are left out). It needs root, nginx, openssl,
systemd-tmpfiles, unshare and wrk; everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live import client  # noqa: E402 - after the path is set
from live.host import HostNotReady, describe_machine, ensure_app_user, ensure_venv, free_port  # noqa: E402
from live.layout import DOMAIN, PROJECT, WORKERS, Site, collect_static  # noqa: E402
from live.stack import (Host, Stack, is_listening, launch, prepare_host, process_tree,  # noqa: E402
                        run_web_program, wait_for)

WHITENOISE_SETTINGS = f"{PROJECT}.settings_whitenoise"
PAGE = "/page/"  # a small response, no template: nginx's share of the work is as large as it gets
TEMPLATE_PAGE = "/catalog/"  # a template extending a base, 25 rows with filters and links, a form
STYLESHEET = "css/bench.css"  # written into the project's assets, then collected
# What Chrome and Firefox send.
ACCEPT_ENCODING = "gzip, deflate, br"
# The worker classes compared: (app_server.kind, extra app_server fields).
KINDS = {"sync": ("gunicorn", {}), "gthread": ("gunicorn", {"threads": 4}), "uvicorn": ("uvicorn", {})}


@dataclass
class Target:
    """Where a row's requests go, and what is measured beside the rate."""

    group: str  # what is compared within: "static", or a worker class
    label: str
    url: str
    stack: Stack
    cpu_pids: Callable[[], set[int]]  # nginx workers (or the app, for app-alone rows): CPU per request
    app_pids: Callable[[], set[int]] = lambda: set()  # app workers: how evenly they share the work
    host_pids: Optional[Callable[[], set[int]]] = None  # every server process the row uses (default cpu_pids)
    during: Optional[Callable[[], None]] = None  # called every second while the load runs
    nginx_beside_client: bool = False  # nginx on wrk's CPU, off the app's: as on a load balancer host
    runs: list["Run"] = field(default_factory=list)


@dataclass(frozen=True)
class Run:
    """One wrk run of one target."""

    rate: float
    p50_ms: float
    p99_ms: float
    errors: int  # connect, read, write errors and timeouts
    bad_status: int  # answers other than 2xx/3xx
    cpu_us: float  # CPU of cpu_pids per request
    busiest: Optional[float]  # share of the app's CPU taken by its busiest process
    host_cpu_us: float  # CPU of host_pids per request: nginx and the app together


# -- load: wrk, with the site's name resolving to loopback in its own mount namespace

def wrk_argv(hosts: Path, url: str, seconds: float, connections: int, threads: int) -> list[str]:
    """wrk in a private mount namespace where /etc/hosts maps the test names to 127.0.0.1 (for SNI)."""
    return ["unshare", "--mount", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts),
            "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "10s",
            "-H", f"Accept-Encoding: {ACCEPT_ENCODING}", url]


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(text: str) -> tuple[float, float, float, int, int]:
    """(requests/s, p50 ms, p99 ms, socket errors, non-2xx/3xx answers) from wrk's report."""
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1])
    latency = {int(p): float(v) * UNITS[u] for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)}
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return rate, latency.get(50, 0.0), latency.get(99, 0.0), errors, int(non_2xx[1]) if non_2xx else 0


def cpu_ticks(pids: set[int]) -> dict[int, int]:
    """utime + stime (clock ticks) of each live process in *pids*."""
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = int(fields[11]) + int(fields[12])
    return found


def measure(target: Target, hosts: Path, seconds: float, connections: int, threads: int,
            client_cpus: Optional[set[int]] = None) -> Run:
    """One wrk run against *target* (on *client_cpus* when given), with the CPU its processes used."""
    host = target.host_pids or target.cpu_pids
    before_cpu, before_app, before_host = cpu_ticks(target.cpu_pids()), cpu_ticks(target.app_pids()), cpu_ticks(host())
    stop = threading.Event()
    poker = threading.Thread(target=_every_second, args=(target.during, stop)) if target.during else None
    if poker:
        poker.start()
    try:
        done = subprocess.run(wrk_argv(hosts, target.url, seconds, connections, threads), capture_output=True,
                              text=True, timeout=seconds + 60,
                              preexec_fn=(lambda: os.sched_setaffinity(0, client_cpus)) if client_cpus else None)
    finally:
        stop.set()
        if poker:
            poker.join()
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed on {target.label}: {done.stderr}")
    rate, p50, p99, errors, bad_status = parse_wrk(done.stdout)
    hz = os.sysconf("SC_CLK_TCK")
    after_cpu, after_app, after_host = cpu_ticks(target.cpu_pids()), cpu_ticks(target.app_pids()), cpu_ticks(host())
    used = sum(after_cpu[p] - before_cpu.get(p, 0) for p in after_cpu)
    used_host = sum(after_host[p] - before_host.get(p, 0) for p in after_host)
    per_app = [after_app[p] - before_app.get(p, 0) for p in after_app]
    requests = max(rate * seconds, 1)
    busiest = max(per_app) / sum(per_app) if per_app and sum(per_app) else None
    return Run(rate, p50, p99, errors, bad_status, used / hz / requests * 1e6, busiest,
               used_host / hz / requests * 1e6)


def _every_second(action: Callable[[], None], stop: threading.Event) -> None:
    while not stop.wait(1.0):
        action()


# -- the things compared

def docs_shaped_conf(site: Site, port: int) -> str:
    """nginx in the shape of gunicorn's deploy documentation, plus the `alias` location users add for /static/.

    Its upstream (fail_timeout=0, no keepalive: a new connection per request), keepalive_timeout 5,
    try_files before the proxy, Host $http_host, X-Forwarded-For appended, and whatever Debian's
    nginx.conf says (gzip on, for text/html). The documentation listens on plain HTTP; the same
    certificate is added so every nginx row pays for the same TLS.
    """
    name = f"docs_{port}"
    return f"""\
upstream {name} {{
    server unix:{site.run}/app.sock fail_timeout=0;
}}

server {{
    listen 127.0.0.1:{port} ssl;
    server_name {DOMAIN};
    ssl_certificate {site.cert};
    ssl_certificate_key {site.key};
    client_max_body_size 4G;
    keepalive_timeout 5;
    root {site.static.parent}/public;

    location /static/ {{
        alias {site.static}/;
    }}

    location / {{
        try_files $uri @proxy_to_app;
    }}

    location @proxy_to_app {{
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header Host $http_host;
        proxy_redirect off;
        proxy_pass http://{name};
    }}
}}
"""


def least_proxy_conf(site: Site, port: int) -> str:
    """The least an nginx in front of the app can do: TLS, one proxy_pass over kept-alive upstream
    connections, the two headers Django needs (the host, HTTPS), no access log, no gzip (Debian's
    nginx.conf turns it on for text/html), nothing else.

    Not a configuration to deploy (no host checking, no static files, no forwarded address): it
    measures what the hop through nginx costs on this machine, whatever the configuration says.
    """
    name = f"least_{port}"
    return f"""\
upstream {name} {{
    server unix:{site.run}/app.sock;
    keepalive 16;
}}

server {{
    listen 127.0.0.1:{port} ssl;
    server_name {DOMAIN};
    ssl_certificate {site.cert};
    ssl_certificate_key {site.key};
    access_log off;
    gzip off;

    location / {{
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_pass http://{name};
    }}
}}
"""


def add_server(stack: Stack, name: str, conf: Callable[[Site, int], str]) -> int:
    """Add a server made by *conf* to the stack's nginx, on its own port, and reload; return the port."""
    port = free_port()
    (stack.site.base / "nginx" / "conf.d" / f"{name}.conf").write_text(conf(stack.site, port))
    reload_nginx(stack)
    wait_for(lambda: is_listening(port), 10, f"the {name} server listening")
    return port


def reload_nginx(stack: Stack) -> None:
    """`nginx -t`, then HUP: new workers with the new configuration, the old ones finish their requests."""
    stack.check_nginx_config()
    assert stack.nginx_master is not None
    stack.nginx_master.send_signal(signal.SIGHUP)


def write_whitenoise_settings(site: Site) -> None:
    """The rendered production settings plus WhiteNoise's middleware, right after SecurityMiddleware."""
    module = site.app / PROJECT / "settings_whitenoise.py"
    module.write_text(
        '"""Production settings with WhiteNoise serving STATIC_ROOT (benchmark only)."""\n\n'
        f"from {PROJECT}.settings_production import *  # noqa: F403\n\n"
        'MIDDLEWARE = [MIDDLEWARE[0], "whitenoise.middleware.WhiteNoiseMiddleware", *MIDDLEWARE[1:]]  # noqa: F405\n')
    _as_project_file(site, module)


def add_stylesheet(site: Site) -> str:
    """A 120 kB stylesheet in the project's assets, collected again; return its hashed URL path."""
    path = site.app / "assets" / STYLESHEET
    rules = (f".c{i} {{ margin: {i % 9}px {i % 5}px; color: #{i * 2654435761 % 0xFFFFFF:06x}; "
             f"padding: {i % 7}em {i % 3}em; }}\n" for i in range(2000))
    path.write_text("".join(rules))
    _as_project_file(site, path)
    user = ensure_app_user()
    collect_static(site, user.pw_uid, user.pw_gid)
    import json

    manifest = json.loads((site.static / "staticfiles.json").read_text())
    return f"/static/{manifest['paths'][STYLESHEET]}"


def _as_project_file(site: Site, path: Path) -> None:
    """Owned like the rest of the project: root, the app's group, 0640."""
    reference = site.app / PROJECT / "settings_production.py"
    os.chown(path, 0, reference.stat().st_gid)
    path.chmod(0o640)


def nginx_workers(stack: Stack) -> Callable[[], set[int]]:
    """The stack's nginx worker processes, read afresh (a reload replaces them)."""
    assert stack.nginx_master is not None
    master = stack.nginx_master.pid
    return lambda: process_tree({master}) - {master}


def app_workers(stack: Stack) -> Callable[[], set[int]]:
    """The app's processes under supervisord: gunicorn's workers (its master aside) or uvicorn's processes."""
    def found() -> set[int]:
        web = set(stack.web_processes().values())
        tree = process_tree(web)
        children = tree - web
        return children or web
    return found


def stack_processes(stack: Stack) -> Callable[[], set[int]]:
    """nginx's workers and every process of the app (gunicorn's master too): the host's side of a row."""
    workers = nginx_workers(stack)
    return lambda: workers() | process_tree(set(stack.web_processes().values()))


def alone_workers(procs: list[subprocess.Popen]) -> Callable[[], set[int]]:
    """Every process of an app server run outside supervisor."""
    return lambda: process_tree({p.pid for p in procs})


def hup_everything(stack: Stack) -> Callable[[], None]:
    """What a deploy does: reload nginx and HUP gunicorn's master (new workers, old ones finish)."""
    def act() -> None:
        assert stack.nginx_master is not None
        stack.nginx_master.send_signal(signal.SIGHUP)
        for pid in stack.web_processes().values():
            os.kill(pid, signal.SIGHUP)
    return act


def pin_tree(roots: set[int], cpus: set[int]) -> None:
    """Every thread of *roots* and their descendants onto *cpus* (workers forked later inherit it)."""
    for pid in process_tree(roots):
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                os.sched_setaffinity(int(task.name), cpus)
            except (ProcessLookupError, PermissionError):
                pass


# -- output

def versions(site: Site, nginx_path: str) -> str:
    """Versions of what was measured."""
    nginx = subprocess.run([nginx_path, "-v"], capture_output=True, text=True).stderr.strip().split("/")[-1]
    code = ("import django, gunicorn, uvicorn, platform; from importlib.metadata import version; "
            "print(django.get_version(), gunicorn.__version__, uvicorn.__version__, version('whitenoise'), "
            "platform.python_version())")
    django, gunicorn, uvicorn, whitenoise, python = subprocess.run(
        [str(site.venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True).stdout.split()
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()[1]
    return (f"nginx {nginx}, gunicorn {gunicorn}, uvicorn {uvicorn}, Django {django}, WhiteNoise {whitenoise}, "
            f"app Python {python}, wrk {wrk}")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def summary(target: Target) -> dict[str, float]:
    """The medians of a target's runs (errors summed)."""
    runs = target.runs
    busiest = [r.busiest for r in runs if r.busiest is not None]
    return {"rate": median([r.rate for r in runs]), "p50": median([r.p50_ms for r in runs]),
            "p99": median([r.p99_ms for r in runs]), "errors": sum(r.errors for r in runs),
            "bad_status": sum(r.bad_status for r in runs),
            "cpu": median([r.cpu_us for r in runs]), "busiest": median(busiest) if busiest else 0.0,
            "host_cpu": median([r.host_cpu_us for r in runs])}


def print_report(targets: list[Target], probes: dict[str, client.Response], header: list[str],
                 ratios: list[tuple[str, str, str]]) -> None:
    """The figures, as Markdown tables the README can take as they are."""
    for line in header:
        print(line)
    print()
    print("| group | what | req/s (median) | each round | p50 ms | p99 ms | socket errors | non-2xx | server CPU µs/req "
          "| host CPU µs/req | busiest app process | Content-Encoding |")
    print("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for t in targets:
        s = summary(t)
        rounds = " / ".join(f"{r.rate:,.0f}" for r in t.runs)
        busiest = f"{s['busiest']:.0%}" if s["busiest"] else "-"
        encoding = probes[t.label].header("Content-Encoding") or "identity"
        print(f"| {t.group} | {t.label} | {s['rate']:,.0f} | {rounds} | {s['p50']:.2f} | {s['p99']:.2f} | "
              f"{s['errors']} | {s['bad_status']} | {s['cpu']:,.0f} | {s['host_cpu']:,.0f} | {busiest} | {encoding} |")
    print()
    by_label = {t.label: t for t in targets}
    print("| ratio | median of the rounds' ratios | ratio of the medians | each round | at equal host CPU |")
    print("| --- | ---: | ---: | --- | ---: |")
    for name, top, bottom in ratios:
        if top not in by_label or bottom not in by_label:
            continue
        a, b = by_label[top], by_label[bottom]
        # Each round's two runs came minutes apart at most: the paired ratio is what load elsewhere
        # on the machine disturbs least.
        per_round = [x.rate / y.rate for x, y in zip(a.runs, b.runs) if y.rate]
        # Requests per CPU-second of the host's processes (nginx and the app), whoever else ran.
        per_cpu = [y.host_cpu_us / x.host_cpu_us for x, y in zip(a.runs, b.runs) if x.host_cpu_us]
        print(f"| {name} | {median(per_round):.2f}x | {summary(a)['rate'] / max(summary(b)['rate'], 1e-9):.2f}x | "
              + " / ".join(f"{r:.2f}" for r in per_round) + f" | {median(per_cpu):.2f}x |")


# -- the run

@dataclass
class Bench:
    """The stacks and comparison servers one run starts, and its targets."""

    host: Host
    stacks: list[Stack] = field(default_factory=list)
    extra: list[subprocess.Popen] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    ratios: list[tuple[str, str, str]] = field(default_factory=list)
    app_tls: Optional[tuple[Path, Path]] = None  # certificate and key the app's user can read

    def start(self, kinds: list[str], app_server: dict) -> None:
        """Every stack, its comparison servers and the targets on them."""
        self.app_tls = app_certificate(self.host)
        for number, kind in enumerate(kinds):
            server, fields = KINDS[kind]
            stack = launch(self.host, server, pair=False, app_server={**fields, **app_server_for(server, app_server)})
            self.stacks.append(stack)
            self.add_dynamic(kind, stack)
            if number == 0:
                self.add_static(stack)
        if {"sync", "gthread"} <= set(kinds):
            # Both pages are CPU-bound: threads add switching, not parallelism (one GIL per process),
            # but gthread keeps nginx's connections alive where a sync worker takes a new one per request.
            for page in ("small page", "template page"):
                self.ratios.append((f"{page}, rendered nginx: sync / gthread", f"sync, {page}: rendered nginx",
                                    f"gthread, {page}: rendered nginx"))

    def add_dynamic(self, kind: str, stack: Stack) -> None:
        site = stack.site
        docs, least = add_server(stack, "gunicorn-docs", docs_shaped_conf), add_server(stack, "least", least_proxy_conf)
        alone, alone_tls = free_port(), free_port()
        plain = run_web_program(site, ("127.0.0.1", alone), f"bench-{kind}-alone")
        own_tls = run_web_program(site, ("127.0.0.1", alone_tls), f"bench-{kind}-alone-tls", tls=self.app_tls)
        self.extra += plain + own_tls
        nginx, app, both = nginx_workers(stack), app_workers(stack), stack_processes(stack)
        via_nginx, direct, direct_tls = (f"https://{DOMAIN}:{site.ports.https}", f"http://{DOMAIN}:{alone}",
                                         f"https://{DOMAIN}:{alone_tls}")
        small, page = f"{kind}, small page", f"{kind}, template page"
        self.targets += [
            Target(kind, f"{small}: rendered nginx", f"{via_nginx}{PAGE}", stack, nginx, app, both),
            Target(kind, f"{small}: gunicorn-docs nginx", f"https://{DOMAIN}:{docs}{PAGE}", stack, nginx, app, both),
            Target(kind, f"{small}: least nginx proxy", f"https://{DOMAIN}:{least}{PAGE}", stack, nginx, app, both),
            Target(kind, f"{small}: app server alone", f"{direct}{PAGE}", stack, alone_workers(plain),
                   alone_workers(plain)),
            Target(kind, f"{small}: app server alone, its own TLS", f"{direct_tls}{PAGE}", stack,
                   alone_workers(own_tls), alone_workers(own_tls)),
            Target(kind, f"{page}: rendered nginx", f"{via_nginx}{TEMPLATE_PAGE}", stack, nginx, app, both),
            Target(kind, f"{small}: rendered nginx, on its own CPU", f"{via_nginx}{PAGE}", stack, nginx, app, both,
                   nginx_beside_client=True),
            Target(kind, f"{page}: rendered nginx, on its own CPU", f"{via_nginx}{TEMPLATE_PAGE}", stack, nginx, app,
                   both, nginx_beside_client=True),
            Target(kind, f"{page}: least nginx proxy", f"https://{DOMAIN}:{least}{TEMPLATE_PAGE}", stack, nginx, app,
                   both),
            Target(kind, f"{page}: app server alone", f"{direct}{TEMPLATE_PAGE}", stack, alone_workers(plain),
                   alone_workers(plain)),
        ]
        # (the ratio's name, its numerator's row, its denominator's row), rows named after "<kind>, <page>: "
        for which, top, bottom, name in [
            (small, "rendered nginx", "gunicorn-docs nginx", "rendered / gunicorn-docs nginx"),
            (small, "rendered nginx", "app server alone", "rendered / app server alone"),
            (small, "rendered nginx", "least nginx proxy", "rendered / least nginx proxy"),
            (small, "least nginx proxy", "app server alone", "least nginx proxy / app server alone"),
            (small, "rendered nginx", "app server alone, its own TLS", "rendered / app server alone with its own TLS"),
            (page, "rendered nginx", "app server alone", "rendered / app server alone"),
            (page, "rendered nginx", "least nginx proxy", "rendered / least nginx proxy"),
            (page, "least nginx proxy", "app server alone", "least nginx proxy / app server alone"),
            (small, "rendered nginx, on its own CPU", "app server alone", "rendered on its own CPU / app server alone"),
            (page, "rendered nginx, on its own CPU", "app server alone", "rendered on its own CPU / app server alone"),
        ]:
            self.ratios.append((f"{which}: {name}", f"{which}: {top}", f"{which}: {bottom}"))

    def add_static(self, stack: Stack) -> None:
        site = stack.site
        sheet = add_stylesheet(site)
        write_whitenoise_settings(site)
        port = free_port()
        procs = run_web_program(site, ("127.0.0.1", port), "bench-whitenoise",
                                env={"DJANGO_SETTINGS_MODULE": WHITENOISE_SETTINGS})
        self.extra += procs
        docs = next(t.url for t in self.targets if t.stack is stack and "docs" in t.label).rsplit(":", 1)[1].split("/")[0]
        nginx = nginx_workers(stack)
        self.targets += [
            Target("static", "stylesheet: rendered nginx", f"https://{DOMAIN}:{site.ports.https}{sheet}", stack, nginx),
            Target("static", "stylesheet: bare alias location", f"https://{DOMAIN}:{docs}{sheet}", stack, nginx),
            Target("static", "stylesheet: Django + WhiteNoise", f"http://{DOMAIN}:{port}{sheet}", stack,
                   alone_workers(procs)),
        ]
        self.ratios = [("static: rendered / WhiteNoise", "stylesheet: rendered nginx", "stylesheet: Django + WhiteNoise"),
                       ("static: rendered / bare alias", "stylesheet: rendered nginx", "stylesheet: bare alias location"),
                       *self.ratios]

    def add_reload_rows(self) -> None:
        """The page while nginx reloads and gunicorn gets HUP every second (measured in the last round only)."""
        for stack in self.stacks:
            if stack.site.kind == "gunicorn":
                kind = next(t.group for t in self.targets if t.stack is stack and t.group != "static")
                self.targets.append(Target(f"{kind}", f"{kind}, small page: rendered, reload every second",
                                           f"https://{DOMAIN}:{stack.site.ports.https}{PAGE}", stack,
                                           nginx_workers(stack), host_pids=stack_processes(stack),
                                           during=hup_everything(stack)))

    def probe(self) -> dict[str, client.Response]:
        """One request per target with the browser's Accept-Encoding: must be 200; its headers are shown."""
        found = {}
        for t in self.targets:
            scheme, rest = t.url.split("://")
            port, path = int(rest.split(":")[1].split("/")[0]), "/" + rest.split("/", 1)[1]
            reply = client.fetch(scheme, DOMAIN, port, path, headers={"Accept-Encoding": ACCEPT_ENCODING},
                                 context=client.tls_context(self.host.cert))
            if reply.status != 200:
                raise RuntimeError(f"{t.label}: {t.url} answered {reply.status}")
            found[t.label] = reply
        return found

    def pin(self, cpus: set[int]) -> None:
        """Every thread of every process this run started (supervisord, the app, nginx) onto *cpus*."""
        roots = {p.pid for p in self.extra}
        for stack in self.stacks:
            roots |= {p.pid for p in (stack.supervisord, stack.nginx_master) if p is not None}
        pin_tree(roots, cpus)

    def place_nginx(self, target: Target, client: set[int], servers: set[int]) -> None:
        """Every nginx of the run beside wrk for a target that asks for it, else with the app."""
        masters = {s.nginx_master.pid for s in self.stacks if s.nginx_master is not None}
        pin_tree(masters, client if target.nginx_beside_client else servers)

    def stop(self) -> None:
        for proc in self.extra:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        for proc in self.extra:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        for stack in self.stacks:
            stack.stop()


def app_certificate(host: Host) -> tuple[Path, Path]:
    """The test certificate and key again, owned by the app's user: for an app server serving HTTPS itself."""
    user = ensure_app_user()
    directory = host.base / "app-tls"
    directory.mkdir(mode=0o700)
    os.chown(directory, user.pw_uid, user.pw_gid)
    copies = directory / "fullchain.pem", directory / "privkey.pem"
    for source, copy in zip((host.cert, host.key), copies):
        shutil.copyfile(source, copy)
        copy.chmod(0o600)
        os.chown(copy, user.pw_uid, user.pw_gid)
    return copies


def app_server_for(server: str, overrides: dict) -> dict:
    """--app-server settings that apply to this server kind (uvicorn refuses max_requests)."""
    return {k: v for k, v in overrides.items() if not (server == "uvicorn" and k == "max_requests")}


def run(host: Host, args: argparse.Namespace) -> None:
    """Start everything, warm up, measure in interleaved rounds, print, stop everything."""
    bench = Bench(host)
    hosts = host.base / "hosts"
    hosts.write_text(f"127.0.0.1 localhost {DOMAIN}\n")
    client, servers = split_cpus(args.pin)
    try:
        bench.start(args.kinds, dict(args.app_server))
        if client:
            # Once started (on every CPU, which is quicker): the servers on their CPUs, wrk on its own,
            # as clients elsewhere would be. Workers forked later (reloads) inherit it.
            bench.pin(servers)
        else:
            # Every CPU is shared: there is no CPU of nginx's own to give it.
            bench.targets = [t for t in bench.targets if not t.nginx_beside_client]
        bench.add_reload_rows() if args.reload else None
        probes = bench.probe()
        regular = [t for t in bench.targets if t.during is None]

        def run_one(t: Target, seconds: float) -> Run:
            if client:
                bench.place_nginx(t, client, servers)
            return measure(t, hosts, seconds, args.connections, args.threads, client)

        for t in regular:  # warm-up: imports, caches, TLS sessions
            run_one(t, 1)
        for number in range(args.rounds):
            shift = number % len(regular)
            for t in regular[shift:] + regular[:shift]:
                t.runs.append(run_one(t, args.seconds))
        for t in bench.targets:
            if t.during is not None:
                t.runs.append(run_one(t, args.seconds))
        site = bench.stacks[0].site
        header = [f"Machine: {describe_machine()}.", f"Software: {versions(site, host.nginx)}.",
                  f"Load: wrk, {args.connections} keep-alive connections on {args.threads} threads, "
                  f"`Accept-Encoding: {ACCEPT_ENCODING}`, {args.seconds:g} s per run, {args.rounds} interleaved "
                  f"rounds after 1 s of warm-up each, over loopback; {WORKERS} app workers per server "
                  f"(gthread: {KINDS['gthread'][1]['threads']} threads), app_server overrides: "
                  f"{dict(args.app_server) or 'none'}. "
                  + (f"wrk on CPU {', '.join(map(str, sorted(client)))}, every server on CPU "
                     f"{', '.join(map(str, sorted(servers)))} (rows \"on its own CPU\": nginx on wrk's)."
                     if client else "wrk shares the CPUs with the servers.")
                  + " Other work on the machine shares them too: compare ratios, not rates."]
        print_report(bench.targets, probes, header, bench.ratios)
    finally:
        bench.stop()


def split_cpus(pin: bool) -> tuple[Optional[set[int]], set[int]]:
    """(wrk's CPU, the servers' CPUs): the last CPU this process may use for wrk, the others for
    the servers; (None, all of them) with *pin* off or a single CPU."""
    cpus = os.sched_getaffinity(0)
    if not pin or len(cpus) < 2:
        return None, cpus
    client = {max(cpus)}
    return client, cpus - client


def setting(text: str) -> tuple[str, object]:
    """KEY=VALUE for --app-server; the value as YAML reads it."""
    import yaml

    key, _, value = text.partition("=")
    return key, yaml.safe_load(value)


def main(argv: Optional[list[str]] = None) -> int:
    """Check the host, build what is missing, run, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per run (default 3)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--kinds", type=lambda s: s.split(","), default=list(KINDS),
                        help="worker classes, comma-separated (default sync,gthread,uvicorn)")
    parser.add_argument("--app-server", type=setting, action="append", default=[], metavar="KEY=VALUE",
                        help="an app_server field for every stack, e.g. max_requests=0 (repeatable)")
    parser.add_argument("--no-reload", dest="reload", action="store_false", help="leave out the reload rows")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="let wrk share every CPU with the servers (default: wrk on the last CPU, "
                             "the servers on the others)")
    args = parser.parse_args(argv)
    unknown = [k for k in args.kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown kind {unknown[0]!r}; choose from {', '.join(KINDS)}")
    tools = {name: shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}")
                                                if os.path.exists(p)), None)
             for name in ("nginx", "openssl", "systemd-tmpfiles", "unshare", "wrk")}
    missing = [name for name, path in tools.items() if path is None]
    if os.geteuid() != 0 or missing:
        print(f"bench.py needs root and {', '.join(tools)}; missing: {', '.join(missing) or 'root'}", file=sys.stderr)
        return 2
    try:
        ensure_app_user()
        venv = ensure_venv()
    except HostNotReady as e:
        print(f"bench.py: {e}", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="djdeploy-bench-"))
    base.chmod(0o755)
    try:
        host = prepare_host(base, nginx=tools["nginx"], tmpfiles=tools["systemd-tmpfiles"], venv=venv)
        run(host, args)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
