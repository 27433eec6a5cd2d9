"""Command line: ``python -m lightning_ssl zoo [--store DIR] list | info NAME | publish CHECKPOINT NAME |
import-builtin NAME FILE | push NAME hf://USER/REPO | export NAME --format FORMAT DIR``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from lightning_ssl import zoo
from lightning_ssl.zoo.errors import ZooError


def main(argv: Sequence[str] | None = None) -> int:
    """Run one zoo command; return the exit status (errors are printed as one line on stderr)."""
    parser = argparse.ArgumentParser(prog="python -m lightning_ssl zoo", description="The lightning_ssl model zoo.")
    parser.add_argument("--store", default=None, help="store directory (default: $LIGHTNING_SSL_ZOO or ~/.cache/lightning_ssl/zoo)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the entries")
    show = commands.add_parser("info", help="print the model card of NAME or NAME@v<k>")
    show.add_argument("name")
    make = commands.add_parser("publish", help="publish the network of a Lightning checkpoint as NAME")
    make.add_argument("checkpoint")
    make.add_argument("name")
    bring = commands.add_parser(
        "import-builtin", help="install the official file of built-in NAME downloaded elsewhere (for machines offline)"
    )
    bring.add_argument("name")
    bring.add_argument("file")
    send = commands.add_parser("push", help="upload NAME (or NAME@v<k>) to the Hugging Face Hub repository hf://USER/REPO")
    send.add_argument("name")
    send.add_argument("target")
    out = commands.add_parser("export", help="write NAME as a MONAI bundle or an ONNX encoder into the new folder DIR")
    out.add_argument("name")
    out.add_argument("directory", metavar="DIR")
    # the formats are checked by zoo.export (one line naming them): importing it here would import torch for `zoo list`
    out.add_argument("--format", required=True, dest="fmt", metavar="FORMAT", help="monai-bundle or onnx")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "list":
            rows = zoo.list_entries(args.store, include_builtin=True)
            width = max((len(row["name"]) for row in rows), default=4)
            for row in rows:
                version = f"v{row['version']}" if row["version"] else "-"
                print(f"{row['name']:<{width}}  {version:<4}  {row['method'] or '-':<10}  {row['data'] or '-'}  [{row['source']}]")
        elif args.command == "info":
            print(zoo.info(args.name, args.store), end="")
        elif args.command == "push":
            commit = zoo.push(args.name, args.target, args.store)
            print(f"pushed {args.name} to {args.target} at commit {commit}; load it with zoo.load({args.target!r})")
        elif args.command == "export":
            print(zoo.export(args.name, args.fmt, args.directory, args.store))
        elif args.command == "import-builtin":
            print(zoo.import_builtin(args.name, args.file, args.store))
        else:
            print(zoo.publish(args.checkpoint, args.name, args.store))
    except (ZooError, ValueError, FileNotFoundError) as error:
        print(f"zoo: error: {error}", file=sys.stderr)
        return 1
    return 0
