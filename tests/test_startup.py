"""Start-up: commands that do not run the model never import torch (or PyAV)."""

from __future__ import annotations

import subprocess
import sys

import pytest

_PROBE = """
import sys
from posecli.cli import main
try:
    main({argv!r})
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in ("torch", "av", "cv2", "scipy", "ray") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
print("CODE=" + str(code))
"""


def _imports_after(argv: list[str]) -> tuple[set[str], int]:
    result = subprocess.run([sys.executable, "-c", _PROBE.format(argv=argv)],
                            capture_output=True, text=True, timeout=60)
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line
                 and line.split("=", 1)[0] in ("HEAVY", "CODE"))
    return set(filter(None, lines["HEAVY"].split(","))), int(lines["CODE"])


@pytest.mark.parametrize("argv", [
    ["--help"], ["--version"], ["video", "--help"], ["batch", "--help"], ["compare", "--help"],
    ["track", "--help"],
    ["weights", "path"], ["weights", "list"],
    ["video", "x.mp4", "--out", "o.json", "--net-height", "abc"],
    ["manifest", "--help"], ["batch", "x", "--out-dir", "o", "--shard", "2/2"],
    ["batch", "x", "--out-dir", "o", "--engine", "ray", "--workers", "0"],
    ["video", "x.mp4"],
])
def test_light_commands_do_not_import_torch(argv) -> None:
    heavy, _ = _imports_after(argv)
    assert not heavy & {"torch", "av", "cv2", "ray"}, heavy


def test_compare_does_not_import_torch(tmp_path) -> None:
    doc = (b'{"images": [{"id": 1, "frame_index": 0, "width": 10, "height": 10}],'
           b' "annotations": []}')
    (tmp_path / "a.json").write_bytes(doc)
    heavy, code = _imports_after(["compare", str(tmp_path / "a.json"), str(tmp_path / "a.json"),
                                  "-q"])
    assert code == 0
    assert "torch" not in heavy and "av" not in heavy


def test_track_does_not_import_torch(tmp_path) -> None:
    doc = (b'{"images": [{"id": 1, "frame_index": 0, "width": 10, "height": 10}],'
           b' "annotations": []}')
    (tmp_path / "a.json").write_bytes(doc)
    heavy, code = _imports_after(["track", str(tmp_path / "a.json"), "--out",
                                  str(tmp_path / "b.json")])
    assert code == 0 and (tmp_path / "b.json").is_file()
    assert "torch" not in heavy


def test_version_and_python_dash_m() -> None:
    from posecli import __version__

    result = subprocess.run([sys.executable, "-m", "posecli", "--version"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == f"posecli {__version__}"


def test_manifest_merge_does_not_import_torch(tmp_path) -> None:
    manifest = (b'{"tool": "posecli", "version": "0", "totals": {"interrupted": false},'
                b' "shard": {"index": 0, "count": 1}, "files": []}')
    (tmp_path / "m.json").write_bytes(manifest)
    heavy, code = _imports_after(["manifest", "merge", str(tmp_path / "out.json"),
                                  str(tmp_path / "m.json")])
    assert code == 0
    assert not heavy & {"torch", "av", "ray"}, heavy
