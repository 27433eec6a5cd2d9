"""MultiMix on real chest X-rays vs the same network trained on the class labels alone, over several seeds.

MultiMix: `make pretrain METHOD=multimix ARGS="config=<the set's config>"`: 100 class labels of a chest X-ray set (the
rest of its training split unlabeled, FixMatch) + the real X-rays of xray_lung_seg with lung masks (Dice on the labeled
mask, the KL consistency on the unlabeled image, the saliency bridge). Classification sets (``--classification``):
``pneumoniamnist`` (experiments/data/xray_multitask_real.yaml, the 28 px file) or ``chest_xray`` (the Kermany
chest X-rays at 224 px, experiments/data/xray_multitask_chest_xray.yaml). Images are resized to ``--size``.
Baseline: the same method, config, initial weights (same seed), optimiser and number of steps, but every training batch
holds only the labeled classification images: no unlabeled data and no segmentation. Both are scored at their last
step (no checkpoint selection) on the classification set's test split (accuracy, F1 per class, AUC, predicted-class
counts) and MultiMix on the held-out segmentation test image (Dice, Jaccard, average Hausdorff, SSIM, precision,
recall). Seed k draws the labeled subset, the initial weights and the batch order; the split is fixed by
``data.split_seed``. Each finished seed is recorded in the work folder, so ``--resume`` continues a killed run.
Writes results/local/multimix_<set>.md, or the committed results/multimix_<set>.md with ``--write``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import CombinedLoader
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import comparison, from_repo, header, one_class, p_text, report_path, work_path  # noqa: E402

from lightning_ssl.config import build_config  # noqa: E402
from lightning_ssl.data import DATASETS  # noqa: E402
from lightning_ssl.data.medmnist import MD5, md5_file  # noqa: E402
from lightning_ssl.data.multitask import MultiTaskDataModule  # noqa: E402
from lightning_ssl.methods.multimix import MultiMixMethod  # noqa: E402
from lightning_ssl.train import build_trainer, pretrain  # noqa: E402

QUICK_STEPS = 20
SEGMENTATION = ("dice", "jaccard", "avg_hausdorff", "ssim", "precision", "recall")
RUNS = ("MultiMix", "labels only")
DONE_FILE = "seeds.jsonl"


@dataclass(frozen=True)
class ClassificationSet:
    """A chest X-ray classification set MultiMix pairs with the lung masks: its config, data folder and file to check."""

    title: str
    config: str
    root: str
    marker: str
    disk_cache: bool


SETS = {
    "pneumoniamnist": ClassificationSet("PneumoniaMNIST", "experiments/data/xray_multitask_real.yaml",
                                        "../shared/data/pneumoniamnist", "pneumoniamnist.npz", False),
    "chest_xray": ClassificationSet("the Kermany chest X-rays (224 px JPEGs)", "experiments/data/xray_multitask_chest_xray.yaml",
                                    "../shared/data/chest_xray_224", "chest_xray/train", True),
}


def run_config(args: argparse.Namespace, seed: int, output_dir: Path, zoo_store: Path | None) -> DictConfig:
    """MultiMix's config on the chosen pair for one seed, for ``steps`` optimiser steps without validation."""
    chosen = SETS[args.classification]
    store = [] if zoo_store is None else [f"zoo.store={zoo_store}"]
    cache = [f"data.classification.cache_dir={args.workdir / 'cache'}"] if chosen.disk_cache else []
    return build_config(
        [
            "method=multimix",
            f"config={from_repo(chosen.config)}",
            f"data.classification.root={from_repo(args.classification_data)}",
            f"data.segmentation.root={from_repo(args.segmentation_data)}",
            *cache,
            f"data.patch_size=[{args.size},{args.size}]",
            f"seed={seed}",
            f"data.seed={seed}",
            f"trainer.max_steps={steps(args)}",
            "trainer.max_epochs=-1",
            "trainer.limit_val_batches=0",
            "trainer.enable_progress_bar=false",
            f"output_dir={output_dir}",
            f"zoo.name=multimix_{args.classification}_xray_s{seed}",
            *store,
        ]
    )


def recorded_setting(args: argparse.Namespace) -> dict[str, object]:
    """What a finished seed was trained with: a resumed benchmark only reuses seeds trained the same way."""
    return {"classification": args.classification, "steps": steps(args), "size": args.size, "threads": args.threads}


def steps(args: argparse.Namespace) -> int:
    """Optimiser steps of each run."""
    return QUICK_STEPS if args.quick else args.steps


def score_on_test(method: MultiMixMethod, datamodule: MultiTaskDataModule) -> dict[str, float]:
    """Test metrics of both tasks with the method's current weights."""
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1)
    results = trainer.test(method, dataloaders=datamodule.test_dataloader(), verbose=False)
    return {k: float(v) for result in results for k, v in result.items()}


def last_logged(run_dir: Path, key: str) -> float | None:
    """The last value of ``key`` in the run's CSV log."""
    with (run_dir / "logs" / "version_0" / "metrics.csv").open() as handle:
        values = [float(row[key]) for row in csv.DictReader(handle) if row.get(key)]
    return values[-1] if values else None


def run_multimix(cfg: DictConfig, datamodule: MultiTaskDataModule) -> dict:
    """Train MultiMix through ``pretrain`` (published to the zoo): seconds, test metrics, last pseudo-label rate."""
    start = time.perf_counter()
    result = pretrain(cfg)
    seconds = time.perf_counter() - start
    method = MultiMixMethod.load_from_checkpoint(result.last_checkpoint, map_location="cpu", weights_only=True)
    rate = last_logged(result.run_dir, "train/pseudo_label_rate")
    return {"seconds": seconds, "metrics": score_on_test(method, datamodule), "pseudo_label_rate": rate,
            "zoo_entry": str(result.zoo_entry)}


def run_labels_only(cfg: DictConfig, datamodule: MultiTaskDataModule, output_dir: Path) -> dict:
    """The same network, seed and steps trained on batches of the labeled classification images only."""
    pl.seed_everything(cfg.seed, workers=True)
    method = MultiMixMethod(OmegaConf.to_container(cfg, resolve=True), datamodule.info.as_dict())
    loader = CombinedLoader({"classification": {"labeled": datamodule.part_dataloader("classification", "labeled")}},
                            mode="max_size_cycle")
    trainer, _ = build_trainer(cfg, output_dir / "labels_only")
    start = time.perf_counter()
    trainer.fit(method, train_dataloaders=loader)
    return {"seconds": time.perf_counter() - start, "metrics": score_on_test(method, datamodule)}


def file_origin(args: argparse.Namespace) -> str:
    """For PneumoniaMNIST: the file's md5 and whether it is the official MedMNIST file; nothing for a folder of images."""
    chosen = SETS[args.classification]
    path = from_repo(args.classification_data) / chosen.marker
    if not path.is_file():
        return ""
    digest = md5_file(path)
    official = "the official 28 px file" if digest == MD5[path.name] else f"not the official file's {MD5[path.name]}"
    return f"\n- Classification file: `{args.classification_data}/{chosen.marker}`, md5 {digest}, {official}"


def prepared(cfg: DictConfig) -> MultiTaskDataModule:
    """The DataModule of a run's config, set up for training."""
    datamodule = DATASETS[cfg.data.name](cfg.data)
    datamodule.setup("fit")
    return datamodule


def data_summary(args: argparse.Namespace, datamodule: MultiTaskDataModule) -> tuple[str, list[int]]:
    """Images per part and split of both tasks as the DataModule holds them, and the test split's class labels."""
    parts = {f"{task}_{kind}": len(part) for task, kinds in datamodule.train_parts.items() for kind, part in kinds.items()}
    cls, seg = datamodule.tasks["classification"], datamodule.tasks["segmentation"]
    labels = [int(label) for label in cls.test_dataset.class_labels()]
    return (
        f"classification ({SETS[args.classification].title}): {parts['classification_labeled']} labeled + "
        f"{parts.get('classification_unlabeled', 0):,} unlabeled train images, {len(cls.val_dataset)} val, "
        f"{len(cls.test_dataset)} test; segmentation (xray_lung_seg): {parts['segmentation_labeled']} labeled + "
        f"{parts.get('segmentation_unlabeled', 0)} unlabeled train image(s), {len(seg.val_dataset)} val, "
        f"{len(seg.test_dataset)} test"
    ), labels


def classification_keys(records: list[dict]) -> list[str]:
    """The classification metrics to tabulate: accuracy, per-class and macro F1, AUC (as logged)."""
    logged = records[0]["MultiMix"]["metrics"]
    per_class = sorted(k[len("test/"):] for k in logged if k.startswith("test/f1_"))
    return ["acc", *per_class, "f1", "auc"]


def values(records: list[dict], run: str, key: str) -> np.ndarray:
    """One metric of one run over the seeds, in seed order."""
    return np.array([record[run]["metrics"].get(f"test/{key}", np.nan) for record in records])


def mean_std(array: np.ndarray) -> str:
    """``mean ± std`` over seeds (the value alone for one seed)."""
    return f"{np.nanmean(array):.3f} ± {np.nanstd(array, ddof=1):.3f}" if array.size > 1 else f"{array[0]:.3f}"


def paired_gain(records: list[dict], key: str) -> tuple[float, float, float] | None:
    """MultiMix minus labels-only: mean paired difference, its standard error and the paired t-test p-value."""
    ours, theirs = values(records, "MultiMix", key), values(records, "labels only", key)
    if ours.size < 2:
        return None
    difference = ours - theirs
    error = float(difference.std(ddof=1) / np.sqrt(difference.size))
    p = float(stats.ttest_rel(ours, theirs).pvalue) if error > 0 else float("nan")
    return float(difference.mean()), error, p


def summary_table(records: list[dict], keys: list[str]) -> str:
    """Mean ± std of each run per metric, and the paired gain of MultiMix over the labels-only baseline."""
    lines = [f"| run | {' | '.join(keys)} |", "|---|" + "---|" * len(keys)]
    for run in RUNS:
        lines.append(f"| {run} | " + " | ".join(mean_std(values(records, run, k)) for k in keys) + " |")
    gains = []
    for key in keys:
        result = paired_gain(records, key)
        gains.append("–" if result is None else f"{result[0]:+.3f} ± {result[1]:.3f} (p {p_text(result[2])})")
    lines.append("| MultiMix − labels only (paired, ± standard error) | " + " | ".join(gains) + " |")
    return "\n".join(lines)


def seed_table(records: list[dict]) -> str:
    """Per seed: AUC and accuracy of both runs, one-class flags, MultiMix's pseudo-label rate and both runs' time."""
    columns = ("seed", "MultiMix AUC", "labels-only AUC", "MultiMix acc", "labels-only acc", "one-class run",
               "pseudo-label rate", "time MultiMix / labels only")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for record in records:
        mm, lo = record["MultiMix"], record["labels only"]
        flagged = ", ".join(run for run in RUNS if one_class(record[run]["metrics"])) or "none"
        rate = mm.get("pseudo_label_rate")
        lines.append(f"| {record['seed']} | {mm['metrics']['test/auc']:.3f} | {lo['metrics']['test/auc']:.3f} | "
                     f"{mm['metrics']['test/acc']:.3f} | {lo['metrics']['test/acc']:.3f} | {flagged} | "
                     f"{'–' if rate is None else format(rate, '.2f')} | {mm['seconds']:.0f} s / {lo['seconds']:.0f} s |")
    return "\n".join(lines)


def segmentation_table(records: list[dict]) -> str:
    """MultiMix's segmentation scores on the held-out X-ray, mean ± std over seeds."""
    lines = [f"| run | {' | '.join(SEGMENTATION)} |", "|---|" + "---|" * len(SEGMENTATION)]
    lines.append("| MultiMix | " + " | ".join(mean_std(values(records, "MultiMix", k)) for k in SEGMENTATION) + " |")
    return "\n".join(lines)


def verdict(records: list[dict], test_labels: list[int]) -> str:
    """Sentences from the numbers: did MultiMix beat the labels-only baseline (``report.comparison``),
    and did any run predict one class or fall to the majority-class accuracy?"""
    sentences = []
    for key, label in (("auc", "test AUC"), ("acc", "test accuracy"), ("f1", "macro F1")):
        ours, theirs = values(records, "MultiMix", key), values(records, "labels only", key)
        result = paired_gain(records, key)
        if result is None:
            outcome = "beat" if ours[0] > theirs[0] else "did not beat"
            sentences.append(f"On {label}, MultiMix {outcome} the labels-only baseline ({ours[0]:.3f} vs {theirs[0]:.3f}; one seed).")
            continue
        mean, error, p = result
        sentences.append(f"On {label}, MultiMix {comparison(mean, error, p, 'the labels-only baseline')} ({np.mean(ours):.3f} vs "
                         f"{np.mean(theirs):.3f}, paired {mean:+.3f} ± {error:.3f}, p {p_text(p)}).")
    majority = np.bincount(test_labels).max() / len(test_labels)
    for run, name in zip(RUNS, ("MultiMix", "The labels-only baseline")):
        below = [str(r["seed"]) for r in records if r[run]["metrics"]["test/acc"] <= majority]
        if below:
            sentences.append(f"{name} is no more accurate than always predicting the majority class ({majority:.3f}) "
                             f"in seed(s) {', '.join(below)}.")
    flagged = [f"{run} seed {r['seed']}" for r in records for run in RUNS if one_class(r[run]["metrics"])]
    sentences.append("Runs whose test predictions are all one class: " + "; ".join(flagged) + "." if flagged
                     else "No run predicts one class for every test image.")
    return " ".join(sentences)


def report(args: argparse.Namespace, cfg: DictConfig, records: list[dict], summary: str, test_labels: list[int],
           seconds: float, loads: tuple[float, float]) -> str:
    """The markdown report."""
    chosen = SETS[args.classification]
    quick = " (`--quick` smoke check, not a measurement)" if args.quick else ""
    where = "the LIGHTNING_SSL_ZOO store" if args.publish else f"the work folder's store (`{args.workdir / 'zoo'}`)"
    majority = np.bincount(test_labels).max() / len(test_labels)
    keys = classification_keys(records)
    recorded = sum(record[run]["seconds"] for record in records for run in RUNS)
    return f"""# MultiMix on {chosen.title} + real lung masks vs the labels-only baseline{quick}

MultiMix (`make pretrain METHOD=multimix ARGS="config={chosen.config}"`) trains one U-Net on two datasets: pneumonia \
classification from a pooled + dense branch on the encoder (cross-entropy on the labeled images, FixMatch \
pseudo-labels at threshold {cfg.method.threshold} on the unlabeled ones, weight {cfg.method.lambda_unlabeled}) and lung \
segmentation from the decoder (Dice x {cfg.method.alpha_dice}, KL mask consistency x {cfg.method.beta_consistency}, \
saliency bridge). The baseline is the same network, config, initial weights, optimiser and number of steps trained on \
batches of the labeled classification images only (no unlabeled data, no segmentation). Both are scored at their last \
step, without checkpoint selection or validation, on the classification set's test split; segmentation is scored for \
MultiMix only, on the one held-out test X-ray, so those figures are an anecdote, not a measurement. Seed k draws the \
labeled subset, the initial weights (shared by both runs of a seed) and the batch order; the split is fixed.

{header(seconds, loads, f"; the recorded runs took {recorded / 60:.1f} min in all, over every attempt")}
- Data: {summary}; images resized to {args.size}x{args.size}; always predicting the test split's majority class scores \
an accuracy of {majority:.3f}{file_origin(args)}
- Training: {steps(args)} steps each, seeds {", ".join(str(r["seed"]) for r in records)}, batch {cfg.data.batch_size} \
per stream, {cfg.network.name} {list(cfg.network.features)} ({cfg.network.norm} norm, {cfg.network.act}), \
{cfg.optim.name} lr {cfg.optim.lr}, scheduler {cfg.optim.scheduler}; torch {args.threads} thread(s) (`--threads`: on \
two busy cores two threads made a 64 px MultiMix step about ten times slower, its small ops waiting on each other)
- Zoo: each seed's MultiMix encoder + decoder were published as `multimix_{args.classification}_xray_s<seed>` to {where}

Classification (test split, mean ± std over {len(records)} seed(s)):

{summary_table(records, keys)}

Per seed:

{seed_table(records)}

Segmentation (the held-out test X-ray; average Hausdorff in pixels at {args.size} px):

{segmentation_table(records)}

{verdict(records, test_labels)}
"""


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classification", choices=sorted(SETS), default="pneumoniamnist", help="the labeled chest X-ray set")
    parser.add_argument("--classification-data", default=None, help="its folder (default: the set's folder in ../shared/data)")
    parser.add_argument("--segmentation-data", default="../shared/data/xray_lung_seg", help="folder of N.jpg + N-mask.png")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--seeds", type=int, default=1, help="how many seeds (seed, seed + 1, ...)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (both datasets are resized to it)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--workdir", default=None, help="runs, cache and finished seeds (default results/work/multimix_<set> "
                        "with --write, its records committed; else runs/benchmarks/multimix_<set>)")
    parser.add_argument("--resume", action="store_true", help="keep the seeds an earlier attempt finished in the work folder")
    parser.add_argument("--write", action="store_true", help="write the committed report results/multimix_<set>.md")
    parser.add_argument("--output", default=None, help="write the report here instead")
    parser.add_argument("--publish", action="store_true", help="publish to the LIGHTNING_SSL_ZOO store, not the work folder's")
    parser.add_argument("--quick", action="store_true", help=f"smoke check: {QUICK_STEPS} steps per run")
    args = parser.parse_args()
    args.classification_data = args.classification_data or SETS[args.classification].root
    args.workdir = work_path(f"multimix_{args.classification}", args.write, args.workdir)
    return args


def main() -> None:
    """Train both runs per seed, score them and write the report."""
    args = parse_args()
    torch.set_num_threads(args.threads)
    marker = from_repo(args.classification_data) / SETS[args.classification].marker
    for path in (marker, from_repo(args.segmentation_data) / "1-mask.png"):
        if not path.exists():
            sys.exit(f"real data not found: {path} is absent (see --help for the data options)")
    args.workdir.mkdir(parents=True, exist_ok=True)
    done_file = args.workdir / DONE_FILE
    if not args.resume:
        done_file.unlink(missing_ok=True)
    finished = {r["seed"]: r for r in map(json.loads, done_file.read_text().splitlines())} if done_file.is_file() else {}
    setting = recorded_setting(args)
    for record in finished.values():
        if record.get("setting") != setting:
            sys.exit(f"--resume: seed {record['seed']} in {done_file} was trained with {record.get('setting')}, not "
                     f"{setting}; use another --workdir, or leave --resume out to start over")
    start, load_start = time.perf_counter(), os.getloadavg()[0]
    records, datamodule = [], None
    for seed in range(args.seed, args.seed + args.seeds):
        output_dir = args.workdir / f"seed_{seed}"
        cfg = run_config(args, seed, output_dir / "runs", None if args.publish else args.workdir / "zoo")
        if seed not in finished:
            datamodule = prepared(cfg)
            finished[seed] = {"seed": seed, "setting": setting, "MultiMix": run_multimix(cfg, datamodule),
                              "labels only": run_labels_only(cfg, datamodule, output_dir)}
            with done_file.open("a") as handle:
                handle.write(json.dumps(finished[seed]) + "\n")
        records.append(finished[seed])
        scores = ", ".join(f"{run} AUC {finished[seed][run]['metrics']['test/auc']:.3f}" for run in RUNS)
        print(f"seed {seed}: {scores} ({(time.perf_counter() - start) / 60:.1f} min)", flush=True)
    summary, test_labels = data_summary(args, datamodule or prepared(cfg))  # the split and counts are the same for every seed
    loads = (load_start, os.getloadavg()[0])
    text = report(args, cfg, records, summary, test_labels, time.perf_counter() - start, loads)
    output = report_path(f"multimix_{args.classification}.md", args.write, args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(text)
    print(f"report written to {output}")


if __name__ == "__main__":
    main()
