"""Files on the Hugging Face Hub: which file of which repository at which revision."""

from __future__ import annotations

from dataclasses import dataclass

HUB_URL = "https://huggingface.co"


@dataclass(frozen=True)
class HubFile:
    """One file of a Hub model repository at a pinned revision (a commit hash, or a branch or tag name)."""

    repo: str
    filename: str
    revision: str

    def __str__(self) -> str:
        return f"{self.repo}@{self.revision}/{self.filename}"

    @property
    def url(self) -> str:
        """The file's address on the public Hub (for people; downloads go through huggingface_hub)."""
        return f"{HUB_URL}/{self.repo}/resolve/{self.revision}/{self.filename}"
