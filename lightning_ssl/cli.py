"""One entry point: ``python -m lightning_ssl pretrain | finetune | score | sweep | config | check-data | zoo ...``.

Overrides are ``key=value`` or ``--key=value`` (as a W&B sweep agent passes them); ``METHOD=`` and ``DATA=`` are
accepted as ``method=`` and ``data=``. Heavy libraries are imported only when a command runs, so ``--help`` is quick.
"""

from __future__ import annotations

import argparse
import logging
import sys

from lightning_ssl.commands import COMMANDS, Command
from lightning_ssl.errors import ConfigError, one_line

EXIT_USER_ERROR = 2
EXIT_STOPPED = 143  # 128 + SIGTERM, what a scheduler expects of a job it stopped


def user_errors() -> tuple[type[Exception], ...]:
    """The errors a user can fix, shown as one line (imported when needed: they pull in torch)."""
    from lightning_ssl.errors import DataError
    from lightning_ssl.io.checkpoint import UnsafeCheckpointError
    from lightning_ssl.io.errors import ChecksumError, DownloadError
    from lightning_ssl.zoo.errors import ZooError

    return (ConfigError, DataError, FileNotFoundError, ZooError, ChecksumError, DownloadError, UnsafeCheckpointError)


def _run_command(command: Command, overrides: list[str]) -> int:
    from lightning_ssl.train import resumed_config

    cfg, resume = resumed_config(command.build(overrides), overrides, command.defaults, command.trains)
    if resume is not None:
        print(f"resuming run {resume.run_dir} from {resume.checkpoint}" if command.trains else f"scoring run {resume.run_dir}", flush=True)
    result = command.run(cfg, resume)
    print(f"run folder: {result.run_dir}")
    if getattr(result, "zoo_entry", None) is not None:
        print(f"zoo entry:  {result.zoo_entry}  (python -m lightning_ssl zoo info {result.zoo_entry.parent.name})")
    if command.defaults.get("method") == "finetune":
        from lightning_ssl.train import TEST_METRICS

        for key, value in sorted(result.metrics.items()):
            print(f"{key}: {value:.4f}")
        print(f"metrics written to {result.run_dir / TEST_METRICS}")
    return 0


def _config(overrides: list[str], keys: bool, verbose: bool) -> int:
    from lightning_ssl.config import build_config, to_yaml, valid_keys
    from lightning_ssl.help import describe_keys

    cfg = build_config(overrides)
    if verbose:
        print(describe_keys(cfg))
    else:
        print("\n".join(valid_keys(cfg)) if keys else to_yaml(cfg))
    return 0


def _check_data(overrides: list[str]) -> int:
    from lightning_ssl.config import build_config, registered
    from lightning_ssl.data.check import check_datamodule, format_summary

    cfg = build_config(overrides)
    datamodule = registered("data", cfg.data.name)(cfg.data)
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


def _help(command: str, topic: str | None, rest: list[str]) -> int:
    from lightning_ssl.help import command_help

    overrides = [word for word in rest if "=" in word]
    print(command_help(command, topic, overrides))
    return 0


# the zoo's subcommands (lightning_ssl.zoo.cli), written out here so that --help imports no torch
ZOO_COMMANDS = (
    "list",
    "info NAME",
    "publish CHECKPOINT NAME",
    "import-builtin NAME FILE",
    "push NAME hf://USER/REPO",
    "export NAME --format FORMAT DIR",
)
HELP_TOPIC = "--help [GROUP]: the config groups, or every key of GROUP (e.g. method, data, optim) with type, default, meaning"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lightning_ssl",
        description=__doc__.splitlines()[0],
        epilog="Each command takes key=value overrides; `python -m lightning_ssl COMMAND --help` lists its config groups.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS.values():
        commands.add_parser(command.name, help=command.summary, add_help=False)
    sweep = commands.add_parser(
        "sweep", help="run a W&B sweep file locally and offline: sweep FILE [--count N] [overrides for every run]", add_help=False
    )
    sweep.add_argument("file", nargs="?")
    sweep.add_argument("--count", type=int)
    config = commands.add_parser("config", help="print the resolved config (--keys: every valid key; --verbose: with types, defaults, meanings)", add_help=False)
    config.add_argument("--keys", action="store_true")
    config.add_argument("--verbose", action="store_true")
    commands.add_parser(
        "check-data", help="read a dataset folder (data=NAME data.root=FOLDER) and list every problem before training", add_help=False
    )
    commands.add_parser("zoo", help=f"the model zoo: {' | '.join(ZOO_COMMANDS)} (see `zoo --help`)", add_help=False)
    return parser


def _help_request(rest: list[str]) -> tuple[bool, str | None]:
    """Whether ``rest`` asks for help (``--help``, ``-h``, ``help``), and the topic after it."""
    for index, word in enumerate(rest):
        if word in ("--help", "-h"):
            following = rest[index + 1] if index + 1 < len(rest) and "=" not in rest[index + 1] else None
            return True, following
    return False, None


def main(argv: list[str] | None = None) -> int:
    """Run the command line; user errors print one line and return 2, a run stopped by SIGTERM returns 143."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args, rest = _parser().parse_known_args(argv)
    if args.command == "zoo":
        from lightning_ssl.zoo.cli import main as zoo_main

        return zoo_main(argv[1:])
    wants_help, topic = _help_request(rest)
    if wants_help:
        return _help(args.command, topic, rest)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command in COMMANDS:
            return _run_command(COMMANDS[args.command], rest)
        if args.command == "sweep":
            if args.file is None:
                raise ConfigError("sweep needs a sweep file: python -m lightning_ssl sweep FILE [--count N] [overrides]")
            return _sweep(args.file, args.count, rest)
        if args.command == "config":
            return _config(rest, args.keys, args.verbose)
        return _check_data(rest)
    except BaseException as error:
        if isinstance(error, user_errors()):
            print(f"error: {one_line(error)}", file=sys.stderr)
            return EXIT_USER_ERROR
        if type(error).__name__ not in ("TrainingStopped", "SIGTERMException"):
            raise
        print(f"{str(error) or 'stopped by SIGTERM'}: last.ckpt is saved; continue with the same command and resume=last", file=sys.stderr)
        return EXIT_STOPPED
