# Two entry points for a fresh machine (Python 3.11+, Java 17+, Maven 3.8+):
#   make demo  - install, start the local stack, and run the main job end to end on a sample estate
#   make test  - install everything, then lint, type-check and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test install lint typecheck pytest clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e '.[test,stack]'

demo: install
	$(BIN)/migrator demo

lint: install
	$(BIN)/ruff check migrator connectors tests benchmarks

typecheck: install
	$(BIN)/mypy --strict migrator connectors

pytest: install
	$(BIN)/pytest -q -p no:cacheprovider --durations=15 $(PYTEST_ARGS)

test: lint typecheck pytest

clean:
	-$(BIN)/migrator dev down
	rm -rf $(VENV) .mypy_cache .ruff_cache
