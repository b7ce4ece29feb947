"""posecli regression-checks itself: every sample clip against its expected output."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from test_cli import run_cli

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
CLIPS = sorted(SAMPLES.glob("*.mp4"))


def test_samples_exist():
    assert CLIPS, "samples/ holds no clips"
    for clip in CLIPS:
        assert clip.with_suffix(".expected.json").is_file()
        assert clip.with_suffix(".truth.json").is_file()


@pytest.mark.parametrize("clip", CLIPS, ids=[c.stem for c in CLIPS])
def test_sample_matches_expected(clip, tmp_path, capsys):
    actual = tmp_path / f"{clip.stem}.json"
    code, _, err = run_cli(["video", clip, "--weights", "demo", "--net-height", 256,
                            "--precision", "fp32",  # the reference is fp32, on any machine
                            "--quiet", "--out", actual], capsys)
    assert code == 0, err
    code, out, err = run_cli(["compare", clip.with_suffix(".expected.json"), actual], capsys)
    assert code == 0, out + err


def test_demo_model_finds_the_figures_of_the_sample():
    """Against the synthetic ground truth, the demo model finds most figures."""
    from posecli.compare import Tolerances, compare_files

    clip = SAMPLES / "walkers.mp4"
    result = compare_files(clip.with_suffix(".truth.json"), clip.with_suffix(".expected.json"),
                           Tolerances(min_oks=0.0, max_missing=99, max_extra=99))
    summary = result.summary
    assert summary.matched >= 0.75 * summary.people_expected, summary


def test_truth_check_of_the_samples_readme_passes_and_can_fail(tmp_path):
    """samples/README.md's check against the ground truth passes today, and fails for
    an output that lost its people (a check that cannot fail would be no check)."""
    from posecli.compare import Tolerances, compare_files

    clip = SAMPLES / "walkers.mp4"
    tolerances = Tolerances(min_oks=0.3, max_missing=1, max_extra=2, max_diff_frames=0.5)
    truth, expected = clip.with_suffix(".truth.json"), clip.with_suffix(".expected.json")
    assert compare_files(truth, expected, tolerances).passed
    document = orjson.loads(expected.read_bytes())
    document["annotations"] = []
    empty = tmp_path / "empty.json"
    empty.write_bytes(orjson.dumps(document))
    assert not compare_files(truth, empty, tolerances).passed
