# The two commands a newcomer needs: `make serve` and `make test`.
# Both build .venv from the hash-pinned requirements.lock first.
PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.installed

.PHONY: serve test check lock bench

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check --require-hashes -r requirements.lock
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/pigeon serve

test: $(STAMP)
	$(VENV)/bin/python -m pytest

# Lint (ruff: pyflakes, pycodestyle, bugbear) and types (mypy, strict on protocol/, store/ and
# domain/); both read their settings from pyproject.toml. CI runs this before `make test`.
check: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(VENV)/bin/python bench/send_throughput.py

# Regenerate the lock after changing dependencies in pyproject.toml.
lock:
	uv pip compile pyproject.toml --extra test --generate-hashes --python-version 3.11 -o requirements.lock
