# Two commands matter: `make demo` and `make test`. Both create .venv/ first if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.magan-installed

.PHONY: install demo test lint experiments clean

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

# The paper's experiments on ../shared/data, every seed, two at a time (3-7 minutes each on 2 cores).
experiments: install
	$(BIN)/magan experiment all --out results --jobs 2

lint: install
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) magan_demo .pytest_cache
