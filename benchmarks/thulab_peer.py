"""thulab/DeepHash's models as peers: DQN's, DVSQ's, DTQ's, DHN's and DCH's TensorFlow graphs train our network.

thulab/DeepHash (Cao, Long et al.'s own code for DQN, DVSQ, DTQ, DHN and DCH) is TensorFlow 1
graph code around an AlexNet. Here its model class runs unchanged under TensorFlow 2's
``tf.compat.v1``, in a process of its own (TensorFlow is not a dependency of this project; give
the interpreter of an environment that has it with ``--tf-python``), with the AlexNet replaced by
a placeholder for our network's outputs: its graph computes its loss and the loss's gradient with
respect to those outputs, and our network (the run's backbone and hash head) takes that gradient
through our optimiser, data and epochs, as the DeepHash-pytorch peers do. What the research code
does between steps runs as its ``train`` does it, with its own functions and defaults:

- DQN: the quantization weight is 0 in the first epoch and ``cq_lambda`` (1e-4) from the second;
  every two epochs (``train_iter % (2 * epoch_iter) == 0``) the codebooks are re-initialised by
  k-means on each subspace of the stored outputs (``initial_centers``) and the codes re-assigned
  by ICM (``update_codes_batch``: 3 sweeps over batches of 500); each step's loss uses the codes
  last assigned to its items. Its network output is ``tanh`` of the last layer (``with_tanh``).
- DVSQ (``train_cq``): the same weight rule; at the first two-epoch boundary k-means codebooks,
  then at every boundary ICM codes (its own ICM, measured through the label vectors) and a
  least-squares refit of its composite codebooks (``update_centers``). Its loss
  (``cos_softmargin_multi_label``, the scripts' choice) asserts a 300-d output, the width of its
  word2vec label vectors: our network's head is 300 wide for it, and the label vectors are the
  class names embedded as for our DVSQ (all-MiniLM-L6-v2 and the same seeded projection, here to
  300), written to the text file it reads.
- DTQ (``train_cq``): its own triplets, mined by its ``Dataset.update_triplets`` (the script's
  "margin" selection, margin 30 on squared Euclidean distances, 20 parts, halved while fewer than
  64,000 triplets) from our network's outputs of every training image, before training and after
  each epoch; its codebooks initialised by k-means, then its ICM codes and least-squares refit
  after each epoch (``update_codes_and_centers``); its quantization weight (the script's
  ``cq_lambda``, 0). A step is one of its triplet batches of a third of our batch size in
  triplets (as many images as our step), as many steps an epoch as ours (its own epoch is a pass
  over every mined triplet, about ten times more here). Its validation fits the codebooks on the
  database being searched (k-means, then ICM and least squares), and so is it evaluated here.
  Its script's output is 64-d whatever the code length (``--output-dim``), so is our head for it.
- DHN and DCH (binary codes): nothing runs between steps (their ``train`` is the step alone). The
  settings are their scripts': DHN's ``train_val.sh`` (``normed_cross_entropy``: the pairwise
  likelihood on ``alpha`` (10) times the cosine of two outputs, weighted to balance similar and
  dissimilar pairs; quantization weight 0), DCH's ``train_val_script.py`` (Cauchy cross-entropy
  with ``gamma`` 20 on the squared Euclidean distance of the tanh outputs, ``normed=False`` as its
  ``apply_loss_function`` calls it; quantization weight 0). Each is evaluated as DeepHash-pytorch's
  peers are: the sign of the outputs as codes, ranked by Hamming distance.

Evaluation of the quantization methods as in their ``validation``: queries keep their outputs,
the database is encoded by ICM with the learned codebooks, and the database is ranked by the
inner product of a query's output with each item's reconstruction (``get_mAPs_AQD``). Model
selection (every method): validation mAP after each epoch, as for our runs, with the codebooks
of that epoch. Code length: ``nbits / 8`` codebooks of
256 codewords (thulab's scripts use 4 x 256 on a 300-d layer; DQN's layer here is our head's
``nbits`` outputs, as for our DQN; DVSQ's is 300 wide, see above).

Usage (``deep_fmnist.py --thulab-dir DIR --tf-python PY`` runs it beside ours)::

    git clone https://github.com/thulab/DeepHash thulab-DeepHash
    python -m venv tf-env && tf-env/bin/pip install tensorflow-cpu scikit-learn
    python benchmarks/deep_fmnist.py --protocol fashion-mnist-mini --methods dqn --bits 16 32 64 \\
        --seeds 0 1 2 --thulab-dir thulab-DeepHash --tf-python tf-env/bin/python

DHN and DCH have DeepHash-pytorch peers too; with ``--peer-dir`` and ``--thulab-dir`` together,
thulab's runs are named ``thulab-<method>`` so that both peers run beside ours.
"""

from __future__ import annotations

import ast
import copy
import json
import pickle
import random
import subprocess
import sys
import time
import traceback
import types
from pathlib import Path

import numpy as np

#: our method -> (model file and class in the checkout, description)
THULAB_PEERS = {"dqn": ("DeepHash/model/dqn/dqn.py", "DQN", "[thulab DQN]"),
                "dvsq": ("DeepHash/model/dvsq/dvsq.py", "DVSQ", "[thulab DVSQ]"),
                "dtq": ("DeepHash/model/dtq/dtq.py", "DTQ", "[thulab DTQ]"),
                "dhn": ("DeepHash/model/dhn/dhn.py", "DHN", "[thulab DHN]"),
                "dch": ("DeepHash/model/dch/dch.py", "DCH", "[thulab DCH]")}

#: The binary-code methods: sign codes, Hamming ranking; no codebooks.
BINARY = {"dhn", "dch"}

#: DHN's settings from examples/dhn/train_val.sh and train_val_script.py (the model reads a dict).
#: The network's own optimiser settings are unused here (our optimiser trains our network), and
#: ``finetune_all`` is off: the layers it would list are ours, outside its graph.
DHN_DEFAULTS = {"loss_type": "normed_cross_entropy", "alpha": 10.0, "cq_lambda": 0.0, "learning_rate": 5e-5,
                "decay_step": 5000, "learning_rate_decay_factor": 0.5, "val_batch_size": 100,
                "img_model": "alexnet", "finetune_all": False}

#: DCH's script arguments (examples/dch/train_val_script.py defaults); it reads them as attributes.
DCH_DEFAULTS = {"lr": 0.005, "gamma": 20.0, "q_lambda": 0.0, "decay_step": 10000, "decay_factor": 0.1,
                "with_tanh": True, "val_batch_size": 16, "img_model": "alexnet", "finetune_all": False}

#: The research defaults of thulab's scripts (examples/<method>/train_val_script.py and
#: train_val.sh) that the model reads from its config; the network's own settings (learning rate
#: and its decay) are unused here, where our optimiser trains our network.
DEFAULTS = {"cq_lambda": 1e-4, "max_iter_update_b": 3, "max_iter_update_Cb": 1, "code_batch_size": 500,
            "n_subcenter": 256, "val_batch_size": 100, "learning_rate": 0.002, "decay_step": 500,
            "learning_rate_decay_factor": 0.5, "finetune_all": False, "img_model": "alexnet"}
METHOD_DEFAULTS = {"dqn": {}, "dtq": {},
                   "dvsq": {"loss_type": "cos_softmargin_multi_label", "margin_param": 0.7, "learning_rate": 0.02}}

#: DVSQ's losses assert a 300-d output (the width of its word2vec label vectors).
DVSQ_WIDTH = 300

#: DTQ's script trains a 64-d output (its --output-dim default) whatever the code length.
DTQ_WIDTH = 64

#: DTQ's script arguments (examples/dtq/train_val_script.py defaults) that its model reads; it
#: takes them as attributes. Its code batch of 500 and its triplet settings are the script's.
DTQ_DEFAULTS = {"cq_lambda": 0.0, "max_iter_update_b": 3, "max_iter_update_Cb": 1, "code_batch_size": 500,
                "subcenter": 256, "val_batch_size": 16, "img_model": "alexnet", "with_tanh": True,
                "dist_type": "euclidean2", "lr": 3e-5, "decay_factor": 0.1, "decay_step": 10000, "val_freq": 1,
                "triplet_margin": 30.0, "select_strategy": "margin", "n_part": 20, "triplet_thresold": 64000,
                "finetune_all": False}

#: Top-level imports of a thulab model file that this runner provides itself.
SKIPPED_IMPORTS = {"tensorflow", "architecture", "evaluation", "util", "distance", "model"}


# ---- the worker: runs under --tf-python ---------------------------------------------------------

def _load_source(path: Path, namespace: dict) -> dict:
    """Execute the imports (except SKIPPED_IMPORTS), functions and classes of a research file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    kept = []
    for node in tree.body:
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] in SKIPPED_IMPORTS for a in node.names):
            continue
        if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").split(".")[0] in SKIPPED_IMPORTS):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)):
            kept.append(node)
    # a module of its own, registered (thulab's distance files look their functions up in
    # sys.modules[__name__])
    module = types.ModuleType(namespace["__name__"])
    module.__dict__.update(namespace)
    sys.modules[module.__name__] = module
    exec(compile(ast.Module(body=kept, type_ignores=[]), str(path), "exec"), module.__dict__)  # noqa: S102 - a local checkout, by request
    return module.__dict__


class _OutputsInput:
    """What the research model builds in place of its AlexNet: a placeholder for our network's
    (tanh) outputs, passed through an identity layer whose two variables stand for the last layer
    the research code expects (its optimiser op is built on them and never run)."""

    def __init__(self, tf) -> None:
        self.tf, self.placeholder = tf, None

    def __call__(self, img, batch_size, output_dim, stage, model_weights, with_tanh=True, val_batch_size=32):
        tf = self.tf
        self.placeholder = tf.placeholder(tf.float32, [None, output_dim], name="our_outputs")
        weights = tf.Variable(np.eye(output_dim, dtype=np.float32), name="identity_weights")
        biases = tf.Variable(np.zeros(output_dim, dtype=np.float32), name="zero_biases")
        out = tf.matmul(self.placeholder, weights) + biases
        return out, {"fc8": [weights, biases]}, [], [weights, biases]


class _TrainingItems:
    """The dataset object the research ``Dataset`` wraps: only its size is used here."""

    def __init__(self, n: int) -> None:
        self.n_samples, self.train = n, True


class _LabelledItems:
    """The dataset object DTQ's ``Dataset`` wraps: the labels it mines triplets from, and items
    that are their own indices (the driver feeds the network the images they name)."""

    def __init__(self, labels: np.ndarray, train: bool = True) -> None:
        self.labels, self.n_samples, self.train = labels, len(labels), train

    def get_labels(self) -> np.ndarray:
        return self.labels

    def data(self, index):
        return np.asarray(index), self.labels[index]


class _Worker:
    def __init__(self, checkout: str, method: str) -> None:
        import tensorflow

        self.tf = tensorflow.compat.v1
        self.tf.disable_v2_behavior()
        file, self.class_name, _ = THULAB_PEERS[method]
        root = Path(checkout)
        # DTQ's files import its distance functions (NumPy in util.py, TensorFlow in the model)
        helpers = _load_source(root / "DeepHash/util/__init__.py", {"__name__": "thulab_helpers"})
        np_distance = _load_source(root / "DeepHash/distance/npversion.py",
                                   {"__name__": "thulab_np_distance", "util": _Namespace(helpers)})
        tf_distance = _load_source(root / "DeepHash/distance/tfversion.py",
                                   {"__name__": "thulab_tf_distance", "tf": self.tf})
        util = _load_source(root / Path(file).parent / "util.py",
                            {"__name__": "thulab_util", "distance": np_distance["distance"]})
        self.inputs = _OutputsInput(self.tf)
        self.ns = _load_source(root / file, {"__name__": f"thulab_{method}", "tf": self.tf,
                                             "img_alexnet_layers": self.inputs, "MAPs_CQ": None, "MAPs": None,
                                             "plot": None,
                                             "Dataset": util["Dataset"], "distance": tf_distance["distance"]})
        self.method, self.model = method, None

    # -- DTQ: triplets mined by its own code, its own schedule ---------------------------------
    def _build(self, config, seed: int):
        """A fresh graph of the research model, seeded, and the gradient of its loss."""
        self.tf.reset_default_graph()
        self.tf.set_random_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        self.model = self.ns[self.class_name](config)
        self.grad = self.tf.gradients(self.model.loss, [self.inputs.placeholder])[0]
        return self.model

    def init_dtq(self, config: dict, labels: np.ndarray, seed: int) -> dict:
        self._build(_Namespace(config), seed)
        # integer labels, as its data provider gives (its triplet check applies np.invert to them)
        self.train_set = self.ns["Dataset"](_LabelledItems(np.asarray(labels).astype(np.int64)), config["output_dim"],
                                            config["subspace"] * config["subcenter"])
        return {}

    def embed(self, outputs: np.ndarray) -> dict:
        """``update_embedding_and_triplets`` with our network's outputs of every training item."""
        m, ds = self.model, self.train_set
        ds.output[:] = outputs
        ds.update_triplets(m.triplet_margin, n_part=m.n_part, select_strategy=m.select_strategy)
        n_triplets = ds.triplets.shape[0]
        if n_triplets < m.triplet_thresold and m.n_part > 1:  # its rule: halve the parts
            m.n_part = int(m.n_part / 2)
        return {"triplets": int(n_triplets)}

    def init_codebooks(self) -> dict:
        m = self.model
        m.sess.run(m.C.assign(m.initial_centers(self.train_set.output)))
        m.update_codes_and_centers(self.train_set)
        return {}

    def start_epoch(self) -> dict:
        self.train_set.finish_epoch()
        return {}

    def triplet_batch(self, size: int) -> dict:
        index, _, self.batch_codes = self.train_set.next_batch_triplet(size)
        self.batch_size = size
        return {"index": index}

    def triplet_step(self, outputs: np.ndarray) -> dict:
        m = self.model
        loss, grad = m.sess.run([m.loss, self.grad], {self.inputs.placeholder: outputs, m.b_img: self.batch_codes})
        self.train_set.feed_batch_triplet_output(self.batch_size, outputs)
        return {"loss": float(loss), "grad": grad}

    def epoch_end(self) -> dict:
        self.model.update_codes_and_centers(self.train_set)
        return {}

    def validate_dtq(self, database: np.ndarray) -> dict:
        """Its ``validation``: codebooks initialised and fitted on the database's outputs (they
        replace the training ones, as there), database codes by ICM; returns the reconstructions."""
        m = self.model
        db = self.ns["Dataset"](_LabelledItems(np.zeros((len(database), 1), np.float32), train=False),
                                database.shape[1], m.subspace_num * m.subcenter_num)
        db.output[:] = database
        m.sess.run(m.C.assign(m.initial_centers(db.output)))
        m.update_codes_and_centers(db)
        return {"reconstructions": db.codes @ m.sess.run(m.C)}

    # -- DHN, DCH: the loss of a batch and its gradient, nothing between steps ----------------------
    def init_binary(self, config: dict, seed: int) -> dict:
        # DCH takes its settings as attributes (vars(config)), DHN as a dict
        self._build(_Namespace(config) if self.method == "dch" else config, seed)
        return {}

    def binary_step(self, outputs: np.ndarray, labels: np.ndarray) -> dict:
        m = self.model
        loss, grad = m.sess.run([m.loss, self.grad], {self.inputs.placeholder: outputs, m.img_label: labels})
        return {"loss": float(loss), "grad": grad}

    def init(self, config: dict, n_train: int, seed: int, steps_per_epoch: int) -> dict:
        tf = self.tf
        self.config = config
        m = self._build(config, seed)
        self.lam = tf.placeholder(tf.float32, [])
        self.set_lambda = m.q_lambda.assign(self.lam)
        self.C_value = tf.placeholder(tf.float32, m.C.shape)
        self.set_C = m.C.assign(self.C_value)
        code_dim = config["n_subspace"] * config["n_subcenter"]
        self.train_set = self.ns["Dataset"](_TrainingItems(n_train), config["output_dim"], code_dim)
        self.train_iter, self.epoch, self.epoch_iter = 0, 0, steps_per_epoch
        return {"code_dim": code_dim}

    def step(self, outputs: np.ndarray, labels: np.ndarray, index: np.ndarray) -> dict:
        """One iteration of the research ``train`` loop, our batch in place of its own."""
        m, ds = self.model, self.train_set
        if self.epoch <= 1:  # weight 0 in the first epoch, cq_lambda from the second
            m.sess.run(self.set_lambda, {self.lam: self.epoch * self.config["cq_lambda"]})
        loss, grad = m.sess.run([m.loss, self.grad], {self.inputs.placeholder: outputs, m.img_label: labels,
                                                      m.b_img: ds.codes[index]})
        ds.output[index] = outputs
        if self.train_iter % (2 * self.epoch_iter) == 0 and self.train_iter != 0:
            rounds = range(self.config["max_iter_update_Cb"])
            if self.method == "dqn":  # DQN.train: k-means codebooks, then ICM codes
                self.epoch += 1
                for _ in rounds:
                    m.sess.run(m.C.assign(m.initial_centers(ds.output)))
                    m.update_codes_batch(ds, self.config["code_batch_size"])
            else:  # DVSQ.train_cq: k-means codebooks the first time, then ICM codes and least squares
                if self.epoch == 0:
                    for _ in rounds:
                        m.sess.run(m.C.assign(m.initial_centers(ds.output)))
                self.epoch += 1
                for _ in rounds:
                    m.update_codes_batch(ds, self.config["code_batch_size"])
                    m.update_centers(ds)
        self.train_iter += 1
        return {"loss": float(loss), "grad": grad}

    def codebooks(self) -> dict:
        return {"C": self.model.sess.run(self.model.C)}

    def encode(self, outputs: np.ndarray, C: np.ndarray) -> dict:
        """ICM codes of outputs under codebooks C (batches of code_batch_size, the last padded)."""
        m, size = self.model, self.config["code_batch_size"]
        current = m.sess.run(m.C)
        m.sess.run(self.set_C, {self.C_value: C})
        code_dim = self.config["n_subspace"] * self.config["n_subcenter"]
        codes = np.zeros((len(outputs), code_dim), dtype=np.float32)
        for start in range(0, len(outputs), size):
            batch = outputs[start:start + size]
            padded = np.concatenate([batch, np.repeat(batch[-1:], size - len(batch), axis=0)])
            codes[start:start + len(batch)] = m.update_codes_ICM(padded, np.zeros((size, code_dim)))[:len(batch)]
        m.sess.run(self.set_C, {self.C_value: current})
        return {"codes": codes}


class _Namespace:
    """Attribute access to a dict (DTQ reads its settings as attributes; npversion calls util.sign)."""

    def __init__(self, values: dict) -> None:
        self.__dict__.update(values)


def worker_main(checkout: str, method: str) -> None:
    out, inp = sys.stdout.buffer, sys.stdin.buffer
    sys.stdout = sys.stderr  # the research code prints progress: keep the reply stream clean
    worker = None
    while True:
        try:
            command, kwargs = pickle.load(inp)
        except EOFError:
            return
        try:
            if worker is None:
                worker = _Worker(checkout, method)
            reply = ("ok", getattr(worker, command)(**kwargs))
        except Exception:  # noqa: BLE001 - handed to the driver, which raises it
            reply = ("error", traceback.format_exc())
        pickle.dump(reply, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()


# ---- the driver: runs in the project's environment ----------------------------------------------

class _WorkerProcess:
    def __init__(self, tf_python: str, checkout: str, method: str) -> None:
        self.proc = subprocess.Popen([tf_python, str(Path(__file__).resolve()), "--worker", checkout, method],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def __call__(self, command: str, **kwargs):
        pickle.dump((command, kwargs), self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self.proc.stdin.flush()
        try:
            status, value = pickle.load(self.proc.stdout)
        except EOFError:
            raise RuntimeError(f"thulab worker exited with status {self.proc.wait()} (its stderr is above)") from None
        if status == "error":
            raise RuntimeError(f"thulab worker failed in {command}:\n{value}")
        return value

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def label_vectors(data, width: int, seed: int) -> np.ndarray:
    """The class names' label embeddings as our DVSQ builds them (all-MiniLM-L6-v2, then the fixed
    seeded projection to ``width``): both DVSQs see the same label vectors."""
    from deephash_engine.deep.quantization.label_embeddings import CLASS_NAMES, embed_class_names, project_to_width

    names = CLASS_NAMES.get(data.source)
    if names is None:
        raise ValueError(f"dvsq: no class names for the data set {data.source!r}")
    return project_to_width(embed_class_names(names), width, seed)


class ThulabRun:
    """One thulab model trained on a protocol's data; :meth:`run` returns a summary shaped like
    :func:`deephash_engine.deep.run.train_run`'s and writes report.json and summary.json."""

    def __init__(self, method: str, checkout: str | Path, tf_python: str, cfg) -> None:
        if method not in THULAB_PEERS:
            raise ValueError(f"method: expected one of {sorted(THULAB_PEERS)}, got {method!r}")
        file, _, self.info = THULAB_PEERS[method]
        if not (Path(checkout) / file).is_file():
            raise FileNotFoundError(f"thulab_dir: expected {Path(checkout) / file} (a thulab/DeepHash checkout)")
        self.method, self.checkout, self.tf_python, self.cfg = method, str(checkout), tf_python, cfg

    def _outputs(self, model, dataset) -> tuple[np.ndarray, np.ndarray]:
        from deephash_engine.deep.evaluation import compute_outputs

        u, targets = compute_outputs(model, dataset, 512, "cpu", False, "encode")
        return np.tanh(np.asarray(u, dtype=np.float32)), np.asarray(targets)

    def _map(self, worker, model, C, queries, database, topk) -> float:
        from deephash_engine.metrics import mean_average_precision, mean_average_precision_from_distances

        if self.method in BINARY:  # sign codes, Hamming ranking, as DeepHash-pytorch's peers
            from deephash_engine.deep.evaluation import encode

            q, ql = encode(model, queries)
            d, dl = encode(model, database)
            return float(mean_average_precision(q, d, ql, dl, topk=topk))

        zq, ql = self._outputs(model, queries)
        zd, dl = self._outputs(model, database)
        if self.method == "dtq":  # its validation fits the codebooks on the database itself
            recon = worker("validate_dtq", database=zd)["reconstructions"]
        else:
            recon = worker("encode", outputs=zd, C=C)["codes"] @ C
        return float(mean_average_precision_from_distances(-(zq @ recon.T), ql, dl, topk=topk))

    def _train_epoch(self, worker, model, optimiser, loader, train_x) -> float:
        """One epoch of our network under the research graph's loss; returns the last loss."""
        import torch

        model.train()
        if self.method in BINARY:
            for x, t, _ in loader:
                z = torch.tanh(model(x))
                step = worker("binary_step", outputs=z.detach().numpy().astype(np.float32),
                              labels=t.numpy().astype(np.float32))
                optimiser.zero_grad()
                z.backward(torch.from_numpy(step["grad"]))
                optimiser.step()
            return step["loss"]
        if self.method != "dtq":
            for x, t, index in loader:
                z = torch.tanh(model(x))
                step = worker("step", outputs=z.detach().numpy().astype(np.float32),
                              labels=t.numpy().astype(np.float32), index=index.numpy())
                optimiser.zero_grad()
                z.backward(torch.from_numpy(step["grad"]))
                optimiser.step()
            return step["loss"]
        # DTQ: its own triplet batches (a third of our batch size in triplets, so as many images a
        # step as ours), as many steps as our epoch has; its codebook step and new triplets after
        worker("start_epoch")
        triplets = max(1, loader.batch_size // 3)
        for _ in range(len(loader)):
            index = worker("triplet_batch", size=triplets)["index"]
            z = torch.tanh(model(torch.from_numpy(np.ascontiguousarray(train_x[index]))))
            step = worker("triplet_step", outputs=z.detach().numpy().astype(np.float32))
            optimiser.zero_grad()
            z.backward(torch.from_numpy(step["grad"]))
            optimiser.step()
        worker("epoch_end")
        worker("embed", outputs=self._train_outputs(model, train_x))
        return step["loss"]

    def _train_outputs(self, model, train_x) -> np.ndarray:
        """Our network's (tanh) outputs of every training item, in order (evaluation mode)."""
        import torch

        model.eval()
        with torch.no_grad():
            out = [torch.tanh(model(torch.from_numpy(train_x[i:i + 512]))).numpy() for i in range(0, len(train_x), 512)]
        model.train()
        return np.concatenate(out).astype(np.float32)

    def run(self, out_dir: str | Path) -> dict:
        import torch
        from torch.utils.data import DataLoader

        from deephash_engine.deep.data.datasets import load_protocol
        from deephash_engine.deep.models import build_model
        from deephash_engine.deep.run import _val_database
        from deephash_pytorch_scripts import ScriptDataset, dataset_arrays

        cfg = self.cfg
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(int(cfg.threads or torch.get_num_threads()))
        data = load_protocol(cfg.dataset, seed=cfg.seed, root=cfg.root, lists=cfg.lists or None,
                             split_path=out / "split.npz", flip=cfg.flip)
        val_database, _ = _val_database(data.train, cfg.val_database_size, cfg.seed)
        train_x, train_y = dataset_arrays(data.train)
        width = {"dvsq": DVSQ_WIDTH, "dtq": DTQ_WIDTH}.get(self.method, cfg.nbits)  # the network's output width
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model, width, data.in_channels, data.image_size, cfg.weights)
        optimiser = torch.optim.Adam(model.param_groups(cfg.lr, cfg.head_lr_mult), lr=cfg.lr,
                                     weight_decay=cfg.weight_decay)
        # batches as our trainer draws them: shuffled, the last partial batch dropped
        loader = DataLoader(ScriptDataset(train_x, train_y), batch_size=cfg.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(cfg.seed), drop_last=len(train_x) > cfg.batch_size)
        config = {**DEFAULTS, **METHOD_DEFAULTS.get(self.method, {}), "device": "/cpu:0", "output_dim": width,
                  "label_dim": int(data.num_classes), "n_subspace": cfg.nbits // 8, "batch_size": cfg.batch_size,
                  "max_iter": cfg.epochs * len(loader), "model_weights": "", "save_dir": str(out),
                  "log_dir": str(out), "dataset": cfg.dataset}
        binary_config = {**(DCH_DEFAULTS if self.method == "dch" else DHN_DEFAULTS), "device": "/cpu:0",
                         "output_dim": width, "label_dim": int(data.num_classes), "batch_size": cfg.batch_size,
                         "max_iter": cfg.epochs * len(loader), "iter_num": cfg.epochs * len(loader),
                         "model_weights": "", "save_dir": str(out), "log_dir": str(out), "dataset": cfg.dataset}
        dtq_config = {**DTQ_DEFAULTS, "output_dim": width, "label_dim": int(data.num_classes),
                      "subspace": cfg.nbits // 8, "batch_size": max(1, cfg.batch_size // 3), "epochs": cfg.epochs,
                      "model_weights": "", "save_dir": str(out), "log_dir": str(out), "dataset": cfg.dataset}
        if self.method == "dvsq":  # the label vectors it reads, as a text file of (classes, 300)
            config["wordvec_dict"] = str(out / "label_vectors.txt")
            np.savetxt(config["wordvec_dict"], label_vectors(data, width, cfg.seed))
        worker = _WorkerProcess(self.tf_python, self.checkout, self.method)
        try:
            history, best = [], None
            start = time.perf_counter()
            if self.method in BINARY:
                worker("init_binary", config=binary_config, seed=cfg.seed)
            elif self.method == "dtq":  # its train_cq: triplets from the first outputs, then codebooks
                worker("init_dtq", config=dtq_config, labels=train_y, seed=cfg.seed)
                worker("embed", outputs=self._train_outputs(model, train_x))
                worker("init_codebooks")
            else:
                worker("init", config=config, n_train=len(train_x), seed=cfg.seed, steps_per_epoch=len(loader))
            for epoch in range(cfg.epochs):
                loss = self._train_epoch(worker, model, optimiser, loader, train_x)
                model.eval()
                C = None if self.method in BINARY or self.method == "dtq" else worker("codebooks")["C"]
                val_map = self._map(worker, model, C, data.val, val_database, data.split.topk)
                history.append({"epoch": epoch + 1, "val_map": val_map, "loss": loss})
                if best is None or val_map > best["val_map"]:
                    best = {"epoch": epoch + 1, "val_map": val_map, "state": copy.deepcopy(model.state_dict()), "C": C}
            train_seconds = time.perf_counter() - start
            model.load_state_dict(best["state"])
            if self.method in BINARY:  # sign codes, encoded once for every cut-off and the report
                from deephash_engine.deep.evaluation import encode
                from deephash_engine.metrics import mean_average_precision

                q, ql = encode(model, data.query)
                d, dl = encode(model, data.database)
                maps = {("all" if k is None else str(k)): float(mean_average_precision(q, d, ql, dl, topk=k))
                        for k in cfg.map_topk}
            else:
                maps = {("all" if k is None else str(k)):
                        self._map(worker, model, best["C"], data.query, data.database, k) for k in cfg.map_topk}
        finally:
            worker.close()
        if self.method in BINARY:  # the full metrics report of the sign codes, as for our runs
            from deephash_engine.deep.run import write_report

            write_report(out, q, d, ql, dl, data.split.topk,
                         f"peer-{self.method} {cfg.nbits} bits on {cfg.dataset} (thulab/DeepHash's graph)")
        else:
            report = {"search": "adc", "method": f"peer-{self.method}", "map": maps,
                      "note": f"{self.info}: ICM codes of the database, ranked by inner product with the query output"}
            (out / "report.json").write_text(json.dumps(report, indent=2))
        summary = {"method": f"peer-{self.method}", "dataset": cfg.dataset, "nbits": cfg.nbits, "seed": cfg.seed,
                   "epochs": cfg.epochs, "map": maps, "protocol_topk": data.split.topk,
                   "selected_epoch": best["epoch"], "best_val_map": best["val_map"], "train_seconds": train_seconds,
                   "history": history, "script": self.info}
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], sys.argv[3])
    else:
        sys.exit("run through benchmarks/deep_fmnist.py --thulab-dir DIR --tf-python PY (see the module doc)")
