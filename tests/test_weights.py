"""Loading, converting, validating and resolving weights, and ``posecli weights``."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from posecli import weights as W
from posecli.cli.weights import describe_config, human_size, weights_app
from posecli.errors import NoWeightsError, UsageError, WeightsError
from posecli.model import ModelConfig, PoseNet, count_parameters

TINY = ModelConfig(stages=3, vgg_widths=(4, 4, 8, 8), cpm_widths=(8, 8), stage1_width=8,
                   stage1_hidden=8, refine_width=8, refine_kernel=3)

#: The trunk of rtpose's model0 Sequential: "c" = conv + ReLU, "p" = max pool.
RTPOSE_TRUNK = "cc" "p" "cc" "p" "cccc" "p" "cccc"


def random_model(config: ModelConfig = TINY, seed: int = 0) -> PoseNet:
    torch.manual_seed(seed)
    return PoseNet(config).eval()


def to_rtpose(model: PoseNet, prefix: str = "") -> dict[str, torch.Tensor]:
    """The model's weights in tensorboy's nn.Sequential key layout (sparse indices)."""
    state = model.state_dict()
    blocks = {"model0": [], **{f"model{s}_{b}": [] for s in range(1, model.config.stages + 1)
                               for b in (1, 2)}}
    index = 0
    for kind in RTPOSE_TRUNK:
        if kind == "c":
            blocks["model0"].append(index)
        index += 2 if kind == "c" else 1
    for block in blocks:
        if block != "model0":
            blocks[block] = list(range(0, 2 * len(W.block_names(block)), 2))
    out = {}
    for block, indices in blocks.items():
        for name, i in zip(W.block_names(block), indices, strict=True):
            for param in ("weight", "bias"):
                out[f"{prefix}{block}.{i}.{param}"] = state[f"{name}.{param}"]
    return out


def assert_same_outputs(a: PoseNet, b: PoseNet) -> None:
    images = torch.randn(2, 3, 32, 24)
    with torch.no_grad():
        for (pa, ha), (pb, hb) in zip(a(images), b(images), strict=True):
            assert torch.allclose(pa, pb) and torch.allclose(ha, hb)


def save_state(path: Path, state: dict[str, torch.Tensor]) -> Path:
    torch.save(state, path)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(WeightsError) as info:
        W.load_weights(path)
    message = str(info.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- formats


def test_block_names_cover_the_default_model() -> None:
    blocks = ["model0"] + [f"model{s}_{b}" for s in range(1, 7) for b in (1, 2)]
    names = [n for block in blocks for n in W.block_names(block)]
    layers = {key.rsplit(".", 1)[0] for key in PoseNet().state_dict()}
    assert len(names) == len(layers) == 92 and set(names) == layers
    assert W.block_names("model0_1") is None and W.block_names("model7_3") is None


@pytest.mark.parametrize(("fmt", "writer"), [
    ("body_pose_model", lambda m: m.state_dict()),
    ("body_pose_model", lambda m: {f"module.{k}": v for k, v in m.state_dict().items()}),
    ("pose_model", to_rtpose),
    ("pose_model", lambda m: to_rtpose(m, "module.")),
])
def test_state_dict_formats_round_trip(tmp_path, fmt, writer) -> None:
    source = random_model()
    path = save_state(tmp_path / "weights.bin", writer(source))
    loaded = W.load_weights(path)
    assert loaded.format == fmt
    assert loaded.config == TINY
    assert loaded.path == path
    assert loaded.sha256 == W.file_sha256(path)
    assert loaded.metadata == {}
    assert list(loaded.state_dict) == list(source.state_dict())
    assert_same_outputs(source, W.build_model(loaded))


def test_rtpose_indices_are_sorted_as_integers(tmp_path) -> None:
    """model0 indices run past 9: "10" must come after "2", not before."""
    state = to_rtpose(random_model())
    assert "model0.10.weight" in state
    shuffled = dict(sorted(state.items()))  # lexicographic key order in the file
    loaded = W.load_weights(save_state(tmp_path / "pose_model.pth", shuffled))
    assert torch.equal(loaded.state_dict["conv2_2.weight"], state["model0.7.weight"])


def test_extra_rtpose_conv_is_unexpected(tmp_path) -> None:
    state = to_rtpose(random_model())
    state["model1_1.40.weight"] = torch.zeros(1)
    assert "unexpected model1_1.40.weight" in error_of(save_state(tmp_path / "p.pth", state))


@pytest.mark.parametrize("config", [
    ModelConfig(stages=1, vgg_widths=(2, 3, 4, 5), cpm_widths=(6, 7), stage1_width=3,
                stage1_hidden=5),
    ModelConfig(stages=2, vgg_widths=(4, 4, 8, 8), cpm_widths=(8, 6), stage1_width=4,
                stage1_hidden=6, refine_width=5, refine_kernel=5),
])
def test_inferred_config(tmp_path, config: ModelConfig) -> None:
    source = random_model(config)
    loaded = W.load_weights(save_state(tmp_path / "w.pth", source.state_dict()))
    assert loaded.config == config
    assert_same_outputs(source, W.build_model(loaded))


def test_half_precision_is_loaded_as_float32(tmp_path) -> None:
    state = {k: v.half() for k, v in random_model().state_dict().items()}
    loaded = W.load_weights(save_state(tmp_path / "half.pth", state))
    assert all(t.dtype == torch.float32 for t in loaded.state_dict.values())


def test_posecli_checkpoint_round_trip(tmp_path) -> None:
    source = random_model()
    optimizer = torch.optim.Adam(source.parameters())
    source(torch.randn(1, 3, 16, 16))[-1][0].sum().backward()
    optimizer.step()
    path = tmp_path / "run" / "checkpoint.pth"
    W.save_checkpoint(path, source, {"epoch": 3, "note": "test"},
                      optimizer=optimizer.state_dict(), step=10)
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pth"]  # no temp left
    loaded = W.load_weights(path)
    assert loaded.format == "posecli"
    assert loaded.config == TINY
    assert loaded.metadata == {"epoch": 3, "note": "test"}
    assert_same_outputs(source.eval(), W.build_model(loaded))


def test_save_checkpoint_refuses_unloadable_values(tmp_path) -> None:
    path = tmp_path / "c.pth"
    with pytest.raises(TypeError, match=r"metadata\['where'\] is a PosixPath"):
        W.save_checkpoint(path, random_model(), {"where": tmp_path})
    with pytest.raises(TypeError, match="reserved"):
        W.save_checkpoint(path, random_model(), {}, config={})
    assert list(tmp_path.iterdir()) == []


def test_save_checkpoint_replaces_atomically(tmp_path) -> None:
    path = tmp_path / "c.pth"
    W.save_checkpoint(path, random_model(seed=1), {"n": 1})
    W.save_checkpoint(path, random_model(seed=2), {"n": 2})
    assert W.load_weights(path).metadata == {"n": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["c.pth"]


@pytest.mark.parametrize(("change", "reason"), [
    ({"version": 2}, "unsupported version 2"),
    ({"config": {"stages": 3, "wings": 2}}, "unknown model config keys: wings"),
    ({"config": {"stages": 0}}, "bad model config"),
    ({"state_dict": [1, 2]}, "broken posecli checkpoint"),
])
def test_bad_posecli_checkpoint(tmp_path, change, reason) -> None:
    model = random_model()
    checkpoint = {"format": W.CHECKPOINT_FORMAT, "version": 1, "config": TINY.to_dict(),
                  "state_dict": model.state_dict(), "metadata": {}, **change}
    assert reason in error_of(save_state(tmp_path / "c.pth", checkpoint))


def test_build_model_is_in_eval_mode() -> None:
    loaded = W.LoadedWeights(random_model().state_dict(), TINY, "posecli", Path("x"), "0")
    model = W.build_model(loaded, device=torch.device("cpu"))
    assert not model.training
    assert next(model.parameters()).device.type == "cpu"


def test_full_cmu_layout_round_trips(tmp_path) -> None:
    """The default config is the CMU model: 184 tensors, 52,311,446 parameters."""
    source = random_model(ModelConfig())
    state = source.state_dict()
    assert len(state) == 184
    assert count_parameters(source) == 52_311_446
    keys = list(state)
    assert (keys[0], keys[-1]) == ("conv1_1.weight", "Mconv7_stage6_L2.bias")
    loaded = W.load_weights(save_state(tmp_path / "body_pose_model.pth", state))
    assert loaded.format == "body_pose_model"
    assert loaded.config == ModelConfig()
    assert loaded.num_parameters() == 52_311_446
    assert all(torch.equal(loaded.state_dict[k], v) for k, v in state.items())


# --------------------------------------------------------------------------- validation


def test_missing_key(tmp_path) -> None:
    state = random_model().state_dict()
    del state["Mconv7_stage2_L2.bias"]
    message = error_of(save_state(tmp_path / "w.pth", state))
    assert message == (f"weights file {tmp_path / 'w.pth'} does not fit the model: "
                       "missing Mconv7_stage2_L2.bias")


def test_missing_first_layer_names_it(tmp_path) -> None:
    state = random_model().state_dict()
    del state["conv1_1.weight"]
    assert "missing conv1_1.weight" in error_of(save_state(tmp_path / "w.pth", state))


def test_many_missing_keys_are_summarised(tmp_path) -> None:
    state = {k: v for k, v in random_model().state_dict().items() if "stage3" not in k}
    state["Mconv1_stage3_L1.weight"] = torch.zeros(8, 65, 3, 3)  # keeps 3 stages inferred
    message = error_of(save_state(tmp_path / "w.pth", state))
    assert "missing Mconv1_stage3_L1.bias, Mconv2_stage3_L1.weight" in message
    assert "(+22 more)" in message


def test_unexpected_key(tmp_path) -> None:
    state = random_model().state_dict()
    state["foo.weight"] = torch.zeros(3)
    assert error_of(save_state(tmp_path / "w.pth", state)).endswith(
        "does not fit the model: unexpected foo.weight")


def test_wrong_shape(tmp_path) -> None:
    state = random_model().state_dict()
    state["conv1_2.weight"] = torch.zeros(4, 5, 3, 3)
    assert "wrong shape conv1_2.weight (4x5x3x3, expected 4x4x3x3)" in error_of(
        save_state(tmp_path / "w.pth", state))


def test_even_kernel_is_a_weights_error(tmp_path) -> None:
    state = random_model().state_dict()
    state["Mconv1_stage2_L1.weight"] = torch.zeros(8, 65, 4, 4)
    assert "refine_kernel must be odd" in error_of(save_state(tmp_path / "w.pth", state))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_values(tmp_path, bad: float) -> None:
    state = random_model().state_dict()
    state["conv3_1.bias"][2] = bad
    assert "NaN or infinite values in conv3_1.bias" in error_of(
        save_state(tmp_path / "w.pth", state))


def test_integer_tensor(tmp_path) -> None:
    state = random_model().state_dict()
    state["conv1_1.bias"] = torch.zeros(4, dtype=torch.int64)
    assert "conv1_1.bias has dtype torch.int64" in error_of(save_state(tmp_path / "w.pth", state))


def test_non_tensor_value(tmp_path) -> None:
    state = {**random_model().state_dict(), "note": "hello"}
    assert "note is a str, not a tensor" in error_of(save_state(tmp_path / "w.pth", state))


def test_non_dict_and_non_string_keys(tmp_path) -> None:
    assert "holds a list" in error_of(save_state(tmp_path / "a.pth", [torch.zeros(1)]))
    assert "non-string key 3" in error_of(save_state(tmp_path / "b.pth", {3: torch.zeros(1)}))


# --------------------------------------------------------------------------- unreadable files


def test_truncated_pth(tmp_path) -> None:
    path = save_state(tmp_path / "w.pth", random_model().state_dict())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert error_of(path).startswith(f"weights file {path} could not be read: ")


def test_random_bytes(tmp_path) -> None:
    generator = torch.Generator().manual_seed(0)
    for i in range(20):
        path = tmp_path / f"r{i}.pth"
        path.write_bytes(torch.randint(0, 256, (4096,), generator=generator,
                                       dtype=torch.uint8).numpy().tobytes())
        error_of(path)
    zip_like = tmp_path / "zip.pth"
    zip_like.write_bytes(b"PK\x03\x04" + bytes(100))
    assert "could not be read" in error_of(zip_like)


@pytest.mark.parametrize("text", ["hello world\n", "", "name: 'CMU pose'\nlayer {}\n"])
def test_text_file(tmp_path, text: str) -> None:
    path = tmp_path / "notes.pth"
    path.write_text(text)
    assert "neither a PyTorch file nor a Caffe model" in error_of(path)


def test_missing_file(tmp_path) -> None:
    assert error_of(tmp_path / "nope.pth") == f"weights file not found: {tmp_path / 'nope.pth'}"


class _CreatesFile:
    """Unpickling this (unsafely) would create ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("container", ["torch.save", "pickle"])
def test_pickled_code_is_refused_not_run(tmp_path, container: str) -> None:
    marker = tmp_path / "pwned"
    payload = {"conv1_1.weight": _CreatesFile(marker)}
    path = tmp_path / "evil.pth"
    if container == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    message = error_of(path)
    assert "could not be read" in message
    if container == "torch.save":
        assert "refused so no code runs" in message
    assert not marker.exists()


# --------------------------------------------------------------------------- resolution


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache root in tmp_path, and no POSECLI_WEIGHTS."""
    monkeypatch.setenv("POSECLI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("POSECLI_WEIGHTS", raising=False)
    return tmp_path / "cache"


def test_resolution_order(tmp_path, cache, monkeypatch) -> None:
    option, env, cached = tmp_path / "option.pth", tmp_path / "env.pth", W.default_weights_path()
    assert cached == cache / "weights" / "body_pose_model.pth"
    cached.parent.mkdir(parents=True)
    for path in (option, env, cached):
        path.write_bytes(b"x")
    assert W.resolve_weights(None) == cached
    monkeypatch.setenv("POSECLI_WEIGHTS", str(env))
    assert W.resolve_weights(None) == env
    assert W.resolve_weights(str(option)) == option


def test_explicit_paths_must_exist(tmp_path, cache, monkeypatch) -> None:
    with pytest.raises(WeightsError, match="weights file not found: .*gone.pth") as info:
        W.resolve_weights(str(tmp_path / "gone.pth"))
    assert not isinstance(info.value, NoWeightsError)
    monkeypatch.setenv("POSECLI_WEIGHTS", str(tmp_path / "env-gone.pth"))
    with pytest.raises(WeightsError, match="weights file not found: .*env-gone.pth"):
        W.resolve_weights(None)
    with pytest.raises(WeightsError, match="is a directory, not a regular file"):
        W.resolve_weights(str(tmp_path))


def test_no_weights_anywhere(cache) -> None:
    with pytest.raises(NoWeightsError) as info:
        W.resolve_weights(None)
    assert info.value.exit_code == 2
    assert str(info.value) == W.NO_WEIGHTS_MESSAGE + W.BUILTIN_NOTE  # the demo model ships
    assert "posecli weights download" in str(info.value) and "\n" not in str(info.value)
    assert "--weights demo" in str(info.value)


def test_cache_dir_defaults_to_platformdirs(monkeypatch) -> None:
    monkeypatch.delenv("POSECLI_CACHE_DIR", raising=False)
    monkeypatch.setattr(W.store.platformdirs, "user_cache_dir", lambda app: f"/cache-root/{app}")
    assert W.weights_dir() == Path("/cache-root/posecli/weights")


# --------------------------------------------------------------------------- posecli weights


runner = CliRunner()


def test_cli_verify(tmp_path) -> None:
    path = save_state(tmp_path / "w.pth", random_model().state_dict())
    digest = W.file_sha256(path)
    result = runner.invoke(weights_app, ["verify", str(path), "--sha256", digest.upper()])
    assert result.exit_code == 0, result.output
    assert "format: body_pose_model" in result.stdout
    assert f"parameters: {count_parameters(random_model()):,}" in result.stdout
    assert f"config: {describe_config(TINY)}" in result.stdout
    assert f"sha256: {digest}" in result.stdout


def test_cli_verify_failures(tmp_path) -> None:
    path = save_state(tmp_path / "w.pth", random_model().state_dict())
    result = runner.invoke(weights_app, ["verify", str(path), "--sha256", "0" * 64])
    assert isinstance(result.exception, WeightsError) and result.exception.exit_code == 1
    assert "expected 0000" in str(result.exception)
    result = runner.invoke(weights_app, ["verify", str(path), "--sha256", "abc"])
    assert isinstance(result.exception, UsageError)
    (tmp_path / "bad.pth").write_text("junk")
    result = runner.invoke(weights_app, ["verify", str(tmp_path / "bad.pth")])
    assert isinstance(result.exception, WeightsError)


def test_cli_path(tmp_path, cache) -> None:
    result = runner.invoke(weights_app, ["path"])
    assert isinstance(result.exception, NoWeightsError) and result.exception.exit_code == 2
    path = W.default_weights_path()
    path.parent.mkdir(parents=True)
    save_state(path, random_model().state_dict())
    result = runner.invoke(weights_app, ["path"])
    assert result.exit_code == 0 and result.stdout.strip() == str(path)


def test_cli_list(cache) -> None:
    result = runner.invoke(weights_app, ["list"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "built in (--weights NAME):"
    assert lines[1].startswith("  demo  ") and "  posecli  " in lines[1]
    assert "licence: MIT" in lines[1]
    assert lines[2:4] == [f"in the cache ({W.weights_dir()}):",
                          "  no weights (run 'posecli weights download')"]
    assert lines[4].startswith("downloadable")
    assert [line.split()[0] for line in lines[5:]] == ["cmu", "lightweight"]
    assert "licence: OpenPose licence: non-commercial research use only" in lines[5]
    assert "199.6 MiB" in lines[5] and "not downloaded" in lines[5]
    assert "licence: Apache-2.0" in lines[6] and "size not published" in lines[6]

    folder = W.weights_dir()
    folder.mkdir(parents=True)
    cmu_place = save_state(folder / "body_pose_model.pth", random_model().state_dict())
    mine = save_state(folder / "mine.pth", to_rtpose(random_model()))
    (folder / "junk.pth").write_text("junk")
    (folder / "big.pth.part").write_bytes(b"12345")
    assert runner.invoke(weights_app, ["verify", str(mine)]).exit_code == 0
    result = runner.invoke(weights_app, ["list"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    cached = lines[lines.index(f"in the cache ({folder}):") + 1:][:4]
    assert [line.split()[0] for line in cached] == [
        "big.pth.part", "body_pose_model.pth", "junk.pth", "mine.pth"]
    assert "partial download" in cached[0]
    assert f"  body_pose_model  not verified  {W.file_sha256(cmu_place)}" in cached[1]
    assert "licence: OpenPose licence" in cached[1]
    assert "(differs from the published cmu model" in cached[1]
    assert "unknown format  unusable (weights file" in cached[2]
    assert "neither a PyTorch file nor a Caffe model" in cached[2]
    assert f"  pose_model  verified  {W.file_sha256(mine)}" in cached[3]
    assert "downloaded" in lines[-2] and "not downloaded" not in lines[-2]


def test_list_of_every_format_does_not_import_torch(cache, tmp_path) -> None:
    """``weights list`` names formats by sniffing, so it starts without torch."""
    from test_caffemodel import caffe_layers, encode_caffemodel
    from test_startup import _imports_after

    folder = W.weights_dir()
    folder.mkdir(parents=True)
    model = random_model()
    save_state(folder / "a.pth", model.state_dict())
    save_state(folder / "b.pth", to_rtpose(model))
    (folder / "c.caffemodel").write_bytes(encode_caffemodel(caffe_layers(model)))
    W.save_checkpoint(folder / "d.pt", model, {})
    heavy, code = _imports_after(["weights", "list"])
    assert code == 0 and "torch" not in heavy, heavy
    lines = runner.invoke(weights_app, ["list"]).stdout.splitlines()
    formats = {line.split()[0]: line.split()[3] for line in lines if line.startswith("  ")
               and line.split()[0] in ("a.pth", "b.pth", "c.caffemodel", "d.pt")}
    assert formats == {"a.pth": "body_pose_model", "b.pth": "pose_model",
                       "c.caffemodel": "caffemodel", "d.pt": "posecli"}


def test_human_size() -> None:
    assert [human_size(n) for n in (5, 2048, 209_274_056, 3 << 30)] == [
        "5 B", "2.0 KiB", "199.6 MiB", "3.0 GiB"]


def test_builtin_model_by_name(tmp_path, monkeypatch):
    """--weights NAME picks a model shipped in the package; the no-weights message names it."""
    from conftest import TINY as tiny

    from posecli.model import PoseNet as Net
    from posecli.pipeline import load_model

    monkeypatch.setattr(W.store, "BUILTIN_DIR", tmp_path)
    with pytest.raises(NoWeightsError) as info:
        W.resolve_weights(None)
    assert "--weights demo" not in str(info.value)
    W.save_checkpoint(tmp_path / "demo.pt", Net(tiny),
                      {"label": "synthetic-data demonstration model"})
    assert W.resolve_weights("demo") == tmp_path / "demo.pt"
    with pytest.raises(NoWeightsError) as info:
        W.resolve_weights(None)  # never picked silently
    assert "--weights demo" in str(info.value) and info.value.exit_code == 2
    model = load_model("demo", device="cpu")
    assert model.describe()["label"] == "synthetic-data demonstration model"
