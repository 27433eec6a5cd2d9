"""Fine-tuning: a task network from scratch or from a zoo entry, trained on the labeled budget, kept at its best
validation score and scored on the test split."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lightning_ssl import zoo
from lightning_ssl.config import registered
from lightning_ssl.data.base import BaseDataModule
from lightning_ssl.errors import ConfigError
from lightning_ssl.methods.base import BaseMethod
from lightning_ssl.registry import DATASETS, METHODS
from lightning_ssl.train.folders import ResumeTarget
from lightning_ssl.train.run import Run, open_run

log = logging.getLogger(__name__)

TEST_METRICS = "test_metrics.json"
ZOO_PREFIX = "zoo:"
# architecture arguments that come from the data and the task, not from the zoo entry
DATA_ARGUMENTS = ("spatial_dims", "in_channels", "out_channels")


@dataclass
class FinetuneResult:
    """Where a fine-tuning run wrote its outputs, and the best checkpoint's metrics on the test and validation splits.

    ``validation`` (``val/*``, and the last ``train/*``) is what a hyper-parameter search may choose on;
    ``metrics`` (``test/*``) is what it reports.
    """

    run_dir: Path
    best_checkpoint: Path | None
    init: dict[str, Any]
    metrics: dict[str, float]
    validation: dict[str, float]


def zoo_entry(init: str) -> str | None:
    """The entry ``method.init`` names (``zoo:NAME`` or ``zoo:NAME@vK``), None for ``scratch``; ConfigError otherwise."""
    if init == "scratch":
        return None
    reference = init[len(ZOO_PREFIX) :] if init.startswith(ZOO_PREFIX) else ""
    try:
        zoo.store.parse_ref(reference)
    except ValueError:
        raise ConfigError(f"method.init={init!r} is neither 'scratch' nor 'zoo:NAME' (e.g. zoo:simclr_pneumoniamnist)") from None
    return reference


def pretrain_command(name: str, cfg: DictConfig) -> str:
    """The ``make pretrain`` command that publishes zoo entry ``name`` to ``cfg``'s store (``<method>_<data>`` is the
    name a run publishes by default; another name is chosen with ``zoo.name``)."""
    words = [f"zoo.name={name}"]
    for method in sorted(METHODS.names(), key=len, reverse=True):
        data = name.removeprefix(f"{method}_")
        if data != name and data in DATASETS.names():
            words = [f"METHOD={method}", f"DATA={data}"]
            if data == cfg.data.name and cfg.data.get("root"):
                words.append(f"data.root={cfg.data.root}")
            break
    else:
        words = ["METHOD=<method>", "DATA=<data>", *words]
    if cfg.zoo.store:
        words.append(f"zoo.store={cfg.zoo.store}")
    return " ".join(["make pretrain", *words])


def with_entry_network(cfg: DictConfig, datamodule: BaseDataModule) -> DictConfig:
    """``cfg`` with the network of the zoo entry ``method.init`` names (scratch keeps its own), checked against the data."""
    entry = zoo_entry(cfg.method.init)
    if entry is None:
        return cfg
    try:
        architecture = zoo.metadata(entry, store=cfg.zoo.store)["architecture"]
    except zoo.ZooNotFoundError:
        name, _ = zoo.store.parse_ref(entry)
        if zoo.store.versions(name, cfg.zoo.store):
            raise
        raise ConfigError(
            f"method.init=zoo:{entry}: no entry {name!r} in the zoo store {zoo.store.store_root(cfg.zoo.store)}; "
            f"pretrain it first: {pretrain_command(name, cfg)}"
        ) from None
    kwargs = dict(architecture.get("kwargs", {}))
    info = datamodule.info
    for key in ("spatial_dims", "in_channels"):
        if key in kwargs and kwargs[key] != getattr(info, key):
            raise ConfigError(f"zoo entry {entry!r} was trained with {key}={kwargs[key]} but the data has {getattr(info, key)}")
    name = architecture["name"]
    node = OmegaConf.structured(registered("network", name).Config(name=name))
    given = {key: value for key, value in kwargs.items() if key not in DATA_ARGUMENTS}
    unknown = sorted(set(given) - set(node))
    if unknown:
        raise ConfigError(f"zoo entry {entry!r}: its architecture {name!r} has arguments {unknown} that this version does not know")
    cfg = cfg.copy()
    cfg.network = OmegaConf.merge(node, given)
    return cfg


def load_pretrained(method: BaseMethod, cfg: DictConfig) -> dict[str, Any]:
    """Copy the zoo entry's encoder (and, when the task trains one, the decoder where shapes fit) into the method's
    network; what was loaded."""
    entry = zoo_entry(cfg.method.init)
    if entry is None:
        return {"init": "scratch"}
    store = cfg.zoo.store
    report = {"init": entry, "encoder": str(zoo.load_into(method.network.encoder, entry, part="encoder", store=store))}
    if method.uses_decoder(method.cfg.method):
        try:
            weights = zoo.load(entry, part="decoder", store=store).state_dict()
        except zoo.ZooError as error:
            log.warning("the decoder starts from scratch: %s", error)
            report["decoder"] = "scratch (the entry has no decoder)"
        else:
            own = method.network.decoder.state_dict()
            fitting = {k: v for k, v in weights.items() if k in own and v.shape == own[k].shape}
            method.network.decoder.load_state_dict(fitting, strict=False)
            skipped = sorted(set(own) - set(fitting))
            report["decoder"] = f"{len(fitting)} keys loaded, {len(skipped)} from scratch {skipped}"
    log.info("initialised from the zoo: %s", report)
    return report


def finetune(cfg: DictConfig, resume: ResumeTarget | None = None) -> FinetuneResult:
    """Train ``cfg.method`` (``finetune``) on the labeled budget, keep the best on the monitored validation metric,
    score the test split; the test metrics go to ``run_dir/test_metrics.json`` and the logger."""
    zoo_entry(cfg.method.init)
    monitor = registered("method", cfg.method.name).monitored(cfg.method)
    with open_run(cfg, resume, monitor=monitor, prepare=with_entry_network) as run:
        init = load_pretrained(run.method, run.cfg) if resume is None else {"init": f"resumed from {resume.checkpoint}"}
        run.trainer.fit(run.method, datamodule=run.datamodule, **run.fit_arguments())
        validation = {k: float(v) for k, v in run.trainer.callback_metrics.items() if v.numel() == 1}
        return _score_kept(run, run.best_or_last(), init, validation)


def score(cfg: DictConfig, resume: ResumeTarget | None = None) -> FinetuneResult:
    """Score a finished fine-tuning run's kept checkpoint again, without training: validation, then the test split
    (at the operating point that validation gives, ``method.threshold``), with this version's code and ``cfg`` (the
    run's saved config with the command's overrides); rewrites the run's ``test_metrics.json``."""
    if resume is None:
        raise ConfigError("score needs the fine-tuning run to score: resume=RUN_FOLDER, or resume=last with its output_dir")
    record_file = resume.run_dir / TEST_METRICS
    if not record_file.is_file():
        raise ConfigError(f"resume={cfg.resume}: {resume.run_dir} has no {TEST_METRICS}: only a finished fine-tuning run can be scored again")
    earlier = json.loads(record_file.read_text())
    kept = resume.run_dir / "checkpoints" / Path(str(earlier.get("checkpoint"))).name  # the run folder may have moved
    if not kept.is_file():
        raise ConfigError(f"resume={cfg.resume}: the kept checkpoint {kept} is missing")
    # the saved config already holds the zoo entry's network, and the weights come from the checkpoint: no zoo needed
    with open_run(cfg, resume, monitor=registered("method", cfg.method.name).monitored(cfg.method)) as run:
        return _score_kept(run, kept, earlier["init"], {})


def _score_kept(run: Run, best: Path | None, init: dict[str, Any], validation: dict[str, float]) -> FinetuneResult:
    """Validate ``best`` (which sets the test's operating point), score the test split with it, write the record."""
    trainer = run.trainer
    if best is not None:
        scored = trainer.validate(run.method, datamodule=run.datamodule, ckpt_path=str(best), verbose=False, weights_only=True)
        validation.update(scored[0] if scored else {})
    results = trainer.test(run.method, datamodule=run.datamodule, ckpt_path=str(best) if best else None, verbose=False, weights_only=True)
    metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
    if trainer.is_global_zero:
        record = {"init": init, "label_budget": run.cfg.data.label_budget, "checkpoint": str(best), "metrics": metrics}
        (run.directory / TEST_METRICS).write_text(json.dumps(record, indent=2, default=str))
    return FinetuneResult(run.directory, best, init, metrics, validation)
