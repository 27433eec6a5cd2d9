"""Procedural imaging phantoms, the embedded default data that needs no download."""

from lightning_ssl.data.phantoms.chest_ct import ChestCTPhantom, chest_ct_phantom

__all__ = ["ChestCTPhantom", "chest_ct_phantom"]
