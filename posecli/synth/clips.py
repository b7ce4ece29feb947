"""Clips: figures that move, with identities, encoded to MP4 with per-frame ground truth.

A clip's people are walkers and figures acting in place (waving, jumping jacks,
turning, raising their arms). Walkers pace back and forth across the whole
frame: they leave it at one side, turn round out of sight (for 0.2 to 6 s) and
come back in; walkers going opposite ways at different depths cross paths, the
nearer one hiding the farther one (figures are drawn back to front by where
their feet are). With two or more people, the first two walkers start on
opposite sides heading toward each other, so every such clip has a crossing.
Each figure keeps one identity for the whole clip: its ``track_id`` in the
ground truth (numbered from 1 in order of first appearance), the same when it
comes back into view.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from ..errors import PoseCliError
from ..formats import coco_categories, write_atomic
from .background import render_background
from .figure import DEG, Figure, limb_deg, sample_body, sample_outfit, sample_pose
from .geometry import figure_extent
from .raster import Scene, render_figures
from .scenes import json_bytes, place, random_light, scene_annotations

#: What clip figures do, and how often (walkers pace across the frame).
MOTION_KINDS = ("walk", "walk", "walk", "wave", "jacks", "turn", "raise")
#: How long a walker stays out of sight when it turns round, in seconds (uniform).
OFF_SCREEN_SECONDS = (0.2, 6.0)


def video_codec() -> str:
    """'libx264' when this FFmpeg can encode H.264 with it, else 'mpeg4'."""
    for name in ("libx264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
        except Exception:  # PyAV raises different errors across versions
            continue
        return name
    raise PoseCliError("this FFmpeg build has neither a libx264 nor an mpeg4 encoder")


@dataclass(frozen=True)
class Motion:
    """How one clip figure moves: its base figure and the parameters of its motion.

    Walkers (``kind`` "walk") start at ``base.x`` heading ``side`` (-1 left, 1
    right) at ``speed`` pixels per second and turn round at the pelvis positions
    ``turn_low`` and ``turn_high`` (pixels, both out of sight).
    """

    base: Figure
    kind: str
    phase: float
    rate: float  # cycles per second (turns per second for "turn")
    side: int  # walking direction (-1, 1) or the waving arm (0 left, 1 right)
    swing: float = 0.0  # walking: leg swing amplitude in degrees
    speed: float = 0.0  # walking: pixels per second
    turn_low: float = 0.0
    turn_high: float = 0.0


def sample_motion(rng: np.random.Generator, width: int, height: int, slot: float,
                  heading: int | None = None) -> Motion:
    """A random clip figure at horizontal ``slot`` (0..1 of the width); ``heading``
    (-1 or 1) makes it a walker going that way, starting on the side it comes from."""
    kind = "walk" if heading is not None else str(rng.choice(MOTION_KINDS))
    body, outfit = sample_body(rng), sample_outfit(rng)
    size = height * math.exp(rng.uniform(math.log(0.25), math.log(0.8)))
    pose = sample_pose(rng, "stand")
    turn_low = turn_high = 0.0
    if kind == "walk":
        direction = float(heading if heading is not None else rng.choice([-1.0, 1.0]))
        pose = replace(pose, yaw=direction * rng.uniform(65, 115) * DEG, roll=0.0,
                       head_yaw=rng.uniform(-20, 20) * DEG)
        swing = rng.uniform(18, 30)
        leg = 0.49 * size
        rate = rng.uniform(0.8, 1.1)
        speed = 4 * leg * math.sin(swing * DEG) * rng.uniform(0.9, 1.1) * rate  # px per second
        start = rng.uniform(0.1, 0.5) * width
        x = start if direction > 0 else width - start
        side, phase = int(direction), rng.uniform(0, 2 * math.pi)
        # Out of sight when the pelvis is this far past an edge (any pose of the stride).
        x_extent = figure_extent(Figure(body, pose, outfit, size, 0.0, 0.0))[::2]
        reach = max(abs(v) for v in x_extent) + 0.2 * size
        off_low, off_high = (speed * rng.uniform(*OFF_SCREEN_SECONDS) / 2 for _ in range(2))
        turn_low, turn_high = -reach - off_low, width - 1 + reach + off_high
    else:
        pose = replace(pose, yaw=rng.uniform(-35, 35) * DEG, roll=rng.normal(0, 3) * DEG)
        x, side, phase = slot * width, int(rng.integers(2)), rng.uniform(0, 2 * math.pi)
        rate = {"wave": rng.uniform(1.0, 2.0), "jacks": rng.uniform(0.7, 1.2),
                "turn": rng.uniform(-0.25, 0.25), "raise": rng.uniform(0.3, 0.6)}[kind]
        swing = speed = 0.0
    figure = Figure(body, pose, outfit, size, 0.0, 0.0)
    x0, y0, x1, y1 = figure_extent(figure)
    y = place(rng, rng.uniform(0.4, 0.6) * height, y0 - 0.05 * size, y1, height)
    x = float(min(max(x, 1.0 - x0), width - 2.0 - x1)) if kind != "walk" else float(x)
    return Motion(replace(figure, x=x, y=y), kind, phase, rate, side, swing, speed,
                  turn_low, turn_high)


def walker_position(motion: Motion, time: float) -> tuple[float, int]:
    """A walker's pelvis x (pixels) and heading (-1, 1) at ``time`` seconds: back and
    forth between ``turn_low`` and ``turn_high``."""
    length = motion.turn_high - motion.turn_low
    if motion.side > 0:
        start = motion.base.x - motion.turn_low
    else:
        start = length + motion.turn_high - motion.base.x
    along = (start + motion.speed * time) % (2 * length)
    if along < length:
        return motion.turn_low + along, 1
    return motion.turn_high - (along - length), -1


def figure_at(motion: Motion, time: float) -> Figure:
    """The motion's figure at ``time`` seconds."""
    base = motion.base
    pose = base.pose
    phase = motion.phase + 2 * math.pi * motion.rate * time
    x, y = base.x, base.y
    if motion.kind == "walk":
        swing = motion.swing
        limbs = {}
        for name, offset in (("left", 0.0), ("right", math.pi)):
            ph = phase + offset
            limbs[f"{name}_leg"] = limb_deg(swing * math.sin(ph), 3, 5,
                                            5 + 40 * max(0.0, math.cos(ph)) ** 1.5)
            limbs[f"{name}_arm"] = limb_deg(-0.9 * swing * math.sin(ph), 8, 10,
                                            18 + 12 * max(0.0, -math.sin(ph)))
        x, heading = walker_position(motion, time)
        pose = replace(pose, yaw=heading * abs(pose.yaw), **limbs)
        y -= 0.012 * base.height * math.cos(2 * phase)
    elif motion.kind == "wave":
        arm = limb_deg(0, 100, 85, 75 + 30 * math.sin(phase))
        pose = replace(pose, **{("left_arm", "right_arm")[motion.side]: arm})
    elif motion.kind == "jacks":
        s = 0.5 - 0.5 * math.cos(phase)
        arm = limb_deg(0, 12 + 150 * s, 20, 10)
        leg = limb_deg(0, 2 + 22 * s, 10, 6 * (1 - s))
        pose = replace(pose, left_arm=arm, right_arm=arm, left_leg=leg, right_leg=leg)
        y -= 0.03 * base.height * math.sin(math.pi * s)
    elif motion.kind == "turn":
        pose = replace(pose, yaw=pose.yaw + 2 * math.pi * motion.rate * time)
    elif motion.kind == "raise":
        s = 0.5 - 0.5 * math.cos(phase)
        arm = limb_deg(10 * s, 15 + 145 * s, 30 * s, 20 * (1 - s))
        pose = replace(pose, left_arm=arm, right_arm=arm)
    return replace(base, pose=pose.clipped(), x=x, y=y)


def sample_clip(rng: np.random.Generator, width: int, height: int, min_people: int,
                max_people: int) -> tuple[np.ndarray, np.ndarray, list[Motion]]:
    """A clip's backdrop (H x W x 3 float RGB), light direction and motions, back to front."""
    n_people = int(rng.integers(min_people, max_people + 1))
    background = render_background(rng, width, height)
    light = random_light(rng)
    slots = (rng.permutation(n_people) + rng.uniform(0.25, 0.75, n_people)) / max(n_people, 1)
    headings = [1, -1] if n_people >= 2 else []  # two walkers toward each other: a crossing
    motions = [sample_motion(rng, width, height, float(slot),
                             headings[i] if i < len(headings) else None)
               for i, slot in enumerate(slots)]
    # Back to front by where the feet are at the start; the order is kept throughout.
    motions.sort(key=lambda m: m.base.y + figure_extent(replace(m.base, x=0.0, y=0.0))[3])
    return background, light, motions


def clip_scenes(rng: np.random.Generator, width: int, height: int, frames: int, fps: float,
                min_people: int = 1,
                max_people: int = 4) -> Iterator[tuple[int, float, Scene, list[int | None]]]:
    """Render a random clip frame by frame: (frame index, time in seconds, scene, track
    ids). ``track ids[i]`` is figure i's identity (figures in drawing order), numbered
    from 1 in order of first appearance; None until the figure has shown."""
    background, light, motions = sample_clip(rng, width, height, min_people, max_people)
    ids: list[int | None] = [None] * len(motions)
    for index in range(frames):
        time = index / fps
        scene = render_figures(background, [figure_at(m, time) for m in motions],
                               light=light, noise=1.5, rng=rng)
        for figure, (area, keypoints) in enumerate(zip(scene.areas, scene.keypoints)):
            if ids[figure] is None and area > 0 and (keypoints[:, 2] > 0).any():
                ids[figure] = max((i for i in ids if i is not None), default=0) + 1
        yield index, time, scene, list(ids)


def write_clip(path: Path, rng: np.random.Generator, codec: str, width: int, height: int,
               frames: int, fps: float, min_people: int, max_people: int,
               info: dict[str, Any], progress: Callable[[int], None] | None) -> int:
    """Render and encode one clip and its per-frame COCO ground truth (with track ids)
    beside it (``.json``); returns the number of annotations."""
    rate = Fraction(fps).limit_denominator(1001)
    tmp = path.with_name(f".{path.name}.part")
    doc_images: list[dict[str, Any]] = []
    doc_annotations: list[dict[str, Any]] = []
    try:
        with av.open(str(tmp), "w", format="mp4") as container:
            stream = container.add_stream(codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            if codec == "libx264":
                stream.options = {"crf": "18", "preset": "veryfast"}
            else:
                stream.bit_rate = max(int(width * height * float(rate) * 1.2), 200_000)
            for index, time, scene, ids in clip_scenes(rng, width, height, frames, fps,
                                                       min_people, max_people):
                frame = av.VideoFrame.from_ndarray(scene.image, format="rgb24")
                frame.pts = index
                frame.time_base = 1 / rate
                for packet in stream.encode(frame):
                    container.mux(packet)
                doc_images.append({"id": index + 1, "frame_index": index,
                                   "timestamp": round(time, 6), "width": width,
                                   "height": height, "file_name": f"{path.name}#{index}"})
                doc_annotations += scene_annotations(scene, index + 1, len(doc_annotations) + 1,
                                                     ids)
                if progress is not None:
                    progress(1)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, (OSError, av.error.FFmpegError)):
            raise PoseCliError(f"cannot write video {path}: {exc}") from None
        raise
    write_atomic(path.with_suffix(".json"), json_bytes({
        "info": {**info, "fps": fps, "frames": frames, "codec": codec, "width": width,
                 "height": height},
        "categories": coco_categories(),
        "images": doc_images,
        "annotations": doc_annotations,
    }))
    return len(doc_annotations)
