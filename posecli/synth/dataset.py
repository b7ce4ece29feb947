"""Writing a dataset: still images with COCO keypoint labels, and clips with ground truth."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import PoseCliError, UsageError
from ..formats import coco_categories, write_atomic
from ..stills import encode_png
from .clips import video_codec, write_clip
from .scenes import json_bytes, render_people, scene_annotations

GENERATOR = "posecli synth"
MAX_SIZE = 8192
MAX_PEOPLE = 50


@dataclass(frozen=True)
class SynthSummary:
    """What ``generate_dataset`` wrote: counts and paths."""

    out_dir: Path
    annotations: Path
    images: int
    people: int
    videos: tuple[Path, ...] = ()
    video_annotations: tuple[Path, ...] = ()
    video_frames: int = 0
    video_people: int = 0
    video_codec: str | None = None


def _check_args(images: int, seed: int, width: int, height: int, min_people: int,
                max_people: int, videos: int, video_frames: int, fps: float) -> None:
    def whole(name: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise UsageError(f"bad {name} {value!r}: expected a whole number")
        return int(value)

    if whole("images", images) < 0:
        raise UsageError(f"bad images count {images}: must be 0 or more")
    if whole("seed", seed) < 0:
        raise UsageError(f"bad seed {seed}: must be 0 or more")
    for name, value in (("width", width), ("height", height)):
        if not 32 <= whole(name, value) <= MAX_SIZE:
            raise UsageError(f"bad {name} {value}: must be between 32 and {MAX_SIZE} pixels")
    if not 0 <= whole("min_people", min_people) <= MAX_PEOPLE:
        raise UsageError(f"bad min people {min_people}: must be between 0 and {MAX_PEOPLE}")
    if not 0 <= whole("max_people", max_people) <= MAX_PEOPLE:
        raise UsageError(f"bad max people {max_people}: must be between 0 and {MAX_PEOPLE}")
    if min_people > max_people:
        raise UsageError(f"min people {min_people} is more than max people {max_people}")
    if whole("videos", videos) < 0:
        raise UsageError(f"bad videos count {videos}: must be 0 or more")
    if whole("video_frames", video_frames) < 1:
        raise UsageError(f"bad video frames {video_frames}: must be 1 or more")
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and 0 < fps <= 1000):
        raise UsageError(f"bad fps {fps}: must be a number above 0 and at most 1000")


def generate_dataset(
    out_dir: Path,
    *,
    images: int = 200,
    seed: int = 0,
    width: int = 368,
    height: int = 368,
    min_people: int = 1,
    max_people: int = 4,
    videos: int = 0,
    video_frames: int = 30,
    fps: float = 10.0,
    progress: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Write a synthetic COCO keypoints dataset (and optional clips) under ``out_dir``.

    Writes ``images/000000.png``... and ``annotations.json`` (COCO keypoints:
    images with ``file_name`` relative to ``out_dir``; one annotation per figure
    that shows, with ``area`` its visible pixel count and ``bbox`` their extent),
    then for ``videos > 0`` ``videos/clip_000.mp4`` (H.264, else MPEG-4; the size
    is rounded down to even) with ``videos/clip_000.json`` (per-frame COCO ground
    truth in posecli's own output layout: images carry ``frame_index``,
    ``timestamp`` = index / fps and ``file_name`` ``clip_000.mp4#<index>``).

    Each image has a uniform random number of people in [min_people, max_people].
    Image ``i`` depends only on ``seed`` and ``i``; the same seed gives
    byte-identical JSON and PNG files. Every file is written atomically;
    ``annotations.json`` is written after all images. ``progress(n)`` is called
    with ``n`` newly finished items (images and video frames;
    ``images + videos * video_frames`` in all).

    Raises:
        UsageError: a bad argument (negative counts, size under 32, min > max...).
        PoseCliError: the output folder cannot be created or written.
    """
    _check_args(images, seed, width, height, min_people, max_people, videos, video_frames, fps)
    out_dir = Path(out_dir)
    image_dir = out_dir / "images"
    try:
        image_dir.mkdir(parents=True, exist_ok=True)
        if videos:
            (out_dir / "videos").mkdir(exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or exc
        raise PoseCliError(f"cannot create output folder {out_dir}: {reason}") from None
    image_seed, video_seed = np.random.SeedSequence(seed).spawn(2)
    info = {"description": "posecli synthetic people", "generator": GENERATOR,
            "version": __version__, "seed": seed}
    doc_images: list[dict[str, Any]] = []
    doc_annotations: list[dict[str, Any]] = []
    for index, child in enumerate(image_seed.spawn(images)):
        rng = np.random.default_rng(child)
        scene = render_people(rng, width, height, int(rng.integers(min_people, max_people + 1)))
        name = f"images/{index:06d}.png"
        write_atomic(out_dir / name, encode_png(scene.image))
        doc_images.append({"id": index + 1, "file_name": name, "width": width, "height": height})
        doc_annotations += scene_annotations(scene, index + 1, len(doc_annotations) + 1)
        if progress is not None:
            progress(1)
    annotations = out_dir / "annotations.json"
    write_atomic(annotations, json_bytes({
        "info": {**info, "images": images, "width": width, "height": height,
                 "min_people": min_people, "max_people": max_people},
        "categories": coco_categories(),
        "images": doc_images,
        "annotations": doc_annotations,
    }))
    clips, clip_docs = [], []
    codec = video_codec() if videos else None
    total_frames = total_people = 0
    for index, child in enumerate(video_seed.spawn(videos)):
        rng = np.random.default_rng(child)
        clip = out_dir / "videos" / f"clip_{index:03d}.mp4"
        people = write_clip(clip, rng, codec, width - width % 2, height - height % 2,
                             video_frames, fps, min_people, max_people,
                             {**info, "clip": index}, progress)
        clips.append(clip)
        clip_docs.append(clip.with_suffix(".json"))
        total_frames += video_frames
        total_people += people
    return SynthSummary(out_dir=out_dir, annotations=annotations, images=images,
                        people=len(doc_annotations), videos=tuple(clips),
                        video_annotations=tuple(clip_docs), video_frames=total_frames,
                        video_people=total_people, video_codec=codec)
