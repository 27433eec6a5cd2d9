"""Label efficiency: fine-tune from scratch and from each zoo entry at several label budgets and seeds.

Each cell of the matrix init x budget x seed is one `python -m lightning_ssl finetune` run (so
`--finetune-args trainer.devices=2 trainer.strategy=ddp` runs every cell on two processes); zoo
entries that are missing are pretrained first. Writes results/label_efficiency.md (mean +- std per
cell, gain over scratch, the commands and versions) and a PNG plot of each metric vs label budget.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import matplotlib
import monai
import numpy as np
import pytorch_lightning as pl
import torch
import torchmetrics

from lightning_ssl import zoo
from lightning_ssl.config import build_config
from lightning_ssl.data import DATASETS
from lightning_ssl.data.budget import budget_size
from lightning_ssl.methods import METHODS
from lightning_ssl.train import TEST_METRICS
from lightning_ssl.zoo.store import ENV_VAR

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

REPO = Path(__file__).resolve().parent.parent
METRICS = {"classification": ["test/auc", "test/acc", "test/f1"], "segmentation": ["test/dice", "test/hd95_class1"]}
LOWER_IS_BETTER = {"test/hd95_class1"}
PNEUMONIAMNIST_ARGS = ["data.root=../shared/data/pneumoniamnist"]
QUICK = {
    "inits": ["scratch", "zoo:byol_pneumoniamnist"],
    "budgets": ["0.01", "1.0"],
    "seeds": 1,
    "steps": 100,
    "pretrain_epochs": 1,
    "output": "results/label_efficiency_quick.md",
}


@dataclass
class Cell:
    """One init at one label budget: the test metrics of each seed."""

    init: str
    budget: str
    labels: int
    runs: dict[int, dict[str, float]] = field(default_factory=dict)

    def values(self, metric: str) -> np.ndarray:
        """The metric of every seed, in seed order."""
        return np.array([self.runs[seed][metric] for seed in sorted(self.runs)])


def from_repo(path: str) -> Path:
    """``path`` as given when absolute, else relative to the repository root."""
    return Path(path) if Path(path).is_absolute() else REPO / path


def cli(*args: str) -> list[str]:
    """The command line of a lightning_ssl CLI call."""
    return [sys.executable, "-m", "lightning_ssl", *args]


def run_logged(command: list[str], log_file: Path, env: dict[str, str]) -> None:
    """Run ``command`` from the repository root with its output in ``log_file``; stop the benchmark if it fails."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w") as log:
        done = subprocess.run(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = "".join(log_file.read_text().splitlines(keepends=True)[-25:])
        sys.exit(f"failed ({done.returncode}): {shlex.join(command)}\n--- last lines of {log_file} ---\n{tail}")


def zoo_name(init: str) -> str | None:
    """The entry an init names (``zoo:NAME``), or None for scratch."""
    if init == "scratch":
        return None
    if not init.startswith("zoo:"):
        sys.exit(f"--inits: {init!r} is neither 'scratch' nor 'zoo:NAME'")
    return init[4:]


def method_and_data(entry: str) -> tuple[str, str]:
    """The method and data a missing entry named ``<method>_<data>`` is pretrained with."""
    for method in sorted(METHODS, key=len, reverse=True):
        data = entry[len(method) + 1 :]
        if entry.startswith(f"{method}_") and data in DATASETS:
            return method, data
    sys.exit(f"zoo entry {entry!r} is missing and its name is not <method>_<data>: publish it first or pretrain it yourself")


def ensure_entries(args: argparse.Namespace, workdir: Path, env: dict[str, str]) -> dict[str, dict[str, str]]:
    """Each zoo init's environment: the user's store (built-in entries are fetched there), or ``--quick``'s own store.

    Missing entries are pretrained with their method's defaults (``--quick``: fewer epochs, into a
    temporary store, so a short run never lands in the user's zoo).
    """
    stores = {}
    for init in args.inits:
        entry = zoo_name(init)
        if entry is None:
            continue
        if zoo.versions(entry) or entry in zoo.BUILTIN:
            stores[entry] = env
            continue
        method, data = method_and_data(entry)
        entry_env = {**env, ENV_VAR: str(workdir / "quick_zoo")} if args.quick else env
        if not zoo.versions(entry, entry_env.get(ENV_VAR)):
            epochs = [f"trainer.max_epochs={args.pretrain_epochs}"] if args.pretrain_epochs else []
            command = cli("pretrain", f"method={method}", f"data={data}", *args.data_args, f"zoo.name={entry}",
                          f"output_dir={workdir / 'pretrain'}", "trainer.enable_progress_bar=false", *epochs, *args.pretrain_args)
            print(f"pretraining the missing zoo entry {entry}: {shlex.join(command[1:])}", flush=True)
            start = time.perf_counter()
            run_logged(command, workdir / "logs" / f"pretrain_{entry}.log", entry_env)
            print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
        stores[entry] = entry_env
    return stores


def scratch_network(args: argparse.Namespace, stores: dict[str, dict[str, str]]) -> list[str]:
    """Network overrides giving scratch the architecture of the first zoo init, so the comparison is like for like."""
    if not stores:
        return []
    entry = next(iter(stores))
    architecture = zoo.metadata(entry, stores[entry].get(ENV_VAR))["architecture"]
    given = {"spatial_dims", "in_channels", "out_channels"}
    values = [f"network.{k}={override_value(v)}" for k, v in architecture["kwargs"].items() if k not in given]
    return [f"network={architecture['name']}", *values]


def override_value(value: object) -> str:
    """A config value as written on the command line: ``[8,16]``, ``instance``, ``false``, ``null``."""
    return value if isinstance(value, str) else json.dumps(value).replace(" ", "")


def finetune_command(args: argparse.Namespace, init: str, budget: str, seed: int, output: Path, network: list[str]) -> list[str]:
    """The CLI call of one cell and seed."""
    return cli(
        "finetune", f"method.task={args.task}", f"method.init={init}", f"method.mode={args.mode}", f"data={args.data}",
        *args.data_args, f"data.label_budget={budget}", f"seed={seed}", f"data.seed={seed}", f"trainer.max_steps={args.steps}",
        f"output_dir={output}", "logger=csv", "trainer.enable_progress_bar=false", *network, *args.finetune_args,
    )


def data_facts(args: argparse.Namespace) -> tuple[dict[str, int], float | None]:
    """How many labels each budget means on this data, and the test split's majority-class share (None without)."""
    cfg = build_config([f"data={args.data}", *args.data_args])
    datamodule = DATASETS[cfg.data.name](cfg.data)
    labels = datamodule.train_labels()
    available = int(np.sum(labels >= 0)) if labels is not None else 0
    test_labels = getattr(datamodule.test_dataset, "class_labels", lambda: None)()
    majority = float(np.bincount(test_labels).max() / len(test_labels)) if test_labels is not None and len(test_labels) else None
    return {budget: budget_size(budget, available) for budget in args.budgets}, majority


def run_matrix(args: argparse.Namespace, workdir: Path, counts: dict[str, int]) -> tuple[list[Cell], list[str]]:
    """Every cell of the matrix, and the command of one cell per init as an example."""
    env = {k: v for k, v in os.environ.items() if k != "LIGHTNING_SSL_RUN_DIR"}
    stores = ensure_entries(args, workdir, env)
    network = scratch_network(args, stores)
    cells = [Cell(init, budget, counts[budget]) for init in args.inits for budget in args.budgets]
    examples: dict[str, str] = {}
    total, done = len(cells) * args.seeds, 0
    start = time.perf_counter()
    for cell in cells:
        entry = zoo_name(cell.init)
        for seed in range(args.seeds):
            output = workdir / "finetune" / f"{cell.init.replace(':', '_')}_{cell.budget}_{seed}"
            command = finetune_command(args, cell.init, cell.budget, seed, output, [] if entry else network)
            # where a cell writes is the benchmark's business: the example leaves output_dir out
            examples.setdefault(cell.init, shlex.join(["python", *(w for w in command[1:] if not w.startswith("output_dir="))]))
            run_logged(command, workdir / "logs" / f"{output.name}.log", stores.get(entry, env) if entry else env)
            (record,) = output.glob(f"*/*/{TEST_METRICS}")
            cell.runs[seed] = json.loads(record.read_text())["metrics"]
            done += 1
            elapsed = time.perf_counter() - start
            print(f"[{done}/{total}] {cell.init} budget {cell.budget} ({cell.labels} labels) seed {seed}: "
                  + ", ".join(f"{m} {cell.runs[seed][m]:.3f}" for m in METRICS[args.task] if m in cell.runs[seed])
                  + f"  ({elapsed:.0f} s, ~{elapsed / done * (total - done):.0f} s left)", flush=True)
    return cells, list(examples.values())


def mean_std(values: np.ndarray) -> str:
    """``mean +- std`` (sample std over seeds; just the mean for one seed)."""
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}" if values.size > 1 else f"{values.mean():.3f}"


def gain(cell: Cell, scratch: Cell | None, metric: str) -> str:
    """Mean paired difference to scratch at the same budget and seeds (same labeled subset), +- its std."""
    if scratch is None or cell is scratch:
        return "–"
    seeds = sorted(set(cell.runs) & set(scratch.runs))
    diff = np.array([cell.runs[s][metric] - scratch.runs[s][metric] for s in seeds])
    return f"{diff.mean():+.3f} ± {diff.std(ddof=1):.3f}" if diff.size > 1 else f"{diff.mean():+.3f}"


def table(cells: list[Cell], metrics: list[str]) -> str:
    """One row per init and budget: labels, seeds, each metric's mean +- std and its gain over scratch."""
    scratch = {c.budget: c for c in cells if c.init == "scratch"}
    header = ["init", "budget", "labels", "seeds"] + [h for m in metrics for h in (m, f"gain over scratch ({m})")]
    rows = [
        [c.init, c.budget, str(c.labels), str(len(c.runs))]
        + [v for m in metrics for v in (mean_std(c.values(m)), gain(c, scratch.get(c.budget), m))]
        for c in cells
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def findings(cells: list[Cell], metric: str) -> str:
    """Sentences generated from the numbers: where each init beat scratch on ``metric``, beyond the seed spread or not."""
    scratch = {c.budget: c for c in cells if c.init == "scratch"}
    if not scratch:
        return "No scratch baseline was run, so no gain is reported."
    sign = -1 if metric in LOWER_IS_BETTER else 1
    sentences = []
    for init in dict.fromkeys(c.init for c in cells if c.init != "scratch"):
        parts = []
        for cell in (c for c in cells if c.init == init and c.budget in scratch):
            seeds = sorted(set(cell.runs) & set(scratch[cell.budget].runs))
            diff = sign * np.array([cell.runs[s][metric] - scratch[cell.budget].runs[s][metric] for s in seeds])
            spread = diff.std(ddof=1) if diff.size > 1 else float("nan")
            verdict = "better than" if diff.mean() > 0 else "worse than" if diff.mean() < 0 else "equal to"
            clear = ", beyond one std of the paired differences" if diff.size > 1 and abs(diff.mean()) > spread else ""
            parts.append(f"{verdict} scratch at {cell.labels} labels ({sign * diff.mean():+.3f}{clear})")
        sentences.append(f"{init} on {metric}: " + "; ".join(parts) + ".")
    return " ".join(sentences)


def majority_note(cells: list[Cell], majority: float | None) -> str:
    """The test split's majority-class share, and the cells whose every seed scored exactly that accuracy."""
    if majority is None or not all("test/acc" in run for c in cells for run in c.runs.values()):
        return ""
    stuck = [f"{c.init} at {c.labels} labels" for c in cells if np.allclose(c.values("test/acc"), majority, atol=5e-4)]
    sentence = f"Always predicting the test split's majority class scores an accuracy of {majority:.3f}."
    if stuck:
        sentence += (f" {'; '.join(stuck)}: every seed scored exactly that, i.e. the checkpoint kept (best validation loss) "
                     "predicts one class for every image, whatever its AUC.")
    return sentence + "\n"


def plot(cells: list[Cell], metrics: list[str], path: Path, title: str) -> None:
    """One panel per metric: mean +- std vs number of labels (log scale), one line per init."""
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.8), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        for init in dict.fromkeys(c.init for c in cells):
            own = sorted((c for c in cells if c.init == init), key=lambda c: c.labels)
            means = [c.values(metric).mean() for c in own]
            stds = [c.values(metric).std(ddof=1) if len(c.runs) > 1 else 0.0 for c in own]
            axis.errorbar([c.labels for c in own], means, yerr=stds, marker="o", capsize=3, label=init)
        axis.set_xscale("log")
        axis.set_xlabel("labeled training images")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def report(args: argparse.Namespace, cells: list[Cell], examples: list[str], png: Path, seconds: float,
           loads: tuple[float, float], majority: float | None) -> str:
    """The markdown report."""
    metrics = METRICS[args.task]
    command = shlex.join(["python", "benchmarks/label_efficiency.py", *sys.argv[1:]])
    quick = " (`--quick` smoke check: one seed, two budgets, few steps; not a measurement)" if args.quick else ""
    example_lines = "\n".join(f"    {line}" for line in examples)
    return f"""# Label efficiency on {args.data}: fine-tuning from scratch vs from the zoo{quick}

Task: {args.task}, protocol `method.mode={args.mode}`, {args.steps} optimiser steps per run (validation every \
25 steps; the checkpoint best on validation loss is scored on the test split). A label budget keeps that many \
training labels, stratified by class and nested across budgets for one seed; seed k also seeds the initialisation \
of the task head (and of the whole network for scratch), and redraws the train/val/test split of data that has \
no official one. Scratch uses the architecture of the first zoo entry. \
Gain over scratch is the mean over seeds of the paired difference (same seed, same labeled subset) +- its std. \
Entries missing from the zoo were pretrained first with their method's defaults\
{f" for {args.pretrain_epochs} epoch(s) into a temporary store" if args.quick else ""}.

- Date: {date.today().isoformat()}
- Command (from the repository root): `{command}`
- Each cell runs (one example per init):

{example_lines}

- Software: Python {platform.python_version()}, torch {torch.__version__}, pytorch-lightning {pl.__version__}, \
torchmetrics {torchmetrics.__version__}, monai {monai.__version__}
- Machine: {os.cpu_count()} CPU cores ({platform.machine()}), no GPU; 1-minute load average {loads[0]:.2f} at the \
start, {loads[1]:.2f} at the end. Whole benchmark: {seconds / 60:.1f} min
- Plot: `{png.relative_to(REPO) if png.is_relative_to(REPO) else png}`

{table(cells, metrics)}

{majority_note(cells, majority)}{findings(cells, metrics[0])}
{findings(cells, metrics[1])}
With {args.seeds} seed(s), a gain smaller than the seed spread is not evidence of a difference.
"""


def parse_args() -> argparse.Namespace:
    """Command-line options; ``--quick`` replaces the matrix with a small one."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="pneumoniamnist", help="a registered DataModule")
    parser.add_argument("--data-args", nargs="*", default=None,
                        help=f"config overrides of the data, for every run (PneumoniaMNIST: {PNEUMONIAMNIST_ARGS[0]})")
    parser.add_argument("--task", choices=sorted(METRICS), default="classification")
    parser.add_argument("--mode", choices=["finetune", "linear"], default="finetune")
    parser.add_argument("--inits", nargs="+", default=["scratch", "zoo:simclr_pneumoniamnist", "zoo:byol_pneumoniamnist", "zoo:chen_pneumoniamnist"])
    parser.add_argument("--budgets", nargs="+", default=["0.01", "0.1", "1.0"], help="fractions, counts or 'all'")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300, help="fine-tuning optimiser steps per run")
    parser.add_argument("--pretrain-epochs", type=int, default=0, help="epochs for missing entries (0: the method's default)")
    parser.add_argument("--finetune-args", nargs="*", default=[], help="overrides for every fine-tuning run, e.g. trainer.devices=2")
    parser.add_argument("--pretrain-args", nargs="*", default=[], help="overrides for pretraining missing entries")
    parser.add_argument("--output", default="results/label_efficiency.md", help="relative paths are from the repo root")
    parser.add_argument("--runs", default=None, help="keep every run's folder here (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="a 5-minute smoke check: " + json.dumps(QUICK))
    args = parser.parse_args()
    if args.data_args is None:
        args.data_args = PNEUMONIAMNIST_ARGS if args.data == "pneumoniamnist" else []
    if args.quick:
        for key, value in QUICK.items():
            if parser.get_default(key) == getattr(args, key):
                setattr(args, key, value)
    return args


def main() -> None:
    """Run the matrix and write the report and plot."""
    args = parse_args()
    os.chdir(REPO)
    output = from_repo(args.output)
    png = output.with_suffix(".png")
    start, load_start = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="label_efficiency_") as temporary:
        workdir = from_repo(args.runs) if args.runs else Path(temporary)
        counts, majority = data_facts(args)
        cells, examples = run_matrix(args, workdir, counts)
    seconds, loads = time.perf_counter() - start, (load_start, os.getloadavg()[0])
    plot(cells, METRICS[args.task], png, f"{args.data}, {args.task}, {args.mode}, {args.seeds} seed(s)")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report(args, cells, examples, png, seconds, loads, majority))
    print(output.read_text())


if __name__ == "__main__":
    main()
