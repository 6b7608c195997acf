"""SIMD dispatch, threads, build information and the CUDA switch."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import deephash_engine as de


def test_build_info_describes_the_build():
    info = de.build_info()
    assert info["version"] == de.__version__
    assert "scalar" in info["compiled_simd_levels"]
    assert info["simd_level"] == de.simd_level()
    assert set(info["available_simd_levels"]) <= set(info["compiled_simd_levels"])
    assert isinstance(info["cuda"], bool)
    # the AMX bank products of training: available, or a reason why not
    assert isinstance(info["bank_products"], bool)
    assert (info["bank_products_reason"] == "") == info["bank_products"]


def test_levels_are_switchable_and_restored():
    start = de.simd_level() if de.build_info()["simd_forced"] else "auto"
    for level in de.available_simd_levels():
        de.set_simd_level(level)
        assert de.simd_level() == level
        assert de.build_info()["simd_forced"] is True
    de.set_simd_level("auto")
    assert de.simd_level() == de.available_simd_levels()[-1]
    assert de.build_info()["simd_forced"] is False
    de.set_simd_level(start)


def test_each_width_has_a_measured_plan_unless_a_level_is_forced():
    de.set_simd_level("auto")
    levels = de.available_simd_levels()
    # Scalar is the reference: it runs only when forced or when it is the one level.
    candidates = [lvl for lvl in levels if lvl != "scalar"] or ["scalar"]
    for nbits in (8, 16, 48, 64, 72, 256, 1024, 2048):
        plan = de.simd_plan(nbits)
        assert set(plan) == {"single", "batch"}
        assert plan["single"] in candidates and plan["batch"] in candidates
        assert de.simd_plan(nbits) == plan  # measured once, kept for the process
        assert de.simd_plan()[nbits] == plan
        assert de.build_info()["simd_plan"][nbits] == plan
    for level in levels:
        de.set_simd_level(level)
        assert de.simd_plan(72) == {"single": level, "batch": level}
    de.set_simd_level("auto")
    assert de.simd_plan(72) == de.build_info()["simd_plan"][72]
    # a length that is not whole bytes runs the kernels of its byte width
    assert de.simd_plan(12) == de.simd_plan(16) and de.simd_plan(1) == de.simd_plan(8)
    for bad in (0, -8, de.MAX_NBITS + 1):
        with pytest.raises(ValueError, match="nbits"):
            de.simd_plan(bad)


def test_forced_level_answers_like_the_plans(rng):
    codes = rng.integers(0, 256, (5000, 6), dtype=np.uint8)
    index = de.FlatIndex(48)
    index.add(codes)
    de.set_simd_level("auto")
    planned = index.search(codes[:40], 7)
    for level in de.available_simd_levels():
        de.set_simd_level(level)
        D, I = index.search(codes[:40], 7)
        np.testing.assert_array_equal(D, planned[0])
        np.testing.assert_array_equal(I, planned[1])
    de.set_simd_level("auto")


def test_unknown_or_unsupported_level_is_rejected():
    with pytest.raises(ValueError, match="sse9"):
        de.set_simd_level("sse9")
    missing = [lvl for lvl in ("avx2", "avx512", "neon") if lvl not in de.available_simd_levels()]
    for level in missing:
        with pytest.raises(ValueError, match=level):
            de.set_simd_level(level)


@pytest.mark.parametrize("level", ["scalar", "bogus"])
def test_environment_variable_forces_a_level(level):
    env = dict(os.environ, DEEPHASH_SIMD=level)
    out = subprocess.run([sys.executable, "-c", "import deephash_engine as d; print(d.simd_level())"],
                         env=env, capture_output=True, text=True, check=True)
    expected = "scalar" if level == "scalar" else de.available_simd_levels()[-1]
    assert out.stdout.strip() == expected
    out = subprocess.run([sys.executable, "-c", "import deephash_engine as d; print(d.simd_plan(256)['batch'])"],
                         env=env, capture_output=True, text=True, check=True)
    if level == "scalar":
        assert out.stdout.strip() == "scalar"


def test_thread_count_is_settable_and_results_do_not_depend_on_it(rng):
    codes = rng.integers(0, 256, (60000, 8), dtype=np.uint8)
    index = de.FlatIndex(64)
    index.add(codes)
    queries = codes[:3]
    before = de.get_num_threads()
    results = []
    for n in (1, 2, 5):
        de.set_num_threads(n)
        assert de.get_num_threads() == n
        results.append(index.search(queries, 50))
    de.set_num_threads(before)
    for D, I in results[1:]:
        np.testing.assert_array_equal(D, results[0][0])
        np.testing.assert_array_equal(I, results[0][1])
    with pytest.raises(ValueError, match="got 0"):
        de.set_num_threads(0)


def test_thread_spin_is_settable_and_results_do_not_depend_on_it(rng):
    codes = rng.integers(0, 256, (60000, 8), dtype=np.uint8)
    index = de.MIHIndex(64)
    index.add(codes)
    queries = codes[:40]
    before = de.get_thread_spin()
    assert before == 200  # the library's default
    results = []
    try:
        for us in (0, 5000, 100_000):
            de.set_thread_spin(us)
            assert de.get_thread_spin() == us
            results.append(index.search(queries, 20))
            time.sleep(0.01)  # the threads sleep (spin 0) or still poll: either way the next call is whole
            results.append(index.search(queries, 20))
    finally:
        de.set_thread_spin(before)
    for D, I in results[1:]:
        np.testing.assert_array_equal(D, results[0][0])
        np.testing.assert_array_equal(I, results[0][1])
    for bad in (-1, 100_001):
        with pytest.raises(ValueError, match=f"got {bad}"):
            de.set_thread_spin(bad)
    with pytest.raises(TypeError):
        de.set_thread_spin(1.5)
    assert de.get_thread_spin() == before


def test_cuda_device_count_is_zero_without_a_gpu():
    count = de.cuda_device_count()
    assert count >= 0
    if not os.path.exists("/dev/nvidia0"):
        assert count == 0
