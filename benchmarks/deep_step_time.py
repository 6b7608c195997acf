"""Training-step time of each deep-hashing loss with the small CNN, and the per-epoch ratio to HashNet.

Issue 6 bounds a memory-bank loss's epoch at 1.5x an in-batch loss's. This measures what decides
that, without data or a full epoch: the same model, loss and optimiser as a real Fashion-MNIST run
(``deephash train``: small CNN, Adam at lr 1e-3, each loss at its defaults), fed random
Fashion-MNIST-shaped batches (batch 128, 1x28x28, 10 classes). One step is exactly the trainer's
(``deephash_engine.deep.trainer.train_step``): forward, loss with its per-batch state updates
(bank write, DSDH's discrete B and W steps), backward, optimiser step.

Bank losses run twice: against a fully written bank (every epoch after the first) and a
half-written one (the first epoch's average; the batch writes rows not seen before). The epoch
estimate is ``steps * median step + on_epoch_end`` with ``steps = num_train // batch`` (the
trainer drops the last partial batch): epoch 1 uses the half-written step time, later epochs the
full one. The configurations run in interleaved rounds (a change in the machine's load hits them
alike); times are the median over all timed steps, in process CPU seconds (with one thread, less
disturbed by other jobs than wall time, which is printed beside it).

A method name may end in ``@float32``: that configuration runs with
``DEEPHASH_BANK_PRODUCTS=float32`` (the float32 bank path even where the AMX bank products run),
so that both bank paths are timed in one run, side by side.

    python benchmarks/deep_step_time.py                     # defaults: under 2 minutes, 1 thread
    python benchmarks/deep_step_time.py --methods hashnet dpsh dsh+bank --rounds 5
    python benchmarks/deep_step_time.py --methods hashnet dpsh dpsh@float32 --fills 1.0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

METHODS = ["hashnet", "dpsh", "dsdh", "dsh", "dch", "csq", "greedyhash", "dsh+bank", "dhn+bank"]


def parse_method(spec: str) -> tuple[str, dict, dict]:
    """``name``, ``name+bank`` (the loss with ``memory_bank=True``), either with ``@float32``
    (the float32 bank path): (method, loss parameters, environment while it runs)."""
    env = {}
    if spec.endswith("@float32"):
        spec, env = spec[: -len("@float32")], {"DEEPHASH_BANK_PRODUCTS": "float32"}
    if spec.endswith("+bank"):
        return spec[: -len("+bank")], {"memory_bank": True}, env
    return spec, {}, env


def fill_state(loss, rows, num_classes: int, gen) -> None:
    """Write ``rows`` (indices) into every memory bank of the loss, with N(0, 1) outputs and random
    one-hot labels, and DSDH's codes and sums consistently with them."""
    import torch

    from deephash_engine.deep.losses import DSDHLoss, MemoryBank, sign_pm1
    from deephash_engine.deep.losses.dsdh import dsdh_w_step

    for bank in (m for m in loss.modules() if isinstance(m, MemoryBank)):
        u = torch.randn(len(rows), bank.U.shape[1], generator=gen)
        y = torch.nn.functional.one_hot(torch.randint(num_classes, (len(rows),), generator=gen),
                                        num_classes).float()
        bank.update(u, y, rows)
    if isinstance(loss, DSDHLoss) and len(rows):
        b = sign_pm1(loss.bank.U[rows]).double()
        loss.B[rows] = b.float()
        loss.BtB.copy_(b.t() @ b)
        loss.BtY.copy_(b.t() @ loss.bank.Y[rows].double())
        loss.W.copy_(dsdh_w_step(loss.BtB, loss.BtY, loss.mu, loss.nu))


class Setup:
    """One (method, bank fill): model, loss and optimiser as a real run builds them, and batches."""

    def __init__(self, spec: str, fill: float, args) -> None:
        import torch

        from deephash_engine.deep.losses import MemoryBank
        from deephash_engine.deep.methods import build_loss
        from deephash_engine.deep.models import build_model
        from deephash_engine.deep.trainer import build_optimizer

        method, params, self.env = parse_method(spec)
        torch.manual_seed(args.seed)
        gen = torch.Generator().manual_seed(args.seed)
        self.spec, self.args, self.gen = spec, args, gen
        self.model = build_model("small_cnn", args.bits, 1, 28)
        self.loss = build_loss(method, args.bits, args.num_train, args.classes, **params)
        self.optimizer = build_optimizer(self.model, self.loss, "adam", 1e-3, head_lr_mult=1.0)
        self.bank = any(isinstance(m, MemoryBank) for m in self.loss.modules())
        self.fill = fill if self.bank else None
        # As the trainer does before a fresh run's first epoch, for the losses that read the
        # training labels then (ADSH, CNNH): random one-hot labels of the training set's size.
        if getattr(self.loss, "needs_train_targets", False):
            train_labels = torch.randint(args.classes, (args.num_train,), generator=gen)
            self.loss.prepare(torch.nn.functional.one_hot(train_labels, args.classes).float())
        perm = torch.randperm(args.num_train, generator=gen)
        written = int(round(fill * args.num_train)) if self.bank else 0
        fill_state(self.loss, perm[:written], args.classes, gen)
        self.free = perm[written:]  # a first epoch writes rows not seen before
        self.cpu: list[float] = []
        self.wall: list[float] = []

    def batch(self):
        import torch

        a, gen = self.args, self.gen
        if self.bank and self.fill < 1.0:
            index, self.free = self.free[: a.batch], self.free[a.batch:]
        else:
            index = torch.randperm(a.num_train, generator=gen)[: a.batch]
        x = torch.randn(a.batch, 1, 28, 28, generator=gen)
        labels = torch.randint(a.classes, (a.batch,), generator=gen)
        return x, torch.nn.functional.one_hot(labels, a.classes).float(), index

    def run(self, warmup: int, steps: int) -> None:
        from deephash_engine.deep.trainer import train_step

        self.model.train()
        self.loss.train()
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            for k in range(warmup + steps):
                x, target, index = self.batch()
                c0, w0 = time.process_time(), time.perf_counter()
                train_step(self.model, self.loss, self.optimizer, x, target, index)
                if k >= warmup:
                    self.cpu.append(time.process_time() - c0)
                    self.wall.append(time.perf_counter() - w0)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def result(self) -> dict:
        c0 = time.process_time()
        self.loss.on_epoch_end(0)
        hook = time.process_time() - c0
        return {"method": self.spec, "bank": self.bank, "fill": self.fill,
                "step_cpu_s": statistics.median(self.cpu), "step_wall_s": statistics.median(self.wall),
                "steps": len(self.cpu), "epoch_hook_s": hook}


def epoch_estimates(rows: list[dict], steps_per_epoch: int) -> dict:
    """{method: (epoch-1 seconds, later-epoch seconds)} from the half- and full-bank step times."""
    out = {}
    for spec in dict.fromkeys(r["method"] for r in rows):
        by_fill = {r["fill"]: r for r in rows if r["method"] == spec}
        full = by_fill.get(1.0) or by_fill.get(None)
        first = next((r for f, r in by_fill.items() if f not in (None, 1.0)), full)
        out[spec] = tuple(steps_per_epoch * r["step_cpu_s"] + r["epoch_hook_s"] for r in (first, full))
    return out


def table(rows: list[dict], steps_per_epoch: int) -> str:
    base = {r["fill"]: r for r in rows if r["method"] == "hashnet"}.get(None)
    epochs = epoch_estimates(rows, steps_per_epoch)
    base_epoch = epochs.get("hashnet")
    lines = ["| method | bank | step CPU s | step wall s | step / HashNet | hook s/epoch | "
             "epoch 1 s | epoch 1 / HashNet | epoch 2+ s | epoch 2+ / HashNet |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        bank = "-" if r["fill"] is None else f"{r['fill']:.0%} written"
        ratio = f"{r['step_cpu_s'] / base['step_cpu_s']:.2f}x" if base else "-"
        e1, e2 = epochs[r["method"]]
        first_row = r["fill"] in (None, 1.0)  # epoch figures once per method
        if first_row and base_epoch:
            epoch_cells = (f"{e1:.0f} | {e1 / base_epoch[0]:.2f}x | {e2:.0f} | "
                           f"{e2 / base_epoch[1]:.2f}x")
        elif first_row:
            epoch_cells = f"{e1:.0f} | - | {e2:.0f} | -"
        else:
            epoch_cells = " | | |"
        lines.append(f"| {r['method']} | {bank} | {r['step_cpu_s']:.3f} | {r['step_wall_s']:.3f} | "
                     f"{ratio} | {r['epoch_hook_s']:.3f} | {epoch_cells} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", default=METHODS,
                   help="method names (deephash_engine.deep.methods); name+bank adds memory_bank=True")
    p.add_argument("--bits", type=int, default=64)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--num-train", type=int, default=60000)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--fills", nargs="+", type=float, default=[1.0, 0.5],
                   help="bank fractions written before timing (bank losses only)")
    p.add_argument("--rounds", type=int, default=8, help="rounds over all configurations")
    p.add_argument("--steps", type=int, default=2, help="timed steps per configuration and round")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before them")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="bench_results/deep_step_time.json")
    args = p.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from bench_context import cpu_model

    from deephash_engine import _core

    steps_per_epoch = args.num_train // args.batch
    amx = "AMX bank products" if _core.bank_products_available() else \
        f"no AMX bank products ({_core.bank_products_unavailable_reason()})"
    print(f"# {cpu_model()}, {args.threads} torch thread(s), torch {torch.__version__}; "
          f"batch {args.batch}, {args.bits} bits, bank {args.num_train} rows, "
          f"{steps_per_epoch} steps/epoch, median of {args.rounds} x {args.steps} steps; {amx}", flush=True)
    setups = []
    for spec in args.methods:
        first = Setup(spec, 1.0, args)
        setups.append(first)
        if first.bank:
            setups += [Setup(spec, f, args) for f in args.fills if f != 1.0]
    setups[0].run(args.warmup, 0)  # the first steps of a process pay one-off costs
    for _ in range(args.rounds):  # interleaved, so a change in the machine's load hits all alike
        for setup in setups:
            setup.run(args.warmup, args.steps)
    rows = [setup.result() for setup in setups]
    text = table(rows, steps_per_epoch)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    context = {"cpu": cpu_model(), "threads": args.threads, "torch": torch.__version__,
               "bank_products": _core.bank_products_available(),
               "python": platform.python_version(), "steps_per_epoch": steps_per_epoch,
               "command": "python benchmarks/deep_step_time.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    out.write_text(json.dumps({"context": context, "args": vars(args), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
