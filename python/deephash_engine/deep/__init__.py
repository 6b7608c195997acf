"""Deep hashing: datasets with named protocols, backbones + hash heads, losses, a trainer.

Needs PyTorch (``pip install deephash-engine[deep]``). The subpackages are imported on demand:
``from deephash_engine.deep.losses import DPSHLoss``.
"""

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "deephash_engine.deep needs PyTorch: pip install 'deephash-engine[deep]' "
        "(torch==2.13.0, tqdm, pyyaml)"
    ) from exc
