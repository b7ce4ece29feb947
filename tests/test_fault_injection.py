"""tools/fault_injection.py in its quick mode, on the cases the signal handling fixes:
Ctrl-C once and twice (40 ms to 150 ms apart) during ``posecli video`` and ``posecli
batch``, COCO and JSON lines, against real processes; and the tool's own checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parent.parent / "tools" / "fault_injection.py"


def test_quick_interrupt_cases_are_clean():
    done = subprocess.run([sys.executable, str(TOOL), "--quick", "--only", "SIGINT"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cases tried / clean: 10 / 10" in done.stdout, done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith(("video-", "batch-"))]
    assert len(rows) == 20 and all(" 1/1" in row for row in rows), done.stdout


def _tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("fault_injection", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def test_checks_catch_what_is_not_clean(tmp_path):
    """The tool's checks are not blind: a traceback, extra lines, a temp file, a broken
    or unmarked output are each reported."""
    tool = _tool()
    outcome = tool.Outcome()
    tool.check_stderr(outcome, "posecli: error: x\nTraceback (most recent call last):\n")
    assert any("traceback" in p for p in outcome.problems)
    assert any("2 lines" in p for p in outcome.problems)
    (tmp_path / ".o.jsonl.abc123.part").write_bytes(b"{}")
    outcome = tool.Outcome()
    tool.check_no_temp(outcome, tmp_path)
    assert outcome.problems and "temp files left" in outcome.problems[0]
    (tmp_path / "a.json").write_bytes(b'{"info": {"complete": false}, "images": [{}, {}]}')
    (tmp_path / "b.json").write_bytes(b'{"info": {"complete": tr')
    (tmp_path / "c.jsonl").write_bytes(b'{"frame_index": 0}\n{"frame_index": 1}\n')
    (tmp_path / "d.jsonl").write_bytes(b'{"frame_index": 0}\n{"complete": true, "frames": 1}\n')
    assert tool.output_state(tmp_path / "a.json") == ("incomplete", 2)
    assert tool.output_state(tmp_path / "b.json")[0].startswith("broken")
    assert tool.output_state(tmp_path / "c.jsonl") == ("incomplete", 2)  # no trailer
    assert tool.output_state(tmp_path / "d.jsonl") == ("complete", 1)
    (tmp_path / "e.jsonl").write_bytes(b'{"frame_index": 0}\n{"complete": true, "frames": 2}\n')
    assert tool.output_state(tmp_path / "e.jsonl")[0].startswith("broken")
    assert tool.written_count("posecli: error: interrupted: 17 frames written to o.json, "
                              "marked incomplete") == 17
