"""Small configurations that make end-to-end runs take seconds."""

TINY_PHANTOM = [
    "data.num_patients=4",
    "data.volume_shape=[48,48,32]",
    "data.patch_size=[32,32,16]",
    "data.patches_per_volume=2",
    "data.batch_size=2",
    "data.val_fraction=0.25",
    "data.test_fraction=0",
    "network.features=[4,8,16]",
    "trainer.enable_progress_bar=false",
]


def tiny(output_dir, *extra: str) -> list[str]:
    """Overrides for a run of a few seconds on phantoms, writing under ``output_dir``."""
    return [*TINY_PHANTOM, f"output_dir={output_dir}", *extra]


# A MultiMix run of a few seconds on the X-ray phantom pair; add data.segmentation.label_budget.
TINY_XRAY_PAIR = [
    "network.features=[4,8,16]",
    "data.patch_size=[32,32]",
    "data.batch_size=4",
    "data.classification.num_patients=24",
    "data.segmentation.num_patients=24",
    "data.classification.label_budget=6",
]
