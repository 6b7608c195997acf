"""Turn a trained model into packed codes.

Codes follow the engine's packing contract (the core's :func:`deephash_engine.pack_bits`): bit j
is bit j % 8 of byte j / 8, least significant first, and a raw output x becomes 1 iff x >= 0.
A NaN output has no sign: packing raises instead of turning it into a 0 bit. Scores come from
:mod:`deephash_engine.metrics`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import pack_bits
from .data.datasets import make_loader


def pack_codes(outputs: np.ndarray) -> np.ndarray:
    """(n, nbits) real outputs -> (n, ceil(nbits/8)) uint8 codes, x >= 0 -> 1, LSB first, any nbits >= 1
    (the padding bits of the last byte are 0).

    Raises ValueError when ``outputs`` is not (n, nbits) with nbits >= 1, or holds NaN (the outputs
    of a diverged model)."""
    if outputs.ndim != 2 or outputs.shape[1] < 1:
        raise ValueError(f"outputs: expected (n, nbits) with nbits >= 1, got {outputs.shape}")
    try:
        return pack_bits(outputs)
    except ValueError as exc:  # the shape is checked above, so this is a NaN
        raise ValueError(f"outputs: {exc} (NaN outputs: the model diverged)") from None


@torch.no_grad()
def compute_outputs(model: torch.nn.Module, dataset: Dataset, batch_size: int = 512,
                    device: str | torch.device = "cpu", progress: bool = False,
                    desc: str = "encode") -> tuple[np.ndarray, np.ndarray]:
    """Raw hash outputs (float32) and targets of every item, in dataset order."""
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    outs, targets = [], []
    loader = make_loader(dataset, batch_size, shuffle=False)
    for x, t, _ in tqdm(loader, desc=desc, disable=not progress, leave=False):
        outs.append(model(x.to(device)).float().cpu())
        targets.append(t)
    model.train(was_training)
    return torch.cat(outs).numpy(), torch.cat(targets).numpy()


def with_loss_codes(outputs: np.ndarray, loss, train_index) -> np.ndarray:
    """``outputs`` with the rows of training samples replaced by the codes ``loss`` holds for
    them (:meth:`.losses.HashLoss.database_codes`), when it holds any.

    ``train_index`` gives, for each row, the item's position in the training set, or -1 for an
    item that is not a training sample.
    """
    train_index = np.asarray(train_index, dtype=np.int64)
    if train_index.shape != (outputs.shape[0],):
        raise ValueError(f"train_index: expected shape ({outputs.shape[0]},), got {train_index.shape}")
    rows = np.flatnonzero(train_index >= 0)
    if rows.size == 0:
        return outputs
    codes = loss.database_codes(torch.from_numpy(train_index[rows]))
    if codes is None:
        return outputs
    outputs = outputs.copy()
    outputs[rows] = codes.detach().float().cpu().numpy()
    return outputs


def encode(model, dataset, batch_size=512, device="cpu", progress=False, desc="encode",
           loss=None, train_index=None):
    """Packed codes and targets of every item of ``dataset``. With ``loss`` and ``train_index``
    (see :func:`with_loss_codes`), training samples take the database codes the loss holds."""
    outputs, targets = compute_outputs(model, dataset, batch_size, device, progress, desc)
    if loss is not None and train_index is not None:
        outputs = with_loss_codes(outputs, loss, train_index)
    return pack_codes(outputs), targets
