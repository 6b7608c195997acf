"""`make demo` step: train one deep hashing method briefly on Fashion-MNIST and print its mAP
next to ITQ's on raw pixels, under the same protocol (1,000 test queries against the 60,000
training images, class relevance, mAP@all).

    python benchmarks/deep_demo.py [--method greedyhash] [--bits 64] [--epochs 1] [--out runs/demo]
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--method", default="greedyhash")
    p.add_argument("--bits", type=int, default=64)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/demo")
    args = p.parse_args(argv)

    from deephash_engine.deep.run import RunConfig, train_run

    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from deep_fmnist import itq_baseline

    start = time.perf_counter()
    cfg = RunConfig(method=args.method, dataset="fashion-mnist", nbits=args.bits, epochs=args.epochs,
                    seed=args.seed, threads=args.threads, device="auto")
    summary = train_run(cfg, args.out, progress=True)
    itq = itq_baseline(args.bits, args.seed)
    print(f"Fashion-MNIST, {args.bits} bits, 1,000 queries vs 60,000 database items (mAP@all):")
    print(f"  {args.method:<12} {summary['map']['all']:.4f}  ({args.epochs} epoch(s), "
          f"{summary['train_seconds']:.0f} s training, {time.perf_counter() - start:.0f} s in all)")
    print(f"  {'ITQ':<12} {itq:.4f}  (raw pixels)" if itq is not None
          else "  ITQ          unavailable (deephash_engine.hashing not installed)")
    print(f"run folder: {args.out} (report.json, report.png, database.index, model.pt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
