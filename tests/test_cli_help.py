"""Help on the command line: every command and zoo subcommand answers -h and --help, and the top-level help names
every zoo subcommand."""

from __future__ import annotations

import re

import pytest

from lightning_ssl.cli import main
from lightning_ssl.zoo.cli import main as zoo_main

COMMANDS = ("pretrain", "finetune", "sweep", "config", "check-data")


def _help_text(capsys: pytest.CaptureFixture[str], entry, argv: list[str]) -> str:
    """What ``entry(argv)`` prints, whether it returns 0 or exits 0 (argparse's own help)."""
    try:
        status = entry(argv)
    except SystemExit as stop:
        status = stop.code
    assert status in (0, None), argv
    return capsys.readouterr().out


def _zoo_subcommands(capsys: pytest.CaptureFixture[str]) -> list[str]:
    text = _help_text(capsys, zoo_main, ["--help"])
    return re.search(r"\{([a-z,-]+)\}", text).group(1).split(",")


def test_zoo_subcommands_are_the_six_the_docs_describe(capsys):
    assert _zoo_subcommands(capsys) == ["list", "info", "publish", "import-builtin", "push", "export"]


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_top_level_help_names_every_command_and_zoo_subcommand(capsys, flag):
    subcommands = _zoo_subcommands(capsys)
    text = " ".join(_help_text(capsys, main, [flag]).split())
    assert all(command in text for command in (*COMMANDS, "zoo"))
    zoo_line = text[text.index("the model zoo:") :]
    assert all(re.search(rf"\b{re.escape(name)}\b", zoo_line) for name in subcommands)


@pytest.mark.parametrize("flag", ["-h", "--help"])
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_answers_help_with_its_usage(capsys, command, flag):
    text = _help_text(capsys, main, [command, flag])
    assert text.startswith(f"usage: python -m lightning_ssl {command}") and "config groups" in text


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_zoo_and_each_zoo_subcommand_answer_help(capsys, flag):
    assert _help_text(capsys, main, ["zoo", flag]).startswith("usage: python -m lightning_ssl zoo")
    for name in _zoo_subcommands(capsys):
        assert _help_text(capsys, main, ["zoo", name, flag]).startswith(f"usage: python -m lightning_ssl zoo {name}")


def test_command_specific_usages(capsys):
    assert "sweep FILE [--count N]" in _help_text(capsys, main, ["sweep", "-h"])
    assert "config [--keys] [--verbose]" in _help_text(capsys, main, ["config", "-h"])
    assert "check-data data=NAME data.root=FOLDER" in _help_text(capsys, main, ["check-data", "--help"])
