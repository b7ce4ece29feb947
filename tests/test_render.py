"""Skeleton drawing and the rendered-video sink (H.264 MP4, timestamps, audio)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import write_video

import posecli.render as render_module
from posecli.errors import PoseCliError
from posecli.formats import FrameResult
from posecli.parse import Person
from posecli.pipeline import Estimator, load_model, process_video
from posecli.render import (
    LIMB_ALPHA,
    RenderSink,
    _capsule_pixels,
    default_thickness,
    draw_poses,
)
from posecli.skeleton import LIMBS, PART_COLOURS_RGB
from posecli.video import FrameBatch, VideoInfo, VideoReader, parse_frame_range

NECK, R_SHOULDER, R_HIP = 1, 2, 8
GREY = 100


def person(**parts: tuple[float, float]) -> Person:
    """A Person with the named COCO-18 parts (by index as p<N>) found, others missing."""
    keypoints = np.zeros((18, 3))
    for name, (x, y) in parts.items():
        keypoints[int(name[1:])] = (x, y, 0.9)
    return Person(keypoints, 0.9, 0.9 * len(parts), len(parts))


def blended(limb: int, under: int = GREY) -> np.ndarray:
    """The expected colour of limb ``limb`` drawn over a grey level."""
    colour = np.array(PART_COLOURS_RGB[limb], dtype=float)
    return LIMB_ALPHA * colour + (1 - LIMB_ALPHA) * under


def segment_distance(shape: tuple[int, int], a, b) -> np.ndarray:
    """Distance of every pixel centre of an H x W grid to the segment a-b (x, y)."""
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = b - a
    t = np.clip(((xs - a[0]) * d[0] + (ys - a[1]) * d[1]) / max(d @ d, 1e-12), 0, 1)
    return np.hypot(xs - a[0] - t * d[0], ys - a[1] - t * d[1])


# --------------------------------------------------------------------------- drawing


def test_limb_drawn_in_its_colour_far_pixels_untouched():
    image = np.full((100, 120, 3), GREY, dtype=np.uint8)
    neck, shoulder = (20.0, 50.0), (90.0, 50.0)
    out = draw_poses(image, [person(p1=neck, p2=shoulder)], thickness=6)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (image == GREY).all(), "the input must not be modified"
    limb = LIMBS.index((NECK, R_SHOULDER))
    for x in (35, 55, 70):  # along the limb, away from the joint discs
        for y in (48, 50, 52):
            np.testing.assert_allclose(out[y, x], blended(limb), atol=1)
    np.testing.assert_array_equal(out[50, 20], PART_COLOURS_RGB[NECK])
    np.testing.assert_array_equal(out[50, 90], PART_COLOURS_RGB[R_SHOULDER])
    changed = (out != image).any(-1)
    distance = segment_distance(image.shape[:2], neck, shoulder)
    assert changed[distance <= 2.5].all()
    assert not changed[distance > 6].any()  # limb half-width 3, joint radius 4.5


def test_every_limb_has_its_colour():
    image = np.full((200, 200, 3), GREY, dtype=np.uint8)
    rng = np.random.default_rng(1)
    for limb, (a, b) in enumerate(LIMBS[:17]):
        start, end = (30.0, 100.0), (170.0, 100.0 + rng.uniform(-40, 40))
        out = draw_poses(image, [person(**{f"p{a}": start, f"p{b}": end})], thickness=5)
        middle = np.round((np.array(start) + end) / 2).astype(int)
        np.testing.assert_allclose(out[middle[1], middle[0]], blended(limb), atol=1)


def test_ear_shoulder_limbs_are_not_drawn():
    image = np.full((100, 120, 3), GREY, dtype=np.uint8)
    out = draw_poses(image, [person(p2=(20.0, 50.0), p16=(90.0, 50.0))], thickness=4)
    assert (out[50, 40:70] == GREY).all()  # only the two joint discs


def test_missing_parts_draw_nothing():
    image = np.full((80, 80, 3), GREY, dtype=np.uint8)
    assert (draw_poses(image, []) == image).all()
    assert (draw_poses(image, [person()]) == image).all()
    lonely = person(p1=(20.0, 40.0))
    lonely.keypoints[R_SHOULDER] = (60.0, 40.0, 0.0)  # coordinates, but not found
    out = draw_poses(image, [lonely], thickness=4)
    assert (out[40, 35:70] == GREY).all(), "no limb to a missing part"
    np.testing.assert_array_equal(out[40, 20], PART_COLOURS_RGB[NECK])


@pytest.mark.parametrize("shape", [(37, 51), (1, 1), (2, 3), (63, 95)])
def test_odd_sizes_and_clipping(shape):
    image = np.full((*shape, 3), GREY, dtype=np.uint8)
    h, w = shape
    # A limb across the frame, both ends outside it, and a person wholly outside.
    people = [person(p1=(-20.0, h / 2 - 2), p8=(w + 20.0, h / 2 + 1)),
              person(p1=(-500.0, -500.0), p2=(-400.0, -500.0))]
    out = draw_poses(image, people)
    assert out.shape == image.shape
    limb = LIMBS.index((NECK, R_HIP))
    changed = (out != image).any(-1)
    assert changed.any()
    np.testing.assert_allclose(out[changed], np.broadcast_to(blended(limb), out[changed].shape),
                               atol=1)


def test_thickness_scales_with_frame_size():
    assert default_thickness(576, 768) == 4
    assert default_thickness(1080, 1920) == 7
    assert default_thickness(64, 96) == 2
    image = np.zeros((200, 200, 3), dtype=np.uint8)
    skeleton = [person(p1=(20.0, 100.0), p2=(180.0, 100.0))]
    thin = (draw_poses(image, skeleton, thickness=2) != 0).any(-1)[:, 60:140].sum(0)
    thick = (draw_poses(image, skeleton, thickness=9) != 0).any(-1)[:, 60:140].sum(0)
    assert (thin == 3).all() and (thick == 9).all()  # pixel centres within t/2


def test_capsule_pixels_match_brute_force():
    rng = np.random.default_rng(7)
    shape = (50, 70)
    for trial in range(150):
        a = rng.uniform(-10, 80, 2)
        b = a + rng.normal(0, 25, 2)
        if trial % 4 == 1:
            b[1] = a[1]  # horizontal
        if trial % 4 == 2:
            b[0] = a[0]  # vertical
        if trial % 9 == 3:
            b = a.copy()  # a disc
        if trial % 5 == 4:
            a, b = np.round(a), np.round(b)  # on pixel centres
        radius = rng.uniform(0.5, 7)
        pixels, labels = _capsule_pixels(a[None], b[None], np.array([3], np.uint8), radius,
                                         *shape)
        assert len(np.unique(pixels)) == len(pixels) and (labels == 3).all()
        mask = np.zeros(shape[0] * shape[1], bool)
        mask[pixels] = True
        expected = segment_distance(shape, a, b) <= radius
        # Pixel centres within 1e-6 of the border may go either way.
        border = np.abs(segment_distance(shape, a, b) - radius) < 1e-6
        assert ((mask.reshape(shape) == expected) | border).all(), (trial, a, b, radius)


#: A standing person, COCO-18 parts as fractions of the body height around its centre.
STANDING = np.array([
    [0, -0.45], [0, -0.33], [-0.1, -0.33], [-0.15, -0.15], [-0.17, 0.0], [0.1, -0.33],
    [0.15, -0.15], [0.17, 0.0], [-0.07, 0.0], [-0.08, 0.22], [-0.08, 0.45], [0.07, 0.0],
    [0.08, 0.22], [0.08, 0.45], [-0.03, -0.48], [0.03, -0.48], [-0.07, -0.46],
    [0.07, -0.46]])


def test_twenty_people_on_a_1080p_frame():
    image = np.full((1080, 1920, 3), GREY, dtype=np.uint8)
    people = []
    for row in range(2):
        for column in range(10):
            keypoints = np.ones((18, 3))
            keypoints[:, :2] = STANDING * 400 + (96 + 192 * column, 270 + 540 * row)
            people.append(Person(keypoints, 1.0, 18.0, 18))
    out = draw_poses(image, people)
    for p in people:
        for part, (x, y) in enumerate(p.keypoints[:, :2].round().astype(int)):
            np.testing.assert_array_equal(out[y, x], PART_COLOURS_RGB[part])
        for limb, (a, b) in enumerate(LIMBS[:17]):
            x, y = ((p.keypoints[a, :2] + p.keypoints[b, :2]) / 2).round().astype(int)
            if min(np.hypot(*(p.keypoints[:, :2] - (x, y)).T)) > 10:  # clear of joints
                np.testing.assert_allclose(out[y, x], blended(limb), atol=1)


# --------------------------------------------------------------------------- video


def results(batch: FrameBatch, people: list[Person]) -> list[FrameResult]:
    height, width = batch.images.shape[1:3]
    return [FrameResult(int(i), float(t), width, height, f"clip#{int(i)}", people)
            for i, t in zip(batch.indices, batch.timestamps)]


def render(source: Path, out: Path, people: list[Person], frames: slice | None = None,
           **options) -> list[float]:
    """Render ``source`` through a RenderSink; returns the input timestamps."""
    times: list[float] = []
    with VideoReader(source, 4, frames) as reader:
        sink = RenderSink(out, reader.info, **options)
        for batch in reader:
            times.extend(batch.timestamps.tolist())
            sink.add(batch, results(batch, people))
        sink.finish({"tool": "posecli"})
    return times


def decode(path: Path) -> tuple[av.video.stream.VideoStream, list[av.VideoFrame], list[str]]:
    """(video stream info, decoded frames, audio codec names) of a file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        audio = [a.codec_context.name for a in container.streams.audio]
        return stream, frames, audio


def write_timed_video(path: Path, times: list[float], size=(64, 96), audio: str | None = None,
                      fmt: str | None = None) -> Path:
    """A video whose frames are shown at ``times`` (s), with optional 1 s of audio."""
    with av.open(str(path), "w", format=fmt) as container:
        video = container.add_stream("mpeg4", rate=25)
        video.height, video.width = size
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = Fraction(1, 1000)
        sound = container.add_stream(audio, rate=22050, layout="mono") if audio else None
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(
                np.full((*size, 3), 60 + 10 * i, dtype=np.uint8), format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            fmt_name = sound.codec_context.format.name
            tone = np.sin(np.arange(22050) * 2 * np.pi * 440 / 22050) * 0.3
            samples = ((tone * 32767).astype(np.int16) if fmt_name == "s16"
                       else tone.astype(np.float32))[None]
            for start in range(0, 22050, 1024):
                chunk = np.ascontiguousarray(samples[:, start:start + 1024])
                frame = av.AudioFrame.from_ndarray(chunk, format=fmt_name, layout="mono")
                frame.sample_rate, frame.pts = 22050, start
                frame.time_base = Fraction(1, 22050)
                container.mux(sound.encode(frame))
            container.mux(sound.encode())
    return path


@pytest.fixture
def clip(tmp_path) -> Path:
    """Ten 96x64 grey frames at 10 fps."""
    return write_video(tmp_path / "clip.mp4", np.full((10, 64, 96, 3), GREY, dtype=np.uint8))


SKELETON = [person(p1=(15.0, 32.0), p2=(80.0, 32.0))]


def test_render_round_trip(tmp_path, clip):
    out = tmp_path / "rendered.mp4"
    times = render(clip, out, SKELETON, thickness=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "rendered.mp4"]
    stream, frames, audio = decode(out)
    assert stream.codec_context.name == "h264"
    assert stream.codec_context.pix_fmt == "yuv420p"
    assert (stream.width, stream.height) == (96, 64)
    assert audio == []
    assert len(frames) == len(times) == 10
    assert [f.time for f in frames] == pytest.approx(times, abs=1e-3)
    limb = LIMBS.index((NECK, R_SHOULDER))
    for frame in frames:
        image = frame.to_ndarray(format="rgb24").astype(int)
        np.testing.assert_allclose(image[32, 48], blended(limb, under=image[5, 48, 0]), atol=40)
        assert np.abs(image[5, 48] - GREY).max() < 12  # far from the skeleton: the frame


def test_render_frame_subset_keeps_timestamps(tmp_path, clip):
    out = tmp_path / "subset.mp4"
    times = render(clip, out, SKELETON, frames=slice(3, 9, 2))
    assert times == pytest.approx([0.3, 0.5, 0.7])
    _, frames, _ = decode(out)
    assert [f.time for f in frames] == pytest.approx(times, abs=1e-3)


def test_render_variable_frame_rate(tmp_path):
    source = write_timed_video(tmp_path / "vfr.mp4", [0.0, 0.04, 0.12, 0.13])
    out = tmp_path / "vfr_rendered.mp4"
    times = render(source, out, SKELETON)
    assert times == pytest.approx([0.0, 0.04, 0.12, 0.13], abs=1e-3)
    _, frames, _ = decode(out)
    assert [f.time for f in frames] == pytest.approx(times, abs=1e-3)


@pytest.mark.parametrize("path", ["-", "/dev/video0", "rtsp://127.0.0.1:9/live"])
def test_live_sources_are_not_reopened_for_audio(path, tmp_path, monkeypatch):
    """Stdin, a camera or a URL cannot be read a second time: no audio is looked for."""
    opened = []
    monkeypatch.setattr(render_module.av, "open", lambda *args, **kwargs: opened.append(args))
    sink = RenderSink(tmp_path / "live.mp4", VideoInfo(path, 96, 64, 10.0, None, 0, "h264", None))
    try:
        assert sink.audio_source is None
        assert opened == []
    finally:
        sink.discard()


def test_repeated_and_missing_timestamps_stay_increasing(tmp_path):
    info = VideoInfo("generated", 96, 64, 10.0, None, 0, "rawvideo", None)
    out = tmp_path / "ticks.mp4"
    sink = RenderSink(out, info, audio=False)
    images = np.full((4, 64, 96, 3), GREY, dtype=np.uint8)
    batch = FrameBatch(images, np.arange(4), np.array([0.0, 0.0, np.nan, 0.5]))
    sink.add(batch, results(batch, []))
    sink.finish({})
    _, frames, _ = decode(out)
    pts = [f.pts for f in frames]
    assert len(pts) == 4 and all(a < b for a, b in zip(pts, pts[1:]))
    assert frames[2].time == pytest.approx(0.1, abs=1e-3)  # previous + 1 / fps
    assert frames[3].time == pytest.approx(0.5, abs=1e-3)


def test_render_odd_frame_size_is_padded(tmp_path):
    info = VideoInfo("generated", 95, 63, 25.0, 3, 0, "rawvideo", None)
    out = tmp_path / "odd.mp4"
    sink = RenderSink(out, info, audio=False)
    images = np.full((3, 63, 95, 3), GREY, dtype=np.uint8)
    batch = FrameBatch(images, np.arange(3), np.arange(3) / 25)
    sink.add(batch, results(batch, SKELETON))
    sink.finish({})
    stream, frames, _ = decode(out)
    assert (stream.width, stream.height) == (96, 64)
    assert len(frames) == 3
    assert [f.time for f in frames] == pytest.approx([0, 0.04, 0.08], abs=1e-3)


@pytest.mark.parametrize(("codec", "fmt", "expected"), [("aac", "mp4", "aac"),
                                                        ("pcm_s16le", "mov", "aac")])
def test_render_copies_audio(tmp_path, codec, fmt, expected):
    source = write_timed_video(tmp_path / f"talk.{fmt}", [i / 10 for i in range(10)],
                               audio=codec, fmt=fmt)
    out = tmp_path / "talk_rendered.mp4"
    times = render(source, out, SKELETON)
    stream, frames, audio = decode(out)
    assert audio == [expected]
    assert stream.codec_context.name == "h264"
    assert [f.time for f in frames] == pytest.approx(times, abs=1e-3)
    with av.open(str(out)) as container:
        sound = list(container.decode(container.streams.audio[0]))
    assert sum(f.samples for f in sound) / sound[0].sample_rate == pytest.approx(1.0, abs=0.1)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([source.name, out.name])


def test_render_without_audio_option(tmp_path):
    source = write_timed_video(tmp_path / "talk.mp4", [0.0, 0.1], audio="aac")
    out = tmp_path / "silent.mp4"
    render(source, out, SKELETON, audio=False)
    assert decode(out)[2] == []


def test_discard_leaves_no_files(tmp_path, clip):
    out = tmp_path / "gone.mp4"
    with VideoReader(clip, 4) as reader:
        sink = RenderSink(out, reader.info)
        batch = next(iter(reader))
        sink.add(batch, results(batch, SKELETON))
        sink.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
    untouched = RenderSink(out, VideoInfo(str(clip), 96, 64, 10.0, 10, 0, "mpeg4", 1.0))
    untouched.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_unwritable_destination_raises_one_line(tmp_path, clip):
    info = VideoInfo(str(clip), 96, 64, 10.0, 10, 0, "mpeg4", 1.0)
    with pytest.raises(PoseCliError) as error:
        RenderSink(tmp_path / "no" / "such" / "folder" / "out.mp4", info)
    message = str(error.value)
    assert "cannot write output" in message and "\n" not in message
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(PoseCliError, match="cannot write output"):
            RenderSink(locked / "out.mp4", info)


def test_encoder_failure_raises_and_cleans_up(tmp_path, clip):
    out = tmp_path / "broken.mp4"
    with VideoReader(clip, 4) as reader:
        sink = RenderSink(out, reader.info, preset="no-such-preset")
        with pytest.raises(PoseCliError, match="cannot encode video") as error:
            for batch in reader:
                sink.add(batch, results(batch, SKELETON))
            sink.finish({})
        sink.discard()
    assert "\n" not in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_finish_without_frames_raises(tmp_path, clip):
    sink = RenderSink(tmp_path / "empty.mp4", VideoInfo(str(clip), 96, 64, 10.0, 10, 0,
                                                        "mpeg4", 1.0))
    with pytest.raises(PoseCliError, match="no frames"):
        sink.finish({})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_render_sink_in_process_video(tmp_path, tiny_weights, small_video):
    out = tmp_path / "poses.mp4"
    estimator = Estimator(load_model(tiny_weights, "cpu"), net_height=64)
    with VideoReader(small_video, 2, parse_frame_range("1::2")) as reader:
        sink = RenderSink(out, reader.info)
        run = process_video(reader, estimator, [sink])
        sink.finish({})
    assert run.complete and run.frames_processed == 3
    stream, frames, _ = decode(out)
    assert (stream.width, stream.height) == (96, 64)
    assert [f.time for f in frames] == pytest.approx([0.1, 0.3, 0.5], abs=1e-3)
