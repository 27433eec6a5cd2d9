"""Structured run configuration: every default lives in these dataclasses.

A run's config is built from, in order: the dataclass defaults, ``experiments/pretrain/<method>.yaml``,
``experiments/data/<data>.yaml``, an optional user YAML (``config=path.yaml``), and command-line
overrides written ``key=value`` or ``--key=value`` (what a W&B sweep agent passes). The ``method``,
``data`` and ``network`` nodes take their schema from the class registered under their name.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"
SELECTORS = ("method", "data", "network")
DEFAULT_SELECTION = {"method": "genesis", "data": "phantom_ct"}


class ConfigError(ValueError):
    """A configuration that cannot be used, with a message that says how to fix it."""


@dataclass
class MethodConfig:
    """Fields every method has.

    ``online_probe``: when the data has class labels, train a linear classifier on the detached
    pooled encoder features (its own learning rate ``probe_lr``) and log its validation accuracy.
    """

    name: str = "???"
    log_images_every_n_epochs: int = 1
    online_probe: bool = True
    probe_lr: float = 0.01


@dataclass
class DataConfig:
    """Fields every DataModule has.

    ``label_budget``: how many training labels to keep (None or "all", a fraction in (0, 1] such as
    0.1, a percentage "10%", or a count such as 100), stratified by class and nested across budgets
    for one ``seed``; the rest of the training split is the unlabeled pool. ``cache``: none, memory
    (MONAI CacheDataset, ``cache_rate`` of the items) or disk (MONAI PersistentDataset in ``cache_dir``).
    """

    name: str = "???"
    root: Optional[str] = None
    spatial_dims: int = 3
    patch_size: list[int] = field(default_factory=lambda: [64, 64, 32])
    batch_size: int = 6
    num_workers: int = 0
    seed: int = 0
    label_budget: Any = None
    cache: str = "none"
    cache_rate: float = 1.0
    cache_dir: Optional[str] = None


@dataclass
class UNetConfig:
    """The 2D/3D U-Net built from MONAI blocks (``lightning_ssl.models.UNet``)."""

    name: str = "unet"
    features: list[int] = field(default_factory=lambda: [8, 16, 32, 64])
    norm: str = "instance"
    act: str = "relu"
    dropout: float = 0.0
    residual: bool = False


@dataclass
class GenesisUNetConfig:
    """The Models Genesis 3D U-Net layout (loads the official weights)."""

    name: str = "genesis_unet3d"


@dataclass
class ResNetConfig:
    """A 2D/3D ResNet encoder (MONAI ResNet stages); for contrastive methods, no decoder.

    The default stem (3x3, stride 1, no max-pool) keeps detail in small images (28-64 px); use
    ``stem_kernel=7 stem_stride=2 max_pool=true`` for the ImageNet stem on large images.
    """

    name: str = "resnet"
    depth: int = 18
    widths: list[int] = field(default_factory=lambda: [64, 128, 256, 512])
    stem_kernel: int = 3
    stem_stride: int = 1
    max_pool: bool = False
    norm: str = "batch"


NETWORK_CONFIGS: dict[str, type] = {"unet": UNetConfig, "genesis_unet3d": GenesisUNetConfig, "resnet": ResNetConfig}


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule."""

    name: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    scheduler: str = "none"
    step_size: int = 10
    gamma: float = 0.5
    warmup_steps: int = 0


@dataclass
class TrainerConfig:
    """Arguments of ``pytorch_lightning.Trainer``."""

    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    max_epochs: int = 10
    max_steps: int = -1
    gradient_clip_val: Optional[float] = None
    accumulate_grad_batches: int = 1
    log_every_n_steps: int = 10
    check_val_every_n_epoch: Optional[int] = 1
    val_check_interval: Optional[Any] = None
    limit_train_batches: Optional[float] = None
    limit_val_batches: Optional[float] = None
    enable_progress_bar: bool = True
    deterministic: bool = False
    sync_batchnorm: bool = False


@dataclass
class EarlyStoppingConfig:
    """Stop when the monitored validation metric stops improving (``patience=0`` turns it off)."""

    monitor: str = "val/loss"
    patience: int = 0


@dataclass
class WandbConfig:
    """Weights & Biases logger settings (``logger=wandb``)."""

    project: str = "lightning-ssl"
    entity: Optional[str] = None
    mode: Optional[str] = None
    tags: list[str] = field(default_factory=list)


@dataclass
class ZooConfig:
    """Publishing the pretrained encoder/decoder at the end of a run."""

    publish: bool = True
    name: Optional[str] = None
    store: Optional[str] = None


@dataclass
class RunConfig:
    """A whole run: method, data, network, optimiser, trainer, logging, zoo."""

    method: Any = None
    data: Any = None
    network: Any = None
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    logger: str = "csv"
    wandb: WandbConfig = field(default_factory=WandbConfig)
    zoo: ZooConfig = field(default_factory=ZooConfig)
    seed: int = 42
    output_dir: str = "runs"
    run_name: Optional[str] = None
    resume: Optional[str] = None


LOGGERS = ("csv", "tensorboard", "wandb", "none")


def normalise_overrides(args: list[str]) -> list[str]:
    """Turn ``--key=value``, ``--key value``, ``KEY=value`` (METHOD/DATA) into ``key=value`` items."""
    items: list[str] = []
    pending: str | None = None
    for arg in args:
        if pending is not None:
            items.append(f"{pending}={arg}")
            pending = None
            continue
        text = arg[2:] if arg.startswith("--") else arg
        if "=" not in text:
            if arg.startswith("--"):
                pending = text
                continue
            raise ConfigError(f"cannot read argument {arg!r}: write overrides as key=value or --key=value")
        key, value = text.split("=", 1)
        key = key.lower() if key.isupper() else key
        items.append(f"{key}={value}")
    if pending is not None:
        raise ConfigError(f"--{pending} needs a value: write --{pending}=VALUE")
    return items


def _load_yaml(path: Path, required: bool = False) -> DictConfig:
    if not path.is_file():
        if required:
            raise ConfigError(f"config file {str(path)!r} does not exist")
        return OmegaConf.create({})
    loaded = OmegaConf.load(path)
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"{path} must hold a mapping of config keys")
    return loaded


def _registries() -> dict[str, dict[str, type]]:
    from lightning_ssl.data import DATASETS
    from lightning_ssl.methods import METHODS

    return {
        "method": {name: cls.Config for name, cls in METHODS.items()},
        "data": {name: cls.Config for name, cls in DATASETS.items()},
        "network": NETWORK_CONFIGS,
    }


def _selected(node: str, sources: list[DictConfig], default: str) -> str:
    """The name chosen for a selector node: the last source that names it wins."""
    name = default
    for source in sources:
        value = OmegaConf.select(source, f"{node}.name", default=None)
        if value is None and isinstance(source.get(node, None), str):
            value = source[node]
        if value is not None:
            name = str(value)
    return name


def valid_keys(config: DictConfig, prefix: str = "") -> list[str]:
    """Every dotted key of a config, leaves and nodes."""
    keys = []
    for key in config.keys():
        dotted = f"{prefix}{key}"
        keys.append(dotted)
        child = config._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none():
            keys.extend(valid_keys(child, dotted + "."))
    return keys


def _suggestions(key: str, candidates: list[str]) -> list[str]:
    """Valid keys close to ``key``: by the whole dotted name, else by the last part."""
    close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.6)
    if close:
        return close
    leaf = key.rsplit(".", 1)[-1]
    return [c for c in candidates if difflib.get_close_matches(leaf, [c.rsplit(".", 1)[-1]], cutoff=0.75)][:3]


def _check_keys(root: DictConfig, node: DictConfig, overrides: DictConfig, origin: str, prefix: str = "") -> None:
    """Raise a ConfigError naming the first key of ``overrides`` that ``node`` does not have."""
    for key in overrides.keys():
        dotted = f"{prefix}{key}"
        if key not in node:
            close = _suggestions(dotted, valid_keys(root))
            hint = f"; did you mean {' or '.join(close)}?" if close else "; `python -m lightning_ssl config` lists them"
            raise ConfigError(f"unknown config key {dotted!r} in {origin}{hint}")
        value, target = overrides._get_node(key), node._get_node(key)
        if isinstance(value, DictConfig) and isinstance(target, DictConfig) and not target._is_none():
            _check_keys(root, target, value, origin, dotted + ".")


def _select_registered(node: str, name: str, registry: dict[str, type]) -> type:
    if name not in registry:
        close = difflib.get_close_matches(name, list(registry), n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ConfigError(f"unknown {node} {name!r}; known: {', '.join(sorted(registry))}{hint}")
    return registry[name]


def build_config(args: list[str] | None = None, defaults: dict[str, str] | None = None) -> DictConfig:
    """Resolve a run's config from defaults, experiment YAMLs and command-line overrides."""
    items = normalise_overrides(list(args or []))
    selection = {**DEFAULT_SELECTION, **(defaults or {})}
    user_files = [item.split("=", 1)[1] for item in items if item.startswith("config=")]
    picked = {k: v for k, v in (item.split("=", 1) for item in items) if k in SELECTORS}
    cli = _dotlist([item for item in items if item.split("=", 1)[0] not in ("config", *SELECTORS)])
    user_layers = [(path, _load_yaml(Path(path), required=True)) for path in user_files]
    chosen_by_user = [layer for _, layer in user_layers] + [cli]
    method = picked.get("method") or _selected("method", chosen_by_user, selection["method"])
    method_layer = _load_yaml(EXPERIMENTS_DIR / _method_kind(method) / f"{method}.yaml")
    # a method's YAML may name its default data (``data: phantom_brain_mri``); the user's choice wins
    method_data = _selected("data", [method_layer], selection["data"]) if "data" not in (defaults or {}) else selection["data"]
    data = picked.get("data") or _selected("data", chosen_by_user, method_data)
    layers: list[tuple[str, DictConfig]] = [
        (f"experiments/{_method_kind(method)}/{method}.yaml", method_layer),
        (f"experiments/data/{data}.yaml", _load_yaml(EXPERIMENTS_DIR / "data" / f"{data}.yaml")),
        *user_layers,
        ("the command line", cli),
    ]
    sources = [layer for _, layer in layers]
    registries = _registries()
    names = {"method": method, "data": data, "network": picked.get("network") or _selected("network", sources, "unet")}
    schema = OmegaConf.structured(RunConfig)
    for node in SELECTORS:
        config_class = _select_registered(node, names[node], registries[node])
        schema[node] = OmegaConf.structured(config_class(name=names[node]))
    _nest_data_schemas(schema, sources, registries["data"])
    OmegaConf.set_struct(schema, True)
    merged = schema
    for origin, layer in layers:
        layer = _without_selector_strings(layer)
        _check_keys(schema, schema, layer, origin)
        try:
            merged = OmegaConf.merge(merged, layer)
        except (ValidationError, ConfigKeyError, ConfigAttributeError) as error:
            key = getattr(error, "full_key", None)
            where = f"for {key!r} " if key else ""
            raise ConfigError(f"invalid value {where}in {origin}: {_first_line(error)}") from None
    if merged.logger not in LOGGERS:
        raise ConfigError(f"logger={merged.logger!r} is not one of {', '.join(LOGGERS)}")
    if merged.run_name is None:
        merged.run_name = f"{merged.method.name}_{merged.data.name}"
    return merged


def _nest_data_schemas(schema: DictConfig, sources: list[DictConfig], registry: dict[str, type]) -> None:
    """Give each whole data config nested in the data config (``nested_data``: key -> default dataset) its dataset's schema.

    The dataset of ``data.<key>`` is chosen by ``data.<key>.name`` like the top-level selectors: the last source wins.
    """
    for key, default in getattr(registry[schema.data.name], "nested_data", {}).items():
        name = _selected(f"data.{key}", sources, default)
        schema.data[key] = OmegaConf.structured(_select_registered(f"data.{key}", name, registry)(name=name))


def _method_kind(method: str) -> str:
    """The experiments folder of a method's YAML: ``finetune`` for downstream training, else ``pretrain``."""
    return "finetune" if method == "finetune" else "pretrain"


def _dotlist(items: list[str]) -> DictConfig:
    try:
        return OmegaConf.from_dotlist(items)
    except Exception as error:  # OmegaConf raises several grammar error types
        raise ConfigError(f"cannot parse overrides {items}: {_first_line(error)}") from None


def _without_selector_strings(layer: DictConfig) -> DictConfig:
    """Drop ``method=name`` style entries; the selection already used them."""
    layer = layer.copy()
    for node in SELECTORS:
        if isinstance(layer.get(node, None), str):
            del layer[node]
    return layer


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]


def to_yaml(config: DictConfig | ListConfig) -> str:
    """The resolved config as YAML text."""
    return OmegaConf.to_yaml(config, resolve=True)
