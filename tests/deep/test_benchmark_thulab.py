"""benchmarks/thulab_peer.py: thulab/DeepHash's model files loaded without their framework imports,
and the worker process that runs them (TensorFlow is not a dependency of this project).

The model file here is written for the test in the research code's shape (its imports of
TensorFlow, its AlexNet module, its evaluation module and its relative util import, a class, a
module body); the real checkout is not needed. The end-to-end run needs an interpreter with
TensorFlow and a checkout: it runs where DEEPHASH_TF_PYTHON and DEEPHASH_THULAB_DIR name them.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[2] / "benchmarks"

MODEL_FILE = '''
import os
import numpy as np
import tensorflow as tf
import model.plot as plot
from architecture import img_alexnet_layers
from evaluation import MAPs_CQ
from .util import Dataset

SIDE_EFFECTS.append("module body ran")


class DQN(object):
    def __init__(self, config):
        self.graph = tf
        self.backbone = img_alexnet_layers
        self.dataset = Dataset
        self.width = config["output_dim"]
'''


@pytest.fixture()
def thulab():
    sys.path.insert(0, str(HERE))
    spec = importlib.util.spec_from_file_location("thulab_peer_under_test", HERE / "thulab_peer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.path.remove(str(HERE))


def test_model_file_keeps_definitions_and_its_framework_comes_from_the_runner(thulab, tmp_path):
    path = tmp_path / "dqn.py"
    path.write_text(MODEL_FILE)
    side_effects = []
    stand_ins = {"tf": "the compat.v1 module", "img_alexnet_layers": "our outputs", "Dataset": "their util class"}
    ns = thulab._load_source(path, {"__name__": "m", "SIDE_EFFECTS": side_effects, "MAPs_CQ": None, **stand_ins})
    model = ns["DQN"]({"output_dim": 16})
    assert (model.graph, model.backbone, model.dataset) == tuple(stand_ins.values())
    assert model.width == 16 and ns["np"].__name__ == "numpy" and ns["os"] is os
    assert side_effects == []  # only imports, functions and classes ran
    # a registered module: thulab's distance files look their own functions up in sys.modules
    assert sys.modules["m"].__dict__ is ns and sys.modules.pop("m").DQN is ns["DQN"]


def test_a_worker_error_reaches_the_driver_with_its_traceback(thulab, tmp_path):
    # The project's interpreter has no TensorFlow (or, where it has one, tmp_path has no model
    # files): either way the worker replies with the error instead of dying silently.
    worker = thulab._WorkerProcess(sys.executable, str(tmp_path), "dqn")
    try:
        with pytest.raises(RuntimeError, match="thulab worker failed in init") as err:
            worker("init", config={}, n_train=1, seed=0, steps_per_epoch=1)
        assert "Traceback" in str(err.value)
    finally:
        worker.close()
    assert worker.proc.returncode == 0  # closing stdin ends the worker cleanly


def test_run_needs_a_checkout_and_a_known_method(thulab, tmp_path):
    with pytest.raises(ValueError, match="expected one of"):
        thulab.ThulabRun("dvsq-unknown", tmp_path, sys.executable, None)
    for method in ("dqn", "dvsq", "dtq", "dhn", "dch"):
        with pytest.raises(FileNotFoundError, match="thulab/DeepHash checkout"):
            thulab.ThulabRun(method, tmp_path, sys.executable, None)


def test_thulab_peers_of_dhn_and_dch_keep_their_own_name_beside_deephash_pytorchs():
    sys.path.insert(0, str(HERE))
    try:
        spec = importlib.util.spec_from_file_location("deep_fmnist_under_test", HERE / "deep_fmnist.py")
        deep_fmnist = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(deep_fmnist)
    finally:
        sys.path.remove(str(HERE))
    thulab = ["dqn", "dvsq", "dtq", "dhn", "dch"]
    alone = deep_fmnist.thulab_peer_names(["dqn", "dhn", "hashnet"], thulab)
    assert alone == {"peer-dqn": "dqn", "peer-dhn": "dhn"}
    # with DeepHash-pytorch's peers in the run: DHN's and DCH's thulab runs are named apart
    both = deep_fmnist.thulab_peer_names(["dqn", "dhn", "peer-dhn", "dch", "peer-dch"], thulab)
    assert both == {"peer-dqn": "dqn", "thulab-dhn": "dhn", "thulab-dch": "dch"}


def test_deep_fmnist_wants_an_interpreter_for_the_thulab_peers(tmp_path):
    proc = subprocess.run([sys.executable, str(HERE / "deep_fmnist.py"), "--thulab-dir", str(tmp_path),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 2 and "--tf-python" in proc.stderr


needs_tensorflow = pytest.mark.skipif(
    not (os.environ.get("DEEPHASH_TF_PYTHON") and os.environ.get("DEEPHASH_THULAB_DIR")),
    reason="needs DEEPHASH_TF_PYTHON (an interpreter with TensorFlow) and DEEPHASH_THULAB_DIR")


@needs_tensorflow
@pytest.mark.parametrize("method", ["dhn", "dch"])
def test_thulab_binary_methods_train_our_network_through_their_graph(thulab, tmp_path, method):
    from deephash_engine.deep.run import RunConfig

    cfg = RunConfig.from_dict(dict(method=method, dataset="fashion-mnist-mini", nbits=16, seed=0, epochs=2,
                                   threads=1, device="cpu"))
    summary = thulab.ThulabRun(method, os.environ["DEEPHASH_THULAB_DIR"], os.environ["DEEPHASH_TF_PYTHON"],
                               cfg).run(tmp_path)
    assert summary["method"] == f"peer-{method}" and len(summary["history"]) == 2
    # sign codes ranked by Hamming distance: far above chance (0.1) on ten classes
    assert summary["map"]["all"] > 0.4 and (tmp_path / "report.json").is_file()


@needs_tensorflow
def test_thulab_dqn_trains_our_network_through_its_graph(thulab, tmp_path):
    from deephash_engine.deep.run import RunConfig

    cfg = RunConfig.from_dict(dict(method="dqn", dataset="fashion-mnist-mini", nbits=16, seed=0, epochs=3,
                                   threads=1, device="cpu"))
    summary = thulab.ThulabRun("dqn", os.environ["DEEPHASH_THULAB_DIR"], os.environ["DEEPHASH_TF_PYTHON"],
                               cfg).run(tmp_path)
    assert summary["method"] == "peer-dqn" and len(summary["history"]) == 3
    # the codebooks are k-means ones after two epochs: far above chance (0.1) on ten classes
    assert summary["map"]["all"] > 0.4
