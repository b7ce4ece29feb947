"""posecli.synth: procedurally drawn people with exact COCO keypoint labels."""

from __future__ import annotations

import contextlib
import copy
import io
import math
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import orjson
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from posecli import synth
from posecli.errors import UsageError
from posecli.skeleton import COCO17_NAMES
from posecli.synth.clips import sample_clip, walker_position
from posecli.synth.geometry import figure_geometry
from posecli.video import read_batches, read_image

K = {name: i for i, name in enumerate(COCO17_NAMES)}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> synth.SynthSummary:
    """A small dataset with one short clip."""
    out = tmp_path_factory.mktemp("synth")
    calls: list[int] = []
    summary = synth.generate_dataset(out, images=12, seed=7, width=160, height=128,
                                     min_people=1, max_people=4, videos=1, video_frames=7,
                                     fps=12.5, progress=calls.append)
    assert sum(calls) == 12 + 7
    return summary


def _quiet_coco(path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def _standing(x: float, y: float, height: float = 100.0, yaw: float = 0.0) -> synth.Figure:
    return synth.Figure(synth.Body(), synth.Pose(yaw=yaw), synth.Outfit(), height, x, y)


def _grey(width: int = 120, height: int = 120) -> np.ndarray:
    return np.full((height, width, 3), 128, dtype=np.uint8)


def test_dataset_files_load_as_coco(dataset):
    root = dataset.out_dir
    assert dataset.annotations == root / "annotations.json"
    gt = _quiet_coco(dataset.annotations)
    assert len(gt.dataset["images"]) == dataset.images == 12
    assert len(gt.dataset["annotations"]) == dataset.people > 0
    assert gt.dataset["info"]["generator"] == "posecli synth"
    assert gt.dataset["info"]["seed"] == 7
    assert gt.dataset["categories"][0]["keypoints"] == list(COCO17_NAMES)
    assert "licenses" not in gt.dataset
    for index, image in enumerate(gt.dataset["images"]):
        assert image == {"id": index + 1, "file_name": f"images/{index:06d}.png",
                         "width": 160, "height": 128}
    pixels = read_image(root / "images" / "000003.png")
    assert pixels.shape == (128, 160, 3) and pixels.dtype == np.uint8


def test_annotations_are_consistent(dataset):
    doc = orjson.loads(dataset.annotations.read_bytes())
    ids = [a["id"] for a in doc["annotations"]]
    assert ids == list(range(1, len(ids) + 1))
    visibilities = set()
    for ann in doc["annotations"]:
        assert ann["category_id"] == 1 and ann["iscrowd"] == 0
        kp = np.array(ann["keypoints"], dtype=float).reshape(17, 3)
        v = kp[:, 2]
        visibilities |= set(v.tolist())
        assert set(v.tolist()) <= {0, 1, 2}
        assert ann["num_keypoints"] == int((v > 0).sum()) > 0
        labelled = kp[v > 0]
        assert (labelled[:, 0] >= 0).all() and (labelled[:, 0] <= 159).all()
        assert (labelled[:, 1] >= 0).all() and (labelled[:, 1] <= 127).all()
        assert (kp[v == 0, :2] == 0).all()
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 160 and y + h <= 128
        assert 0 < ann["area"] <= w * h
        shown = kp[v == 2]  # visible keypoints lie on the figure's own pixels
        assert ((shown[:, 0] >= x - 1) & (shown[:, 0] <= x + w)).all()
        assert ((shown[:, 1] >= y - 1) & (shown[:, 1] <= y + h)).all()
    assert visibilities == {0, 1, 2}


def test_cocoeval_against_itself_gives_ap_one(dataset):
    gt = _quiet_coco(dataset.annotations)
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"],
                "score": 1.0} for a in gt.dataset["annotations"]]
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(copy.deepcopy(results))
        evaluation = COCOeval(gt, dt, "keypoints")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)  # AP @ OKS .50:.95
    assert evaluation.stats[5] == pytest.approx(1.0)  # AR


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    kwargs = dict(images=3, width=96, height=80, max_people=3)
    a = synth.generate_dataset(tmp_path / "a", seed=11, **kwargs)
    b = synth.generate_dataset(tmp_path / "b", seed=11, **kwargs)
    c = synth.generate_dataset(tmp_path / "c", seed=12, **kwargs)
    assert a.annotations.read_bytes() == b.annotations.read_bytes()
    png = "images/000002.png"
    assert (tmp_path / "a" / png).read_bytes() == (tmp_path / "b" / png).read_bytes()
    assert (tmp_path / "a" / png).read_bytes() != (tmp_path / "c" / png).read_bytes()
    doc_a, doc_c = (orjson.loads(s.annotations.read_bytes()) for s in (a, c))
    assert doc_a["annotations"] != doc_c["annotations"]
    # Image i depends on the seed and i only, not on how many images are made.
    d = synth.generate_dataset(tmp_path / "d", seed=11, **{**kwargs, "images": 1})
    assert (tmp_path / "d/images/000000.png").read_bytes() == (
        tmp_path / "a/images/000000.png").read_bytes()
    assert d.people == sum(1 for x in doc_a["annotations"] if x["image_id"] == 1)


def test_render_people_shapes_and_units():
    scene = synth.render_people(np.random.default_rng(3), 100, 70, 3)
    assert scene.image.shape == (70, 100, 3) and scene.image.dtype == np.uint8
    assert scene.keypoints.shape == (3, 17, 3)
    assert scene.areas.shape == (3,) and scene.bboxes.shape == (3, 4)
    assert scene.id_map.shape == (70, 100)
    assert set(np.unique(scene.id_map)) <= {0, 1, 2, 3}
    for i in range(3):
        assert scene.areas[i] == (scene.id_map == i + 1).sum()
        shown = scene.keypoints[i][scene.keypoints[i, :, 2] == 2]
        cols, rows = np.rint(shown[:, 0]).astype(int), np.rint(shown[:, 1]).astype(int)
        assert (scene.id_map[rows, cols] == i + 1).all()


def test_keypoint_visibility_from_a_hand_made_id_map():
    ids = np.zeros((10, 20), dtype=np.int32)
    ids[:, :10] = 1
    ids[2:5, 3:6] = 2  # figure 2 in front of figure 1 there
    # Inside means 0 <= x <= W - 1 and 0 <= y <= H - 1 (pixel centres at integers).
    xy = np.array([[1.0, 1.0], [4.2, 3.4], [15.0, 5.0], [-0.6, 5.0], [19.4, 9.0],
                   [8.6, 9.0], [19.0, 9.0]])
    assert synth.keypoint_visibility(xy, 1, ids).tolist() == [2, 1, 1, 0, 0, 2, 1]
    assert synth.keypoint_visibility(xy, 2, ids).tolist() == [1, 2, 1, 0, 0, 1, 1]
    labelled = np.array([True, True, True, True, True, False, True])
    hidden = np.array([True, False, False, False, False, False, False])
    assert synth.keypoint_visibility(xy, 1, ids, labelled=labelled,
                                     self_hidden=hidden).tolist() == [1, 1, 1, 0, 0, 0, 1]


def test_a_figure_in_front_hides_the_one_behind():
    back, front = _standing(60, 55), _standing(61, 58)
    scene = synth.render_figures(_grey(), [back, front])
    hidden = [K[n] for n in ("left_shoulder", "right_hip", "left_hip", "nose")]
    assert (scene.keypoints[0, hidden, 2] == 1).all()
    assert (scene.keypoints[1, :, 2] == 2).all()
    assert scene.areas[0] < scene.areas[1]
    # Drawn the other way round, the other figure is hidden.
    swapped = synth.render_figures(_grey(), [front, back])
    assert (swapped.keypoints[1, :, 2] == 2).all()
    assert (swapped.keypoints[0, hidden, 2] == 1).all()


def test_left_and_right_are_the_figures_own():
    facing = synth.render_figures(_grey(), [_standing(60, 55)]).keypoints[0]
    away = synth.render_figures(_grey(), [_standing(60, 55, yaw=math.pi)]).keypoints[0]
    for name in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle", "eye", "ear"):
        left, right = K[f"left_{name}"], K[f"right_{name}"]
        if name != "eye":
            assert facing[left, 0] > facing[right, 0] and away[left, 0] < away[right, 0]
        else:
            assert facing[left, 0] > facing[right, 0]
    assert (facing[:, 2] == 2).all()
    # Seen from behind: no nose or eyes, ears still labelled.
    assert away[[K["nose"], K["left_eye"], K["right_eye"]], 2].tolist() == [0, 0, 0]
    assert away[[K["left_ear"], K["right_ear"]], 2].tolist() == [2, 2]
    # Facing the image's right: the figure's left side is the far one, hidden.
    profile = synth.render_figures(_grey(), [_standing(60, 55, yaw=math.pi / 2)]).keypoints[0]
    assert profile[K["right_shoulder"], 2] == 2 and profile[K["left_shoulder"], 2] == 1
    assert profile[K["right_ear"], 2] == 2 and profile[K["left_ear"], 2] == 1
    assert profile[K["nose"], 0] > profile[K["right_ear"], 0]


def test_joint_limits_keep_elbows_and_knees_one_way():
    pose = synth.Pose(left_arm=synth.Limb(bend=-1.0, abd=4.0),
                      right_leg=synth.Limb(bend=4.0, flex=-2.0)).clipped()
    assert pose.left_arm.bend == 0.0 and pose.left_arm.abd == pytest.approx(175 * math.pi / 180)
    assert pose.right_leg.bend == pytest.approx(145 * math.pi / 180)
    assert pose.right_leg.flex == pytest.approx(-35 * math.pi / 180)
    # A bent elbow brings the wrist forward (toward the camera), a bent knee the ankle back.
    bent = replace(synth.Pose(), left_arm=synth.Limb(bend=math.pi / 2),
                   left_leg=synth.Limb(bend=math.pi / 2))
    geo = figure_geometry(synth.Figure(synth.Body(), bent, synth.Outfit(), 100, 50, 50))
    assert geo.points["left_wrist"][2] < geo.points["left_elbow"][2] - 10
    assert geo.points["left_ankle"][2] > geo.points["left_knee"][2] + 10


def test_every_pose_kind_renders():
    rng = np.random.default_rng(0)
    for kind in synth.POSE_KINDS:
        pose = synth.sample_pose(rng, kind)
        assert pose == pose.clipped()
        figure = synth.Figure(synth.sample_body(rng), pose, synth.sample_outfit(rng), 80, 50, 50)
        scene = synth.render_figures(_grey(100, 100), [figure])
        assert scene.areas[0] > 200
    with pytest.raises(ValueError):
        synth.sample_pose(rng, "dance")


def test_video_frames_and_ground_truth(dataset):
    assert len(dataset.videos) == 1 and dataset.video_frames == 7
    clip, truth = dataset.videos[0], dataset.video_annotations[0]
    assert clip == dataset.out_dir / "videos" / "clip_000.mp4"
    assert truth == dataset.out_dir / "videos" / "clip_000.json"
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name in ("h264", "mpeg4")
        frames = list(container.decode(stream))
    assert len(frames) == 7
    assert (frames[0].width, frames[0].height) == (160, 128)
    gt = _quiet_coco(truth)
    images = gt.dataset["images"]
    assert [i["frame_index"] for i in images] == list(range(7))
    assert [i["timestamp"] for i in images] == [round(i / 12.5, 6) for i in range(7)]
    assert [i["file_name"] for i in images] == [f"clip_000.mp4#{i}" for i in range(7)]
    assert {(i["width"], i["height"]) for i in images} == {(160, 128)}
    assert gt.dataset["info"]["fps"] == 12.5
    decoded = np.concatenate([b.timestamps for b in read_batches(clip, batch_size=4)])
    np.testing.assert_allclose(decoded, [i["timestamp"] for i in images], atol=1e-3)
    assert dataset.video_people == len(gt.dataset["annotations"])


def test_clip_truth_carries_identities(dataset):
    doc = orjson.loads(dataset.video_annotations[0].read_bytes())
    ids = [a["track_id"] for a in doc["annotations"]]
    assert all(isinstance(i, int) and i >= 1 for i in ids)
    assert list(dict.fromkeys(ids)) == list(range(1, len(set(ids)) + 1))  # first appearance
    for image in doc["images"]:
        in_frame = [a["track_id"] for a in doc["annotations"] if a["image_id"] == image["id"]]
        assert len(in_frame) == len(set(in_frame))


def _tracks(seed: int, frames: int, people: int = 2, size: int = 96):
    """Per track id: {frame: (mean x of labelled keypoints, keypoints, id map, figure)}."""
    tracks: dict[int, dict[int, tuple]] = {}
    rng = np.random.default_rng(seed)
    for index, _, scene, ids in synth.clip_scenes(rng, size, size, frames, 10.0, people, people):
        for figure, (area, keypoints) in enumerate(zip(scene.areas, scene.keypoints)):
            labelled = keypoints[:, 2] > 0
            if area > 0 and labelled.any():
                tracks.setdefault(ids[figure], {})[index] = (
                    keypoints[labelled, 0].mean(), keypoints, scene.id_map, figure)
    return tracks


def test_walkers_cross_and_the_nearer_one_hides_the_other():
    tracks = _tracks(seed=3, frames=40)
    assert set(tracks) == {1, 2}
    both = sorted(set(tracks[1]) & set(tracks[2]))
    order = np.sign([tracks[1][k][0] - tracks[2][k][0] for k in both])
    assert (order[:-1] != order[1:]).any()  # their left-to-right order swaps: they cross
    hidden_by_other = 0
    for track in (1, 2):
        for k in both:
            _, keypoints, id_map, figure = tracks[track][k]
            for x, y, v in keypoints:
                if v == 1 and id_map[round(y), round(x)] not in (0, figure + 1):
                    hidden_by_other += 1
    assert hidden_by_other > 0


def test_walkers_leave_and_come_back_as_the_same_person():
    background, light, motions = sample_clip(np.random.default_rng(5), 96, 96, 1, 1)
    [walker] = [m for m in motions if m.kind == "walk"] or [None]
    assert walker is not None and walker.turn_low < 0 and walker.turn_high > 95
    period = 2 * (walker.turn_high - walker.turn_low) / walker.speed
    xs = [walker_position(walker, t)[0] for t in np.linspace(0, period, 200)]
    assert min(xs) == pytest.approx(walker.turn_low, abs=walker.speed * period / 100)
    assert max(xs) == pytest.approx(walker.turn_high, abs=walker.speed * period / 100)
    tracks = _tracks(seed=5, frames=int(period * 10) + 10, people=1)
    [(track_id, seen)] = tracks.items()
    frames = sorted(seen)
    assert track_id == 1 and (np.diff(frames) > 1).any()  # out of sight, then back


def test_odd_video_size_is_rounded_down(tmp_path):
    summary = synth.generate_dataset(tmp_path, images=0, width=65, height=47, videos=1,
                                     video_frames=2, max_people=1)
    with av.open(str(summary.videos[0])) as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (64, 46)
    assert orjson.loads(summary.annotations.read_bytes())["images"] == []


def test_walkers_move_smoothly():
    rng = np.random.default_rng(4)
    motion = synth.sample_motion(rng, 200, 150, 0.5)
    while motion.kind != "walk":
        motion = synth.sample_motion(rng, 200, 150, 0.5)
    xs = [synth.figure_at(motion, t / 10).x for t in range(10)]
    steps = np.diff(xs)
    assert np.allclose(steps, steps[0]) and steps[0] * motion.side > 0
    ankles = [figure_geometry(synth.figure_at(motion, t / 50)).points["left_ankle"][0]
              for t in range(50)]
    assert np.abs(np.diff(ankles)).max() < 0.1 * motion.base.height


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"images": -1}, "images"),
    ({"width": 31}, "width"),
    ({"height": 10}, "height"),
    ({"min_people": 3, "max_people": 2}, "min people"),
    ({"max_people": -1}, "max people"),
    ({"seed": -5}, "seed"),
    ({"videos": -1}, "videos"),
    ({"video_frames": 0}, "video frames"),
    ({"fps": 0.0}, "fps"),
    ({"images": 2.5}, "images"),
])
def test_bad_arguments_raise_usage_error(tmp_path, kwargs, message):
    with pytest.raises(UsageError) as caught:
        synth.generate_dataset(tmp_path / "out", **kwargs)
    text = str(caught.value)
    assert message in text and "\n" not in text
    assert not (tmp_path / "out").exists()


def test_png_round_trip():
    image = np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    data = synth.encode_png(image)
    assert data.startswith(b"\x89PNG")
    with av.open(io.BytesIO(data)) as container:
        decoded = next(container.decode(video=0)).to_ndarray(format="rgb24")
    np.testing.assert_array_equal(decoded, image)


def test_synth_command(tmp_path, capsys):
    from posecli.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["synth", str(tmp_path / "data"), "--images", "3", "--videos", "1",
              "--video-frames", "4", "--width", "96", "--height", "64", "--seed", "5"])
    assert exit_info.value.code == 0
    assert "wrote 3 images" in capsys.readouterr().err
    coco = COCO(str(tmp_path / "data" / "annotations.json"))
    assert len(coco.getImgIds()) == 3
    assert (tmp_path / "data" / "videos" / "clip_000.mp4").is_file()


def test_synth_command_bad_option(tmp_path, capsys):
    from posecli.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["synth", str(tmp_path / "data"), "--min-people", "5", "--max-people", "2"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists()
