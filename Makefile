# The two commands in the README: `make demo` and `make test`.
# Each creates (or reuses) .venv and installs what it needs by itself: the demo only the
# runtime requirements, the tests those and the test tools.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HASH = $(shell cat $(1) | cksum | cut -d' ' -f1)
RUNTIME := $(VENV)/.runtime-$(call HASH,requirements.txt pyproject.toml)
TESTING := $(VENV)/.testing-$(call HASH,requirements.txt requirements-test.txt pyproject.toml)

export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1

.PHONY: demo test test-quick lint install clean

$(RUNTIME):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.runtime-* && touch $@

$(TESTING): $(RUNTIME)
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	rm -f $(VENV)/.testing-* && touch $@

install: $(TESTING)

demo: $(RUNTIME)
	$(BIN)/python recipes/demo.py --out runs/demo

lint: $(TESTING)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest tests -n 2 --dist loadfile --durations 15

test-quick: lint
	$(BIN)/python -m pytest tests -n 2 --dist loadfile -m "not slow"

clean:
	rm -rf $(VENV) runs
