# audiosim: the two commands a newcomer needs are `make demo` and `make test`.
# Both create .venv (Python 3.11) and install the project into it on first use;
# after that they only reinstall when pyproject.toml changes.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-audiosim

# extra arguments: make test PYTEST_ARGS="-k songbook -x"; make demo DEMO_ARGS="..."
PYTEST_ARGS ?=
DEMO_ARGS   ?=

# Prefect must not phone home or write to ~/.prefect while we test or demo.
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export MPLBACKEND := Agg

.DEFAULT_GOAL := help
.PHONY: help venv test test-fast demo bench bench-full clean

help:
	@echo "make demo    build the demo songbook, index it, identify clips, write a report"
	@echo "make test    run the test suite (PYTEST_ARGS='-k name' to select)"
	@echo "make test-fast  the unit tests not marked slow (under a minute)"
	@echo "make bench   quick benchmarks (a few minutes): embedding, ingest and moods on the songbook;"
	@echo "             identify too with BENCH_CORPUS=LIST (../shared/corpus/dev-corpus.sh > LIST)"
	@echo "make bench-full  the real benchmarks (long; needs BENCH_CORPUS=LIST)"
	@echo "make venv    create .venv and install audiosim with its test extras"
	@echo "make clean   remove caches and build leftovers (keeps .venv and data/)"

$(PY):
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[test]'
	@touch $@

venv: $(STAMP)

# pytest exit codes: 0 passed, 1 failures, 2 interrupted, 3 internal error,
# 4 usage error, 5 no tests collected. An empty run is reported loudly but is
# not a failure (a filter that matches nothing must not break CI).
define run_pytest
	@tmp=$$(mktemp -d "$${TMPDIR:-/tmp}/audiosim-test.XXXXXX"); \
	PREFECT_HOME="$$tmp/prefect" AUDIOSIM_HOME="$$tmp/home" \
		$(PY) -m pytest $(1) $(PYTEST_ARGS); status=$$?; \
	rm -rf "$$tmp"; \
	if [ $$status -eq 5 ]; then \
		echo "" >&2; \
		echo "make: WARNING: pytest collected NO tests (exit 5): nothing was tested." >&2; \
		status=0; \
	fi; \
	exit $$status
endef

# everything: unit and integration tests, slow ones included
test: $(STAMP)
	$(call run_pytest,)

# the unit tests that are not marked slow (under a minute): for a quick check while editing
test-fast: $(STAMP)
	$(call run_pytest,tests/unit -m "not slow")

demo: $(STAMP)
	$(VENV)/bin/audiosim demo $(DEMO_ARGS)

# Benchmarks print progress on stderr and tables on stdout. `make bench` is the
# quick tier (settings that finish in minutes, songbook only unless BENCH_CORPUS
# names a corpus list); `make bench-full` runs the real settings on the corpus.
BENCH_CORPUS ?=
CORPUS_HINT := make one with ../shared/corpus/dev-corpus.sh > LIST, then pass BENCH_CORPUS=LIST

bench: $(STAMP)
	@set -e; tmp=$$(mktemp -d "$${TMPDIR:-/tmp}/audiosim-bench.XXXXXX"); trap 'rm -rf "$$tmp"' EXIT; \
	echo "== benchmarks/embed.py --quick"; $(PY) benchmarks/embed.py --quick; \
	echo "== benchmarks/ingest.py (songbook, 12 songs)"; \
	$(PY) -m audiosim.demo.songbook "$$tmp/songs" >/dev/null; $(PY) benchmarks/ingest.py "$$tmp/songs" --limit 12; \
	echo "== benchmarks/moods.py --n 10 --seconds 10"; $(PY) benchmarks/moods.py --n 10 --seconds 10; \
	if [ -n "$(BENCH_CORPUS)" ]; then \
		echo "== benchmarks/identify.py --quick"; $(PY) benchmarks/identify.py --corpus "$(BENCH_CORPUS)" --quick; \
	else \
		echo "== benchmarks/identify.py: skipped, needs a corpus list ($(CORPUS_HINT))"; \
	fi

bench-full: $(STAMP)
	@set -e; [ -n "$(BENCH_CORPUS)" ] || { echo "make bench-full: needs BENCH_CORPUS=LIST ($(CORPUS_HINT))" >&2; exit 2; }; \
	echo "== benchmarks/embed.py"; $(PY) benchmarks/embed.py; \
	echo "== benchmarks/ingest.py"; $(PY) benchmarks/ingest.py "$(BENCH_CORPUS)"; \
	echo "== benchmarks/moods.py"; $(PY) benchmarks/moods.py; \
	echo "== benchmarks/identify.py"; $(PY) benchmarks/identify.py --corpus "$(BENCH_CORPUS)"; \
	echo "== benchmarks/similarity.py"; $(PY) benchmarks/similarity.py --corpus "$(BENCH_CORPUS)"

clean:
	rm -rf build dist .pytest_cache *.egg-info
	find . -path ./$(VENV) -prune -o -path ./.git -prune -o -type d -name __pycache__ -print0 | xargs -0 rm -rf
