"""Training: the dataset and its augmentation, the loop, checkpoints, resume, DDP, CLI."""

from __future__ import annotations

import csv
import json
import multiprocessing
import shutil
import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, save_png

from posecli.cli import main
from posecli.errors import InputError, UsageError, WeightsError
from posecli.model import ModelConfig, PoseNet
from posecli.pipeline import Estimator, PoseModel
from posecli.skeleton import COCO17_NAMES, COCO17_SKELETON
from posecli.train import Augment, CocoPoseDataset, TrainOptions, load_vgg, loop, pose_loss, train
from posecli.train.loop import VGG_LAYERS, options_from_checkpoint
from posecli.weights import build_model, load_weights

# A standing person, COCO-17 order, in units of the person's height around the box centre.
_POSE = np.array([
    (0.0, -0.42), (0.03, -0.45), (-0.03, -0.45), (0.06, -0.43), (-0.06, -0.43),
    (0.12, -0.30), (-0.12, -0.30), (0.18, -0.12), (-0.18, -0.12), (0.20, 0.03),
    (-0.20, 0.03), (0.08, 0.02), (-0.08, 0.02), (0.09, 0.24), (-0.09, 0.24),
    (0.10, 0.46), (-0.10, 0.46),
])


def draw_person(image: np.ndarray, keypoints: np.ndarray, thickness: float) -> None:
    """Draw the COCO skeleton of one person (17 x 3) as coloured thick segments."""
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    for k, (i, j) in enumerate(COCO17_SKELETON):
        (ax, ay, va), (bx, by, vb) = keypoints[i - 1], keypoints[j - 1]
        if va <= 0 or vb <= 0:
            continue
        dx, dy = bx - ax, by - ay
        t = np.clip(((xs - ax) * dx + (ys - ay) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
        near = (xs - ax - t * dx) ** 2 + (ys - ay - t * dy) ** 2 <= thickness**2
        image[near] = ((40 + 53 * k) % 256, (200 - 37 * k) % 256, (90 + 71 * k) % 256)


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE of a binary H x W mask (column-major runs, zeros first)."""
    flat = np.asarray(mask, dtype=np.uint8).ravel(order="F")
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return {"counts": np.diff(np.concatenate([[0], changes])).tolist(),
            "size": list(mask.shape)}


def person_keypoints(centre: tuple[float, float], height: float) -> np.ndarray:
    keypoints = np.ones((17, 3)) * 2
    keypoints[:, :2] = np.asarray(centre) + _POSE * height
    return keypoints


def write_dataset(root: Path, images: int = 4, size: tuple[int, int] = (96, 128),
                  seed: int = 0, extras: bool = False) -> tuple[Path, Path]:
    """A tiny COCO keypoints dataset of stick figures: (annotation file, image folder).

    Each image holds one or two people. With ``extras`` the first image also gets a
    crowd region and an unlabelled person (num_keypoints 0).
    """
    rng = np.random.default_rng(seed)
    height, width = size
    folder = root / "images"
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"images": [], "annotations": [], "categories": [{
        "id": 1, "name": "person", "supercategory": "person", "keypoints": list(COCO17_NAMES),
        "skeleton": [list(s) for s in COCO17_SKELETON]}]}
    for image_id in range(1, images + 1):
        image = np.full((height, width, 3), 60, dtype=np.uint8)
        image += rng.integers(0, 20, size=image.shape, dtype=np.uint8)
        people = int(rng.integers(1, 3))
        for p in range(people):
            tall = rng.uniform(0.55, 0.8) * height
            centre = ((p + 0.5) * width / people + rng.uniform(-4, 4),
                      height / 2 + rng.uniform(-4, 4))
            keypoints = person_keypoints(centre, tall)
            if rng.random() < 0.5:
                keypoints[int(rng.integers(0, 17)), :] = 0  # one absent keypoint
            draw_person(image, keypoints, max(2.0, tall / 30))
            low = keypoints[keypoints[:, 2] > 0, :2].min(0) - 4
            high = keypoints[keypoints[:, 2] > 0, :2].max(0) + 4
            box = [float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1])]
            doc["annotations"].append({
                "id": len(doc["annotations"]) + 1, "image_id": image_id, "category_id": 1,
                "keypoints": [round(float(v), 2) for v in keypoints.ravel()],
                "num_keypoints": int((keypoints[:, 2] > 0).sum()), "iscrowd": 0,
                "bbox": box, "area": box[2] * box[3],
                "segmentation": [[box[0], box[1], box[0] + box[2], box[1],
                                  box[0] + box[2], box[1] + box[3], box[0], box[1] + box[3]]],
            })
        if extras and image_id == 1:
            crowd = np.zeros((height, width), dtype=bool)
            crowd[:16, :16] = True
            doc["annotations"].append({
                "id": len(doc["annotations"]) + 1, "image_id": image_id, "category_id": 1,
                "keypoints": [0] * 51, "num_keypoints": 0, "iscrowd": 1,
                "bbox": [0, 0, 16, 16], "area": 256.0,
                "segmentation": uncompressed_rle(crowd),
            })
            doc["annotations"].append({
                "id": len(doc["annotations"]) + 1, "image_id": image_id, "category_id": 1,
                "keypoints": [0] * 51, "num_keypoints": 0, "iscrowd": 0,
                "bbox": [width - 20, height - 30, 20, 30], "area": 600.0,
                "segmentation": [],
            })
        name = f"img_{image_id:03d}.png"
        save_png(image, folder / name)
        doc["images"].append({"id": image_id, "file_name": name, "height": height,
                              "width": width})
    annotations = root / "annotations.json"
    annotations.write_text(json.dumps(doc))
    return annotations, folder


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def dataset_files(tmp_path_factory) -> tuple[Path, Path]:
    return write_dataset(tmp_path_factory.mktemp("data"), images=6, extras=True)


def tiny_options(dataset_files, out: Path, **changes) -> TrainOptions:
    annotations, images = dataset_files
    options = TrainOptions(annotations=str(annotations), images=str(images), out=str(out),
                           model=TINY, steps=4, batch_size=2, lr=1e-3, crop=64,
                           num_workers=0, checkpoint_every=1000, seed=3)
    return replace(options, **changes)


# --------------------------------------------------------------------------- dataset


def test_dataset_shapes_and_determinism(dataset_files):
    annotations, images = dataset_files
    dataset = CocoPoseDataset(annotations, images, crop=64, seed=5)
    assert len(dataset) == 6
    sample = dataset[1]
    assert sample["image"].shape == (3, 64, 64) and sample["image"].dtype == torch.float32
    assert sample["heatmaps"].shape == (19, 8, 8)
    assert sample["pafs"].shape == (38, 8, 8)
    assert sample["mask"].shape == (1, 8, 8)
    assert float(sample["image"].min()) >= -0.5 and float(sample["image"].max()) < 0.5
    again = CocoPoseDataset(annotations, images, crop=64, seed=5)[1]
    for key in sample:
        assert torch.equal(sample[key], again[key]), key
    dataset.set_epoch(1)
    other = dataset[1]
    assert not torch.equal(sample["image"], other["image"])
    dataset.set_epoch(0)
    assert torch.equal(dataset[1]["image"], sample["image"])


def test_dataset_image_and_keypoints_share_one_affine(tmp_path):
    """A single bright dot at the nose lands where the nose heatmap peaks, flipped or not."""
    height, width = 120, 100
    image = np.full((height, width, 3), 150, dtype=np.uint8)  # brighter than the grey pad
    nose = (61.0, 47.0)
    image[46:49, 60:63] = 255
    (tmp_path / "images").mkdir()
    save_png(image, tmp_path / "images" / "a.png")
    keypoints = person_keypoints((50, 60), 80)
    keypoints[0, :2] = nose
    doc = {"images": [{"id": 1, "file_name": "a.png", "height": height, "width": width}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                            "keypoints": keypoints.ravel().tolist(), "num_keypoints": 17,
                            "bbox": [20, 20, 60, 80], "area": 4800}],
           "categories": [{"id": 1, "name": "person"}]}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    for flip in (0.0, 1.0):
        augment = Augment(scale_range=(1.0, 1.0), max_rotation=30, flip_prob=flip,
                          target_height=0.75, center_jitter=5)
        dataset = CocoPoseDataset(tmp_path / "a.json", tmp_path / "images", crop=96,
                                  augment=augment, seed=2)
        for epoch in range(3):
            dataset.set_epoch(epoch)
            matrix, flipped = dataset.affine(0)
            assert flipped == bool(flip)
            expected = matrix[:, :2] @ np.array(nose) + matrix[:, 2]
            sample = dataset[0]
            bgr = sample["image"].numpy()
            bright = np.argwhere(bgr.sum(0) == bgr.sum(0).max())
            y, x = bright.mean(0)
            assert abs(x - expected[0]) <= 0.75 and abs(y - expected[1]) <= 0.75
            cell = np.unravel_index(sample["heatmaps"][0].numpy().argmax(), (12, 12))
            assert cell == tuple(int(round((v + 0.5) / 8 - 0.5)) for v in expected[::-1])
            # A flip moves the person's left wrist into the right-wrist channel.
            left_wrist = matrix[:, :2] @ keypoints[9, :2] + matrix[:, 2]
            channel = 4 if flipped else 7  # COCO-18 right_wrist / left_wrist
            peak = np.unravel_index(sample["heatmaps"][channel].numpy().argmax(), (12, 12))
            assert peak == tuple(int(round((v + 0.5) / 8 - 0.5)) for v in left_wrist[::-1])


def test_dataset_mask_covers_crowd_and_unlabelled(dataset_files):
    """Cells over the crowd RLE (16 x 16 at the origin) or the unlabelled person's box
    (the bottom-right 20 x 30 pixels) are masked; cells well away from both are not."""
    annotations, images = dataset_files
    height, width = 96, 128
    boxes = [(0, 0, 16, 16), (width - 20, height - 30, width, height)]  # x0, y0, x1, y1
    dataset = CocoPoseDataset(annotations, images, crop=96,
                              augment=Augment(target_height=0.4, max_rotation=30))
    offsets = np.stack(np.meshgrid(np.arange(8), np.arange(8)), -1).reshape(-1, 2)
    checked = {0.0: 0, 1.0: 0}
    for epoch in range(6):
        dataset.set_epoch(epoch)
        matrix, _ = dataset.affine(0)
        inverse = np.linalg.inv(matrix[:, :2])
        mask = dataset[0]["mask"][0].numpy()
        for i, j in np.ndindex(*mask.shape):
            pixels = (np.array([8 * j, 8 * i]) + offsets - matrix[:, 2]) @ inverse.T
            # Signed distance of each source point into each box (> 0: inside).
            depth = np.stack([np.minimum.reduce([pixels[:, 0] - x0 + 0.5, x1 - 0.5 - pixels[:, 0],
                                                 pixels[:, 1] - y0 + 0.5, y1 - 0.5 - pixels[:, 1]])
                              for x0, y0, x1, y1 in boxes])
            if (depth > 1.0).any():
                assert mask[i, j] == 0.0, (epoch, i, j)
                checked[0.0] += 1
            elif (depth < -1.5).all():
                assert mask[i, j] == 1.0, (epoch, i, j)
                checked[1.0] += 1
    assert checked[0.0] >= 5 and checked[1.0] >= 100, checked
    dataset.set_epoch(0)
    assert all(dataset[i]["mask"].min() == 1.0 for i in range(1, len(dataset)))


def test_dataset_errors(tmp_path, dataset_files):
    annotations, images = dataset_files
    with pytest.raises(InputError, match="annotation file not found"):
        CocoPoseDataset(tmp_path / "nope.json", images)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        CocoPoseDataset(tmp_path / "bad.json", images)
    with pytest.raises(InputError, match="image folder not found"):
        CocoPoseDataset(annotations, tmp_path / "missing")
    with pytest.raises(InputError, match="image file not found"):
        CocoPoseDataset(annotations, tmp_path)
    with pytest.raises(UsageError, match="crop"):
        CocoPoseDataset(annotations, images, crop=60)


# --------------------------------------------------------------------------- loss and init


def test_pose_loss_is_masked_sum_over_stages_per_image():
    torch.manual_seed(0)
    outputs = [(torch.randn(2, 38, 3, 4), torch.randn(2, 19, 3, 4)) for _ in range(3)]
    pafs, heatmaps = torch.randn(2, 38, 3, 4), torch.rand(2, 19, 3, 4)
    mask = torch.ones(2, 1, 3, 4)
    mask[0, 0, 1] = 0
    total, per_stage, per_branch = pose_loss(outputs, pafs, heatmaps, mask)
    expected = [(((p - pafs) ** 2 * mask).sum() + ((h - heatmaps) ** 2 * mask).sum()) / 2
                for p, h in outputs]
    assert torch.allclose(per_stage, torch.stack(expected))
    assert torch.allclose(total, per_stage.sum())
    assert torch.allclose(per_branch.sum(), total)


def test_vgg_init_folds_imagenet_normalisation(tmp_path):
    torch.manual_seed(0)
    model = PoseNet(TINY)
    widths = {"conv1": 4, "conv2": 4, "conv3": 8, "conv4": 8}
    state, cin = {}, 3
    for index, name in VGG_LAYERS:
        cout = widths[name[:5]]
        state[f"features.{index}.weight"] = torch.randn(cout, cin, 3, 3)
        state[f"features.{index}.bias"] = torch.randn(cout)
        cin = cout
    state["classifier.0.weight"] = torch.randn(2, 2)  # ignored
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    load_vgg(model, path)
    assert torch.equal(model.conv3_4.weight, state["features.16.weight"])
    # conv1_1 on PoseNet input == torchvision's conv1_1 on ImageNet-normalised RGB.
    rgb = torch.randint(0, 256, (1, 3, 12, 12)).float()
    ours = model.conv1_1(rgb.flip(1) / 256 - 0.5)
    mean = torch.tensor([0.485, 0.456, 0.406])[None, :, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[None, :, None, None]
    theirs = torch.nn.functional.conv2d((rgb / 255 - mean) / std, state["features.0.weight"],
                                        state["features.0.bias"], padding=1)
    assert torch.allclose(ours[..., 1:-1, 1:-1], theirs[..., 1:-1, 1:-1], atol=1e-4)
    state["features.21.weight"] = torch.randn(9, 8, 3, 3)
    torch.save(state, path)
    with pytest.raises(WeightsError, match="features.21.weight is 9x8x3x3"):
        load_vgg(PoseNet(TINY), path)
    with pytest.raises(WeightsError, match="not found"):
        load_vgg(PoseNet(TINY), tmp_path / "none.pth")


# --------------------------------------------------------------------------- the loop


def _losses(options: TrainOptions) -> tuple[list[float], object]:
    losses: list[float] = []
    result = train(options, progress=False, on_step=lambda step, loss: losses.append(loss))
    return losses, result


def test_training_lowers_the_loss(tmp_path, dataset_files):
    options = tiny_options(dataset_files, tmp_path / "run", steps=30, batch_size=3,
                           lr=3e-3, checkpoint_every=10, warmup_steps=3, clip_grad=50.0)
    losses, result = _losses(options)
    assert len(losses) == 30 and result.step == 30
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:3])
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == ["ckpt_000010.pt", "ckpt_000020.pt", "ckpt_000030.pt", "last.pt",
                     "train_log.csv"]
    run = tmp_path / "run"  # last.pt is the newest checkpoint, written once
    assert (run / "last.pt").read_bytes() == (run / "ckpt_000030.pt").read_bytes()
    with open(tmp_path / "run" / "train_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, 31))
    assert set(rows[0]) >= {"epoch", "lr", "loss", "loss_stage1", "loss_stage2",
                            "images_per_s", "seconds"}
    assert float(rows[0]["lr"]) == pytest.approx(3e-3 / 3)
    assert float(rows[-1]["loss"]) == pytest.approx(losses[-1], rel=1e-5)
    assert int(rows[-1]["epoch"]) == 14  # 6 images / batch 3: 2 steps per epoch, from 0

    # The checkpoint is a posecli weights file the inference pipeline runs.
    loaded = load_weights(tmp_path / "run" / "last.pt")
    assert loaded.format == "posecli" and loaded.config == TINY
    assert loaded.metadata["training"]["batch_size"] == 3
    assert loaded.metadata["step"] == 30
    model = PoseModel(build_model(loaded), loaded, torch.device("cpu"))
    people = Estimator(model, net_height=64)(np.zeros((1, 64, 80, 3), dtype=np.uint8))
    assert len(people) == 1


def test_resume_continues_exactly(tmp_path, dataset_files):
    # 6 images, batch 4: one step per epoch, so the resume crosses epochs too.
    options = tiny_options(dataset_files, tmp_path / "a", steps=6, batch_size=4,
                           checkpoint_every=3, optimizer="sgd", warmup_steps=4,
                           schedule="cosine")
    full, _ = _losses(options)
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "a" / "ckpt_000003.pt", tmp_path / "b" / "ckpt_000003.pt")
    resumed_options = replace(options_from_checkpoint(tmp_path / "b" / "ckpt_000003.pt"),
                              out=str(tmp_path / "b"))
    assert replace(resumed_options, resume=None, out=options.out) == options
    resumed, result = _losses(resumed_options)
    assert result.step == 6
    assert resumed == pytest.approx(full[3:], abs=1e-6, rel=1e-6)
    final_a = load_weights(tmp_path / "a" / "last.pt").state_dict
    final_b = load_weights(tmp_path / "b" / "last.pt").state_dict
    for key in final_a:
        assert torch.allclose(final_a[key], final_b[key], atol=1e-6), key


def test_resume_mid_epoch_with_workers(tmp_path, dataset_files):
    # 6 images, batch 2: three steps per epoch; resume at step 2 (inside epoch 0).
    options = tiny_options(dataset_files, tmp_path / "a", steps=4, checkpoint_every=2,
                           num_workers=2)
    full, _ = _losses(options)
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "a" / "ckpt_000002.pt", tmp_path / "b" / "start.pt")
    resumed, _ = _losses(replace(options, out=str(tmp_path / "b"),
                                 resume=str(tmp_path / "b" / "start.pt")))
    assert resumed == pytest.approx(full[2:], abs=1e-6, rel=1e-6)
    assert not multiprocessing.active_children()  # every epoch's workers were shut down


def test_fresh_run_refuses_existing_run_and_other_model(tmp_path, dataset_files):
    options = tiny_options(dataset_files, tmp_path / "run", steps=1)
    train(options, progress=False)
    with pytest.raises(UsageError, match="already holds a training run"):
        train(options, progress=False)
    bigger = replace(options, model=replace(TINY, stages=3),
                     resume=str(tmp_path / "run" / "last.pt"))
    with pytest.raises(UsageError, match="another size"):
        train(bigger, progress=False)
    with pytest.raises(UsageError, match="fewer than"):
        train(replace(options, out=str(tmp_path / "x"), batch_size=7), progress=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_world_size_one_matches_single_process(tmp_path, dataset_files, monkeypatch):
    options = tiny_options(dataset_files, tmp_path / "single", steps=2)
    single, _ = _losses(options)
    for name, value in {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0",
                        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}.items():
        monkeypatch.setenv(name, value)
    wrapped = []

    class SpyDDP(loop.DistributedDataParallel):
        def __init__(self, module, **kwargs):
            super().__init__(module, **kwargs)
            wrapped.append(torch.distributed.get_backend())

    monkeypatch.setattr(loop, "DistributedDataParallel", SpyDDP)
    ddp, result = _losses(replace(options, out=str(tmp_path / "ddp"), device="cpu"))
    assert wrapped == ["gloo"]
    assert not torch.distributed.is_initialized()
    assert ddp == pytest.approx(single, rel=1e-6, abs=1e-6)
    assert load_weights(result.checkpoint).metadata["world_size"] == 1


# --------------------------------------------------------------------------- CLI


def run_cli(args: list, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def _tiny_cli_model() -> list[str]:
    return ["--stages", "2", "--vgg-widths", "4,4,8,8", "--cpm-widths", "8,8",
            "--stage1-width", "8", "--stage1-hidden", "8", "--refine-width", "8",
            "--refine-kernel", "3"]


def test_cli_train_and_resume(tmp_path, dataset_files, capsys):
    annotations, images = dataset_files
    out = tmp_path / "run"
    code, _, err = run_cli(["train", "--images", images, "--annotations", annotations,
                            "--out", out, "--steps", 3, "--batch-size", 2, "--crop", 64,
                            "--num-workers", 0, "--checkpoint-every", 2, "--lr", 1e-3,
                            *_tiny_cli_model()], capsys)
    assert code == 0, err
    assert "trained to step 3" in err
    assert (out / "ckpt_000002.pt").is_file() and (out / "last.pt").is_file()
    # Resume to step 5 with only --steps: everything else comes from the checkpoint.
    code, _, err = run_cli(["train", "--resume", out / "last.pt", "--steps", 5], capsys)
    assert code == 0, err
    loaded = load_weights(out / "last.pt")
    assert loaded.metadata["step"] == 5 and loaded.config == TINY
    assert loaded.metadata["training"]["lr"] == pytest.approx(1e-3)
    with open(out / "train_log.csv", newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("args, fragment", [
    (["--annotations", "{tmp}/missing.json"], "annotation file not found"),
    (["--optimizer", "rmsprop"], "--optimizer must be one of"),
    (["--vgg-widths", "4,4"], "bad --vgg-widths"),
    (["--width-mult", "0"], "bad --width-mult 0.0"),
    (["--crop", "60"], "--crop must be a multiple of 8"),
    (["--vgg", "{tmp}/none.pth"], "VGG weights file not found"),
])
def test_cli_train_bad_inputs(tmp_path, dataset_files, capsys, args, fragment):
    annotations, images = dataset_files
    base = ["--images", images, "--annotations", annotations, "--out", tmp_path / "run",
            "--steps", 1, "--crop", 64, "--num-workers", 0, "--batch-size", 2]
    # The last occurrence of an option wins, so ``args`` override the valid values.
    argv = ["train", *_tiny_cli_model(), *base, *(a.format(tmp=tmp_path) for a in args)]
    code, _, err = run_cli(argv, capsys)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("posecli: error: "), err
    assert fragment in lines[0]


def test_width_mult_scales_every_default_width():
    """--width-mult 0.25 with 3 stages is the demo model's layout."""
    from posecli.cli.train import model_config

    config = model_config(3, 0.25, None, None, None, None, None, 3)
    assert config.vgg_widths == (16, 32, 64, 128) and config.cpm_widths == (64, 32)
    assert (config.stage1_width, config.stage1_hidden, config.refine_width) == (32, 128, 32)
    assert model_config(6, 1.0, None, None, None, None, None, 7) == ModelConfig()


def test_cli_train_needs_inputs(capsys):
    code, _, err = run_cli(["train", "--steps", 1], capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        "posecli: error: train needs --images, --annotations, --out (or --resume CHECKPOINT)"]


def test_amp_bf16_autocast_runs_on_cpu(tmp_path, dataset_files):
    losses, result = _losses(tiny_options(dataset_files, tmp_path / "amp", steps=2, amp=True))
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert load_weights(result.checkpoint).metadata["training"]["amp"] is True


def test_train_and_eval_on_synth_dataset(tmp_path, capsys):
    synth = pytest.importorskip("posecli.synth")
    synth.generate_dataset(tmp_path / "synth", images=3, seed=0, width=96, height=96)
    root = tmp_path / "synth"
    code, _, err = run_cli(["train", "--images", root, "--annotations",
                            root / "annotations.json", "--out", tmp_path / "run", "--steps", 2,
                            "--batch-size", 1, "--crop", 64, "--num-workers", 0, "-q",
                            *_tiny_cli_model()], capsys)
    assert code == 0, err
    code, out, err = run_cli(["eval", "--weights", tmp_path / "run" / "last.pt", "--images",
                              root, "--annotations", root / "annotations.json",
                              "--net-height", 96, "--json", "-q"], capsys)
    assert code == 0, err
    assert json.loads(out)["images"] == 3


def test_resume_with_a_new_learning_rate_uses_it(tmp_path, dataset_files):
    """Options given on resume override the checkpoint's, the learning rate included."""
    options = tiny_options(dataset_files, tmp_path / "a", steps=2, checkpoint_every=2)
    _losses(options)
    resumed = replace(options_from_checkpoint(tmp_path / "a" / "last.pt"), steps=4, lr=5e-5)
    _losses(resumed)
    with open(tmp_path / "a" / "train_log.csv", newline="") as f:
        rates = [float(row["lr"]) for row in csv.DictReader(f)]
    assert rates == pytest.approx([1e-3, 1e-3, 5e-5, 5e-5])
