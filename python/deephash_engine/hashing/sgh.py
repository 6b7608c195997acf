"""SGH: Stochastic Generative Hashing (Dai, Guo, Kumar, He & Song, ICML 2017).

Not the scalable graph hashing method of the same initials. A linear encoder gives bit
probabilities p = sigmoid(x W + b); a binary stochastic neuron turns them into codes
h = 1[p >= eps]; a linear generative decoder reconstructs x_hat = (h U) * |scale| + shift.
Training minimises, per minibatch (sums over its rows),

    1/2 ||x - x_hat||^2 + alpha * BCE(logits = x W + b, target = h) + beta * (||U||^2 + ||W||^2) / 2

with Adam, back-propagating through the neuron with the reference's rule
dL/dlogits = p (1 - p) dL/dh. Defaults follow the released code: eps = 0.5 fixed (its
"deterministic output"; ``stochastic=True`` draws eps ~ U(0, 1) per entry as in the paper), lr
1e-2 constant, batch 500 drawn with replacement, 5000 iterations, alpha = beta = 1e-3,
W ~ N(0, 1/d), b ~ N(0, 1), U ~ N(0, 1/nbits), scale = per-feature variance, shift = mean.
Codes are 1[x W + b >= 0] (p >= 1/2), for training and new points alike; encoding needs only
NumPy, training needs PyTorch (CPU or CUDA).
"""

from __future__ import annotations

import math

import numpy as np

from .base import Hasher, check_matrix, check_positive_float, check_positive_int


def _import_torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "SGH.fit needs PyTorch; install it with 'pip install torch' (or the 'deep' extra "
            "of deephash-engine). Encoding a saved SGH model does not need it."
        ) from exc
    return torch


def _neuron_function(torch):
    """The binary stochastic neuron as an autograd Function (built lazily: torch is optional)."""

    class BinaryStochasticNeuron(torch.autograd.Function):
        @staticmethod
        def forward(ctx, logits, eps):
            p = torch.sigmoid(logits)
            ctx.save_for_backward(p)
            return (p >= eps).to(logits.dtype)

        @staticmethod
        def backward(ctx, grad_h):
            (p,) = ctx.saved_tensors
            return grad_h * p * (1.0 - p), None

    return BinaryStochasticNeuron


class SGH(Hasher):
    """Stochastic generative hashing with a linear encoder and decoder.

    Parameters: ``n_iter`` (5000), ``batch_size`` (500), ``lr`` (1e-2), ``alpha`` (1e-3, weight
    of the encoder's BCE term), ``beta`` (1e-3, weight decay), ``stochastic`` (False: eps = 0.5),
    ``device`` (None = CUDA when available, else CPU; or a torch device string), ``num_threads``
    (CPU threads torch may use during fit, restored afterwards; None leaves torch's setting;
    small problems on a busy machine train far faster with 1), ``progress`` (show a tqdm bar),
    ``seed``. After fit, ``loss_history_`` holds the per-sample training loss of
    every minibatch.
    """

    method = "SGH"
    _learned = ("enc_weight_", "enc_bias_", "dec_weight_", "dec_scale_", "dec_shift_", "loss_history_")

    def __init__(
        self,
        nbits: int,
        n_iter: int = 5000,
        batch_size: int = 500,
        lr: float = 1e-2,
        alpha: float = 1e-3,
        beta: float = 1e-3,
        stochastic: bool = False,
        device: str | None = None,
        num_threads: int | None = None,
        progress: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(nbits, seed)
        self.n_iter = check_positive_int(n_iter, "n_iter", minimum=0)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.lr = check_positive_float(lr, "lr")
        self.alpha = check_positive_float(alpha, "alpha", allow_zero=True)
        self.beta = check_positive_float(beta, "beta", allow_zero=True)
        if not isinstance(stochastic, (bool, np.bool_)):
            raise TypeError(f"stochastic: expected a bool, got {type(stochastic).__name__}")
        self.stochastic = bool(stochastic)
        if device is not None and not isinstance(device, str):
            raise TypeError(f"device: expected None or a device string such as 'cpu', got {device!r}")
        self.device = device
        self.num_threads = None if num_threads is None else check_positive_int(num_threads, "num_threads")
        self.progress = bool(progress)

    def _fit(self, X: np.ndarray) -> None:
        torch = _import_torch()
        previous_threads = torch.get_num_threads()
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        try:
            self._train(torch, X)
        finally:
            if self.num_threads is not None:
                torch.set_num_threads(previous_threads)

    def _train(self, torch, X: np.ndarray) -> None:
        device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        n, d = X.shape
        c = self.nbits
        gen = torch.Generator().manual_seed(self.seed)
        data = torch.as_tensor(X, dtype=torch.float32).to(device)
        W = (torch.randn(d, c, generator=gen) / math.sqrt(d)).to(device).requires_grad_()
        b = torch.randn(c, generator=gen).to(device).requires_grad_()
        U = (torch.randn(c, d, generator=gen) / math.sqrt(c)).to(device).requires_grad_()
        scale = data.var(dim=0, unbiased=False).clamp_min(1e-7).clone().requires_grad_()
        shift = data.mean(dim=0).clone().requires_grad_()
        optimiser = torch.optim.Adam([W, b, U, scale, shift], lr=self.lr)
        neuron = _neuron_function(torch)
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        losses = torch.empty(self.n_iter, device=device)
        steps = range(self.n_iter)
        if self.progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc=f"SGH {c} bits", leave=False)
        for step in steps:
            idx = torch.randint(n, (self.batch_size,), generator=gen).to(device)
            x = data[idx]
            if self.stochastic:
                eps = torch.rand(self.batch_size, c, generator=gen).to(device)
            else:
                eps = torch.full((1, c), 0.5, device=device)
            logits = x @ W + b
            h = neuron.apply(logits, eps)
            x_hat = (h @ U) * scale.abs() + shift
            loss = (
                0.5 * (x - x_hat).pow(2).sum()
                + self.alpha * bce(logits, h.detach(), reduction="sum")
                + self.beta * 0.5 * (U.pow(2).sum() + W.pow(2).sum())
            )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses[step] = loss.detach() / self.batch_size
        self.enc_weight_ = W.detach().cpu().double().numpy()
        self.enc_bias_ = b.detach().cpu().double().numpy()
        self.dec_weight_ = U.detach().cpu().double().numpy()
        self.dec_scale_ = scale.detach().abs().cpu().double().numpy()
        self.dec_shift_ = shift.detach().cpu().double().numpy()
        self.loss_history_ = losses.cpu().double().numpy()

    def _learned_layout(self):
        d, c = self.n_features_in_, self.nbits
        return {"enc_weight_": ("float64", (d, c)), "enc_bias_": ("float64", (c,)),
                "dec_weight_": ("float64", (c, d)), "dec_scale_": ("float64", (d,)),
                "dec_shift_": ("float64", (d,)), "loss_history_": ("float64", (self.n_iter,))}

    def _project(self, X: np.ndarray) -> np.ndarray:
        return X @ self.enc_weight_ + self.enc_bias_

    def reconstruct(self, X) -> np.ndarray:
        """The decoder's reconstruction (n, d) of the rows of X from their codes."""
        h = (self.project(X) >= 0).astype(np.float64)
        return (h @ self.dec_weight_) * self.dec_scale_ + self.dec_shift_

    def reconstruction_error(self, X) -> float:
        """Mean over rows of 1/2 ||x - x_hat||^2 (the quantity the reference notebook logs)."""
        x_hat = self.reconstruct(X)
        X_arr = check_matrix(X, "X")
        return float(0.5 * np.sum((X_arr - x_hat) ** 2) / X_arr.shape[0])
