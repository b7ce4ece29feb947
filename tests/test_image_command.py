"""``posecli image``: it goes on past bad files, and --render writes annotated images."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import orjson
import pytest
from conftest import save_png
from test_cli import assert_one_line_error, run_cli

from posecli.formats import FrameResult
from posecli.pipeline import estimate, load_model
from posecli.render import StillRenderSink, draw_poses
from posecli.stills import encode_jpeg
from posecli.synth import generate_dataset
from posecli.video import FrameBatch, read_image

SUMMARY = re.compile(r"^posecli: (\d+) images?, (\d+) (?:person|people) in [\d.]+ s "
                     r"\([\d.]+ images/s\)(?:, (\d+) failed)? -> (.+)$")


@pytest.fixture(scope="module")
def figures(tmp_path_factory) -> Path:
    """Two 256x256 synthetic images with figures the demo model finds."""
    root = tmp_path_factory.mktemp("figures")
    generate_dataset(root, images=2, seed=3, width=256, height=256, min_people=2,
                     max_people=2)
    return root / "images"


def _plain(tmp_path: Path, name: str, size=(40, 56)) -> Path:
    return save_png(np.full((*size, 3), 120, np.uint8), tmp_path / name)


def test_bad_files_are_reported_and_the_rest_is_written(tmp_path, tiny_weights, capsys):
    good_a, good_b = _plain(tmp_path, "a.png"), _plain(tmp_path, "b.png", (33, 47))
    (tmp_path / "text.png").write_text("not an image\n")
    inputs = [good_a, tmp_path / "missing.png", good_b, tmp_path / "text.png"]
    out = tmp_path / "poses.json"
    code, _, err = run_cli(["image", *inputs, "--weights", tiny_weights, "--net-height", 64,
                            "--out", out], capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"posecli: failed: {tmp_path / 'missing.png'}: input not found")
    assert lines[1].startswith(f"posecli: failed: {tmp_path / 'text.png'}: not an image file")
    assert len(lines) == 3 and "Traceback" not in err
    match = SUMMARY.match(lines[2])
    assert match and match.group(1) == "2" and match.group(3) == "2"
    assert match.group(4) == str(out)
    doc = orjson.loads(out.read_bytes())
    assert [i["file_name"] for i in doc["images"]] == [str(good_a), str(good_b)]
    assert [i["frame_index"] for i in doc["images"]] == [0, 2]  # position among the inputs
    assert doc["info"]["source"]["failed"] == [str(inputs[1]), str(inputs[3])]


def test_when_no_image_can_be_read_nothing_is_written(tmp_path, capsys):
    (tmp_path / "text.png").write_text("not an image\n")
    out = tmp_path / "poses.json"
    # The weights do not exist either: the model is never loaded, so the images' error shows.
    code, _, err = run_cli(["image", tmp_path / "missing.png", tmp_path / "text.png",
                            "--weights", tmp_path / "nope.pth", "--out", out], capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert [line.split(":")[1].strip() for line in lines[:2]] == ["failed", "failed"]
    assert lines[2] == "posecli: error: no image could be read (2 inputs failed); nothing written"
    assert len(lines) == 3
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "text.png"]


def test_quiet_prints_no_summary_but_still_the_failures(tmp_path, tiny_weights, capsys):
    good = _plain(tmp_path, "a.png")
    code, _, err = run_cli(["image", good, tmp_path / "missing.png", "--weights", tiny_weights,
                            "--net-height", 64, "--out", tmp_path / "o.json", "--quiet"], capsys)
    assert code == 1
    assert err.strip().splitlines() == [
        f"posecli: failed: {tmp_path / 'missing.png'}: input not found: "
        f"{tmp_path / 'missing.png'}"]


def test_summary_goes_to_stderr_and_stdout_stays_json(tmp_path, tiny_weights, capsys):
    code, out, err = run_cli(["image", _plain(tmp_path, "a.png"), "--weights", tiny_weights,
                              "--net-height", 64, "--out", "-"], capsys)
    assert code == 0
    assert len(orjson.loads(out)["images"]) == 1
    match = SUMMARY.match(err.strip())
    assert match and match.group(1) == "1" and match.group(4) == "stdout"


def test_render_draws_the_people_of_the_output(figures, tmp_path, capsys):
    inputs = sorted(figures.glob("*.png"))
    jpeg_input = tmp_path / "second.jpg"
    jpeg_input.write_bytes(encode_jpeg(read_image(inputs[1])))
    renders = tmp_path / "renders"
    out = tmp_path / "poses.json"
    code, _, err = run_cli(["image", inputs[0], jpeg_input, "--weights", "demo",
                            "--net-height", 256, "--out", out, "--render", renders], capsys)
    assert code == 0, err
    assert err.strip().endswith(f"-> {out}, {renders}/")
    assert sorted(p.name for p in renders.iterdir()) == [inputs[0].name, "second.jpg"]

    model = load_model("demo", device="cpu")
    image = read_image(inputs[0])
    people = estimate([image], model, net_height=256)[0]
    assert len(people) >= 1  # the demo model finds the synthetic figures
    rendered = read_image(renders / inputs[0].name)
    assert np.array_equal(rendered, draw_poses(image, people))  # PNG: exact
    assert not np.array_equal(rendered, image)

    jpeg = (renders / "second.jpg").read_bytes()
    assert jpeg[:2] == b"\xff\xd8"  # a JPEG for a JPEG input
    source = read_image(jpeg_input)
    drawn = draw_poses(source, estimate([source], model, net_height=256)[0])
    assert np.abs(read_image(renders / "second.jpg").astype(int) - drawn).mean() < 3


def test_render_never_overwrites_an_input(tmp_path, tiny_weights, capsys):
    good = _plain(tmp_path, "a.png")
    before = good.read_bytes()
    out = tmp_path / "poses.json"
    code, _, err = run_cli(["image", good, "--weights", tiny_weights, "--out", out,
                            "--render", tmp_path], capsys)
    assert code == 2
    assert_one_line_error(code, err, "would overwrite the input", str(good))
    assert good.read_bytes() == before and not out.exists()


def test_render_refuses_two_inputs_with_one_name(tmp_path, tiny_weights, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    a, b = _plain(tmp_path / "x", "same.png"), _plain(tmp_path / "y", "same.png")
    code, _, err = run_cli(["image", a, b, "--weights", tiny_weights, "--out",
                            tmp_path / "o.json", "--render", tmp_path / "r"], capsys)
    assert_one_line_error(code, err, "would both render to")
    assert code == 2 and not (tmp_path / "r").exists()


def test_render_of_other_formats_is_png(tmp_path, tiny_weights, capsys):
    webp_named = _plain(tmp_path, "photo.webp")  # PNG content; the name picks the render's
    code, _, err = run_cli(["image", webp_named, "--weights", tiny_weights, "--net-height", 64,
                            "--out", tmp_path / "o.json", "--render", tmp_path / "r"], capsys)
    assert code == 0, err
    assert (tmp_path / "r" / "photo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_still_render_sink_discard_removes_what_it_wrote(tmp_path):
    dest = tmp_path / "a.png"
    sink = StillRenderSink([dest])
    image = np.full((1, 20, 30, 3), 50, np.uint8)
    sink.add(FrameBatch(image, np.array([0]), np.zeros(1)),
             [FrameResult(0, 0.0, 30, 20, "a.png", [])])
    assert np.array_equal(read_image(dest), image[0])
    sink.discard()
    assert not dest.exists() and list(tmp_path.iterdir()) == []
