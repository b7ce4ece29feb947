"""Tracking and smoothing quality on synthetic clips with identities, printed as tables.

    python benchmarks/bench_tracking.py            # (a) the tracker alone, (b) the pipeline
    python benchmarks/bench_tracking.py --tune     # also the grids behind the defaults

Clips come from ``posecli synth`` (walkers that cross, hide each other, leave
the frame and come back; figures acting in place), 256 x 256 at 25 fps. The
ground truth of a frame is every figure with at least 4 visible keypoints
(v = 2: what a bottom-up parse with ``--min-parts 4`` could find at all).

(a) The tracker alone: the truth's visible keypoints with Gaussian noise
(sigma pixels), a fraction of people dropped at random in each frame, and false
people (a real pose of the clip moved to a random place, for one frame) in
proportion to the people present. (b) The whole pipeline: the built-in demo
model (``--weights demo --net-height 256``) on the encoded clips, tracked
afterwards so every variant sees the same poses.

Metrics come from py-motmetrics: people are matched to the truth in each frame
by keypoint distance (the mean distance of the truth's visible keypoints over
the person's size, at most 0.2; OKS with COCO's sigmas rejects correct matches
of small people at these noise levels), then MOTA, IDF1 and ID switches (per
500 person-frames of truth). The tracker alone is judged against the people it
was given (dropped people are a detector's misses, not a tracker's: counted
against the whole truth, IDF1 cannot pass 1.8 / 1.9 = 0.947 with 10% drops);
both are shown. "re-entry" switches are those of a person coming back
into view after longer than the lost-track buffer: no tracker without
appearance features can keep those ids ("IDF1 split" counts such a person as
a new one, so it shows what is left once those are set aside). Jitter: mean keypoint acceleration
|x[t+1] - 2 x[t] + x[t-1]| in pixels per frame squared, over keypoints present
in three consecutive frames of a track; error: mean distance in pixels from the
truth of the keypoints of matched people. People are matched to the truth by
their raw keypoints, so a smoothed run has the same matches, MOTA, IDF1 and
switches as the same run unsmoothed, and its jitter and error are measured on
the same people.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import motmetrics as mm
import numpy as np
import orjson
from rich import box
from rich.console import Console
from rich.table import Table

from posecli.formats import FrameResult
from posecli.person import Person
from posecli.skeleton import COCO17_FROM_COCO18, coco18_to_coco17
from posecli.synth import clip_scenes, generate_dataset
from posecli.track import SmoothParams, TrackParams, track_frames

SIZE, FPS = 256, 25.0
MIN_VISIBLE = 4
MATCH_DISTANCE = 0.2  # mean keypoint distance over the person's size, to count as a match
MIN_SHARED = 3
#: (min_cutoff Hz, beta per frame height/s) tried by --tune.
SMOOTHING_GRID = [(c, b) for c in (0.5, 1.0, 2.0, 3.0) for b in (0.0, 5.0, 12.5, 25.0)]


@dataclass
class TruthFrame:
    """One frame of truth: ``ids`` (P,), ``keypoints`` P x 17 x 3 (x, y, v), ``areas`` (P,)."""

    index: int
    time: float
    ids: np.ndarray
    keypoints: np.ndarray
    areas: np.ndarray


def _truth_frame(index: int, time_s: float, ids, keypoints, areas) -> TruthFrame:
    keypoints = np.asarray(keypoints, dtype=np.float64).reshape(-1, 17, 3)
    keep = (keypoints[..., 2] == 2).sum(-1) >= MIN_VISIBLE
    return TruthFrame(index, time_s, np.asarray(ids)[keep], keypoints[keep],
                      np.asarray(areas, dtype=np.float64)[keep])


def rendered_truth(seed: int, frames: int, people: tuple[int, int]) -> list[TruthFrame]:
    """A clip's truth straight from the renderer (no video encoded)."""
    out = []
    rng = np.random.default_rng(seed)
    for index, t, scene, ids in clip_scenes(rng, SIZE, SIZE, frames, FPS, *people):
        shown = [i for i, (a, k) in enumerate(zip(scene.areas, scene.keypoints))
                 if a > 0 and (k[:, 2] > 0).any()]
        out.append(_truth_frame(index, t, [ids[i] for i in shown], scene.keypoints[shown],
                                scene.areas[shown]))
    return out


def file_truth(path: Path) -> list[TruthFrame]:
    """A clip's truth from the ``clip_NNN.json`` that ``posecli synth`` writes."""
    doc = orjson.loads(path.read_bytes())
    by_image: dict[int, list[dict]] = {}
    for a in doc["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    return [_truth_frame(image["frame_index"], image["timestamp"],
                         [a["track_id"] for a in by_image.get(image["id"], [])],
                         [a["keypoints"] for a in by_image.get(image["id"], [])],
                         [a["area"] for a in by_image.get(image["id"], [])])
            for image in doc["images"]]


def person(keypoints17: np.ndarray) -> Person:
    """A Person (COCO-18, score 1 per keypoint) from 17 x 3 (x, y, found)."""
    keypoints = np.zeros((18, 3))
    found = keypoints17[:, 2] > 0
    keypoints[COCO17_FROM_COCO18] = np.where(found[:, None],
                                             np.c_[keypoints17[:, :2], np.ones(17)], 0.0)
    return Person(keypoints, 1.0, float(found.sum()), int(found.sum()))


def perturbed(truth: list[TruthFrame], sigma: float, drop: float, false_rate: float,
              rng: np.random.Generator) -> tuple[list[TruthFrame], list[FrameResult]]:
    """Detections made from the truth: noisy visible keypoints, drops, false people; and
    the truth of the people detected (what the tracker alone is judged against)."""
    poses = [k for frame in truth for k in frame.keypoints]
    frames, detected = [], []
    for frame in truth:
        people, kept = [], []
        for n, keypoints in enumerate(frame.keypoints):
            if rng.random() < drop:
                continue
            kept.append(n)
            seen = keypoints.copy()
            seen[:, 2] = seen[:, 2] == 2
            seen[:, :2] += rng.normal(0, sigma, (17, 2))
            seen[seen[:, 2] == 0, :2] = 0
            people.append(person(seen))
        for _ in range(rng.poisson(false_rate * max(len(frame.keypoints), 1))):
            fake = poses[rng.integers(len(poses))].copy()
            fake[:, 2] = fake[:, 2] == 2
            found = fake[:, 2] > 0
            fake[found, :2] += rng.uniform(0, SIZE, 2) - fake[found, :2].mean(0)
            fake[found, :2] += rng.normal(0, sigma, (found.sum(), 2))
            people.append(person(fake))
        order = rng.permutation(len(people))  # detections come in no particular order
        frames.append(FrameResult(frame.index, frame.time, SIZE, SIZE, f"clip#{frame.index}",
                                  [people[i] for i in order]))
        detected.append(TruthFrame(frame.index, frame.time, frame.ids[kept],
                                   frame.keypoints[kept], frame.areas[kept]))
    return detected, frames


@dataclass
class Scores:
    """Totals over clips: MOT metrics, re-entry switches, jitter and error; ``idf1_split``:
    IDF1 with a person who comes back after longer than the buffer counted as new."""

    mota: float
    idf1: float
    switches: int
    reentry_switches: int
    objects: int
    jitter: float
    error: float
    idf1_split: float = math.nan

    @property
    def per_500(self) -> float:
        return 500 * self.switches / max(self.objects, 1)

    @property
    def other_per_500(self) -> float:
        return 500 * (self.switches - self.reentry_switches) / max(self.objects, 1)


def _visible(keypoints: np.ndarray) -> np.ndarray:
    out = keypoints.copy()
    out[:, :, 2] = out[:, :, 2] == 2
    return out


def score(clips: list[tuple[list[TruthFrame], list[FrameResult]]], buffer: float) -> Scores:
    """MOT metrics, jitter and error of tracked clips against their truth."""
    accumulators, reentries, errors, accelerations = [], 0, [], []
    for truth, tracked in clips:
        acc = _accumulate(truth, tracked)
        last_seen: dict[int, float] = {}
        gap_before: dict[tuple[int, int], float] = {}
        truth_at: dict[tuple[int, int], np.ndarray] = {}
        for t_frame in truth:
            for gt, k in zip(t_frame.ids.tolist(), t_frame.keypoints):
                gap_before[(t_frame.index, gt)] = t_frame.time - last_seen.get(gt, t_frame.time)
                last_seen[gt] = t_frame.time
                truth_at[(t_frame.index, gt)] = k
        tracks: dict[int, dict[int, np.ndarray]] = {}
        for h_frame in tracked:
            for p in h_frame.people:
                tracks.setdefault(p.track_id, {})[h_frame.frame_index] = \
                    coco18_to_coco17(p.keypoints)
        events = acc.mot_events
        for (frame_id, _), row in events[events.Type.isin(["MATCH", "SWITCH"])].iterrows():
            g, k = truth_at[(frame_id, row.OId)], tracks[row.HId][frame_id]
            both = (g[:, 2] == 2) & (k[:, 2] > 0)
            errors.extend(np.linalg.norm(g[both, :2] - k[both, :2], axis=1))
            if row.Type == "SWITCH" and gap_before[(frame_id, row.OId)] > buffer:
                reentries += 1
        for positions in tracks.values():
            accelerations.extend(_accelerations(positions))
        accumulators.append(acc)
    metrics = mm.metrics.create()
    summary = metrics.compute_many(
        accumulators, metrics=["mota", "idf1", "num_switches", "num_objects"],
        generate_overall=True).loc["OVERALL"]
    split = [split_at_reentries(truth, buffer) for truth, _ in clips]
    idf1_split = metrics.compute_many(
        [_accumulate(t, tracked) for t, (_, tracked) in zip(split, clips)], metrics=["idf1"],
        generate_overall=True).loc["OVERALL"].idf1
    return Scores(float(summary.mota), float(summary.idf1), int(summary.num_switches),
                  reentries, int(summary.num_objects),
                  float(np.mean(accelerations)) if accelerations else math.nan,
                  float(np.mean(errors)) if errors else math.nan, float(idf1_split))


def split_at_reentries(truth: list[TruthFrame], buffer: float) -> list[TruthFrame]:
    """The truth with a new id for a person each time it shows again after being out of
    the truth for longer than ``buffer`` seconds."""
    last_seen: dict[int, float] = {}
    renamed: dict[int, int] = {}
    next_id = 1_000_000
    out = []
    for frame in truth:
        ids = []
        for gt in frame.ids.tolist():
            if gt not in renamed or frame.time - last_seen[gt] > buffer:
                renamed[gt], next_id = next_id, next_id + 1
            last_seen[gt] = frame.time
            ids.append(renamed[gt])
        out.append(replace(frame, ids=np.array(ids, dtype=np.int64)))
    return out


def _accumulate(truth: list[TruthFrame], tracked: list[FrameResult]) -> mm.MOTAccumulator:
    """py-motmetrics' record of a clip, matching the truth with the raw keypoints (so a
    smoothed run is matched exactly as the same run unsmoothed)."""
    acc = mm.MOTAccumulator(auto_id=False)
    for t_frame, h_frame in zip(truth, tracked):
        hyp = np.stack([coco18_to_coco17(_raw(p)) for p in h_frame.people]) \
            if h_frame.people else np.zeros((0, 17, 3))
        acc.update(t_frame.ids.tolist(), [p.track_id for p in h_frame.people],
                   match_distance(t_frame.keypoints, hyp), frameid=t_frame.index)
    return acc


def match_distance(truth: np.ndarray, hyp: np.ndarray) -> np.ndarray:
    """G x H mean distance of the keypoints visible in the truth (v = 2) and found in the
    hypothesis, over the truth's size (the longer side of its labelled keypoints' box);
    NaN (no match) above MATCH_DISTANCE or with fewer than MIN_SHARED keypoints."""
    if not len(truth) or not len(hyp):
        return np.full((len(truth), len(hyp)), np.nan)
    labelled = truth[..., 2] > 0
    size = np.array([max(np.ptp(k[m, :2], axis=0).max(), 1.0) if m.any() else 1.0
                     for k, m in zip(truth, labelled)])
    shared = (truth[:, None, :, 2] == 2) & (hyp[None, :, :, 2] > 0)  # G x H x 17
    d = np.linalg.norm(truth[:, None, :, :2] - hyp[None, :, :, :2], axis=-1)
    mean = np.where(shared, d, 0.0).sum(-1) / np.maximum(shared.sum(-1), 1) / size[:, None]
    return np.where((shared.sum(-1) >= MIN_SHARED) & (mean <= MATCH_DISTANCE), mean, np.nan)


def _raw(person: Person) -> np.ndarray:
    return person.keypoints if person.raw_keypoints is None else person.raw_keypoints


def _accelerations(positions: dict[int, np.ndarray]) -> list[float]:
    """|x[t+1] - 2 x[t] + x[t-1]| of each keypoint found in three consecutive frames."""
    out = []
    for t in positions:
        if t - 1 in positions and t + 1 in positions:
            a, b, c = positions[t - 1], positions[t], positions[t + 1]
            found = (a[:, 2] > 0) & (b[:, 2] > 0) & (c[:, 2] > 0)
            out.extend(np.linalg.norm(c[found, :2] - 2 * b[found, :2] + a[found, :2], axis=1))
    return out


def truth_jitter(clips: list[list[TruthFrame]]) -> float:
    """The truth's own mean keypoint acceleration (the motion, without any noise)."""
    out = []
    for truth in clips:
        tracks: dict[int, dict[int, np.ndarray]] = {}
        for frame in truth:
            for gt, k in zip(frame.ids.tolist(), _visible(frame.keypoints)):
                tracks.setdefault(gt, {})[frame.index] = k
        for positions in tracks.values():
            out.extend(_accelerations(positions))
    return float(np.mean(out))


def run(clips: list[tuple[list[TruthFrame], list[FrameResult]]], params: TrackParams) -> Scores:
    return score([(truth, track_frames(frames, params)) for truth, frames in clips],
                 params.buffer_seconds)


def table(title: str, rows: list[tuple[str, Scores, Scores | None]], console: Console,
          with_smoothing: bool = False) -> None:
    """One row per setting: scores against the people given (and against all truth)."""
    out = Table(title=title, title_justify="left", box=box.MARKDOWN)
    names = ["setting", "MOTA", "IDF1", "IDF1 split", "ID sw.", "per 500", "re-entry sw.",
             "other per 500", "person-frames"]
    if rows and rows[0][2] is not None:
        names += ["MOTA all", "IDF1 all"]
    if with_smoothing:
        names += ["jitter px/f²", "error px"]
    for name in names:
        out.add_column(name, justify="left" if name == "setting" else "right")
    for name, s, whole in rows:
        cells = [name, f"{s.mota:.3f}", f"{s.idf1:.3f}", f"{s.idf1_split:.3f}",
                 str(s.switches), f"{s.per_500:.2f}",
                 str(s.reentry_switches), f"{s.other_per_500:.2f}", str(s.objects)]
        if whole is not None:
            cells += [f"{whole.mota:.3f}", f"{whole.idf1:.3f}"]
        if with_smoothing:
            cells += [f"{s.jitter:.2f}", f"{s.error:.2f}"]
        out.add_row(*cells)
    console.print(out)


def pipeline_clips(folder: Path, clips: int, frames: int, seed: int,
                   people: tuple[int, int]) -> list[tuple[list[TruthFrame], list[FrameResult]]]:
    """(truth, untracked detections) of clips run through the demo model."""
    import torch

    from posecli.pipeline import Estimator, load_model, process_video
    from posecli.sinks import Sink
    from posecli.video import VideoReader

    class Collect(Sink):
        def __init__(self) -> None:
            self.frames: list[FrameResult] = []

        def add(self, batch, frames) -> None:
            self.frames.extend(frames)

        def finish(self, info) -> None:
            pass

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    summary = generate_dataset(folder, images=0, seed=seed, width=SIZE, height=SIZE,
                               min_people=people[0], max_people=people[1], videos=clips,
                               video_frames=frames, fps=FPS)
    model = load_model("demo", "cpu")
    estimator = Estimator(model, net_height=256)
    out = []
    for video, truth in zip(summary.videos, summary.video_annotations):
        sink = Collect()
        with VideoReader(str(video), 8) as reader:
            process_video(reader, estimator, [sink])
        out.append((file_truth(truth), sink.frames))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12, help="clips for (a)")
    parser.add_argument("--frames", type=int, default=300, help="frames per clip (a)")
    parser.add_argument("--pipeline-clips", type=int, default=3, help="clips for (b)")
    parser.add_argument("--pipeline-frames", type=int, default=150, help="frames per clip (b)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tune", action="store_true", help="also print the parameter grids")
    args = parser.parse_args()
    console = Console(width=250)
    started = time.monotonic()
    console.print(f"load: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores")

    people = (2, 5)
    truths = [rendered_truth(args.seed * 1000 + k, args.frames, people)
              for k in range(args.clips)]
    defaults = TrackParams()
    smooth = replace(defaults, smooth=SmoothParams())
    console.print(f"(a) {args.clips} clips x {args.frames} frames, {SIZE}x{SIZE} at {FPS:g} fps,"
                  f" {people[0]}-{people[1]} people; truth jitter "
                  f"{truth_jitter(truths):.2f} px/f²; defaults {defaults.to_dict()}")
    rng = np.random.default_rng(args.seed)
    settings = [(2, 0.1, 0.0), (3, 0.1, 0.0), (5, 0.1, 0.0), (3, 0.2, 0.0), (3, 0.1, 0.1),
                (3, 0.2, 0.2)]
    given = {s: [(t, *perturbed(t, *s, rng)) for t in truths] for s in settings}

    def both(setting: tuple, params: TrackParams) -> tuple[Scores, Scores]:
        """Scores against the people given to the tracker, and against all truth."""
        tracked = [(full, detected, track_frames(frames, params))
                   for full, detected, frames in given[setting]]
        return (score([(d, t) for _, d, t in tracked], params.buffer_seconds),
                score([(f, t) for f, _, t in tracked], params.buffer_seconds))

    rows = []
    for setting in settings:
        sigma, drop, false = setting
        for motion in (True, False):
            rows.append((f"sigma {sigma} px, drop {drop:.0%}, false {false:.0%}, motion "
                         f"{'on' if motion else 'off'}",
                         *both(setting, replace(defaults, motion=motion))))
    table("(a) tracker alone: truth + noise, drops, false people", rows, console)
    rows = []
    for sigma in (2, 3, 5):
        rows.append((f"sigma {sigma} px, raw", both((sigma, 0.1, 0.0), defaults)[0], None))
        rows.append((f"sigma {sigma} px, --smooth", both((sigma, 0.1, 0.0), smooth)[0], None))
    table("(a) smoothing (drop 10%)", rows, console, with_smoothing=True)

    if args.tune:
        rows = [(f"min OKS {m}, buffer {b} s",
                 *both((3, 0.1, 0.1), replace(defaults, min_oks=m, buffer_seconds=b)))
                for m in (0.05, 0.1, 0.2, 0.3, 0.5) for b in (0.5, 1.0, 2.0)]
        table("(a) tuning: sigma 3, drop 10%, false 10%", rows, console)
        rows = [(f"min_cutoff {c}, beta {b}",
                 both((3, 0.1, 0.0), replace(defaults, smooth=SmoothParams(min_cutoff=c,
                                                                           beta=b)))[0], None)
                for c, b in SMOOTHING_GRID]
        table("(a) smoothing grid: sigma 3, drop 10%", rows, console, with_smoothing=True)

    if args.pipeline_clips:
        with tempfile.TemporaryDirectory() as folder:
            clips = pipeline_clips(Path(folder), args.pipeline_clips, args.pipeline_frames,
                                   args.seed + 1, (2, 4))
        console.print(f"(b) demo model, {args.pipeline_clips} clips x {args.pipeline_frames} "
                      f"frames, 2-4 people; truth jitter "
                      f"{truth_jitter([t for t, _ in clips]):.2f} px/f²")
        rows = [("motion on", run(clips, defaults), None),
                ("motion off", run(clips, replace(defaults, motion=False)), None),
                ("--smooth", run(clips, smooth), None)]
        table("(b) pipeline: demo model --net-height 256", rows, console, with_smoothing=True)
        if args.tune:
            rows = [(f"min_cutoff {c}, beta {b}",
                     run(clips, replace(defaults, smooth=SmoothParams(min_cutoff=c, beta=b))),
                     None)
                    for c, b in SMOOTHING_GRID]
            table("(b) smoothing grid", rows, console, with_smoothing=True)
    console.print(f"{time.monotonic() - started:.0f} s; load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
