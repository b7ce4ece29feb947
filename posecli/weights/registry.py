"""The published models posecli can download, with their checksums and licences (no torch).

``posecli weights download NAME`` fetches one of :data:`MODELS` into the weights
cache under its ``file_name``, where ``--weights NAME`` finds it. A model whose
SHA-256 is pinned here is checked against its size and digest on every
download and by ``posecli weights verify NAME``; one without a published digest
is trusted on first download, and the digest it had then is recorded (see
:mod:`posecli.weights.records`) and checked from then on.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RemoteModel:
    """A downloadable model: where it is, what it must be, and under which licence."""

    name: str
    #: One line: what the model is.
    title: str
    url: str
    #: The file name in the weights cache.
    file_name: str
    #: Size in bytes and hex SHA-256 of the published file; None when not known.
    size: int | None
    sha256: str | None
    #: Short licence name shown by ``weights list`` and ``weights verify``.
    licence: str
    #: Printed once on stderr when the model is downloaded (None: nothing to point out).
    licence_notice: str | None = None

    @property
    def pinned(self) -> bool:
        """Whether downloads are checked against a digest known in advance."""
        return self.sha256 is not None


CMU = RemoteModel(
    name="cmu",
    title="CMU COCO body model (OpenPose, Cao et al. 2017), pytorch-openpose's conversion",
    # lllyasviel/Annotators on the Hugging Face hub, pinned to one revision.
    url=("https://huggingface.co/lllyasviel/Annotators/resolve/"
         "982e7edaec38759d914a963c48c4726685de7d96/body_pose_model.pth"),
    file_name="body_pose_model.pth",
    size=209_267_595,
    sha256="25a948c16078b0f08e236bda51a385d855ef4c153598947c28c0d47ed94bb746",
    licence="OpenPose licence: non-commercial research use only",
    licence_notice=(
        "posecli: note: the CMU OpenPose weights are licensed for academic or non-profit "
        "non-commercial research use only (OpenPose's LICENSE); commercial use needs a "
        "licence from Carnegie Mellon University. 'posecli weights download lightweight' "
        "fetches an Apache-2.0 model."),
)

LIGHTWEIGHT = RemoteModel(
    name="lightweight",
    title=("Lightweight OpenPose (Osokin 2018): MobileNet-v1 trunk, 4.1 M parameters, "
           "40% AP on COCO val"),
    url=("https://download.01.org/opencv/openvino_training_extensions/models/"
         "human_pose_estimation/checkpoint_iter_370000.pth"),
    file_name="checkpoint_iter_370000.pth",
    size=None,  # no published size or digest: trusted on first download, then recorded
    sha256=None,
    licence="Apache-2.0 (its repository's licence)",
)

#: Name -> model, in the order ``weights list`` shows them.
MODELS: dict[str, RemoteModel] = {model.name: model for model in (CMU, LIGHTWEIGHT)}
#: What ``posecli weights download`` fetches without a name.
DEFAULT_MODEL = CMU.name


def model_for_file(file_name: str, sha256: str | None = None) -> RemoteModel | None:
    """The registry model a file is: by its pinned digest, else by its cache file name."""
    if sha256 is not None:
        for model in MODELS.values():
            if model.sha256 == sha256:
                return model
    return next((m for m in MODELS.values() if m.file_name == file_name), None)
