"""--shard K/N for job arrays, and posecli manifest merge of the shards' manifests."""

from __future__ import annotations

import os
import random
import unicodedata
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import orjson
import pytest
from conftest import write_video
from test_cli import assert_one_line_error, run_cli

from posecli.batch import Job, Shard, job_key
from posecli.cli import main
from posecli.errors import UsageError

ARGS = ["--net-height", 64, "--quiet"]


@pytest.fixture(scope="module")
def sharded(tmp_path_factory, tiny_weights):
    """videos/ (four clips in subfolders and a bad file) run whole into whole/ and as
    shards K/3 into out/ (manifests out/manifest-K-of-3.json): (folder, exit codes)."""
    root = tmp_path_factory.mktemp("sharded")
    frames = np.full((2, 48, 64, 3), 100, dtype=np.uint8)
    for name in ("a/one", "a/two", "b/c/three", "four"):
        path = root / "videos" / f"{name}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, frames)
    (root / "videos" / "broken.mp4").write_text("not a video\n")
    common = ["--weights", str(tiny_weights), *map(str, ARGS)]
    codes = []
    with _chdir(root):
        for extra in (["--out-dir", "whole"], *(["--out-dir", "out", "--shard", f"{k}/3"]
                                                for k in range(3))):
            codes.append(_exit_code(["batch", "videos", *extra, *common]))
    return root, codes


@contextmanager
def _chdir(folder: Path):
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code


def _jobs(names: list[str], out_dir: Path) -> list[Job]:
    return [Job(Path(f"in/{n}.mp4"), out_dir / f"{n}.json") for n in names]


@pytest.mark.parametrize("text, shard", [("0/1", Shard(0, 1)), ("3/4", Shard(3, 4)),
                                         (" 1 / 2 ", Shard(1, 2))])
def test_parse_good(text, shard):
    assert Shard.parse(text) == shard


@pytest.mark.parametrize("text", ["4/4", "1", "a/b", "-1/3", "0/0", "1/2/3", "", "2/-3"])
def test_parse_bad(text):
    with pytest.raises(UsageError, match="bad --shard"):
        Shard.parse(text)


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_are_disjoint_cover_everything_and_keep_plan_order(count, tmp_path):
    names = [f"dir{i % 5}/sub{i % 3}/clip {i}" for i in range(200)]
    jobs = _jobs(names, tmp_path / "out")
    parts = [Shard(k, count).select(jobs, tmp_path / "out") for k in range(count)]
    assert sum(len(p) for p in parts) == len(jobs)
    assert set().union(*map(set, parts)) == set(jobs)
    for part in parts:
        assert part == [job for job in jobs if job in part]  # plan order
        assert len(part) > 200 / count / 2  # roughly balanced


def test_partition_ignores_listing_order_location_and_unicode_form(tmp_path):
    names = [f"v/{i}/caf\u00e9 {i}" for i in range(60)]
    here = _jobs(names, tmp_path / "out")
    shuffled = here[:]
    random.Random(1).shuffle(shuffled)
    elsewhere = _jobs(names, Path("/other/machine/poses"))
    decomposed = _jobs([unicodedata.normalize("NFD", n) for n in names], tmp_path / "out")
    for k in range(3):
        shard = Shard(k, 3)
        expected = {job_key(j, tmp_path / "out") for j in shard.select(here, tmp_path / "out")}
        assert {job_key(j, tmp_path / "out")
                for j in shard.select(shuffled, tmp_path / "out")} == expected
        assert {job_key(j, Path("/other/machine/poses"))
                for j in shard.select(elsewhere, Path("/other/machine/poses"))} == expected
        assert {job_key(j, tmp_path / "out")
                for j in shard.select(decomposed, tmp_path / "out")} == expected


def test_shard_of_a_key_is_pinned():
    """A stable hash (not Python's per-process hash()): every machine agrees."""
    assert [Shard(k, 4).holds("videos/a/one") for k in range(4)] == [False, False, True, False]
    assert [Shard(k, 3).holds("caf\u00e9/x") for k in range(3)] == [False, True, False]


def test_shards_write_disjoint_outputs_and_merge_into_the_whole(sharded, capsys, monkeypatch):
    root, codes = sharded
    monkeypatch.chdir(root)
    whole = orjson.loads((root / "whole" / "manifest.json").read_bytes())
    manifests = [orjson.loads((root / "out" / f"manifest-{k}-of-3.json").read_bytes())
                 for k in range(3)]
    inputs = [f["input"] for m in manifests for f in m["files"]]
    assert sorted(inputs) == sorted(f["input"] for f in whole["files"])  # cover, disjoint
    assert len(set(inputs)) == len(inputs) == 5
    assert codes[0] == 1  # broken.mp4
    for code, manifest in zip(codes[1:], manifests):
        failed = any(f["status"] == "failed" for f in manifest["files"])
        assert code == (1 if failed else 0)
        assert manifest["shard"]["count"] == 3 and manifest["shard"]["inputs"] == 5
    outputs = sorted(p.relative_to(root / "out").as_posix()
                     for p in (root / "out").rglob("*.json") if "manifest" not in p.name)
    assert outputs == sorted(p.relative_to(root / "whole").as_posix()
                             for p in (root / "whole").rglob("*.json")
                             if "manifest" not in p.name)
    for name in outputs:
        assert (root / "out" / name).read_bytes() == (root / "whole" / name).read_bytes()

    code, _, err = run_cli(["manifest", "merge", "merged.json",
                            *(f"out/manifest-{k}-of-3.json" for k in range(3))], capsys)
    assert code == 0, err
    assert "merged 3 manifests into merged.json: 5 files: 4 ok, 0 skipped, 1 failed" in err
    merged = orjson.loads((root / "merged.json").read_bytes())
    assert merged["shard"]["merged"] == [0, 1, 2] and merged["shard"]["missing"] == []
    statuses = {Path(f["input"]).name: (f["status"], f["frames"]) for f in merged["files"]}
    assert statuses == {Path(f["input"]).name: (f["status"], f["frames"]) for f in whole["files"]}
    for key in ("files", "ok", "skipped", "failed", "frames", "people"):
        assert merged["totals"][key] == whole["totals"][key], key
    assert merged["model"] == whole["model"] and merged["options"] == whole["options"]


def test_merge_refuses_other_runs_duplicates_and_conflicts(sharded, capsys, tmp_path):
    root, _ = sharded
    m0, m1 = root / "out" / "manifest-0-of-3.json", root / "out" / "manifest-1-of-3.json"
    first = orjson.loads(m0.read_bytes())

    def variant(name: str, change) -> Path:
        doc = orjson.loads(m1.read_bytes())
        change(doc)
        path = tmp_path / name
        path.write_bytes(orjson.dumps(doc))
        return path

    def merge(*paths) -> tuple[int, str]:
        code, _, err = run_cli(["manifest", "merge", tmp_path / "merged.json", *paths], capsys)
        return code, err

    refusals = [
        ((m0, m0), "given twice"),
        ((m0, variant("copy.json", lambda d: d["shard"].update(index=0))),
         "are both shard 0 of 3"),
        ((m0, variant("conflict.json", lambda d: d["files"].append(first["files"][0]))),
         "both have an entry for"),
        ((m0, variant("options.json", lambda d: d["options"].update(net_height=72))),
         "(options differ)"),
        ((m0, variant("model.json", lambda d: d["model"].update(sha256="0" * 64))),
         "(model differ)"),
        ((m0, variant("count.json", lambda d: d["shard"].update(count=4))),
         "(shard count differ)"),
        ((m0, variant("inputs.json", lambda d: d["shard"].update(inputs=6, inputs_sha256="1"))),
         "(shard inputs, shard inputs_sha256 differ)"),
        ((m0, variant("junk.json", lambda d: d.update(files=3))), "not a posecli batch manifest"),
    ]
    for paths, fragment in refusals:
        code, err = merge(*paths)
        assert_one_line_error(code, err, fragment)
        assert code == 2, err
    assert not (tmp_path / "merged.json").exists()


def test_merge_with_a_missing_shard_writes_and_exits_1(sharded, capsys, tmp_path):
    root, _ = sharded
    code, _, err = run_cli(["manifest", "merge", tmp_path / "merged.json",
                            root / "out" / "manifest-0-of-3.json",
                            root / "out" / "manifest-2-of-3.json"], capsys)
    assert code == 1
    assert "posecli: warning: 1 shard of 3 missing: 1" in err
    merged = orjson.loads((tmp_path / "merged.json").read_bytes())
    assert merged["shard"]["merged"] == [0, 2] and merged["shard"]["missing"] == [1]


def test_bad_shard_fails_before_any_work(sharded, tiny_weights, capsys, monkeypatch):
    root, _ = sharded
    monkeypatch.chdir(root)
    for bad in ("3/3", "x", "1/0"):
        code, _, err = run_cli(["batch", "videos", "--out-dir", "new", "--shard", bad,
                                "--weights", tiny_weights], capsys)
        assert_one_line_error(code, err, "bad --shard")
        assert code == 2
    assert not (root / "new").exists()


def test_an_empty_shard_writes_an_empty_manifest(sharded, tiny_weights, capsys, monkeypatch):
    root, _ = sharded
    monkeypatch.chdir(root)
    for k in range(2):
        code, _, err = run_cli(["batch", "videos/four.mp4", "--out-dir", "single", "--shard",
                                f"{k}/2", "--weights", tiny_weights, *ARGS], capsys)
        assert code == 0, err
    sizes = sorted(len(orjson.loads((root / "single" / f"manifest-{k}-of-2.json").read_bytes())
                       ["files"]) for k in range(2))
    assert sizes == [0, 1]
