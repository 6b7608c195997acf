"""DeepHash-pytorch's losses as peers in our trainer: same CNN, data, optimiser and epochs.

The peer is the loss code of a checkout of https://github.com/swuxyj/DeepHash-pytorch (MIT
licence), read from disk at run time; nothing of it is copied into this project. From each
method file (``DPSH.py``, ``HashNet.py``, ...) only the function and class definitions and the
plain imports are executed: the training script around them (data loaders, the AlexNet backbone,
``torchvision``) is left out, and ``config_dataset`` is replaced by one that describes our data.
The file's own ``get_config()`` supplies the loss's hyper-parameters, so each peer runs at the
defaults its authors chose; only the optimiser settings in it are ignored (every run here uses
the benchmark's Adam, learning rate and schedule).

:func:`register_peers` defines, for every method that has a peer, a loss ``peer-<method>`` in the
registry of :mod:`deephash_engine.deep.losses`, so ``train_run`` trains it like any method:

    from deephash_pytorch_peer import register_peers
    register_peers("/path/to/DeepHash-pytorch")   # -> ["peer-dpsh", "peer-hashnet", ...]

CNNH's loss learns its target codes from the training labels when it is built; here it is built
when the trainer hands the labels over (``prepare``, before the first epoch), with the file's own
stage one (and its files written to a temporary folder, removed afterwards).

The label-free scripts (unsupervised BiHalf and GreedyHash) have no loss module: their model's
``forward`` runs a frozen VGG-16 and the hash layer, and returns the loss. Their peer calls that
``forward`` itself on a stand-in model whose backbone passes the batch's frozen features through
and whose hash layer returns our outputs, so the research code computes the codes, the
similarities and the loss, as in its training step.

What the research scripts do between steps is kept: HashNet's scale grows as
``sqrt(epoch // step_continuation + 1)`` at each epoch start, DSDH's B and W step runs at each
epoch start, DPN-A re-estimates its targets at each epoch end. Python's ``random`` (CSQ and DPN
draw targets with it) is seeded from the run's torch seed.
"""

from __future__ import annotations

import ast
import os
import random
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import torch

from deephash_engine.deep.losses import HashLoss

#: our method -> (file, loss class, info string of the run) in DeepHash-pytorch. DBDH, ISDH and
#: IDHN name their loss class DPSHLoss.
PEERS = {
    "dpsh": ("DPSH.py", "DPSHLoss", "[DPSH]"),
    "hashnet": ("HashNet.py", "HashNetLoss", "[HashNet]"),
    "dsh": ("DSH.py", "DSHLoss", "[DSH]"),
    "dhn": ("DHN.py", "DHNLoss", "[DHN]"),
    "dch": ("DCH.py", "DCHLoss", "[DCH]"),
    "csq": ("CSQ.py", "CSQLoss", "[CSQ]"),
    "greedyhash": ("GreedyHash.py", "GreedyHashLoss", "[GreedyHash]"),
    "dsdh": ("DSDH.py", "DSDHLoss", "[DSDH]"),
    "dtsh": ("DTSH.py", "DTSHLoss", "[DTSH]"),
    "lcdsh": ("LCDSH.py", "LCDSHLoss", "[LCDSH]"),
    "dfh": ("DFH.py", "DFHLoss", "[DFH]"),
    "dbdh": ("DBDH.py", "DPSHLoss", "[DBDH]"),
    "qsmih": ("QSMIH.py", "QSMIHLoss", "[QSMIH]"),
    "isdh": ("ISDH.py", "DPSHLoss", "[ISDH]"),
    "idhn": ("IDHN.py", "DPSHLoss", "[IDHN]"),
    "dshsd": ("DSHSD.py", "DSHSDLoss", "[DSHSD]"),
    "dpn": ("DPN.py", "DPNLoss", "[DPN]"),
    "dpn-a": ("DPN.py", "DPNLoss", "[DPN-A]"),
    "cnnh": ("CNNH.py", "CNNHLoss", "[CNNH]"),
    # label-free: the loss is computed in the model's forward (see PeerLabelFreeLoss)
    "bihalf": ("Unsupervised_BiHalf.py", "BiHalfModelUnsupervised", "[BiHalf Unsupervised]"),
    "greedyhash-unsup": ("Unsupervised_GreedyHash.py", "GreedyHashModelUnsupervised", "[GreedyHash Unsupervised]"),
}


def cnnh_bytes(n: int) -> int:
    """What CNNH's loss needs at least when it is built: its first stage holds two (n, n) float32
    matrices over the training set (the +-1 similarity S and the residual L)."""
    return 2 * 4 * n * n


#: Peers whose memory grows faster than the training set: method -> bytes needed at least for n
#: training images (checked before they are built; see PeerTooLarge).
PEER_BYTES: dict[str, Callable[[int], int]] = {"cnnh": cnnh_bytes}


class PeerTooLarge(MemoryError):
    """The research code would need more memory than this machine has available: the peer is not
    run (``deep_fmnist.py`` records it as skipped and goes on)."""


def available_bytes() -> int:
    """Memory available for a new allocation without swapping (``MemAvailable``; where the
    kernel does not report it, the free pages)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(name: str, needs_bytes: Callable[[int], int] | None, n: int) -> None:
    """Raise :class:`PeerTooLarge` when ``needs_bytes(n)`` exceeds the memory available."""
    if needs_bytes is None:
        return
    need, have = needs_bytes(n), available_bytes()
    if need > have:
        raise PeerTooLarge(f"{name}: the research code needs at least {need / 2**30:.1f} GiB for {n} training "
                           f"images and {have / 2**30:.1f} GiB are available; not run")


#: Methods whose research file computes the loss inside its model's forward (a frozen VGG-16,
#: a Linear hash layer, the loss on the layer's outputs and the VGG features), not in a loss
#: module.
LOSS_IN_MODEL = {"bihalf", "greedyhash-unsup"}

#: Top-level imports of a method file that belong to its training script or its backbone, not to
#: its loss.
SCRIPT_MODULES = {"utils.tools", "network", "torchvision"}


class _Backbone:
    """Stands in for the research code's backbones in ``get_config()``; never built."""

    def __init__(self, *args, **kwargs) -> None:
        raise RuntimeError("the peer's own backbone is not used; the benchmark supplies the model")


def _describe_our_data(config: dict) -> dict:
    """Replaces the research code's ``config_dataset``: the data facts are set by the wrapper."""
    config.setdefault("topK", -1)
    config.setdefault("n_class", 10)
    return config


def load_method_file(path: Path) -> dict:
    """Execute the imports, functions and classes of a DeepHash-pytorch method file (nothing
    else) and return its namespace."""
    tree = ast.parse(path.read_text(), filename=str(path))
    kept = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module in SCRIPT_MODULES:
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)):
            kept.append(node)
    module = ast.Module(body=kept, type_ignores=[])
    namespace = {"__name__": f"deephash_pytorch_peer.{path.stem}", "config_dataset": _describe_our_data,
                 "AlexNet": _Backbone, "ResNet": _Backbone,
                 # what the skipped star import of network.py brings that the model classes use
                 "nn": torch.nn}
    exec(compile(module, str(path), "exec"), namespace)  # noqa: S102 - a local checkout, by request
    return namespace


def register_peers(peer_dir: str | Path, methods=None) -> list[str]:
    """Register ``peer-<method>`` losses for the methods (default: every one of :data:`PEERS`)
    whose file is in ``peer_dir``; returns the registered names."""
    peer_dir = Path(peer_dir)
    if not (peer_dir / "DPSH.py").is_file():
        raise FileNotFoundError(f"peer_dir: expected a DeepHash-pytorch checkout (DPSH.py in it), got {peer_dir}")
    names = []
    for method in PEERS if methods is None else methods:  # an empty list registers none
        if method not in PEERS:
            raise ValueError(f"methods: expected names from {sorted(PEERS)}, got {method!r}")
        filename, class_name, info = PEERS[method]
        namespace = load_method_file(peer_dir / filename)
        base = PeerLabelFreeLoss if method in LOSS_IN_MODEL else PeerLoss
        attrs = {"method": f"peer-{method}", "peer_class": namespace[class_name],
                 "peer_config": staticmethod(namespace["get_config"]), "peer_info": info,
                 "peer_globals": namespace,
                 # CNNH's loss takes the training labels when it is built (see prepare)
                 "needs_train_targets": method == "cnnh", "needs_bytes": staticmethod(PEER_BYTES.get(method))}
        type(f"Peer{class_name}_{method.replace('-', '_')}", (base,), attrs)  # registers itself
        names.append(f"peer-{method}")
    return names


class PeerLoss(HashLoss):
    """A DeepHash-pytorch loss module behind our loss interface; subclasses name the peer."""

    needs_index = True
    peer_class = None
    peer_config = None
    peer_info = ""
    peer_globals: dict = {}

    def __init__(self, nbits: int, num_train: int, num_classes: int) -> None:
        super().__init__(nbits)
        random.seed(torch.initial_seed())
        config = self.peer_config()
        # our data and device; "cifar10" selects the single-label branches of CSQ, DPN, DSHSD
        config.update(device=torch.device("cpu"), dataset="cifar10", n_class=num_classes,
                      num_train=num_train, batch_size=128, info=self.peer_info)
        self.config = config
        # the globals the research scripts set in their main loop (DSDH's B and W step reads them)
        self.peer_globals.update(config=config, bit=nbits)
        if self.needs_train_targets:
            self.peer = None  # built by prepare(), from the training labels
        else:
            self.peer = self.peer_class(config, nbits)
            self._start_epoch(0)

    def prepare(self, train_targets: torch.Tensor) -> None:
        check_memory(self.method, self.needs_bytes, int(train_targets.shape[0]))
        with tempfile.TemporaryDirectory() as folder:
            self.config["H_save_path"] = folder + "/"
            self.peer = self.peer_class(self.config, train_targets.float(), self.nbits)
        self._start_epoch(0)

    def _start_epoch(self, epoch: int) -> None:
        if hasattr(self.peer, "updateBandW"):  # DSDH: B and W at each epoch start
            self.peer.updateBandW(self.config["device"])
        if "step_continuation" in self.config:  # HashNet: the scale of tanh(scale * u)
            self.peer.scale = (epoch // self.config["step_continuation"] + 1) ** 0.5

    def compute(self, u, target, index):
        return self.peer(u, target.float(), index, self.config)

    def on_epoch_end(self, epoch: int) -> None:
        if "-A" in self.config["info"]:  # DPN-A: targets from the epoch's outputs
            self.peer.update_target_vectors()
        self._start_epoch(epoch + 1)


class _PassThrough:
    """The stand-in model of :class:`PeerLabelFreeLoss`: a backbone that passes its input through
    (``vgg.features``, ``vgg.classifier``) and a hash layer that returns the outputs it is given."""

    training = True

    def __init__(self, u: torch.Tensor) -> None:
        self.vgg = SimpleNamespace(features=lambda x: x, classifier=lambda x: x)
        self.fc_encode = lambda _features: u


class PeerLabelFreeLoss(PeerLoss):
    """A DeepHash-pytorch label-free script's loss: its model's ``forward`` (in training mode) on
    the batch's frozen features, with our hash outputs standing in for its hash layer's."""

    label_free = True
    needs_index = False

    def __init__(self, nbits: int, num_train: int, num_classes: int) -> None:
        HashLoss.__init__(self, nbits)
        random.seed(torch.initial_seed())
        config = self.peer_config()
        config.update(device=torch.device("cpu"), num_train=num_train, batch_size=128, info=self.peer_info)
        self.config = config
        self.peer_globals.update(config=config, bit=nbits)  # its Hash function reads config
        self.peer = None  # the model class is not built: its __init__ loads VGG-16 weights

    def compute(self, u, target, index):
        return self.peer_class.forward(_PassThrough(u), target.to(u.dtype))

    def on_epoch_end(self, epoch: int) -> None:
        """Nothing: between epochs the scripts only lower the learning rate (kept as ours)."""
