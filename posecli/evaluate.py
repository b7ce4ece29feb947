"""COCO keypoint evaluation: run the pipeline over an image set, score it with COCOeval.

Single scale without flip uses :class:`posecli.pipeline.Estimator` unchanged.
Multi-scale and/or flip testing averages maps at the original image resolution:
for each scale ``s`` the network runs at net height ``round(s * net_height)``,
its heatmaps and PAFs are upsampled to the image with the parser's own operators
(``operators_on(geometry, 0, device)``: ``A @ m @ B.T``), optionally also for the
mirrored image (maps flipped back, left/right heatmap channels swapped, each
limb's PAF moved to its mirrored limb with the x component negated), and the
average is parsed with a stride-1 identity geometry, whose upsampling matrices
are the identity.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .defaults import DEFAULT_NET_HEIGHT
from .errors import InputError, UsageError
from .formats import coco_annotation
from .parse import ParseParams, Person
from .parse.resample import operators_on
from .pipeline import Estimator, PoseModel, decode_maps
from .preprocess import Geometry, check_net_height, plan_geometry, preprocess
from .skeleton import COCO18_FLIP, LIMBS, NUM_HEATMAPS, NUM_PARTS, PAF_CHANNELS
from .train.dataset import PERSON_CATEGORY, image_folder, image_path, load_coco
from .video import read_image

#: COCOeval's keypoint summary, in the order of ``COCOeval.stats``.
METRICS: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl",
                            "AR", "AR50", "AR75", "ARm", "ARl")


@dataclass
class Evaluation:
    """Scores (METRICS -> float), the COCO results and how many images were run."""

    stats: dict[str, float]
    results: list[dict[str, Any]]
    images: int
    options: dict[str, Any] = field(default_factory=dict)


def parse_scales(text: str) -> tuple[float, ...]:
    """``"1.0,0.5,1.5"`` -> (1.0, 0.5, 1.5); a one-line UsageError for anything else."""
    parts = [p.strip() for p in text.split(",")]
    try:
        scales = tuple(float(p) for p in parts)
    except ValueError:
        raise UsageError(f"bad --scales {text!r}: expected comma-separated numbers "
                         "such as 1.0,0.5,1.5") from None
    if not scales or any(not np.isfinite(s) or s <= 0 for s in scales):
        raise UsageError(f"bad --scales {text!r}: every scale must be a positive number")
    return scales


# --------------------------------------------------------------------------- flip tables


def mirrored_limbs() -> tuple[np.ndarray, np.ndarray]:
    """For each limb of LIMBS: (index of its mirror image, +1 or -1 for its direction).

    The mirror of limb (a, b) is the limb joining (flip(a), flip(b)); -1 when LIMBS
    lists that limb as (flip(b), flip(a)), so its vector points the other way.
    """
    index = {limb: k for k, limb in enumerate(LIMBS)}
    mirror, direction = [], []
    for a, b in LIMBS:
        fa, fb = int(COCO18_FLIP[a]), int(COCO18_FLIP[b])
        if (fa, fb) in index:
            mirror.append(index[(fa, fb)])
            direction.append(1.0)
        else:
            mirror.append(index[(fb, fa)])
            direction.append(-1.0)
    return np.array(mirror), np.array(direction)


def flip_channels() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(heatmap order 19, PAF order 38, PAF sign 38) that un-mirror maps of a flipped image.

    With maps ``m`` of the mirrored image flipped back along x, the maps of the
    original image are ``heat[heat_order]`` and ``sign[:, None, None] * paf[paf_order]``.
    Each table is an involution (applying it twice is the identity).
    """
    heat_order = np.concatenate([COCO18_FLIP, [NUM_PARTS]]).astype(np.int64)
    mirror, direction = mirrored_limbs()
    paf_order = np.zeros(2 * len(LIMBS), dtype=np.int64)
    paf_sign = np.zeros(2 * len(LIMBS))
    for k, (cx, cy) in enumerate(PAF_CHANNELS):
        mx, my = PAF_CHANNELS[mirror[k]]
        paf_order[cx], paf_order[cy] = mx, my
        paf_sign[cx], paf_sign[cy] = -direction[k], direction[k]  # x is negated by the mirror
    return heat_order, paf_order, paf_sign


def identity_geometry(height: int, width: int) -> Geometry:
    """A stride-1 geometry whose maps are already the frame: its operators are identities."""
    return Geometry(height=height, width=width, resized_height=height, resized_width=width,
                    padded_height=height, padded_width=width, stride=1)


# --------------------------------------------------------------------------- inference


class MultiScaleEstimator:
    """People of one image from maps averaged over scales (and mirrored copies)."""

    def __init__(self, model: PoseModel, net_height: int = DEFAULT_NET_HEIGHT,
                 scales: Sequence[float] = (1.0,), flip: bool = False,
                 params: ParseParams | None = None) -> None:
        if not scales:
            raise UsageError("at least one scale is needed")
        for scale in scales:
            check_net_height(round(scale * net_height))
        self.model, self.net_height = model, net_height
        self.scales, self.flip = tuple(scales), flip
        self.params = params or ParseParams()
        heat_order, paf_order, paf_sign = flip_channels()
        device = model.device
        self._heat_order = torch.from_numpy(heat_order).to(device)
        self._paf_order = torch.from_numpy(paf_order).to(device)
        self._paf_sign = torch.from_numpy(paf_sign).float().to(device)[:, None, None]

    @torch.inference_mode()
    def maps(self, image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(heatmaps 19 x H x W, pafs 38 x H x W) at the image's resolution, averaged."""
        height, width = image.shape[:2]
        frames = np.stack([image, image[:, ::-1]]) if self.flip else image[None]
        frames = torch.from_numpy(np.ascontiguousarray(frames)).to(self.model.device)  # once
        heat_sum = paf_sum = None
        for scale in self.scales:
            spec = self.model.family.input
            geometry = plan_geometry(height, width, round(scale * self.net_height), spec.stride)
            rows, cols = operators_on(geometry, 0.0, self.model.device)[:2]
            net_input = preprocess(frames, geometry, self.model.device, spec)
            heatmaps, pafs = self.model.network.predict(net_input)
            heatmaps = rows @ heatmaps.float() @ cols.T  # N x 19 x H x W
            pafs = rows @ pafs.float() @ cols.T
            heat, paf = heatmaps[0], pafs[0]
            if self.flip:
                heat = heat + heatmaps[1].flip(-1)[self._heat_order]
                paf = paf + pafs[1].flip(-1)[self._paf_order] * self._paf_sign
            heat_sum = heat if heat_sum is None else heat_sum + heat
            paf_sum = paf if paf_sum is None else paf_sum + paf
        count = len(self.scales) * (2 if self.flip else 1)
        return heat_sum / count, paf_sum / count

    def __call__(self, image: np.ndarray) -> list[Person]:
        """The people of one H x W x 3 uint8 RGB image."""
        heatmaps, pafs = self.maps(image)
        assert heatmaps.shape[0] == NUM_HEATMAPS
        geometry = identity_geometry(*image.shape[:2])
        return decode_maps(heatmaps[None], pafs[None], geometry, self.model.family.decoder,
                           self.params)[0]

    def options(self) -> dict[str, Any]:
        single = Estimator(self.model, self.net_height, self.params, batch_size=1).options()
        return {**single, "scales": list(self.scales), "flip": self.flip}


def people_to_results(people: Sequence[Person], image_id: int) -> list[dict[str, Any]]:
    """COCO results (image_id, category_id 1, keypoints, score); people without keypoints
    in COCO-17 are skipped."""
    results = []
    for person in people:
        ann = coco_annotation(person, len(results) + 1, image_id)
        if ann["num_keypoints"] == 0:
            continue
        results.append({"image_id": image_id, "category_id": PERSON_CATEGORY,
                        "keypoints": ann["keypoints"], "score": ann["score"]})
    return results


# --------------------------------------------------------------------------- scoring


def score_results(coco_gt, results: Sequence[dict[str, Any]],
                  image_ids: Sequence[int] | None = None) -> dict[str, float]:
    """COCOeval(iouType='keypoints') of ``results`` against ``coco_gt`` -> METRICS.

    Only ``image_ids`` are scored (default: every image of ``coco_gt``). No
    results at all score 0 everywhere. COCOeval's printing is swallowed.
    """
    from pycocotools.cocoeval import COCOeval

    ids = sorted(coco_gt.getImgIds() if image_ids is None else image_ids)
    if not results:
        return dict.fromkeys(METRICS, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(copy.deepcopy(list(results)))
        evaluator = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        evaluator.params.imgIds = ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # COCOeval reports -1 where there is nothing to score (e.g. no medium people).
    return {name: float(value) for name, value in zip(METRICS, evaluator.stats)}


def evaluate(model: PoseModel, annotations: str | Path, images: str | Path,
             net_height: int = DEFAULT_NET_HEIGHT, scales: Sequence[float] = (1.0,),
             flip: bool = False, params: ParseParams | None = None,
             max_images: int | None = None,
             on_start: Callable[[int], None] = lambda total: None,
             on_image: Callable[[], None] = lambda: None) -> Evaluation:
    """Run ``model`` over the images of a COCO keypoints file and score it.

    Every image file is checked before any work. ``max_images`` limits the run to
    the first N images (by id); only those are scored.
    """
    coco = load_coco(annotations)
    folder = image_folder(images)
    ids = sorted(coco.getImgIds())
    if max_images is not None:
        if max_images < 1:
            raise UsageError(f"bad --max-images {max_images}: expected >= 1")
        ids = ids[:max_images]
    if not ids:
        raise InputError(f"annotation file {annotations} lists no images")
    paths = {image_id: image_path(folder, coco.imgs[image_id], annotations) for image_id in ids}
    scales = tuple(scales)
    if len(scales) == 1 and scales[0] == 1.0 and not flip:
        single = Estimator(model, net_height, params, batch_size=1)
        options = single.options()

        def run(image: np.ndarray) -> list[Person]:
            return single(image[None])[0]
    else:
        multi = MultiScaleEstimator(model, net_height, scales, flip, params)
        run, options = multi, multi.options()
    on_start(len(ids))
    results: list[dict[str, Any]] = []
    for image_id in ids:
        results.extend(people_to_results(run(read_image(paths[image_id])), image_id))
        on_image()
    return Evaluation(score_results(coco, results, ids), results, len(ids), options)
