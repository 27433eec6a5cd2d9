"""The label-efficiency report: each part's table of mean +- std and paired gains over the baseline, the findings
from those numbers, the plot of the metrics against the number of labels, the pretraining curves and the compute."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
from efficiency_matrix import LOWER_IS_BETTER, METRICS, PRETRAINED_FILE, SCORING_KEYS, Cell, Profile
from report import REPO, comparison, header, one_class, p_text
from scipy import stats

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)


def mean_std(values: np.ndarray) -> str:
    """``mean ± std`` (sample std over seeds; the mean alone for one seed) of the seeds where the metric is defined
    (a distance is not, for a run that predicts no foreground), saying how many those are when not all."""
    defined = values[np.isfinite(values)]
    if defined.size == 0:
        return "undefined"
    text = f"{defined.mean():.3f} ± {defined.std(ddof=1):.3f}" if defined.size > 1 else f"{defined.mean():.3f}"
    return text if defined.size == values.size else f"{text} ({defined.size} of {values.size} seeds)"


def paired_seeds(cell: Cell, scratch: Cell, metric: str) -> list[int]:
    """The seeds both cells ran with ``metric`` defined in both runs."""
    return sorted(s for s in set(cell.runs) & set(scratch.runs) if np.isfinite(cell.runs[s][metric]) and np.isfinite(scratch.runs[s][metric]))


def paired(cell: Cell, scratch: Cell, metric: str) -> tuple[float, float, float, int] | None:
    """(mean paired difference to scratch over the seeds both ran with the metric defined, its standard error, the
    paired t-test p-value, the number of those seeds)."""
    seeds = paired_seeds(cell, scratch, metric)
    if cell is scratch or len(seeds) < 2:
        return None
    diff = cell.values(metric, seeds) - scratch.values(metric, seeds)
    error = diff.std(ddof=1) / np.sqrt(diff.size)
    p = float(stats.ttest_rel(cell.values(metric, seeds), scratch.values(metric, seeds)).pvalue) if error > 0 else float("nan")
    return float(diff.mean()), float(error), p, len(seeds)


def gain_text(cell: Cell, scratch: Cell | None, metric: str) -> str:
    """The paired gain as ``+0.031 ± 0.012 (p 0.04)``, or ``–``."""
    result = paired(cell, scratch, metric) if scratch is not None else None
    if result is None:
        return "–"
    mean, error, p, seeds = result
    fewer = f", {seeds} seeds" if seeds < len(set(cell.runs) & set(scratch.runs)) else ""
    return f"{mean:+.3f} ± {error:.3f} (p {p_text(p)}{fewer})"


def counts_text(cell: Cell) -> str:
    """Labeled images per class (the range over seeds when they differ)."""
    names = sorted({name for counts in cell.counts.values() for name in counts})
    parts = []
    for name in names:
        values = [counts.get(name, 0) for counts in cell.counts.values()]
        count = f"{min(values)}" if min(values) == max(values) else f"{min(values)}-{max(values)}"
        parts.append(f"{name} {count}".strip())
    return ", ".join(parts) or "–"


def table(profile: Profile, cells: list[Cell]) -> str:
    """One row per init and budget: labels per class, seeds, each metric's mean ± std and paired gain over its baseline
    (scratch unless the profile names another)."""
    metrics = METRICS[profile.task]
    labels = "labeled masks" if profile.task == "segmentation" else "labels per class"
    header_cells = ["init", "budget", labels, "seeds", "one-class seeds"]
    header_cells += [h for m in metrics for h in (m, f"gain over baseline ({m})")]
    rows = []
    for cell in cells:
        scratch_init = profile.scratch_of(cell.init.group)
        scratch = next((c for c in cells if c.init is scratch_init and c.budget == cell.budget), None)
        flagged = [str(seed) for seed, run in sorted(cell.runs.items()) if one_class(run)]
        rows.append([cell.init.name, cell.budget, counts_text(cell), str(len(cell.runs)), ", ".join(flagged) or "none"]
                    + [v for m in metrics for v in (mean_std(cell.values(m)), gain_text(cell, scratch, m))])
    lines = ["| " + " | ".join(header_cells) + " |", "|" + "---|" * len(header_cells)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def findings(profile: Profile, cells: list[Cell]) -> str:
    """Sentences from the numbers: where an init beat its scratch baseline by more than two standard errors (over at
    least 3 paired seeds) with a significant paired t-test, and where it was only outside two standard errors."""
    metric = METRICS[profile.task][0]
    sign = -1 if metric in LOWER_IS_BETTER else 1
    sentences = []
    for cell in cells:
        scratch_init = profile.scratch_of(cell.init.group)
        scratch = next((c for c in cells if c.init is scratch_init and c.budget == cell.budget), None)
        result = paired(cell, scratch, metric) if scratch is not None and cell.init is not scratch_init else None
        if result is None:
            continue
        mean, error, p, seeds = result
        if seeds < 3:  # one degree of freedom: two standard errors say nothing yet
            sentences.append(f"{cell.init.name} has {seeds} seeds paired with {scratch_init.name} at budget {cell.budget}, too few "
                             f"to compare ({mean:+.3f} ± {error:.3f} standard error on {metric}).")
            continue
        sentences.append(f"{cell.init.name} {comparison(mean, error, p, scratch_init.name, sign)} at budget {cell.budget} on {metric} "
                         f"({mean:+.3f} ± {error:.3f} standard error, p {p_text(p)}).")
    flagged = [f"{c.init.name} budget {c.budget} seed {s}" for c in cells for s, run in sorted(c.runs.items()) if one_class(run)]
    one_class_line = ("Runs whose test predictions are all one class: " + "; ".join(flagged) + "."
                      if flagged else "No run predicts one class for every test image.")
    return " ".join(sentences) + "\n\n" + one_class_line


def curves_text(curves: dict[str, list[dict[str, float]]]) -> str:
    """The pretraining validation curve of each pretrained init: loss and online-probe accuracy per epoch."""
    blocks = []
    for name, rows in curves.items():
        if not rows:
            continue
        keys = [k for k in ("val/loss", "val/probe_acc") if any(k in row for row in rows)]
        cells = ["| epoch | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for row in rows:
            cells.append(f"| {int(row.get('epoch', 0))} | " + " | ".join(f"{row[k]:.4f}" if k in row else "–" for k in keys) + " |")
        blocks.append(f"**{name}**\n\n" + "\n".join(cells))
    return "\n\n".join(blocks) or "No init was pretrained by this benchmark."


def plot(profile: Profile, cells: list[Cell], curves: dict[str, list[dict[str, float]]], path: Path) -> None:
    """Each metric (mean ± std) against the number of labels per init, and the pretraining curves."""
    metrics = METRICS[profile.task]
    panels = len(metrics) + (1 if any(curves.values()) else 0)
    figure, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 3.8), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        for init in profile.inits:
            own = [c for c in cells if c.init is init and c.runs]
            labels = [sum(next(iter(c.counts.values()), {}).values()) or i + 1 for i, c in enumerate(own)]
            means = [c.values(metric).mean() for c in own]
            stds = [c.values(metric).std(ddof=1) if len(c.runs) > 1 else 0.0 for c in own]
            axis.errorbar(labels, means, yerr=stds, marker="o", capsize=3, label=init.name)
        axis.set_xscale("log")
        axis.set_xlabel("labeled training images")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    if panels > len(metrics):
        axis = axes[0][-1]
        for name, rows in curves.items():
            probe = [(row.get("epoch", i), row["val/probe_acc"]) for i, row in enumerate(rows) if "val/probe_acc" in row]
            if probe:
                axis.plot(*zip(*probe), marker=".", label=name)
        axis.set_xlabel("pretraining epoch")
        axis.set_ylabel("val/probe_acc (online linear probe)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.suptitle(f"{profile.name}: {profile.task}, {profile.seeds_text()}", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def part_section(profile: Profile, cells: list[Cell], examples: dict[str, str], png: Path | None, test_labels: list[int],
                 planned: int) -> str:
    """One part's protocol, example commands, plot (``png``, None without one), table and findings (of the cells with
    runs, out of ``planned`` runs)."""
    example_lines = "\n".join(f"    {line}" for line in examples.values())
    majority = (f" Always predicting the test split's majority class scores an accuracy of "
                f"{np.bincount(test_labels).max() / len(test_labels):.3f}." if test_labels else "")
    plot_line = "" if png is None else f"Plot: `{png.relative_to(REPO) if png.is_relative_to(REPO) else png}`\n\n"
    title = f"## {profile.part}: {profile.task}\n\n" if profile.part else ""
    rescored = sum(len(cell.rescored) for cell in cells)
    finished = sum(len(cell.runs) for cell in cells)
    interim = (f"\n**Interim: {finished} of the {planned} runs have finished** (`--finished-only`); the cells without a "
               "finished run are left out, and a cell's seeds column says how many of its seeds are in."
               if finished < planned else "")
    keys = ", ".join(f"`{key.rstrip('=')}`" for key in SCORING_KEYS)
    rescored_text = (f"\n{rescored} of the runs were trained by an earlier version without the scoring overrides of the commands below "
                     f"({keys}) and their kept checkpoints scored again by `python -m lightning_ssl score` (which neither "
                     "trains nor changes the checkpoint kept; its time is in the compute line), so they are what the "
                     "command below gives." if rescored else "")
    return f"""{title}Task {profile.task}, budgets {", ".join(profile.budgets)}, {profile.seeds_text()}.{majority}{rescored_text}{interim}
Each cell runs (one example per init):

{example_lines}

{plot_line}{table(profile, cells) + chr(10) * 2 + findings(profile, cells) if cells else "No run of this part has finished yet."}
"""


PROTOCOL = """Protocol: each cell is one fine-tuning run per seed; the checkpoint kept is the best on the validation metric
`method.monitor` (AUC for classification, Dice for segmentation: a model that predicts one class cannot win it) and
is scored once on the test split; with `method.threshold=validation` a two-class test split is scored at the operating
point that checkpoint reaches on validation (best sensitivity + specificity) instead of 0.5, which changes accuracy,
F1 and the one-class flag, not AUC. The train/val/test split is fixed by `data.split_seed` for every seed; seed k draws
the labeled subset (stratified by class, nested across budgets), the head's initialisation (and the whole network's
for scratch) and the order of batches. Pretraining used the training split only, labels unused. A semi-supervised
init trains on each cell's budget with the rest of the training split unlabeled and is scored as trained. A gain is
the mean over seeds of the paired difference to the baseline run of the same architecture, budget and seed (scratch,
unless the profile names another baseline), ± its standard error, with the paired t-test p-value."""


def compute_text(workdir: Path, cells: list[Cell]) -> str:
    """What the benchmark took over all its attempts: each pretraining's minutes (attempts that finished) and the
    fine-tuning cells' total, as a markdown bullet."""
    pretrained: dict[str, float] = {}
    if (workdir / PRETRAINED_FILE).is_file():
        for record in map(json.loads, (workdir / PRETRAINED_FILE).read_text().splitlines()):
            pretrained[record["entry"]] = pretrained.get(record["entry"], 0.0) + record["seconds"]
    timed = [seconds for cell in cells for seconds in cell.seconds.values()]
    untimed = sum(len(cell.runs) for cell in cells) - len(timed)
    entries = ", ".join(f"{entry} {seconds / 60:.1f}" for entry, seconds in pretrained.items())
    pretraining = f"pretraining {sum(pretrained.values()) / 60:.0f} min ({entries})" if pretrained else "no pretraining recorded"
    cells_text = (f"{len(timed)} fine-tuning runs {sum(timed) / 60:.0f} min ({np.mean(timed):.0f} s each on average)"
                  if timed else "no fine-tuning time recorded")
    missing = f"; {untimed} runs finished without a recorded time" if untimed else ""
    return f"- Compute over every attempt of this work folder: {pretraining}; {cells_text}{missing}"


def left_out_text(profiles: list[Profile]) -> str:
    """A markdown bullet naming each optional init this attempt left out and why (the reason's first clause), or ""."""
    reasons = {name: why for profile in profiles for name, why in profile.left_out.items()}
    if not reasons:
        return ""
    return "- Left out (rerun with the files in place to add them): " + "; ".join(
        f"{name}, {why.split(';', 1)[0]}" for name, why in reasons.items())


def report(profiles: list[Profile], sections: list[str], curves: dict[str, list[dict[str, float]]], seconds: float,
           loads: tuple[float, float], compute: str) -> str:
    """The markdown report of every part."""
    first = profiles[0]
    return f"""# Label efficiency on {first.name}: fine-tuning from scratch vs from pretrained encoders

{first.description.strip()}

{PROTOCOL}

{header(seconds, loads)}
{compute}
{left_out_text(profiles)}

{chr(10).join(sections)}

## Pretraining curves (validation, per epoch)

{curves_text(curves)}
"""
