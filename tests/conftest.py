"""Shared fixtures: SIMD levels and seeded random generators."""

from __future__ import annotations

import numpy as np
import pytest

import deephash_engine as de


@pytest.fixture(params=de.available_simd_levels())
def simd_level(request):
    """Runs a test once per SIMD level this machine supports (forced for every code width), then
    restores what was in force before: the same forced level, or the per-width plans."""
    previous = de.simd_level() if de.build_info()["simd_forced"] else "auto"
    de.set_simd_level(request.param)
    yield request.param
    de.set_simd_level(previous)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
