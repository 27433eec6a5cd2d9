"""Configs: defaults in dataclasses, YAML overrides, both override syntaxes, helpful errors."""

import pytest

from lightning_ssl.config import ConfigError, build_config, normalise_overrides


def test_defaults_select_genesis_on_phantoms_and_name_the_run():
    cfg = build_config([])
    assert cfg.method.name == "genesis" and cfg.data.name == "phantom_ct"
    assert cfg.run_name == "genesis_phantom_ct"
    assert cfg.method.corruption.local_rate == 0.5 and cfg.method.corruption.paint_rate == 0.9


def test_method_recipe_overrides_dataclass_defaults():
    # values only the recipes set (lightning_ssl/methods/genesis.yaml, cpcseg.yaml); the dataclass defaults differ
    assert build_config(["method=genesis"]).trainer.max_epochs == 3
    cpcseg = build_config(["method=cpcseg"])
    assert cpcseg.trainer.limit_train_batches == 8 and cpcseg.data.name == "phantom_brain_mri"
    assert build_config(["method=cpcseg", "trainer.limit_train_batches=null"]).trainer.limit_train_batches is None


def test_key_value_and_dash_dash_forms_are_equivalent():
    plain = build_config(["trainer.max_epochs=3", "optim.lr=0.5", "data.patch_size=[32,32,16]"])
    sweep = build_config(["--trainer.max_epochs=3", "--optim.lr", "0.5", "--data.patch_size=[32,32,16]"])
    assert plain == sweep
    assert plain.trainer.max_epochs == 3 and plain.optim.lr == 0.5 and list(plain.data.patch_size) == [32, 32, 16]


def test_make_style_uppercase_selectors():
    assert normalise_overrides(["METHOD=genesis", "DATA=ct_folder"]) == ["method=genesis", "data=ct_folder"]
    assert build_config(["DATA=ct_folder"]).data.name == "ct_folder"


def test_network_selector_switches_schema():
    cfg = build_config(["network=genesis_unet3d"])
    assert cfg.network.name == "genesis_unet3d" and "features" not in cfg.network


@pytest.mark.parametrize(
    "override,named,suggested",
    [
        ("trainer.max_epoch=3", "trainer.max_epoch", "trainer.max_epochs"),
        ("--optim.learning_rate=0.1", "optim.learning_rate", None),
        ("data.patchsize=[1,2]", "data.patchsize", "data.patch_size"),
        ("method.corruption.local_rte=0.1", "method.corruption.local_rte", "method.corruption.local_rate"),
    ],
)
def test_unknown_key_fails_naming_it_and_the_closest(override, named, suggested):
    with pytest.raises(ConfigError) as error:
        build_config([override])
    assert repr(named) in str(error.value)
    if suggested:
        assert suggested in str(error.value)


def test_unknown_names_and_bad_values_fail_clearly():
    with pytest.raises(ConfigError, match="unknown method 'genisis'.*did you mean genesis"):
        build_config(["method=genisis"])
    with pytest.raises(ConfigError, match="trainer.max_epochs"):
        build_config(["trainer.max_epochs=many"])
    with pytest.raises(ConfigError, match="logger"):
        build_config(["logger=tensorbord"])
    with pytest.raises(ConfigError, match="key=value"):
        build_config(["max_epochs"])


def test_user_yaml_file_layer(tmp_path):
    extra = tmp_path / "mine.yaml"
    extra.write_text("trainer:\n  max_epochs: 7\noptim:\n  lr: 0.01\n")
    cfg = build_config([f"config={extra}", "optim.lr=0.02"])
    assert cfg.trainer.max_epochs == 7 and cfg.optim.lr == 0.02
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  max_epohs: 7\n")
    with pytest.raises(ConfigError, match=r"trainer.max_epohs.*bad.yaml.*trainer.max_epochs"):
        build_config([f"config={bad}"])
