"""``video`` says what it did in one line on stderr, unless --quiet; stdout stays data."""

from __future__ import annotations

import re

import orjson
from test_cli import run_cli

SUMMARY = re.compile(r"^posecli: (\d+) frames?, (\d+) (?:person|people) in ([\d.]+) s "
                     r"\(([\d.]+) fps\) -> (.+)$")


def test_video_prints_one_summary_line(tmp_path, tiny_weights, small_video, capsys):
    out = tmp_path / "poses.json"
    code, stdout, err = run_cli(["video", small_video, "--weights", tiny_weights,
                                 "--net-height", 64, "--out", out], capsys)
    assert code == 0 and stdout == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    match = SUMMARY.match(lines[0])
    assert match, lines[0]
    frames, people, seconds, fps, written = match.groups()
    doc = orjson.loads(out.read_bytes())
    assert int(frames) == len(doc["images"]) == 6
    assert int(people) == len(doc["annotations"])
    assert float(seconds) >= 0 and float(fps) > 0
    assert written == str(out)


def test_video_summary_names_the_render_and_stdout(tmp_path, tiny_weights, small_video,
                                                   capsys):
    render = tmp_path / "annotated.mp4"
    code, stdout, err = run_cli(["video", small_video, "--weights", tiny_weights,
                                 "--net-height", 64, "--frames", "0:2", "--out", "-",
                                 "--render", render], capsys)
    assert code == 0, err
    assert len(orjson.loads(stdout)["images"]) == 2  # stdout holds the JSON alone
    match = SUMMARY.match(err.strip())
    assert match and match.group(1) == "2"
    assert match.group(5) == f"stdout, {render}"


def test_video_quiet_prints_nothing(tmp_path, tiny_weights, small_video, capsys):
    code, stdout, err = run_cli(["video", small_video, "--weights", tiny_weights,
                                 "--net-height", 64, "--out", tmp_path / "o.json", "-q"],
                                capsys)
    assert (code, stdout, err) == (0, "", "")


def test_synth_and_batch_quiet_print_no_summary(tmp_path, tiny_weights, small_video, capsys):
    code, _, err = run_cli(["synth", tmp_path / "s", "--images", 1, "--width", 64,
                            "--height", 64, "-q"], capsys)
    assert (code, err) == (0, "")
    code, _, err = run_cli(["synth", tmp_path / "t", "--images", 1, "--width", 64,
                            "--height", 64], capsys)
    assert code == 0 and err.startswith("posecli: wrote 1 image")
    code, _, err = run_cli(["batch", small_video, "--out-dir", tmp_path / "b", "--weights",
                            tiny_weights, "--net-height", 64, "-q"], capsys)
    assert (code, err) == (0, "")
