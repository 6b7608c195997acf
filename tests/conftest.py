"""Shared fixtures: SIMD levels and seeded random generators."""

from __future__ import annotations

import numpy as np
import pytest

import deephash_engine as de


def _level_in_force() -> str:
    """The forced SIMD level, or "auto" where the per-width plans are in force."""
    return de.simd_level() if de.build_info()["simd_forced"] else "auto"


@pytest.fixture(params=de.available_simd_levels())
def simd_level(request):
    """Runs a test once per SIMD level this machine supports (forced for every code width), then
    restores what was in force before: the same forced level, or the per-width plans."""
    previous = _level_in_force()
    de.set_simd_level(request.param)
    yield request.param
    de.set_simd_level(previous)


@pytest.fixture
def restore_engine():
    """For tests that set the core's thread count or SIMD level themselves: both restored after."""
    threads, level = de.get_num_threads(), _level_in_force()
    yield
    de.set_num_threads(threads)
    de.set_simd_level(level)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
