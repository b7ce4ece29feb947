"""``download`` against a local HTTP server with Range support (127.0.0.1 only)."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from posecli import weights as W
from posecli.cli.weights import weights_app
from posecli.errors import NoWeightsError, UsageError, WeightsError
from posecli.model import ModelConfig, PoseNet
from posecli.weights import registry
from posecli.weights.registry import RemoteModel

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
            try:
                self.wfile.write(body[: server.cut_after])
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading (e.g. it refused the announced size)
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
                                         "--sha256", SHA, "--dest", str(dest)])
    assert isinstance(result.exception, WeightsError)
    assert "not usable" in str(result.exception)
    assert not dest.exists()


# ------------------------------------------------------------------- registry models


def publish(server, monkeypatch, name: str, *, pinned: bool) -> tuple[RemoteModel, Path]:
    """Serve a tiny model as registry model ``name`` (pinned: with its size and digest)."""
    source = server.root / f"{name}.pth"
    torch.save(PoseNet(TINY).state_dict(), source)
    model = replace(registry.MODELS[name], url=f"{server.url}/{source.name}",
                    size=source.stat().st_size if pinned else None,
                    sha256=W.file_sha256(source) if pinned else None)
    monkeypatch.setitem(registry.MODELS, name, model)
    return model, source


def test_published_model_checksums_are_pinned() -> None:
    cmu = registry.MODELS["cmu"]
    assert "/resolve/982e7edaec38759d914a963c48c4726685de7d96/body_pose_model.pth" in cmu.url
    assert (cmu.size, cmu.sha256) == (
        209_267_595, "25a948c16078b0f08e236bda51a385d855ef4c153598947c28c0d47ed94bb746")
    assert registry.DEFAULT_MODEL == "cmu" and cmu.file_name == W.DEFAULT_WEIGHTS_NAME
    assert registry.MODELS["lightweight"].url.endswith("/checkpoint_iter_370000.pth")


def test_default_download_is_verified_and_says_the_licence_once(server, monkeypatch) -> None:
    model, source = publish(server, monkeypatch, "cmu", pinned=True)
    result = runner.invoke(weights_app, ["download"])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("non-commercial research use only") == 1
    target = W.weights_dir() / "body_pose_model.pth"
    assert target.read_bytes() == source.read_bytes()
    assert f"size: {source.stat().st_size:,} bytes" in result.stdout
    assert "checked: size and SHA-256 match" in result.stdout
    assert "licence: OpenPose licence: non-commercial research use only" in result.stdout
    listing = runner.invoke(weights_app, ["list"]).stdout
    line = next(x for x in listing.splitlines() if x.startswith("  body_pose_model.pth"))
    assert "  body_pose_model  verified  " in line  # recorded by the download: no torch needed
    assert "matches the published file" in line and "non-commercial" in line


def test_published_digest_mismatch_deletes_the_file(server, monkeypatch) -> None:
    model, source = publish(server, monkeypatch, "cmu", pinned=True)
    data = bytearray(source.read_bytes())
    data[-100] ^= 0xFF  # same size, other content
    source.write_bytes(bytes(data))
    result = runner.invoke(weights_app, ["download", "cmu"])
    assert isinstance(result.exception, WeightsError)
    assert f"expected {model.sha256}; the file was deleted" in str(result.exception)
    assert list(W.weights_dir().iterdir()) == []


def test_announced_size_mismatch_is_refused_before_the_body(server, monkeypatch) -> None:
    model, _ = publish(server, monkeypatch, "cmu", pinned=True)
    monkeypatch.setitem(registry.MODELS, "cmu", replace(model, size=model.size + 1))
    with pytest.raises(WeightsError, match=rf"is {model.size} bytes on the server, expected "
                                           rf"{model.size + 1}; the partial file was deleted"):
        W.download_model(registry.MODELS["cmu"], progress=False)
    assert list(W.weights_dir().iterdir()) == []


def test_mirror_url_is_checked_against_the_published_digest(server, monkeypatch) -> None:
    model, _ = publish(server, monkeypatch, "cmu", pinned=True)
    (server.root / "mirror.pth").write_bytes(CONTENT)
    result = runner.invoke(weights_app, ["download", "--url", f"{server.url}/mirror.pth"])
    assert isinstance(result.exception, WeightsError)
    assert f"is {len(CONTENT)} bytes on the server, expected {model.size}" in str(
        result.exception)


def test_offline_error_names_the_url_and_the_manual_path(monkeypatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/body_pose_model.pth"
    monkeypatch.setitem(registry.MODELS, "cmu", replace(registry.MODELS["cmu"], url=url))
    result = runner.invoke(weights_app, ["download"])
    message = str(result.exception)
    assert isinstance(result.exception, W.DownloadError) and "\n" not in message
    assert message.startswith(f"download of {url} failed: ")
    assert message.endswith("; without network access, fetch that URL elsewhere and save it "
                            f"as {W.weights_dir() / 'body_pose_model.pth'}")


def test_unpinned_model_is_trusted_on_first_download(server, monkeypatch) -> None:
    model, source = publish(server, monkeypatch, "lightweight", pinned=False)
    result = runner.invoke(weights_app, ["download", "lightweight"])
    assert result.exit_code == 0, result.output
    assert "non-commercial" not in result.stderr  # no licence notice for Apache-2.0
    digest = W.file_sha256(source)
    assert f"sha256: {digest}" in result.stdout
    assert "no published digest exists; this SHA-256 is recorded" in result.stdout
    target = W.weights_dir() / model.file_name
    assert W.resolve_weights("lightweight") == target
    verify = runner.invoke(weights_app, ["verify", "lightweight"])
    assert verify.exit_code == 0, verify.output
    assert "published: same SHA-256 as when it was downloaded" in verify.stdout
    assert "licence: Apache-2.0" in verify.stdout
    torch.save(PoseNet(TINY).state_dict(), target)  # another file in its place
    verify = runner.invoke(weights_app, ["verify", "lightweight"])
    assert isinstance(verify.exception, WeightsError)
    assert f"changed since it was downloaded (SHA-256 {digest} then" in str(verify.exception)


def test_named_models_that_are_not_downloaded() -> None:
    with pytest.raises(NoWeightsError, match="run 'posecli weights download lightweight'"):
        W.resolve_weights("lightweight")
    result = runner.invoke(weights_app, ["download", "openpose-hand"])
    assert isinstance(result.exception, UsageError)
    assert "expected one of cmu, lightweight" in str(result.exception)


def test_verify_a_builtin_model_by_name() -> None:
    """``weights list`` offers demo; ``verify demo`` used to say 'weights file not found'."""
    demo = W.builtin_models()["demo"]
    result = runner.invoke(weights_app, ["verify", "demo"])
    assert result.exit_code == 0, result.output
    assert f"path: {demo}" in result.stdout
    size = demo.stat().st_size
    assert f"size: {size:,} bytes" in result.stdout
    assert "licence: MIT" in result.stdout


def test_no_default_weights_points_at_a_downloaded_model(server, monkeypatch) -> None:
    publish(server, monkeypatch, "lightweight", pinned=False)
    with pytest.raises(NoWeightsError) as info:
        W.resolve_weights(None)
    assert "--weights lightweight" not in str(info.value)
    assert runner.invoke(weights_app, ["download", "lightweight"]).exit_code == 0
    with pytest.raises(NoWeightsError) as info:
        W.resolve_weights(None)  # never picked silently, but named
    assert "; or use a downloaded model: --weights lightweight" in str(info.value)


def test_records_that_are_not_a_regular_file_are_ignored(server, monkeypatch) -> None:
    publish(server, monkeypatch, "lightweight", pinned=False)
    assert runner.invoke(weights_app, ["download", "lightweight"]).exit_code == 0
    records = W.weights_dir() / ".records.json"
    records.unlink()
    os.mkfifo(records)  # a FIFO would block a plain read forever
    result = runner.invoke(weights_app, ["list"])
    assert result.exit_code == 0, result.output
    assert "checkpoint_iter_370000.pth" in result.stdout and "not verified" in result.stdout


def test_unpinned_model_outside_the_cache_is_not_recorded(server, monkeypatch, tmp_path) -> None:
    publish(server, monkeypatch, "lightweight", pinned=False)
    dest = tmp_path / "elsewhere" / "lw.pth"
    result = runner.invoke(weights_app, ["download", "lightweight", "--dest", str(dest)])
    assert result.exit_code == 0, result.output
    assert "keep this SHA-256 to check the file later" in result.stdout
    assert sorted(p.name for p in dest.parent.iterdir()) == ["lw.pth"]  # no record beside it
