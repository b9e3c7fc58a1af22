# The two commands a newcomer needs: `make serve` and `make test`.
# Both build .venv from the hash-pinned requirements.lock first. pip runs as `python -m pip`:
# the venv's own `bin/pip` script names the interpreter it was made with, so in a copied venv
# it would install into the original.
PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.installed

.PHONY: serve test check lock bench

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check --require-hashes -r requirements.lock
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/pigeon serve

# The suite in parallel (pytest-xdist): much of its time is tests waiting on real server
# processes, so more workers than the 2 cores help. --dist loadfile keeps a module's tests on
# one worker, where its module-scoped servers start once; --no-loadscope-reorder hands the
# modules out in collection order, so the long integration modules (few tests, each minutes
# of CLI processes) start early instead of last (xdist's default order is most tests first),
# and the many short unit modules fill the end. `make test TEST_WORKERS=0` runs it in one
# process. pytest exits 1 on a failure and 5 when no test ran, with workers as without.
TEST_WORKERS ?= 4
test: $(STAMP)
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

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
