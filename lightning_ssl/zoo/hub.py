"""Entries on the Hugging Face Hub: ``zoo.push(NAME, "hf://USER/REPO")`` uploads one (weights, metadata.json and the
model card as README.md); ``zoo.load("hf://USER/REPO[@REVISION]")`` loads one with the same checksum rules as the
local store (the weights must match the sha256 that metadata.json records)."""

from __future__ import annotations

import re
from pathlib import Path

from lightning_ssl.io.errors import DownloadError, UploadError
from lightning_ssl.io.hub import HubFile, download_hub_file, upload_hub_files
from lightning_ssl.zoo.errors import ZooDownloadError, ZooError
from lightning_ssl.zoo.store import METADATA_FILE, part_file, read_metadata

HUB_PREFIX = "hf://"
DEFAULT_REVISION = "main"
README = "README.md"
_HUB_REF = re.compile(r"hf://(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<revision>[\w./-]+))?")


def is_hub_ref(ref: object) -> bool:
    """Whether ``ref`` names an entry on the Hub (``hf://USER/REPO``)."""
    return isinstance(ref, str) and ref.startswith(HUB_PREFIX)


def parse_hub_ref(ref: str) -> tuple[str, str]:
    """``hf://USER/REPO[@REVISION]`` as the repository id and the revision (``main`` when not given)."""
    match = _HUB_REF.fullmatch(ref)
    if match is None:
        raise ZooError(f"invalid Hub reference {ref!r}: expected hf://USER/REPO or hf://USER/REPO@REVISION")
    return match["repo"], match["revision"] or DEFAULT_REVISION


def hub_entry_dir(ref: str) -> Path:
    """The folder in the Hugging Face cache that holds the entry ``hf://USER/REPO[@REVISION]`` (metadata.json and
    every weight file it lists, all of one commit), downloaded when not cached."""
    repo, revision = parse_hub_ref(ref)
    metadata_path = _download(HubFile(repo, METADATA_FILE, revision), ref)
    directory = metadata_path.parent
    commit = directory.name  # the cache keeps each commit's files in snapshots/<commit hash>/
    for part in read_metadata(directory).get("files") or {}:
        _download(HubFile(repo, part_file(part), commit), ref)
    return directory


def upload_entry(directory: Path, card: str, target: str) -> str:
    """Upload the entry in ``directory`` with its model card ``card`` to the Hub repository ``target``
    (``hf://USER/REPO[@BRANCH]``); the commit's hash."""
    repo, revision = parse_hub_ref(target)
    metadata = read_metadata(directory)
    files = {part_file(part): (directory / part_file(part)).read_bytes() for part in metadata.get("files") or {}}
    files[METADATA_FILE] = (directory / METADATA_FILE).read_bytes()
    files[README] = card.encode("utf-8")
    message = f"lightning_ssl zoo entry {metadata.get('name')}@v{metadata.get('version')}"
    try:
        return upload_hub_files(repo, files, message, revision)
    except UploadError as error:
        raise ZooError(f"{error} (log in with `hf auth login` or set HF_TOKEN to a token that may write there)") from None


def _download(file: HubFile, ref: str) -> Path:
    """One file of a Hub entry; ZooDownloadError in one line when it cannot be had."""
    hint = "check the repository and revision; offline, only entries in the Hugging Face cache load"
    try:
        return download_hub_file(file, what=f"{file.filename} of zoo entry {ref}", hint=hint)
    except DownloadError as error:
        raise ZooDownloadError(str(error)) from None
