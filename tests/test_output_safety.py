"""Never lose work (issue 8): outputs over inputs, completion markers, outputs that succeed
or fail together, broken pipes, full disks, stale temporary files and file modes."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
from conftest import TINY, save_png, write_video
from test_cli import assert_one_line_error, run_cli

from posecli import outputs
from posecli.batch import is_complete
from posecli.errors import PoseCliError, UsageError
from posecli.outputs import HOST, check_distinct, temp_files_of
from posecli.readers import read_poses
from posecli.sinks import jsonl_trailer

FAST = ["--net-height", 64]


def video_args(video, weights, *extra):
    return ["video", video, "--weights", weights, *FAST, *extra]


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """600 grey 96x64 frames: a run long enough to be killed or cut off while it writes."""
    frames = np.full((600, 64, 96, 3), 120, dtype=np.uint8)
    return write_video(tmp_path_factory.mktemp("long") / "long.mp4", frames)


def posecli_command(*args) -> list[str]:
    return [sys.executable, "-m", "posecli", *(str(a) for a in args)]


def only_files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


# --------------------------------------------------------------------------- 8.1 same file


@pytest.mark.parametrize("case", ["out is input", "render is input", "out is render",
                                  "out is a hard link of input", "out is a symlink to input"])
def test_video_refuses_an_output_that_is_another_path(case, tmp_path, tiny_weights,
                                                       small_video, capsys):
    video = shutil.copy(small_video, tmp_path / "x.mp4")
    original = Path(video).read_bytes()
    out, render = tmp_path / "poses.json", None
    if case == "out is input":
        out = video
    elif case == "render is input":
        render = video
    elif case == "out is render":
        render = out = tmp_path / "same.json"
    elif case == "out is a hard link of input":
        out = tmp_path / "link.json"
        os.link(video, out)
    else:
        out = tmp_path / "sym.json"
        out.symlink_to(video)
    extra = ["--out", out] + ([] if render is None else ["--render", render])
    code, _, err = run_cli(video_args(video, tiny_weights, *extra), capsys)
    assert code == 2
    assert_one_line_error(code, err, "is the same file as")
    assert Path(video).read_bytes() == original
    assert not (tmp_path / "same.json").exists() and not (tmp_path / "poses.json").exists()


def test_video_refuses_a_csv_sidecar_over_the_render(tmp_path, tiny_weights, small_video,
                                                     capsys):
    code, _, err = run_cli(video_args(small_video, tiny_weights, "--format", "csv", "--out",
                                      tmp_path / "p.csv", "--render",
                                      tmp_path / "p.csv.info.json"), capsys)
    assert code == 2
    assert_one_line_error(code, err, "sidecar")


def test_image_refuses_out_over_an_input_or_the_render_folder(tmp_path, tiny_weights, capsys):
    image = save_png(np.full((64, 96, 3), 100, np.uint8), tmp_path / "a.png")
    original = image.read_bytes()
    for extra in (["--out", image], ["--out", tmp_path / "r", "--render", tmp_path / "r"],
                  ["--out", tmp_path / "r" / "a.png", "--render", tmp_path / "r"]):
        code, _, err = run_cli(["image", image, "--weights", tiny_weights, *FAST, *extra],
                               capsys)
        assert code == 2
        assert_one_line_error(code, err, "is the same file as")
    assert image.read_bytes() == original and only_files(tmp_path) == ["a.png"]


def test_a_device_or_named_pipe_is_written_not_replaced(tmp_path, tiny_weights, small_video,
                                                         capsys):
    """--out /dev/null (here a copy of its device node) or a FIFO: written directly; a rename
    would replace the device itself."""
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    code, _, err = run_cli(video_args(small_video, tiny_weights, "--format", "jsonl", "--out",
                                      fifo), capsys)
    reader.join(60)
    assert code == 0, err
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    *records, trailer = [orjson.loads(line) for line in received[0].splitlines()]
    assert len(records) == 6 and trailer["complete"] is True
    if os.geteuid() == 0:
        null = tmp_path / "null"
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        for fmt in ("coco", "csv"):
            code, _, err = run_cli(video_args(small_video, tiny_weights, "--format", fmt,
                                              "--out", null), capsys)
            assert code == 0, err
            assert stat.S_ISCHR(null.stat().st_mode)
        code, _, err = run_cli(video_args(small_video, tiny_weights, "--out", "-", "--render",
                                          null), capsys)
        assert code == 2
        assert_one_line_error(code, err, "not a regular file")
        assert only_files(tmp_path) == ["null", "pipe"]


def test_eval_refuses_out_over_its_annotations(tmp_path, capsys):
    annotations = tmp_path / "val.json"
    annotations.write_bytes(b'{"images": [], "annotations": []}')
    code, _, err = run_cli(["eval", "--weights", "demo", "--images", tmp_path, "--annotations",
                            annotations, "--out", annotations], capsys)
    assert code == 2
    assert_one_line_error(code, err, "--out", "is the same file as --annotations")
    assert annotations.read_bytes() == b'{"images": [], "annotations": []}'


def test_check_distinct(tmp_path):
    a = tmp_path / "a.mp4"
    a.write_bytes(b"video")
    os.link(a, tmp_path / "hard.json")
    check_distinct([("input", a), ("--out", tmp_path / "a.json"), ("--render", "-"),
                    ("--manifest", None), ("input", a)])  # one name may repeat (inputs)
    for other in (tmp_path / "hard.json", tmp_path / "sub" / ".." / "a.mp4"):
        with pytest.raises(UsageError, match="is the same file as input"):
            check_distinct({"input": a, "--out": other}.items())
    with pytest.raises(UsageError, match="--render .* is the same file as --out"):
        check_distinct([("--out", tmp_path / "new.json"),
                        ("--render", tmp_path / "." / "new.json")])


# --------------------------------------------------------------------------- 8.2 jsonl marker


def jsonl_run(tmp_path, weights, video, capsys, name="poses.jsonl") -> Path:
    out = tmp_path / name
    code, _, err = run_cli(video_args(video, weights, "--format", "jsonl", "--out", out), capsys)
    assert code == 0, err
    return out


def test_jsonl_completion_trailer_is_checked_by_is_complete(tmp_path, tiny_weights,
                                                           small_video, capsys):
    out = jsonl_run(tmp_path, tiny_weights, small_video, capsys)
    *records, trailer = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert trailer["complete"] is True and trailer["frames"] == len(records) == 6
    assert trailer["info"]["model"]["sha256"] and trailer["info"]["complete"] is True
    assert is_complete(out)
    lines = out.read_bytes().splitlines(keepends=True)
    broken = {
        "no trailer": b"".join(lines[:-1]),
        "a record lost": b"".join(lines[:2] + lines[3:]),
        "empty": b"",
        "trailer cut short": b"".join(lines)[:-10],
        "trailer not complete": b"".join(lines[:-1]) + b'{"complete": false, "frames": 6}\n',
        "line after trailer": b"".join(lines) + lines[0],
    }
    for name, data in broken.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(data)
        assert not is_complete(path), name


def test_readers_skip_the_trailer_and_report_an_incomplete_stream(tmp_path, tiny_weights,
                                                                 small_video, capsys):
    out = jsonl_run(tmp_path, tiny_weights, small_video, capsys)
    poses = read_poses(out)
    assert len(poses.frames) == 6 and poses.complete
    assert poses.info is not None and poses.info["frames_processed"] == 6
    truncated = tmp_path / "cut.jsonl"
    truncated.write_bytes(out.read_bytes()[:-30])  # killed while writing the last line
    poses = read_poses(truncated)
    assert len(poses.frames) == 6 and not poses.complete
    assert "no completion line" in poses.incomplete_reason


def test_compare_refuses_an_incomplete_output_unless_asked(tmp_path, tiny_weights,
                                                          small_video, capsys):
    out = jsonl_run(tmp_path, tiny_weights, small_video, capsys)
    truncated = tmp_path / "cut.jsonl"
    truncated.write_bytes(b"".join(out.read_bytes().splitlines(keepends=True)[:4]))
    code, _, err = run_cli(["compare", out, out], capsys)
    assert code == 0, err
    code, _, err = run_cli(["compare", out, truncated], capsys)
    assert code == 2
    assert_one_line_error(code, err, "actual file", "incomplete", "--allow-incomplete")
    code, report, err = run_cli(["compare", truncated, truncated, "--allow-incomplete"],
                                capsys)
    assert code == 0 and report.startswith("PASS: 4 frames compared"), err
    document = tmp_path / "interrupted.json"
    coco = orjson.loads(run_cli(video_args(small_video, tiny_weights, "--out", "-"),
                                capsys)[1])
    coco["info"]["complete"] = False
    document.write_bytes(orjson.dumps(coco))
    code, _, err = run_cli(["compare", document, out], capsys)
    assert code == 2
    assert_one_line_error(code, err, "expected file", "did not complete")


def test_track_writes_the_trailer_and_keeps_incompleteness(tmp_path, tiny_weights,
                                                          small_video, capsys):
    out = jsonl_run(tmp_path, tiny_weights, small_video, capsys)
    tracked = tmp_path / "tracked.jsonl"
    code, _, err = run_cli(["track", out, "--out", tracked], capsys)
    assert code == 0, err
    assert is_complete(tracked)
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(out.read_bytes().splitlines(keepends=True)[:3]))
    code, _, err = run_cli(["track", cut, "--out", tmp_path / "from_cut.jsonl"], capsys)
    assert code == 0, err
    assert not is_complete(tmp_path / "from_cut.jsonl")
    code, _, err = run_cli(["track", cut, "--out", tmp_path / "from_cut.json", "--format",
                            "coco"], capsys)
    assert orjson.loads((tmp_path / "from_cut.json").read_bytes())["info"]["complete"] is False


def test_a_complete_stream_of_no_frames_reads_back(tmp_path):
    path = tmp_path / "none.jsonl"
    path.write_bytes(jsonl_trailer(0, {"tool": "posecli", "complete": True}))
    assert is_complete(path)
    poses = read_poses(path)
    assert poses.frames == [] and poses.complete and poses.layout == "jsonl"


# --------------------------------------------------------------------------- 8.3 together


@pytest.mark.parametrize("failing", ["render", "out"])
def test_outputs_of_one_run_succeed_or_fail_together(failing, tmp_path, tiny_weights,
                                                     small_video, capsys, monkeypatch):
    """--out and --render: when one cannot be moved into place, neither is left."""
    out, render = tmp_path / "a.json", tmp_path / "r.mp4"
    real_replace = os.replace

    def replace(source, dest, *args, **kwargs):
        if Path(dest) == (render if failing == "render" else out):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(source, dest, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    code, _, err = run_cli(video_args(small_video, tiny_weights, "--out", out, "--render",
                                      render), capsys)
    assert code == 1
    assert_one_line_error(code, err, "No space left on device")
    assert only_files(tmp_path) == []


def test_a_failed_render_leaves_no_complete_json(tmp_path, tiny_weights, small_video, capsys,
                                                 monkeypatch):
    """The render fails while it is finished (encoding): the JSON was never renamed."""
    from posecli import render as render_module

    def broken(path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(render_module, "fsync_path", broken)
    out = tmp_path / "a.json"
    code, _, err = run_cli(video_args(small_video, tiny_weights, "--out", out, "--render",
                                      tmp_path / "r.mp4"), capsys)
    assert code == 1 and "No space left on device" in err
    assert only_files(tmp_path) == []


# --------------------------------------------------------------------------- 8.5 broken pipe


@pytest.mark.parametrize("unbuffered", [True, False])
@pytest.mark.parametrize("fmt", ["jsonl", "coco"])
def test_broken_pipe_is_never_a_success(fmt, unbuffered, tmp_path, tiny_weights, long_video):
    """posecli ... --out - | head -c 100 (jsonl: cut while streaming; coco: the reader
    is gone before the document is written). Exit 141, one line, nothing else."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    frames = "0:600" if fmt == "jsonl" else "0:40"
    producer = subprocess.Popen(
        posecli_command(*video_args(long_video, tiny_weights, "--format", fmt, "--out", "-",
                                    "--batch-size", 1, "--frames", frames, "--quiet")),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    if fmt == "jsonl":
        head = subprocess.Popen(["head", "-c", "100"], stdin=producer.stdout,
                                stdout=subprocess.DEVNULL)
        producer.stdout.close()
        head.wait(timeout=120)
    else:
        producer.stdout.close()
    err = producer.stderr.read()
    producer.wait(timeout=120)
    assert producer.returncode == 141, err
    assert err.decode().splitlines() == [
        "posecli: error: output pipe closed before everything was written (broken pipe)"]


def test_short_writes_to_stdout_are_continued(monkeypatch):
    """An unbuffered stdout may take part of a write: the rest is written, not dropped."""
    from posecli.formats import write_json

    class Trickle:
        """A raw stdout that takes at most 7 bytes per write."""

        def __init__(self):
            self.data = bytearray()

        def write(self, chunk):
            self.data += bytes(chunk[:7])
            return min(len(chunk), 7)

        def flush(self):
            pass

    class Stdout:
        buffer = Trickle()

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", Stdout())
    document = {"info": {"complete": True}, "images": list(range(100))}
    write_json(document, "-")
    assert orjson.loads(bytes(Stdout.buffer.data)) == document


def test_a_broken_pipe_caught_by_click_is_not_a_silent_failure(tmp_path, capsys, monkeypatch):
    """Any command (here compare's report) whose stdout is closed: 141 and one line."""
    import posecli.cli.compare as compare_cli

    def closed(*args, **kwargs):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(compare_cli, "print_report", closed)
    path = tmp_path / "none.jsonl"
    path.write_bytes(jsonl_trailer(0, {"tool": "posecli", "complete": True}))
    code, _, err = run_cli(["compare", path, path], capsys)
    assert code == 141
    assert_one_line_error(code, err, "broken pipe")


# --------------------------------------------------------------------------- 8.6 full disk


def fill(disk: Path, name: str, leave: int) -> None:
    """Fill ``disk`` with a file ``name`` until ``leave`` bytes are free."""
    info = os.statvfs(disk)
    (disk / name).write_bytes(b"\0" * max(0, info.f_bavail * info.f_frsize - leave))


@pytest.fixture
def full_disk(tmp_path):
    """A 1 MiB tmpfs filled up but for 12 KiB (needs root; skipped otherwise)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        fill(disk, "filler", 12 * 1024)
        yield disk
    finally:
        busy = subprocess.run(["umount", str(disk)], capture_output=True).returncode
        if busy:  # a file posecli left open: detach the mount anyway, then fail
            subprocess.run(["umount", "-l", str(disk)], check=True)
        assert not busy, "a file on the full disk was left open"


@pytest.mark.parametrize("fmt,free", [("coco", 12 * 1024), ("openpose", 12 * 1024),
                                      ("jsonl", 12 * 1024), ("csv", 0), ("jsonl", 0)])
def test_full_disk_is_one_line_and_leaves_nothing(fmt, free, full_disk, tiny_weights,
                                                  long_video, capsys):
    fill(full_disk, "more", free)
    code, _, err = run_cli(video_args(long_video, tiny_weights, "--format", fmt, "--out",
                                      full_disk / f"o.{fmt}", "--frames", "0:300",
                                      "--quiet"), capsys)
    assert code == 1
    assert_one_line_error(code, err, "No space left on device", f"o.{fmt}")
    assert only_files(full_disk) == ["filler", "more"]


def test_full_disk_for_the_render_leaves_no_json(full_disk, tmp_path, tiny_weights,
                                                 long_video, capsys):
    fill(full_disk, "more", 0)
    out = tmp_path / "a.json"
    code, _, err = run_cli(video_args(long_video, tiny_weights, "--out", out, "--render",
                                      full_disk / "r.mp4", "--frames", "0:200", "--quiet"),
                           capsys)
    assert code == 1
    assert_one_line_error(code, err, "No space left on device", "r.mp4")
    assert not out.exists() and only_files(full_disk) == ["filler", "more"]


def test_full_disk_for_manifests_checkpoints_and_track(full_disk, tmp_path, tiny_weights,
                                                       small_video, capsys):
    from posecli.batch.manifest import BatchReport, write_manifest
    from posecli.model import PoseNet
    from posecli.weights.load import save_checkpoint

    out = jsonl_run(tmp_path, tiny_weights, small_video, capsys)
    fill(full_disk, "more", 0)
    with pytest.raises(PoseCliError, match="No space left on device"):
        write_manifest(full_disk / "manifest.json", BatchReport(), {})
    with pytest.raises(PoseCliError, match="No space left on device"):
        save_checkpoint(full_disk / "last.pt", PoseNet(TINY), {})
    code, _, err = run_cli(["track", out, "--out", full_disk / "t.jsonl"], capsys)
    assert_one_line_error(code, err, "No space left on device")
    assert only_files(full_disk) == ["filler", "more"]


@pytest.mark.parametrize("point", ["first write", "third write", "fsync", "rename"])
def test_write_failures_anywhere_are_one_line(point, tmp_path, tiny_weights, small_video,
                                              capsys, monkeypatch):
    """Without root: the writes fail (ENOSPC) at several points of a JSON-lines run."""
    calls = []
    real_write_all, real_replace = outputs.write_all, os.replace
    failing_call = {"first write": 1, "third write": 3}.get(point)

    def no_space(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    def write_all(fd, data):
        calls.append(fd)
        if len(calls) == failing_call:
            no_space()
        real_write_all(fd, data)

    monkeypatch.setattr(outputs, "write_all", write_all)
    if point == "fsync":
        monkeypatch.setattr(os, "fsync", no_space)
    if point == "rename":
        monkeypatch.setattr(os, "replace", lambda *a: no_space()
                            if Path(a[1]).name == "o.jsonl" else real_replace(*a))
    code, _, err = run_cli(video_args(small_video, tiny_weights, "--format", "jsonl",
                                      "--batch-size", 2, "--out", tmp_path / "o.jsonl"),
                           capsys)
    assert code == 1
    assert_one_line_error(code, err, "No space left on device", "o.jsonl")
    assert only_files(tmp_path) == []


# --------------------------------------------------------------------------- 8.7 stale temps


def test_a_killed_runs_temporary_file_is_removed_by_the_next_run(tmp_path, tiny_weights,
                                                                 long_video, capsys):
    out = tmp_path / "o.jsonl"
    process = subprocess.Popen(posecli_command(*video_args(
        long_video, tiny_weights, "--format", "jsonl", "--batch-size", 1, "--out", out,
        "--quiet")), stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not any(path.stat().st_size for path in tmp_path.glob(".o.jsonl.*.part")):
        assert process.poll() is None and time.monotonic() < deadline, "no temporary file"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    left = temp_files_of(out)
    assert len(left) == 1 and f".{HOST}.{process.pid}." in left[0].name
    keep = [tmp_path / f".o.jsonl.{HOST}.{os.getpid()}.0123abcd.part",  # a live process
            tmp_path / ".o.jsonl.otherhost.1.0123abcd.part",  # another host, recent
            tmp_path / f".other.jsonl.{HOST}.{process.pid}.0123abcd.part",  # another output
            tmp_path / ".o.jsonl.k2j3h4.part",  # another naming (an older posecli)
            tmp_path / "notes.txt"]
    for path in keep:
        path.write_bytes(b"x")
    code, _, err = run_cli(video_args(long_video, tiny_weights, "--format", "jsonl",
                                      "--frames", "0:4", "--out", out), capsys)
    assert code == 0, err
    assert not left[0].exists()
    assert all(path.exists() for path in keep)
    old = tmp_path / ".o.jsonl.otherhost.1.fedcba98.part"
    old.write_bytes(b"x")
    os.utime(old, (time.time() - 2 * outputs.FOREIGN_STALE_S,) * 2)
    # Another host's file is stale once untouched for FOREIGN_STALE_S, not before.
    assert outputs.is_stale(old) and not outputs.is_stale(keep[1])


# --------------------------------------------------------------------------- 8.13 modes


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_outputs_get_the_mode_the_umask_gives(umask, tmp_path, tiny_weights, small_video,
                                              capsys):
    from posecli.batch.manifest import BatchReport, write_manifest
    from posecli.model import PoseNet
    from posecli.weights.load import save_checkpoint
    from posecli.weights.records import record_download

    expected = 0o666 & ~umask
    written = []
    for fmt in ("coco", "jsonl", "csv"):
        out = tmp_path / f"o.{fmt}"
        extra = ["--render", tmp_path / "r.mp4"] if fmt == "coco" else []
        code, _, err = run_cli(video_args(small_video, tiny_weights, "--format", fmt, "--out",
                                          out, *extra), capsys)
        assert code == 0, err
        written.append(out)
    written += [tmp_path / "r.mp4", tmp_path / "o.csv.info.json"]
    (tmp_path / "in").mkdir()
    image = save_png(np.full((64, 96, 3), 100, np.uint8), tmp_path / "in" / "a.png")
    code, _, err = run_cli(["image", image, "--weights", tiny_weights, *FAST, "--out",
                            tmp_path / "i.json", "--render", tmp_path / "stills"], capsys)
    assert code == 0, err
    written += [tmp_path / "i.json", tmp_path / "stills" / "a.png"]
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"weights")
    record_download(weights, "https://example.org/w.pth", "0" * 64, pinned=False)
    written.append(tmp_path / ".records.json")
    write_manifest(tmp_path / "manifest.json", BatchReport(), {})
    save_checkpoint(tmp_path / "c.pt", PoseNet(TINY), {})
    written += [tmp_path / "manifest.json", tmp_path / "c.pt"]
    assert {path.name: oct(mode(path)) for path in written} == \
        {path.name: oct(expected) for path in written}
