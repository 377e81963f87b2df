# Two entry points for a fresh machine (Python 3.11+, Java 17+, Maven 3.8+):
#   make demo  - install, start the local stack, and run the main job end to end on a sample estate
#   make test  - install everything, then lint, type-check and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test install lint typecheck pytest tscheck toolchain docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Installed once, and again only when pyproject.toml changes (the stamp is newer otherwise).
# PYTHONWARNINGS hides setuptools' "Editable installation" banner, printed on every editable build.
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml | $(BIN)/python
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install -q -e '.[test,stack,server]'
	@touch $@

install: $(STAMP)

demo: install
	$(BIN)/migrator demo

lint: install
	$(BIN)/ruff check migrator connectors qstash_server tests benchmarks
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy --strict migrator connectors qstash_server tests

# The TypeScript scaffolds are type-checked when npm is there (tools cached in .cache/tscheck).
# A failed npm install skips that check with a message, except under CI (CI set, not 0/false):
# there it fails the run, so a broken install cannot turn the check off unnoticed.
TSCHECK := .cache/tscheck
tscheck:
	@if command -v npm >/dev/null 2>&1; then \
	  mkdir -p $(TSCHECK) && cp tests/plan/tscheck/package.json $(TSCHECK)/ && \
	  { npm install --silent --no-audit --no-fund --prefix $(TSCHECK) >/dev/null || \
	    case "$$CI" in \
	      ""|0|false) echo "npm install failed: the TypeScript scaffold type-check will be skipped";; \
	      *) echo "npm install failed under CI (CI=$$CI): the TypeScript scaffold type-check cannot run" >&2; \
	         exit 1;; \
	    esac; }; \
	else echo "npm not found: the TypeScript scaffold type-check will be skipped"; fi

# Helm (built from source with the machine's Go) and the CRD schemas for the Helm chart's tests,
# cached in ~/.cache/migrator; without Go it says so and the chart tests skip.
toolchain: install
	$(BIN)/python -m tests.deploy.toolchain

# The documentation site (MkDocs + Material) from docs/; --strict turns broken links into errors.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir .cache/site

pytest: install tscheck toolchain
	if [ -x $(TSCHECK)/node_modules/.bin/tsc ]; then export SCAFFOLD_TS_CHECK_DIR=$(abspath $(TSCHECK)); fi; \
	  $(BIN)/pytest -q -p no:cacheprovider --durations=15 $(PYTEST_ARGS)

test: lint typecheck docs pytest

clean:
	-$(BIN)/migrator dev down
	rm -rf $(VENV) .mypy_cache .ruff_cache
