"""The README's results section quotes the committed benchmark reports: every figure in it is in the report its row
names, so the headline cannot drift from what was measured."""

from __future__ import annotations

import re

from doc_runner import REPOSITORY

README = REPOSITORY / "README.md"
FIGURE = re.compile(r"[+-]?\d+\.\d+(?: ± \d+\.\d+)?")


def results_rows() -> list[list[str]]:
    """The cells of every data row of the table between the README's results markers."""
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- results -->", 1)[1].split("<!-- /results -->", 1)[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in block.splitlines() if line.startswith("|")]
    return rows[2:]


def test_the_results_section_has_measured_rows() -> None:
    rows = results_rows()
    assert rows and not any("placeholder" in " ".join(row).lower() for row in rows)


def test_every_figure_of_the_results_section_is_in_its_report() -> None:
    for row in results_rows():
        (report,) = re.findall(r"\((results/[\w./-]+\.md)\)", row[-1])
        text = (REPOSITORY / report).read_text(encoding="utf-8")
        figures = [figure for cell in row[:-1] for figure in FIGURE.findall(cell)]
        assert figures, row
        for figure in figures:
            assert figure in text, f"{figure} of README row {row[0]!r} is not in {report}"
