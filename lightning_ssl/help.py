"""Help on the command line: a command's config groups, and every key of a group with its type, default and meaning
(read from the structured configs: each field's type, its value in the resolved config, its class's docstring)."""

from __future__ import annotations

import dataclasses
import re
import textwrap
import typing
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lightning_ssl.schema import RunConfig

SELECTED = {"method": "the method (method=NAME)", "data": "the dataset (data=NAME)", "network": "the network (network=NAME)"}
USAGE = "python -m lightning_ssl {command} [key=value ...]"
USAGES = {
    "sweep": "python -m lightning_ssl sweep FILE [--count N] [key=value ...]  (the overrides apply to every run)",
    "config": "python -m lightning_ssl config [--keys] [--verbose] [key=value ...]",
    "check-data": "python -m lightning_ssl check-data data=NAME data.root=FOLDER [key=value ...]",
}


def field_descriptions(cls: type) -> dict[str, str]:
    """One line per field of a config dataclass, from its docstring's ``name``: text (or ``a``/``b``: text)."""
    text = " ".join((cls.__doc__ or "").split())
    found: dict[str, str] = {}
    for match in re.finditer(r"((?:``\w+``(?:/| and | or |, )?)+):? ([^`]*?)(?=(?:``\w+``[^`]*?:)|$)", text):
        names = re.findall(r"``(\w+)``", match.group(1))
        sentence = match.group(2).strip(" .;,").replace("``", "")
        for name in names:
            if sentence and name not in found:
                found[name] = sentence
    for base in cls.__mro__[1:]:
        if dataclasses.is_dataclass(base):
            found = {**field_descriptions(base), **found}
    return found


def _type_name(cls: type, name: str) -> str:
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - a hint that cannot be resolved is shown as written
        hints = {}
    hint = hints.get(name) or next((f.type for f in dataclasses.fields(cls) if f.name == name), "")
    if isinstance(hint, type):
        if issubclass(hint, str) and hasattr(hint, "__members__"):
            return " | ".join(hint.__members__)
        return hint.__name__
    return str(hint).replace("typing.", "").replace("NoneType", "None")


def describe_keys(cfg: DictConfig, prefix: str = "") -> str:
    """Every leaf key under ``cfg`` as ``key  type  default  meaning`` lines, grouped by node."""
    lines: list[str] = []
    cls = OmegaConf.get_type(cfg)
    meanings = field_descriptions(cls) if dataclasses.is_dataclass(cls) else {}
    if meanings or cls.__doc__:
        summary = _summary(cls) if dataclasses.is_dataclass(cls) else ""
        lines.append(f"{prefix.rstrip('.') or 'run'}: {summary}")
    for key in cfg.keys():
        node = cfg._get_node(key)
        dotted = f"{prefix}{key}"
        if isinstance(node, DictConfig) and not node._is_none():
            lines.append("")
            lines.append(describe_keys(node, dotted + "."))
            continue
        value = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)[key] if cfg else None
        kind = _type_name(cls, str(key)) if dataclasses.is_dataclass(cls) else type(value).__name__
        meaning = meanings.get(str(key), "")
        lines.append(f"  {dotted} ({kind}, default {value!r}){': ' + meaning if meaning else ''}")
    return "\n".join(lines)


def command_help(command: str, topic: str | None, overrides: list[str] | None = None) -> str:
    """Help of one command: its config groups, or (``topic``) every key of one group."""
    if topic is None:
        return _groups(command)
    from lightning_ssl.commands import COMMANDS
    from lightning_ssl.config import build_config

    cfg = build_config(overrides or [], COMMANDS[command].defaults if command in COMMANDS else None)
    if topic not in cfg:
        return f"no config group {topic!r}; groups: {', '.join(str(k) for k in cfg.keys())}"
    node = cfg._get_node(topic)
    return describe_keys(node, f"{topic}.") if isinstance(node, DictConfig) else describe_keys(cfg).split("\n", 1)[0]


def _groups(command: str) -> str:
    from lightning_ssl.config import REGISTRIES

    usage = USAGES.get(command, USAGE.format(command=command))
    lines = [f"usage: {usage}", "", "config groups (`--help GROUP` lists each key of a group):"]
    for field in dataclasses.fields(RunConfig):
        if field.name in SELECTED:
            choices = ", ".join(REGISTRIES[field.name].names())
            lines.append(f"  {field.name:<15} {SELECTED[field.name]}: {choices}")
        else:
            meaning = field_descriptions(RunConfig).get(field.name) or _class_summary(field)
            lines.append(f"  {field.name:<15} {meaning}")
    lines += ["", textwrap.fill("Examples: `make pretrain METHOD=byol DATA=pneumoniamnist data.root=...`, "
                                "`python -m lightning_ssl config --keys --verbose method=simclr`.", 100)]
    return "\n".join(lines)


def _class_summary(field: dataclasses.Field) -> str:
    default: Any = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default  # type: ignore[misc]
    if dataclasses.is_dataclass(default):
        return _summary(type(default))
    return f"default {str(default) if isinstance(default, str) else repr(default)}"


def _summary(cls: type) -> str:
    """The first sentence of a class's docstring, without markup."""
    return " ".join((cls.__doc__ or "").split()).split(". ")[0].rstrip(".").replace("``", "")
