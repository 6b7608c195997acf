"""benchmarks/deep_fmnist.py --merge: one table from a grid split over several processes."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "deep_fmnist.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("deep_fmnist_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(method, bits, seed, map_all, seconds=100.0):
    return {"method": method, "bits": bits, "seed": seed, "map_all": map_all,
            "map_1000": map_all + 0.01, "train_seconds": seconds, "total_seconds": seconds + 5,
            "selected_epoch": 3}


def write(folder: Path, runs, itq=None):
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"context": {"cpu": "x"}, "runs": runs, "itq": itq or {}}))


def test_merge_keeps_one_run_per_cell_and_the_later_folder_wins(bench, tmp_path, capsys):
    write(tmp_path / "a", [run("dpsh", 16, 0, 0.50), run("hashnet", 16, 0, 0.80)], itq={"16": 0.4})
    write(tmp_path / "b", [run("dpsh", 16, 0, 0.70), run("dpsh", 16, 1, 0.90), run("hashnet", 64, 0, 0.85)])
    assert bench.main(["--merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m")]) == 0
    merged = json.loads((tmp_path / "m" / "results.json").read_text())
    cells = {(r["method"], r["bits"], r["seed"]): r["map_all"] for r in merged["runs"]}
    assert cells == {("dpsh", 16, 0): 0.70, ("dpsh", 16, 1): 0.90, ("hashnet", 16, 0): 0.80,
                     ("hashnet", 64, 0): 0.85}
    table = (tmp_path / "m" / "table.md").read_text()
    # dpsh at 16 bits: mean of 0.70 and 0.90, sample standard deviation 0.141
    assert "| dpsh | 16 | 2 | 0.800 ± 0.141 |" in table
    assert "| dpsh | 0.800 ± 0.141 (n=2) |  |" in table  # no 64-bit dpsh run: an empty cell
    assert "| ITQ (raw pixels) | 16 | 1 | 0.400 |" in table
    assert table.strip() in capsys.readouterr().out


def test_merge_names_a_missing_folder(bench, tmp_path, capsys):
    assert bench.main(["--merge", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m")]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
