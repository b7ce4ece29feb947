"""A torch Dataset over any COCO-format person keypoints set, with CMU-style augmentation.

Each sample is one image that has at least one labelled person. Augmentation is
one affine map from image pixels to the ``crop`` x ``crop`` network input:

1. pick a random labelled person (the crop's centre, jittered by up to
   ``center_jitter`` pixels);
2. scale so that person's box height becomes ``target_height * crop`` times a
   random factor in ``scale_range``;
3. rotate by a random angle in +-``max_rotation`` degrees;
4. mirror horizontally with probability ``flip_prob`` (left/right parts swap).

The same matrix warps the image (bilinear, grey 128 outside), the ignore regions
and the keypoints. Randomness comes only from ``numpy.random.default_rng((seed,
epoch, index))``, so a sample is a pure function of (seed, epoch, index) -- in any
worker process, before and after a resume.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..defaults import STRIDE
from ..errors import InputError, UsageError
from ..preprocess import Geometry, preprocess
from ..skeleton import COCO17_FLIP
from ..video import read_image
from .targets import (
    LIMB_WIDTH,
    SIGMA,
    build_targets,
    is_ignored,
    region_mask,
)

PERSON_CATEGORY = 1


@dataclass(frozen=True)
class Augment:
    """Augmentation ranges (see module doc); ``enabled=False`` gives a fixed centred crop."""

    enabled: bool = True
    scale_range: tuple[float, float] = (0.5, 1.1)
    target_height: float = 0.6
    max_rotation: float = 40.0
    flip_prob: float = 0.5
    center_jitter: float = 40.0

    def __post_init__(self) -> None:
        low, high = self.scale_range
        if not 0 < low <= high:
            raise UsageError(f"bad scale range {low}..{high}: expected 0 < min <= max")
        if not 0 < self.target_height:
            raise UsageError("target height must be > 0")
        if not 0 <= self.flip_prob <= 1:
            raise UsageError("flip probability must be within 0..1")
        if self.max_rotation < 0 or self.center_jitter < 0:
            raise UsageError("rotation and centre jitter must be >= 0")


@dataclass(frozen=True)
class _Image:
    """One usable image: its file and annotations in plain numpy form."""

    id: int
    path: Path
    height: int
    width: int
    keypoints: np.ndarray  # P x 17 x 3, people with at least one labelled keypoint
    centres: np.ndarray  # P x 2 box centres of those people
    heights: np.ndarray  # P box heights
    ignored: tuple[dict[str, Any], ...]  # crowd / unlabelled annotations


def image_folder(images: str | Path) -> Path:
    """The folder of a dataset's images; InputError when it is not a folder."""
    folder = Path(images)
    if not folder.is_dir():
        raise InputError(f"image folder not found: {folder}")
    return folder


def image_path(folder: Path, info: dict[str, Any], annotations: str | Path,
               check: bool = True) -> Path:
    """The file of one COCO image record in ``folder``; when ``check``, InputError
    unless it exists."""
    path = folder / str(info["file_name"])
    if check and not path.is_file():
        raise InputError(f"image file not found: {path} (listed in {annotations})")
    return path


def load_coco(annotations: str | Path):
    """A pycocotools COCO object; one-line InputError for a missing or broken file.

    pycocotools' progress prints are swallowed so they never reach stdout.
    """
    from pycocotools.coco import COCO

    path = Path(annotations)
    if not path.is_file():
        raise InputError(f"annotation file not found: {path}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"annotation file {path} is not valid JSON: {exc}") from None
    except (KeyError, TypeError, AttributeError, AssertionError) as exc:
        raise InputError(f"annotation file {path} is not a COCO annotation file "
                         f"({type(exc).__name__}: {exc})") from None
    if not isinstance(coco.dataset, dict) or "images" not in coco.dataset:
        raise InputError(f"annotation file {path} is not a COCO annotation file (no images)")
    return coco


def _box(ann: dict[str, Any], keypoints: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and height of a person: its bbox, else its labelled keypoints' extent."""
    bbox = ann.get("bbox")
    if bbox and len(bbox) == 4 and bbox[3] > 0:
        x, y, w, h = (float(v) for v in bbox)
        return np.array([x + w / 2, y + h / 2]), h
    xy = keypoints[keypoints[:, 2] > 0, :2]
    low, high = xy.min(0), xy.max(0)
    return (low + high) / 2, max(float(high[1] - low[1]), 1.0)


class CocoPoseDataset(Dataset):
    """Augmented crops and their targets from a COCO keypoints file and an image folder.

    ``dataset[i]`` is a dict of tensors: ``image`` 3 x crop x crop float32 network
    input (BGR, pixel / 256 - 0.5, exactly as :func:`posecli.preprocess.preprocess`),
    ``heatmaps`` 19 x h x w, ``pafs`` 38 x h x w, ``mask`` 1 x h x w (h = crop / 8)
    and ``index``. Call :meth:`set_epoch` before each epoch (the training loop does).
    """

    def __init__(self, annotations: str | Path, images: str | Path, crop: int = 368,
                 augment: Augment | None = None, seed: int = 0, sigma: float = SIGMA,
                 limb_width: float = LIMB_WIDTH, stride: int = STRIDE,
                 check_files: bool = True) -> None:
        if crop < 2 * stride or crop % stride:
            raise UsageError(f"bad crop size {crop}: expected a multiple of {stride}, "
                             f">= {2 * stride}")
        self.crop, self.stride, self.seed = crop, stride, seed
        self.sigma, self.limb_width = sigma, limb_width
        self.augment = augment or Augment()
        self.epoch = 0
        image_dir = image_folder(images)
        coco = load_coco(annotations)
        self.images: list[_Image] = []
        for image_id in sorted(coco.getImgIds()):
            info = coco.imgs[image_id]
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=None))
            anns = [a for a in anns if a.get("category_id", PERSON_CATEGORY) == PERSON_CATEGORY]
            people = [a for a in anns if not is_ignored(a) and a.get("keypoints")]
            if not people:
                continue
            keypoints = np.array([np.asarray(a["keypoints"], dtype=np.float64).reshape(17, 3)
                                  for a in people])
            boxes = [_box(a, k) for a, k in zip(people, keypoints)]
            path = image_path(image_dir, info, annotations, check_files)
            self.images.append(_Image(
                id=int(image_id), path=path,
                height=int(info.get("height", 0)), width=int(info.get("width", 0)),
                keypoints=keypoints,
                centres=np.array([c for c, _ in boxes]),
                heights=np.array([h for _, h in boxes]),
                ignored=tuple(a for a in anns if is_ignored(a)),
            ))
        if not self.images:
            raise InputError(f"annotation file {annotations} has no image with a labelled "
                             "person (num_keypoints > 0)")

    def __len__(self) -> int:
        return len(self.images)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentation draws ``__getitem__`` makes."""
        self.epoch = int(epoch)

    def affine(self, index: int, epoch: int | None = None) -> tuple[np.ndarray, bool]:
        """(2 x 3 matrix from image pixels to crop pixels, whether it mirrors) of a sample."""
        rng = np.random.default_rng((self.seed, self.epoch if epoch is None else epoch, index))
        record = self.images[index]
        aug = self.augment
        person = int(rng.integers(len(record.keypoints)))
        # Draw every value even when unused, so the stream does not depend on options.
        factor = rng.uniform(*aug.scale_range)
        angle = rng.uniform(-aug.max_rotation, aug.max_rotation)
        flip = rng.random() < aug.flip_prob
        jitter = rng.uniform(-1.0, 1.0, size=2) * aug.center_jitter
        if not aug.enabled:
            factor, angle, flip, jitter = 1.0, 0.0, False, np.zeros(2)
        scale = factor * aug.target_height * self.crop / record.heights[person]
        theta = math.radians(angle)
        rotation = np.array([[math.cos(theta), -math.sin(theta)],
                             [math.sin(theta), math.cos(theta)]])
        linear = scale * rotation @ np.diag([-1.0 if flip else 1.0, 1.0])
        offset = np.full(2, (self.crop - 1) / 2.0) + jitter
        matrix = np.concatenate([linear, (offset - linear @ record.centres[person])[:, None]], 1)
        return matrix, bool(flip)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        record = self.images[index]
        matrix, flip = self.affine(index)
        image = read_image(record.path)
        height, width = image.shape[:2]
        ignored = region_mask(record.ignored, height, width) if record.ignored else None
        crop_image, crop_ignored = warp(image, ignored, matrix, self.crop)
        keypoints = record.keypoints.copy()
        keypoints[..., :2] = keypoints[..., :2] @ matrix[:, :2].T + matrix[:, 2]
        if flip:
            keypoints = keypoints[:, COCO17_FLIP]
        targets = build_targets(keypoints, self.crop, self.crop, crop_ignored, self.stride,
                                self.sigma, self.limb_width)
        side = self.crop
        geometry = Geometry(side, side, side, side, side, side, self.stride)
        return {
            "image": preprocess(crop_image[None], geometry)[0],
            "heatmaps": torch.from_numpy(targets.heatmaps),
            "pafs": torch.from_numpy(targets.pafs),
            "mask": torch.from_numpy(targets.mask)[None],
            "index": torch.tensor(index),
        }


def warp(image: np.ndarray, ignored: np.ndarray | None, matrix: np.ndarray,
         size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Warp an H x W x 3 uint8 image (and an optional H x W ignore map) into size x size.

    ``matrix`` (2 x 3) maps image pixel indices to output pixel indices. Bilinear
    sampling; outside the image the output is grey 128 and not ignored.
    """
    height, width = image.shape[:2]
    channels = [torch.from_numpy(image).permute(2, 0, 1).float() - 128.0]
    if ignored is not None:
        channels.append(torch.from_numpy(ignored.astype(np.float32))[None])
    source = torch.cat(channels)[None]
    linear, offset = matrix[:, :2], matrix[:, 2]
    inverse = np.linalg.inv(linear)
    out = np.arange(size, dtype=np.float64)
    grid_x, grid_y = np.meshgrid(out, out)
    points = np.stack([grid_x - offset[0], grid_y - offset[1]], -1) @ inverse.T  # size x size x 2
    normalised = np.stack([(2 * points[..., 0] + 1) / width - 1,
                           (2 * points[..., 1] + 1) / height - 1], -1)
    grid = torch.from_numpy(normalised.astype(np.float32))[None]
    warped = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros",
                           align_corners=False)[0]
    crop = (warped[:3] + 128.0).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0)
    crop_ignored = warped[3].numpy() if ignored is not None else None
    return np.ascontiguousarray(crop.numpy()), crop_ignored


def worker_init_fn(worker_id: int) -> None:
    """Seed numpy and ``random`` in a DataLoader worker from its torch seed.

    Augmentation does not use these global generators (it draws from
    ``default_rng((seed, epoch, index))``); this only keeps any other library code
    in workers reproducible and different across workers.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
