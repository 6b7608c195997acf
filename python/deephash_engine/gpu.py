"""GPU search: ``GpuFlatIndex`` and ``BinaryIndex.to_gpu`` where the package was built with a CUDA
compiler; elsewhere the same names raise a RuntimeError that says why (docs/gpu.md)."""

from __future__ import annotations

from typing import Any, NoReturn

from . import _core

BUILT_WITH_CUDA: bool = bool(_core.build_info()["cuda"])


def _no_cuda(what: str) -> NoReturn:
    raise RuntimeError(
        f"{what} needs a build of deephash_engine with CUDA: this one was built without a CUDA "
        "compiler (install the package where nvcc works, or set DEEPHASH_CUDA=ON to require it)")


if BUILT_WITH_CUDA:
    GpuFlatIndex = _core.GpuFlatIndex
else:
    class GpuFlatIndex:  # type: ignore[no-redef]
        """Placeholder in builds without CUDA: constructing it raises RuntimeError."""

        def __init__(self, nbits: int, device: int = 0) -> None:
            _no_cuda("GpuFlatIndex")

        @staticmethod
        def from_index(index: Any, device: int = 0) -> NoReturn:
            _no_cuda("GpuFlatIndex.from_index")

    def _to_gpu(self: Any, device: int = 0) -> NoReturn:
        _no_cuda("to_gpu")

    _core.BinaryIndex.to_gpu = _to_gpu  # type: ignore[attr-defined]


def cuda_available() -> bool:
    """True when this build has CUDA and at least one device is usable now."""
    return BUILT_WITH_CUDA and _core.cuda_device_count() > 0
