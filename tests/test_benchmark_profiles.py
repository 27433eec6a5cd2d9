"""The benchmark profiles: each loads, and every init names a group of its file and budgets of its part; where a
written run keeps its work."""

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from label_efficiency import PROFILES, Cell, load_profiles, run_order  # noqa: E402


@pytest.mark.parametrize("name", sorted(p.stem for p in PROFILES.glob("*.yaml")))
def test_every_profile_loads_with_known_groups_and_budgets(name: str, tmp_path: Path) -> None:
    parts = load_profiles(name, tmp_path)
    assert parts and all(part.inits for part in parts)
    for part in parts:
        for init in part.inits:
            assert init.group in part.groups, f"{name}: init {init.name} names no group of the file"
            assert set(init.budgets or part.budgets) <= set(part.budgets), f"{name}: {init.name} asks for other budgets"
            assert part.scratch_of(init.group) is not None, f"{name}: group {init.group} has no baseline"


def test_a_recipe_init_runs_at_its_own_budgets_only(tmp_path: Path) -> None:
    (part,) = load_profiles("chest_xray", tmp_path)
    linear = {init.name: init for init in part.inits if init.name.endswith("-linear")}
    assert set(linear) == {"simclr-linear", "byol-linear", "byol-patient-linear"}
    assert all(init.budgets == ["0.01"] and "method.mode=linear" in init.finetune_args for init in linear.values())


def test_the_lidc_profile_runs_five_seeds_where_its_bar_is_and_three_elsewhere(tmp_path: Path) -> None:
    segmentation = next(profile for profile in load_profiles("lidc", tmp_path) if profile.part == "segmentation")
    assert [segmentation.seeds_at(budget) for budget in segmentation.budgets] == [3, 5, 3, 3]
    assert segmentation.seeds_text() == "3 seeds (5 at budget 10)"


def test_the_lidc_profile_runs_the_cells_of_its_bar_first(tmp_path: Path) -> None:
    segmentation = next(profile for profile in load_profiles("lidc", tmp_path) if profile.part == "segmentation")
    cells = [Cell(init, budget) for init in segmentation.inits for budget in segmentation.budgets]
    order = [(cell.init.name, cell.budget, seed) for cell, seed in run_order(segmentation, cells)]
    first = len(segmentation.inits) * 5
    assert {budget for _, budget, _ in order[:first]} == {"10"} and "10" not in {budget for _, budget, _ in order[first:]}
    assert order[:6] == [("scratch", "10", s) for s in range(5)] + [("genesis", "10", 0)]
    assert order[first:first + 4] == [("scratch", "5", 0), ("scratch", "5", 1), ("scratch", "5", 2), ("scratch", "25", 0)]


def test_a_written_run_keeps_its_records_and_small_entries_in_the_repository() -> None:
    from report import COMMITTED_WORK, LOCAL_WORK, REPO, work_path

    assert work_path("lidc", write=True) == COMMITTED_WORK / "lidc"
    assert work_path("lidc", write=False) == LOCAL_WORK / "lidc"
    assert work_path("lidc", write=True, workdir="/tmp/elsewhere") == Path("/tmp/elsewhere")
    kept = [".gitignore", "lidc/cells.jsonl", "lidc/pretraining.jsonl", "lidc/zoo/genesis_lidc/v1/encoder.safetensors",
            "lidc/zoo/genesis_phantom_ct_48/v1/metadata.json", "lidc/pretrain/chen_lidc/a/b/logs/version_0/metrics.csv",
            "multimix_chex/seeds.jsonl"]
    dropped = ["lidc/pretrain/chen_lidc/a/b/checkpoints/last.ckpt", "lidc/zoo/cpcseg_lidc_b10_s0/v1/encoder.safetensors",
               "lidc/logs/pretrain_chen_lidc.log", "lidc/finetune/scratch_10_0/x/y/test_metrics.json"]
    paths = [str((COMMITTED_WORK / p).relative_to(REPO)) for p in kept + dropped]
    done = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=REPO, capture_output=True, text=True)
    assert done.stdout.split() == paths[len(kept):]
