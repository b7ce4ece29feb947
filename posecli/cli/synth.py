"""``posecli synth``: a synthetic COCO-format person-keypoints dataset (and clips)."""

from __future__ import annotations

from pathlib import Path

import typer

from .console import count, progress_bars, say
from .options import QUIET


def synth(
    out_dir: Path = typer.Argument(..., metavar="OUT_DIR",
                                   help="Folder to write the dataset into."),
    images: int = typer.Option(200, "--images", metavar="N", help="Number of still images."),
    videos: int = typer.Option(0, "--videos", metavar="N",
                               help="Number of clips of moving figures."),
    video_frames: int = typer.Option(30, "--video-frames", metavar="N",
                                     help="Frames per clip."),
    fps: float = typer.Option(10.0, "--fps", metavar="FPS", help="Clip frame rate."),
    width: int = typer.Option(368, "--width", metavar="PX", help="Image width in pixels."),
    height: int = typer.Option(368, "--height", metavar="PX", help="Image height in pixels."),
    min_people: int = typer.Option(1, "--min-people", metavar="N",
                                   help="Fewest figures per image."),
    max_people: int = typer.Option(4, "--max-people", metavar="N",
                                   help="Most figures per image."),
    seed: int = typer.Option(0, "--seed", metavar="N",
                             help="Random seed: the same seed gives the same files."),
    quiet: bool = QUIET,
) -> None:
    """Write a synthetic COCO person-keypoints dataset (and clips).

    Procedurally drawn articulated figures with exact keypoints, for training
    and testing: OUT_DIR/images/*.png and OUT_DIR/annotations.json; with
    --videos, OUT_DIR/videos/clip_NNN.mp4 and their per-frame ground truth.

    Example: posecli synth data/synth --images 500 --videos 2
    """
    from ..synth import generate_dataset

    with progress_bars(quiet) as progress:
        progress.start(images + videos * video_frames)
        summary = generate_dataset(out_dir, images=images, seed=seed, width=width,
                                   height=height, min_people=min_people,
                                   max_people=max_people, videos=videos,
                                   video_frames=video_frames, fps=fps,
                                   progress=progress.advance)
    if not quiet:
        say(f"posecli: wrote {count(summary.images, 'image')} "
            f"({count(summary.people, 'person', 'people')}) and "
            f"{count(len(summary.videos), 'clip')} to {summary.out_dir}")
