"""The label-efficiency matrix: a profile's parts, architecture groups and inits (``benchmarks/profiles/<name>.yaml``),
and the cells (init x budget) whose seeds' test metrics the runner fills in and the report reads."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

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
    # optional inits this attempt could not run, each with why (e.g. an official file the zoo could not fetch)
    left_out: dict[str, str] = field(default_factory=dict)

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

