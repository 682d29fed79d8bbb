"""Benchmark the rendered stack on loopback and print a table (a script, not a test).

    sudo python tests/bench.py [--seconds 5] [--connections 8]

Side by side, in one run, on the machine it prints: a Django page through the rendered nginx →
gunicorn against gunicorn alone and against nginx configured in the shape of gunicorn's own
examples/nginx.conf; a static file from the rendered nginx against Django with WhiteNoise; and the
bytes a response takes with and without gzip. The stack is the live tests' one (tests/live/), so
it needs root, nginx, openssl and systemd-tmpfiles; everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live import client  # noqa: E402 - after the path is set
from live.host import HostNotReady, describe_machine, ensure_app_user, ensure_venv, free_port  # noqa: E402
from live.layout import DOMAIN, PROJECT, WORKERS, Site  # noqa: E402
from live.stack import Host, Stack, is_listening, launch, prepare_host, run_web_program, wait_for  # noqa: E402

WHITENOISE_SETTINGS = f"{PROJECT}.settings_whitenoise"
PAGE = "/page/"


@dataclass(frozen=True)
class Target:
    """Where a row's requests go."""

    label: str
    scheme: str
    port: int
    path: str


@dataclass(frozen=True)
class Result:
    """One row: completed requests per second, latency percentiles, failures."""

    target: Target
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int


# -- load generation: processes x threads, each thread one kept-alive connection

def drive(target: Target, cafile: Optional[Path], seconds: float, threads: int) -> tuple[list[float], int]:
    """In one process: *threads* connections sending requests back to back for *seconds*; latencies, errors."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    deadline = time.monotonic() + seconds
    context = client.tls_context(cafile) if target.scheme == "https" else None

    def run(slot: int) -> None:
        conn = client.open_connection(target.scheme, DOMAIN, target.port, context=context)
        while (start := time.monotonic()) < deadline:
            try:
                ok = client.send(conn, target.path).status == 200
            except (OSError, client.http.client.HTTPException):
                ok = False
                conn.close()
            if ok:
                latencies[slot].append(time.monotonic() - start)
            else:
                errors[slot] += 1
        conn.close()

    workers = [threading.Thread(target=run, args=(slot,)) for slot in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return [t for slot in latencies for t in slot], sum(errors)


def measure(target: Target, cafile: Optional[Path], seconds: float, connections: int) -> Result:
    """Warm up for a second, then load *target* from one process per CPU for *seconds*."""
    processes = min(os.cpu_count() or 1, connections)
    per_process = [connections // processes + (i < connections % processes) for i in range(processes)]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        pool.starmap(drive, [(target, cafile, 1.0, n) for n in per_process])
        outcomes = pool.starmap(drive, [(target, cafile, seconds, n) for n in per_process])
    latencies = sorted(t for found, _ in outcomes for t in found)
    errors = sum(e for _, e in outcomes)
    if not latencies:
        return Result(target, 0.0, 0.0, 0.0, errors)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return Result(target, len(latencies) / seconds, statistics.median(latencies) * 1000, p99 * 1000, errors)


# -- the things compared

def gunicorn_example_conf(site: Site, port: int) -> str:
    """nginx in the shape of gunicorn's examples/nginx.conf (benoitc/gunicorn, docs/content/deploy.md).

    Its upstream (fail_timeout=0, no keepalive: a new connection per request), keepalive_timeout 5,
    try_files before the proxy, Host $http_host, X-Forwarded-For appended. The example listens on
    plain HTTP; the same certificate is added so both nginx rows pay for the same TLS.
    """
    return f"""\
upstream gunicorn_example_app {{
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

    location / {{
        try_files $uri @proxy_to_app;
    }}

    location @proxy_to_app {{
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header Host $http_host;
        proxy_redirect off;
        proxy_pass http://gunicorn_example_app;
    }}
}}
"""


def add_gunicorn_example(stack: Stack) -> int:
    """Add the example-shaped server to the running nginx (on its own port) and reload it; return the port."""
    port = free_port()
    conf = stack.site.base / "nginx" / "conf.d" / "gunicorn-example.conf"
    conf.write_text(gunicorn_example_conf(stack.site, port))
    stack.check_nginx_config()
    assert stack.nginx_master is not None
    stack.nginx_master.send_signal(signal.SIGHUP)
    wait_for(lambda: is_listening(port), 10, "the example server listening")
    return port


def write_whitenoise_settings(site: Site) -> None:
    """The rendered production settings plus WhiteNoise's middleware, right after SecurityMiddleware."""
    module = site.app / PROJECT / "settings_whitenoise.py"
    module.write_text(
        '"""Production settings with WhiteNoise serving STATIC_ROOT (benchmark only)."""\n\n'
        f"from {PROJECT}.settings_production import *  # noqa: F403\n\n"
        'MIDDLEWARE = [MIDDLEWARE[0], "whitenoise.middleware.WhiteNoiseMiddleware", *MIDDLEWARE[1:]]  # noqa: F405\n')
    shutil.copymode(site.app / PROJECT / "settings_production.py", module)
    shutil.copystat(site.app / PROJECT / "settings_production.py", module)
    os.chown(module, 0, (site.app / PROJECT).stat().st_gid)


def hashed_static(site: Site) -> str:
    """The content-hashed name collectstatic gave the project's stylesheet."""
    manifest = json.loads((site.static / "staticfiles.json").read_text())
    return f"/static/{manifest['paths']['css/site.css']}"


# -- bytes on the wire

def response_bytes(reply: client.Response, version: str = "HTTP/1.1") -> int:
    """Status line, headers and body as they crossed the wire (HTTP/1.1 framing; chunk markers aside)."""
    head = f"{version} {reply.status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
    return len(head) + 2 + len(reply.body)


def wire_sizes(stack: Stack, paths: list[str]) -> list[tuple[str, int, int, str]]:
    """(path, bytes without gzip, bytes with gzip, Content-Encoding sent) through the rendered nginx."""
    rows = []
    for path in paths:
        plain = stack.fetch(path)
        zipped = stack.fetch(path, headers={"Accept-Encoding": "gzip"})
        if zipped.header("Content-Encoding") == "gzip":
            assert gzip.decompress(zipped.body) == plain.body, path
        rows.append((path, response_bytes(plain), response_bytes(zipped), zipped.header("Content-Encoding") or "-"))
    return rows


# -- output

def versions(site: Site, nginx_path: str) -> str:
    """Versions of what was measured."""
    nginx = subprocess.run([nginx_path, "-v"], capture_output=True, text=True).stderr.strip().split("/")[-1]
    code = "import django, gunicorn, platform; print(django.get_version(), gunicorn.__version__, platform.python_version())"
    django, gunicorn_version, python = subprocess.run([str(site.venv / "bin" / "python"), "-c", code],
                                                      capture_output=True, text=True, check=True).stdout.split()
    return (f"nginx {nginx}, gunicorn {gunicorn_version} ({WORKERS} sync workers), Django {django}, "
            f"app Python {python}")


def print_table(results: list[Result], sizes: list[tuple[str, int, int, str]], header: list[str]) -> None:
    """The figures, as a Markdown table the README can take as it is."""
    for line in header:
        print(line)
    print()
    print("| what | transport | req/s | p50 ms | p99 ms | errors |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r.target.label} | {r.target.scheme.upper()} | {r.rate:,.0f} | {r.p50_ms:.1f} | "
              f"{r.p99_ms:.1f} | {r.errors} |")
    print()
    print("| response through the rendered nginx | bytes, identity | bytes, gzip | saved |")
    print("| --- | ---: | ---: | ---: |")
    for path, plain, zipped, encoding in sizes:
        saved = f"{1 - zipped / plain:.0%}" if encoding == "gzip" else "not compressed"
        print(f"| `{path}` | {plain:,} | {zipped:,} | {saved} |")
    print()
    print("gzip comes from the rendered site (static files) or from the `gzip on;` (text/html only) of "
          "Debian's stock nginx.conf, which the benchmark's nginx.conf keeps.")


# -- the run

def run(host: Host, seconds: float, connections: int) -> None:
    """Start the stack and the comparison servers, measure every row, stop everything."""
    stack = launch(host, "gunicorn", pair=False)
    extra: list[subprocess.Popen] = []
    try:
        site = stack.site
        write_whitenoise_settings(site)
        alone, whitenoise = free_port(), free_port()
        extra += run_web_program(site, ("127.0.0.1", alone), "bench-gunicorn-alone")
        extra += run_web_program(site, ("127.0.0.1", whitenoise), "bench-whitenoise",
                                 env={"DJANGO_SETTINGS_MODULE": WHITENOISE_SETTINGS})
        example = add_gunicorn_example(stack)
        static = hashed_static(site)
        https = site.ports.https
        targets = [
            Target("Django page: rendered nginx → gunicorn", "https", https, PAGE),
            Target("Django page: gunicorn alone", "http", alone, PAGE),
            Target("Django page: nginx shaped like gunicorn's examples/nginx.conf → gunicorn", "https", example, PAGE),
            Target("static file: rendered nginx", "https", https, static),
            Target("static file: Django + WhiteNoise on gunicorn alone", "http", whitenoise, static),
        ]
        for target in targets:
            probe = client.fetch(target.scheme, DOMAIN, target.port, target.path, context=client.tls_context(site.cert))
            assert probe.status == 200, f"{target.label}: {probe.status}"
        results = [measure(t, site.cert, seconds, connections) for t in targets]
        sizes = wire_sizes(stack, [PAGE, static, "/static/bulk.css"])
        header = [f"Machine: {describe_machine()}.", f"Software: {versions(site, host.nginx)}.",
                  f"Load: {connections} kept-alive connections from {min(os.cpu_count() or 1, connections)} "
                  f"Python http.client processes on the same machine, {seconds:g} s per row after 1 s of warm-up, "
                  "loopback; the client shares the CPUs, so treat the figures as relative."]
        print_table(results, sizes, header)
    finally:
        for proc in extra:
            proc.send_signal(signal.SIGTERM)
        for proc in extra:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        stack.stop()


def main() -> int:
    """Check the host, build what is missing, run, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per row (default 5)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections (default 8)")
    args = parser.parse_args()
    tools = {name: shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}")
                                                if os.path.exists(p)), None)
             for name in ("nginx", "openssl", "systemd-tmpfiles")}
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
        run(host, args.seconds, args.connections)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
