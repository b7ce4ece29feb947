"""README.md and samples/README.md say what posecli does: their commands exist, the
test command is the one CI runs, and the Python API snippet runs as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from test_cli import run_cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SAMPLES_README = (ROOT / "samples" / "README.md").read_text()


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def _section(text: str, heading: str) -> str:
    return re.split(r"\n#{2,} ", text.split(f"{heading}\n", 1)[1], maxsplit=1)[0]


def _posecli_commands(text: str) -> list[list[str]]:
    """Every ``posecli ...`` command of the bash blocks, as argument lists."""
    commands = []
    for block in _blocks(text, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars="|")
            lexer.whitespace_split = True
            words = list(lexer)  # comments dropped, quotes kept together
            while words:
                end = words.index("|") if "|" in words else len(words)
                if words[0] == "posecli":
                    commands.append(words[1:end])
                words = words[end + 1:]
    return commands


def test_install_test_and_main_job_are_one_command_each():
    for heading in ("## Run the main job", "## Run the tests"):
        blocks = _blocks(_section(README, heading), "bash")
        assert len(blocks) >= 1 and len(blocks[0].strip().splitlines()) == 1, heading
    for block in _blocks(_section(README, "## Install"), "bash"):
        assert len(block.strip().splitlines()) == 1
        assert "'.[test]'" in block and "torch==" in block  # the tests' extra, a pinned torch


def test_ci_runs_the_readmes_test_command():
    command = _blocks(_section(README, "## Run the tests"), "bash")[0].strip()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in ci_lines


@pytest.mark.parametrize("text", [README, SAMPLES_README], ids=["README", "samples"])
def test_every_option_in_the_readmes_exists(text, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    helps: dict[tuple[str, ...], str] = {}
    commands = _posecli_commands(text)
    assert commands
    for words in commands:
        path = tuple(w for w in words[:2] if not w.startswith("-") and w in
                     {"video", "image", "batch", "synth", "train", "eval", "compare", "track",
                      "weights", "download", "list", "path", "verify"})
        if path[:1] != ("weights",):
            path = path[:1]
        if path not in helps:
            code, out, err = run_cli([*path, "--help"], capsys)
            assert code == 0, (path, err)
            helps[path] = out
        for option in (w.split("=")[0] for w in words if re.fullmatch(r"--?[a-z][\w-]*(=.*)?", w)):
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", helps[path]), \
                f"posecli {' '.join(path)} has no {option}"


def test_python_api_snippet_runs_as_written(monkeypatch, capsys):
    code = _blocks(_section(README, "### Python API"), "python")[0]
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    exec(compile(code, "README.md (Python API)", "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 21  # one line per frame of the sample, then a keypoint
    assert len(namespace["people"]) == len(namespace["images"])
