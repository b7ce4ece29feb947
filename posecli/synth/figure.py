"""Figures: body proportions, poses within joint limits, outfits, and sampling them.

Units: lengths of a :class:`Body` in standing heights, angles in radians (the
``DEG`` factor converts degrees), colours RGB 0..255.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

DEG = math.pi / 180.0


@dataclass(frozen=True)
class Body:
    """Body proportions in units of standing height (head top to sole = about 1).

    Lengths are bone lengths; ``r_*`` are capsule radii; ``*_half`` are half
    widths (lateral) and ``chest_depth`` the torso's half depth (front to back).
    """

    head_rx: float = 0.055
    head_ry: float = 0.066
    neck: float = 0.045
    torso: float = 0.29
    shoulder_half: float = 0.115
    shoulder_drop: float = 0.025
    hip_half: float = 0.08
    waist_half: float = 0.1
    chest_depth: float = 0.06
    upper_arm: float = 0.175
    forearm: float = 0.15
    hand: float = 0.06
    thigh: float = 0.245
    shin: float = 0.245
    foot: float = 0.085
    r_neck: float = 0.026
    r_upper_arm: float = 0.034
    r_forearm: float = 0.027
    r_hand: float = 0.026
    r_thigh: float = 0.052
    r_shin: float = 0.038
    r_foot: float = 0.022


@dataclass(frozen=True)
class Limb:
    """One arm or leg, in radians.

    ``flex``: forward swing of the upper bone (arm raised forward, hip flexion;
    negative swings back); ``abd``: sideways raise away from the body; ``twist``:
    outward rotation about the upper bone (turns the bent lower bone outward);
    ``bend``: elbow flexion (forearm forward) or knee flexion (shin backward),
    0 = straight.
    """

    flex: float = 0.0
    abd: float = 0.0
    twist: float = 0.0
    bend: float = 0.0


# Joint limits in degrees: (low, high) per Limb field.
_ARM_LIMITS = {"flex": (-60, 180), "abd": (0, 175), "twist": (-70, 100), "bend": (0, 150)}
_LEG_LIMITS = {"flex": (-35, 125), "abd": (-10, 50), "twist": (-30, 40), "bend": (0, 145)}
_POSE_LIMITS = {"roll": (-35, 35), "lean_forward": (-20, 50), "lean_side": (-25, 25),
                "torso_twist": (-35, 35), "head_yaw": (-70, 70), "head_pitch": (-35, 45)}


@dataclass(frozen=True)
class Pose:
    """A figure's pose, in radians.

    ``yaw``: which way the figure faces, 0 = toward the camera, +pi/2 = toward
    the image's right, pi = away; ``roll``: in-plane lean about the pelvis
    (positive turns clockwise on screen); ``lean_forward`` / ``lean_side``
    (toward the figure's left) / ``torso_twist`` (shoulders turned to the
    figure's left) move the torso on the pelvis; ``head_yaw`` (to the figure's
    left) and ``head_pitch`` (down) move the head on the torso.
    """

    yaw: float = 0.0
    roll: float = 0.0
    lean_forward: float = 0.0
    lean_side: float = 0.0
    torso_twist: float = 0.0
    head_yaw: float = 0.0
    head_pitch: float = 0.0
    left_arm: Limb = Limb(abd=10 * DEG, bend=10 * DEG)
    right_arm: Limb = Limb(abd=10 * DEG, bend=10 * DEG)
    left_leg: Limb = Limb(abd=3 * DEG)
    right_leg: Limb = Limb(abd=3 * DEG)

    def clipped(self) -> Pose:
        """The pose with every angle clipped to its joint limits (yaw is free)."""
        values = {name: _clip_deg(getattr(self, name), low, high)
                  for name, (low, high) in _POSE_LIMITS.items()}
        for name, limits in (("left_arm", _ARM_LIMITS), ("right_arm", _ARM_LIMITS),
                             ("left_leg", _LEG_LIMITS), ("right_leg", _LEG_LIMITS)):
            limb = getattr(self, name)
            values[name] = Limb(**{key: _clip_deg(getattr(limb, key), low, high)
                                   for key, (low, high) in limits.items()})
        return replace(self, **values)


@dataclass(frozen=True)
class Outfit:
    """RGB colours (0..255) and cut of a figure's clothes."""

    skin: tuple[float, float, float] = (205.0, 160.0, 130.0)
    hair: tuple[float, float, float] = (45.0, 32.0, 22.0)
    shirt: tuple[float, float, float] = (60.0, 110.0, 190.0)
    trousers: tuple[float, float, float] = (50.0, 55.0, 70.0)
    shoes: tuple[float, float, float] = (30.0, 28.0, 26.0)
    long_sleeves: bool = False
    long_trousers: bool = True
    hair_cover: float = 0.45  # how far the hair comes down: 0 bald .. 1 long


@dataclass(frozen=True)
class Figure:
    """One person to draw: ``height`` is the standing height in pixels; ``x``, ``y``
    the pelvis position in pixels."""

    body: Body
    pose: Pose
    outfit: Outfit
    height: float
    x: float
    y: float


def _clip_deg(value: float, low: float, high: float) -> float:
    return float(min(max(value, low * DEG), high * DEG))



def sample_body(rng: np.random.Generator) -> Body:
    """Random proportions: build (radii), per-bone jitter, sometimes child-like."""
    base = Body()
    build = rng.uniform(0.8, 1.3)
    child = rng.random() < 0.15
    values: dict[str, float] = {}
    for name in Body.__dataclass_fields__:
        value = getattr(base, name) * rng.uniform(0.92, 1.08)
        if name.startswith("r_") or name in ("hip_half", "waist_half", "chest_depth"):
            value *= build
        if child:
            if name in ("head_rx", "head_ry"):
                value *= 1.3
            elif name in ("upper_arm", "forearm", "thigh", "shin", "torso", "shoulder_half"):
                value *= 0.87
        values[name] = float(value)
    values["shoulder_half"] *= rng.uniform(0.9, 1.12)
    return Body(**values)


def limb_deg(flex: float = 0.0, abd: float = 0.0, twist: float = 0.0, bend: float = 0.0) -> Limb:
    """A Limb from degrees."""
    return Limb(flex * DEG, abd * DEG, twist * DEG, bend * DEG)


POSE_KINDS = ("stand", "walk", "run", "arms_up", "wave", "arms_out", "sit", "crouch",
              "random")
_KIND_WEIGHTS = np.array([0.2, 0.2, 0.08, 0.1, 0.1, 0.07, 0.1, 0.06, 0.09])


def sample_pose(rng: np.random.Generator, kind: str | None = None) -> Pose:
    """A random plausible pose of ``kind`` (one of POSE_KINDS; None picks one)."""
    if kind is None:
        kind = POSE_KINDS[int(rng.choice(len(POSE_KINDS), p=_KIND_WEIGHTS))]
    u = rng.uniform

    def hanging_arm() -> Limb:
        return limb_deg(u(-15, 25), u(4, 22), u(-20, 30), u(5, 45))

    def standing_leg() -> Limb:
        return limb_deg(u(-6, 10), u(0, 10), u(-5, 20), u(0, 12))

    arms = [hanging_arm(), hanging_arm()]
    legs = [standing_leg(), standing_leg()]
    lean_forward, profile_bias = u(-5, 10), False
    if kind in ("walk", "run"):
        phase = u(0, 2 * math.pi)
        swing = u(14, 30) if kind == "walk" else u(30, 55)
        knee = (0, 45) if kind == "walk" else (20, 110)
        elbow = (10, 45) if kind == "walk" else (65, 105)
        for side, sign in ((0, 1.0), (1, -1.0)):
            legs[side] = limb_deg(sign * swing * math.sin(phase) + u(-4, 4), u(0, 8), u(-5, 15),
                               u(*knee))
            arms[side] = limb_deg(-sign * 0.9 * swing * math.sin(phase) + u(-5, 5), u(3, 15),
                               u(-10, 20), u(*elbow))
        lean_forward = u(-3, 8) if kind == "walk" else u(5, 22)
        profile_bias = True
    elif kind == "arms_up":
        for side in (0, 1) if rng.random() < 0.7 else (int(rng.integers(2)),):
            arms[side] = limb_deg(u(-10, 40), u(120, 172), u(0, 60), u(0, 45))
    elif kind == "wave":
        side = int(rng.integers(2))
        arms[side] = limb_deg(u(-15, 20), u(70, 115), u(65, 100), u(30, 120))
    elif kind == "arms_out":
        arms = [limb_deg(u(-20, 40), u(65, 105), u(-20, 40), u(0, 40)) for _ in range(2)]
        legs = [limb_deg(u(-5, 10), u(5, 25), u(0, 20), u(0, 10)) for _ in range(2)]
    elif kind == "sit":
        legs = [limb_deg(u(65, 100), u(3, 22), u(-5, 20), u(60, 105)) for _ in range(2)]
        arms = [limb_deg(u(10, 60), u(5, 25), u(-10, 30), u(30, 95)) for _ in range(2)]
        lean_forward = u(-5, 20)
    elif kind == "crouch":
        legs = [limb_deg(u(80, 120), u(8, 30), u(0, 25), u(95, 140)) for _ in range(2)]
        arms = [limb_deg(u(20, 80), u(5, 30), u(-10, 30), u(20, 110)) for _ in range(2)]
        lean_forward = u(15, 40)
    elif kind == "random":
        arms = [limb_deg(*(u(lo, hi) for lo, hi in _ARM_LIMITS.values())) for _ in range(2)]
        legs = [limb_deg(u(-30, 90), u(-5, 35), u(-20, 30), u(0, 100)) for _ in range(2)]
        lean_forward = u(-10, 30)
    elif kind != "stand":
        raise ValueError(f"unknown pose kind {kind!r}")
    if profile_bias and rng.random() < 0.65:
        yaw = float(rng.choice([-1.0, 1.0])) * u(60, 120)
    else:
        mode = rng.random()
        if mode < 0.5:
            yaw = u(-30, 30)
        elif mode < 0.6:
            yaw = 180 + u(-30, 30)
        else:
            yaw = u(-180, 180)
    roll = rng.normal(0, 6) if rng.random() < 0.85 else u(-30, 30)
    return Pose(
        yaw=yaw * DEG, roll=roll * DEG, lean_forward=lean_forward * DEG,
        lean_side=u(-8, 8) * DEG, torso_twist=u(-15, 15) * DEG,
        head_yaw=u(-40, 40) * DEG, head_pitch=u(-15, 25) * DEG,
        left_arm=arms[0], right_arm=arms[1], left_leg=legs[0], right_leg=legs[1],
    ).clipped()


_SKIN_LIGHT = np.array([240.0, 206.0, 178.0])
_SKIN_DARK = np.array([78.0, 50.0, 36.0])
_HAIR = np.array([[22, 16, 12], [55, 38, 24], [105, 70, 40], [190, 160, 100],
                  [150, 150, 150], [125, 55, 25], [35, 30, 30]], dtype=np.float64)
_TROUSERS = np.array([[40, 55, 95], [30, 30, 35], [70, 70, 75], [150, 130, 95],
                      [95, 80, 60], [20, 35, 60]], dtype=np.float64)


def hsv(h: float, s: float, v: float) -> np.ndarray:
    """HSV (all 0..1) to RGB 0..255."""
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return 255.0 * (v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0))


def _tuple3(colour: np.ndarray) -> tuple[float, float, float]:
    c = np.clip(colour, 0, 255)
    return (float(c[0]), float(c[1]), float(c[2]))


def sample_outfit(rng: np.random.Generator) -> Outfit:
    """Random skin tone, hair, shirt, trousers and shoes."""
    skin = _SKIN_LIGHT + rng.random() * (_SKIN_DARK - _SKIN_LIGHT) + rng.normal(0, 6, 3)
    hair = _HAIR[rng.integers(len(_HAIR))] + rng.normal(0, 8, 3)
    shirt = hsv(rng.random(), rng.uniform(0.15, 0.9), rng.uniform(0.25, 0.97))
    if rng.random() < 0.6:
        trousers = _TROUSERS[rng.integers(len(_TROUSERS))] + rng.normal(0, 10, 3)
    else:
        trousers = hsv(rng.random(), rng.uniform(0.1, 0.8), rng.uniform(0.15, 0.8))
    shoes = hsv(rng.random(), rng.uniform(0.0, 0.5), rng.uniform(0.05, 0.5))
    return Outfit(skin=_tuple3(skin), hair=_tuple3(hair), shirt=_tuple3(shirt),
                  trousers=_tuple3(trousers), shoes=_tuple3(shoes),
                  long_sleeves=bool(rng.random() < 0.45),
                  long_trousers=bool(rng.random() < 0.75),
                  hair_cover=float(rng.uniform(0.0, 1.0) if rng.random() < 0.93 else -1.0))
