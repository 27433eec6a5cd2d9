"""MultiMix on real chest X-rays vs the same network trained on the class labels alone.

MultiMix: `make pretrain METHOD=multimix ARGS="config=experiments/data/xray_multitask_real.yaml"`, i.e. PneumoniaMNIST
with 100 class labels (the rest of its train split unlabeled, FixMatch) + the real X-rays of xray_lung_seg with lung
masks (Dice on the labeled mask, the KL consistency on the unlabeled image, the saliency bridge), at 64x64.
Baseline: the same method, config, initial weights (same seed), optimiser and number of steps, but every training batch
holds only the 100 labeled classification images: no unlabeled data and no segmentation. Both are scored at their last
step (no checkpoint selection) on the PneumoniaMNIST test split (accuracy, F1 per class, AUC) and MultiMix on the
held-out segmentation test image (Dice, Jaccard, average Hausdorff, SSIM, precision, recall).
Writes results/multimix.md. The MultiMix run publishes its encoder and decoder to a temporary zoo store, or to the
store of LIGHTNING_SSL_ZOO (default ~/.cache/lightning_ssl/zoo) with --publish.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import monai
import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import CombinedLoader

from lightning_ssl.config import build_config
from lightning_ssl.data import DATASETS
from lightning_ssl.data.medmnist import MD5, md5_file
from lightning_ssl.data.multitask import MultiTaskDataModule
from lightning_ssl.methods.multimix import MultiMixMethod
from lightning_ssl.train import build_trainer, pretrain

REPO = Path(__file__).resolve().parent.parent
REAL_PAIR = "experiments/data/xray_multitask_real.yaml"
PNEUMONIAMNIST = "pneumoniamnist.npz"
ZOO_NAME = "multimix_pneumoniamnist_xray"
QUICK_STEPS = 20
CLASSIFICATION = ("acc", "f1_normal", "f1_pneumonia", "f1", "auc")
SEGMENTATION = ("dice", "jaccard", "avg_hausdorff", "ssim", "precision", "recall")


@dataclass
class RunResult:
    """One training run: wall-clock seconds and its test metrics at the last step."""

    seconds: float
    metrics: dict[str, float]


def from_repo(path: str) -> Path:
    """``path`` as given when absolute, else relative to the repository root."""
    return Path(path) if Path(path).is_absolute() else REPO / path


def run_config(args: argparse.Namespace, output_dir: Path, zoo_store: Path | None) -> DictConfig:
    """MultiMix's default config on the real pair, for ``steps`` optimiser steps without validation."""
    store = [] if zoo_store is None else [f"zoo.store={zoo_store}"]
    return build_config(
        [
            "method=multimix",
            f"config={from_repo(REAL_PAIR)}",
            f"data.classification.root={from_repo(args.classification_data)}",
            f"data.segmentation.root={from_repo(args.segmentation_data)}",
            f"data.patch_size=[{args.size},{args.size}]",
            f"seed={args.seed}",
            f"data.seed={args.seed}",
            f"trainer.max_steps={steps(args)}",
            "trainer.max_epochs=-1",
            "trainer.limit_val_batches=0",
            "trainer.enable_progress_bar=false",
            f"output_dir={output_dir}",
            f"zoo.name={ZOO_NAME}",
            *store,
        ]
    )


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


def run_multimix(cfg: DictConfig, datamodule: MultiTaskDataModule) -> tuple[RunResult, Path | None, float | None]:
    """Train MultiMix through ``pretrain`` (published to the zoo); its test metrics, zoo entry and last pseudo-label rate."""
    start = time.perf_counter()
    result = pretrain(cfg)
    seconds = time.perf_counter() - start
    method = MultiMixMethod.load_from_checkpoint(result.last_checkpoint, map_location="cpu", weights_only=True)
    rate = last_logged(result.run_dir, "train/pseudo_label_rate")
    return RunResult(seconds, score_on_test(method, datamodule)), result.zoo_entry, rate


def run_labels_only(cfg: DictConfig, datamodule: MultiTaskDataModule, output_dir: Path) -> RunResult:
    """The same network, seed and steps trained on batches of the labeled classification images only."""
    pl.seed_everything(cfg.seed, workers=True)
    method = MultiMixMethod(OmegaConf.to_container(cfg, resolve=True), datamodule.info.as_dict())
    loader = CombinedLoader({"classification": {"labeled": datamodule.part_dataloader("classification", "labeled")}},
                            mode="max_size_cycle")
    trainer, _ = build_trainer(cfg, output_dir / "labels_only")
    start = time.perf_counter()
    trainer.fit(method, train_dataloaders=loader)
    return RunResult(time.perf_counter() - start, score_on_test(method, datamodule))


def file_origin(path: Path) -> str:
    """The file's md5 and whether it is the official MedMNIST file."""
    digest = md5_file(path)
    official = "the official 28 px file" if digest == MD5[path.name] else f"not the official file's {MD5[path.name]}"
    return f"md5 {digest}, {official}"


def data_summary(datamodule: MultiTaskDataModule) -> tuple[str, float]:
    """Images per part and split of both tasks as the DataModule holds them, and the test split's majority-class share."""
    parts = {f"{task}_{kind}": len(part) for task, kinds in datamodule.train_parts.items() for kind, part in kinds.items()}
    cls, seg = datamodule.tasks["classification"], datamodule.tasks["segmentation"]
    labels = np.asarray(cls.test_dataset.labels)
    majority = np.bincount(labels).max() / labels.size
    return (
        f"classification (PneumoniaMNIST): {parts['classification_labeled']} labeled + {parts.get('classification_unlabeled', 0):,} unlabeled "
        f"train images, {len(cls.val_dataset)} val, {len(cls.test_dataset)} test (majority class {majority:.3f} of test); "
        f"segmentation (xray_lung_seg): {parts['segmentation_labeled']} labeled + {parts.get('segmentation_unlabeled', 0)} unlabeled train "
        f"image(s), {len(seg.val_dataset)} val, {len(seg.test_dataset)} test"
    ), majority


def table(rows: dict[str, dict[str, float]], keys: tuple[str, ...]) -> str:
    """A markdown table: one row per run, one column per metric."""
    header = f"| run | {' | '.join(keys)} |\n|---|{'---|' * len(keys)}"
    lines = []
    for name, metrics in rows.items():
        values = " | ".join(format(metrics.get(f"test/{key}", float("nan")), ".3f") for key in keys)
        lines.append(f"| {name} | {values} |")
    return "\n".join([header, *lines])


def verdict(multimix: dict[str, float], baseline: dict[str, float], majority: float) -> str:
    """Sentences generated from the numbers: did MultiMix beat the labels-only baseline, and the majority class?"""
    sentences = []
    for key, label in (("acc", "test accuracy"), ("auc", "test AUC"), ("f1", "macro F1")):
        ours, theirs = multimix[f"test/{key}"], baseline[f"test/{key}"]
        outcome = "beat" if ours > theirs else "did not beat"
        difference = f"{ours:.3f} vs {theirs:.3f}, {ours - theirs:+.3f}"
        sentences.append(f"On {label}, MultiMix {outcome} the labels-only baseline ({difference}).")
    for name, metrics in (("MultiMix", multimix), ("The labels-only baseline", baseline)):
        if metrics["test/acc"] <= majority:
            sentences.append(f"{name} is no more accurate than always predicting the majority class ({majority:.3f}).")
    return " ".join(sentences)


def report(args: argparse.Namespace, cfg: DictConfig, results: dict[str, RunResult], summary: str, majority: float,
           rate: float | None, entry: Path | None, loads: tuple[float, float], total: float) -> str:
    """The markdown report."""
    command = shlex.join(["python", "benchmarks/multimix.py", *sys.argv[1:]])
    quick = " (`--quick` smoke check, not a measurement)" if args.quick else ""
    metrics = {name: result.metrics for name, result in results.items()}
    seg = {"MultiMix": metrics["MultiMix"]}
    where = f"`{entry}`" if args.publish and entry else "a temporary store (deleted; pass --publish to keep it)"
    rate_text = f"{rate:.2f}" if rate is not None else "not logged"
    return f"""# MultiMix on PneumoniaMNIST + real lung masks vs the labels-only baseline{quick}

MultiMix (`make pretrain METHOD=multimix ARGS="config={REAL_PAIR}"`) trains one U-Net on two datasets: pneumonia \
classification from a pooled + dense branch on the encoder (cross-entropy on the labeled images, FixMatch \
pseudo-labels at threshold {cfg.method.threshold} on the unlabeled ones, weight {cfg.method.lambda_unlabeled}) and lung \
segmentation from the decoder (Dice x {cfg.method.alpha_dice}, KL mask consistency x {cfg.method.beta_consistency}, \
saliency bridge). The baseline is the same network, config, initial weights, optimiser and number of steps trained on \
batches of the labeled classification images only (no unlabeled data, no segmentation). Both are scored at their last \
step, without checkpoint selection or validation, on the test split of the PneumoniaMNIST file; segmentation is scored \
for MultiMix only, on the one held-out test X-ray, so those figures are an anecdote, not a measurement.

- Date: {date.today().isoformat()}
- Command (from the repository root): `{command}`
- Data: {summary}; images resized to {args.size}x{args.size}
- PneumoniaMNIST file: `{args.classification_data}/{PNEUMONIAMNIST}`, {file_origin(from_repo(args.classification_data) / PNEUMONIAMNIST)}
- Training: {steps(args)} steps each, seed {args.seed}, batch {cfg.data.batch_size} per stream, \
{cfg.network.name} {list(cfg.network.features)} ({cfg.network.norm} norm, {cfg.network.act}), {cfg.optim.name} lr \
{cfg.optim.lr}, scheduler {cfg.optim.scheduler}
- Time: MultiMix {results["MultiMix"].seconds:.0f} s, labels-only {results["labels only"].seconds:.0f} s; whole benchmark \
{total:.0f} s
- Software: Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} thread(s)), \
pytorch-lightning {pl.__version__}, monai {monai.__version__}
- Machine: {os.cpu_count()} CPU cores ({platform.machine()}), no GPU, shared with other jobs: 1-minute load average \
{loads[0]:.2f} at the start, {loads[1]:.2f} at the end. Torch runs {torch.get_num_threads()} thread(s) (`--threads`): \
when this benchmark was written, two threads made a 64 px MultiMix step about ten times slower on the loaded machine \
(2.9 s vs 0.23 s), their small ops waiting on each other
- MultiMix's last logged pseudo-label rate (share of unlabeled images above the threshold): {rate_text}
- Zoo: the MultiMix encoder + decoder were published as `{ZOO_NAME}` to {where}

Classification (test split):

{table(metrics, CLASSIFICATION)}

Segmentation (the held-out test X-ray; average Hausdorff in pixels at {args.size} px):

{table(seg, SEGMENTATION)}

{verdict(metrics["MultiMix"], metrics["labels only"], majority)}
One seed and no repeats: differences of a point or two are within run-to-run noise.
"""


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (both datasets are resized to it)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--classification-data", default="../shared/data/pneumoniamnist", help="folder of pneumoniamnist.npz")
    parser.add_argument("--segmentation-data", default="../shared/data/xray_lung_seg", help="folder of N.jpg + N-mask.png")
    parser.add_argument("--output", default="results/multimix.md", help="relative paths are from the repo root")
    parser.add_argument("--publish", action="store_true", help="publish to the LIGHTNING_SSL_ZOO store, not a temporary one")
    parser.add_argument("--quick", action="store_true", help=f"smoke check: {QUICK_STEPS} steps per run")
    return parser.parse_args()


def main() -> None:
    """Train both runs, score them and write the report."""
    args = parse_args()
    torch.set_num_threads(args.threads)
    for folder, name in ((args.classification_data, PNEUMONIAMNIST), (args.segmentation_data, "1-mask.png")):
        if not (from_repo(folder) / name).is_file():
            sys.exit(f"real data not found: {from_repo(folder) / name} is absent (see --help for the data options)")
    start, load_start = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="multimix_benchmark_") as scratch:
        output_dir = Path(scratch)
        cfg = run_config(args, output_dir / "runs", None if args.publish else output_dir / "zoo")
        datamodule = DATASETS[cfg.data.name](cfg.data)
        datamodule.setup("fit")
        summary, majority = data_summary(datamodule)
        multimix, entry, rate = run_multimix(cfg, datamodule)
        results = {"MultiMix": multimix, "labels only": run_labels_only(cfg, datamodule, output_dir)}
    loads = (load_start, os.getloadavg()[0])
    text = report(args, cfg, results, summary, majority, rate, entry, loads, time.perf_counter() - start)
    output = from_repo(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
