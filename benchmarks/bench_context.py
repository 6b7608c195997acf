"""Context printed beside every benchmark table: CPU, flags, SIMD level, threads, versions."""

from __future__ import annotations

import os
import platform
import statistics
import time


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags(interesting=("popcnt", "avx2", "avx512f", "avx512_vpopcntdq", "avx512vl", "asimd")) -> list[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    have = set(line.split(":", 1)[1].split())
                    return [f for f in interesting if f in have]
    except OSError:
        pass
    return []


def context(threads: int) -> dict:
    import deephash_engine as de

    info = de.build_info()
    ctx = {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "threads": threads,
        "simd_level": info["simd_level"],
        "deephash_engine": info["version"],
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    try:
        import faiss

        ctx["faiss"] = faiss.__version__
    except ImportError:
        ctx["faiss"] = None
    return ctx


def machine_line(ctx: dict) -> str:
    """'CPU model (N cores, flags: ...)' for the first line of a table."""
    return f"{ctx['cpu']} ({ctx['cores']} cores, flags: {' '.join(ctx['cpu_flags'])})"


def print_table_header(header: str) -> None:
    print(header)
    print("-" * len(header))


def wall_times(fn, repeats: int, warmup: int = 1) -> list[float]:
    """The wall time of each of `repeats` runs of fn(), after `warmup` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def timed(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall time of fn() over `repeats` runs after `warmup` runs."""
    return statistics.median(wall_times(fn, repeats, warmup))
