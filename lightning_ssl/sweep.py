"""Run a W&B sweep file locally and offline: ``python -m lightning_ssl sweep FILE --count N``.

The file is the one ``wandb sweep FILE`` takes (method, metric, parameters, command). W&B's own search code
(the ``sweeps`` package: random, grid, bayes) picks each run's parameters from the previous runs' metric; each
run is an in-process ``pretrain`` or ``finetune`` (the ``command``'s subcommand) with the ``command``'s fixed
arguments and the parameters as ``--key=value`` (what ``${args}`` passes), logged by W&B offline unless
``WANDB_MODE`` or ``wandb.mode`` says otherwise. A fine-tuning sweep chooses on its validation metrics: the test
split is scored after each run but never searched on.
"""

from __future__ import annotations

import copy
import os
import random
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from lightning_ssl.commands import COMMANDS
from lightning_ssl.errors import ConfigError, one_line

METHODS = ("random", "grid", "bayes")
GOALS = ("minimize", "maximize")
ARG_MACROS = ("${args}", "${args_no_hyphens}", "${args_no_equals}")
PROGRAM_MACROS = ("${env}", "${interpreter}", "${program}")
PROGRAMS = ("lightning_ssl", "lightning-ssl")
INSTALL_HINT = "pip install 'lightning-ssl[wandb]'"


class SweepError(ConfigError):
    """A sweep file that cannot be run, with a message that says how to fix it."""


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file: the W&B sweep config and the fixed overrides every run gets."""

    path: Path
    name: str
    config: dict[str, Any]
    command: str
    fixed_args: tuple[str, ...]

    def build(self, args: Sequence[str]) -> Any:
        """A run's config, resolved as the CLI's ``command`` resolves it."""
        return COMMANDS[self.command].build(list(args))

    @property
    def method(self) -> str:
        """The method the sweep trains."""
        return self.config["method"]

    @property
    def metric(self) -> str:
        """The logged metric the sweep optimises."""
        return self.config["metric"]["name"]

    @property
    def goal(self) -> str:
        """``minimize`` or ``maximize`` (W&B's default: minimize)."""
        return self.config["metric"].get("goal", "minimize")


@dataclass
class SweepResult:
    """One run of a local sweep: its parameters, the sweep's metric (None if it failed) and where it wrote."""

    index: int
    parameters: dict[str, Any]
    metric: float | None
    run_dir: Path | None = None
    wandb_dir: Path | None = None
    error: str | None = None


def _require_wandb() -> None:
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise SweepError(f"the sweep runner logs with W&B: {INSTALL_HINT}") from None


def _search() -> Any:
    """W&B's search code, or a SweepError saying how to install it."""
    try:
        with warnings.catch_warnings():  # sweeps 0.3 uses pydantic v1-style config
            warnings.simplefilter("ignore")
            import sweeps
    except ImportError:
        raise SweepError(f"the sweep runner needs W&B's search code (the sweeps package): {INSTALL_HINT}") from None
    return sweeps


def agent_args(parameters: dict[str, Any]) -> list[str]:
    """The parameters as the W&B agent's ``${args}`` passes them: ``--key=value``."""
    return [f"--{key}={value}" for key, value in parameters.items()]


def _fixed_args(command: Any, origin: str) -> tuple[str, tuple[str, ...]]:
    """The subcommand (``pretrain`` or ``finetune``) of a sweep ``command`` and its fixed overrides: the words
    after it that are not macros."""
    example = "[${env}, python, -m, lightning_ssl, pretrain, ${args}]"
    words = [str(word) for word in command] if isinstance(command, list) else []
    start = next((i for i, word in enumerate(words) if word in COMMANDS), None)
    if start is None:
        raise SweepError(f"{origin}: command must run our pretrain or finetune with the agent's arguments, e.g. {example}")
    if not set(PROGRAMS) & set(words[:start]):
        raise SweepError(f"{origin}: command must run `python -m lightning_ssl {words[start]}`, e.g. {example}")
    macros = [word for word in words if word.startswith("${")]
    unknown = [macro for macro in macros if macro not in ARG_MACROS + PROGRAM_MACROS]
    if unknown:
        raise SweepError(f"{origin}: command macro {unknown[0]} is not read by our CLI; use ${{args}}")
    if not set(ARG_MACROS) & set(macros):
        raise SweepError(f"{origin}: command has no ${{args}}, so the agent would pass no parameters; e.g. {example}")
    return words[start], tuple(word for word in words[start + 1 :] if not word.startswith("${"))


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SweepError(f"sweep file {str(path)!r} does not exist")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SweepError(f"{path}: not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(spec, dict):
        raise SweepError(f"{path}: a sweep file is a mapping with method, metric, parameters and command")
    return spec


def _check_shape(spec: dict[str, Any], origin: str) -> None:
    """Method, metric and parameters are what the local runner can search (checked before W&B's schema)."""
    if spec.get("method") not in METHODS:
        raise SweepError(f"{origin}: unknown method {spec.get('method')!r}; the local runner supports {', '.join(METHODS)}")
    metric = spec.get("metric")
    if not isinstance(metric, dict) or not metric.get("name"):
        raise SweepError(f"{origin}: missing metric; add metric: {{name: val/loss, goal: minimize}}")
    if metric.get("goal", "minimize") not in GOALS:
        raise SweepError(f"{origin}: metric goal {metric['goal']!r} is not one of {', '.join(GOALS)}")
    parameters = spec.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        raise SweepError(f"{origin}: no parameters to search; add parameters: {{optim.lr: {{values: [0.001, 0.01]}}}}")
    for key, entry in parameters.items():
        if isinstance(entry, dict) and "parameters" in entry:
            raise SweepError(f"{origin}: parameter {key!r} is nested; write dotted keys such as {key}.lr instead")


def _check_schema(spec: dict[str, Any], origin: str) -> None:
    """The schema check that ``wandb sweep`` runs on a sweep config."""
    violations = _search().schema_violations_from_proposed_config(spec)
    if violations:
        raise SweepError(f"{origin}: not a valid W&B sweep config: {'; '.join(' '.join(v.split()) for v in violations)}")


def _check_keys(sweep: Sweep, extra_overrides: Sequence[str]) -> None:
    """Every parameter (each listed value, and one proposal) and fixed argument is a valid override of our config."""
    example = propose(sweep, [], SearchRandomness())
    if example is None:
        raise SweepError(f"{sweep.path}: the search proposes no run")
    for key, entry in sweep.config["parameters"].items():
        for value in entry.get("values", [example[key]]):
            args = [*sweep.fixed_args, *agent_args({**example, key: value}), *extra_overrides]
            try:
                sweep.build(args)
            except ConfigError as error:
                raise SweepError(f"{sweep.path}: parameter {key}={value!r}: {error}") from None


def load_sweep(path: str | Path, extra_overrides: Sequence[str] = ()) -> Sweep:
    """Read and validate a sweep file; every parameter key must be one of our config's keys."""
    path = Path(path)
    spec = _read(path)
    _check_shape(spec, str(path))
    _check_schema(spec, str(path))
    command, fixed = _fixed_args(spec.get("command"), str(path))
    sweep = Sweep(path, str(spec.get("name") or path.stem), spec, command, fixed)
    if command == "finetune" and sweep.metric.startswith("test/"):
        raise SweepError(
            f"{path}: metric {sweep.metric!r} would choose parameters on the test split; "
            f"search on a validation metric such as val/{sweep.metric[5:]}"
        )
    try:
        sweep.build([*fixed, *extra_overrides])
    except ConfigError as error:
        raise SweepError(f"{path}: command arguments and overrides {' '.join(fixed + tuple(extra_overrides))}: {error}") from None
    _check_keys(sweep, extra_overrides)
    return sweep


class SearchRandomness:
    """The search's own random streams; ``pretrain`` re-seeds the global ones, which would repeat proposals."""

    def __init__(self) -> None:
        self._python = random.Random().getstate()
        self._numpy = np.random.RandomState().get_state()
        self._saved: tuple[Any, Any] = (None, None)

    def __enter__(self) -> None:
        self._saved = (random.getstate(), np.random.get_state())
        random.setstate(self._python)
        np.random.set_state(self._numpy)

    def __exit__(self, *exc_info: object) -> None:
        self._python, self._numpy = random.getstate(), np.random.get_state()
        random.setstate(self._saved[0])
        np.random.set_state(self._saved[1])


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value (so ``str`` gives ``0.01``, as the agent passes it)."""
    return value.item() if isinstance(value, np.generic) else value


def _as_sweep_run(sweep: Sweep, result: SweepResult) -> Any:
    sweeps = _search()
    finished = result.metric is not None
    return sweeps.SweepRun(
        name=str(result.index),
        state=sweeps.RunState.finished if finished else sweeps.RunState.failed,
        config={key: {"value": value} for key, value in result.parameters.items()},
        summary_metrics={sweep.metric: result.metric} if finished else {},
    )


def propose(sweep: Sweep, results: Sequence[SweepResult], randomness: SearchRandomness) -> dict[str, Any] | None:
    """The next run's parameters from W&B's search given the runs so far; None when a grid is exhausted."""
    sweeps = _search()
    runs = [_as_sweep_run(sweep, result) for result in results]
    try:
        with randomness:
            suggestion = sweeps.next_run(copy.deepcopy(sweep.config), runs)
    except (ValueError, AssertionError) as error:
        raise SweepError(f"{sweep.path}: {sweep.method} search cannot use these parameters: {error}") from None
    if suggestion is None:
        return None
    return {key: _plain(entry["value"]) for key, entry in suggestion.config.items()}


@contextmanager
def _offline_wandb(group: str) -> Iterator[None]:
    """W&B offline and runs grouped under the sweep, unless the environment already says otherwise."""
    defaults = {"WANDB_MODE": "offline", "WANDB_RUN_GROUP": group}
    added = {key: value for key, value in defaults.items() if key not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def run_one(sweep: Sweep, index: int, parameters: dict[str, Any], extra_overrides: Sequence[str] = ()) -> SweepResult:
    """Run once with the sweep's fixed arguments and these parameters; a failure is recorded, not raised."""
    result = SweepResult(index, parameters, None)
    command = COMMANDS[sweep.command]
    try:
        cfg = sweep.build(["logger=wandb", *sweep.fixed_args, *agent_args(parameters), *extra_overrides])
        cfg.wandb.tags = [*cfg.wandb.tags, f"sweep-{sweep.name}"]
        # trials live beside, not among, the runs of their method and data, so resume=last never picks one
        cfg.run_name = f"{cfg.run_name}-sweep-{sweep.name}"
        outcome = command.run(cfg)
        result.run_dir = outcome.run_dir
        metrics = outcome.validation
        result.metric = metrics.get(sweep.metric)
        if result.metric is None:
            result.error = f"metric {sweep.metric!r} was not logged (logged: {', '.join(sorted(metrics)) or 'none'})"
    except Exception as error:  # noqa: BLE001 - a failed run is part of the sweep's outcome
        result.error = f"{type(error).__name__}: {one_line(error)}"
    if result.run_dir is not None:
        offline_runs = sorted((result.run_dir / "wandb").glob("*run-*"))
        result.wandb_dir = offline_runs[-1] if offline_runs else None
    return result


def _format_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _metric_cell(result: SweepResult) -> str:
    if result.metric is not None:
        return _format_value(result.metric)
    return "failed" if result.run_dir is None else "missing"


def best(sweep: Sweep, results: Sequence[SweepResult]) -> SweepResult | None:
    """The run with the best metric for the sweep's goal."""
    done = [result for result in results if result.metric is not None]
    if not done:
        return None
    pick = max if sweep.goal == "maximize" else min
    return pick(done, key=lambda result: result.metric)


def format_results(sweep: Sweep, results: Sequence[SweepResult]) -> str:
    """A table of the runs (parameters, metric or error, run folder) and the best run."""
    keys = list(sweep.config["parameters"])
    header = ["run", *keys, sweep.metric, "run folder"]
    rows = [
        [
            str(result.index),
            *(_format_value(result.parameters.get(key)) for key in keys),
            _metric_cell(result),
            str(result.run_dir or "-"),
        ]
        for result in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [f"sweep {sweep.name}: {sweep.method} search, {sweep.metric} ({sweep.goal})"]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines += [f"run {result.index} failed: {result.error}" for result in results if result.error]
    top = best(sweep, results)
    lines.append(f"best: run {top.index}, {sweep.metric}={_format_value(top.metric)}, {top.run_dir}" if top else "best: none")
    return "\n".join(lines)


def run_sweep(path: str | Path, count: int | None, extra_overrides: Sequence[str] = ()) -> list[SweepResult]:
    """Run up to ``count`` runs of a sweep file (a grid stops when exhausted), print the table, return the runs."""
    _require_wandb()
    sweep = load_sweep(path, extra_overrides)
    if count is None and sweep.method != "grid":
        raise SweepError(f"{sweep.method} search never runs out of parameters: give --count N")
    if count is not None and count < 1:
        raise SweepError(f"--count must be at least 1, not {count}")
    randomness = SearchRandomness()
    results: list[SweepResult] = []
    group = f"sweep-{sweep.name}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    with _offline_wandb(group):
        while count is None or len(results) < count:
            parameters = propose(sweep, results, randomness)
            if parameters is None:
                print(f"sweep {sweep.name}: the grid is exhausted after {len(results)} runs")
                break
            index = len(results) + 1
            print(f"sweep {sweep.name} run {index}: {' '.join(agent_args(parameters))}")
            results.append(run_one(sweep, index, parameters, extra_overrides))
    print(format_results(sweep, results))
    return results
