"""--engine ray on a local Ray instance: the local engine's bytes, manifest, summary and
exit codes; --skip-existing across engines; a killed worker's video redone elsewhere;
Ctrl-C on the driver."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
from conftest import write_video
from test_cli import assert_one_line_error, run_cli

ray = pytest.importorskip("ray")

ARGS = ["--net-height", 64]


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray for the module (2 CPUs, no dashboard): its GCS address."""
    on_sigterm = signal.getsignal(signal.SIGTERM)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    signal.signal(signal.SIGTERM, on_sigterm)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _clip(path: Path, frames: int) -> Path:
    """A clip of ``frames`` 48x64 frames with a moving bright square."""
    images = np.full((frames, 48, 64, 3), 90, dtype=np.uint8)
    for i, image in enumerate(images):
        image[8:24, (3 * i) % 40:(3 * i) % 40 + 16] = 230
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, images)


@pytest.fixture
def videos(tmp_path, monkeypatch):
    """Three clips (2, 5 and 9 frames) in a tree, and a file that is not a video."""
    monkeypatch.chdir(tmp_path)
    for name, frames in (("a/one", 2), ("a/b/two", 5), ("three", 9)):
        _clip(tmp_path / "videos" / f"{name}.mp4", frames)
    (tmp_path / "videos" / "broken.mp4").write_text("not a video\n")
    return tmp_path


def _outputs(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.json*")
            if not p.name.startswith("manifest")}


def _statuses(folder: Path) -> dict[str, str]:
    manifest = orjson.loads((folder / "manifest.json").read_bytes())
    return {Path(f["input"]).name: f["status"] for f in manifest["files"]}


def _summary(err: str) -> str:
    """The summary line without its frame rate."""
    line = next(line for line in err.splitlines() if re.match(r"posecli: \d+ files?:", line))
    return re.sub(r", [\d.]+ fps$", "", line)


def test_same_bytes_manifest_summary_and_exit_code_as_local(videos, ray_address, tiny_weights,
                                                           capsys):
    common = ["--weights", tiny_weights, "--track", *ARGS]  # tracking runs in the workers too
    code_local, _, err_local = run_cli(["batch", "videos", "--out-dir", "local", *common], capsys)
    code_ray, _, err_ray = run_cli(["batch", "videos", "--out-dir", "ray", "--engine", "ray",
                                    "--workers", 2, *common], capsys)
    assert code_local == code_ray == 1  # broken.mp4 fails alone
    assert "posecli: failed: videos/broken.mp4: not a video file" in err_ray
    assert _summary(err_ray) == _summary(err_local)
    assert _summary(err_ray).startswith("posecli: 4 files: 3 ok, 0 skipped, 1 failed; 16 frames")
    local, on_ray = _outputs(videos / "local"), _outputs(videos / "ray")
    assert sorted(local) == ["videos/a/b/two.json", "videos/a/one.json", "videos/three.json"]
    assert on_ray == local  # byte-identical
    for name in local:
        code, out, err = run_cli(["compare", videos / "local" / name, videos / "ray" / name],
                                 capsys)
        assert code == 0, out + err
    manifests = [orjson.loads((videos / d / "manifest.json").read_bytes())
                 for d in ("local", "ray")]
    assert manifests[0]["engine"] == {"name": "local"}
    assert manifests[1]["engine"] == {"name": "ray", "workers": 2, "gpus_per_worker": 0.0}
    for key in ("model", "options", "version"):
        assert manifests[0][key] == manifests[1][key]
    assert ([(f["status"], f["frames"], f["people"]) for f in manifests[0]["files"]]
            == [(f["status"], f["frames"], f["people"]) for f in manifests[1]["files"]])

    # --skip-existing across engines: Ray skips what the local engine made, and back
    code, _, err = run_cli(["batch", "videos", "--out-dir", "local", "--engine", "ray",
                            "--skip-existing", *common], capsys)
    assert code == 1 and "3 skipped, 1 failed" in err
    (videos / "ray" / "videos" / "three.json").unlink()
    code, _, err = run_cli(["batch", "videos", "--out-dir", "ray", "--engine", "ray",
                            "--skip-existing", *common], capsys)
    assert _statuses(videos / "ray") == {"one.mp4": "skipped", "two.mp4": "skipped",
                                         "three.mp4": "ok", "broken.mp4": "failed"}
    assert _outputs(videos / "ray") == local
    code, _, err = run_cli(["batch", "videos", "--out-dir", "ray", "--skip-existing", *common],
                           capsys)
    assert "3 skipped, 1 failed" in err


def _holder_of(prefix: str, folder: Path) -> tuple[int, Path] | None:
    """(pid, file) of a process with a file ``folder/prefix*`` open (Linux /proc)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith(str(folder / prefix)):
                    return int(pid), Path(target)
        except OSError:
            continue
    return None


def test_a_killed_worker_has_its_video_redone_on_another(tmp_path, monkeypatch, ray_address,
                                                         tiny_weights, capsys):
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to find the worker holding the output")
    monkeypatch.chdir(tmp_path)
    _clip(tmp_path / "videos" / "long.mp4", 40)
    _clip(tmp_path / "videos" / "short.mp4", 3)
    common = ["--weights", tiny_weights, "--format", "jsonl", "--batch-size", 1, *ARGS]
    killed: list[int] = []

    def kill_the_worker_mid_video() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = _holder_of(".long.jsonl.", tmp_path / "ray" / "videos")
            if found and found[1].exists() and len(found[1].read_bytes().splitlines()) >= 3:
                os.kill(found[0], signal.SIGKILL)
                killed.append(found[0])
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_the_worker_mid_video, daemon=True)
    killer.start()
    code, _, err = run_cli(["batch", "videos", "--out-dir", "ray", "--engine", "ray",
                            "--workers", 2, *common], capsys)
    killer.join(5)
    assert killed, f"no worker was seen writing long.jsonl: {err}"
    assert code == 0, err
    assert ("a Ray worker died while processing videos/long.mp4 (attempt 1 of 3); "
            "retrying it on another worker") in err
    assert _statuses(tmp_path / "ray") == {"long.mp4": "ok", "short.mp4": "ok"}
    assert not list((tmp_path / "ray").rglob("*.part"))  # the dead worker's file is gone

    code, _, err = run_cli(["batch", "videos", "--out-dir", "local", *common], capsys)
    assert code == 0, err
    assert _outputs(tmp_path / "ray") == _outputs(tmp_path / "local")
    # 40 frame lines, then the completion line
    assert len((tmp_path / "ray" / "videos" / "long.jsonl").read_bytes().splitlines()) == 41


def test_ctrl_c_stops_workers_keeps_finished_outputs_and_writes_the_manifest(
        tmp_path, ray_address, tiny_weights):
    _clip(tmp_path / "videos" / "a_quick.mp4", 2)
    for name in ("b_long", "c_long", "d_long", "e_long"):
        _clip(tmp_path / "videos" / f"{name}.mp4", 60)
    out = tmp_path / "out"
    driver = subprocess.Popen(
        [sys.executable, "-m", "posecli", "batch", "videos", "--out-dir", "out", "--engine",
         "ray", "--ray-address", ray_address, "--workers", "2", "--weights", str(tiny_weights),
         "--format", "jsonl", "--batch-size", "1", "--net-height", "64", "--quiet"],
        cwd=tmp_path, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and driver.poll() is None:
            quick_done = (out / "videos" / "a_quick.jsonl").exists()
            if quick_done and any(p.stat().st_size for p in (out / "videos").glob(".*.part")):
                break
            time.sleep(0.05)
        assert driver.poll() is None, driver.stderr.read()
        driver.send_signal(signal.SIGINT)
        _, err = driver.communicate(timeout=60)
    finally:
        driver.kill()
    assert driver.returncode == 130, err
    assert err.strip().splitlines()[-1] == (
        "posecli: error: interrupted: finished outputs kept, those in progress discarded")
    statuses = _statuses(out)
    assert statuses["a_quick.mp4"] == "ok"
    assert "interrupted" in statuses.values() and "not_started" in statuses.values()
    assert set(statuses.values()) <= {"ok", "interrupted", "not_started"}
    finished = sorted(p.name for p in (out / "videos").glob("*.jsonl"))
    assert finished == sorted(f"{Path(name).stem}.jsonl" for name, status in statuses.items()
                              if status == "ok")
    assert not list(out.rglob("*.part"))  # stopped workers discarded their outputs


def test_a_worker_that_cannot_fit_is_refused_before_work(videos, ray_address, tiny_weights,
                                                         capsys):
    code, _, err = run_cli(["batch", "videos", "--out-dir", "out", "--engine", "ray",
                            "--gpus-per-worker", "1", "--weights", tiny_weights], capsys)
    assert_one_line_error(code, err, "cannot hold one worker")
    assert code == 2
    assert not (videos / "out").exists()


def test_frames_provenance_and_manifest_updates_on_ray(videos, ray_address, tiny_weights,
                                                       capsys):
    common = ["--weights", tiny_weights, "--frames", "3:", *ARGS]
    code, _, err = run_cli(["batch", "videos", "--out-dir", "ray", "--engine", "ray",
                            "--workers", 2, *common], capsys)
    assert code == 1, err  # broken.mp4
    # the workers got --frames: one.mp4 (2 frames) has none selected, and says so
    assert ("posecli: warning: --frames 3: selects none of the 2 frames of videos/a/one.mp4: "
            "its output holds no frames") in err.splitlines()
    manifest = orjson.loads((videos / "ray" / "manifest.json").read_bytes())
    assert {Path(f["input"]).name: f["frames"] for f in manifest["files"]} == {
        "one.mp4": 0, "two.mp4": 2, "three.mp4": 6, "broken.mp4": 0}
    assert manifest["options"]["frames"] == "3:"
    code, _, err = run_cli(["batch", "videos", "--out-dir", "local", *common], capsys)
    assert _outputs(videos / "ray") == _outputs(videos / "local")  # same bytes, same records
    info = orjson.loads((videos / "ray" / "videos" / "three.json").read_bytes())["info"]
    assert info["source"]["size"] == (videos / "videos" / "three.mp4").stat().st_size

    # a partial rerun on Ray redoes only what does not match, and updates the manifest
    _clip(videos / "videos" / "a" / "b" / "two.mp4", 7)
    code, _, err = run_cli(["batch", "videos/a", "--out-dir", "ray", "--engine", "ray",
                            "--skip-existing", *common], capsys)
    assert code == 0 and "2 files: 1 ok, 1 skipped" in err, err
    entries = {Path(f["input"]).name: f
               for f in orjson.loads((videos / "ray" / "manifest.json").read_bytes())["files"]}
    assert sorted(entries) == ["broken.mp4", "one.mp4", "three.mp4", "two.mp4"]
    assert entries["two.mp4"]["frames"] == 4
    assert entries["two.mp4"]["redo_reason"].startswith("input changed")
    assert entries["one.mp4"]["status"] == "skipped" and entries["broken.mp4"]["status"] == "failed"
