"""Label efficiency: fine-tune from scratch and from pretrained zoo entries at several label budgets and seeds.

A profile (``benchmarks/profiles/<name>.yaml``) names the data, the task, the budgets, the seeds, the fine-tuning
recipe and the inits, each in an architecture group whose scratch baseline it is compared with; inits that are not
in the zoo yet are pretrained first (on the training split only: the split is fixed by ``data.split_seed``, so no
seed ever pretrains on a test image). Each cell (init x budget x seed) is one ``python -m lightning_ssl finetune``
run; finished cells are recorded in the work folder, so ``--resume`` continues a killed benchmark. The report gives
mean +- std per cell, the paired gain over the baseline (scratch of the same network) with its standard error and
paired t-test p-value, the label counts per class, the runs whose test predictions all fall in one class (each seed's
own split), the pretraining curves, the commands and versions, and a PNG of the metric against the number of labels.

Without a profile, ``--data``/``--inits``/``--budgets``... describe an ad-hoc matrix (missing ``zoo:<method>_<data>``
entries are pretrained with the method's defaults).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import yaml
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import REPO, from_repo, header, one_class, p_text, report_path, work_path  # noqa: E402

from lightning_ssl import zoo  # noqa: E402
from lightning_ssl.config import build_config, registered  # noqa: E402
from lightning_ssl.data.budget import labeled_subset  # noqa: E402
from lightning_ssl.registry import DATASETS, METHODS  # noqa: E402
from lightning_ssl.train import TEST_METRICS  # noqa: E402
from lightning_ssl.zoo.store import ENV_VAR, downloads_dir  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

PROFILES = Path(__file__).resolve().parent / "profiles"
METRICS = {"classification": ["test/auc", "test/acc", "test/f1"], "segmentation": ["test/dice", "test/hd95_class1"]}
LOWER_IS_BETTER = {"test/hd95_class1"}
DONE_FILE = "cells.jsonl"
SCORING_KEYS = ("method.threshold=",)  # overrides that change how a kept checkpoint is scored, not training
PRETRAINED_FILE = "pretraining.jsonl"


@dataclass
class Init:
    """Where a fine-tuning run starts: scratch, or a zoo entry (pretrained here when missing) of an architecture group.

    A ``per_cell`` init is a method that trains on each cell's own label budget (a semi-supervised method: the budget
    labeled, the rest of the training split unlabeled): it is trained per budget and seed and scored as it is.
    ``baseline`` marks the init a group's others are compared with (by default its scratch init). ``pretrain_data``
    replaces the profile's data for this init's pretraining (e.g. phantoms, to ask whether they transfer).
    ``budgets`` limits the init to some of the profile's budgets (a recipe tried where pretraining matters most).
    ``optional`` marks a built-in entry (e.g. the official genesis_chest_ct) that runs when the zoo can fetch it and is
    otherwise left out with one printed line; it keeps its own architecture and is compared with its group's baseline.
    """

    name: str
    group: str
    entry: str | None = None
    method: str | None = None
    pretrain_args: list[str] = field(default_factory=list)
    finetune_args: list[str] = field(default_factory=list)
    per_cell: bool = False
    baseline: bool = False
    pretrain_data: list[str] = field(default_factory=list)
    budgets: list[str] | None = None
    optional: bool = False

    def reference(self, budget: str = "", seed: int = 0) -> str:
        """``scratch`` or ``zoo:ENTRY`` (a per-cell init's entry of that budget and seed)."""
        if self.entry is None:
            return "scratch"
        return f"zoo:{self.cell_entry(budget, seed)}" if self.per_cell else f"zoo:{self.entry}"

    def cell_entry(self, budget: str, seed: int) -> str:
        """The zoo entry a per-cell init trains for one budget and seed."""
        return f"{self.entry}_b{budget.replace('.', 'p').replace('%', 'pct')}_s{seed}"


@dataclass
class Profile:
    """A label-efficiency matrix of one task: data, budgets, seeds, fine-tuning recipe, architecture groups and inits.

    A profile file may hold several parts (tasks on the same data, e.g. segmentation and classification) that share
    the pretrained inits: ``pretrain_data_args`` are the data of pretraining, ``data_args`` those of this part.
    """

    name: str
    task: str
    data_args: list[str]
    budgets: list[str]
    seeds: int
    finetune_args: list[str]
    groups: dict[str, list[str]]
    inits: list[Init]
    pretrain_args: list[str] = field(default_factory=list)
    pretrain_data_args: list[str] = field(default_factory=list)
    description: str = ""
    part: str = ""
    budget_seeds: dict[str, int] = field(default_factory=dict)  # seeds at some budgets instead of ``seeds``
    run_first: list[str] = field(default_factory=list)  # budgets whose cells run before the others' (a long run's key cells)
    # given on the command line (--pretrain-args, --finetune-args): applied over the profile's and the init's own
    extra_pretrain_args: list[str] = field(default_factory=list)
    extra_finetune_args: list[str] = field(default_factory=list)
    # the interpreter command of every run (--python): this Python unless told otherwise
    python: list[str] = field(default_factory=lambda: [sys.executable])

    def seeds_at(self, budget: str) -> int:
        """How many seeds the cells of ``budget`` run."""
        return self.budget_seeds.get(budget, self.seeds)

    def seeds_text(self) -> str:
        """``5 seeds``, or ``3 seeds (5 at budget 10)`` when some budgets run more or fewer."""
        others = ", ".join(f"{n} at budget {b}" for b, n in self.budget_seeds.items() if b in self.budgets and n != self.seeds)
        return f"{self.seeds} seeds" + (f" ({others})" if others else "")

    def scratch_of(self, group: str) -> Init | None:
        """The init a group's others are compared with: the one marked ``baseline``, else its scratch init."""
        members = [init for init in self.inits if init.group == group]
        return next((i for i in members if i.baseline), None) or next((i for i in members if i.entry is None), None)


@dataclass
class Cell:
    """One init at one label budget: each seed's test metrics and labeled-class counts."""

    init: Init
    budget: str
    runs: dict[int, dict[str, float]] = field(default_factory=dict)
    counts: dict[int, dict[str, int]] = field(default_factory=dict)
    seconds: dict[int, float] = field(default_factory=dict)
    rescored: set[int] = field(default_factory=set)

    def values(self, metric: str, seeds: list[int] | None = None) -> np.ndarray:
        """The metric of every seed (or of ``seeds``), in seed order."""
        return np.array([self.runs[s][metric] for s in (seeds or sorted(self.runs))])


def cli(profile: Profile, *args: str) -> list[str]:
    """The command line of a lightning_ssl CLI call."""
    return [*profile.python, "-m", "lightning_ssl", *args]


def load_profiles(name: str, workdir: Path) -> list[Profile]:
    """The part(s) of ``benchmarks/profiles/<name>.yaml``; ``${workdir}`` in its arguments is the work folder."""
    path = PROFILES / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES.glob("*.yaml")))
        sys.exit(f"--profile {name}: no {path}; profiles: {known}")
    spec = yaml.safe_load(path.read_text().replace("${workdir}", str(workdir)))
    inits = [Init(name=key, **{k: _flat(v) if k.endswith("_args") else v for k, v in value.items()})
             for key, value in spec.pop("inits").items()]
    parts = spec.pop("parts", None) or {"": {}}
    shared = spec.pop("data_args")
    profiles = []
    for part, own in parts.items():
        own = dict(own)
        chosen, data = own.pop("inits", None), [*shared, *own.pop("data_args", [])]
        part_inits = [init for init in inits if chosen is None or init.name in chosen]
        profiles.append(Profile(name=name, inits=part_inits, data_args=data, pretrain_data_args=shared, part=part, **{**spec, **own}))
    return profiles


def _flat(args: list) -> list[str]:
    """An init's argument list with nested lists spliced in (a YAML alias of a shared recipe inside a longer list)."""
    return [a for item in args for a in (_flat(item) if isinstance(item, list) else [item])]


def adhoc_profile(args: argparse.Namespace) -> Profile:
    """A profile from the command-line options: one group, scratch built like the first zoo entry."""
    inits = []
    for reference in args.inits:
        if reference == "scratch":
            inits.append(Init("scratch", "default"))
        elif reference.startswith("zoo:"):
            entry = reference[4:]
            inits.append(Init(reference, "default", entry=entry, method=_method_of(entry, args.data)))
        else:
            sys.exit(f"--inits: {reference!r} is neither 'scratch' nor 'zoo:NAME'")
    data = [f"data={args.data}", *args.data_args]
    return Profile(
        name=args.data, task=args.task, data_args=data, budgets=args.budgets, seeds=args.seeds,
        finetune_args=[f"trainer.max_steps={args.steps}", f"method.mode={args.mode}", *args.finetune_args],
        groups={"default": []}, inits=inits, pretrain_args=args.pretrain_args, pretrain_data_args=data,
    )


def _method_of(entry: str, data: str) -> str | None:
    """The method a missing entry named ``<method>_<data>`` is pretrained with (None if the name says none)."""
    for method in sorted(METHODS.names(), key=len, reverse=True):
        if entry.startswith(f"{method}_") and entry[len(method) + 1 :] in DATASETS:
            return method
    return None


def drop_unavailable(profiles: list[Profile], store: Path) -> None:
    """Leave out every optional init whose built-in entry the zoo cannot make available, with one line saying why."""
    optional = {id(init): init for profile in profiles for init in profile.inits if init.optional}
    for init in optional.values():
        try:
            make_available(init.entry, store)
        except zoo.ZooError as error:
            print(f"leaving out init {init.name}: {error}", flush=True)
            for profile in profiles:
                profile.inits = [kept for kept in profile.inits if kept is not init]


def make_available(entry: str, store: Path) -> None:
    """Publish built-in ``entry`` into the benchmark's store: from the user's own store's downloaded file when it has
    one, else from its official source (ZooError when neither works, e.g. offline)."""
    if zoo.versions(entry, store):
        return
    elsewhere = downloads_dir() / zoo.BUILTIN[entry].filename
    if elsewhere.is_file():
        zoo.import_builtin(entry, elsewhere, store)
    else:
        zoo.fetch_builtin(entry, store)


def run_logged(command: list[str], log_file: Path, env: dict[str, str]) -> None:
    """Run ``command`` from the repository root with its output in ``log_file``; stop the benchmark if it fails."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w") as log:
        done = subprocess.run(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = "".join(log_file.read_text().splitlines(keepends=True)[-25:])
        sys.exit(f"failed ({done.returncode}): {shlex.join(command)}\n--- last lines of {log_file} ---\n{tail}")


def pretrain(profile: Profile, init: Init, entry: str, workdir: Path, env: dict[str, str], cell_args: list[str],
             resume: bool) -> None:
    """Train ``entry`` with the init's method unless the store has it; with ``resume`` an interrupted attempt continues,
    otherwise an earlier attempt's folder is cleared first."""
    if zoo.versions(entry, env.get(ENV_VAR)):
        return
    if init.method is None:
        sys.exit(f"zoo entry {entry!r} is missing and the profile says no method to pretrain it with")
    folder = workdir / "pretrain" / entry
    if not resume:
        shutil.rmtree(folder, ignore_errors=True)
    resuming = ["resume=last"] if resume and list(folder.glob("*/*/checkpoints/last.ckpt")) else []
    data = init.pretrain_data or (profile.data_args if init.per_cell else profile.pretrain_data_args)
    command = cli(profile, "pretrain", f"method={init.method}", *data, *profile.groups[init.group], *profile.pretrain_args,
                  *init.pretrain_args, *cell_args, *profile.extra_pretrain_args, f"zoo.name={entry}", f"output_dir={folder}",
                  "trainer.enable_progress_bar=false", *resuming)
    print(f"{'training' if init.per_cell else 'pretraining'} {entry}: {shlex.join(command[len(profile.python) + 2:])}", flush=True)
    start = time.perf_counter()
    run_logged(command, workdir / "logs" / f"pretrain_{entry}.log", env)
    seconds = time.perf_counter() - start
    with (workdir / PRETRAINED_FILE).open("a") as handle:
        handle.write(json.dumps({"entry": entry, "seconds": seconds}) + "\n")
    print(f"  done in {seconds / 60:.1f} min", flush=True)


def pretrain_missing(profile: Profile, workdir: Path, env: dict[str, str], resume: bool,
                     run: bool = True) -> dict[str, list[dict[str, float]]]:
    """Pretrain every shared init whose entry is not in the store yet (none when ``run`` is false); the validation
    curve (per epoch) of each entry, named after the inits that start from it."""
    users: dict[str, list[str]] = {}
    for init in profile.inits:
        if init.entry is None or init.per_cell:
            continue
        if run and init.entry not in users and init.entry not in zoo.BUILTIN:
            pretrain(profile, init, init.entry, workdir, env, [], resume)
        users.setdefault(init.entry, []).append(init.name)
    return {" = ".join(names): pretraining_curve(workdir / "pretrain" / entry) for entry, names in users.items()}


def pretraining_curve(folder: Path) -> list[dict[str, float]]:
    """The validation metrics of each epoch of the pretraining run(s) in ``folder`` (every resumed attempt)."""
    rows = []
    for metrics in sorted(folder.glob("*/*/logs/version_*/metrics.csv")):
        rows += [{k: float(v) for k, v in row.items() if v and (k.startswith("val/") or k in ("epoch", "step"))}
                 for row in csv.DictReader(metrics.open()) if row.get("val/loss")]
    return rows


def budget_counts(profile: Profile, seed: int) -> tuple[dict[str, dict[str, int]], list[int]]:
    """Labeled training images per class at each budget for ``seed`` (from the DataModule, not from a run; for
    segmentation, under the key "", the images with a mask), and the class of every test image (``seed`` draws
    budgets only: the split is fixed by ``data.split_seed``)."""
    cfg = build_config([*profile.data_args, f"data.seed={seed}"])
    datamodule = registered("data", cfg.data.name)(cfg.data)
    datamodule.setup("fit")
    labels = datamodule.train_labels()
    names = list(datamodule.info.class_names)
    test = getattr(datamodule.test_dataset, "class_labels", lambda: None)() or []
    if labels is None:
        return {}, list(test)
    counts = {}
    for budget in profile.budgets:
        chosen, _ = labeled_subset(labels, None if budget == "all" else budget, seed)
        if profile.task == "segmentation":
            counts[budget] = {"": len(chosen)}
            continue
        tally = Counter(labels[chosen].tolist())
        counts[budget] = {names[k] if k < len(names) else str(k): tally[k] for k in sorted(tally)}
    return counts, list(test)


def finetune_command(profile: Profile, init: Init, budget: str, seed: int, output: Path) -> list[str]:
    """The CLI call of one cell and seed (a per-cell init's model is scored as trained: no fine-tuning step)."""
    network = profile.groups[init.group] if init.entry is None else []
    tail = [*profile.extra_finetune_args, "trainer.max_steps=0"] if init.per_cell else [*init.finetune_args, *profile.extra_finetune_args]
    return cli(
        profile, "finetune", f"method.task={profile.task}", f"method.init={init.reference(budget, seed)}", *profile.data_args,
        f"data.label_budget={budget}", f"seed={seed}", f"data.seed={seed}", f"output_dir={output}", "logger=csv",
        "trainer.enable_progress_bar=false", "zoo.publish=false", *network, *profile.finetune_args, *tail,
    )


def scoring_change(before: str, now: str) -> list[str] | None:
    """The scoring overrides of ``now`` when the two cell commands differ only in how the kept checkpoint is scored
    (``SCORING_KEYS``, which do not change training or the checkpoint kept); None when they differ in anything else."""
    old, new = shlex.split(before), shlex.split(now)
    if [w for w in old if not w.startswith(SCORING_KEYS)] != [w for w in new if not w.startswith(SCORING_KEYS)]:
        return None
    return [w for w in new if w.startswith(SCORING_KEYS)]


def rescore(profile: Profile, output: Path, record: dict[str, Any], overrides: list[str], shown: str, workdir: Path,
            env: dict[str, str]) -> dict[str, Any]:
    """Score a recorded cell's kept checkpoint again with ``overrides`` (``lightning_ssl score``); the new record."""
    (metrics_file,) = sorted(output.glob(f"*/*/{TEST_METRICS}"))[-1:]
    start = time.perf_counter()
    run_logged(cli(profile, "score", f"resume={metrics_file.parent}", *overrides), workdir / "logs" / f"{output.name}_score.log", env)
    seconds = {"seconds": record["seconds"] + time.perf_counter() - start} if "seconds" in record else {}
    record = {**record, "metrics": json.loads(metrics_file.read_text())["metrics"], "command": shown, **seconds,
              "rescored": {"from": record.get("command", "not recorded")}}
    with (workdir / DONE_FILE).open("a") as handle:
        handle.write(json.dumps(record) + "\n")
    return record


def run_order(profile: Profile, cells: list[Cell]) -> list[tuple[Cell, int]]:
    """Every (cell, seed) to run: the cells of ``run_first`` budgets first, otherwise init by init, budget by budget."""
    order = [(cell, seed) for cell in cells for seed in range(profile.seeds_at(cell.budget))]
    return sorted(order, key=lambda pair: pair[0].budget not in profile.run_first)


def run_matrix(profile: Profile, workdir: Path, env: dict[str, str], resume: bool, rescore_changed: bool = False,
               run_missing: bool = True) -> tuple[list[Cell], dict[str, str]]:
    """Every cell of the matrix (cells recorded as finished in the work folder are read back, not run again; with
    ``rescore_changed``, those recorded with other scoring overrides are scored again; without ``run_missing``, the
    others are left without runs), and the command of one cell per init as an example."""
    done_file = workdir / DONE_FILE
    finished = {}
    if done_file.is_file():
        for line in done_file.read_text().splitlines():
            record = json.loads(line)
            finished[(record.get("part", ""), record["init"], record["budget"], record["seed"])] = record
    cells = [Cell(init, budget) for init in profile.inits for budget in profile.budgets
             if init.budgets is None or budget in init.budgets]
    counts = {seed: budget_counts(profile, seed)[0] for seed in range(max(map(profile.seeds_at, profile.budgets)))}
    examples: dict[str, str] = {}
    start, ran = time.perf_counter(), 0
    order = run_order(profile, cells)
    total = len(order)
    for index, (cell, seed) in enumerate(order, 1):
        output = workdir / "finetune" / f"{profile.part + '_' if profile.part else ''}{cell.init.name}_{cell.budget}_{seed}"
        command = finetune_command(profile, cell.init, cell.budget, seed, output)
        shown = shlex.join(["python", *(w for w in command[len(profile.python):] if not w.startswith("output_dir="))])
        examples.setdefault(cell.init.name, shown)
        key = (profile.part, cell.init.name, cell.budget, seed)
        recorded = finished[key].get("command") if key in finished else shown
        # a record from before commands were recorded is taken as this command, or scored again with --rescore
        if recorded != shown and (recorded is not None or rescore_changed):
            change = scoring_change(recorded or shown, shown) if rescore_changed else None
            if change is None:
                sys.exit(f"--resume: {cell.init.name} budget {cell.budget} seed {seed} in {done_file} ran as\n  "
                         f"{finished[key]['command']}\nnot as\n  {shown}\nuse another --workdir, or leave --resume out to "
                         f"start over (--rescore scores again cells that differ only in {', '.join(SCORING_KEYS)})")
            finished[key] = rescore(profile, output, finished[key], change, shown, workdir, env)
        if key in finished:
            cell.runs[seed] = finished[key]["metrics"]
            if "rescored" in finished[key]:
                cell.rescored.add(seed)
            if "seconds" in finished[key]:
                cell.seconds[seed] = finished[key]["seconds"]
        elif not run_missing:
            continue
        else:
            if cell.init.per_cell:
                cell_args = [f"data.label_budget={cell.budget}", f"seed={seed}", f"data.seed={seed}"]
                pretrain(profile, cell.init, cell.init.cell_entry(cell.budget, seed), workdir, env, cell_args, resume)
            cell_start = time.perf_counter()  # a per-cell init's training is counted with the pretrainings
            run_logged(command, workdir / "logs" / f"{output.name}.log", env)
            (record,) = sorted(output.glob(f"*/*/{TEST_METRICS}"))[-1:]
            cell.runs[seed] = json.loads(record.read_text())["metrics"]
            cell.seconds[seed] = time.perf_counter() - cell_start
            with done_file.open("a") as handle:
                record = {"part": profile.part, "init": key[1], "budget": key[2], "seed": seed, "metrics": cell.runs[seed],
                          "seconds": cell.seconds[seed], "command": shown}
                handle.write(json.dumps(record) + "\n")
            ran += 1
        cell.counts[seed] = counts[seed].get(cell.budget, {})
        elapsed = time.perf_counter() - start
        pending = sum(1 for c, s in order[index:] if (profile.part, c.init.name, c.budget, s) not in finished)
        remaining = f"~{elapsed / ran * pending / 60:.0f} min left" if ran else f"{pending} cells to run"
        scores = ", ".join(f"{m} {cell.runs[seed][m]:.3f}" for m in METRICS[profile.task] if m in cell.runs[seed])
        flag = "  ONE CLASS" if one_class(cell.runs[seed]) else ""
        print(f"[{index}/{total}] {cell.init.name} budget {cell.budget} seed {seed}: {scores}{flag}  "
              f"({elapsed / 60:.1f} min, {remaining})", flush=True)
    return cells, examples


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
    least 3 paired seeds)."""
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
        better = sign * mean > 2 * error
        worse = sign * mean < -2 * error
        verdict = "beats" if better else "is worse than" if worse else "does not differ from"
        sentences.append(f"{cell.init.name} {verdict} {scratch_init.name} at budget {cell.budget} on {metric} "
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


def report(profiles: list[Profile], sections: list[str], curves: dict[str, list[dict[str, float]]], seconds: float,
           loads: tuple[float, float], compute: str) -> str:
    """The markdown report of every part."""
    first = profiles[0]
    return f"""# Label efficiency on {first.name}: fine-tuning from scratch vs from pretrained encoders

{first.description.strip()}

{PROTOCOL}

{header(seconds, loads)}
{compute}

{chr(10).join(sections)}

## Pretraining curves (validation, per epoch)

{curves_text(curves)}
"""


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", help=f"a matrix from {PROFILES.relative_to(REPO)}/<name>.yaml (chest_xray, pneumoniamnist, ...)")
    parser.add_argument("--data", default="pneumoniamnist", help="without a profile: a registered DataModule")
    parser.add_argument("--data-args", nargs="*", default=None, help="without a profile: data overrides for every run")
    parser.add_argument("--task", choices=sorted(METRICS), default="classification")
    parser.add_argument("--mode", choices=["finetune", "linear"], default="finetune")
    parser.add_argument("--inits", nargs="+", default=["scratch", "zoo:simclr_pneumoniamnist", "zoo:byol_pneumoniamnist"])
    parser.add_argument("--budgets", nargs="+", default=None, help="fractions, counts or 'all'")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--steps", type=int, default=300, help="without a profile: fine-tuning optimiser steps per run")
    parser.add_argument("--finetune-args", nargs="*", default=[], help="overrides for every fine-tuning run")
    parser.add_argument("--pretrain-args", nargs="*", default=[], help="overrides for pretraining missing entries")
    parser.add_argument("--workdir", default=None, help="where runs, logs and the pretrained entries go (default: results/work/<profile> with "
                        "--write, its records committed; else runs/benchmarks/<profile>)")
    parser.add_argument("--resume", action="store_true", help="keep the cells an earlier attempt finished in the work folder")
    parser.add_argument("--rescore", action="store_true", help="with --resume: score again (lightning_ssl score) the "
                        "recorded cells whose command differs only in scoring overrides (method.threshold), instead of refusing")
    parser.add_argument("--finished-only", action="store_true", help="with --resume: run nothing (no pretraining, no "
                        "cell) and report the cells finished so far, marked as interim (a long run between sittings)")
    parser.add_argument("--write", action="store_true", help="write the committed report results/label_efficiency_<profile>.md")
    parser.add_argument("--output", default=None, help="write the report here instead")
    parser.add_argument("--python", default=None, help="the command that runs python for each pretraining and cell "
                        "(default: this interpreter), e.g. a wrapper that starts with torch already imported")
    args = parser.parse_args()
    if args.data_args is None:
        args.data_args = ["data.root=../shared/data/pneumoniamnist"] if args.data == "pneumoniamnist" else []
    return args


def main() -> None:
    """Pretrain what is missing, run the matrix of every part, write the report and plots."""
    args = parse_args()
    os.chdir(REPO)
    name = args.profile or f"adhoc_{args.data}"
    workdir = work_path(name, args.write, args.workdir)
    profiles = load_profiles(args.profile, workdir) if args.profile else [adhoc_profile(args)]
    for profile in profiles:
        if args.python:
            profile.python = shlex.split(args.python)
        profile.budgets = args.budgets or profile.budgets or ["0.01", "0.1", "1.0"]
        profile.seeds = args.seeds or profile.seeds or 3
        if args.seeds:
            profile.budget_seeds = {}
        if args.profile:
            profile.extra_finetune_args = args.finetune_args
            profile.extra_pretrain_args = args.pretrain_args
    output = report_path(f"label_efficiency_{name}.md", args.write, args.output)
    env = {k: v for k, v in os.environ.items() if k != "LIGHTNING_SSL_RUN_DIR"}
    if args.profile:
        env[ENV_VAR] = str(workdir / "zoo")
    start, load_start = time.perf_counter(), os.getloadavg()[0]
    workdir.mkdir(parents=True, exist_ok=True)
    if args.rescore and not args.resume:
        sys.exit("--rescore scores again the cells of an earlier attempt: use it with --resume")
    if args.finished_only and not args.resume:
        sys.exit("--finished-only reports the cells an earlier attempt finished: use it with --resume")
    if not args.resume:
        (workdir / DONE_FILE).unlink(missing_ok=True)
    if args.profile:
        drop_unavailable(profiles, workdir / "zoo")
    tests = [budget_counts(profile, 0)[1] for profile in profiles]
    for profile, test_labels in zip(profiles, tests):
        if profile.task == "classification" and not test_labels:
            sys.exit(f"{profile.name} {profile.part}: the data has no test split with class labels, so nothing can be "
                     "scored; give it one (e.g. data.test_fraction=0.2 for image_folder)")
    curves: dict[str, list[dict[str, float]]] = {}
    for profile in profiles:
        curves.update(pretrain_missing(profile, workdir, env, args.resume, run=not args.finished_only))
    sections, every_cell = [], []
    for profile, test_labels in zip(profiles, tests):
        _with_groups(profile, env)
        cells, examples = run_matrix(profile, workdir, env, args.resume, args.rescore, run_missing=not args.finished_only)
        planned = len(run_order(profile, cells))
        cells = [cell for cell in cells if cell.runs]
        every_cell += cells
        png = output.with_name(f"{output.stem}{'_' + profile.part if profile.part else ''}.png")
        if cells:
            plot(profile, cells, curves, png)
        else:
            png.unlink(missing_ok=True)  # an earlier report's plot would show cells this report leaves out
        sections.append(part_section(profile, cells, examples, png if cells else None, test_labels, planned))
    seconds, loads = time.perf_counter() - start, (load_start, os.getloadavg()[0])
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report(profiles, sections, curves, seconds, loads, compute_text(workdir, every_cell)))
    print(output.read_text())
    print(f"report written to {output}")


def _with_groups(profile: Profile, env: dict[str, str]) -> None:
    """An ad-hoc profile's scratch is built like its first zoo entry, so the comparison is like for like."""
    if profile.groups.get("default") != []:
        return
    entry = next((init.entry for init in profile.inits if init.entry), None)
    if entry is None:
        return
    architecture = zoo.metadata(entry, env.get(ENV_VAR))["architecture"]
    given = {"spatial_dims", "in_channels", "out_channels"}
    values = [f"network.{k}={v if isinstance(v, str) else json.dumps(v).replace(' ', '')}"
              for k, v in architecture["kwargs"].items() if k not in given]
    profile.groups["default"] = [f"network={architecture['name']}", *values]


if __name__ == "__main__":
    main()
