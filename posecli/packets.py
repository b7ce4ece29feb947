"""Demuxing and decoding one video stream packet by packet, skipping corrupt packets.

A packet that fails to decode is skipped and reported; the frames it held keep
their indices (placed from the presentation times of the packets around them), so
later frames keep theirs. More than ``MAX_CORRUPT_IN_A_ROW`` failures in a row and
the input is unreadable, not damaged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import av
import av.error

from posecli.errors import InputError, error_reason
from posecli.sources import source_name, stream_start

# Most packets remembered as given to the decoder and not yet out (its delay is less).
_MAX_PENDING = 64
# More corrupt packets than this in a row and the input is unreadable, not damaged.
MAX_CORRUPT_IN_A_ROW = 100


def _decode(packet: av.Packet) -> list[av.VideoFrame]:
    """Decode one packet (a separate function so tests can make it fail)."""
    return packet.decode()


class PacketDecoder:
    """Demux and decode one video stream packet by packet, skipping corrupt packets.

    ``frames()`` runs in one thread at a time (the opener's, then the decoding
    thread); ``skipped`` may be read from any thread.
    """

    def __init__(
        self,
        container: av.container.InputContainer,
        stream: av.VideoStream,
        source: str,
        warn: Callable[[str], None] | None,
    ) -> None:
        self.skipped = 0
        self._container = container
        self._stream = stream
        self._source = source
        self._warn = warn
        self.stream_start = stream_start(stream)
        self._last_time = 0.0
        self._in_a_row = 0
        # pts of the packets read whose frame has not come out (yet): about as many
        # as the decoder's delay.
        self._pending: list[int] = []
        # Frames lost to skipped packets whose place in the frame order is not known
        # yet (the error may show up a few packets late, with frame threading).
        self._unplaced = 0
        # Frames lost right before the frame last yielded.
        self._gap = 0

    def frames(self) -> Iterator[av.VideoFrame]:
        """All decodable frames in display order (the decoder is flushed at the end).

        Raises:
            InputError: more than ``MAX_CORRUPT_IN_A_ROW`` failures in a row.
            av.error.FFmpegError, OSError: a read error that is not corrupt data
                (e.g. a network error).
        """
        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.InvalidDataError as exc:
                # The demuxer could not parse what it read: skip it and read on.
                self._skip(None, exc)
                packets = self._container.demux(self._stream)
                continue
            time = self._time(packet)
            if packet.size and packet.pts is not None:
                self._pending.append(packet.pts)
                del self._pending[:-_MAX_PENDING]  # stays small even if pts never match
            try:
                frames = _decode(packet)
            except av.error.FFmpegError as exc:
                self._skip(packet, exc)
                continue
            if time is not None:
                self._last_time = time
            self._in_a_row = 0
            for frame in frames:
                self._place_lost(frame.pts)
                yield frame

    def take_gap(self) -> int:
        """How many frames were lost (to skipped packets) right before the frame just
        yielded by ``frames()``: the gap to leave in the frame indices."""
        gap, self._gap = self._gap, 0
        return gap

    def _place_lost(self, pts: int | None) -> None:
        """Account for the lost frames that come before a frame with this pts.

        Frames come out in pts order, so packets read with a smaller pts whose frame
        has not come out never will: as many of them as there are unplaced lost
        frames are the lost ones. (A packet may also give no frame without an error,
        e.g. a VP8 hidden frame; those leave no gap.)
        """
        if pts is None:
            self._gap += self._unplaced
            self._unplaced = 0
            self._pending.clear()
            return
        earlier = sum(1 for p in self._pending if p < pts)
        gap = min(earlier, self._unplaced)
        self._gap += gap
        self._unplaced -= gap
        self._pending = [p for p in self._pending if p > pts]

    def _skip(self, packet: av.Packet | None, exc: BaseException) -> None:
        """Count and report a packet (or unparsable data) that is skipped."""
        self._in_a_row += 1
        if self._in_a_row > MAX_CORRUPT_IN_A_ROW:
            raise InputError(
                f"cannot decode {source_name(self._source)}: more than {MAX_CORRUPT_IN_A_ROW} "
                f"corrupt packets in a row ({error_reason(exc)})"
            )
        self.skipped += 1
        time = None if packet is None else self._time(packet)
        if packet is not None and packet.size:
            if packet.pts is None:
                self._gap += 1  # no way to tell where: before the next frame
            else:
                self._unplaced += 1
        if self._warn is not None:
            where = f"at {time:.1f} s" if time is not None else f"after {self._last_time:.1f} s"
            what = "corrupt packet" if packet is not None else "unreadable data"
            self._warn(
                f"{source_name(self._source)}: skipped {what} {where} ({self.skipped} so far)"
            )

    def _time(self, packet: av.Packet) -> float | None:
        """The packet's time in seconds from the start of the stream, if known."""
        pts = packet.pts if packet.pts is not None else packet.dts
        if pts is None or packet.time_base is None:
            return None
        return float(pts * packet.time_base) - self.stream_start
