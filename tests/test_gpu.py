"""GpuFlatIndex: bit-for-bit FlatIndex results on a CUDA device (tests marked `cuda`, skipped where
no device is usable), and clear errors everywhere else. The kernels' logic is also tested without a
GPU by ctest (cuda/tests: the kernel sources under a CPU emulation, compared with FlatIndex)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import deephash_engine as de
from oracles import clustered_codes, duplicate_codes

def gpu_test(fn):
    """Marks a test `cuda` and skips it where no CUDA device is usable."""
    fn = pytest.mark.skipif(not de.cuda_available(), reason="no usable CUDA device")(fn)
    return pytest.mark.cuda(fn)


def codes_of(kind, rng, n, nbits):
    if kind == "uniform":
        return rng.integers(0, 256, (n, nbits // 8), dtype=np.uint8)
    if kind == "clustered":
        return clustered_codes(rng, n, nbits)
    return duplicate_codes(rng, n, nbits)


def assert_same_knn(cpu, gpu, queries, k):
    D1, I1 = cpu.search(queries, k)
    D2, I2 = gpu.search(queries, k)
    np.testing.assert_array_equal(I2, I1)
    np.testing.assert_array_equal(D2, D1)


def assert_same_range(cpu, gpu, queries, radius):
    for a, b in zip(cpu.range_search(queries, radius), gpu.range_search(queries, radius)):
        np.testing.assert_array_equal(b, a)


# ---- everywhere ---------------------------------------------------------------------------------

@pytest.mark.skipif(de.cuda_available(), reason="a CUDA device is usable here")
def test_without_a_device_every_entry_point_says_why(tmp_path):
    with pytest.raises(RuntimeError, match="CUDA"):
        de.GpuFlatIndex(64)
    flat = de.FlatIndex(64)
    flat.add(np.zeros((3, 8), np.uint8))
    with pytest.raises(RuntimeError, match="CUDA"):
        flat.to_gpu()
    flat.save(tmp_path / "f.dhi")
    with pytest.raises(RuntimeError, match="CUDA"):
        de.load_index(tmp_path / "f.dhi", device=0)
    assert de.cuda_device_count() == 0
    assert de.load_index(tmp_path / "f.dhi").ntotal == 3  # the CPU path is untouched


def test_build_info_names_the_compiled_architectures():
    info = de.build_info()
    if info["cuda"]:
        archs = info["cuda_archs"].split(",")
        assert any(a.startswith("90") for a in archs), archs  # Hopper
        assert any(a.endswith("virtual") for a in archs), archs  # PTX for later GPUs
    else:
        assert info["cuda_archs"] is None


@pytest.mark.skipif(not de.build_info()["cuda"], reason="a build without CUDA refuses every GpuFlatIndex")
def test_widths_the_gpu_cannot_take_are_refused_before_any_device_is_asked():
    with pytest.raises(ValueError, match="positive number of bits"):
        de.GpuFlatIndex(0)
    with pytest.raises(ValueError, match="at most 4096"):
        de.GpuFlatIndex(8192)


@pytest.mark.skipif(de.build_info()["cuda"], reason="this build has CUDA")
def test_a_build_without_cuda_says_so():
    with pytest.raises(RuntimeError, match="built without a CUDA compiler"):
        de.GpuFlatIndex(64)
    with pytest.raises(RuntimeError, match="built without a CUDA compiler"):
        de.FlatIndex(64).to_gpu()
    assert not de.cuda_available()


# ---- on a device ----------------------------------------------------------------------------------

@gpu_test
@pytest.mark.parametrize("kind", ["uniform", "clustered", "duplicates"])
@pytest.mark.parametrize("nbits", [8, 16, 24, 32, 48, 64, 72, 96, 128, 136, 256, 512, 520, 1024])
def test_equal_to_flat_index(nbits, kind, rng):
    n = 4000
    codes = codes_of(kind, rng, n, nbits)
    queries = codes_of(kind, rng, 23, nbits)
    cpu = de.FlatIndex(nbits)
    cpu.add(codes)
    gpu = de.GpuFlatIndex(nbits)
    gpu.add(codes)
    for selection in ("auto", "counting"):  # one pass over the codes for k <= 4096, and counting
        gpu.set_selection(selection)
        for k in (1, 10, 100, 2048, 2049, n, n + 5):
            assert_same_knn(cpu, gpu, queries, k)
            assert_same_knn(cpu, gpu, queries[:1], k)
    for radius in sorted({0, 1, nbits // 8, nbits // 4, nbits // 2, nbits}):
        assert_same_range(cpu, gpu, queries, radius)


@gpu_test
def test_every_width_from_8_to_1024(rng):
    for nbits in range(8, 1025, 8):
        codes = codes_of("clustered", rng, 1500, nbits)
        queries = codes_of("clustered", rng, 5, nbits)
        cpu, gpu = de.FlatIndex(nbits), de.GpuFlatIndex(nbits)
        cpu.add(codes)
        gpu.add(codes)
        assert_same_knn(cpu, gpu, queries, 33)
        assert_same_range(cpu, gpu, queries, nbits // 3)


@gpu_test
def test_query_counts_and_large_k(rng):
    codes = codes_of("clustered", rng, 50_000, 64)
    cpu, gpu = de.FlatIndex(64), de.GpuFlatIndex(64)
    cpu.add(codes)
    gpu.add(codes)
    for nq in (1, 7, 1000, 10_000):
        queries = codes_of("clustered", rng, nq, 64)
        assert_same_knn(cpu, gpu, queries, 10)
    queries = codes_of("clustered", rng, 3, 64)
    assert_same_knn(cpu, gpu, queries, 10_000)
    assert_same_knn(cpu, gpu, queries, 50_000)
    assert_same_range(cpu, gpu, codes_of("clustered", rng, 200, 64), 12)


@gpu_test
def test_queries_with_thousands_of_copies_are_sorted_not_ranked(rng):
    # 3,000 copies of the first query among 3,000 other codes: its radius-0 candidates are more
    # than the rank kernel takes (2,048), so that query goes through the segmented sort while the
    # other queries of the batch are ranked; every answer equals FlatIndex's.
    codes = codes_of("uniform", rng, 6000, 64)
    codes[::2] = codes[0]
    queries = np.concatenate([codes[:1], codes_of("uniform", rng, 4, 64)])
    cpu, gpu = de.FlatIndex(64), de.GpuFlatIndex(64)
    cpu.add(codes)
    gpu.add(codes)
    for k in (1, 10, 256, 300):
        assert_same_knn(cpu, gpu, queries, k)
        assert_same_knn(cpu, gpu, queries[:1], k)


@gpu_test
def test_empty_index_and_empty_batches():
    gpu = de.GpuFlatIndex(64)
    D, I = gpu.search(np.zeros((2, 8), np.uint8), 3)
    assert (I == -1).all() and (D == 2147483647).all()
    lims, D, I = gpu.range_search(np.zeros((2, 8), np.uint8), 64)
    assert list(lims) == [0, 0, 0] and len(D) == len(I) == 0
    D, I = gpu.search(np.zeros((0, 8), np.uint8), 3)
    assert D.shape == (0, 3)


@gpu_test
def test_removes_and_interleaved_ids_keep_results_equal(rng):
    codes = codes_of("duplicates", rng, 3000, 128)
    ids = rng.permutation(10_000)[:3000].astype(np.int64)
    cpu, gpu = de.FlatIndex(128), de.GpuFlatIndex(128)
    cpu.add_with_ids(codes, ids)
    gpu.add_with_ids(codes, ids)
    queries = codes_of("duplicates", rng, 11, 128)
    assert_same_knn(cpu, gpu, queries, 50)
    gone = ids[::3]
    assert gpu.remove_ids(gone) == cpu.remove_ids(gone)
    assert gpu.ntotal == cpu.ntotal
    assert_same_knn(cpu, gpu, queries, 50)
    assert_same_range(cpu, gpu, queries, 40)
    cpu.add(codes[:100])
    gpu.add(codes[:100])
    assert gpu.next_id == cpu.next_id
    assert_same_knn(cpu, gpu, queries, 3000)
    np.testing.assert_array_equal(gpu.ids(), cpu.ids())
    np.testing.assert_array_equal(gpu.reconstruct_batch(cpu.ids()[:50]), cpu.reconstruct_batch(cpu.ids()[:50]))
    gpu.reset()
    assert gpu.ntotal == 0 and gpu.next_id == 0


@gpu_test
def test_files_and_moves_between_cpu_and_gpu(rng, tmp_path):
    codes = codes_of("uniform", rng, 2000, 256)
    queries = codes_of("uniform", rng, 9, 256)
    mih = de.MIHIndex(256)
    mih.add(codes)
    mih.remove_ids(np.arange(0, 2000, 5))
    gpu = mih.to_gpu(0)
    assert gpu.next_id == mih.next_id
    assert_same_knn(mih, gpu, queries, 40)
    gpu.save(tmp_path / "g.dhi")
    back = de.load_index(tmp_path / "g.dhi")  # a FlatIndex file: loads without a GPU
    assert isinstance(back, de.FlatIndex)
    assert_same_knn(back, gpu, queries, 40)
    again = de.load_index(tmp_path / "g.dhi", device=0)
    assert_same_knn(back, again, queries, 40)
    cpu = gpu.to_cpu()
    assert cpu.next_id == gpu.next_id
    assert_same_knn(cpu, gpu, queries, 1600)
    usage = gpu.memory_usage()
    assert usage["device_bytes"] >= gpu.ntotal * 32


@gpu_test
def test_bad_inputs_raise_as_flat_index_does(rng):
    cpu, gpu = de.FlatIndex(64), de.GpuFlatIndex(64)
    codes = codes_of("uniform", rng, 10, 64)
    cpu.add(codes)
    gpu.add(codes)
    bad_calls = [
        lambda ix: ix.search(codes.astype(np.int16), 3),
        lambda ix: ix.search(codes[:, :7], 3),
        lambda ix: ix.search(codes, 0),
        lambda ix: ix.search(codes, True),
        lambda ix: ix.range_search(codes, -1),
        lambda ix: ix.add_with_ids(codes[:2], np.array([3, 3])),
        lambda ix: ix.add_with_ids(codes[:2], np.array([0, 100])),
        lambda ix: ix.add_with_ids(codes[:2], np.array([-5, 100])),
        lambda ix: ix.add_with_ids(codes[:2], np.array([100])),
        lambda ix: ix.reconstruct(12345),
    ]
    for call in bad_calls:
        with pytest.raises(Exception) as on_cpu:
            call(cpu)
        with pytest.raises(type(on_cpu.value)) as on_gpu:
            call(gpu)
        assert str(on_gpu.value) == str(on_cpu.value)
    assert gpu.ntotal == 10  # every refused call changed nothing
    assert_same_knn(cpu, gpu, codes, 10)


@gpu_test
def test_device_arrays_in_and_out(rng):
    cupy = pytest.importorskip("cupy")
    codes = codes_of("clustered", rng, 5000, 64)
    queries = codes_of("clustered", rng, 30, 64)
    cpu, gpu = de.FlatIndex(64), de.GpuFlatIndex(64)
    cpu.add(codes)
    gpu.add(codes)
    D, I = cpu.search(queries, 20)
    Dc, Ic = gpu.search(cupy.asarray(queries), 20)
    assert isinstance(Dc, cupy.ndarray) and Dc.dtype == np.int32 and Ic.dtype == np.int64
    np.testing.assert_array_equal(cupy.asnumpy(Ic), I)
    np.testing.assert_array_equal(cupy.asnumpy(Dc), D)
    assert_same = gpu.range_search(cupy.asarray(queries), 10)
    for a, b in zip(cpu.range_search(queries, 10), assert_same):
        np.testing.assert_array_equal(b, a)
    torch = pytest.importorskip("torch")
    Dt, It = gpu.search(torch.from_numpy(queries).cuda(), 20)
    assert It.is_cuda and It.dtype == torch.int64
    np.testing.assert_array_equal(It.cpu().numpy(), I)
    with pytest.raises(TypeError, match="uint8"):
        gpu.search(cupy.asarray(queries.astype(np.int32)), 3)


@gpu_test
def test_dlpack_producers_on_the_device(rng, monkeypatch):
    cupy = pytest.importorskip("cupy")
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX must not take the device
    jax = pytest.importorskip("jax")
    try:
        gpu_device = jax.devices("gpu")[0]
    except RuntimeError:
        pytest.skip("JAX sees no GPU")
    codes = codes_of("uniform", rng, 3000, 128)
    queries = codes_of("uniform", rng, 12, 128)
    cpu, gpu = de.FlatIndex(128), de.GpuFlatIndex(128)
    cpu.add(codes)
    gpu.add(codes)
    D, I = gpu.search(jax.device_put(queries, gpu_device), 15)
    assert isinstance(I, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(I), cpu.search(queries, 15)[1])


@gpu_test
def test_running_out_of_device_memory_leaves_the_index_usable(rng):
    cupy = pytest.importorskip("cupy")
    gpu = de.GpuFlatIndex(64)
    small = codes_of("uniform", rng, 1000, 64)
    gpu.add(small)
    free, _ = cupy.cuda.runtime.memGetInfo()
    hog = cupy.empty(free - (256 << 20), dtype=np.uint8)  # leave 256 MiB
    big = np.zeros((64 << 20, 8), np.uint8)  # 512 MiB of codes
    with pytest.raises(MemoryError, match="GPU memory"):
        gpu.add(big)
    assert gpu.ntotal == 1000
    del hog
    cpu = de.FlatIndex(64)
    cpu.add(small)
    assert_same_knn(cpu, gpu, small[:5], 10)


@gpu_test
def test_searches_run_beside_a_writer(rng):
    codes = codes_of("uniform", rng, 20_000, 64)
    gpu = de.GpuFlatIndex(64)
    gpu.add(codes)
    errors = []

    def search():
        try:
            for _ in range(20):
                D, I = gpu.search(codes[:50], 5)
                assert (D[:, 0] == 0).all()
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=search) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(10):
        gpu.add(codes[:100])
    for t in threads:
        t.join()
    assert not errors
    assert gpu.ntotal == 21_000
