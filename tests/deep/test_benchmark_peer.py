"""benchmarks/deephash_pytorch_peer.py: a research method file's loss, loaded without its training
script, registered as peer-<method> and trained by our trainer.

The method files here are written for the test in the research code's shape (star imports of its
script modules, a get_config() that calls config_dataset, a loss module called as
criterion(u, y, ind, config), module globals set by the script's main loop, a main block); the
real checkout is not needed.
"""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from deephash_engine.deep import losses as L
from deephash_engine.datasets.fashion_mnist import fashion_mnist_dir
from deephash_engine.deep.methods import build_loss

HERE = Path(__file__).resolve().parents[2] / "benchmarks"

DPSH_FILE = '''
from utils.tools import *
from network import *
import torch
import torch.optim as optim

SIDE_EFFECTS.append("module body ran")


def get_config():
    config = {"alpha": 0.25, "net": AlexNet, "optimizer": {"type": optim.RMSprop}}
    return config_dataset(config)


class DPSHLoss(torch.nn.Module):
    def __init__(self, config, bit):
        super().__init__()
        self.U = torch.zeros(config["num_train"], bit)
        self.seen_config = config

    def forward(self, u, y, ind, config):
        self.U[ind, :] = u.data
        return config["alpha"] * (u ** 2).mean() + y.sum() * 0.0

    def updateBandW(self, device):
        # reads the globals the research scripts set in their main loop
        self.steps = getattr(self, "steps", 0) + config["alpha"] * 0 + bit * 0 + 1


if __name__ == "__main__":
    raise SystemExit("the main block must not run")
'''


@pytest.fixture()
def peer(tmp_path):
    sys.path.insert(0, str(HERE))
    spec = importlib.util.spec_from_file_location("deephash_pytorch_peer_under_test", HERE / "deephash_pytorch_peer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "DPSH.py").write_text(DPSH_FILE)
    before = dict(L.LOSSES)
    yield module, tmp_path
    L.LOSSES.clear()
    L.LOSSES.update(before)  # the registry other tests iterate over stays as it was
    sys.path.remove(str(HERE))


def test_only_definitions_and_plain_imports_run(peer):
    module, folder = peer
    namespace = module.load_method_file(folder / "DPSH.py")  # no SIDE_EFFECTS name: the statement is skipped
    config = namespace["get_config"]()
    assert config["alpha"] == 0.25 and config["n_class"] == 10 and config["topK"] == -1
    with pytest.raises(RuntimeError, match="backbone is not used"):
        config["net"](16)


def test_registered_peer_trains_through_our_loss_interface(peer):
    module, folder = peer
    assert module.register_peers(folder, ["dpsh"]) == ["peer-dpsh"]
    loss = build_loss("peer-dpsh", 16, num_train=40, num_classes=4)
    assert loss.needs_index and loss.config["n_class"] == 4 and loss.config["num_train"] == 40
    assert loss.config["dataset"] == "cifar10" and loss.config["info"] == "[DPSH]"
    assert loss.peer.steps == 1  # the B and W step ran before the first epoch
    u = torch.randn(8, 16, requires_grad=True)
    y = torch.nn.functional.one_hot(torch.arange(8) % 4, 4)
    value = loss(u, y, torch.arange(8) + 30)
    assert torch.allclose(value, 0.25 * (u.detach() ** 2).mean())
    value.backward()
    assert torch.allclose(u.grad, 0.5 * u.detach() / u.numel())
    assert torch.equal(loss.peer.U[30:38], u.detach())  # the peer's own bank got the batch
    loss.on_epoch_end(0)
    assert loss.peer.steps == 2  # and again at the next epoch's start


def test_peer_dir_must_be_a_checkout(peer, tmp_path):
    module, _ = peer
    with pytest.raises(FileNotFoundError, match="DeepHash-pytorch checkout"):
        module.register_peers(tmp_path / "empty")
    with pytest.raises(ValueError, match="methods: expected names from .* got 'adsh'"):
        module.register_peers(peer[1], ["adsh"])  # no loss module to wrap


CNNH_FILE = '''
from utils.tools import *
from network import *
import os
import torch


def get_config():
    return config_dataset({"T": 2, "H_save_path": "save/CNNH/", "net": AlexNet})


class CNNHLoss(torch.nn.Module):
    def __init__(self, config, train_labels, bit):
        super().__init__()
        S = (train_labels @ train_labels.t() > 0).float() * 2 - 1
        self.H = (S[:, :1] * torch.ones(1, bit)).sign()  # stands in for stage one
        os.makedirs(config["H_save_path"], exist_ok=True)
        path = "%sH_T(%d)_bit(%d).pt" % (config["H_save_path"], config["T"], bit)
        torch.save(self.H, path)  # the research code keeps its stage-one codes on disk
        self.saved = path

    def forward(self, u, y, ind, config):
        return (u - self.H[ind]).pow(2).mean()
'''


def test_cnnh_peer_is_built_from_the_training_labels(peer):
    module, folder = peer
    (folder / "CNNH.py").write_text(CNNH_FILE)
    assert module.register_peers(folder, ["cnnh"]) == ["peer-cnnh"]
    loss = build_loss("peer-cnnh", 8, num_train=6, num_classes=3)
    assert loss.needs_train_targets and loss.peer is None  # built when the trainer has the labels
    labels = torch.nn.functional.one_hot(torch.tensor([0, 1, 0, 2, 0, 1]), 3)
    loss.prepare(labels)
    assert torch.equal(loss.peer.H[:, 0], torch.tensor([1.0, -1, 1, -1, 1, -1]))
    assert not Path(loss.peer.saved).exists()  # its files went to a temporary folder, now removed
    assert not Path(loss.peer.saved).parent.exists()
    u = torch.zeros(2, 8)
    assert torch.allclose(loss(u, labels[:2], torch.tensor([0, 1])), torch.tensor(1.0))


def test_cnnh_peer_too_large_for_the_memory_is_not_built(peer, monkeypatch):
    module, folder = peer
    (folder / "CNNH.py").write_text(CNNH_FILE)
    module.register_peers(folder, ["cnnh"])
    assert module.cnnh_bytes(59000) == 2 * 4 * 59000 ** 2  # its S and L over the full protocol
    loss = build_loss("peer-cnnh", 8, num_train=6, num_classes=3)
    labels = torch.nn.functional.one_hot(torch.tensor([0, 1, 0, 2, 0, 1]), 3)
    monkeypatch.setattr(module, "available_bytes", lambda: module.cnnh_bytes(6) - 1)
    with pytest.raises(module.PeerTooLarge, match=r"peer-cnnh: the research code needs at least .* for 6 "):
        loss.prepare(labels)
    assert loss.peer is None
    monkeypatch.setattr(module, "available_bytes", lambda: module.cnnh_bytes(6))
    loss.prepare(labels)
    assert loss.peer is not None


LABEL_FREE_FILE = '''
from utils.tools import *
from network import *
import torch
import torch.nn.functional as F
from torchvision import models


def get_config():
    return config_dataset({"gamma": 2.0, "net": BiHalfModelUnsupervised})


class BiHalfModelUnsupervised(nn.Module):
    def __init__(self, bit):
        super().__init__()
        self.vgg = models.vgg16(pretrained=True)  # never built by the peer
        self.fc_encode = nn.Linear(4096, bit)

    class Hash(torch.autograd.Function):
        @staticmethod
        def forward(ctx, U):
            return U.sign().to(config["device"])

        @staticmethod
        def backward(ctx, g):
            return g * config["gamma"]

    def forward(self, x):
        x = self.vgg.features(x)
        x = x.view(x.size(0), -1)
        x = self.vgg.classifier(x)
        h = self.fc_encode(x)
        if not self.training:
            return h.sign()
        b = BiHalfModelUnsupervised.Hash.apply(h)
        return F.mse_loss(F.cosine_similarity(b[:2], b[2:]), F.cosine_similarity(x[:2], x[2:]))
'''


def test_label_free_peer_runs_the_model_forward_on_our_outputs_and_features(peer):
    module, folder = peer
    (folder / "Unsupervised_BiHalf.py").write_text(LABEL_FREE_FILE)  # imports torchvision: skipped
    assert module.register_peers(folder, ["bihalf"]) == ["peer-bihalf"]
    loss = build_loss("peer-bihalf", 4, num_train=10, num_classes=3)
    assert loss.label_free and not loss.needs_index and loss.peer is None
    assert loss.config["device"] == torch.device("cpu") and loss.config["gamma"] == 2.0
    u = torch.tensor([[1.0, -2, 3, 4], [-1, 2, 3, -4], [1, 2, -3, 4], [0.5, -2, 3, 4]], requires_grad=True)
    x = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])  # the frozen features
    value = loss(u, x)
    b = u.detach().sign()
    cos = torch.nn.functional.cosine_similarity
    expected = torch.nn.functional.mse_loss(cos(b[:2], b[2:]), cos(x[:2], x[2:]))
    assert torch.allclose(value, expected)
    value.backward()
    assert u.grad is not None and u.grad.abs().sum() > 0  # through the file's Hash, scaled by its gamma
    from deephash_engine.deep.run import RunConfig
    assert RunConfig.from_dict({"method": "peer-bihalf"}).model == "pca"  # frozen features, as ours


SCRIPT_FILE = '''
from utils.tools import *
from network import *
import numpy as np
import torch
import torch.optim as optim


def get_config():
    return config_dataset({"num_samples": 7, "max_iter": 9, "epoch": 9, "test_map": 9, "save_path": "save/ADSH",
                           "optimizer": {"type": optim.SGD, "optim_params": {"lr": 5.0}}, "net": AlexNet,
                           "device": torch.device("cuda:1")})


def train_val(config, bit):
    train_loader, test_loader, dataset_loader, num_train, num_test, num_dataset = get_data(config)
    labels = torch.cat([cls for _, cls, _ in tqdm(dataset_loader)]).float()
    net = config["net"](bit).to(config["device"])
    optimizer = config["optimizer"]["type"](net.parameters(), **(config["optimizer"]["optim_params"]))
    config["seen"], config["opt"], config["labels"] = [], optimizer, labels
    V = torch.zeros(num_dataset, bit)
    for it in range(config["max_iter"]):
        select = np.random.permutation(range(num_dataset))[0: config["num_samples"]]
        train_loader.dataset.data = np.array(dataset_loader.dataset.data)[select]
        train_loader.dataset.targets = np.array(dataset_loader.dataset.targets)[select]
        seen = 0
        for epoch in range(config["epoch"]):
            for image, label, ind in train_loader:
                optimizer.zero_grad()
                u = net(image).tanh()
                s = (label @ labels[select].t() > 0).float() * 2 - 1
                loss = (u @ V[select].t() / bit - s[:, :len(select)]).pow(2).mean() + (u - V[select[ind]]).pow(2).mean()
                loss.backward()
                optimizer.step()
                seen += len(ind)
        with torch.no_grad():
            V[select] = net(torch.from_numpy(train_loader.dataset.data)).sign()
        config["seen"].append(seen)
        if (it + 1) % config["test_map"] == 0:
            validate(config, 0, test_loader, dataset_loader, net, bit, epoch, num_dataset)
'''


def script_run(folder, method, filename, text, **config):
    """A ScriptRun of the method file ``text`` on fashion-mnist-mini, one thread."""
    from deephash_engine.deep.run import RunConfig
    from deephash_pytorch_scripts import ScriptRun

    (folder / filename).write_text(text)
    cfg = RunConfig.from_dict({"method": method, "dataset": "fashion-mnist-mini", "threads": 1, "device": "cpu",
                               "val_database_size": 500, **config})
    return ScriptRun(method, folder, cfg)


@pytest.mark.skipif(fashion_mnist_dir() is None, reason="needs Fashion-MNIST (apt-get install dataset-fashion-mnist)")
def test_script_peer_runs_the_research_training_loop_on_our_data(peer):
    _, folder = peer
    settings = {"nbits": 16, "epochs": 2, "seed": 3, "head_lr_mult": 10.0}
    out = folder / "run"
    summary = script_run(folder, "adsh", "ADSH.py", SCRIPT_FILE, **settings).run(out)
    again = script_run(folder, "adsh", "ADSH.py", SCRIPT_FILE, **settings)
    assert again.run(folder / "again")["map"] == summary["map"]  # seeded: the same run twice
    config = again.namespace["config"]
    # the budget of our ADSH at 2 epochs: 2 iterations of n/2 samples, 2 passes each
    assert config["max_iter"] == 2 and config["num_samples"] == 1000 and config["seen"] == [2000, 2000]
    assert config["device"] == torch.device("cpu") and "save_path" not in config
    assert config["labels"].shape == (2000, 10)  # dataset_loader: the training split, one-hot
    opt = config["opt"]  # the benchmark's optimiser over the model's groups, whatever the script asks
    assert isinstance(opt, torch.optim.Adam) and [g["lr"] for g in opt.param_groups] == [1e-3, 1e-2]
    assert [h["epoch"] for h in again.history] == [1, 2] and summary["selected_epoch"] in (1, 2)
    assert summary["best_val_map"] == max(h["val_map"] for h in again.history)
    assert 0.1 < summary["map"]["all"] <= 1.0 and summary["method"] == "peer-adsh"
    assert (out / "report.json").is_file() and (out / "summary.json").is_file()


OWN_NET_FILE = '''
from utils.tools import *
from network import *
import torch


def get_config():
    return config_dataset({"net": None, "epoch": 9, "test_map": 9})


class Net(nn.Module):
    def __init__(self, hash_bit, num_classes, pretrained=True):
        super().__init__()
        self.conv_layer = nn.Sequential(nn.Conv2d(3, 4, kernel_size=3))  # for its own 3-channel images
        self.feature_layer = nn.Linear(999, 12)
        self.hash_like_layer = nn.Sequential(nn.Linear(12, hash_bit), nn.Tanh())
        self.classification_layer = nn.Linear(hash_bit, num_classes, bias=False)

    def forward(self, x, istraining=False):
        x = self.conv_layer(x)
        x = x.view(x.size(0), -1)
        feature = self.feature_layer(x)
        h = self.hash_like_layer(feature)
        b = (h >= 0).float() * 2 - 1
        return (feature, h, self.classification_layer(b)) if istraining else b


def train_val(config, bit):
    train_loader, test_loader, dataset_loader, num_train, num_test, num_dataset = get_data(config)
    net = config["net"](bit, config["n_class"])
    optimizer = config["optimizer"]["type"](net.parameters(), **(config["optimizer"]["optim_params"]))
    config["built"], config["opt"] = net, optimizer
    for epoch in range(config["epoch"]):
        for image, label, ind in train_loader:
            optimizer.zero_grad()
            feature, h, y_pre = net(image, istraining=True)
            s = (label @ label.t() > 0).float()
            d = (h.unsqueeze(1) - h.unsqueeze(0)).pow(2).sum(2)
            loss = (s * d + (1 - s) * (2 * bit - d).clamp(min=0)).mean()
            loss.backward()
            optimizer.step()
        if (epoch + 1) % config["test_map"] == 0:
            validate(config, 0, test_loader, dataset_loader, net, bit, epoch, num_dataset)
'''


@pytest.mark.skipif(fashion_mnist_dir() is None, reason="needs Fashion-MNIST (apt-get install dataset-fashion-mnist)")
def test_script_peer_with_its_own_network_gets_our_backbone(peer):
    _, folder = peer
    run = script_run(folder, "pcdh", "PCDH.py", OWN_NET_FILE, nbits=8, epochs=1)
    summary = run.run(folder / "run")
    net = run.namespace["config"]["built"]
    # the CNN is ours, sized into the script's feature layer; the layers above it are the script's
    assert net.conv_layer.out_features == net.feature_layer.in_features and net.feature_layer.out_features == 12
    assert type(net).__name__ == "Net" and type(net.conv_layer).__module__.startswith("deephash_engine")
    opt = run.namespace["config"]["opt"]
    assert isinstance(opt, torch.optim.Adam) and len(opt.param_groups) == 1
    assert {id(p) for p in opt.param_groups[0]["params"]} == {id(p) for p in net.parameters()}
    assert summary["selected_epoch"] == 1 and 0.1 < summary["map"]["all"] <= 1.0


def test_adsh_budget_keeps_the_sample_visits_and_caps_the_sample(peer):
    from deephash_pytorch_scripts import ADSH_MAX_SAMPLES, adsh_budget

    # the mini protocol: our epochs exactly (n / 2 samples, 2 passes, a V step each)
    assert adsh_budget(3, 2000) == {"max_iter": 3, "num_samples": 1000, "epoch": 2, "test_map": 1}
    # the full one: the paper's m, as many iterations as our 3 epochs' sample visits
    big = adsh_budget(3, 59000)
    assert big["num_samples"] == ADSH_MAX_SAMPLES == 2000
    assert big["max_iter"] * big["num_samples"] * big["epoch"] >= 3 * 59000 > (big["max_iter"] - 1) * 4000
    assert big["test_map"] == 15 and adsh_budget(1, 3)["num_samples"] == 1


def test_daph_needs_two_training_set_square_matrices(peer):
    from deephash_pytorch_scripts import SCRIPT_PEERS, daph_bytes

    assert daph_bytes(59000) == 2 * 4 * 59000 ** 2  # 27.8 GB: more than this machine's memory
    assert SCRIPT_PEERS["daph"][4] is daph_bytes
    assert SCRIPT_PEERS["adsh"][4] is None and SCRIPT_PEERS["pcdh"][4] is None
    module, folder = peer
    assert module.register_peers(folder, []) == []  # a grid of script peers only wraps no loss file


@pytest.mark.skipif(fashion_mnist_dir() is None, reason="needs Fashion-MNIST (apt-get install dataset-fashion-mnist)")
def test_a_script_too_large_for_the_memory_stops_before_training_and_the_grid_goes_on(peer, monkeypatch):
    import json

    import deephash_pytorch_peer as peers
    import deephash_pytorch_scripts as scripts

    _, folder = peer
    run = script_run(folder, "daph", "DAPH.py", OWN_NET_FILE.replace("def train_val", "def unused_train_val")
                     + "\ndef train_val(config, bit):\n    raise AssertionError('trained')\n", nbits=8, epochs=1)
    monkeypatch.setattr(peers, "available_bytes", lambda: scripts.daph_bytes(2000) - 1)
    with pytest.raises(peers.PeerTooLarge, match=r"peer-daph: the research code needs at least .* GiB for 2000"):
        run.run(folder / "run")
    # the grid records the peer as skipped and keeps its other rows
    spec = importlib.util.spec_from_file_location("deep_fmnist_under_test", HERE / "deep_fmnist.py")
    grid = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grid)
    out = folder / "grid"
    assert grid.main(["--methods", "daph", "--protocol", "fashion-mnist-mini", "--bits", "8", "--seeds", "0",
                      "--epochs", "1", "--threads", "1", "--peer-dir", str(folder), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in results["runs"]] == ["daph"]
    assert [(s["method"], s["bits"], s["seed"]) for s in results["skipped"]] == [("peer-daph", 8, 0)]
    assert "GiB are available; not run" in results["skipped"][0]["reason"]
