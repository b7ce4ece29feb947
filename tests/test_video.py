"""Tests for posecli.video: probing, batched threaded decoding, frame ranges, images."""

from __future__ import annotations

import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
import pytest

from posecli import video
from posecli.errors import InputError, UsageError
from posecli.video import (
    FrameBatch,
    VideoReader,
    parse_frame_range,
    probe_video,
    read_batches,
    read_image,
    rotate_upright,
)

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"

W, H = 64, 48


def _level(index: int) -> int:
    """The flat grey level that frame ``index`` of a generated video has."""
    return 10 + 8 * index


def _frame_image(index: int, width: int = W, height: int = H) -> np.ndarray:
    """Grey level encoding the index, plus a white 8x8 square in the top-left corner."""
    image = np.full((height, width, 3), _level(index), np.uint8)
    image[:8, :8] = 255
    return image


def _write_video(
    path: Path,
    count: int = 20,
    *,
    width: int = W,
    height: int = H,
    rate: int = 10,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int | None = None,
) -> Path:
    """Write an MPEG-4 Part 2 video whose frame i is ``_frame_image(i)``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.qmax = 2  # near-lossless, so grey levels survive
        if time_base is not None:
            stream.time_base = stream.codec_context.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(_frame_image(i, width, height), format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _decoded_indices(images: np.ndarray) -> list[int]:
    """Recover each frame's index from its grey level (the bottom-right quarter)."""
    grey = images[:, images.shape[1] // 2 :, images.shape[2] // 2 :].mean(axis=(1, 2, 3))
    return [round((g - 10) / 8) for g in grey]


def _collect(path: Path, batch_size: int, frames: slice | None = None) -> list[FrameBatch]:
    with VideoReader(path, batch_size, frames) as reader:
        return list(reader)


def _decoder_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("posecli-decode")]


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 frames, 64x48, 10 fps; the container knows its frame count."""
    return _write_video(tmp_path_factory.mktemp("v") / "clip.mp4")


@pytest.fixture(scope="module")
def mkv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 frames, 64x48, 10 fps; Matroska does not store a frame count."""
    return _write_video(tmp_path_factory.mktemp("v") / "clip.mkv")


# --- parse_frame_range --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10:", slice(10, None, None)),
        (":100", slice(None, 100, None)),
        ("::5", slice(None, None, 5)),
        ("-10:", slice(-10, None, None)),
        ("2:-3:4", slice(2, -3, 4)),
        (":", slice(None, None, None)),
        ("0:3", slice(0, 3, None)),
        (" 1 : 2 ", slice(1, 2, None)),
    ],
)
def test_parse_frame_range(text: str, expected: slice) -> None:
    assert parse_frame_range(text) == expected


@pytest.mark.parametrize("text", ["a:b", "1:x", "1:2:0", "1:2:-1", "1:2:3:4", "", "5", "1.5:3"])
def test_parse_frame_range_rejects(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_frame_range(text)
    message = str(info.value)
    assert repr(text) in message and "\n" not in message
    assert info.value.exit_code == 2


# --- probe_video ----------------------------------------------------------------------


def test_probe_video(mp4: Path) -> None:
    info = probe_video(mp4)
    assert (info.path, info.width, info.height) == (str(mp4), W, H)
    assert info.fps == pytest.approx(10.0)
    assert info.frame_count == 20
    assert info.rotation == 0
    assert info.codec == "mpeg4"
    assert info.duration == pytest.approx(2.0, abs=0.11)


def test_probe_video_unknown_frame_count(mkv: Path) -> None:
    info = probe_video(mkv)
    assert info.frame_count is None
    assert (info.width, info.height) == (W, H)


# --- decoding -----------------------------------------------------------------------


def test_batches_shapes_indices_timestamps(mp4: Path) -> None:
    with VideoReader(mp4, batch_size=6) as reader:
        assert reader.info.frame_count == 20
        batches = list(reader)
    assert [len(b.indices) for b in batches] == [6, 6, 6, 2]
    for batch in batches:
        n = len(batch.indices)
        assert batch.images.shape == (n, H, W, 3)
        assert batch.images.dtype == np.uint8 and batch.images.flags.c_contiguous
        assert batch.indices.dtype == np.int64
        assert batch.timestamps.dtype == np.float64
    indices = np.concatenate([b.indices for b in batches])
    np.testing.assert_array_equal(indices, np.arange(20))
    np.testing.assert_allclose(np.concatenate([b.timestamps for b in batches]), np.arange(20) / 10)
    images = np.concatenate([b.images for b in batches])
    assert _decoded_indices(images) == list(range(20))
    # RGB, upright: the white square is at the top-left.
    assert images[:, :8, :8].min() > 230 and images[:, -8:, -8:].max() < 230


def test_read_batches_generator(mp4: Path) -> None:
    batches = list(read_batches(mp4, 32))
    assert len(batches) == 1
    np.testing.assert_array_equal(batches[0].indices, np.arange(20))


@pytest.mark.parametrize(
    "text",
    ["5:", ":7", "::3", "2:15:4", "-5:", ":-15", "-8:-2:3", "3:3", "7:2", "25:", "-100:3", "19:"],
)
@pytest.mark.parametrize("fixture", ["mp4", "mkv"])
def test_frame_ranges_match_python_slices(
    text: str, fixture: str, request: pytest.FixtureRequest
) -> None:
    path = request.getfixturevalue(fixture)
    frames = parse_frame_range(text)
    batches = _collect(path, 4, frames)
    expected = list(range(20))[frames]
    got = [int(i) for b in batches for i in b.indices]
    assert got == expected
    if got:
        images = np.concatenate([b.images for b in batches])
        assert _decoded_indices(images) == expected
        np.testing.assert_allclose(
            np.concatenate([b.timestamps for b in batches]), np.array(expected) / 10
        )


def test_negative_range_without_frame_count(mkv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(video, "count_frames", lambda source: None)
    with pytest.raises(UsageError, match="frame count"):
        VideoReader(mkv, 4, slice(-5, None))
    # Non-negative ranges need no count.
    assert [int(i) for b in _collect(mkv, 4, slice(1, 3)) for i in b.indices] == [1, 2]


def test_reader_stops_decoding_at_range_end(mp4: Path) -> None:
    with VideoReader(mp4, 8, parse_frame_range("0:3")) as reader:
        decoded = []
        frames = reader._frames
        reader._frames = (decoded.append(f) or f for f in frames)
        batches = list(reader)
    assert [int(i) for b in batches for i in b.indices] == [0, 1, 2]
    assert len(decoded) == 3


def test_odd_frame_size(tmp_path: Path) -> None:
    path = _write_video(tmp_path / "odd.mp4", 5, width=33, height=25)
    info = probe_video(path)
    assert (info.width, info.height) == (33, 25)
    (batch,) = _collect(path, 8)
    assert batch.images.shape == (5, 25, 33, 3)
    assert batch.images.flags.c_contiguous
    assert _decoded_indices(batch.images) == list(range(5))


@pytest.mark.parametrize(
    ("written", "applied", "corner"),
    [
        # written: counter-clockwise display rotation stored in the file; corner:
        # where the top-left white square of the coded picture must end up.
        (90, 90, "bottom-left"),
        (-90, 270, "top-right"),
        (180, 180, "bottom-right"),
    ],
)
def test_rotation_metadata_is_applied(
    tmp_path: Path, written: int, applied: int, corner: str
) -> None:
    path = _write_video(tmp_path / "rot.mp4", 4, rotation=written)
    info = probe_video(path)
    assert info.rotation == applied
    size = (H, W) if applied in (90, 270) else (W, H)
    assert (info.width, info.height) == size
    (batch,) = _collect(path, 8)
    assert batch.images.shape == (4, size[1], size[0], 3)
    assert batch.images.flags.c_contiguous
    rows = slice(None, 8) if corner.startswith("top") else slice(-8, None)
    cols = slice(None, 8) if corner.endswith("left") else slice(-8, None)
    assert batch.images[:, rows, cols].min() > 230
    assert batch.images[:, :, :].mean(axis=(1, 2, 3)).argsort().tolist() == [0, 1, 2, 3]


def test_rotate_upright() -> None:
    image = np.arange(2 * 3 * 1).reshape(2, 3, 1)
    assert rotate_upright(image, 0).tolist() == image.tolist()
    # Counter-clockwise: the right column becomes the top row.
    assert rotate_upright(image, 90)[..., 0].tolist() == [[2, 5], [1, 4], [0, 3]]
    assert rotate_upright(image, 270)[..., 0].tolist() == [[3, 0], [4, 1], [5, 2]]
    assert rotate_upright(image, 180)[..., 0].tolist() == [[5, 4, 3], [2, 1, 0]]
    assert rotate_upright(image, 90).flags.c_contiguous


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_variable_frame_rate_timestamps(tmp_path: Path, suffix: str) -> None:
    path = _write_video(
        tmp_path / f"vfr{suffix}", 4, rate=25, pts=[0, 40, 120, 130], time_base=Fraction(1, 1000)
    )
    (batch,) = _collect(path, 8)
    np.testing.assert_array_equal(batch.indices, [0, 1, 2, 3])
    np.testing.assert_allclose(batch.timestamps, [0.0, 0.04, 0.12, 0.13], atol=1e-6)


# --- threading and cleanup ------------------------------------------------------------


def test_break_inside_with_stops_thread(mp4: Path) -> None:
    with VideoReader(mp4, 1, queue_size=2) as reader:
        for batch in reader:
            assert batch.indices[0] == 0
            break
    thread = reader._thread
    assert thread is not None
    thread.join(2)
    assert not thread.is_alive()
    assert not _decoder_threads()


def test_break_out_of_bare_generator_stops_thread(mp4: Path) -> None:
    for _ in read_batches(mp4, 1, queue_size=1):
        break
    deadline = time.monotonic() + 2
    while _decoder_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _decoder_threads()


def test_consumer_exception_stops_thread(mp4: Path) -> None:
    with pytest.raises(KeyError), VideoReader(mp4, 1, queue_size=1) as reader:
        for _ in reader:
            raise KeyError("consumer failed")
    reader._thread.join(2)
    assert not reader._thread.is_alive()


def test_queue_bounds_read_ahead(mp4: Path) -> None:
    with VideoReader(mp4, 1, queue_size=2) as reader:
        decoded = []
        frames = reader._frames
        reader._frames = (decoded.append(f) or f for f in frames)
        iterator = iter(reader)
        next(iterator)
        time.sleep(0.3)
        # One consumed, two queued, one blocked in put(): the thread is waiting.
        assert len(decoded) <= 4
        assert reader._thread.is_alive()
        rest = [int(b.indices[0]) for b in iterator]
    assert rest == list(range(1, 20))


def test_reader_iterates_once(mp4: Path) -> None:
    with VideoReader(mp4, 32) as reader:
        list(reader)
        with pytest.raises(RuntimeError):
            list(reader)


def test_close_without_iterating(mp4: Path) -> None:
    reader = VideoReader(mp4, 4)
    reader.close()
    reader.close()
    assert not _decoder_threads()


def test_decode_error_in_thread_becomes_input_error(mp4: Path) -> None:
    def failing(frames):
        yield next(frames)
        raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")

    with VideoReader(mp4, 1) as reader:
        reader._frames = failing(reader._frames)
        iterator = iter(reader)
        assert next(iterator).indices.tolist() == [0]
        with pytest.raises(InputError) as info:
            next(iterator)
    assert str(info.value) == f"cannot decode {mp4}: Invalid data found when processing input"


# --- error paths --------------------------------------------------------------------


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 800), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts = 8000, 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _bad_input(kind: str, tmp_path: Path) -> tuple[Path, str]:
    """A bad input of the given kind and the message expected for it."""
    if kind == "missing":
        path = tmp_path / "nope.mp4"
        return path, f"input not found: {path}"
    if kind == "directory":
        return tmp_path, f"input is a directory, not a file: {tmp_path}"
    if kind == "empty":
        path = tmp_path / "empty.mp4"
        path.touch()
        return path, f"input is empty: {path}"
    if kind == "text":
        path = tmp_path / "x.mp4"
        path.write_text("this is not a video\n")
        return path, f"not a video file: {path} (Invalid data found when processing input)"
    path = _audio_only(tmp_path / "sound.wav")
    return path, f"no video stream in {path}"


@pytest.mark.parametrize("kind", ["missing", "directory", "empty", "text", "audio"])
def test_probe_and_reader_errors(kind: str, tmp_path: Path) -> None:
    path, expected = _bad_input(kind, tmp_path)
    with pytest.raises(InputError) as info:
        probe_video(path)
    assert str(info.value) == expected
    with pytest.raises(InputError) as info:
        VideoReader(str(path), 4)
    assert str(info.value) == expected
    with pytest.raises(InputError):
        next(read_batches(path, 4))


@pytest.mark.parametrize("kind", ["missing", "directory", "empty", "text"])
def test_read_image_errors(kind: str, tmp_path: Path) -> None:
    path, expected = _bad_input(kind, tmp_path)
    expected = expected.replace("not a video file", "not an image file")
    with pytest.raises(InputError) as info:
        read_image(path)
    assert str(info.value) == expected


def test_read_image_audio_only(tmp_path: Path) -> None:
    path = _audio_only(tmp_path / "sound.wav")
    with pytest.raises(InputError, match="not an image file"):
        read_image(path)


# --- still images -------------------------------------------------------------------


def test_read_image_png_is_exact_rgb(tmp_path: Path) -> None:
    image = np.zeros((3, 5, 3), np.uint8)
    image[1, 2] = (255, 0, 0)
    image[2, 4] = (0, 0, 255)
    path = tmp_path / "tiny.png"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = 5, 3, "rgb24"
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    got = read_image(path)
    assert got.dtype == np.uint8 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, image)


# --- shared real media (skipped when absent) -------------------------------------------


def _media(name: str) -> Path:
    path = MEDIA / name
    if not path.is_file():
        pytest.skip(f"shared media {name} not available")
    return path


def test_vtest_first_three_frames() -> None:
    path = _media("vtest.avi")
    info = probe_video(path)
    assert (info.width, info.height, info.frame_count) == (768, 576, 795)
    assert info.fps == pytest.approx(10.0)
    start = time.monotonic()
    batches = list(read_batches(path, 2, parse_frame_range("0:3")))
    assert time.monotonic() - start < 5
    assert [int(i) for b in batches for i in b.indices] == [0, 1, 2]
    np.testing.assert_allclose(
        np.concatenate([b.timestamps for b in batches]), [0.0, 0.1, 0.2], atol=1e-6
    )
    assert all(b.images.shape[1:] == (576, 768, 3) for b in batches)


def test_vtest_last_frames() -> None:
    batches = _collect(_media("vtest.avi"), 8, parse_frame_range("-2:"))
    assert [int(i) for b in batches for i in b.indices] == [793, 794]
    np.testing.assert_allclose(batches[0].timestamps, [79.3, 79.4], atol=1e-6)


@pytest.mark.parametrize(
    ("name", "shape"),
    [("basketball1.png", (480, 640, 3)), ("messi5.jpg", (342, 548, 3))],
)
def test_read_image_shared_media(name: str, shape: tuple[int, int, int]) -> None:
    image = read_image(_media(name))
    assert image.shape == shape and image.dtype == np.uint8 and image.flags.c_contiguous
