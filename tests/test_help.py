"""Every --help reads as plain text: capitalised placeholders, no type names."""

from __future__ import annotations

import re

import pytest
from test_cli import run_cli


def _every_command() -> list[list[str]]:
    """The path of every command and command group of the app, found by walking it
    (so a new command cannot be left out of these checks)."""
    import typer

    from posecli.cli.app import app

    paths: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        paths.append(path)
        if hasattr(command, "commands"):  # a group (typer may bring its own click)
            for name, sub in sorted(command.commands.items()):
                walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


COMMANDS = _every_command()
#: Typer's own placeholders: {input}, <str>, <list[str]>, <int range>, <path>, <float>.
NOISE = re.compile(r"\{[a-z_]+\}|<(?:str|int|float|path|bool|list|text)[^>]*>")


def _help(command: list[str], capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "100")
    code, out, err = run_cli([*command, "--help"], capsys)
    assert code == 0, err
    return out


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "posecli")
def test_help_has_plain_placeholders(command, capsys, monkeypatch):
    text = _help(command, capsys, monkeypatch)
    assert not NOISE.search(text), NOISE.search(text).group(0)
    usage = text.splitlines()[0]
    assert usage.startswith("Usage: posecli")
    # Every option that takes a value shows a capitalised placeholder.
    for line in text.splitlines():
        option = re.match(r"\s+(?:-\w, )?(--[a-z0-9-]+)(?: ([^ ]+))?(?:\s{2,}|$)", line)
        if option and option.group(2) is not None:
            assert option.group(2) == option.group(2).upper(), line


def test_usage_lines_name_the_arguments(capsys, monkeypatch):
    assert _help(["video"], capsys, monkeypatch).startswith(
        "Usage: posecli video [OPTIONS] INPUT\n")
    assert _help(["image"], capsys, monkeypatch).startswith(
        "Usage: posecli image [OPTIONS] IMAGE...\n")
    assert _help(["compare"], capsys, monkeypatch).startswith(
        "Usage: posecli compare [OPTIONS] EXPECTED ACTUAL\n")


def test_weights_option_names_the_built_in_models(capsys, monkeypatch):
    text = " ".join(_help(["video"], capsys, monkeypatch).split())
    assert "--weights FILE|NAME" in text
    assert "a model's name: demo (built in), cmu or lightweight" in text


def test_width_means_pixels_in_synth_and_train_takes_a_multiplier(capsys, monkeypatch):
    assert "--width PX" in _help(["synth"], capsys, monkeypatch)
    train = _help(["train"], capsys, monkeypatch)
    assert "--width-mult X" in train
    assert not re.search(r"--width\b(?!-)", train)
