"""Model cards: markdown generated from an entry's metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lightning_ssl.zoo.catalog import entry_metadata
from lightning_ssl.zoo.downstream import downstream_results
from lightning_ssl.zoo.hub import is_hub_ref
from lightning_ssl.zoo.store import part_file

_CONTRACT_FIELDS = ("spatial_dims", "channels", "channel_names", "axes", "patch_size", "spacing", "intensity")


def info(name: str, store: str | Path | None = None) -> str:
    """A markdown model card of entry ``name`` (or ``name@v<k>``); a built-in not fetched yet gets a card too."""
    metadata, directory = entry_metadata(name, store)
    entry = name if is_hub_ref(name) else metadata.get("name", name.split("@")[0])
    ref = f"{entry}@v{metadata['version']}" if metadata.get("version") and not is_hub_ref(name) else entry
    sections = [
        _summary(ref, metadata, directory),
        _architecture(metadata),
        *([f"## Using these weights\n{metadata['usage_notes']}"] if metadata.get("usage_notes") else []),
        _input_contract(metadata.get("input") or {}),
        _how_to_load(entry, metadata),
        _downstream(downstream_results(directory)),
        _metrics(metadata.get("metrics") or {}),
        _training(metadata),
        f"## Licence\n{metadata.get('licence') or 'not recorded'}",
        f"## Citation\n{metadata.get('citation') or 'not recorded'}",
        _files(metadata),
    ]
    return "\n\n".join(sections) + "\n"


def _summary(ref: str, metadata: dict[str, Any], directory: Path | None) -> str:
    """What the entry is, and when and with what it was published."""
    trained = " and ".join(metadata.get("files") or ["encoder", "decoder"]).capitalize()
    what = metadata.get("description") or (
        f"{trained} pretrained with **{metadata.get('method') or 'an unrecorded method'}** "
        f"on **{metadata.get('data') or 'unrecorded data'}**."
    )
    lines = [f"# {ref}", "", what]
    if directory is None:
        lines += ["", f"Built in, not fetched yet: the first `zoo.load` downloads {_origin(metadata.get('source') or {})} and converts it."]
    else:
        versions = ", ".join(f"{key} {value}" for key, value in (metadata.get("versions") or {}).items() if value)
        lines += ["", f"Published {metadata.get('created')} ({versions}); stored at `{directory}`."]
    return "\n".join(lines)


def _architecture(metadata: dict[str, Any]) -> str:
    """How to rebuild the network."""
    architecture = metadata.get("architecture") or {}
    kwargs = ", ".join(f"{key}={value!r}" for key, value in (architecture.get("kwargs") or {}).items())
    activation = metadata.get("output_activation")
    lines = [
        "## Architecture",
        f"`lightning_ssl.models.build_network({architecture.get('name')!r}{', ' + kwargs if kwargs else ''})`",
    ]
    if activation:
        lines.append(f"The network returns logits; the output activation it was trained with is `{activation}`.")
    return "\n".join(lines)


def _input_contract(contract: dict[str, Any]) -> str:
    """The input the weights expect."""
    if not contract:
        return "## Input contract\nnot recorded"
    keys = [key for key in _CONTRACT_FIELDS if key in contract] + [key for key in contract if key not in _CONTRACT_FIELDS]
    rows = [f"| {key} | {_cell(contract[key])} |" for key in keys]
    return "\n".join(["## Input contract", "| field | value |", "| --- | --- |", *rows])


def _how_to_load(entry: str, metadata: dict[str, Any]) -> str:
    """Three lines that load the entry."""
    contract = metadata.get("input") or {}
    patch = contract.get("patch_size")
    shape = ", ".join(str(v) for v in ["B", contract.get("channels", "C"), *(patch or ["*spatial"])])
    return "\n".join(
        [
            "## How to load",
            "```python",
            "from lightning_ssl import zoo",
            f'encoder = zoo.load("{entry}", part="encoder")'
            + ('  # or "decoder", or "model" for both' if "decoder" in (metadata.get("files") or {"decoder": 1}) else ""),
            f"features = encoder(x)  # x: ({shape}) float tensor; a list of feature maps, finest first",
            "```",
            f'Into your own network, a MONAI one too: `zoo.load_into(my_net.encoder, "{entry}")` matches keys by name '
            "and shape, also under prefixes such as `resnet.`, and reports the loaded, missing and unexpected keys.",
        ]
    )


def _downstream(results: list[dict[str, Any]]) -> str:
    """Downstream scores that a benchmark measured, with the report they come from."""
    if not results:
        return "## Downstream results\nnone measured yet"
    lines = ["## Downstream results"]
    for result in results:
        lines += ["", f"{result['task']}, {result['metric']} (from {result['report']}):", "",
                  "| labels | score | scratch | gain over scratch |", "| --- | --- | --- | --- |"]
        for row in result["scores"]:
            spread = f" ± {row['std']:.3f}" if "std" in row else ""
            seeds = f" ({row['seeds']} seeds)" if "seeds" in row else ""
            score, scratch = (f"{row[key]:.3f}" if key in row else "-" for key in ("score", "scratch"))
            lines.append(f"| {row['labels']} | {score} | {scratch} | {row['gain']:+.3f}{spread}{seeds} |")
    return "\n".join(lines)


def _metrics(metrics: dict[str, Any]) -> str:
    """Recorded metrics, without the bookkeeping a logger adds (learning rates, epoch and step counters)."""
    shown = {key: value for key, value in metrics.items() if not _bookkeeping(key)}
    if not shown:
        return "## Metrics\nnone recorded"
    rows = [f"| {key} | {_cell(value)} |" for key, value in shown.items()]
    return "\n".join(["## Metrics", "| metric | value |", "| --- | --- |", *rows])


def _bookkeeping(key: str) -> bool:
    """Whether a logged value describes the run rather than the model (``lr-Adam/pg1``, ``epoch``, ``step``)."""
    return key.startswith(("lr-", "lr/")) or key in ("epoch", "step") or key.endswith(("_step", "/step", "_epoch"))


def _training(metadata: dict[str, Any]) -> str:
    """Method, data and label budget."""
    lines = [
        "## Training",
        f"- method: {metadata.get('method') or 'not recorded'}",
        f"- data: {metadata.get('data') or 'not recorded'}",
        f"- label budget: {metadata.get('label_budget') or 'not recorded'}",
    ]
    for key in ("method_config", "data_config"):
        if metadata.get(key):
            lines.append(f"- {key}: `{json.dumps(metadata[key], sort_keys=True)}`")
    return "\n".join(lines)


def _files(metadata: dict[str, Any]) -> str:
    """Weight files with their checksums, and where a built-in comes from."""
    files = metadata.get("files") or {}
    lines = ["## Files"]
    if files:
        lines += ["| file | bytes | sha256 |", "| --- | --- | --- |"]
        lines += [f"| {part_file(part)} | {record.get('bytes')} | `{record.get('sha256')}` |" for part, record in files.items()]
    else:
        lines.append("none yet")
    source = metadata.get("source")
    if source:
        pinned = source.get("sha256") or "not published: the first download's checksum is recorded and enforced"
        lines += ["", f"Source: {_origin(source)} (`{source.get('file')}`, sha256 {pinned})"]
    return "\n".join(lines)


def _origin(source: dict[str, Any]) -> str:
    """Where a built-in's file comes from: its Hub repository and pinned revision, or its URL."""
    hub = source.get("hub")
    if hub:
        return f"{hub.get('file')} of the Hugging Face Hub repository {hub.get('repo')} at revision {hub.get('revision')}"
    return str(source.get("url"))


def _cell(value: Any) -> str:
    """A table cell for a metadata value."""
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)
