# Two commands on a fresh machine: `make run` and `make test`. Both rest on `make install`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck bench clean

install: $(STAMP)

# Re-installs only when the project's metadata changed (the package itself is editable).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/eventpipe run examples/news_sample.jsonl

test: install
	$(BIN)/ruff check libs services tests bench
	$(BIN)/mypy libs services
	$(BIN)/pytest

bench: install
	$(BIN)/python bench/pipeline.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
