"""The protobuf reader for Caffe models, and loading a caffemodel as PoseNet weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posecli.caffemodel import looks_like_caffemodel, parse_caffemodel, read_caffemodel
from posecli.errors import WeightsError
from posecli.model import ModelConfig, PoseNet
from posecli.weights import build_model, load_weights

TINY = ModelConfig(stages=2, vgg_widths=(4, 4, 8, 8), cpm_widths=(8, 8), stage1_width=8,
                   stage1_hidden=8, refine_width=8, refine_kernel=3)


# --------------------------------------------------------------------------- a test-only writer


def varint(value: int) -> bytes:
    """Protobuf base-128 varint; negative values as 10-byte two's complement."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def length_field(number: int, payload: bytes) -> bytes:
    return tag(number, 2) + varint(len(payload)) + payload


def unknown_fields(first: int) -> bytes:
    """One field of each skippable wire type (0, 1, 2, 5), numbered from ``first``."""
    return (tag(first, 0) + varint(300) + tag(first + 1, 1) + bytes(8)
            + length_field(first + 2, b"skip me") + tag(first + 3, 5) + bytes(4))


def encode_blob(array: np.ndarray, *, packed: bool = True, legacy_dims: bool = False,
                double: bool = False, packed_dims: bool = True) -> bytes:
    """A BlobProto holding ``array``: data packed or as unpacked fixed32 fields."""
    array = np.asarray(array)
    if legacy_dims:
        dims = (1,) * (4 - array.ndim) + array.shape
        header = b"".join(tag(n, 0) + varint(d) for n, d in zip((1, 2, 3, 4), dims))
    elif packed_dims:
        header = length_field(7, length_field(1, b"".join(varint(d) for d in array.shape)))
    else:
        header = length_field(7, b"".join(tag(1, 0) + varint(d) for d in array.shape))
    flat = array.reshape(-1)
    if double:
        data = length_field(8, flat.astype("<f8").tobytes())
    elif packed:
        data = length_field(5, flat.astype("<f4").tobytes())
    else:
        rows = np.empty((flat.size, 5), np.uint8)
        rows[:, 0] = tag(5, 5)[0]
        rows[:, 1:] = flat.astype("<f4").view(np.uint8).reshape(-1, 4)
        data = rows.tobytes()
    return header + unknown_fields(20) + data


def encode_caffemodel(layers: dict[str, list[np.ndarray]], *, legacy: bool = False,
                      **blob_options: bool) -> bytes:
    """A NetParameter with one layer per entry (``layer`` field 100, or V1 ``layers``)."""
    out = length_field(1, b"test-net") + unknown_fields(40)
    for name, blobs in layers.items():
        encoded = [encode_blob(b, **blob_options) for b in blobs]
        if legacy:
            body = (length_field(4, name.encode()) + tag(5, 0) + varint(4)
                    + b"".join(length_field(6, b) for b in encoded))
            out += length_field(2, body)
        else:
            body = (length_field(1, name.encode()) + length_field(2, b"Convolution")
                    + unknown_fields(30) + b"".join(length_field(7, b) for b in encoded))
            out += length_field(100, body)
    return out


def caffe_layers(model: PoseNet) -> dict[str, list[np.ndarray]]:
    """PoseNet weights as Caffe layers: [weight, bias], plus a blob-less ReLU layer."""
    layers: dict[str, list[np.ndarray]] = {"relu1_1": []}
    for key, tensor in model.state_dict().items():
        layers.setdefault(key.rsplit(".", 1)[0], []).append(tensor.numpy())
    return layers


# --------------------------------------------------------------------------- parsing


BLOB_VARIANTS = [
    {},
    {"packed": False},
    {"legacy_dims": True},
    {"double": True},
    {"packed_dims": False},
    {"legacy": True, "legacy_dims": True, "packed": False},
]


@pytest.mark.parametrize("options", BLOB_VARIANTS)
def test_round_trip(options: dict[str, bool]) -> None:
    rng = np.random.default_rng(0)
    layers = {"conv": [rng.normal(size=(3, 2, 3, 3)).astype(np.float32),
                       rng.normal(size=3).astype(np.float32)],
              "relu": []}
    parsed = parse_caffemodel(encode_caffemodel(layers, **options))
    assert list(parsed) == ["conv", "relu"]
    assert parsed["relu"] == []
    weight, bias = parsed["conv"]
    assert weight.dtype == np.float32 and weight.shape == (3, 2, 3, 3)
    np.testing.assert_array_equal(weight, layers["conv"][0])
    expected_bias_shape = (1, 1, 1, 3) if options.get("legacy_dims") else (3,)
    assert bias.shape == expected_bias_shape
    np.testing.assert_array_equal(bias.reshape(-1), layers["conv"][1])


def test_unpacked_data_split_by_other_fields() -> None:
    """Unpacked values interleaved with other fields still all count."""
    values = np.arange(4, dtype="<f4")
    blob = (length_field(7, length_field(1, varint(4)))
            + b"".join(tag(5, 5) + v.tobytes() for v in values[:2])
            + tag(30, 0) + varint(1)
            + b"".join(tag(5, 5) + v.tobytes() for v in values[2:]))
    data = length_field(100, length_field(1, b"x") + length_field(7, blob))
    np.testing.assert_array_equal(parse_caffemodel(data)["x"][0], values)


def test_blob_without_shape_is_flat() -> None:
    data = length_field(100, length_field(1, b"x") + length_field(
        7, length_field(5, np.ones(5, "<f4").tobytes())))
    assert parse_caffemodel(data)["x"][0].shape == (5,)


def test_read_caffemodel_from_file(tmp_path) -> None:
    path = tmp_path / "m.caffemodel"
    path.write_bytes(encode_caffemodel({"a": [np.ones((2, 2), np.float32)]}))
    assert read_caffemodel(path)["a"][0].shape == (2, 2)
    with pytest.raises(WeightsError, match="caffemodel not found: .*missing.caffemodel"):
        read_caffemodel(tmp_path / "missing.caffemodel")


def test_looks_like_caffemodel() -> None:
    assert looks_like_caffemodel(encode_caffemodel({"a": []}))
    assert looks_like_caffemodel(length_field(100, b""))
    assert not looks_like_caffemodel(b"hello world")
    assert not looks_like_caffemodel(b"")
    assert not looks_like_caffemodel(b"\xff\xff")


# --------------------------------------------------------------------------- malformed input


def _layer(blob: bytes) -> bytes:
    return length_field(100, length_field(1, b"x") + length_field(7, blob))


MALFORMED = {
    "truncated varint": (b"\x0a\xff", "truncated varint"),
    "length past the end": (tag(100, 2) + varint(50) + b"abc", "runs past the end"),
    "wrong data count": (
        _layer(length_field(7, length_field(1, varint(2) + varint(3)))
               + length_field(5, np.ones(5, "<f4").tobytes())),
        "has 5 values, its shape 2x3 needs 6"),
    "group wire type": (tag(100, 3), "unsupported wire type 3"),
    "bad wire type": (tag(9, 7), "unsupported wire type 7"),
    "overlong varint": (b"\x08" + b"\xff" * 11, "longer than 10 bytes"),
    "field number zero": (b"\x00\x00", "field number 0"),
    "packed data not whole floats": (
        _layer(length_field(5, b"\x00" * 6)), "not a multiple of 4 bytes"),
    "data with varint wire type": (_layer(tag(5, 0) + varint(1)), "has wire type 0"),
    "negative dimension": (
        _layer(length_field(7, tag(1, 0) + varint(-2))), "negative dimension"),
    # numpy used to refuse these with "array is too big" / "maximum supported dimension".
    "dimension past the file size": (
        _layer(length_field(7, length_field(1, varint(1 << 62) + varint(0)))),
        "has a dimension of 4611686018427387904, more than a"),
    "legacy dimension past the file size": (
        _layer(tag(1, 0) + varint(1 << 40) + tag(2, 0) + varint(0)),
        "has a dimension of 1099511627776"),
    "more axes than caffe allows": (
        _layer(length_field(7, length_field(1, varint(1) * 65))
               + length_field(5, np.ones(1, "<f4").tobytes())),
        "has 65 axes, more than Caffe's 32"),
    "float and double data": (
        _layer(length_field(5, bytes(4)) + length_field(8, bytes(8))), "both float and double"),
    "duplicate layer": (
        length_field(100, length_field(1, b"x")) * 2, "duplicate layer name 'x'"),
    "layer without a name": (length_field(100, b""), "has no name"),
    "name not utf-8": (length_field(100, length_field(1, b"\xff\xfe")), "not UTF-8"),
    "blob past its layer": (
        length_field(100, length_field(1, b"x") + tag(7, 2) + varint(9) + b"ab"),
        "runs past the end"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_raises_weights_error(case: str) -> None:
    data, reason = MALFORMED[case]
    with pytest.raises(WeightsError) as info:
        parse_caffemodel(data, "bad.caffemodel")
    message = str(info.value)
    assert message.startswith("caffemodel bad.caffemodel is malformed: ")
    assert reason in message
    assert "\n" not in message


@pytest.mark.parametrize("options", [{}, {"packed": False}, {"legacy": True, "legacy_dims": True}])
def test_every_truncation_and_byte_flip_is_a_weights_error(options: dict[str, bool]) -> None:
    """Cut or corrupted files raise WeightsError, never IndexError or struct.error."""
    rng = np.random.default_rng(1)
    blobs = [rng.normal(size=(2, 2, 3, 3)).astype(np.float32),
             rng.normal(size=2).astype(np.float32)]
    good = encode_caffemodel({"a": blobs, "b": blobs}, **options)
    assert len(parse_caffemodel(good)) == 2
    variants = [good[:cut] for cut in range(len(good))]
    for _ in range(300):
        flipped = bytearray(good)
        flipped[rng.integers(len(good))] = rng.integers(256)
        variants.append(bytes(flipped))
    failures = 0
    for data in variants:
        try:
            parse_caffemodel(data)
        except WeightsError as exc:
            assert "\n" not in str(exc)
            failures += 1
    assert failures > len(good) // 2


# --------------------------------------------------------------------------- as PoseNet weights


@pytest.mark.parametrize("options", [{}, {"legacy": True, "legacy_dims": True, "packed": False}])
def test_caffemodel_loads_as_posenet(tmp_path, options: dict[str, bool]) -> None:
    torch.manual_seed(0)
    source = PoseNet(TINY).eval()
    path = tmp_path / "pose_iter_440000.caffemodel"
    path.write_bytes(encode_caffemodel(caffe_layers(source), **options))
    loaded = load_weights(path)
    assert loaded.format == "caffemodel"
    assert loaded.config == TINY
    model = build_model(loaded)
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        for (pa, ha), (pb, hb) in zip(source(images), model(images)):
            assert torch.allclose(pa, pb) and torch.allclose(ha, hb)


def test_caffemodel_without_weights(tmp_path) -> None:
    path = tmp_path / "empty.caffemodel"
    path.write_bytes(encode_caffemodel({"relu": []}))
    with pytest.raises(WeightsError, match="without any weights"):
        load_weights(path)


def test_caffemodel_layer_with_three_blobs(tmp_path) -> None:
    path = tmp_path / "odd.caffemodel"
    path.write_bytes(encode_caffemodel({"conv1_1": [np.ones(1, np.float32)] * 3}))
    with pytest.raises(WeightsError, match="conv1_1 has 3 blobs"):
        load_weights(path)


def test_malformed_caffemodel_file(tmp_path) -> None:
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(encode_caffemodel(caffe_layers(PoseNet(TINY)))[:-7])
    with pytest.raises(WeightsError, match=f"caffemodel {path} is malformed"):
        load_weights(path)
