"""Real nginx, by version: every example spec, for every nginx.version from 1.22 to the newest Debian
has, passes `nginx -t` with no warning on the Debian nginx that reads that version's syntax.

nginx 1.25.1 moved HTTP/2 from a `listen` parameter to its own `http2` directive and deprecated the
parameter (https://nginx.org/en/CHANGES): a config for an older nginx warns on a newer one, and the
reverse fails. So versions before 1.25 are checked on Debian 12's nginx 1.22, and 1.25 and later on
Debian 13's 1.26 and unstable's newest; each nginx also gets its own exact version. The pairing is
fixed here, not taken from the renderer, so a renderer that put "1.25" on the wrong side would fail.

Each release's nginx runs in a chroot of that release (an overlay of its cached image), with Debian's
own /etc/nginx/nginx.conf: the only change is that its `include /etc/nginx/sites-enabled/*;` names
the rendered default server and site instead. The certificate (a throwaway one) and the log
directory are moved under the case's directory, as in tests/test_nginx.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import nginx_harness as harness
from machines.conftest import require_machines
from machines.images import ensure_image, nginx_image
from machines import machines
from machines.machines import Chroot
from scaffold.spec import validate_data
from support import example_paths, require_tool

pytestmark = pytest.mark.machines

RELEASES = ("bookworm", "trixie", "sid")
OLDEST = 22  # nginx.version 1.22: Debian 12's, the oldest release these run on
SITES_ENABLED = "include /etc/nginx/sites-enabled/*;"
CASES = "/djdeploy-cases"


def real_version(chroot: Chroot) -> str:
    """The chroot's nginx version, e.g. 1.26.3."""
    said = chroot.run("nginx -v").stderr
    found = re.search(r"nginx/(\d+\.\d+\.\d+)", said)
    assert found, said
    return found[1]


HTTP2_DIRECTIVE = 25  # nginx 1.25.x: the series whose newest patches read `http2 on;`


def newest_debian_nginx() -> str:
    """The nginx version in Debian unstable's image, read from its dpkg status."""
    status = (ensure_image(nginx_image("sid")) / "var/lib/dpkg/status").read_text()
    found = re.search(r"^Package: nginx\n(?:.+\n)*?Version: (\d+\.\d+\.\d+)", status, re.M)
    assert found, "no nginx in the sid image"
    return found[1]


def versions_for(real: str, newest: str) -> list[str]:
    """The nginx.version values checked on nginx *real*: the series on its side of 1.25 up to its own
    (a spec for a newer nginx may use directives this one lacks, e.g. `keepalive 0` from 1.29.7),
    then itself. The newest Debian nginx (*newest*) covers the series up to the newest."""
    minor = int(real.split(".")[1])
    top = min(minor, int(newest.split(".")[1]))
    series = range(OLDEST, HTTP2_DIRECTIVE) if minor < HTTP2_DIRECTIVE else range(HTTP2_DIRECTIVE, top + 1)
    return [f"1.{m}" for m in series] + [real]


def write_case(root: Path, example: Path, version: str, cert: Path, key: Path) -> str:
    """Render *example* for nginx *version* into the chroot; return the case's directory inside it."""
    data = yaml.safe_load(example.read_text())
    data.setdefault("nginx", {})["version"] = version
    case = f"{CASES}/{example.stem}-{version}"
    inside = Path(case)
    spec = harness.localize(validate_data(data), inside, inside / "tls" / cert.name, inside / "tls" / key.name)
    host_dir = root / case.lstrip("/")
    (host_dir / "tls").mkdir(parents=True)
    (host_dir / "logs").mkdir()
    (host_dir / "tls" / cert.name).write_bytes(cert.read_bytes())
    (host_dir / "tls" / key.name).write_bytes(key.read_bytes())
    files = harness.render_nginx(spec, host_dir / "sites")
    debian = (root / "etc/nginx/nginx.conf").read_text()
    assert SITES_ENABLED in debian
    includes = "\n\t".join(f"include {inside / 'sites' / f.relative_to(host_dir / 'sites')};" for f in files)
    (host_dir / "nginx.conf").write_text(debian.replace(SITES_ENABLED, includes))
    return case


@pytest.fixture(scope="module", params=RELEASES)
def nginx_results(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[tuple[str, dict[tuple[str, str], str]]]:
    """One release's nginx -t output for every example and version, from one run in its chroot."""
    require_machines()
    require_tool("openssl", "for a throwaway certificate")
    release = request.param
    cert, key = harness.make_certificate(tmp_path_factory.mktemp(f"cert-{release}"))
    chroot = Chroot(machines.name(f"nginx-{release}"), ensure_image(nginx_image(release)))
    try:
        real = real_version(chroot)
        newest = newest_debian_nginx()
        cases = {(example.stem, version): write_case(chroot.root, example, version, cert, key)
                 for example in example_paths() for version in versions_for(real, newest)}
        script = "".join(f'echo "=== {case}"; nginx -t -c {case}/nginx.conf 2>&1; echo "exit $?"\n'
                         for case in cases.values())
        done = chroot.run(script)
        assert done.returncode == 0, done.stderr
        said = dict(re.findall(r"^=== (\S+)\n(.*?)(?=^=== |\Z)", done.stdout, re.S | re.M))
        yield real, {key: said.get(case, "(no output)") for key, case in cases.items()}
    finally:
        chroot.close()


@pytest.mark.parametrize("example", [p.stem for p in example_paths()])
def test_nginx_t_passes_without_warnings_for_every_version(nginx_results, example: str) -> None:
    real, results = nginx_results
    versions = [version for (name, version) in results if name == example]
    assert versions[-1] == real and len(versions) >= 3
    unclean = {}
    for version in versions:
        lines = results[(example, version)].strip().splitlines()
        if lines[-1:] != ["exit 0"] or [line for line in lines if not line.endswith(
                ("syntax is ok", "test is successful", "exit 0"))]:
            unclean[version] = lines
    assert unclean == {}, f"nginx {real}"
