"""Synthetic people: procedurally drawn, articulated figures with exact COCO labels.

Every figure is a kinematic skeleton posed in 3-D (pelvis, spine, neck, head,
arms and legs with joint-angle limits), turned to face any direction, leaned in
the image plane, scaled and placed, then rasterised with vectorised numpy as
shaded capsules (limbs), a convex rounded polygon (torso) and an ellipse (head,
with hair on the side facing away). A per-figure z-buffer resolves the figure's
own parts; figures are painted back to front, and an id map records which
figure owns every pixel. From these the COCO visibility of each keypoint follows:

* ``v = 2``: the keypoint's pixel shows its own figure, at the keypoint's depth;
* ``v = 1``: labelled but hidden (behind another figure, or behind the figure's
  own torso, limbs or head, like the far shoulder of a figure seen in profile);
* ``v = 0``: outside the image, or not labelled (the nose and eyes of a figure
  seen from behind); ``x = y = 0`` then, as in COCO.

Units: pixels, with pixel centres at integer coordinates (column ``x``, row
``y``); a keypoint is inside the image when ``0 <= x <= W - 1`` and
``0 <= y <= H - 1``. Angles are radians. Left/right are anatomical: a figure's
``left_shoulder`` is on the image's right when the figure faces the camera.

Everything is deterministic given the ``numpy.random.Generator`` passed in, and
``generate_dataset`` derives one generator per image and per clip from its seed,
so the same seed writes byte-identical annotation and image files.

Modules: ``figure`` (bodies, poses, outfits, sampling), ``geometry`` (a figure in
image space), ``raster`` (drawing, visibility), ``background`` (backdrops),
``scenes`` (figures placed in an image, COCO labels), ``clips`` (moving figures
with identities: walkers that cross, hide each other, leave and come back) and
``dataset`` (the files ``posecli synth`` writes).

Library use (on-the-fly training data)::

    rng = np.random.default_rng(0)
    scene = render_people(rng, 368, 368, n_people=3)
    scene.image      # (368, 368, 3) uint8 RGB
    scene.keypoints  # (3, 17, 3) float64, COCO-17 order, (x, y, v)
"""

from .background import render_background
from .clips import Motion, clip_scenes, figure_at, sample_motion
from .dataset import GENERATOR, SynthSummary, encode_png, generate_dataset
from .figure import (
    POSE_KINDS,
    Body,
    Figure,
    Limb,
    Outfit,
    Pose,
    sample_body,
    sample_outfit,
    sample_pose,
)
from .geometry import figure_extent
from .raster import Scene, keypoint_visibility, render_figures
from .scenes import render_people, sample_figures

__all__ = [
    "GENERATOR",
    "POSE_KINDS",
    "Body",
    "Figure",
    "Limb",
    "Motion",
    "Outfit",
    "Pose",
    "Scene",
    "SynthSummary",
    "clip_scenes",
    "encode_png",
    "figure_at",
    "figure_extent",
    "generate_dataset",
    "keypoint_visibility",
    "render_background",
    "render_figures",
    "render_people",
    "sample_body",
    "sample_figures",
    "sample_motion",
    "sample_outfit",
    "sample_pose",
]
