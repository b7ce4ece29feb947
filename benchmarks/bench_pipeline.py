"""Throughput of each stage and of the whole pipeline, printed as one table.

    python benchmarks/bench_pipeline.py                      # CPU-sized defaults
    python benchmarks/bench_pipeline.py --device cuda --batch-sizes 1,8,32 \\
        --precisions fp32,bf16 --e2e-frames 400

Measures: decoding (vtest.avi from ../shared/media when present, and a
generated 1920x1080 H.264 clip), the network at each batch size and precision
(frames/s and achieved TFLOP/s from the model's FLOP count), and end to end
(decode -> network -> parse) on vtest.avi. Random weights in the CMU layout:
speed does not depend on the weights' values. Post-processing per people count
is in bench_parse.py.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
from machine import describe, sync
from rich.console import Console
from rich.table import Table

from posecli.model import PoseNet
from posecli.pipeline import Estimator, PoseModel, process_video
from posecli.preprocess import plan_geometry, preprocess
from posecli.sinks import Sink
from posecli.video import VideoReader
from posecli.weights import LoadedWeights

SHARED_VTEST = Path(__file__).resolve().parents[2] / "shared" / "media" / "vtest.avi"
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def make_1080p_clip(folder: Path, frames: int) -> Path:
    """A generated 1920x1080 H.264 clip of moving gradients (``frames`` frames, 30 fps)."""
    path = folder / "clip_1080p.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        x = np.linspace(0, 255, 1920, dtype=np.float32)[None, :, None]
        y = np.linspace(0, 255, 1080, dtype=np.float32)[:, None, None]
        for i in range(frames):
            image = ((x + y + 8 * i) % 256).astype(np.uint8).repeat(3, axis=2)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def decode_fps(path: Path, batch_size: int = 8) -> tuple[float, int]:
    started, count = time.perf_counter(), 0
    with VideoReader(str(path), batch_size) as reader:
        for batch in reader:
            count += len(batch.indices)
    return count / (time.perf_counter() - started), count


def network_fps(network: PoseNet, device: torch.device, batch: int, dtype: torch.dtype | None,
                height: int, width: int, repeats: int) -> float:
    geometry = plan_geometry(height, width, height)
    frames = np.random.default_rng(0).integers(0, 255, (batch, height, width, 3), dtype=np.uint8)
    net_input = preprocess(frames, geometry, device)
    times = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32,
                                                enabled=dtype is not None):
        for i in range(repeats + 1):
            sync(device)
            started = time.perf_counter()
            network.predict(net_input)
            sync(device)
            if i:  # the first run warms up
                times.append(time.perf_counter() - started)
    return batch / statistics.median(times)


class _Discard(Sink):
    def add(self, batch, frames) -> None:
        pass

    def finish(self, info) -> None:
        pass


def end_to_end_fps(model: PoseModel, path: Path, frames: int, batch: int,
                   net_height: int) -> float:
    estimator = Estimator(model, net_height)
    started = time.perf_counter()
    with VideoReader(str(path), batch, slice(0, frames)) as reader:
        run = process_video(reader, estimator, [_Discard()])
    sync(model.device)
    return run.frames_processed / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-sizes", default=None, help="default: 1 on CPU, 1,8,32 on CUDA")
    parser.add_argument("--precisions", default=None,
                        help="default: fp32 on CPU, fp32,bf16 on CUDA")
    parser.add_argument("--net-height", type=int, default=368)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--e2e-frames", type=int, default=None)
    parser.add_argument("--decode-frames", type=int, default=120, help="1080p clip length")
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    batch_sizes = [int(b) for b in (args.batch_sizes or ("1,8,32" if gpu else "1")).split(",")]
    precisions = (args.precisions or ("fp32,bf16" if gpu else "fp32")).split(",")
    repeats = args.repeats or (10 if gpu else 2)
    e2e_frames = args.e2e_frames or (400 if gpu else 8)

    table = Table(title=f"posecli pipeline benchmark — {describe(device)}")
    for column in ("stage", "setting", "frames/s", "notes"):
        table.add_column(column, justify="right" if column == "frames/s" else "left")

    with tempfile.TemporaryDirectory() as tmp:
        clips = [("1920x1080 H.264 (generated)", make_1080p_clip(Path(tmp), args.decode_frames))]
        if SHARED_VTEST.is_file():
            clips.insert(0, ("vtest.avi 768x576 MS-MPEG4", SHARED_VTEST))
        for name, path in clips:
            fps, count = decode_fps(path)
            table.add_row("decode", name, f"{fps:.1f}", f"{count} frames, RGB out")

    network = PoseNet().eval().to(device)
    height, width = args.net_height, round(args.net_height * 4 / 3 / 8) * 8
    geometry = plan_geometry(height, width, height)
    gflop = network.flops(geometry.padded_height, geometry.padded_width) / 1e9
    for precision in precisions:
        for batch in batch_sizes:
            fps = network_fps(network, device, batch, PRECISIONS[precision], height, width,
                              repeats)
            table.add_row("network", f"batch {batch}, {precision}, "
                          f"{geometry.padded_height}x{geometry.padded_width}",
                          f"{fps:.2f}",
                          f"{fps * gflop / 1000:.2f} TFLOP/s ({gflop:.0f} GFLOP/frame)")

    if SHARED_VTEST.is_file():
        weights = LoadedWeights(network.state_dict(), network.config, "body_pose_model",
                                Path("random"), "-")
        model = PoseModel(network, weights, device)
        batch = max(batch_sizes)
        fps = end_to_end_fps(model, SHARED_VTEST, e2e_frames, batch, args.net_height)
        table.add_row("end to end", f"vtest.avi, batch {batch}, fp32, net {args.net_height}",
                      f"{fps:.2f}", f"{e2e_frames} frames: decode + network + parse")
    Console().print(table)


if __name__ == "__main__":
    main()
