"""``zoo.push(NAME, "hf://USER/REPO")``: an entry of the store, uploaded to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path

from lightning_ssl.zoo.card import info
from lightning_ssl.zoo.errors import ZooError
from lightning_ssl.zoo.hub import HUB_PREFIX, is_hub_ref, parse_hub_ref, upload_entry
from lightning_ssl.zoo.loading import resolve

HUB_CARD_HEADER = "---\nlibrary_name: lightning-ssl\ntags:\n- medical-imaging\n- self-supervised-learning\n- lightning-ssl\n---\n"


def push(ref: str, target: str, store: str | Path | None = None) -> str:
    """Upload entry ``ref`` (``NAME`` or ``NAME@v<k>``; a built-in is fetched first) to the Hub model repository
    ``target`` (``hf://USER/REPO``, created if needed): its weights, metadata.json and model card as README.md.
    Returns the commit's hash; ``zoo.load(target)`` (or ``target@<hash>``) loads the entry back."""
    if not is_hub_ref(target):
        raise ZooError(f"push needs a Hub repository as target, like {HUB_PREFIX}USER/REPO, got {target!r}")
    repo, _ = parse_hub_ref(target)
    directory = resolve(ref, store)
    load_line = f'Load it with `from lightning_ssl import zoo; zoo.load("{HUB_PREFIX}{repo}", part="encoder")`.\n\n'
    return upload_entry(directory, HUB_CARD_HEADER + load_line + info(ref, store), target)
