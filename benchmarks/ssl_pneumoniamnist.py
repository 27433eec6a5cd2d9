"""Self-supervised pretraining on real PneumoniaMNIST, then a linear probe against the same network at random init.

For each method (default chen, simclr, byol): pretrain on the train split with the method's default config
(`make pretrain METHOD=<m> DATA=pneumoniamnist`), timed by wall clock, reading the per-epoch `val/loss` and the
online probe's `val/probe_acc` from the run's metrics.csv. Then the standard linear evaluation: freeze the encoder
(eval mode), extract pooled encoder features of the whole train and test splits, standardise them with the train
mean/std, fit a logistic regression on the train features (fixed hyper-parameters, never tuned on test) and report
test accuracy and AUC, for the pretrained encoder and for the same architecture at random initialisation.
Writes results/ssl_pneumoniamnist.md.
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
import torch.nn.functional as F
from omegaconf import DictConfig
from torchmetrics.classification import BinaryAUROC

from lightning_ssl.config import build_config
from lightning_ssl.data import DATASETS
from lightning_ssl.data.medmnist import MD5, md5_file
from lightning_ssl.methods import METHODS
from lightning_ssl.methods.base import BaseMethod
from lightning_ssl.train import pretrain

REPO = Path(__file__).resolve().parent.parent
DATA_FILE = "pneumoniamnist.npz"
PROBE_STEPS = 500
QUICK_PROBE_STEPS = 100
PROBE_LR = 1e-2
PROBE_WEIGHT_DECAY = 1e-4
FEATURE_BATCH = 512


@dataclass
class ProbeScore:
    """Test-split scores of the offline linear probe."""

    accuracy: float
    auc: float


@dataclass
class MethodResult:
    """What one method's pretraining and linear evaluation measured."""

    name: str
    epochs: int
    seconds: float
    val_loss_first: float
    val_loss_last: float
    online_probe_acc: float
    setup: str
    pretrained: ProbeScore
    random_init: ProbeScore


@dataclass
class DataSummary:
    """The data file as measured: images per split, majority-class share of the val and test splits, md5."""

    sizes: dict[str, int]
    majority: dict[str, float]
    md5: str


@dataclass
class Split:
    """One split's images (N, C, H, W) float in [0, 1] and integer class labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor


def from_repo(path: str) -> Path:
    """``path`` as given when absolute, else relative to the repository root."""
    return Path(path) if Path(path).is_absolute() else REPO / path


def run_config(method: str, data_root: Path, output_dir: Path, epochs: int, seed: int) -> DictConfig:
    """The method's default config on PneumoniaMNIST, for a short run writing into ``output_dir``."""
    return build_config(
        [
            f"method={method}",
            "data=pneumoniamnist",
            f"data.root={data_root}",
            f"trainer.max_epochs={epochs}",
            "trainer.enable_progress_bar=false",
            f"output_dir={output_dir}",
            "zoo.publish=false",
            "logger=csv",
            f"seed={seed}",
        ]
    )


def describe(cfg: DictConfig) -> str:
    """Network, optimiser and batch of a run's config, in a few words."""
    features = list(cfg.network.get("features", cfg.network.get("widths", [])))
    return f"{cfg.network.name} {features}, {cfg.optim.name} lr {cfg.optim.lr}, batch {cfg.data.batch_size}"


def validation_epochs(run_dir: Path) -> list[dict[str, float]]:
    """The ``val/*`` metrics of each validation epoch, read from the run's CSV log."""
    with (run_dir / "logs" / "version_0" / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return [{k: float(v) for k, v in row.items() if k.startswith("val/") and v} for row in rows if row.get("val/loss")]


def load_splits(cfg: DictConfig) -> tuple[Split, Split]:
    """The train and test splits as the run's DataModule prepares them (same resizing and [0, 1] scaling)."""
    datamodule = DATASETS[cfg.data.name](cfg.data)
    datamodule.setup("fit")
    train, test = datamodule.train_dataset, datamodule.test_dataset
    return Split(train.images.float().div(255), train.labels), Split(test.images.float().div(255), test.labels)


@torch.no_grad()
def extract_features(method: BaseMethod, images: torch.Tensor) -> torch.Tensor:
    """Pooled encoder features (N, F) of ``images`` with the method frozen in eval mode."""
    method.eval()
    return torch.cat([method.representation(batch) for batch in images.split(FEATURE_BATCH)])


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 steps: int, seed: int) -> ProbeScore:
    """Logistic regression on train features standardised with train statistics (full batch, Adam); test scores."""
    mean, std = train_x.mean(dim=0), train_x.std(dim=0)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    torch.manual_seed(seed)
    layer = torch.nn.Linear(train_x.shape[1], int(train_y.max()) + 1)
    optimizer = torch.optim.Adam(layer.parameters(), lr=PROBE_LR, weight_decay=PROBE_WEIGHT_DECAY)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(layer(train_x), train_y).backward()
        optimizer.step()
    with torch.no_grad():
        probs = layer(test_x).softmax(dim=1)
    accuracy = (probs.argmax(dim=1) == test_y).float().mean().item()
    return ProbeScore(accuracy, BinaryAUROC()(probs[:, 1], test_y).item())


def evaluate(method: BaseMethod, train: Split, test: Split, steps: int, seed: int) -> ProbeScore:
    """Linear-probe test scores of ``method``'s frozen encoder."""
    features = extract_features(method, train.images), extract_features(method, test.images)
    return linear_probe(features[0], train.labels, features[1], test.labels, steps, seed)


def run_method(name: str, data_root: Path, output_dir: Path, epochs: int, seed: int, probe_steps: int) -> MethodResult:
    """Pretrain ``name``, then probe its encoder and the same architecture at random initialisation."""
    cfg = run_config(name, data_root, output_dir, epochs, seed)
    start = time.perf_counter()
    result = pretrain(cfg)
    seconds = time.perf_counter() - start
    per_epoch = validation_epochs(result.run_dir)
    trained = METHODS[name].load_from_checkpoint(result.last_checkpoint, map_location="cpu", weights_only=True)
    torch.manual_seed(seed)
    untrained = METHODS[name](trained.hparams["config"], trained.hparams["data_info"])
    train, test = load_splits(cfg)
    return MethodResult(
        name=name,
        epochs=len(per_epoch),
        seconds=seconds,
        val_loss_first=per_epoch[0]["val/loss"],
        val_loss_last=per_epoch[-1]["val/loss"],
        online_probe_acc=per_epoch[-1]["val/probe_acc"],
        setup=describe(cfg),
        pretrained=evaluate(trained, train, test, probe_steps, seed),
        random_init=evaluate(untrained, train, test, probe_steps, seed),
    )


def data_summary(data_root: Path) -> DataSummary:
    """Images per split, the val and test majority-class shares and the file's md5."""
    path = data_root / DATA_FILE
    with np.load(path) as archive:
        labels = {split: archive[f"{split}_labels"].ravel() for split in ("train", "val", "test")}
    majority = {split: np.bincount(labels[split]).max() / labels[split].size for split in ("val", "test")}
    return DataSummary({split: len(values) for split, values in labels.items()}, majority, md5_file(path))


def table(results: list[MethodResult]) -> str:
    """The markdown results table, one row per method."""
    header = (
        "| method | epochs | time (s) | val loss first -> last | online probe val acc | linear-probe test acc (pretrained) "
        "| (random init) | test AUC (pretrained) | (random init) |\n|---|---|---|---|---|---|---|---|---|"
    )
    rows = [
        f"| {r.name} | {r.epochs} | {r.seconds:.0f} | {r.val_loss_first:.4f} -> {r.val_loss_last:.4f} | {r.online_probe_acc:.3f} "
        f"| {r.pretrained.accuracy:.3f} | {r.random_init.accuracy:.3f} | {r.pretrained.auc:.3f} | {r.random_init.auc:.3f} |"
        for r in results
    ]
    return "\n".join([header, *rows])


def enumerate_names(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def comparison(results: list[MethodResult], metric: str) -> str:
    """One sentence naming which methods beat their random-init baseline on ``metric`` (accuracy or auc)."""
    label = {"accuracy": "test accuracy", "auc": "test AUC"}[metric]
    diffs = {r.name: getattr(r.pretrained, metric) - getattr(r.random_init, metric) for r in results}
    better = [f"{name} ({diff:+.3f})" for name, diff in diffs.items() if diff > 0]
    not_better = [f"{name} ({diff:+.3f})" for name, diff in diffs.items() if diff <= 0]
    parts = []
    if better:
        parts.append(f"{enumerate_names(better)} {'beats its' if len(better) == 1 else 'beat their'} random-init baseline")
    if not_better:
        baseline = "" if better else f" beat {'its' if len(not_better) == 1 else 'their'} random-init baseline"
        parts.append(f"{enumerate_names(not_better)} did not{baseline}")
    return f"On linear-probe {label} (pretrained minus random init in brackets), {'; '.join(parts)}."


def notes(results: list[MethodResult], prior: float) -> str:
    """Plain sentences generated from the numbers: baselines beaten or not, majority class, identical baselines."""
    below_prior = [r.name for r in results if r.pretrained.accuracy <= prior]
    sentences = [comparison(results, "auc"), comparison(results, "accuracy")]
    if below_prior:
        names = enumerate_names(below_prior)
        sentences.append(f"The pretrained linear probe of {names} is no more accurate than always predicting the majority class.")
    else:
        sentences.append("Every pretrained linear probe is more accurate than always predicting the majority class.")
    if len(results) > 1 and len({(r.setup, r.random_init.accuracy, r.random_init.auc) for r in results}) == 1:
        sentences.append("The random-init scores are the same for every method: all build the same encoder from the same seed.")
    return " ".join(sentences)


def setups(results: list[MethodResult]) -> str:
    """The configs of the runs, written once when every method shares it."""
    if len({r.setup for r in results}) == 1:
        return f"{results[0].setup} for every method"
    return "; ".join(f"{r.name}: {r.setup}" for r in results)


def report(results: list[MethodResult], args: argparse.Namespace, data: DataSummary, loads: tuple[float, float],
           total: float) -> str:
    """The markdown report: intro, command, versions, machine, table and the comparison generated from the numbers."""
    epochs, probe_steps = schedule(args)
    command = shlex.join(["python", "benchmarks/ssl_pneumoniamnist.py", *sys.argv[1:]])
    official = "the official 28 px file" if data.md5 == MD5[DATA_FILE] else f"not the official 28 px file's {MD5[DATA_FILE]}"
    quick = " (`--quick` smoke check, not a measurement)" if args.quick else ""
    sizes = " / ".join(f"{n:,} {split}" for split, n in data.sizes.items())
    return f"""# Self-supervised pretraining on PneumoniaMNIST: linear probe vs random initialisation{quick}

Each method is pretrained with its default config (`make pretrain METHOD=<method> DATA=pneumoniamnist`) on the \
train split of the real PneumoniaMNIST: pediatric chest X-rays, normal vs pneumonia, 28x28 px grayscale, \
{sizes} images. It is a small, low-resolution set and these are short single-seed runs: the figures are as \
measured, not tuned results.

The validation loss and the online linear probe (trained during pretraining on detached pooled encoder features, \
scored on the val split) come from each run's metrics.csv. The linear evaluation then freezes the encoder (eval \
mode), extracts its pooled bottleneck features of the full train and test splits, standardises them with the train \
mean/std, fits a logistic regression on train (full batch, Adam lr {PROBE_LR}, weight decay {PROBE_WEIGHT_DECAY}, \
{probe_steps} steps, seed {args.seed}; fixed in the script, never tuned on test) and scores it on test. The random-init \
columns probe the same architecture, built from the same hyper-parameters after `torch.manual_seed({args.seed})`, untrained.

- Date: {date.today().isoformat()}
- Command (from the repository root): `{command}`
- Epochs {epochs}, seed {args.seed}; config: {setups(results)}
- Data: `{args.data}/{DATA_FILE}`, md5 {data.md5} ({official})
- Software: Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), \
pytorch-lightning {pl.__version__}, monai {monai.__version__}
- Machine: {os.cpu_count()} CPU cores ({platform.machine()}), no GPU, shared with other jobs: 1-minute load average \
{loads[0]:.2f} at the start, {loads[1]:.2f} at the end, so the times are noisy. Whole benchmark: {total:.0f} s
- Time (s) is the wall clock of `pretrain()`: data loading, training, validation and checkpoints
- Majority-class share (the accuracy of always predicting it): test {data.majority["test"]:.3f}; \
val {data.majority["val"]:.3f}, the reference for the online probe

{table(results)}

{notes(results, data.majority["test"])}
One seed and no repeats: differences of a point or two are within run-to-run noise.
"""


def schedule(args: argparse.Namespace) -> tuple[int, int]:
    """Pretraining epochs and linear-probe steps: the options, or the ``--quick`` smoke-check values."""
    return (1, QUICK_PROBE_STEPS) if args.quick else (args.epochs, PROBE_STEPS)


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["chen", "simclr", "byol"], choices=["chen", "simclr", "byol"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="results/ssl_pneumoniamnist.md", help="relative paths are from the repo root")
    parser.add_argument("--data", default="../shared/data/pneumoniamnist", help=f"folder of {DATA_FILE}, from the repo root")
    parser.add_argument("--quick", action="store_true", help=f"smoke check: 1 epoch, {QUICK_PROBE_STEPS} probe steps")
    return parser.parse_args()


def main() -> None:
    """Pretrain and probe every method, then write the report."""
    args = parse_args()
    data_root = from_repo(args.data)
    if not (data_root / DATA_FILE).is_file():
        sys.exit(f"PneumoniaMNIST not found: {data_root / DATA_FILE} is absent (pass --data FOLDER holding {DATA_FILE})")
    epochs, probe_steps = schedule(args)
    start, load_start = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="ssl_pneumoniamnist_") as output_dir:
        results = [run_method(name, data_root, Path(output_dir), epochs, args.seed, probe_steps) for name in args.methods]
    loads = (load_start, os.getloadavg()[0])
    text = report(results, args, data_summary(data_root), loads, time.perf_counter() - start)
    output = from_repo(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
