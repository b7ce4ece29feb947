"""Training the CPM/PAF body model on COCO-format keypoint data.

* :mod:`.targets`: heatmap, PAF and loss-mask targets at stride 8 (numpy).
* :mod:`.dataset`: :class:`CocoPoseDataset`, augmented crops + targets.
* :mod:`.loop`: :func:`train` with checkpoints, exact resume and DDP.
"""

from .dataset import Augment, CocoPoseDataset
from .loop import TrainOptions, TrainResult, load_vgg, options_from_checkpoint, pose_loss, train
from .targets import Targets, build_targets

__all__ = [
    "Augment",
    "CocoPoseDataset",
    "Targets",
    "TrainOptions",
    "TrainResult",
    "build_targets",
    "load_vgg",
    "options_from_checkpoint",
    "pose_loss",
    "train",
]
