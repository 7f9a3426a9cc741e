# Everything bootstraps .venv/ from nothing: a clean clone needs only python3.11 and make.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed

export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: venv browser run test lint format bench lock clean

venv: $(STAMP)

# Reinstall whenever the lock or the project metadata changes.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	# --compile-bytecode: every test and job starts fresh interpreters; without .pyc files (as
	# under PYTHONDONTWRITEBYTECODE=1) each one compiles TensorFlow, MLflow and BentoML from
	# source, 2-3x the CPU of the import itself.
	$(BIN)/uv pip sync -q --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

# make run TIER=video trains the video tier instead of the fast one.
TIER ?= fast
run: venv
	$(BIN)/videoboost run --tier $(TIER)

# Debian's headless chromium for the service page's browser tests (Playwright drives it; its own
# browser download does not work here). Installed when missing and we may (root, apt-get);
# otherwise tests/service/test_ui.py skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq chromium >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; }; \
	  else \
	    echo "make: chromium is not installed (apt-get install chromium); the page's browser tests will skip" >&2; \
	  fi; }

# Two workers by default: most tests wait on servers, subprocesses and encoders, so even two
# cores fill up. Tests sharing an expensive session fixture stay on one worker (conftest.py).
TEST_WORKERS ?= 2

test: venv browser
	$(BIN)/ruff check .
	$(BIN)/python -m compileall -q videoboost service flows models tests
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=15

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: venv
	$(BIN)/python bench/train.py

# Re-resolve the pinned lock from pyproject.toml (needs the package index).
lock: venv
	$(BIN)/uv pip compile -q pyproject.toml --extra dev --extra scale --extra bench --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .state .pytest_cache
