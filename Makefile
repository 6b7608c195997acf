# deephash_engine: `make demo` runs the main job end to end, `make test` runs every test.
# Both set everything up first (virtualenv, packages, data) and work on a fresh machine.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
JOBS ?= 2
CPP_BUILD ?= build/cpp
FMNIST_DIR := /usr/share/datasets/fashion-mnist
STAMP := $(VENV)/.requirements-stamp

.PHONY: demo test venv install data cpp-test py-test bench clean

demo: install data
	$(PY) benchmarks/bench_flat.py --preset demo
	$(PY) benchmarks/bench_mih.py --preset demo
	$(PY) benchmarks/unsupervised_fmnist.py --preset demo --threads 1 --methods LSH PCAH ITQ SH SpH AGH-1 AGH-2 DGH
	$(PY) benchmarks/deep_demo.py --epochs 1 --threads 2

test: install data cpp-test py-test

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

py-test: install
	$(PY) -m pytest -q

# The atheris harnesses of the Python loaders (load_index, Hasher.load, load_trained_model), each
# for FUZZ_PY_SECONDS on a corpus seeded from files the package writes and kept between runs.
FUZZ_PY_SECONDS ?= 180
FUZZ_PY_DIR ?= build/fuzz-python
.PHONY: fuzz-python
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
	$(PY) benchmarks/bench_metrics.py
	$(PY) benchmarks/unsupervised_fmnist.py --threads 1
	$(PY) benchmarks/deep_fmnist.py --bits 64 --seeds 0

clean:
	rm -rf build dist
