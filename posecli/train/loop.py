"""The training loop: masked L2 on every stage, checkpoints, exact resume, DDP.

Objective (the CMU one): for every stage, the squared error of the PAF and the
heatmap branch against the targets, times the loss mask, summed and divided by
the batch size; the loss is the sum over stages.

A run writes into its ``out`` directory: ``ckpt_000500.pt``-style checkpoints
every ``checkpoint_every`` steps, ``last.pt`` (the latest, also written at the
end), and ``train_log.csv``. Checkpoints are :func:`posecli.weights.save_checkpoint`
files (format ``posecli``: ``posecli video --weights out/last.pt`` runs them);
besides the model they hold the optimizer, scheduler and RNG states and the data
position, so ``resume`` continues exactly where the run stopped: the next step's
loss equals the uninterrupted run's.

Under ``torchrun`` (``WORLD_SIZE`` set) the model is wrapped in
DistributedDataParallel (NCCL on CUDA, gloo on CPU), every rank reads its shard
of each epoch (DistributedSampler) and only rank 0 writes files.
"""

from __future__ import annotations

import csv
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from ..errors import UsageError, WeightsError
from ..model import STRIDE, ModelConfig, PoseNet
from ..outputs import output_error, temp_file_beside
from ..pipeline import resolve_device
from ..weights.load import CHECKPOINT_FORMAT, load_untrusted, save_checkpoint
from .dataset import Augment, CocoPoseDataset, worker_init_fn
from .targets import LIMB_WIDTH, SIGMA

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine")
LOG_NAME = "train_log.csv"
LAST_NAME = "last.pt"

#: VGG-19 ``features.N`` indices of torchvision's vgg19 -> PoseNet layer names.
VGG_LAYERS: tuple[tuple[int, str], ...] = (
    (0, "conv1_1"), (2, "conv1_2"), (5, "conv2_1"), (7, "conv2_2"),
    (10, "conv3_1"), (12, "conv3_2"), (14, "conv3_3"), (16, "conv3_4"),
    (19, "conv4_1"), (21, "conv4_2"),
)
#: torchvision's ImageNet input normalisation (RGB, pixel / 255).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TrainOptions:
    """Everything that defines a training run (stored in every checkpoint's metadata)."""

    annotations: str
    images: str
    out: str
    model: ModelConfig = field(default_factory=ModelConfig)
    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-4
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "constant"
    clip_grad: float = 0.0  # max gradient norm; 0 = no clipping
    amp: bool = False
    checkpoint_every: int = 500
    log_every: int = 1
    crop: int = 368
    num_workers: int = 2
    seed: int = 0
    device: str = "auto"
    threads: int = 0  # CPU threads of torch in the training process; 0 = torch's default
    vgg: str | None = None
    augment: Augment = field(default_factory=Augment)
    sigma: float = SIGMA
    limb_width: float = LIMB_WIDTH
    resume: str | None = None

    def __post_init__(self) -> None:
        checks = [
            (self.steps >= 1, "--steps must be >= 1"),
            (self.batch_size >= 1, "--batch-size must be >= 1"),
            (self.lr > 0, "--lr must be > 0"),
            (self.optimizer in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}"),
            (0 <= self.momentum < 1, "--momentum must be within 0..1"),
            (self.weight_decay >= 0, "--weight-decay must be >= 0"),
            (self.warmup_steps >= 0, "--warmup-steps must be >= 0"),
            (self.clip_grad >= 0, "--clip-grad must be >= 0"),
            (self.checkpoint_every >= 1, "--checkpoint-every must be >= 1"),
            (self.log_every >= 1, "--log-every must be >= 1"),
            (self.num_workers >= 0, "--num-workers must be >= 0"),
            (self.threads >= 0, "--threads must be >= 0"),
            (self.sigma > 0, "--sigma must be > 0"),
            (self.limb_width > 0, "--limb-width must be > 0"),
            (self.crop >= 2 * STRIDE and self.crop % STRIDE == 0,
             f"--crop must be a multiple of {STRIDE}, >= {2 * STRIDE}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(f"bad training option: {message}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly values (no resume path)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "resume"}
        data["model"] = self.model.to_dict()
        augment = asdict(self.augment)
        augment["scale_range"] = list(augment["scale_range"])
        data["augment"] = augment
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainOptions:
        data = dict(data)
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        if "model" in data:
            data["model"] = ModelConfig.from_dict(data["model"])
        if "augment" in data:
            augment = dict(data["augment"])
            augment["scale_range"] = tuple(augment.get("scale_range", (0.5, 1.1)))
            data["augment"] = Augment(**augment)
        return cls(**data)


@dataclass
class TrainResult:
    """The end of a run: last step, the epoch it was in (0-based), its loss, files."""

    step: int
    epoch: int
    loss: float
    checkpoint: Path | None
    log: Path | None


# --------------------------------------------------------------------------- loss


def pose_loss(outputs: list[tuple[torch.Tensor, torch.Tensor]], pafs: torch.Tensor,
              heatmaps: torch.Tensor, mask: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total loss, per-stage losses S, per-branch losses [paf, heatmap]) of a batch.

    Each stage's loss is sum((pred - target)^2 * mask) over both branches divided
    by the batch size; the total is the sum over stages. Computed in float32.
    """
    batch = pafs.shape[0]
    paf_terms, heat_terms = [], []
    for stage_pafs, stage_heatmaps in outputs:
        paf_terms.append(((stage_pafs.float() - pafs) ** 2 * mask).sum() / batch)
        heat_terms.append(((stage_heatmaps.float() - heatmaps) ** 2 * mask).sum() / batch)
    paf_loss, heat_loss = torch.stack(paf_terms), torch.stack(heat_terms)
    per_stage = paf_loss + heat_loss
    return per_stage.sum(), per_stage, torch.stack([paf_loss.sum(), heat_loss.sum()])


# --------------------------------------------------------------------------- VGG init


def load_vgg(model: PoseNet, path: str | Path) -> None:
    """Initialise conv1_1 .. conv4_2 from a torchvision vgg19 state dict file.

    torchvision's VGG reads RGB ``(pixel / 255 - mean) / std``; PoseNet reads BGR
    ``pixel / 256 - 0.5``. conv1_1 is rewritten to take PoseNet's input: its input
    channels are reversed and the affine change of input is folded into its weight
    and bias (exact away from the zero-padded border). Raises a one-line
    WeightsError when the file is unreadable or its shapes do not fit the model.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"VGG weights file not found: {path}")
    state = load_untrusted(path, f"VGG weights file {path}")
    if not isinstance(state, dict):
        raise WeightsError(f"VGG weights file {path} holds a {type(state).__name__}, "
                           "not a state dict")
    if all(isinstance(k, str) and k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    problems = []
    new: dict[str, torch.Tensor] = {}
    current = model.state_dict()
    for index, name in VGG_LAYERS:
        for kind in ("weight", "bias"):
            key, target = f"features.{index}.{kind}", f"{name}.{kind}"
            tensor = state.get(key)
            if not isinstance(tensor, torch.Tensor):
                problems.append(f"missing {key}")
            elif tensor.shape != current[target].shape:
                shape = "x".join(map(str, tensor.shape))
                want = "x".join(map(str, current[target].shape))
                problems.append(f"{key} is {shape}, {target} needs {want}")
            else:
                new[target] = tensor.detach().float()
    if problems:
        shown = "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)"
                                            if len(problems) > 3 else "")
        raise WeightsError(f"VGG weights file {path} does not fit the model: {shown} "
                           "(a torchvision vgg19 state dict needs the default VGG widths)")
    weight, bias = new["conv1_1.weight"], new["conv1_1.bias"]
    std = torch.tensor(IMAGENET_STD)
    mean = torch.tensor(IMAGENET_MEAN)
    # rgb/255 = (x + 0.5) * 256/255 for PoseNet input x (per channel, BGR order).
    gain = 256.0 / 255.0 / std  # RGB order
    shift = (0.5 * 256.0 / 255.0 - mean) / std
    folded = weight * gain[None, :, None, None]
    new["conv1_1.bias"] = bias + (weight * shift[None, :, None, None]).sum(dim=(1, 2, 3))
    new["conv1_1.weight"] = folded.flip(1).contiguous()  # RGB -> BGR input channels
    with torch.no_grad():
        for key, tensor in new.items():
            current[key].copy_(tensor)


# --------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class DistInfo:
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    enabled: bool = False  # inside a process group we created

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_option: str) -> tuple[DistInfo, torch.device]:
    """Join the torchrun process group (when WORLD_SIZE is set) and pick the device."""
    if "WORLD_SIZE" not in os.environ:
        return DistInfo(), resolve_device(device_option)
    world = int(os.environ["WORLD_SIZE"])
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_option)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                rank=rank, world_size=world)
    return DistInfo(world, rank, local, True), device


# --------------------------------------------------------------------------- state


def _replace_with_link(source: Path, dest: Path) -> Path:
    """Atomically make ``dest`` the same file as ``source`` (a hard link; a copy where the
    file system has none), so a checkpoint is serialised once, not once per name."""
    fd, tmp = temp_file_beside(dest, ".link")  # a unique name, stale ones removed
    os.close(fd)
    try:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise output_error(dest, exc) from None
    return dest


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "python": _plain(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _plain(value: Any) -> Any:
    """Tuples -> lists, recursively (random.getstate() holds nested tuples)."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def read_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """A posecli training checkpoint as saved by :func:`train` (weights_only load)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path}")
    obj = load_untrusted(path, f"checkpoint {path}")
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(f"checkpoint {path} is not a posecli checkpoint")
    needed = ("optimizer", "scheduler", "step", "epoch", "batch_in_epoch", "rng")
    if any(key not in obj for key in needed) or "training" not in obj.get("metadata", {}):
        raise WeightsError(f"checkpoint {path} has weights only, no training state to resume")
    return obj


def options_from_checkpoint(path: str | Path) -> TrainOptions:
    """The TrainOptions a checkpoint was trained with (resume set to ``path``)."""
    obj = read_training_checkpoint(path)
    try:
        options = TrainOptions.from_dict(obj["metadata"]["training"])
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"checkpoint {path} has unreadable training options: {exc}") from None
    return replace(options, resume=str(path))


# --------------------------------------------------------------------------- schedule


def lr_factor(step: int, options: TrainOptions) -> float:
    """Multiplier of the base learning rate for the 0-based optimizer ``step``."""
    if step < options.warmup_steps:
        return (step + 1) / options.warmup_steps
    if options.schedule == "cosine":
        span = max(options.steps - options.warmup_steps, 1)
        done = min(step - options.warmup_steps, span) / span
        return 0.5 * (1.0 + math.cos(math.pi * done))
    return 1.0


def _make_optimizer(model: torch.nn.Module, options: TrainOptions) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if options.optimizer == "sgd":
        return torch.optim.SGD(params, lr=options.lr, momentum=options.momentum,
                               weight_decay=options.weight_decay)
    return torch.optim.Adam(params, lr=options.lr, weight_decay=options.weight_decay)


# --------------------------------------------------------------------------- logging


class _CsvLog:
    """train_log.csv: one row per logged step; a resume drops rows past its step."""

    def __init__(self, path: Path, stages: int, resume_step: int | None) -> None:
        self.path = path
        self.columns = (["step", "epoch", "lr", "loss", "loss_paf", "loss_heatmap"]
                        + [f"loss_stage{i}" for i in range(1, stages + 1)]
                        + ["images_per_s", "seconds"])
        rows: list[list[str]] = []
        if resume_step is not None and path.is_file():
            with open(path, newline="") as f:
                reader = csv.reader(f)
                header = next(reader, None)
                if header == self.columns:
                    rows = [r for r in reader if r and int(r[0]) <= resume_step]
        try:
            with open(path, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(self.columns)
                writer.writerows(rows)
        except OSError as exc:
            raise output_error(path, exc) from None

    def write(self, values: list[Any]) -> None:
        try:
            with open(self.path, "a", newline="") as f:
                csv.writer(f).writerow(values)
        except OSError as exc:  # a full disk: one line, not a traceback
            raise output_error(self.path, exc) from None


def _format(value: float) -> str:
    return f"{value:.6g}"


@contextmanager
def _progress_bar(enabled: bool, total: int, start: int) -> Iterator[Callable[[int, str], None]]:
    """A rich progress bar on stderr (only when enabled and stderr is a terminal)."""
    if not enabled or not sys.stderr.isatty():
        yield lambda step, info: None
        return
    columns = (TextColumn("train"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task("train", total=total, completed=start, info="")
        yield lambda step, info: progress.update(task, completed=step, info=info)


# --------------------------------------------------------------------------- the loop


def train(options: TrainOptions, progress: bool = True,
          on_step: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train (or resume, when ``options.resume`` is set) until ``options.steps``.

    ``on_step(step, loss)`` is called after every optimizer step on every rank.
    Returns the final state; on rank 0 ``checkpoint`` is ``out/last.pt``.
    """
    out = Path(options.out)
    checkpoint = read_training_checkpoint(options.resume) if options.resume else None
    if checkpoint is None and (out / LAST_NAME).exists():
        raise UsageError(f"{out} already holds a training run ({LAST_NAME}); pass "
                         f"--resume {out / LAST_NAME} to continue it or choose another --out")
    if checkpoint is not None:
        saved = ModelConfig.from_dict(checkpoint["config"])
        if saved != options.model:
            raise UsageError(f"checkpoint {options.resume} holds a model of another size "
                             "than the options ask for; drop the model size options to resume")
    dataset = CocoPoseDataset(options.annotations, options.images, options.crop,
                              options.augment, options.seed, options.sigma, options.limb_width)
    info, device = _init_distributed(options.device)
    threads = torch.get_num_threads()
    if options.threads:
        torch.set_num_threads(options.threads)
    try:
        return _train(options, dataset, checkpoint, info, device, out, progress, on_step)
    finally:
        torch.set_num_threads(threads)
        if info.enabled and dist.is_initialized():
            dist.destroy_process_group()


def _train(options: TrainOptions, dataset: CocoPoseDataset, checkpoint: dict[str, Any] | None,
           info: DistInfo, device: torch.device, out: Path, progress: bool,
           on_step: Callable[[int, float], None] | None) -> TrainResult:
    if len(dataset) // info.world_size < options.batch_size:
        raise UsageError(f"the dataset has {len(dataset)} usable images, fewer than "
                         f"--batch-size {options.batch_size} x {info.world_size} process(es)")
    torch.manual_seed(options.seed)
    model = PoseNet(options.model)
    if options.vgg and checkpoint is None:
        load_vgg(model, options.vgg)
    model.to(device)
    optimizer = _make_optimizer(model, options)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, options))
    step, epoch, batch_in_epoch, elapsed = 0, 0, 0, 0.0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["state_dict"], strict=True)
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        step, epoch = int(checkpoint["step"]), int(checkpoint["epoch"])
        # A --lr given on resume wins over the rate saved in the schedule's state.
        scheduler.base_lrs = [options.lr] * len(optimizer.param_groups)
        for group in optimizer.param_groups:
            group["lr"] = options.lr * lr_factor(step, options)
        batch_in_epoch = int(checkpoint["batch_in_epoch"])
        elapsed = float(checkpoint.get("elapsed", 0.0))
        _set_rng_state(checkpoint["rng"])
        if int(checkpoint.get("world_size", 1)) != info.world_size and batch_in_epoch:
            if info.is_main:
                print(f"posecli: note: checkpoint was trained with world size "
                      f"{checkpoint.get('world_size')}, now {info.world_size}: "
                      "continuing at the next epoch", file=sys.stderr)
            epoch, batch_in_epoch = epoch + 1, 0
    network: torch.nn.Module = model
    if info.enabled:
        network = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if options.amp and device.type == "cpu" and info.is_main:
        print("posecli: note: --amp on CPU runs bf16 autocast; it is only faster on CPUs "
              "with native bf16 support", file=sys.stderr)
    log = None
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        log = _CsvLog(out / LOG_NAME, options.model.stages,
                      step if checkpoint is not None else None)
    sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank,
                                 shuffle=True, seed=options.seed, drop_last=True)
    images_per_step = options.batch_size * info.world_size
    last_loss, last_epoch = float("nan"), epoch
    last_saved: Path | None = None
    network.train()
    run_start = time.monotonic()
    interval_start, interval_images = run_start, 0

    def save(name: str) -> Path:
        path = out / name
        metadata = {"training": options.to_dict(), "step": step, "epoch": epoch,
                    "loss": last_loss, "world_size": info.world_size}
        save_checkpoint(path, model, metadata,
                        optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                        step=step, epoch=epoch, batch_in_epoch=batch_in_epoch,
                        elapsed=elapsed + time.monotonic() - run_start,
                        world_size=info.world_size, rng=_rng_state())
        return path

    with _progress_bar(progress and info.is_main, options.steps, step) as show:
        while step < options.steps:
            sampler.set_epoch(epoch)
            indices = list(sampler)
            per_epoch = len(indices) // options.batch_size
            if batch_in_epoch >= per_epoch:
                epoch, batch_in_epoch = epoch + 1, 0
                continue
            dataset.set_epoch(epoch)
            loader = DataLoader(
                dataset, batch_size=options.batch_size,
                sampler=indices[batch_in_epoch * options.batch_size:], drop_last=True,
                num_workers=options.num_workers, worker_init_fn=worker_init_fn,
                persistent_workers=False, pin_memory=device.type == "cuda",
                generator=torch.Generator().manual_seed(options.seed * 100_003 + epoch))
            batches = iter(loader)
            try:
                for batch in batches:
                    lr = optimizer.param_groups[0]["lr"]  # the rate this step uses
                    loss, per_stage, per_branch = _step(network, optimizer, batch, device,
                                                        options)
                    scheduler.step()
                    step, batch_in_epoch = step + 1, batch_in_epoch + 1
                    stats = torch.cat([loss[None], per_branch, per_stage]).detach()
                    if info.enabled:
                        dist.all_reduce(stats)
                        stats /= info.world_size
                    values = stats.cpu().tolist()
                    last_loss, last_epoch = values[0], epoch
                    interval_images += images_per_step
                    if on_step is not None:
                        on_step(step, last_loss)
                    if info.is_main and (step % options.log_every == 0
                                         or step == options.steps):
                        now = time.monotonic()
                        rate = interval_images / max(now - interval_start, 1e-9)
                        interval_start, interval_images = now, 0
                        log.write([step, epoch, _format(lr)] + [_format(v) for v in values]
                                  + [f"{rate:.3f}", f"{elapsed + now - run_start:.3f}"])
                        stages = " ".join(f"s{i} {v:.4g}" for i, v in enumerate(values[3:], 1))
                        show(step, f"loss {last_loss:.4g} | {stages} | {rate:.2f} img/s")
                    if info.is_main and step % options.checkpoint_every == 0:
                        last_saved = _replace_with_link(save(f"ckpt_{step:06d}.pt"),
                                                        out / LAST_NAME)
                    if step >= options.steps:
                        break
            finally:
                del batches  # shuts the epoch's workers down before the next epoch
            if batch_in_epoch >= per_epoch:
                epoch, batch_in_epoch = epoch + 1, 0
        if info.is_main and (last_saved is None or step % options.checkpoint_every):
            last_saved = save(LAST_NAME)
    return TrainResult(step, last_epoch, last_loss, last_saved if info.is_main else None,
                       out / LOG_NAME if info.is_main else None)


def _step(network: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: dict[str, Any],
          device: torch.device, options: TrainOptions):
    images = batch["image"].to(device, non_blocking=True)
    heatmaps = batch["heatmaps"].to(device, non_blocking=True)
    pafs = batch["pafs"].to(device, non_blocking=True)
    mask = batch["mask"].to(device, non_blocking=True)
    optimizer.zero_grad(set_to_none=True)
    autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16)
                if options.amp else nullcontext())
    with autocast:
        outputs = network(images)
    loss, per_stage, per_branch = pose_loss(outputs, pafs, heatmaps, mask)
    loss.backward()
    if options.clip_grad > 0:
        torch.nn.utils.clip_grad_norm_(network.parameters(), options.clip_grad)
    optimizer.step()
    return loss, per_stage, per_branch


def summary(result: TrainResult) -> str:
    """One line describing a finished run."""
    line = f"trained to step {result.step} (epoch {result.epoch}), loss {result.loss:.4g}"
    return line + (f"; checkpoint {result.checkpoint}" if result.checkpoint is not None else "")
