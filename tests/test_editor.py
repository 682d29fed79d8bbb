"""The YAML language server, as editors run it, checks a spec that `init` wrote, offline.

It reads the spec's modeline, loads ./djdeploy.schema.json from beside the spec and reports
what the schema refuses; the schema store (a download) is off, as it is with no network.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from scaffold.cli import app
from support import require_tool

pytestmark = pytest.mark.tool

SETTINGS = {"validate": True, "hover": False, "completion": False, "schemaStore": {"enable": False}}


class LanguageServer:
    """A minimal LSP client over stdio: requests, notifications, and the diagnostics it publishes."""

    def __init__(self, program: str, root: Path) -> None:
        self.process = subprocess.Popen([program, "--stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL)
        self.next_id = 0
        self.diagnostics: dict[str, list[dict]] = {}
        self.request("initialize", {"processId": None, "rootUri": root.as_uri(), "capabilities": {
            "workspace": {"configuration": True}}, "workspaceFolders": [{"uri": root.as_uri(), "name": "specs"}]})
        self.notify("initialized", {})
        self.notify("workspace/didChangeConfiguration", {"settings": {"yaml": SETTINGS}})

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        self.process.stdin.flush()

    def notify(self, method: str, params: dict) -> None:
        self._send({"method": method, "params": params})

    def request(self, method: str, params: dict) -> Any:
        self.next_id += 1
        self._send({"id": self.next_id, "method": method, "params": params})
        while True:
            message = self._read()
            if message.get("id") == self.next_id and "method" not in message:
                return message.get("result")

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        length = 0
        while (line := self.process.stdout.readline().strip()):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        if not length:
            raise AssertionError("the language server stopped")
        message = json.loads(self.process.stdout.read(length))
        self._answer(message)
        return message

    def _answer(self, message: dict[str, Any]) -> None:
        """Answer the server's own requests (settings, registrations); record diagnostics."""
        if message.get("method") == "textDocument/publishDiagnostics":
            self.diagnostics[message["params"]["uri"]] = message["params"]["diagnostics"]
        elif "id" in message and "method" in message:
            items = message.get("params", {}).get("items", [])
            result = [SETTINGS for _ in items] if message["method"] == "workspace/configuration" else None
            self._send({"id": message["id"], "result": result})

    def check(self, path: Path, wait: float = 30.0) -> list[tuple[int, str]]:
        """Open *path* and return the diagnostics published for it: (1-based line, message)."""
        uri = path.as_uri()
        self.diagnostics.pop(uri, None)
        self.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": "yaml", "version": 1, "text": path.read_text()}})
        # A request answered after the document's diagnostics proves they were published.
        deadline = time.monotonic() + wait
        while uri not in self.diagnostics and time.monotonic() < deadline:
            self.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
        assert uri in self.diagnostics, "no diagnostics published"
        return sorted((d["range"]["start"]["line"] + 1, d["message"]) for d in self.diagnostics[uri])

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def language_server(tmp_path: Path):
    server = LanguageServer(require_tool("yaml-language-server", "the editor test (npm install -g "
                                         "yaml-language-server)"), tmp_path)
    yield server
    server.close()


def test_the_spec_init_writes_is_checked_offline_with_the_schema_beside_it(runner, tmp_path: Path,
                                                                           language_server) -> None:
    spec = tmp_path / "spec.yaml"
    result = runner.invoke(app, ["init", str(spec), "--defaults", "--domain", "shop.example.com"])
    assert result.exit_code == 0, result.output
    text = spec.read_text()
    broken = tmp_path / "broken.yaml"
    broken_text = text.replace("name: shop", "name: Shop") + "nginx:\n  http_port: '99999'\n  ipv6: no\n"
    broken.write_text(broken_text)
    lines = broken_text.splitlines()
    name_line = next(i for i, line in enumerate(lines, 1) if line.startswith("name:"))
    port_line = next(i for i, line in enumerate(lines, 1) if "http_port" in line)
    found = language_server.check(broken)
    assert [line for line, _ in found] == [name_line, port_line], found     # ipv6: no is fine
    assert "must be a slug" in found[0][1]
    assert language_server.check(spec) == []


def test_a_modeline_to_a_missing_file_is_reported(tmp_path: Path, language_server) -> None:
    """The control: the server does load what the modeline names (so a pass above means it)."""
    spec = tmp_path / "spec.yaml"
    spec.write_text("# yaml-language-server: $schema=./missing.schema.json\nversion: 1\nname: Shop\n")
    found = language_server.check(spec)
    assert found and not any("must be a slug" in message for _, message in found), found
