# deephash_engine: `make demo` runs the main job end to end, `make test` runs every test.
# Both set everything up first (virtualenv, packages, data) and work on a fresh machine.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
JOBS ?= 2
CPP_BUILD ?= build/cpp
ASAN_BUILD ?= build/asan
TSAN_BUILD ?= build/tsan
FUZZ_BUILD ?= build/fuzz
FUZZ_SECONDS ?= 300
FMNIST_DIR := /usr/share/datasets/fashion-mnist
STAMP := $(VENV)/.requirements-stamp

.PHONY: demo test venv install data clang cpp-test cpp-package-test asan-test tsan-test sanitize fuzz-build fuzz fuzz-smoke fuzz-python py-test bench clean

demo: install data
	$(PY) benchmarks/bench_flat.py --preset demo
	$(PY) benchmarks/bench_mih.py --preset demo
	$(PY) benchmarks/unsupervised_fmnist.py --preset demo --threads 1 --methods LSH PCAH ITQ SH SpH AGH-1 AGH-2 DGH
	$(PY) benchmarks/deep_demo.py --epochs 1 --threads 2
	$(PY) benchmarks/serve_demo.py --run runs/demo
	$(PY) benchmarks/gpu_demo.py --index runs/demo/database.index

test: install data cpp-test cpp-package-test asan-test fuzz-smoke py-test

venv: $(STAMP)

$(STAMP): requirements/dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements/dev.txt
	touch $@

# Non-editable install: the tests run against the installed package. The CMake build tree is
# kept under build/ so a rebuild only recompiles what changed.
install: venv
	$(PIP) install --quiet --no-build-isolation --no-deps .

# Fashion-MNIST from Debian's package, installed only where it is missing (needs root and apt).
data:
	@if [ ! -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz ] && [ -z "$$DEEPHASH_FASHION_MNIST" ]; then \
	  echo "installing dataset-fashion-mnist"; \
	  apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	fi

cpp-test: venv
	PATH="$(abspath $(VENV))/bin:$$PATH" cmake -S . -B $(CPP_BUILD) -G Ninja -DDEEPHASH_BUILD_CPP_TESTS=ON -DCMAKE_BUILD_TYPE=Release
	PATH="$(abspath $(VENV))/bin:$$PATH" cmake --build $(CPP_BUILD) -j $(JOBS)
	PATH="$(abspath $(VENV))/bin:$$PATH" ctest --test-dir $(CPP_BUILD) --output-on-failure

# The installed C++ package: the core installed into a scratch prefix, and examples/cpp_search
# built against it with find_package(deephash_engine) and run.
cpp-package-test: cpp-test
	rm -rf $(CPP_BUILD)-prefix $(CPP_BUILD)-example
	PATH="$(abspath $(VENV))/bin:$$PATH" cmake --install $(CPP_BUILD) --component cpp --prefix $(CPP_BUILD)-prefix
	PATH="$(abspath $(VENV))/bin:$$PATH" cmake -S examples/cpp_search -B $(CPP_BUILD)-example -G Ninja -DCMAKE_PREFIX_PATH=$(abspath $(CPP_BUILD)-prefix)
	PATH="$(abspath $(VENV))/bin:$$PATH" cmake --build $(CPP_BUILD)-example
	cd $(CPP_BUILD)-example && ./cpp_search

# Sanitizer builds of the C++ tests: ASan + UBSan for all of them (part of `make test`), TSan for
# the ones that run threads. `make sanitize` runs both.
SAN_CMAKE = PATH="$(abspath $(VENV))/bin:$$PATH" cmake -G Ninja -DDEEPHASH_BUILD_CPP_TESTS=ON -DDEEPHASH_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo

asan-test: venv
	$(SAN_CMAKE) -S . -B $(ASAN_BUILD) -DDEEPHASH_SANITIZE=address,undefined
	PATH="$(abspath $(VENV))/bin:$$PATH" cmake --build $(ASAN_BUILD) -j $(JOBS)
	PATH="$(abspath $(VENV))/bin:$$PATH" ctest --test-dir $(ASAN_BUILD) --output-on-failure

tsan-test: venv
	$(SAN_CMAKE) -S . -B $(TSAN_BUILD) -DDEEPHASH_SANITIZE=thread
	PATH="$(abspath $(VENV))/bin:$$PATH" cmake --build $(TSAN_BUILD) -j $(JOBS)
	PATH="$(abspath $(VENV))/bin:$$PATH" ctest --test-dir $(TSAN_BUILD) --output-on-failure -R 'test_(concurrency|threads|flat_index|mih_index)'

sanitize: asan-test tsan-test

# clang and its libFuzzer runtime from Debian, installed only where missing (needs root and apt).
clang:
	@if ! command -v clang++ >/dev/null 2>&1 || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then \
	  echo "installing clang and libclang-rt-14-dev"; \
	  apt-get update -qq && apt-get install -y -qq clang libclang-rt-14-dev; \
	fi

fuzz-build: venv clang
	PATH="$(abspath $(VENV))/bin:$$PATH" CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G Ninja -DDEEPHASH_BUILD_FUZZERS=ON -DDEEPHASH_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
	PATH="$(abspath $(VENV))/bin:$$PATH" cmake --build $(FUZZ_BUILD) -j $(JOBS)

# Each libFuzzer harness for FUZZ_SECONDS (default 300) after the committed regression inputs.
fuzz: fuzz-build
	cpp/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# The 40-second run of each harness that `make test` includes (three harnesses: two minutes).
fuzz-smoke: fuzz-build
	cpp/fuzz/run.sh $(FUZZ_BUILD) 40

py-test: install
	$(PY) -m pytest -q

# The atheris harnesses of the Python loaders (load_index, Hasher.load, load_trained_model), each
# for FUZZ_PY_SECONDS on a corpus seeded from files the package writes and kept between runs.
FUZZ_PY_SECONDS ?= 180
FUZZ_PY_DIR ?= build/fuzz-python
fuzz-python: install
	$(PY) tests/fuzz/seed_corpus.py $(FUZZ_PY_DIR)/corpus
	mkdir -p $(FUZZ_PY_DIR)/crashes
	for pair in index:fuzz_load_index hasher:fuzz_hasher_load model:fuzz_trained_model; do \
	  $(PY) tests/fuzz/$${pair#*:}.py -max_total_time=$(FUZZ_PY_SECONDS) -rss_limit_mb=4096 \
	    -artifact_prefix=$(FUZZ_PY_DIR)/crashes/$${pair%%:*}- $(FUZZ_PY_DIR)/corpus/$${pair%%:*} || exit 1; \
	done

bench: install data
	$(PY) benchmarks/bench_flat.py
	$(PY) benchmarks/bench_flat.py --preset widths
	$(PY) benchmarks/bench_flat.py --preset latency
	$(PY) benchmarks/bench_bound.py
	$(PY) benchmarks/bench_mih.py
	$(PY) benchmarks/bench_faiss_compat.py
	$(PY) benchmarks/bench_metrics.py
	$(PY) benchmarks/unsupervised_fmnist.py --threads 1
	$(PY) benchmarks/deep_fmnist.py --bits 64 --seeds 0

clean:
	rm -rf build dist
