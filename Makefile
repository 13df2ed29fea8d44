# The two commands in the README: `make demo` and `make test`.
# Each creates (or reuses) .venv and installs what it needs by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-test.txt pyproject.toml | cksum | cut -d' ' -f1)

export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1

.PHONY: demo test test-quick install clean

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python recipes/demo.py --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest tests -n 2 --dist loadfile

test-quick: $(STAMP)
	$(BIN)/python -m pytest tests -n 2 --dist loadfile -m "not slow"

clean:
	rm -rf $(VENV) runs
