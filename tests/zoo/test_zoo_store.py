"""Store location, names and references."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightning_ssl import zoo
from lightning_ssl.zoo.store import parse_ref, validate_name


def test_store_root_prefers_argument_then_env_then_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert zoo.store_root(tmp_path / "given") == tmp_path / "given"
    monkeypatch.setenv("LIGHTNING_SSL_ZOO", str(tmp_path / "env"))
    assert zoo.store_root() == tmp_path / "env"
    monkeypatch.delenv("LIGHTNING_SSL_ZOO")
    assert zoo.store_root() == Path.home() / ".cache" / "lightning_ssl" / "zoo"


@pytest.mark.parametrize("name", ["genesis_chest_ct", "byol-chex", "a1", "9x"])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "Genesis", "a b", "../up", "a/b", "_downloads", "-x", "x@v1", "é"])
def test_invalid_names_are_refused_clearly(name: str) -> None:
    with pytest.raises(ValueError, match="lowercase letters, digits"):
        validate_name(name)


def test_parse_ref() -> None:
    assert parse_ref("genesis_chest_ct") == ("genesis_chest_ct", None)
    assert parse_ref("genesis_chest_ct@v12") == ("genesis_chest_ct", 12)
    for bad in ("x@1", "x@v0", "x@v", "x@v1@v2"):
        with pytest.raises(ValueError):
            parse_ref(bad)
