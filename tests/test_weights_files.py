"""Bad weights files of every shape: one clear line, never a hang, a traceback or a huge read."""

from __future__ import annotations

import io
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import TINY

from posecli.errors import WeightsError
from posecli.model import PoseNet
from posecli.weights import load_untrusted, load_weights


def error_of(path: Path) -> str:
    with pytest.raises(WeightsError) as info:
        load_weights(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def torch_bytes(obj, **options) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return PoseNet(TINY).state_dict()


# --------------------------------------------------------------------------- not regular files


def run_verify(path: Path | str) -> subprocess.CompletedProcess:
    """``posecli weights verify PATH`` in a child process (a hang fails the test, not CI)."""
    return subprocess.run([sys.executable, "-m", "posecli", "weights", "verify", str(path)],
                          capture_output=True, text=True, timeout=60)


def test_verify_dev_zero_is_refused_at_once() -> None:
    """It used to read /dev/zero until memory ran out."""
    result = run_verify("/dev/zero")
    assert result.returncode == 1
    assert result.stderr.strip() == ("posecli: error: weights file /dev/zero is a character "
                                     "device, not a regular file")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifo_is_refused_without_blocking(tmp_path) -> None:
    """Opening a FIFO without a writer used to block forever."""
    fifo = tmp_path / "weights.pth"
    os.mkfifo(fifo)
    result = run_verify(fifo)
    assert result.returncode == 1
    assert "is a FIFO (named pipe), not a regular file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_symlink_to_a_device_and_a_directory(tmp_path) -> None:
    link = tmp_path / "weights.pth"
    link.symlink_to("/dev/null")
    assert error_of(link) == f"weights file {link} is a character device, not a regular file"
    assert error_of(tmp_path) == f"weights file {tmp_path} is a directory, not a regular file"


def test_untrusted_checkpoints_are_read_with_the_same_checks(tmp_path) -> None:
    """``train --resume`` and ``--vgg`` read through load_untrusted."""
    with pytest.raises(WeightsError, match="checkpoint /dev/zero is a character device"):
        load_untrusted("/dev/zero", "checkpoint /dev/zero")
    caffe = tmp_path / "x.caffemodel"
    caffe.write_bytes(b"\x0a\x03net")
    with pytest.raises(WeightsError, match="is a Caffe model, not a PyTorch file"):
        load_untrusted(caffe, f"checkpoint {caffe}")


def test_only_the_head_is_read_before_the_format_is_known(tmp_path) -> None:
    """A 1 TiB (sparse) file that is not weights is refused after its first bytes; it used
    to be read whole (MemoryError)."""
    path = tmp_path / "huge.pth"
    with open(path, "wb") as f:
        f.write(b"not weights")
        try:
            f.truncate(1 << 40)
        except OSError:
            pytest.skip("this file system has no 1 TiB sparse files")
    result = run_verify(path)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"posecli: error: weights file {path} could not be read: "
                                     "neither a PyTorch file nor a Caffe model")


# --------------------------------------------------------------------------- damaged zips


def test_pk_header_with_junk_is_a_corrupt_zip(tmp_path) -> None:
    """It used to be reported as 'holds Python objects other than tensors'."""
    path = tmp_path / "w.pth"
    path.write_bytes(b"PK" + bytes(range(256)) * 4)
    message = error_of(path)
    assert message == (f"weights file {path} could not be read: it is a corrupt or truncated "
                       "zip archive (no central directory)")
    assert "Python objects" not in message


def test_truncated_zip(tmp_path, state) -> None:
    path = tmp_path / "w.pth"
    data = torch_bytes(state)
    for cut in (len(data) // 2, len(data) - 30):
        path.write_bytes(data[:cut])
        assert "corrupt or truncated zip archive" in error_of(path)


def _declare_size(data: bytes, member: str, size: int) -> bytes:
    """``data`` with the zip member's sizes (central directory and local header) set to ``size``."""
    out = bytearray(data)
    archive = zipfile.ZipFile(io.BytesIO(data))
    info = next(i for i in archive.infolist() if i.filename.endswith(member))
    struct.pack_into("<II", out, info.header_offset + 18, size, size)
    position = 0
    while (position := out.find(b"PK\x01\x02", position)) >= 0:
        name_length = struct.unpack_from("<H", out, position + 28)[0]
        if out[position + 46:position + 46 + name_length] == info.filename.encode():
            struct.pack_into("<II", out, position + 20, size, size)
        position += 4
    return bytes(out)


def test_zip_member_declared_past_the_end(tmp_path, state) -> None:
    path = tmp_path / "w.pth"
    path.write_bytes(_declare_size(torch_bytes(state), "data/0", 0x7FFF_FFF0))
    message = error_of(path)
    assert "corrupt or truncated zip archive" in message
    assert "declares 2147483632 bytes past the end of the file" in message


def test_zip_that_is_not_a_torch_file(tmp_path) -> None:
    path = tmp_path / "w.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert error_of(path).endswith("it is a zip archive but not a PyTorch file (no data.pkl)")


def test_flipped_bytes_in_a_zip_are_corruption_not_code(tmp_path, state) -> None:
    data = bytearray(torch_bytes(state))
    start = data.find(b"data.pkl") + 40  # inside the pickle of the state dict
    data[start:start + 16] = bytes(16)
    path = tmp_path / "w.pth"
    path.write_bytes(bytes(data))
    message = error_of(path)
    assert "could not be read: it is a corrupt" in message
    assert "Python objects" not in message


# --------------------------------------------------------------------------- legacy (pre-1.6) files


def test_legacy_format_loads(tmp_path, state) -> None:
    path = tmp_path / "old.pth"
    path.write_bytes(torch_bytes(state, _use_new_zipfile_serialization=False))
    assert path.read_bytes()[:1] == b"\x80"
    loaded = load_weights(path)
    assert loaded.format == "body_pose_model"
    assert all(torch.equal(loaded.state_dict[k], v) for k, v in state.items())


def test_damaged_legacy_files_are_corrupt_not_code(tmp_path, state) -> None:
    """A broken pickle used to be reported as 'holds Python objects other than tensors'."""
    path = tmp_path / "old.pth"
    path.write_bytes(b"\x80\x02" + bytes(100))
    message = error_of(path)
    assert message == (f"weights file {path} could not be read: it is a corrupt or truncated "
                       "PyTorch file (Unsupported operand 0)")
    data = torch_bytes(state, _use_new_zipfile_serialization=False)
    for cut in (40, len(data) // 2):
        path.write_bytes(data[:cut])
        assert "corrupt or truncated PyTorch file" in error_of(path)


def test_legacy_storage_larger_than_memory(tmp_path) -> None:
    """A legacy file declaring a 4 TB tensor: one line, nothing allocated."""

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "0", "cpu", 1 << 40, None) \
                if obj is marker else None

    marker = object()
    buffer = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001,
                   {"protocol_version": 1001, "little_endian": True,
                    "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(header, buffer, protocol=2)
    Pickler(buffer, protocol=2).dump({"conv1_1.weight": marker})
    pickle.dump(["0"], buffer, protocol=2)
    buffer.write(struct.pack("<q", 1 << 40) + bytes(16))
    path = tmp_path / "huge.pth"
    path.write_bytes(buffer.getvalue())
    assert "could not be read: it is a corrupt or truncated PyTorch file" in error_of(path)
