"""COCO keypoint evaluation: scoring, flip tables, multi-scale maps, the eval command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest
import torch
from conftest import TINY, save_png
from pycocotools.coco import COCO

from posecli.cli import main
from posecli.errors import InputError, UsageError
from posecli.evaluate import (
    METRICS,
    MultiScaleEstimator,
    evaluate,
    flip_channels,
    identity_geometry,
    mirrored_limbs,
    parse_scales,
    people_to_results,
    score_results,
)
from posecli.model import PoseNet
from posecli.parse import Person
from posecli.parse.resample import map_operators
from posecli.pipeline import Estimator, PoseModel
from posecli.preprocess import check_net_height
from posecli.skeleton import (
    COCO17_FLIP,
    COCO17_NAMES,
    COCO18_NAMES,
    LIMBS,
    NUM_PARTS,
    PAF_CHANNELS,
)
from posecli.train.targets import build_targets

_POSE = np.array([
    (0.0, -0.42), (0.03, -0.45), (-0.03, -0.45), (0.06, -0.43), (-0.06, -0.43),
    (0.12, -0.30), (-0.12, -0.30), (0.18, -0.12), (-0.18, -0.12), (0.20, 0.03),
    (-0.20, 0.03), (0.08, 0.02), (-0.08, 0.02), (0.09, 0.24), (-0.09, 0.24),
    (0.10, 0.46), (-0.10, 0.46),
])
HEIGHT, WIDTH = 96, 128
#: Per image id: background grey level and the people on it (P x 17 x 3).
SCENES = {
    1: (70, np.stack([np.c_[np.array([40.3, 50.2]) + _POSE * 76, np.full(17, 2.0)],
                      np.c_[np.array([92.8, 47.5]) + _POSE * 70, np.full(17, 2.0)]])),
    2: (100, np.stack([np.c_[np.array([61.4, 48.9]) + _POSE * 80, np.full(17, 2.0)]])),
    3: (130, np.zeros((0, 17, 3))),  # nobody
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def ground_truth(people: dict[int, np.ndarray]) -> dict:
    annotations = []
    for image_id, keypoints in people.items():
        for person in keypoints:
            low, high = person[:, :2].min(0), person[:, :2].max(0)
            w, h = high - low
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                "iscrowd": 0, "keypoints": [round(float(v), 2) for v in person.ravel()],
                "num_keypoints": int((person[:, 2] > 0).sum()),
                "bbox": [float(low[0]), float(low[1]), float(w), float(h)],
                "area": float(w * h)})
    return {"images": [{"id": i, "file_name": f"img{i}.png", "height": HEIGHT, "width": WIDTH}
                       for i in people],
            "annotations": annotations,
            "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17_NAMES)}]}


def load_gt(tmp_path: Path, document: dict) -> COCO:
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(document))
    return COCO(str(path))


@pytest.fixture
def scene_files(tmp_path) -> tuple[Path, Path]:
    """Three flat grey images (left quarter brighter, to tell a mirrored input) + truth."""
    folder = tmp_path / "images"
    folder.mkdir()
    for image_id, (grey, _) in SCENES.items():
        image = np.full((HEIGHT, WIDTH, 3), grey, dtype=np.uint8)
        image[:, : WIDTH // 4] += 40
        save_png(image, folder / f"img{image_id}.png")
    annotations = tmp_path / "annotations.json"
    annotations.write_text(json.dumps(ground_truth({i: p for i, (_, p) in SCENES.items()})))
    return annotations, folder


class OracleNet(torch.nn.Module):
    """Stands in for a perfect network: emits the training targets of the known people.

    It recognises the scene by its grey level and a mirrored input by which side is
    brighter; for a mirrored input it sees mirrored people, whose left and right are
    swapped, as a real network would.
    """

    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heatmaps, pafs = [], []
        for image in images:
            padded_h, padded_w = image.shape[1:]
            scale = padded_h / HEIGHT  # net heights here are multiples of 8
            resized_w = round(WIDTH * scale)
            grey = (image[:, padded_h // 2, resized_w // 2].mean() + 0.5) * 256
            image_id = min(SCENES, key=lambda i: abs(SCENES[i][0] - grey))
            left = image[:, :, : resized_w // 8].mean()
            right = image[:, :, resized_w - resized_w // 8: resized_w].mean()
            people = SCENES[image_id][1].copy()
            if right > left:  # mirrored input
                people[..., 0] = WIDTH - 1 - people[..., 0]
                people = people[:, COCO17_FLIP]
            people[..., :2] = (people[..., :2] + 0.5) * scale - 0.5
            targets = build_targets(people, padded_h, padded_w)
            heatmaps.append(torch.from_numpy(targets.heatmaps))
            pafs.append(torch.from_numpy(targets.pafs))
        return torch.stack(heatmaps), torch.stack(pafs)


def oracle_model() -> PoseModel:
    return PoseModel(OracleNet(), None, torch.device("cpu"))


# --------------------------------------------------------------------------- scoring


def test_perfect_results_score_one_and_perturbed_less(tmp_path):
    truth = {i: p for i, (_, p) in SCENES.items()}
    coco = load_gt(tmp_path, ground_truth(truth))
    perfect = [{"image_id": i, "category_id": 1, "keypoints": person.ravel().tolist(),
                "score": 0.9} for i, people in truth.items() for person in people]
    stats = score_results(coco, perfect)
    assert set(stats) == set(METRICS)
    assert stats["AP"] == pytest.approx(1.0) and stats["AR"] == pytest.approx(1.0)
    assert stats["AP50"] == pytest.approx(1.0) and stats["AP75"] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    noisy = []
    for result in perfect:
        keypoints = np.asarray(result["keypoints"]).reshape(17, 3)
        keypoints[:, :2] += rng.normal(0, 4.0, size=(17, 2))
        noisy.append({**result, "keypoints": keypoints.ravel().tolist()})
    worse = score_results(coco, noisy)
    assert worse["AP"] < 0.9
    assert score_results(coco, noisy[:1])["AR"] < stats["AR"]
    assert score_results(coco, perfect) == stats  # the inputs were not modified
    assert score_results(coco, []) == dict.fromkeys(METRICS, 0.0)


def test_results_skip_people_without_coco_keypoints():
    only_neck = np.zeros((NUM_PARTS, 3))
    only_neck[COCO18_NAMES.index("neck")] = (5, 5, 0.9)
    full = np.zeros((NUM_PARTS, 3))
    full[:, :2], full[:, 2] = 10.0, 0.8
    people = [Person(only_neck, 0.9, 0.9, 1), Person(full, 0.8, 14.4, 18)]
    results = people_to_results(people, 7)
    assert len(results) == 1
    assert set(results[0]) == {"image_id", "category_id", "keypoints", "score"}
    assert results[0]["image_id"] == 7 and results[0]["category_id"] == 1
    assert len(results[0]["keypoints"]) == 51


# --------------------------------------------------------------------------- flip and geometry


def test_flip_tables_are_involutions_that_swap_sides():
    heat_order, paf_order, paf_sign = flip_channels()
    assert np.array_equal(heat_order[heat_order], np.arange(19))
    assert np.array_equal(paf_order[paf_order], np.arange(38))
    assert np.array_equal(paf_sign * paf_sign[paf_order], np.ones(38))
    assert heat_order[COCO18_NAMES.index("left_wrist")] == COCO18_NAMES.index("right_wrist")
    assert heat_order[NUM_PARTS] == NUM_PARTS and heat_order[0] == 0
    mirror, direction = mirrored_limbs()
    assert np.array_equal(mirror[mirror], np.arange(len(LIMBS)))
    for k, (a, b) in enumerate(LIMBS):
        names = (COCO18_NAMES[a], COCO18_NAMES[b])
        mirrored = tuple(COCO18_NAMES[p] for p in LIMBS[mirror[k]])
        swap = {"left": "right", "right": "left"}
        expected = tuple("_".join(swap.get(w, w) for w in n.split("_")) for n in names)
        assert mirrored == (expected if direction[k] > 0 else expected[::-1])
        if any("left" in n for n in names):
            assert any("right" in n for n in mirrored)
        # x channels are negated, y channels kept.
        cx, cy = PAF_CHANNELS[k]
        assert paf_sign[cx] == -direction[k] and paf_sign[cy] == direction[k]
        assert paf_order[cx] == PAF_CHANNELS[mirror[k]][0]


def test_identity_geometry_has_identity_operators():
    geometry = identity_geometry(37, 53)
    rows, cols, _, _ = map_operators(geometry, 0.0)
    assert np.allclose(rows, np.eye(37), atol=1e-6) and np.allclose(cols, np.eye(53), atol=1e-6)
    assert (geometry.map_height, geometry.map_width) == (37, 53)


def test_single_scale_maps_path_matches_the_estimator(scene_files):
    """The multi-scale path with one scale and no flip parses like Estimator."""
    image = np.full((HEIGHT, WIDTH, 3), 70, dtype=np.uint8)
    image[:, : WIDTH // 4] += 40
    model = oracle_model()
    direct = Estimator(model, net_height=96)(image[None])[0]
    via_maps = MultiScaleEstimator(model, net_height=96, scales=(1.0,))(image)
    assert len(direct) == len(via_maps) == 2
    for a, b in zip(sorted(direct, key=lambda p: p.keypoints[1, 0]),
                    sorted(via_maps, key=lambda p: p.keypoints[1, 0])):
        assert np.allclose(a.keypoints, b.keypoints, atol=1e-3)
    # And with a real (random) network, the averaged maps are the upsampled outputs.
    torch.manual_seed(0)
    network = PoseNet(TINY).eval()
    real = PoseModel(network, None, torch.device("cpu"))
    heat, paf = MultiScaleEstimator(real, net_height=64, scales=(1.0,)).maps(image)
    assert heat.shape == (19, HEIGHT, WIDTH) and paf.shape == (38, HEIGHT, WIDTH)


def test_flip_averaging_restores_the_original_maps():
    image = np.full((HEIGHT, WIDTH, 3), 100, dtype=np.uint8)
    image[:, : WIDTH // 4] += 40
    model = oracle_model()
    plain_heat, plain_paf = MultiScaleEstimator(model, 96, (1.0,), flip=False).maps(image)
    flip_heat, flip_paf = MultiScaleEstimator(model, 96, (1.0,), flip=True).maps(image)
    # Resized width 128 is a multiple of 8, so the mirrored cell grid is the same grid.
    assert torch.allclose(plain_heat, flip_heat, atol=1e-4)
    assert torch.allclose(plain_paf, flip_paf, atol=1e-4)
    assert plain_paf.abs().max() > 0.9


def test_parse_scales():
    assert parse_scales("1.0, 0.5,1.5") == (1.0, 0.5, 1.5)
    for bad in ("", "1,a", "0", "-1", "nan"):
        with pytest.raises(UsageError, match="bad --scales"):
            parse_scales(bad)
    check_net_height(round(0.5 * 96))


# --------------------------------------------------------------------------- evaluate()


@pytest.mark.parametrize("scales, flip", [((1.0,), False), ((1.0, 1.5), False),
                                          ((1.0,), True), ((1.0, 2.0), True)])
def test_evaluate_an_oracle_scores_about_one(scene_files, scales, flip):
    annotations, images = scene_files
    evaluation = evaluate(oracle_model(), annotations, images, net_height=96, scales=scales,
                          flip=flip)
    assert evaluation.images == 3
    assert len(evaluation.results) == 3
    assert {r["image_id"] for r in evaluation.results} == {1, 2}
    assert evaluation.stats["AP"] > 0.95, evaluation.stats
    assert evaluation.options["net_height"] == 96


class BlankNet(torch.nn.Module):
    """A network that never sees anybody: background everywhere, no PAFs."""

    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = images.shape
        heatmaps = torch.zeros(n, 19, h // 8, w // 8)
        heatmaps[:, NUM_PARTS] = 1.0
        return heatmaps, torch.zeros(n, 38, h // 8, w // 8)


@pytest.mark.parametrize("flip", [False, True])
def test_evaluate_without_detections_reports_zero(scene_files, flip):
    annotations, images = scene_files
    model = PoseModel(BlankNet(), None, torch.device("cpu"))
    evaluation = evaluate(model, annotations, images, net_height=64, max_images=2, flip=flip)
    assert evaluation.images == 2 and evaluation.results == []
    assert evaluation.stats == dict.fromkeys(METRICS, 0.0)


def test_evaluate_input_errors(tmp_path, scene_files):
    annotations, images = scene_files
    model = oracle_model()
    with pytest.raises(InputError, match="annotation file not found"):
        evaluate(model, tmp_path / "none.json", images)
    with pytest.raises(InputError, match="image folder not found"):
        evaluate(model, annotations, tmp_path / "none")
    (images / "img2.png").unlink()
    with pytest.raises(InputError, match="image file not found"):
        evaluate(model, annotations, images)


# --------------------------------------------------------------------------- CLI


def run_cli(args: list, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.fixture
def tiny_checkpoint(tmp_path) -> Path:
    from posecli.weights import save_checkpoint

    torch.manual_seed(0)
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, PoseNet(TINY), {"note": "random"})
    return path


def test_cli_eval_json_and_results(tmp_path, scene_files, tiny_checkpoint, capsys):
    annotations, images = scene_files
    out = tmp_path / "results.json"
    code, stdout, err = run_cli(["eval", "--weights", tiny_checkpoint, "--images", images,
                                 "--annotations", annotations, "--net-height", 64,
                                 "--scales", "1.0,0.5", "--flip", "--out", out, "--json",
                                 "--peak-threshold", 0.05, "--paf-samples", 7], capsys)
    assert code == 0, err
    document = orjson.loads(stdout)
    assert document["options"]["parse"]["peak_threshold"] == 0.05
    assert document["options"]["parse"]["paf_samples"] == 7
    assert set(document["stats"]) == set(METRICS)
    assert document["images"] == 3
    assert document["options"]["scales"] == [1.0, 0.5] and document["options"]["flip"]
    assert document["model"]["format"] == "posecli"
    assert isinstance(orjson.loads(out.read_bytes()), list)


def test_cli_eval_table(scene_files, tiny_checkpoint, capsys):
    annotations, images = scene_files
    code, stdout, err = run_cli(["eval", "--weights", tiny_checkpoint, "--images", images,
                                 "--annotations", annotations, "--net-height", 64], capsys)
    assert code == 0, err
    assert "AP50" in stdout and "APm" in stdout and "3 images" in stdout


@pytest.mark.parametrize("args, fragment", [
    (["--annotations", "{tmp}/missing.json"], "annotation file not found"),
    (["--scales", "1.0,x"], "bad --scales"),
    (["--scales", "0.01"], "bad --net-height"),
    (["--out", "{tmp}/no/such/dir/r.json"], "output folder does not exist"),
])
def test_cli_eval_bad_inputs(tmp_path, scene_files, tiny_checkpoint, capsys, args, fragment):
    annotations, images = scene_files
    base = ["eval", "--weights", tiny_checkpoint, "--images", images,
            "--annotations", annotations, "--net-height", 64]
    code, _, err = run_cli([*base, *(str(a).format(tmp=tmp_path) for a in args)], capsys)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("posecli: error: "), err
    assert fragment in lines[0]
