"""Reading, converting, validating and saving weights files.

Five file formats are read, detected by content (never by file name):

``body_pose_model``
    pytorch-openpose's conversion: a flat state dict keyed by the Caffe layer
    names (``conv1_1.weight`` .. ``Mconv7_stage6_L2.bias``), i.e. PoseNet's keys.
``pose_model``
    tensorboy's rtpose conversion: ``nn.Sequential`` keys ``model0.N.weight``
    (trunk), ``modelS_1.N`` (stage S, PAF branch L1) and ``modelS_2.N`` (stage S,
    heatmap branch L2), optionally prefixed ``module.``; mapped by position.
``caffemodel``
    CMU's original ``pose_iter_440000.caffemodel`` (see :mod:`posecli.caffemodel`).
``posecli``
    posecli's own checkpoint written by :func:`save_checkpoint`.
``lightweight``
    Lightweight OpenPose's published checkpoint (a different network, see
    :mod:`posecli.lightweight`): ``state_dict`` beside optimizer and scheduler
    state; its trunk, initial stage and first refinement stage are kept.

For the first three the :class:`~posecli.model.ModelConfig` is inferred from the
tensor shapes. Torch files are always read with ``weights_only=True``: loading a
weights file never runs code. Every problem is a :class:`WeightsError` with a
one-line message.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..caffemodel import parse_caffemodel
from ..errors import WeightsError
from ..families import CMU, LIGHTWEIGHT, ModelFamily
from ..lightweight.checkpoint import build_network as build_lightweight
from ..lightweight.checkpoint import expected_shapes as lightweight_shapes
from ..lightweight.checkpoint import is_parameter
from ..lightweight.checkpoint import read_checkpoint as read_lightweight
from ..lightweight.network import LightweightConfig, LightweightNet
from ..model import ModelConfig, PoseNet
from ..outputs import write_atomic
from .files import (
    CAFFE,
    PICKLE,
    ZIP,
    WeightsBytes,
    read_weights_file,
)
from .layouts import CHECKPOINT_FORMAT, SEQUENTIAL_KEY, state_dict_layout, strip_module_prefix

CHECKPOINT_VERSION = 1

_TRUNK_NAMES = (
    "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv3_4",
    "conv4_1", "conv4_2", "conv4_3_CPM", "conv4_4_CPM",
)
_STAGE_KEY = re.compile(r"Mconv\d+_stage(\d+)_L[12]\.")
_MAX_LISTED = 5  # keys named per kind of problem in a "does not fit" message


@dataclass
class LoadedWeights:
    """A weights file read into its network's naming.

    ``state_dict`` maps the network's keys (PoseNet's, or LightweightNet's for the
    ``lightweight`` format) to float32 CPU tensors; ``config`` is a ModelConfig or
    a LightweightConfig; ``sha256`` is the hex digest of the file's bytes;
    ``metadata`` comes from posecli checkpoints (and a Lightweight checkpoint's
    step and stage count).
    """

    state_dict: dict[str, torch.Tensor]
    config: ModelConfig | LightweightConfig
    format: str
    path: Path
    sha256: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def family(self) -> ModelFamily:
        """The model family: its input spec and default decoding."""
        return LIGHTWEIGHT if isinstance(self.config, LightweightConfig) else CMU

    def num_parameters(self) -> int:
        """Total number of learned scalar parameters (batch-norm statistics excluded)."""
        return sum(t.numel() for k, t in self.state_dict.items() if is_parameter(k))


# --------------------------------------------------------------------------- layer names


def block_names(block: str) -> list[str] | None:
    """PoseNet conv names of an ``nn.Sequential`` block of the rtpose layout, in order.

    ``model0`` is the VGG+CPM trunk, ``modelS_B`` stage S branch B (1 = PAFs,
    2 = heatmaps); None for a name that is not such a block.
    """
    if block == "model0":
        return list(_TRUNK_NAMES)
    match = re.fullmatch(r"model(\d+)_([12])", block)
    if not match or int(match[1]) < 1:
        return None
    stage, branch = int(match[1]), match[2]
    if stage == 1:
        return [f"conv5_{i}_CPM_L{branch}" for i in range(1, 6)]
    return [f"Mconv{i}_stage{stage}_L{branch}" for i in range(1, 8)]


def _from_sequential(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename rtpose keys by position: the k-th conv index of a block -> its k-th name.

    Keys that cannot be placed keep their original name (reported as unexpected).
    """
    indices: dict[str, set[int]] = {}
    for key in state:
        if match := SEQUENTIAL_KEY.fullmatch(key):
            indices.setdefault(match[1], set()).add(int(match[2]))
    positions = {block: {index: pos for pos, index in enumerate(sorted(found))}
                 for block, found in indices.items()}
    return {_sequential_name(key, positions) or key: tensor for key, tensor in state.items()}


def _sequential_name(key: str, positions: dict[str, dict[int, int]]) -> str | None:
    """PoseNet name of an rtpose key, given each block's index -> conv position."""
    match = SEQUENTIAL_KEY.fullmatch(key)
    names = block_names(match[1]) if match else None
    if not names:
        return None
    position = positions[match[1]][int(match[2])]
    return f"{names[position]}.{match[3]}" if position < len(names) else None


def _strip_module_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix that nn.DataParallel puts on every key."""
    return dict(zip(strip_module_prefix(state), state.values()))


# --------------------------------------------------------------------------- config inference


def infer_config(state: dict[str, torch.Tensor]) -> ModelConfig:
    """The ModelConfig whose PoseNet has these tensors' shapes.

    Widths are the output channels (dim 0) of the first conv of each group, the
    refinement kernel the height of ``Mconv1``'s kernel; stages = 1 + the number
    of distinct ``stageN`` in ``Mconv`` keys. A field whose tensor is absent or
    not 4-D keeps its default, so validation can name the key.
    """
    default = ModelConfig()
    stages = sorted({int(m[1]) for key in state if (m := _STAGE_KEY.match(key))})

    def weight(name: str) -> torch.Tensor | None:
        tensor = state.get(f"{name}.weight")
        return tensor if tensor is not None and tensor.dim() == 4 else None

    def out(name: str, fallback: int) -> int:
        tensor = weight(name)
        return int(tensor.shape[0]) if tensor is not None else fallback

    refine = weight(f"Mconv1_stage{stages[0]}_L1") if stages else None
    return ModelConfig(
        stages=1 + len(stages),
        vgg_widths=tuple(out(n, w) for n, w in
                         zip(("conv1_1", "conv2_1", "conv3_1", "conv4_1"), default.vgg_widths)),
        cpm_widths=tuple(out(n, w) for n, w in
                         zip(("conv4_3_CPM", "conv4_4_CPM"), default.cpm_widths)),
        stage1_width=out("conv5_1_CPM_L1", default.stage1_width),
        stage1_hidden=out("conv5_4_CPM_L1", default.stage1_hidden),
        refine_width=int(refine.shape[0]) if refine is not None else default.refine_width,
        refine_kernel=int(refine.shape[2]) if refine is not None else default.refine_kernel,
    )


# --------------------------------------------------------------------------- validation


def _shape(t: torch.Tensor | torch.Size) -> str:
    return "x".join(map(str, t.shape if isinstance(t, torch.Tensor) else t)) or "scalar"


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f" (+{len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")


def _check_tensors(state: dict[Any, Any], path: Path) -> dict[str, torch.Tensor]:
    """Keys are strings and values floating tensors; returns float32 copies on CPU."""
    for key, value in state.items():
        if not isinstance(key, str):
            raise WeightsError(f"weights file {path} has a non-string key {key!r}")
        if not isinstance(value, torch.Tensor):
            raise WeightsError(
                f"weights file {path}: {key} is a {type(value).__name__}, not a tensor")
        if not value.is_floating_point():
            raise WeightsError(
                f"weights file {path}: {key} has dtype {value.dtype}, expected floating point")
    return {key: value.detach().to("cpu", torch.float32).contiguous()
            for key, value in state.items()}


def validate(state: dict[str, torch.Tensor], config: ModelConfig | LightweightConfig,
             path: Path) -> None:
    """Raise a one-line WeightsError unless ``state`` fits the network of ``config`` exactly
    (PoseNet, or LightweightNet without its batch-norm step counters).

    Names up to five missing, unexpected and wrongly shaped keys each, then
    rejects tensors with NaN or infinite values.
    """
    if isinstance(config, LightweightConfig):
        expected, model = lightweight_shapes(config), "the Lightweight OpenPose model"
    else:
        with torch.device("meta"):  # shapes only: nothing is allocated or initialised
            expected = {k: v.shape for k, v in PoseNet(config).state_dict().items()}
        model = "the model"
    problems = []
    if missing := [k for k in expected if k not in state]:
        problems.append(f"missing {_listing(missing)}")
    if unexpected := [k for k in state if k not in expected]:
        problems.append(f"unexpected {_listing(unexpected)}")
    if wrong := [f"{k} ({_shape(state[k])}, expected {_shape(shape)})"
                 for k, shape in expected.items() if k in state and state[k].shape != shape]:
        problems.append(f"wrong shape {_listing(wrong)}")
    if problems:
        raise WeightsError(f"weights file {path} does not fit {model}: {'; '.join(problems)}")
    if bad := [k for k, t in state.items() if not bool(torch.isfinite(t).all())]:
        raise WeightsError(f"weights file {path} has NaN or infinite values in {_listing(bad)}")


# --------------------------------------------------------------------------- loading


def load_weights(path: str | Path) -> LoadedWeights:
    """Read a weights file of any supported format into PoseNet naming, validated.

    Only regular files are read, and only their first bytes until they look
    like weights (:func:`~posecli.weights.files.read_weights_file`).
    """
    path = Path(path)
    content = read_weights_file(path)
    digest = hashlib.sha256(content.data).hexdigest()
    if content.kind == CAFFE:
        fmt, state, config, metadata = _read_caffe(content.data, path)
    else:
        fmt, state, config, metadata = _read_torch(content, path)
    state = _check_tensors(state, path)
    if config is None:
        config = _infer(state, path)
    validate(state, config, path)
    return LoadedWeights(state, config, fmt, path, digest, metadata)


def _one_line(exc: BaseException, kind: str | None) -> str:
    """A short single-line reason for a failed torch.load of a file of this ``kind``.

    Only a refused global means the file holds code; any other failure of the
    restricted unpickler, or of the archive reader, means a damaged file.
    """
    text = " ".join(str(exc).split())
    if found := re.search(r"Unsupported global: GLOBAL ([A-Za-z_][\w.]*) was not", text):
        return (f"it holds Python objects other than tensors ({found[1]}), "
                "refused so no code runs")
    if isinstance(exc, pickle.UnpicklingError):
        found = re.search(r"WeightsUnpickler error: (.*?)(?: Check the documentation|$)", text)
        text = found[1] if found else text
    text = text.split(". ")[0] or type(exc).__name__
    text = text if len(text) <= 200 else text[:197] + "..."
    if kind == ZIP:
        return f"it is a corrupt PyTorch archive ({text})"
    if kind == PICKLE:
        return f"it is a corrupt or truncated PyTorch file ({text})"
    return text


def load_untrusted(path: str | Path, what: str) -> Any:
    """torch.load of an untrusted file (tensors and plain data only: no code runs).

    The file is read with the same checks as :func:`load_weights` (regular files
    only, zip structure checked); ``what`` names it, ending with its path, in the
    one-line WeightsError raised when it cannot be read (e.g. "checkpoint x.pt").
    """
    content = read_weights_file(path, what.removesuffix(f" {path}"))
    if content.kind == CAFFE:
        raise WeightsError(f"{what} is a Caffe model, not a PyTorch file")
    return _torch_load(content.data, content.kind, what)


def _torch_load(data: bytes, kind: str | None, what: str) -> Any:
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4"
            warnings.simplefilter("ignore")
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{what} could not be read: {_one_line(exc, kind)}") from None


def _read_torch(content: WeightsBytes, path: Path):
    """(format, state dict, config or None, metadata) of a torch.save'd file."""
    obj = _torch_load(content.data, content.kind, f"weights file {path}")
    if not isinstance(obj, dict):
        raise WeightsError(
            f"weights file {path} holds a {type(obj).__name__}, not a state dict or checkpoint")
    if obj.get("format") == CHECKPOINT_FORMAT:
        return _read_checkpoint(obj, path)
    if bad := [k for k in obj if not isinstance(k, str)]:
        raise WeightsError(f"weights file {path} has a non-string key {bad[0]!r}")
    if _lightweight_layout(obj):
        state, config, metadata = read_lightweight(obj, f"weights file {path}")
        return "lightweight", state, config, metadata
    state = _strip_module_prefix(obj)
    if state_dict_layout(state) == "pose_model":
        return "pose_model", _from_sequential(state), None, {}
    return "body_pose_model", state, None, {}


def _lightweight_layout(obj: dict[str, Any]) -> bool:
    """Whether ``obj`` is a Lightweight OpenPose checkpoint (or a bare state dict of one)."""
    inner = obj.get("state_dict")
    keys = inner if isinstance(inner, dict) else obj
    return state_dict_layout(k for k in keys if isinstance(k, str)) == "lightweight"


def _read_checkpoint(obj: dict[str, Any], path: Path):
    version = obj.get("version")
    if version != CHECKPOINT_VERSION:
        raise WeightsError(f"weights file {path} is a posecli checkpoint of unsupported "
                           f"version {version!r} (this posecli reads version {CHECKPOINT_VERSION})")
    state, config, metadata = obj.get("state_dict"), obj.get("config"), obj.get("metadata", {})
    if not all(isinstance(part, dict) for part in (state, config, metadata)):
        raise WeightsError(f"weights file {path} is a broken posecli checkpoint: "
                           "state_dict, config and metadata must be dicts")
    try:
        model_config = ModelConfig.from_dict(config)
    except WeightsError as exc:
        raise WeightsError(f"weights file {path}: {exc}") from None
    return "posecli", state, model_config, metadata


def _read_caffe(data: bytes, path: Path):
    layers = parse_caffemodel(data, str(path))
    state = {}
    for name, blobs in layers.items():
        if not blobs:
            continue
        if len(blobs) > 2:
            raise WeightsError(f"weights file {path}: layer {name} has {len(blobs)} blobs, "
                               "expected a weight and a bias")
        state[f"{name}.weight"] = torch.from_numpy(blobs[0])
        if len(blobs) == 2:
            state[f"{name}.bias"] = torch.from_numpy(blobs[1].reshape(-1))
    if not state:
        raise WeightsError(f"weights file {path} is a Caffe model without any weights")
    return "caffemodel", state, None, {}


def _infer(state: dict[str, torch.Tensor], path: Path) -> ModelConfig:
    try:
        return infer_config(state)
    except ValueError as exc:
        raise WeightsError(f"weights file {path} does not fit the model: {exc}") from None


def build_model(weights: LoadedWeights,
                device: str | torch.device = "cpu") -> PoseNet | LightweightNet:
    """The network of ``weights.config`` (PoseNet or LightweightNet) holding ``weights``, in
    eval mode, on ``device``. Both have ``predict(images) -> (heatmaps, pafs)`` in the CMU
    layout."""
    if isinstance(weights.config, LightweightConfig):
        return build_lightweight(weights.state_dict, weights.config).eval().to(device)
    model = PoseNet(weights.config)
    model.load_state_dict(weights.state_dict, strict=True)
    return model.eval().to(device)


# --------------------------------------------------------------------------- saving

_PLAIN_TYPES = (str, bytes, int, float, bool, type(None), list, tuple, set, dict, OrderedDict,
                torch.Size, torch.dtype, torch.device)


def _check_plain(obj: Any, where: str) -> None:
    """Raise TypeError unless ``obj`` is something ``weights_only`` loading accepts."""
    if isinstance(obj, torch.Tensor):
        return
    if type(obj) not in _PLAIN_TYPES:
        raise TypeError(f"{where} is a {type(obj).__name__}; checkpoints may only hold "
                        "tensors and plain Python values (str, numbers, lists, dicts...)")
    if isinstance(obj, dict):
        for key, value in obj.items():
            _check_plain(key, f"{where} key")
            _check_plain(value, f"{where}[{key!r}]")
    elif isinstance(obj, (list, tuple, set)):
        for i, value in enumerate(obj):
            _check_plain(value, f"{where}[{i}]")


def save_checkpoint(path: str | Path, model: PoseNet, metadata: dict[str, Any],
                    **extra: Any) -> None:
    """Write a posecli checkpoint atomically (:func:`posecli.outputs.write_atomic`: temp file
    in the same dir, flushed to disk, os.replace; mode as the umask says; a failure such
    as a full disk raises PoseCliError and leaves no temporary file).

    ``extra`` entries (e.g. ``optimizer=opt.state_dict(), step=1000``) are stored
    beside the model and ignored by :func:`load_weights`. Metadata and extras must
    hold only tensors and plain Python values, so the file loads with
    ``weights_only=True``; anything else raises TypeError before writing.
    """
    path = Path(path)
    reserved = {"format", "version", "config", "state_dict", "metadata"} & set(extra)
    if reserved:
        raise TypeError(f"extra checkpoint keys clash with reserved ones: {sorted(reserved)}")
    _check_plain(metadata, "metadata")
    _check_plain(extra, "extra")
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": metadata,
        **extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()  # serialised first: torch.save hides a full disk in a RuntimeError
    torch.save(checkpoint, buffer)
    write_atomic(path, buffer.getbuffer())

