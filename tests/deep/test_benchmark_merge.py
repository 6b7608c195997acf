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


def test_merge_refuses_outputs_of_two_protocols(bench, tmp_path, capsys):
    write(tmp_path / "full", [run("dpsh", 16, 0, 0.80)])  # no protocol recorded: the full one
    write(tmp_path / "mini", [run("dpsh", 16, 1, 0.60)])
    data = json.loads((tmp_path / "mini" / "results.json").read_text())
    (tmp_path / "mini" / "results.json").write_text(json.dumps({**data, "protocol": "fashion-mnist-mini"}))
    assert bench.main(["--merge", str(tmp_path / "full"), str(tmp_path / "mini"), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "fashion-mnist-mini" in err and "'fashion-mnist'" in err
    assert not (tmp_path / "m").exists()


def test_merge_orders_methods_outside_the_default_list_as_they_appear(bench, tmp_path):
    write(tmp_path / "a", [run("dvsq", 16, 0, 0.5), run("csq", 16, 0, 0.6), run("bihalf", 16, 0, 0.3),
                           run("dpsh", 16, 0, 0.7)])
    assert bench.main(["--merge", str(tmp_path / "a"), "--out", str(tmp_path / "m")]) == 0
    merged = json.loads((tmp_path / "m" / "results.json").read_text())
    assert [r["method"] for r in merged["runs"]] == ["dpsh", "csq", "dvsq", "bihalf"]
    assert merged["protocol"] == "fashion-mnist"


def test_protocol_reaches_every_run_and_the_outputs(bench, tmp_path, monkeypatch, capsys):
    """--protocol is the runs' dataset, the ITQ baseline's split, and is recorded; a label-free
    method gets its default backbone; the ranking is read from each run's report.json."""
    import torch

    from deephash_engine.deep import run as run_module

    configs, itq_calls = [], []

    def fake_train_run(cfg, out_dir, progress=False):
        configs.append(cfg)
        Path(out_dir).mkdir(parents=True)
        search = {"search": "adc"} if cfg.method == "dqn" else {}
        (Path(out_dir) / "report.json").write_text(json.dumps(search))
        return {"map": {"all": 0.5, "1000": 0.6}, "train_seconds": 1.0, "selected_epoch": 1}

    monkeypatch.setattr(run_module, "train_run", fake_train_run)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # leave this process's threads alone
    monkeypatch.setattr(bench, "itq_baseline", lambda bits, seed, protocol: itq_calls.append(protocol) or 0.4)
    out = tmp_path / "out"
    assert bench.main(["--protocol", "fashion-mnist-mini", "--methods", "dqn", "bihalf", "dpsh",
                       "--bits", "16", "--seeds", "3", "--out", str(out)]) == 0
    assert [(c.method, c.dataset, c.model, c.seed) for c in configs] == [
        ("dqn", "fashion-mnist-mini", "small_cnn", 3), ("bihalf", "fashion-mnist-mini", "pca", 3),
        ("dpsh", "fashion-mnist-mini", "small_cnn", 3)]
    assert itq_calls == ["fashion-mnist-mini"]
    results = json.loads((out / "results.json").read_text())
    assert results["protocol"] == results["context"]["protocol"] == "fashion-mnist-mini"
    assert [(r["method"], r["ranking"], r["protocol"]) for r in results["runs"]] == [
        ("dqn", "adc", "fashion-mnist-mini"), ("bihalf", "hamming", "fashion-mnist-mini"),
        ("dpsh", "hamming", "fashion-mnist-mini")]
    assert capsys.readouterr().out.startswith("# protocol fashion-mnist-mini;")


def test_protocol_must_be_a_fashion_mnist_one(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--protocol", "cifar10", "--out", "unused"])
    assert "fashion-mnist-mini" in capsys.readouterr().err
