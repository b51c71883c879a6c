# Set-up is part of every target: a fresh clone needs nothing but python3 and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-all docs benchmark clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# timm needs torchvision; torch 2.14.1 + torchvision 0.29.1 is the pair that imports
	# together on these machines (both lie on local disk).
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e ".[test,docs]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/python -m sklearn_dinoatten demo --out results/demo

# The suite runs on every core (pytest-xdist); `make test PYTEST_WORKERS=0` runs it in one process.
PYTEST_WORKERS ?= auto

test: $(BIN)/.installed
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS)

test-all: $(BIN)/.installed
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m ""

# The HTML site in docs/_build/html (open docs/_build/html/index.html): the API reference,
# the user guide and the gallery, whose examples run during the build. Offline; warnings
# are errors.
docs: $(BIN)/.installed
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html

benchmark: $(BIN)/.installed
	$(BIN)/python benchmarks/embed_throughput.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache docs/_build docs/generated docs/auto_examples
