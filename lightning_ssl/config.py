"""Resolving a run's config: the structured defaults, the method's recipe, the user's YAML files, the command line.

A run's config is built from, in order: the dataclass defaults (``lightning_ssl.schema`` and each method's,
dataset's and network's ``Config``), the method's recipe (the YAML file beside the method's module, e.g.
``lightning_ssl/methods/genesis.yaml``: optimiser, trainer length, default data), optional user YAML files
(``config=path.yaml``), and command-line overrides written ``key=value`` or ``--key=value`` (what a W&B sweep agent
passes). The ``method``, ``data`` and ``network`` nodes take their schema from the class registered under their name.
"""

from __future__ import annotations

import difflib
import importlib.resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

import lightning_ssl.data  # noqa: F401  (fills DATASETS)
import lightning_ssl.methods  # noqa: F401  (fills METHODS)
import lightning_ssl.models  # noqa: F401  (fills NETWORKS)
from lightning_ssl.errors import ConfigError, one_line
from lightning_ssl.registry import DATASETS, METHODS, NETWORKS, Registry, UnknownNameError
from lightning_ssl.schema import RunConfig

__all__ = ["ConfigError", "build_config", "method_recipe", "normalise_overrides", "to_yaml", "valid_keys"]

SELECTORS = ("method", "data", "network")
DEFAULT_NETWORK = "unet"
REGISTRIES: dict[str, Registry] = {"method": METHODS, "data": DATASETS, "network": NETWORKS}


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


def _load_yaml(path: Path) -> DictConfig:
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    loaded = OmegaConf.load(path)
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"{path} must hold a mapping of config keys")
    return loaded


def method_recipe(name: str) -> tuple[str, DictConfig]:
    """(where it is, the YAML recipe) of a registered method: the ``.yaml`` file beside its module, or nothing."""
    module = registered("method", name).__module__
    package, stem = module.rsplit(".", 1)
    resource = importlib.resources.files(package) / f"{stem}.yaml"
    if not resource.is_file():
        return f"{module} (no recipe)", OmegaConf.create({})
    loaded = OmegaConf.create(resource.read_text(encoding="utf-8"))
    return f"{package.replace('.', '/')}/{stem}.yaml", loaded


def registered(node: str, name: str, key: str | None = None) -> Any:
    """The class registered under ``name`` for ``node`` (method, data, network); ConfigError naming close names
    (and ``key``, the config key that chose it, when it is not ``node`` itself)."""
    try:
        return REGISTRIES[node].get(name)
    except UnknownNameError as error:
        message = str(error)
        raise ConfigError(message.replace(f"unknown {node} ", f"unknown {key} ", 1) if key else message) from None


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
            hint = f"; did you mean {' or '.join(close)}?" if close else "; `python -m lightning_ssl config --keys` lists them"
            raise ConfigError(f"unknown config key {dotted!r} in {origin}{hint}")
        value, target = overrides._get_node(key), node._get_node(key)
        if isinstance(value, DictConfig) and isinstance(target, DictConfig) and not target._is_none():
            _check_keys(root, target, value, origin, dotted + ".")


def build_config(args: list[str] | None = None, defaults: dict[str, str] | None = None) -> DictConfig:
    """Resolve a run's config from the defaults, the method's recipe, user YAML files and command-line overrides.

    ``defaults`` names the method and data used when neither the user nor the recipe chooses (a command's defaults).
    """
    items = normalise_overrides(list(args or []))
    selection = {"method": "genesis", "data": "phantom_ct", **(defaults or {})}
    user_files = [item.split("=", 1)[1] for item in items if item.startswith("config=")]
    picked = {k: v for k, v in (item.split("=", 1) for item in items) if k in SELECTORS}
    cli = _dotlist([item for item in items if item.split("=", 1)[0] not in ("config", *SELECTORS)])
    user_layers = [(path, _load_yaml(Path(path))) for path in user_files]
    chosen_by_user = [layer for _, layer in user_layers] + [cli]
    method = picked.get("method") or _selected("method", chosen_by_user, selection["method"])
    recipe_origin, recipe = method_recipe(method)
    # a recipe may name its default data (``data: phantom_brain_mri``); the command's or the user's choice wins
    recipe_data = selection["data"] if "data" in (defaults or {}) else _selected("data", [recipe], selection["data"])
    data = picked.get("data") or _selected("data", chosen_by_user, recipe_data)
    layers: list[tuple[str, DictConfig]] = [(recipe_origin, recipe), *user_layers, ("the command line", cli)]
    sources = [layer for _, layer in layers]
    names = {"method": method, "data": data, "network": picked.get("network") or _selected("network", sources, DEFAULT_NETWORK)}
    schema = OmegaConf.structured(RunConfig)
    for node in SELECTORS:
        schema[node] = OmegaConf.structured(registered(node, names[node]).Config(name=names[node]))
    _nest_data_schemas(schema, sources)
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
            raise ConfigError(f"invalid value {where}in {origin}: {one_line(error)}") from None
    if merged.run_name is None:
        merged.run_name = f"{merged.method.name}_{merged.data.name}"
    return merged


def _nest_data_schemas(schema: DictConfig, sources: list[DictConfig]) -> None:
    """Give each whole data config nested in the data config its dataset's schema and defaults.

    A dataset config class lists them in ``nested_data`` (key -> defaults with at least ``name``); the dataset of
    ``data.<key>`` is chosen by ``data.<key>.name`` like the top-level selectors (the last source wins). The keys of
    ``inherited`` point at the top-level value (``data.patch_size`` resizes every nested dataset) unless set.
    """
    config_class = registered("data", schema.data.name).Config
    for key, defaults in getattr(config_class, "nested_data", {}).items():
        name = _selected(f"data.{key}", sources, defaults["name"])
        node = OmegaConf.structured(registered("data", name, f"data.{key}").Config(name=name))
        for field in getattr(config_class, "inherited", ()):
            if field in node:
                node[field] = f"${{..{field}}}"
        schema.data[key] = OmegaConf.merge(node, {k: v for k, v in defaults.items() if k != "name" and k in node})


def _dotlist(items: list[str]) -> DictConfig:
    try:
        return OmegaConf.from_dotlist(items)
    except Exception as error:  # OmegaConf raises several grammar error types
        raise ConfigError(f"cannot parse overrides {items}: {one_line(error)}") from None


def _without_selector_strings(layer: DictConfig) -> DictConfig:
    """Drop ``method=name`` style entries; the selection already used them."""
    layer = layer.copy()
    for node in SELECTORS:
        if isinstance(layer.get(node, None), str):
            del layer[node]
    return layer


def to_yaml(config: DictConfig | ListConfig) -> str:
    """The resolved config as YAML text."""
    return OmegaConf.to_yaml(config, resolve=True)
