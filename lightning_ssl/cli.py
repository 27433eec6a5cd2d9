"""One entry point: ``python -m lightning_ssl pretrain | config | zoo ...``.

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

USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, FileNotFoundError)


def _pretrain(overrides: list[str]) -> int:
    from lightning_ssl.train import CONFIG_FILE, RUN_DIR_ENV, find_resume_dir, pretrain

    cfg = build_config(overrides)
    if cfg.resume:
        run_dir = Path(os.environ.get(RUN_DIR_ENV) or find_resume_dir(cfg.output_dir, cfg.run_name, cfg.resume))
        cfg = build_config([f"config={run_dir / CONFIG_FILE}", *overrides])
    result = pretrain(cfg)
    if result.zoo_entry is not None:
        print(f"run folder: {result.run_dir}\nzoo entry:  {result.zoo_entry}")
    return 0


def _config(overrides: list[str], keys: bool) -> int:
    cfg = build_config(overrides)
    print("\n".join(valid_keys(cfg)) if keys else to_yaml(cfg))
    return 0


def _zoo(args: argparse.Namespace) -> int:
    import zoo

    if args.zoo_command == "list":
        entries = zoo.list(store=args.store)
        if not entries:
            print(f"the zoo at {zoo.store_root(args.store)} is empty; built-in names: {', '.join(sorted(zoo.BUILTIN))}")
        for entry in entries:
            print(f"{entry['name']:32s} v{entry['version']:<3} {entry.get('method') or '':10s} {entry.get('data') or ''}")
        return 0
    if args.zoo_command == "info":
        print(zoo.info(args.name, store=args.store))
        return 0
    entry = zoo.publish(args.checkpoint, args.name, store=args.store)
    print(f"published {args.name} at {entry}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lightning_ssl", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("pretrain", help="pretrain a method on a dataset, then publish to the zoo", add_help=False)
    config = commands.add_parser("config", help="print the resolved config (or --keys: every valid key)", add_help=False)
    config.add_argument("--keys", action="store_true")
    zoo_parser = commands.add_parser("zoo", help="list, show or publish zoo entries")
    zoo_parser.add_argument("--store", default=None, help="zoo store folder (default: $LIGHTNING_SSL_ZOO or ~/.cache/lightning_ssl/zoo)")
    zoo_commands = zoo_parser.add_subparsers(dest="zoo_command", required=True)
    zoo_commands.add_parser("list", help="entries in the store")
    info = zoo_commands.add_parser("info", help="print an entry's model card")
    info.add_argument("name")
    publish = zoo_commands.add_parser("publish", help="publish a Lightning checkpoint's encoder/decoder")
    publish.add_argument("checkpoint")
    publish.add_argument("name")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; user errors print one line and return 2."""
    import zoo

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    args, rest = _parser().parse_known_args(argv)
    try:
        if args.command == "pretrain":
            return _pretrain(rest)
        if args.command == "config":
            return _config(rest, args.keys)
        if rest:
            raise ConfigError(f"unexpected arguments {rest}")
        return _zoo(args)
    except (*USER_ERRORS, zoo.ZooError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
