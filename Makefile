# Two commands matter: `make demo` and `make test`. Both create .venv/ first if needed.
# `make docs` builds the documentation site into docs/_build/html.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.magan-installed

.PHONY: install demo test docs lint experiments bench clean

install: $(STAMP)

# torch is pinned to the CPU wheel first, so that nothing later pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: install
	$(BIN)/magan demo --out magan_demo

test: install
	$(BIN)/python -m pytest -q

# The documentation site (docs/): API reference from the docstrings, the command line's --help,
# and the tutorial, executed during the build on the bundled data (about a minute on 2 cores).
# Warnings are errors, and a failing tutorial fails the build. Open docs/_build/html/index.html.
DOCS_STAMP := $(VENV)/.magan-docs-installed

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	OMP_NUM_THREADS=1 $(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

# The paper's experiments (experiments/, not installed) on ../shared/data, every seed, two at a
# time (3-7 minutes each on 2 cores).
experiments: install
	$(BIN)/python -m experiments all --out results --jobs 2

# RESULTS.md, regenerated from nothing: every experiment (all seeds), the battery (3 seeds), then
# the page from their JSON (experiments/results.py). Several hours on 2 cores; to re-render the
# page from runs already made, run only the last line.
results: install
	$(BIN)/python -m experiments all --out results --jobs 2
	$(BIN)/python experiments/battery.py --seeds 0 1 2 --jobs 2 --out battery_results
	$(BIN)/python -m experiments.results --experiments results --battery battery_results \
		--out RESULTS.md

# Speed and memory benchmarks (BENCHMARKS.md), JSON lines into bench_results/: training and
# transform throughput, the CPU roofline, out-of-core scale to 10^7 cells (writes ~2.4 GB of
# synthetic data under /tmp/magan_scale) and interval throughput; about 3 minutes on 2 cores when the synthetic data already exists.
# The peers comparison needs Pamona/UnionCom installed beside magan: see benchmarks/bench_peers.py.
bench: install
	mkdir -p bench_results
	$(BIN)/python benchmarks/bench_train.py --device auto > bench_results/train.jsonl
	$(BIN)/python benchmarks/bench_roofline.py --threads 1 2 > bench_results/roofline.jsonl
	$(BIN)/python benchmarks/bench_scale.py --max-wait 0 > bench_results/scale.jsonl
	$(BIN)/python benchmarks/bench_interval.py > bench_results/interval.jsonl

# The benchmark battery (issue 18): MAGAN's defaults against no alignment, kNN on shared
# features, GW-OT and Harmony on 11 tasks, one table (battery_results/battery.md, JSON lines
# beside it); 3 seeds, ~50 minutes with 2 processes on 2 cores (smoke test: battery.py --quick).
# It is the quality benchmark, so it lives with the experiments.
.PHONY: battery
battery: install
	$(BIN)/python experiments/battery.py --seeds 0 1 2 --jobs 2 --out battery_results

lint: install
	$(BIN)/ruff check src tests benchmarks experiments research

clean:
	rm -rf $(VENV) magan_demo .pytest_cache bench_results battery_results docs/_build \
		docs/generated docs/sg_execution_times.rst
