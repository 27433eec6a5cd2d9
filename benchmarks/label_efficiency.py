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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficiency_matrix import DONE_FILE, METRICS, PRETRAINED_FILE, PROFILES, SCORING_KEYS, Cell, Init, Profile, load_profiles  # noqa: E402
from efficiency_report import compute_text, part_section, plot, report  # noqa: E402
from report import REPO, one_class, report_path, work_path  # noqa: E402

from lightning_ssl import zoo  # noqa: E402
from lightning_ssl.config import build_config, registered  # noqa: E402
from lightning_ssl.data.budget import labeled_subset  # noqa: E402
from lightning_ssl.registry import DATASETS, METHODS  # noqa: E402
from lightning_ssl.train import TEST_METRICS  # noqa: E402
from lightning_ssl.zoo.store import ENV_VAR, downloads_dir  # noqa: E402


def cli(profile: Profile, *args: str) -> list[str]:
    """The command line of a lightning_ssl CLI call."""
    return [*profile.python, "-m", "lightning_ssl", *args]


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
    """Leave out every optional init whose built-in entry the zoo cannot make available, with one line saying why (and
    the reason kept in each profile's ``left_out`` for its report)."""
    optional = {id(init): init for profile in profiles for init in profile.inits if init.optional}
    for init in optional.values():
        try:
            make_available(init.entry, store)
        except zoo.ZooError as error:
            print(f"leaving out init {init.name}: {error}", flush=True)
            for profile in profiles:
                if any(kept is init for kept in profile.inits):
                    profile.left_out[init.name] = str(error)
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
    """Labeled training images (or cases, where the budget counts cases) per class at each budget for ``seed`` (from
    the DataModule, not from a run; for segmentation, under the key "", those with a mask), and the class of every
    test image (``seed`` draws budgets only: the split is fixed by ``data.split_seed``)."""
    uncached = [arg for arg in profile.data_args if not arg.startswith("data.cache=")]  # counting reads no image
    cfg = build_config([*uncached, f"data.seed={seed}"])
    datamodule = registered("data", cfg.data.name)(cfg.data)
    datamodule.setup("fit")
    labels = datamodule.budget_labels()
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
