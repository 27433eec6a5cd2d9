"""README.md and docs/*.md run as written: every shell and Python block, in order, in a fresh folder (tiny sizes
appended to training commands); blocks that need a GPU, the internet, a dataset or more time say so before them.
docs/zoo.md runs in tests/zoo/test_zoo_docs.py, beside a fake Hugging Face Hub."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from doc_runner import REPOSITORY, TRAINING, blocks, commands, quick, run_page, script

from lightning_ssl.cli import main

README = REPOSITORY / "README.md"
PAGES = [README, *sorted(path for path in (REPOSITORY / "docs").glob("*.md") if path.name != "zoo.md")]


def test_the_readme_opens_with_the_two_commands() -> None:
    opening = "\n".join(README.read_text(encoding="utf-8").splitlines()[:15])
    assert "make pretrain METHOD=" in opening and "make test" in opening


@pytest.mark.parametrize("page", [*PAGES, REPOSITORY / "docs" / "zoo.md"], ids=lambda page: page.name)
def test_every_training_command_of_a_page_gets_tiny_sizes(page: Path) -> None:
    for block in blocks(page):
        if block.needs is None and block.language == "bash":
            for command in commands(block.code):
                if TRAINING.match(command):
                    assert "trainer.max_steps=" in quick(command), command
    assert "set -euo pipefail" in script(page)


def test_tiny_sizes_never_replace_what_a_command_sets() -> None:
    resumed = quick("python -m lightning_ssl pretrain resume=last trainer.max_steps=4")
    assert "trainer.max_steps=4" in resumed and "trainer.max_steps=2" not in resumed and "data.num_patients=8" in resumed
    made = quick('make pretrain METHOD=multimix ARGS="optim.lr=0.01"')
    assert made.startswith('make pretrain METHOD=multimix ARGS="optim.lr=0.01 trainer.max_steps=2') and "data.classification.num_patients=24" in made
    assert "network.features" not in quick("make pretrain METHOD=simclr DATA=phantom_xray network=resnet")


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_command_of_the_page_runs(page: Path, tmp_path: Path) -> None:
    done = run_page(page, tmp_path / "page")
    assert done.returncode == 0, f"{page.name}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"


def shown_outputs(page: Path) -> list[tuple[str, str]]:
    """(command, what the page shows it printing) of each plain block that starts with ``$ python -m lightning_ssl``."""
    found = re.findall(r"^```\n\$ python -m lightning_ssl (.*?)\n(.*?)^```", page.read_text(encoding="utf-8"), re.S | re.M)
    return [(command, shown.strip()) for command, shown in found]


@pytest.mark.parametrize("page", [*PAGES, REPOSITORY / "docs" / "zoo.md"], ids=lambda page: page.name)
def test_shown_outputs_are_what_the_command_prints(page: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for command, shown in shown_outputs(page):
        main(shlex.split(command))
        printed = capsys.readouterr()
        assert shown in printed.out + printed.err, command
