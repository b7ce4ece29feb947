"""Scenes: figures placed in an image, drawn over a backdrop, and their COCO labels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import orjson

from .background import render_background
from .figure import Figure, sample_body, sample_outfit, sample_pose
from .geometry import figure_extent
from .raster import Scene, render_figures


def sample_figures(rng: np.random.Generator, width: int, height: int,
                   n_people: int) -> list[Figure]:
    """``n_people`` random figures placed in a ``width`` x ``height`` image, sorted
    back to front (by the bottom of each figure, as on a ground plane).

    Figure heights are log-uniform from 15% to 90% of the image height; figures
    are spread over horizontal slots, and most lie wholly inside the image.
    """
    slots = rng.permutation(n_people)
    figures: list[tuple[float, Figure]] = []
    for i in range(n_people):
        body, pose, outfit = sample_body(rng), sample_pose(rng), sample_outfit(rng)
        size = height * math.exp(rng.uniform(math.log(0.15), math.log(0.9)))
        figure = Figure(body, pose, outfit, size, 0.0, 0.0)
        x0, y0, x1, y1 = figure_extent(figure)
        centre = (slots[i] + rng.uniform(0.2, 0.8)) / n_people * width
        x = place(rng, centre, x0, x1, width)
        y = place(rng, rng.uniform(0.3, 0.7) * height, y0, y1, height)
        figures.append((y + y1, replace(figure, x=x, y=y)))
    figures.sort(key=lambda item: item[0])
    return [figure for _, figure in figures]


def place(rng: np.random.Generator, wanted: float, low: float, high: float,
           size: int) -> float:
    """An anchor near ``wanted`` so that [anchor+low, anchor+high] is inside [0, size]
    (85% of the time, when it fits), else anywhere that keeps the anchor inside."""
    if high - low <= size - 2 and rng.random() < 0.85:
        return float(min(max(wanted, 1.0 - low), size - 2.0 - high))
    if high - low > size - 2 and rng.random() < 0.85:
        # Bigger than the image: keep it centred on the image with a little play.
        middle = (size - 1) / 2 - (low + high) / 2
        return float(middle + rng.uniform(-0.1, 0.1) * size)
    return float(min(max(wanted, 0.1 * size), 0.9 * size))


def render_people(rng: np.random.Generator, width: int, height: int, n_people: int) -> Scene:
    """One random scene: a background and ``n_people`` random figures (see ``Scene``)."""
    background = render_background(rng, width, height)
    figures = sample_figures(rng, width, height, n_people)
    light = random_light(rng)
    return render_figures(background, figures, light=light, noise=rng.uniform(0.0, 5.0), rng=rng)


def random_light(rng: np.random.Generator) -> np.ndarray:
    """A light direction from above, left or right (x right, y down, z to the camera)."""
    angle = rng.uniform(-math.pi, 0.0)  # from above, left or right
    return np.array([0.6 * math.cos(angle), 0.6 * math.sin(angle), rng.uniform(0.5, 0.9)])


def scene_annotations(scene: Scene, image_id: int, first_id: int,
                      track_ids: Sequence[int | None] | None = None) -> list[dict[str, Any]]:
    """COCO annotations of a scene's figures that show at least one pixel; with
    ``track_ids`` (one per figure), each carries its figure's ``track_id``."""
    annotations = []
    for index, (keypoints, area, bbox) in enumerate(zip(scene.keypoints, scene.areas,
                                                        scene.bboxes)):
        num = int((keypoints[:, 2] > 0).sum())
        if area == 0 or num == 0:
            continue
        annotations.append({
            "id": first_id + len(annotations),
            "image_id": image_id,
            "category_id": 1,
            "keypoints": [round(float(value), 2) if i % 3 != 2 else int(value)
                          for i, value in enumerate(keypoints.ravel())],
            "num_keypoints": num,
            "bbox": [float(value) for value in bbox],
            "area": float(area),
            "iscrowd": 0,
            **({} if track_ids is None else {"track_id": track_ids[index]}),
        })
    return annotations


def json_bytes(document: dict[str, Any]) -> bytes:
    """A JSON document as written by synth: compact, with a final newline."""
    return orjson.dumps(document) + b"\n"
