"""``download`` against a local HTTP server with Range support (127.0.0.1 only)."""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from posecli import weights as W
from posecli.cli.weights import weights_app
from posecli.errors import WeightsError
from posecli.model import ModelConfig, PoseNet

CONTENT = bytes(range(256)) * 12_000  # 3 MB: several 1 MiB chunks
SHA = hashlib.sha256(CONTENT).hexdigest()


@dataclass
class Server:
    """A file server over ``root``; records each request's path and Range header."""

    root: Path
    url: str = ""
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    ignore_range: bool = False  # answer 200 with the whole file
    cut_after: int | None = None  # send only this many body bytes, then close


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            server.requests.append((self.path, self.headers.get("Range")))
            path = server.root / self.path.lstrip("/")
            if not path.is_file():
                self.send_error(404, "Not Found")
                return
            data = path.read_bytes()
            start = self._range_start()
            if start is not None and start >= len(data):
                self.send_error(416, "Range Not Satisfiable")
                return
            if start is None:
                self.send_response(200)
                start = 0
            else:
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: server.cut_after])
            server.cut_after = None

        def _range_start(self) -> int | None:
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            return None if server.ignore_range or not match else int(match[1])

    return Handler


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serves tmp_path/"srv" on 127.0.0.1 with proxies disabled."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "srv"
    root.mkdir()
    (root / "model.pth").write_bytes(CONTENT)
    state = Server(root)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_full_download(server, tmp_path) -> None:
    dest = tmp_path / "out" / "model.pth"
    assert W.download(f"{server.url}/model.pth", dest, progress=False) == SHA
    assert dest.read_bytes() == CONTENT
    assert not dest.with_suffix(".pth.part").exists()
    assert server.requests == [("/model.pth", None)]


def test_progress_bar_goes_to_stderr(server, tmp_path, capsys) -> None:
    W.download(f"{server.url}/model.pth", tmp_path / "m.pth", progress=True)
    assert capsys.readouterr().out == ""


def test_sha256_pin_ok(server, tmp_path) -> None:
    dest = tmp_path / "m.pth"
    assert W.download(f"{server.url}/model.pth", dest, sha256=SHA.upper(), progress=False) == SHA
    assert dest.read_bytes() == CONTENT


def test_sha256_mismatch_leaves_nothing(server, tmp_path) -> None:
    dest = tmp_path / "m.pth"
    with pytest.raises(WeightsError, match=f"has SHA-256 {SHA}, expected 0+; the file was"):
        W.download(f"{server.url}/model.pth", dest, sha256="0" * 64, progress=False)
    assert list(tmp_path.glob("m.pth*")) == []


def test_resume_from_part(server, tmp_path) -> None:
    dest = tmp_path / "m.pth"
    dest.with_suffix(".pth.part").write_bytes(CONTENT[:1_234_567])
    assert W.download(f"{server.url}/model.pth", dest, sha256=SHA, progress=False) == SHA
    assert server.requests == [("/model.pth", "bytes=1234567-")]
    assert dest.read_bytes() == CONTENT


def test_server_ignoring_range_restarts(server, tmp_path) -> None:
    server.ignore_range = True
    dest = tmp_path / "m.pth"
    dest.with_suffix(".pth.part").write_bytes(b"stale bytes from another file")
    assert W.download(f"{server.url}/model.pth", dest, progress=False) == SHA
    assert server.requests == [("/model.pth", "bytes=29-")]
    assert dest.read_bytes() == CONTENT


def test_part_longer_than_file_restarts(server, tmp_path) -> None:
    dest = tmp_path / "m.pth"
    dest.with_suffix(".pth.part").write_bytes(bytes(len(CONTENT) + 10))
    assert W.download(f"{server.url}/model.pth", dest, progress=False) == SHA
    assert [r for _, r in server.requests] == [f"bytes={len(CONTENT) + 10}-", None]


def test_interrupted_download_resumes(server, tmp_path) -> None:
    server.cut_after = 1_000_000
    dest = tmp_path / "m.pth"
    with pytest.raises(WeightsError, match="closed after 1000000 of 3072000 bytes.*resume"):
        W.download(f"{server.url}/model.pth", dest, progress=False)
    assert not dest.exists()
    assert dest.with_suffix(".pth.part").stat().st_size == 1_000_000
    assert W.download(f"{server.url}/model.pth", dest, sha256=SHA, progress=False) == SHA
    assert server.requests[-1] == ("/model.pth", "bytes=1000000-")


def test_http_404(server, tmp_path) -> None:
    dest = tmp_path / "m.pth"
    with pytest.raises(WeightsError, match=r"download of .*/missing.pth failed: HTTP 404"):
        W.download(f"{server.url}/missing.pth", dest, progress=False)
    assert list(tmp_path.glob("m.pth*")) == []


def test_connection_refused(tmp_path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(WeightsError, match="download of .* failed: ") as info:
        W.download(f"http://127.0.0.1:{port}/x.pth", tmp_path / "x.pth", progress=False)
    assert "\n" not in str(info.value)


def test_bad_url(tmp_path) -> None:
    with pytest.raises(WeightsError, match="download of not a url failed"):
        W.download("not a url", tmp_path / "x.pth", progress=False)


# ------------------------------------------------------------------- posecli weights download


runner = CliRunner()
TINY = ModelConfig(stages=2, vgg_widths=(4, 4, 8, 8), cpm_widths=(8, 8), stage1_width=8,
                   stage1_hidden=8, refine_width=8, refine_kernel=3)


def test_cli_download_to_cache(server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("POSECLI_CACHE_DIR", str(tmp_path / "cache"))
    torch.save(PoseNet(TINY).state_dict(), server.root / "body_pose_model.pth")
    digest = W.file_sha256(server.root / "body_pose_model.pth")
    result = runner.invoke(weights_app, ["download", "--url", f"{server.url}/body_pose_model.pth",
                                         "--sha256", digest])
    assert result.exit_code == 0, result.output
    target = tmp_path / "cache" / "weights" / "body_pose_model.pth"
    assert f"path: {target}" in result.stdout
    assert f"sha256: {digest}" in result.stdout
    assert "format: body_pose_model" in result.stdout
    assert W.resolve_weights(None) == target


def test_cli_download_of_non_weights_removes_file(server, tmp_path) -> None:
    dest = tmp_path / "w.pth"
    result = runner.invoke(weights_app, ["download", "--url", f"{server.url}/model.pth",
                                         "--dest", str(dest)])
    assert isinstance(result.exception, WeightsError)
    assert "not usable" in str(result.exception)
    assert not dest.exists()
