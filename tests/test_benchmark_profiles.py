"""The benchmark profiles: each loads, and every init names a group of its file and budgets of its part; where a
written run keeps its work; an optional built-in init runs when the zoo can fetch it and is left out otherwise."""

import json
import os
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from decathlon_data import write_decathlon
from zoo_helpers import official_genesis_state

from lightning_ssl import zoo
from lightning_ssl.train import TEST_METRICS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from efficiency_matrix import PROFILES, Cell, Init, Profile, load_profiles  # noqa: E402
from efficiency_report import findings, left_out_text, part_section, table  # noqa: E402
from label_efficiency import drop_unavailable, finetune_command, run_order  # noqa: E402


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


def test_without_the_official_genesis_file_the_lidc_profile_leaves_it_out_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    parts = load_profiles("lidc", tmp_path)
    before = {part.part: [init.name for init in part.inits] for part in parts}
    assert all("genesis-official" in names for names in before.values())
    drop_unavailable(parts, tmp_path / "zoo")
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("leaving out init genesis-official: ") and "zoo import-builtin genesis_chest_ct FILE" in line
    assert {part.part: [init.name for init in part.inits] for part in parts} == {
        name: [init for init in names if init != "genesis-official"] for name, names in before.items()}
    reported = left_out_text(parts)  # the report says what was left out, not only the console
    assert all(set(part.left_out) == {"genesis-official"} for part in parts)
    assert reported.startswith("- Left out (rerun with the files in place to add them): genesis-official, ")
    assert "genesis_chest_ct" in reported and ";" not in reported


@pytest.mark.slow
def test_the_official_genesis_file_of_the_users_store_is_fine_tuned_by_the_benchmark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    downloads = zoo.store_root() / "_downloads"
    downloads.mkdir(parents=True)
    torch.save({"epoch": 1, "state_dict": official_genesis_state()}, downloads / "Genesis_Chest_CT.pt")
    root = write_decathlon(tmp_path / "data", cases=6, test="labelled")
    init = Init("genesis-official", "light", entry="genesis_chest_ct", optional=True)
    profile = Profile(
        name="fixture", task="segmentation", budgets=["2"], seeds=1, groups={"light": ["network.features=[4,8,16]"]},
        data_args=["data=decathlon", f"data.root={root}", "data.patch_size=[16,16,16]", "data.batch_size=2"],
        finetune_args=["trainer.max_steps=2", "trainer.val_check_interval=2", "method.seg_classes=2"], inits=[init])
    store = tmp_path / "benchmark_zoo"
    drop_unavailable([profile], store)
    assert capsys.readouterr().out == "" and profile.inits == [init] and zoo.versions("genesis_chest_ct", store) == [1]
    output = tmp_path / "cell"
    command = finetune_command(profile, init, "2", 0, output)
    assert "method.init=zoo:genesis_chest_ct" in command and "network.features=[4,8,16]" not in command
    env = {**os.environ, "LIGHTNING_SSL_ZOO": str(store)}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    metrics = json.loads(next(output.rglob(TEST_METRICS)).read_text())["metrics"]
    assert metrics["test/samples"] == 2 and 0 <= metrics["test/dice"] <= 1


def _segmentation_cells(dice: dict[str, list[float]]) -> tuple[Profile, list[Cell]]:
    """A segmentation profile and one cell per init at budget 10 with the given test Dice per seed."""
    inits = [Init(name, "light") for name in dice]
    profile = Profile(name="fixture", task="segmentation", budgets=["10"], seeds=len(dice["scratch"]), groups={"light": []},
                      data_args=[], finetune_args=[], inits=inits)
    cells = [Cell(init, "10", runs={seed: {"test/dice": value, "test/hd95_class1": 5.0} for seed, value in enumerate(dice[init.name])},
                  counts={seed: {"": 10} for seed in range(len(dice[init.name]))}) for init in inits]
    return profile, cells


def test_a_gain_over_two_seeds_is_reported_as_too_few_to_compare() -> None:
    profile, cells = _segmentation_cells({"scratch": [0.30, 0.40], "genesis": [0.36, 0.44]})
    assert "genesis has 2 seeds paired with scratch at budget 10, too few to compare (+0.050 ± 0.010" in findings(profile, cells)
    profile, cells = _segmentation_cells({"scratch": [0.30, 0.40, 0.35], "genesis": [0.36, 0.44, 0.40]})
    assert "genesis beats scratch at budget 10 on test/dice (+0.050 ± 0.006" in findings(profile, cells)


def test_a_gain_beyond_two_standard_errors_but_not_significant_is_not_called_a_win() -> None:
    profile, cells = _segmentation_cells({"scratch": [0.30, 0.40, 0.35], "genesis": [0.31, 0.45, 0.38]})
    sentence = "genesis is above scratch by more than two standard errors, but not significantly, at budget 10 on test/dice (+0.030 ± 0.012"
    assert sentence in findings(profile, cells) and "beats" not in findings(profile, cells)


def test_a_segmentation_table_counts_the_labeled_masks() -> None:
    profile, cells = _segmentation_cells({"scratch": [0.30, 0.40, 0.35]})
    header, _, row = table(profile, cells).splitlines()
    assert header.startswith("| init | budget | labeled masks | seeds |") and row.startswith("| scratch | 10 | 10 | 3 |")


def test_a_part_without_finished_runs_says_so_and_shows_no_plot() -> None:
    profile, _ = _segmentation_cells({"scratch": [0.30, 0.40, 0.35]})
    section = part_section(profile, [], {"scratch": "python -m lightning_ssl finetune"}, None, [], planned=3)
    assert "No run of this part has finished yet." in section and "Plot:" not in section
    assert "**Interim: 0 of the 3 runs have finished**" in section


def test_a_segmentation_that_predicts_no_foreground_is_flagged_as_one_class() -> None:
    profile, cells = _segmentation_cells({"scratch": [0.30, 0.40, 0.35]})
    cells[0].runs[1] = {"test/dice": 0.0, "test/hd95_class1": float("nan")}
    cells[0].runs[2] = {"test/dice": 0.0, "test/hd95_class1": 12.0}  # foreground predicted, in the wrong place
    row = table(profile, cells).splitlines()[2].split(" | ")
    assert row[4] == "1" and row[7] == "8.500 ± 4.950 (2 of 3 seeds)", "a distance is averaged where it is defined"
    assert "Runs whose test predictions are all one class: scratch budget 10 seed 1." in findings(profile, cells)


def test_a_paired_gain_leaves_out_the_seeds_whose_distance_is_undefined() -> None:
    profile, cells = _segmentation_cells({"scratch": [0.30, 0.40, 0.35], "genesis": [0.36, 0.44, 0.40]})
    cells[0].runs[1]["test/hd95_class1"] = float("nan")
    cells[1].runs[0]["test/hd95_class1"] = 3.0
    genesis = table(profile, cells).splitlines()[3].split(" | ")
    assert genesis[8] == "-1.000 ± 1.000 (p 0.5, 2 seeds) |", "seeds 0 and 2: differences -2 and 0"
