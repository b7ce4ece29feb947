"""``posecli train`` and ``posecli eval``: train the body model, score it on COCO data.

Registered on the main app by :func:`register`. Errors are PoseCliError
subclasses, which the main CLI prints as one line with their exit code.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..defaults import DEFAULT_NET_HEIGHT
from ..errors import UsageError
from ..model_config import ModelConfig
from .options import (
    DEVICE,
    MIN_PARTS,
    MIN_SCORE,
    PAF_FRACTION,
    PAF_THRESHOLD,
    PEAK,
    QUIET_PROGRESS,
    SAMPLES,
    SIGMA,
    WEIGHTS,
    parse_params,
)

_MODEL = ModelConfig()

_AUGMENT_FIELDS = {
    "augment": "enabled", "target_height": "target_height", "max_rotation": "max_rotation",
    "flip_prob": "flip_prob", "center_jitter": "center_jitter",
}
_MODEL_PARAMS = ("stages", "width_mult", "vgg_widths", "cpm_widths", "stage1_width",
                 "stage1_hidden", "refine_width", "refine_kernel")


def _widths(text: str | None, count: int, name: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count or any(v < 1 for v in values):
        raise UsageError(f"bad {name} {text!r}: expected {count} comma-separated positive "
                         "integers")
    return values


def model_config(stages: int, width_mult: float, vgg_widths: str | None,
                 cpm_widths: str | None, stage1_width: int | None, stage1_hidden: int | None,
                 refine_width: int | None, refine_kernel: int) -> ModelConfig:
    """A ModelConfig: every default channel width times ``width_mult``, then explicit widths."""
    if width_mult <= 0:
        raise UsageError(f"bad --width-mult {width_mult}: expected a positive multiplier")

    def scaled(value: int) -> int:
        return max(1, round(value * width_mult))

    try:
        return ModelConfig(
            stages=stages,
            vgg_widths=_widths(vgg_widths, 4, "--vgg-widths")
            or tuple(scaled(v) for v in _MODEL.vgg_widths),
            cpm_widths=_widths(cpm_widths, 2, "--cpm-widths")
            or tuple(scaled(v) for v in _MODEL.cpm_widths),
            stage1_width=stage1_width or scaled(_MODEL.stage1_width),
            stage1_hidden=stage1_hidden or scaled(_MODEL.stage1_hidden),
            refine_width=refine_width or scaled(_MODEL.refine_width),
            refine_kernel=refine_kernel,
        )
    except ValueError as exc:
        raise UsageError(f"bad model size: {exc}") from None


def _given(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def train_command(
    ctx: typer.Context,
    images: str | None = typer.Option(None, "--images", metavar="DIR",
                                      help="Folder of the training images."),
    annotations: str | None = typer.Option(
        None, "--annotations", metavar="FILE",
        help="COCO person keypoints annotation file (JSON)."),
    out: str | None = typer.Option(
        None, "--out", "-o", metavar="DIR",
        help="Output folder for checkpoints and train_log.csv."),
    steps: int = typer.Option(1000, "--steps", metavar="N",
                              help="Train until this many optimizer steps."),
    batch_size: int = typer.Option(8, "--batch-size", metavar="N",
                                   help="Images per step (per process)."),
    lr: float = typer.Option(1e-4, "--lr", metavar="LR", help="Base learning rate."),
    optimizer: str = typer.Option("adam", "--optimizer", metavar="NAME",
                                  help="adam or sgd (with momentum)."),
    momentum: float = typer.Option(0.9, "--momentum", metavar="M", help="SGD momentum."),
    weight_decay: float = typer.Option(0.0, "--weight-decay", metavar="WD",
                                       help="L2 weight decay."),
    warmup_steps: int = typer.Option(0, "--warmup-steps", metavar="N",
                                     help="Linear learning-rate warm-up."),
    schedule: str = typer.Option("constant", "--schedule", metavar="NAME",
                                 help="After warm-up: constant or cosine (to 0 at --steps)."),
    clip_grad: float = typer.Option(0.0, "--clip-grad", metavar="NORM",
                                    help="Max gradient norm (0 = off)."),
    amp: bool = typer.Option(False, "--amp", help="bf16 autocast (CUDA; CPU only if it has bf16)."),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every", metavar="N",
                                         help="Write ckpt_NNNNNN.pt and last.pt every N steps."),
    log_every: int = typer.Option(1, "--log-every", metavar="N", help="CSV log row every N steps."),
    crop: int = typer.Option(368, "--crop", metavar="PX",
                             help="Training crop size in pixels (multiple of 8)."),
    num_workers: int = typer.Option(2, "--num-workers", metavar="N",
                                    help="DataLoader worker processes."),
    seed: int = typer.Option(0, "--seed", metavar="N",
                             help="Seed of initialisation, order and augmentation."),
    device: str = DEVICE,
    threads: int = typer.Option(0, "--threads", metavar="N",
                                help="CPU threads for the model (0 = torch's default)."),
    vgg: str | None = typer.Option(
        None, "--vgg", metavar="FILE",
        help="torchvision vgg19 state dict to initialise conv1_1..conv4_2."),
    resume: str | None = typer.Option(
        None, "--resume", metavar="CHECKPOINT",
        help="Continue a run from its checkpoint (options given here override the "
             "checkpoint's)."),
    quiet: bool = QUIET_PROGRESS,
    stages: int = typer.Option(_MODEL.stages, "--stages", metavar="N", help="Number of stages."),
    width_mult: float = typer.Option(
        1.0, "--width-mult", metavar="X",
        help="Multiply every default channel width by X (0.25: the demo model's size)."),
    vgg_widths: str | None = typer.Option(None, "--vgg-widths", metavar="W1,W2,W3,W4",
                                          help="4 VGG block widths."),
    cpm_widths: str | None = typer.Option(None, "--cpm-widths", metavar="W1,W2",
                                          help="2 CPM widths."),
    stage1_width: int | None = typer.Option(None, "--stage1-width", metavar="N",
                                            help="Stage 1 width."),
    stage1_hidden: int | None = typer.Option(None, "--stage1-hidden", metavar="N",
                                             help="Stage 1 1x1 hidden width."),
    refine_width: int | None = typer.Option(None, "--refine-width", metavar="N",
                                            help="Refinement stage width."),
    refine_kernel: int = typer.Option(_MODEL.refine_kernel, "--refine-kernel", metavar="K",
                                      help="Refinement kernel size (odd)."),
    scale_min: float = typer.Option(0.5, "--scale-min", metavar="S",
                                    help="Random scale range, low."),
    scale_max: float = typer.Option(1.1, "--scale-max", metavar="S",
                                    help="Random scale range, high."),
    target_height: float = typer.Option(
        0.6, "--target-height", metavar="FRACTION", help="Person height / crop size at scale 1."),
    max_rotation: float = typer.Option(40.0, "--max-rotation", metavar="DEG",
                                       help="Random rotation, degrees."),
    flip_prob: float = typer.Option(0.5, "--flip-prob", metavar="P",
                                    help="Horizontal flip probability."),
    center_jitter: float = typer.Option(40.0, "--center-jitter", metavar="PX",
                                        help="Random crop centre offset, pixels."),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Random augmentation."),
    sigma: float = typer.Option(7.0, "--sigma", metavar="PX",
                                help="Heatmap Gaussian sigma, pixels."),
    limb_width: float = typer.Option(8.0, "--limb-width", metavar="PX",
                                     help="PAF half width around a limb, pixels."),
) -> None:
    """Train the CPM/PAF body model on a COCO-format keypoints dataset.

    Example: posecli train --images data/images --annotations data/annotations.json
    --out runs/demo --width-mult 0.25 --stages 3 --crop 184 --steps 2000
    """
    from ..train.dataset import Augment
    from ..train.loop import TrainOptions, options_from_checkpoint, summary, train

    config = model_config(stages, width_mult, vgg_widths, cpm_widths, stage1_width, stage1_hidden,
                          refine_width, refine_kernel)
    values = {"images": images, "annotations": annotations, "out": out, "steps": steps,
              "batch_size": batch_size, "lr": lr, "optimizer": optimizer, "momentum": momentum,
              "weight_decay": weight_decay, "warmup_steps": warmup_steps,
              "schedule": schedule, "clip_grad": clip_grad, "amp": amp,
              "checkpoint_every": checkpoint_every, "log_every": log_every, "crop": crop,
              "num_workers": num_workers, "seed": seed, "device": device, "threads": threads,
              "vgg": vgg,
              "sigma": sigma, "limb_width": limb_width}
    augment_values = {"enabled": augment, "target_height": target_height,
                      "max_rotation": max_rotation, "flip_prob": flip_prob,
                      "center_jitter": center_jitter, "scale_range": (scale_min, scale_max)}
    if resume is None:
        missing = [f"--{n}" for n in ("images", "annotations", "out") if values[n] is None]
        if missing:
            raise UsageError(f"train needs {', '.join(missing)} (or --resume CHECKPOINT)")
        options = TrainOptions(model=config, augment=Augment(**augment_values), **values)
    else:
        base = options_from_checkpoint(resume)
        changes = {field: value for field, value in values.items() if _given(ctx, field)}
        augment_changes = {field: augment_values[field] for param, field in
                           _AUGMENT_FIELDS.items() if _given(ctx, param)}
        if _given(ctx, "scale_min") or _given(ctx, "scale_max"):
            low, high = base.augment.scale_range
            augment_changes["scale_range"] = (scale_min if _given(ctx, "scale_min") else low,
                                              scale_max if _given(ctx, "scale_max") else high)
        if any(_given(ctx, name) for name in _MODEL_PARAMS):
            changes["model"] = config
        options = dataclasses.replace(
            base, augment=dataclasses.replace(base.augment, **augment_changes), **changes)
    result = train(options, progress=not quiet)
    if result.checkpoint is not None:
        Console(stderr=True, highlight=False).print(summary(result), markup=False)


@contextmanager
def _eval_progress(quiet: bool) -> Iterator[tuple]:
    if quiet or not sys.stderr.isatty():
        yield (lambda total: None), (lambda: None)
        return
    columns = (TextColumn("images"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task("images", total=None)
        yield ((lambda total: progress.update(task, total=total)),
               (lambda: progress.advance(task)))


def eval_command(
    weights: str | None = WEIGHTS,
    images: str = typer.Option(..., "--images", metavar="DIR", help="Folder of the images."),
    annotations: str = typer.Option(..., "--annotations", metavar="FILE",
                                    help="COCO person keypoints ground truth (JSON)."),
    scales: str = typer.Option("1.0", "--scales", metavar="S1,S2,...",
                               help="Comma-separated scales of the net height, e.g. 1.0,0.5,1.5."),
    flip: bool = typer.Option(False, "--flip", help="Also run mirrored images and average."),
    net_height: int = typer.Option(DEFAULT_NET_HEIGHT, "--net-height", metavar="PX",
                                   help="Network input height at scale 1."),
    out: str | None = typer.Option(None, "--out", "-o", metavar="FILE",
                                   help="Also write the detections to FILE as a COCO "
                                        "results list (JSON)."),
    as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON."),
    device: str = DEVICE,
    max_images: int | None = typer.Option(None, "--max-images", metavar="N",
                                          help="Only the first N images (by id)."),
    quiet: bool = QUIET_PROGRESS,
    peak_threshold: float = PEAK,
    smoothing_sigma: float = SIGMA,
    paf_samples: int = SAMPLES,
    paf_threshold: float = PAF_THRESHOLD,
    paf_min_fraction: float = PAF_FRACTION,
    min_parts: int = MIN_PARTS,
    min_score: float = MIN_SCORE,
) -> None:
    """Score a model on a COCO-format keypoints set (COCOeval AP, AR).

    Example: posecli eval --weights runs/demo/last.pt --images val/images
    --annotations val/annotations.json --scales 1.0,0.5 --flip --out results.json
    """
    from ..evaluate import METRICS, evaluate, parse_scales
    from ..formats import check_output_path, write_json
    from ..outputs import check_distinct, write_stdout
    from ..pipeline import load_model
    from ..preprocess import check_net_height

    scale_values = parse_scales(scales)
    for scale in scale_values:
        check_net_height(round(scale * net_height))
    params = parse_params(smoothing_sigma, peak_threshold, paf_samples, paf_threshold,
                          paf_min_fraction, min_parts, min_score)
    if out is not None:
        check_distinct([("--annotations", annotations), ("--out", out)])
        check_output_path(out)
    model = load_model(weights, device)
    with _eval_progress(quiet) as (on_start, on_image):
        evaluation = evaluate(model, annotations, images, net_height, scale_values, flip,
                              params, max_images, on_start=on_start, on_image=on_image)
    if out is not None:
        write_json(evaluation.results, out)
    if as_json:
        document = {"stats": evaluation.stats, "images": evaluation.images,
                    "detections": len(evaluation.results), "options": evaluation.options,
                    "model": model.describe()}
        write_stdout(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
        return
    table = Table(title=f"COCO keypoints: {evaluation.images} images, "
                        f"{len(evaluation.results)} detections", box=box.SIMPLE_HEAD,
                  pad_edge=False, show_edge=False)
    for name in METRICS:
        table.add_column(name, justify="right")
    table.add_row(*(f"{evaluation.stats[name]:.3f}" for name in METRICS))
    Console(highlight=False).print(table)

