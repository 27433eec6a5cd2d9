"""Exporting entries: a MONAI bundle that monai.bundle loads and runs, an ONNX encoder that onnx checks and runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow, verify_net_in_out
from zoo_helpers import small_unet, unet_metadata

from lightning_ssl import zoo
from lightning_ssl.models import build_network
from lightning_ssl.zoo.cli import main

CONTRACT = {"spatial_dims": 2, "channels": 1, "channel_names": ["US"], "patch_size": [32, 32], "intensity": "scaled to [0, 1]"}


def test_monai_bundle_loads_and_runs_with_monai_bundle_tools(store: Path, tmp_path: Path) -> None:
    network = small_unet(seed=3)
    zoo.publish_network("toy", network, unet_metadata(input=CONTRACT, licence="CC-BY-4.0", citation="Me 2026"), store=store)
    bundle = zoo.export("toy", "monai-bundle", tmp_path / "bundle", store=store)
    assert sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*.*")) == [
        "configs/inference.json", "configs/metadata.json", "models/model.pt",
    ]
    metadata = json.loads((bundle / "configs" / "metadata.json").read_text())
    image = metadata["network_data_format"]["inputs"]["image"]
    assert image["num_channels"] == 1 and image["spatial_shape"] == [32, 32] and image["channel_def"] == {"0": "US"}
    assert metadata["network_data_format"]["outputs"]["pred"]["num_channels"] == 2
    assert metadata["lightning_ssl"]["input"] == CONTRACT and metadata["copyright"] == "CC-BY-4.0"

    workflow = ConfigWorkflow(
        config_file=str(bundle / "configs" / "inference.json"), meta_file=str(bundle / "configs" / "metadata.json"),
        workflow_type=None, bundle_root=str(bundle), device="$torch.device('cpu')",
    )
    workflow.initialize()
    loaded = workflow.parser.get_parsed_content("network")
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), network(x))
        assert torch.equal(workflow.parser.get_parsed_content("inferer")(x, loaded), network(x))
    verify_net_in_out(
        net_id="network_def", meta_file=str(bundle / "configs" / "metadata.json"),
        config_file=str(bundle / "configs" / "inference.json"), device="cpu",
    )


def test_encoder_only_bundle_holds_the_encoder(store: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    kwargs = {"spatial_dims": 2, "in_channels": 1, "depth": 10, "widths": [4, 8, 16, 32]}
    resnet = build_network("resnet", **kwargs).eval()
    zoo.publish_network("res", resnet, {"architecture": {"name": "resnet", "kwargs": kwargs}}, store=store)
    bundle = zoo.export("res", "monai-bundle", tmp_path / "bundle", store=store)
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser.read_meta(str(bundle / "configs" / "metadata.json"))
    parser["bundle_root"] = str(bundle)
    encoder = parser.get_parsed_content("network_def")
    encoder.load_state_dict(torch.load(bundle / "models" / "model.pt", weights_only=True))
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(encoder.eval()(x), resnet.encoder(x)))
    assert parser.get_parsed_content("_meta_#network_data_format#inputs#image#spatial_shape") == ["8*n", "8*n"]


def test_export_errors_are_one_line(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    zoo.publish_network("toy", small_unet(), unet_metadata(), store=store)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert main(["--store", str(store), "export", "toy", "--format", "monai-bundle", str(tmp_path / "full")]) == 1
    assert capsys.readouterr().err == f"zoo: error: export folder {tmp_path / 'full'} is not empty: choose a new folder\n"
    with pytest.raises(zoo.ZooError, match="unknown export format 'tflite'"):
        zoo.export("toy", "tflite", tmp_path / "new", store=store)
    assert main(["--store", str(store), "export", "toy", "--format", "monai-bundle", str(tmp_path / "bundle")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "bundle")


def test_models_genesis_refuses_onnx_with_the_reason(store: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    zoo.publish_network("gen", build_network("genesis_unet3d"), zoo.BUILTIN["genesis_chest_ct"].metadata, store=store)
    with pytest.raises(zoo.ZooError, match="normalises with each batch's statistics .* export it as a MONAI bundle instead"):
        zoo.export("gen", "onnx", tmp_path / "onnx", store=store)


ONNX_CASES = {
    "unet2d": ("unet", {"spatial_dims": 2, "in_channels": 1, "out_channels": 2, "features": [4, 8, 16]}, 3),
    "unet3d": ("unet", {"spatial_dims": 3, "in_channels": 1, "out_channels": 2, "features": [4, 8, 16]}, 3),
    "resnet2d": ("resnet", {"spatial_dims": 2, "in_channels": 1, "depth": 10, "widths": [4, 8, 16, 32]}, 4),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(ONNX_CASES))
def test_onnx_encoder_passes_the_checker_and_computes_the_same_features(case: str, store: Path, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    name, kwargs, levels = ONNX_CASES[case]
    torch.manual_seed(0)
    network = build_network(name, **kwargs).eval()
    contract = {"spatial_dims": kwargs["spatial_dims"], "channels": 1, "patch_size": [16] * kwargs["spatial_dims"]}
    zoo.publish_network("toy", network, {"architecture": {"name": name, "kwargs": kwargs}, "input": contract}, store=store)
    assert main(["--store", str(store), "export", "toy", "--format", "onnx", str(tmp_path / "onnx")]) == 0
    path = tmp_path / "onnx" / "encoder.onnx"
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["image"] and len(model.graph.output) == levels
    x = torch.rand(2, 1, *contract["patch_size"])
    got = ReferenceEvaluator(model).run(None, {"image": x.numpy()})
    with torch.no_grad():
        expected = network.encoder(x)
    for ours, theirs in zip(got, expected):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-4, atol=1e-4)
