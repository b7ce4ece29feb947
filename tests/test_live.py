"""Tests for posecli.video beyond plain files: corrupt packets, stdin, cameras, URLs,
realtime dropping, and paths with spaces and non-ASCII characters."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import av.error
import numpy as np
import pytest
from test_video import _decoded_indices, _decoder_threads, _write_video

from posecli import packets, sources, video
from posecli.errors import InputError, UsageError
from posecli.video import FrameBatch, VideoReader, probe_video, read_batches

ROOT = Path(__file__).resolve().parents[1]

INVALID_DATA = "Invalid data found when processing input"


def _invalid_data() -> av.error.InvalidDataError:
    return av.error.InvalidDataError(1094995529, INVALID_DATA)


def _read(reader: VideoReader) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Iterate a reader: (indices, timestamps, images)."""
    with reader:
        batches = list(reader)
    assert batches, "no frames"
    indices = [int(i) for b in batches for i in b.indices]
    timestamps = np.concatenate([b.timestamps for b in batches])
    return indices, timestamps, np.concatenate([b.images for b in batches])


def _write_long(path: Path, count: int = 100) -> Path:
    """``count`` frames, 64x48, 10 fps (no index in the pixels: too many frames)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.qmax = 2
        for i in range(count):
            image = np.full((48, 64, 3), 10 + 2 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _clobber_middle(path: Path) -> Path:
    """Overwrite bytes 40% to 60% of the file with (seeded) random garbage."""
    data = bytearray(path.read_bytes())
    start, end = len(data) * 2 // 5, len(data) * 3 // 5
    data[start:end] = np.random.default_rng(0).integers(0, 256, end - start, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 frames, 64x48, 10 fps; frame i has grey level 10 + 8 i."""
    return _write_video(tmp_path_factory.mktemp("live") / "clip.mp4")


@pytest.fixture(scope="module")
def ts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same 20 frames in MPEG-TS (no frame count, streamable)."""
    return _write_video(tmp_path_factory.mktemp("live") / "clip.ts")


# --- corrupt packets ------------------------------------------------------------------

_WARNING = re.compile(
    r"^(?P<src>.+): skipped corrupt packet at \d+\.\d s \((?P<n>\d+) so far\)$"
)


def test_corrupt_ts_reads_on(tmp_path: Path) -> None:
    """Real behaviour: the MPEG-TS demuxer resyncs past the garbage and drops the PES
    packets it cannot parse; FFmpeg raises nothing, the frames are simply missing."""
    path = _clobber_middle(_write_long(tmp_path / "damaged.ts"))
    warnings: list[str] = []
    reader = VideoReader(path, 8, on_warning=warnings.append)
    indices, timestamps, images = _read(reader)
    assert 50 <= len(indices) < 100
    assert indices == list(range(len(indices)))  # lost in the demuxer: no gap to see
    assert np.all(np.diff(timestamps) > 0)
    assert timestamps[-1] == pytest.approx(9.9)  # the end survived, after the damage
    np.testing.assert_allclose(timestamps[:30], np.arange(30) / 10, atol=1e-6)  # before it
    assert images.shape[1:] == (48, 64, 3)
    # Whatever the decoder itself rejected (nothing, with this FFmpeg) is reported.
    assert len(warnings) == reader.skipped_packets
    assert all(_WARNING.match(w) for w in warnings)


def test_corrupt_mp4_packets_are_skipped(tmp_path: Path) -> None:
    """Real behaviour: the MP4 index survives, so the garbage reaches the MPEG-4
    decoder, which raises InvalidDataError for each damaged packet: each is skipped,
    counted and reported, and the frame indices keep a gap where the frames were."""
    path = _clobber_middle(_write_long(tmp_path / "damaged.mp4"))
    warnings: list[str] = []
    reader = VideoReader(path, 8, on_warning=warnings.append)
    assert reader.info.frame_count == 100
    indices, timestamps, _ = _read(reader)
    assert reader.skipped_packets > 0
    assert len(indices) + reader.skipped_packets == 100
    assert 50 <= len(indices) < 100
    # Every frame keeps its place in the video: index = time x fps, gaps included.
    np.testing.assert_allclose(timestamps, np.array(indices) / 10, atol=1e-6)
    assert indices[-1] == 99
    assert len(warnings) == reader.skipped_packets
    matches = [_WARNING.match(w) for w in warnings]
    assert all(matches), warnings
    assert [int(m["n"]) for m in matches] == list(range(1, len(warnings) + 1))
    assert {m["src"] for m in matches} == {str(path)}
    assert not _decoder_threads()


def _fail_packets(monkeypatch: pytest.MonkeyPatch, lost: set[int], fps: int = 10) -> None:
    """Make decoding the packets of the given frame indices raise InvalidDataError."""
    decode = packets._decode

    def failing(packet: av.Packet) -> list[av.VideoFrame]:
        if (
            packet.size
            and packet.pts is not None
            and round(packet.pts * packet.time_base * fps) in lost
        ):
            raise _invalid_data()
        return decode(packet)

    monkeypatch.setattr(packets, "_decode", failing)


def test_injected_decode_error_skips_one_packet(mp4: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_packets(monkeypatch, {5})
    warnings: list[str] = []
    reader = VideoReader(mp4, 4, on_warning=warnings.append)
    indices, timestamps, images = _read(reader)
    expected = [i for i in range(20) if i != 5]
    assert indices == expected
    np.testing.assert_allclose(timestamps, np.array(expected) / 10, atol=1e-6)
    assert _decoded_indices(images)[:5] == [0, 1, 2, 3, 4]
    assert reader.skipped_packets == 1
    assert warnings == [f"{mp4}: skipped corrupt packet at 0.5 s (1 so far)"]


def test_skips_before_first_frame_are_reported_when_opening(
    mp4: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fail_packets(monkeypatch, {0, 1})
    warnings: list[str] = []
    reader = VideoReader(mp4, 4, on_warning=warnings.append)
    # Reported from the constructor, in the caller's thread.
    assert len(warnings) == 2 and reader.skipped_packets == 2
    indices, timestamps, _ = _read(reader)
    assert indices == list(range(2, 20))
    np.testing.assert_allclose(timestamps, np.arange(2, 20) / 10, atol=1e-6)
    assert len(warnings) == 2


def test_warnings_come_from_the_consumer_thread(mp4: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_packets(monkeypatch, {3, 9, 15})
    threads: list[str] = []
    reader = VideoReader(
        mp4, 2, on_warning=lambda m: threads.append(threading.current_thread().name)
    )
    indices, _, _ = _read(reader)
    assert indices == [i for i in range(20) if i not in (3, 9, 15)]
    assert threads == [threading.current_thread().name] * 3


def test_skipping_without_callback(mp4: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_packets(monkeypatch, {7})
    batches = list(read_batches(mp4, 32))
    assert [int(i) for i in batches[0].indices] == [i for i in range(20) if i != 7]


def test_gap_past_the_end_of_a_range(mp4: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_packets(monkeypatch, {3, 4})
    indices, _, _ = _read(VideoReader(mp4, 8, slice(1, 4)))
    assert indices == [1, 2]


def test_too_many_corrupt_packets_in_a_row(mp4: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packets, "MAX_CORRUPT_IN_A_ROW", 3)
    _fail_packets(monkeypatch, set(range(6, 20)))
    warnings: list[str] = []
    with VideoReader(mp4, 1, on_warning=warnings.append) as reader:
        got = []
        with pytest.raises(InputError) as info:
            for batch in reader:
                got.extend(int(i) for i in batch.indices)
    assert str(info.value) == (
        f"cannot decode {mp4}: more than 3 corrupt packets in a row ({INVALID_DATA})"
    )
    # Frames still inside the (threaded) decoder when it gives up are lost.
    assert got == list(range(len(got))) and 3 <= len(got) <= 6
    assert len(warnings) == 3 and reader.skipped_packets == 3
    reader._thread.join(2)
    assert not _decoder_threads()


def test_unreadable_from_the_start(mp4: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packets, "MAX_CORRUPT_IN_A_ROW", 5)
    _fail_packets(monkeypatch, set(range(20)))
    expected = f"cannot decode {mp4}: more than 5 corrupt packets in a row ({INVALID_DATA})"
    with pytest.raises(InputError) as info:
        probe_video(mp4)
    assert str(info.value) == expected
    with pytest.raises(InputError) as info:
        VideoReader(mp4, 4)
    assert str(info.value) == expected


def test_corrupt_packets_in_a_row_are_fine_below_the_limit(
    mp4: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packets, "MAX_CORRUPT_IN_A_ROW", 5)
    _fail_packets(monkeypatch, {2, 3, 4, 5, 6, 10, 11, 12, 13, 14})  # 5 in a row, twice
    reader = VideoReader(mp4, 4)
    indices, _, _ = _read(reader)
    assert indices == [0, 1, 7, 8, 9, 15, 16, 17, 18, 19]
    assert reader.skipped_packets == 10


class _FlakyDemuxer:
    """Wraps a container: its demuxer raises InvalidDataError once, after ``after``
    packets (as FFmpeg does for data it cannot parse), then reads on."""

    def __init__(self, container: av.container.InputContainer, after: int) -> None:
        self._container = container
        self._after = after
        self.failed = False

    def demux(self, stream: av.VideoStream) -> Iterator[av.Packet]:
        for count, packet in enumerate(self._container.demux(stream), 1):
            yield packet
            if count == self._after and not self.failed:
                self.failed = True
                raise _invalid_data()


def test_demuxer_error_is_skipped(mp4: Path) -> None:
    warnings: list[str] = []
    container = av.open(str(mp4))
    try:
        flaky = _FlakyDemuxer(container, after=5)
        decoder = packets.PacketDecoder(flaky, container.streams.video[0], str(mp4),
                                        warnings.append)
        frames = list(decoder.frames())
    finally:
        container.close()
    assert flaky.failed
    assert len(frames) == 20  # nothing was lost: the demuxer read on
    assert decoder.skipped == 1
    assert warnings == [f"{mp4}: skipped unreadable data after 0.4 s (1 so far)"]


# --- live sources: argument choice ---------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target", "kwargs"),
    [
        ("-", "pipe:0", {}),
        ("/dev/video0", "/dev/video0", {"format": "v4l2"}),
        ("/dev/video12", "/dev/video12", {"format": "v4l2"}),
        (
            "/dev/v4l/by-id/usb-cam-video-index0",
            "/dev/v4l/by-id/usb-cam-video-index0",
            {"format": "v4l2"},
        ),
        ("clip.mp4", "clip.mp4", {}),
        ("/videos/dev/video0.mp4", "/videos/dev/video0.mp4", {}),
        (
            "rtsp://cam.local:554/stream1",
            "rtsp://cam.local:554/stream1",
            {"options": {"rtsp_transport": "tcp"}, "timeout": (20.0, 30.0)},
        ),
        (
            "RTSP://cam.local/s",
            "RTSP://cam.local/s",
            {"options": {"rtsp_transport": "tcp"}, "timeout": (20.0, 30.0)},
        ),
        ("http://host/a.ts", "http://host/a.ts", {"timeout": (20.0, 30.0)}),
        ("https://host/a.m3u8", "https://host/a.m3u8", {"timeout": (20.0, 30.0)}),
        ("udp://0.0.0.0:1234", "udp://0.0.0.0:1234", {"timeout": (20.0, 30.0)}),
        ("tcp://127.0.0.1:9000", "tcp://127.0.0.1:9000", {"timeout": (20.0, 30.0)}),
    ],
)
def test_open_args(source: str, target: str, kwargs: dict[str, object]) -> None:
    assert sources.open_args(source) == (target, kwargs)


def test_missing_camera() -> None:
    with pytest.raises(InputError) as info:
        VideoReader("/dev/video987", 4)
    assert str(info.value) == "camera not found: /dev/video987"


def test_camera_is_opened_with_v4l2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No camera hardware: a regular file at a camera path makes V4L2 fail for real."""
    fake = tmp_path / "video0"
    fake.write_bytes(b"not a camera")
    monkeypatch.setattr(sources, "CAMERA_PREFIX", str(tmp_path / "video"))
    calls = []
    real_open = av.open

    def recording_open(target: str, **kwargs: object) -> av.container.InputContainer:
        calls.append((target, kwargs))
        return real_open(target, **kwargs)

    monkeypatch.setattr(video.av, "open", recording_open)
    with pytest.raises(InputError) as info:
        VideoReader(str(fake), 4)
    assert calls == [(str(fake), {"format": "v4l2"})]
    message = str(info.value)
    assert message.startswith(f"cannot open {fake} (") and "\n" not in message


def test_live_sources_have_no_frame_count_to_count() -> None:
    for source in ["-", "/dev/video0", "rtsp://cam/s", "http://host/a.mp4", "udp://:1234"]:
        assert sources.count_frames(source) is None


# --- stdin ----------------------------------------------------------------------------


@contextlib.contextmanager
def _stdin_fd(fd: int) -> Iterator[None]:
    """Make ``fd`` the process's file descriptor 0 (what ``pipe:0`` reads) for a while."""
    saved = os.dup(0)
    try:
        os.dup2(fd, 0)
        yield
    finally:
        os.dup2(saved, 0)
        os.close(saved)


@contextlib.contextmanager
def _piped_stdin(data: bytes) -> Iterator[None]:
    """Stdin is a pipe (not seekable, like a real one) that a thread fills with data."""
    read_end, write_end = os.pipe()

    def feed() -> None:
        try:
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(data)
        except BrokenPipeError:
            pass  # the reader gave up early

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        with _stdin_fd(read_end):
            os.close(read_end)
            yield
    finally:
        feeder.join(10)


@pytest.mark.parametrize("suffix", [".ts", ".mkv", ".mp4"])
def test_stdin(tmp_path: Path, suffix: str) -> None:
    path = _write_video(tmp_path / f"clip{suffix}")
    with _piped_stdin(path.read_bytes()):
        reader = VideoReader("-", 8)
        assert reader.info.path == "-"
        assert (reader.info.width, reader.info.height) == (64, 48)
        indices, timestamps, images = _read(reader)
    assert indices == list(range(20))
    np.testing.assert_allclose(timestamps, np.arange(20) / 10, atol=1e-6)
    assert _decoded_indices(images) == list(range(20))
    assert not _decoder_threads()


def test_stdin_has_no_frame_count(ts: Path) -> None:
    with _piped_stdin(ts.read_bytes()):
        info = probe_video("-")  # reads stdin: it cannot be read again
    assert (info.path, info.frame_count) == ("-", None)
    with _piped_stdin(ts.read_bytes()), pytest.raises(UsageError) as error:
        VideoReader("-", 8, slice(-5, None))
    assert str(error.value) == (
        "--frames with a negative START or END needs the frame count, which is unknown for stdin"
    )


@pytest.mark.parametrize("data", [b"", b"this is not a video\n" * 100])
def test_stdin_not_a_video(data: bytes) -> None:
    with _piped_stdin(data), pytest.raises(InputError) as info:
        VideoReader("-", 8)
    message = str(info.value)
    assert message.startswith("cannot open stdin (") and "\n" not in message


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_stdin_terminal() -> None:
    leader, follower = os.openpty()
    try:
        with _stdin_fd(follower), pytest.raises(InputError) as info:
            VideoReader("-", 8)
    finally:
        os.close(leader)
        os.close(follower)
    assert str(info.value) == (
        "no video on stdin: it is a terminal (pipe a video in, "
        "e.g. `cat in.ts | posecli video - ...`)"
    )


_STDIN_SCRIPT = """
import json
from posecli.video import VideoReader
with VideoReader("-", 8) as reader:
    indices = [int(i) for batch in reader for i in batch.indices]
print(json.dumps({"path": reader.info.path, "count": reader.info.frame_count, "indices": indices}))
"""


def test_stdin_of_a_subprocess(ts: Path) -> None:
    """End to end: a real stdin, as in ``cat clip.ts | posecli video - ...``."""
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    with ts.open("rb") as stdin:
        result = subprocess.run(
            [sys.executable, "-c", _STDIN_SCRIPT],
            stdin=stdin,
            capture_output=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": pythonpath},
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""  # FFmpeg's own log stays quiet
    got = json.loads(result.stdout)
    assert got == {"path": "-", "count": None, "indices": list(range(20))}


# --- http -----------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server on 127.0.0.1 serving a temporary folder: (base URL, folder)."""
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize(("suffix", "count"), [(".ts", None), (".mp4", 20), (".mkv", None)])
def test_http(http_dir: tuple[str, Path], suffix: str, count: int | None) -> None:
    base, folder = http_dir
    _write_video(folder / f"clip{suffix}")
    url = f"{base}/clip{suffix}"
    info = probe_video(url)
    assert (info.path, info.width, info.height, info.frame_count) == (url, 64, 48, count)
    indices, timestamps, images = _read(VideoReader(url, 8))
    assert indices == list(range(20))
    np.testing.assert_allclose(timestamps, np.arange(20) / 10, atol=1e-6)
    assert _decoded_indices(images) == list(range(20))
    assert not _decoder_threads()


def test_http_negative_frames(http_dir: tuple[str, Path]) -> None:
    base, folder = http_dir
    _write_video(folder / "clip.ts")
    with pytest.raises(UsageError, match="frame count"):
        VideoReader(f"{base}/clip.ts", 4, slice(-5, None))


def test_http_not_found(http_dir: tuple[str, Path]) -> None:
    base, _ = http_dir
    with pytest.raises(InputError) as info:
        VideoReader(f"{base}/nope.ts", 4)
    assert str(info.value) == f"cannot open {base}/nope.ts (Server returned 404 Not Found)"


def test_connection_refused() -> None:
    with pytest.raises(InputError) as info:
        probe_video("rtsp://127.0.0.1:1/stream")
    assert str(info.value) == "cannot open rtsp://127.0.0.1:1/stream (Connection refused)"


# --- realtime -------------------------------------------------------------------------


class _RecordingQueue(queue.Queue):
    """A queue that remembers the most items it ever held."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.most = 0

    def _put(self, item: object) -> None:
        super()._put(item)
        self.most = max(self.most, self._qsize())


def test_realtime_drops_oldest_batches(tmp_path: Path) -> None:
    path = _write_video(tmp_path / "clip.mp4", 30)
    reader = VideoReader(path, 1, queue_size=2, realtime=True)
    reader._queue = recording = _RecordingQueue(2)
    received: list[FrameBatch] = []
    with reader:
        for batch in reader:
            received.append(batch)
            time.sleep(0.05)  # a slow consumer
    indices = [int(i) for b in received for i in b.indices]
    assert len(indices) < 30
    assert reader.dropped_frames > 0
    assert len(indices) + reader.dropped_frames == 30
    assert indices == sorted(set(indices))  # strictly increasing
    assert indices[-1] == 29  # the most recent frame always gets through
    images = np.concatenate([b.images for b in received])
    assert _decoded_indices(images) == indices  # each image with its own index
    assert recording.most <= 2  # memory stays bounded
    assert not _decoder_threads()


def test_realtime_keeps_everything_for_a_fast_consumer(mp4: Path) -> None:
    reader = VideoReader(mp4, 4, queue_size=8, realtime=True)
    indices, _, _ = _read(reader)
    assert indices == list(range(20))
    assert reader.dropped_frames == 0


def test_realtime_break_stops_thread(mp4: Path) -> None:
    with VideoReader(mp4, 1, queue_size=1, realtime=True) as reader:
        for _ in reader:
            time.sleep(0.1)
            break
    reader._thread.join(2)
    assert not reader._thread.is_alive()
    assert not _decoder_threads()


def test_not_realtime_drops_nothing(mp4: Path) -> None:
    reader = VideoReader(mp4, 1, queue_size=1)
    received = []
    with reader:
        for batch in reader:
            received.append(batch)
            time.sleep(0.005)
    assert len(received) == 20 and reader.dropped_frames == 0 and reader.skipped_packets == 0


def test_read_batches_realtime(mp4: Path) -> None:
    batches = list(read_batches(mp4, 32, realtime=True, on_warning=print))
    assert [int(i) for i in batches[0].indices] == list(range(20))


# --- paths ----------------------------------------------------------------------------


def test_unicode_and_spaces_in_path(tmp_path: Path) -> None:
    folder = tmp_path / "vidéo à l'été"
    folder.mkdir()
    path = _write_video(folder / "clip 1 ☃.mp4")
    info = probe_video(path)
    assert (info.path, info.frame_count, info.width) == (str(path), 20, 64)
    for source in (path, str(path)):
        indices, _, images = _read(VideoReader(source, 8))
        assert indices == list(range(20))
        assert _decoded_indices(images) == list(range(20))
    missing = folder / "clip 2 ☃.mp4"
    with pytest.raises(InputError) as info:
        VideoReader(missing, 8)
    assert str(info.value) == f"input not found: {missing}"
