"""One entry point: ``python -m lightning_ssl pretrain | finetune | sweep | config | check-data | zoo list|info|publish``.

Overrides are ``key=value`` or ``--key=value`` (as a W&B sweep agent passes them); ``METHOD=`` and
``DATA=`` are accepted as ``method=`` and ``data=``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from lightning_ssl.config import ConfigError, build_config, to_yaml, valid_keys
from lightning_ssl.data.errors import DataError

USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, DataError, FileNotFoundError)


def _pretrain(overrides: list[str]) -> int:
    from lightning_ssl.train import CONFIG_FILE, RUN_DIR_ENV, find_resume_dir, pretrain

    cfg = build_config(overrides)
    if cfg.resume:
        run_dir = Path(os.environ.get(RUN_DIR_ENV) or find_resume_dir(cfg.output_dir, cfg.run_name, cfg.resume))
        cfg = build_config([f"config={run_dir / CONFIG_FILE}", *overrides])
    result = pretrain(cfg)
    print(f"run folder: {result.run_dir}")
    if result.zoo_entry is not None:
        print(f"zoo entry:  {result.zoo_entry}  (python -m lightning_ssl zoo info {result.zoo_entry.parent.name})")
    return 0


def _finetune(overrides: list[str]) -> int:
    from lightning_ssl.train import TEST_METRICS, finetune

    cfg = build_config(overrides, defaults={"method": "finetune"})
    result = finetune(cfg)
    print(f"run folder: {result.run_dir}")
    for key, value in sorted(result.metrics.items()):
        print(f"{key}: {value:.4f}")
    print(f"metrics written to {result.run_dir / TEST_METRICS}")
    return 0


def _config(overrides: list[str], keys: bool) -> int:
    cfg = build_config(overrides)
    print("\n".join(valid_keys(cfg)) if keys else to_yaml(cfg))
    return 0


def _check_data(overrides: list[str]) -> int:
    from lightning_ssl.data import DATASETS
    from lightning_ssl.data.check import check_datamodule, format_summary

    cfg = build_config(overrides)
    datamodule = DATASETS[cfg.data.name](cfg.data)
    # a DataModule made of several (data=multitask) is checked one part at a time
    parts = getattr(datamodule, "tasks", None) or {"": datamodule}
    problems = False
    for task, part in parts.items():
        summary = check_datamodule(part)
        print(f"{task}: {format_summary(summary)}" if task else format_summary(summary))
        problems = problems or bool(summary.problems)
    return 1 if problems else 0


def _sweep(path: str, count: int | None, overrides: list[str]) -> int:
    from lightning_ssl.sweep import run_sweep

    results = run_sweep(path, count, overrides)
    return 0 if any(result.metric is not None for result in results) else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lightning_ssl", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("pretrain", help="pretrain a method on a dataset, then publish to the zoo", add_help=False)
    commands.add_parser(
        "finetune", help="train a task network from scratch or a zoo entry and score it on the test split", add_help=False
    )
    sweep = commands.add_parser(
        "sweep", help="run a W&B sweep file locally and offline: sweep FILE [--count N] [overrides for every run]", add_help=False
    )
    sweep.add_argument("file")
    sweep.add_argument("--count", type=int)
    config = commands.add_parser("config", help="print the resolved config (or --keys: every valid key)", add_help=False)
    config.add_argument("--keys", action="store_true")
    commands.add_parser(
        "check-data", help="read a dataset folder (data=NAME data.root=FOLDER) and summarise it before training", add_help=False
    )
    commands.add_parser("zoo", help="list | info NAME | publish CHECKPOINT NAME (see `zoo --help`)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; user errors print one line and return 2."""
    import zoo
    from zoo.cli import main as zoo_main

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    args, rest = _parser().parse_known_args(argv)
    try:
        if args.command == "pretrain":
            return _pretrain(rest)
        if args.command == "finetune":
            return _finetune(rest)
        if args.command == "sweep":
            return _sweep(args.file, args.count, rest)
        if args.command == "config":
            return _config(rest, args.keys)
        if args.command == "check-data":
            return _check_data(rest)
        return zoo_main(argv[1:])
    except (*USER_ERRORS, zoo.ZooError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
