"""--engine and its options: every bad choice is one line and exit 2, before any work."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import write_video
from test_cli import assert_one_line_error, run_cli


@pytest.fixture
def clip(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return write_video(tmp_path / "clip.mp4", np.zeros((2, 48, 64, 3), np.uint8))


def _refused(capsys, tmp_path, *args: str, fragment: str) -> None:
    code, _, err = run_cli(["batch", "clip.mp4", "--out-dir", "out", *args], capsys)
    assert_one_line_error(code, err, fragment)
    assert code == 2, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--engine", "spark"], "bad --engine 'spark'"),
    (["--workers", "2"], "--workers: only with --engine ray"),
    (["--ray-address", "auto", "--gpus-per-worker", "1"],
     "--ray-address, --gpus-per-worker: only with --engine ray"),
    (["--engine", "ray", "--workers", "0"], "--workers"),
    (["--engine", "ray", "--gpus-per-worker", "-1"], "--gpus-per-worker"),
])
def test_bad_engine_options(clip, tmp_path, capsys, args, fragment):
    _refused(capsys, tmp_path, *args, fragment=fragment)


def test_ray_engine_without_ray_says_how_to_install(clip, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "posecli.batch.ray_engine", raising=False)
    _refused(capsys, tmp_path, "--engine", "ray", fragment="pip install 'posecli[ray]'")


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1", "auto"])
def test_unreachable_ray_address_fails_at_once(clip, tmp_path, capsys, monkeypatch, address):
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # where auto looks first
    _refused(capsys, tmp_path, "--engine", "ray", "--ray-address", address, "--weights", "demo",
             fragment="cannot reach Ray at")


def test_bad_ray_settings(clip, tmp_path, capsys):
    pytest.importorskip("ray")
    _refused(capsys, tmp_path, "--engine", "ray", "--gpus-per-worker", "1.5",
             fragment="above 1, expected a whole number")
    _refused(capsys, tmp_path, "--engine", "ray", "--ray-address", "host:port",
             "--weights", "demo", fragment="bad --ray-address")
    _refused(capsys, tmp_path, "--engine", "ray", "--device", "cuda", "--weights", "demo",
             fragment="--device cuda with --engine ray needs --gpus-per-worker")
