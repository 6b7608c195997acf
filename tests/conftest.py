"""Shared fixtures: SIMD levels and seeded random generators."""

from __future__ import annotations

import numpy as np
import pytest

import deephash_engine as de


@pytest.fixture(params=de.available_simd_levels())
def simd_level(request):
    """Runs a test once per SIMD level this machine supports, restoring the default after."""
    previous = de.simd_level()
    de.set_simd_level(request.param)
    yield request.param
    de.set_simd_level(previous)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
