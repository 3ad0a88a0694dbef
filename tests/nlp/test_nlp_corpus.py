"""The synthetic news corpus and the sample shipped in examples/."""

from __future__ import annotations

import json
import random
import re
import string
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from support import corpus
from support.corpus import TOPICS, generate_documents, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "news_sample.jsonl"
SENTENCE_END = re.compile(r'(?<=[.!?])"?\s+(?=["A-Z])')


@pytest.fixture(scope="module")
def docs() -> list[dict[str, str]]:
    return generate_documents(300, seed=7)


def test_deterministic_and_seeded(docs: list[dict[str, str]]) -> None:
    assert generate_documents(300, seed=7) == docs
    assert generate_documents(20, seed=7) == docs[:20]
    assert generate_documents(20, seed=8) != docs[:20]
    assert generate_documents(0) == []
    with pytest.raises(ValueError):
        generate_documents(-1)


def test_document_shape(docs: list[dict[str, str]]) -> None:
    assert [d["id"] for d in docs[:2]] == ["doc_0001", "doc_0002"]
    assert len({d["id"] for d in docs}) == len(docs)
    for doc in docs:
        assert set(doc) == {"id", "text", "published"}
        assert date.fromisoformat(doc["published"]).year == 2025
        assert "{" not in doc["text"] and "[" not in doc["text"]
        assert doc["text"][0].isupper() and doc["text"][-1] in '."'


def test_lengths(docs: list[dict[str, str]]) -> None:
    words = [len(d["text"].split()) for d in docs]
    assert min(words) >= corpus.MIN_WORDS - 10
    assert max(words) <= corpus.MAX_WORDS
    # Quotes end a sentence inside another, so this overcounts a little.
    sentences = [len(SENTENCE_END.split(d["text"])) for d in docs]
    assert min(sentences) >= corpus.MIN_SENTENCES
    assert max(sentences) <= corpus.MAX_SENTENCES + 2


def test_variety(docs: list[dict[str, str]]) -> None:
    sentences = [s for d in docs for s in SENTENCE_END.split(d["text"])]
    assert len(set(sentences)) / len(sentences) > 0.6
    assert len({d["text"].split(" ", 4)[3] for d in docs}) > 50


def test_every_template_renders() -> None:
    rng = random.Random(1)
    slots = corpus._Slots(corpus._draw_cast(rng, date(2025, 3, 14)))
    templates = [t for topic in TOPICS.values() for t in (*topic.leads, *topic.follow_ups)]
    templates += corpus.CLOSERS
    for template in templates:
        text = corpus._render(template, slots, rng)
        assert text[-1] in '."', template
        fields = {name for _, name, _, _ in string.Formatter().parse(text) if name}
        assert not fields, template


def test_first_mention_is_the_full_name() -> None:
    slots = corpus._Slots({"p1": "Maria Lopez", "p1_last": "Lopez", "city": "Lima"})
    rng = random.Random(0)
    assert corpus._render("{p1_last} met [us|them] in {city}", slots, rng).startswith(
        "Maria Lopez met"
    )
    assert corpus._render("{p1} left", slots, rng) == "Lopez left."


def test_write_jsonl(tmp_path: Path, docs: list[dict[str, str]]) -> None:
    path = tmp_path / "out.jsonl"
    assert write_jsonl(docs[:5], path) == 5
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == docs[:5]


def test_sample_file_matches_the_generator() -> None:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == generate_documents(250, seed=7)


def test_generate_sample_cli(tmp_path: Path) -> None:
    out = tmp_path / "sample.jsonl"
    script = ROOT / "examples" / "generate_sample.py"
    result = subprocess.run(
        [sys.executable, str(script), str(out), "--count", "12", "--seed", "3"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 12 documents" in result.stderr
    docs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert docs == generate_documents(12, seed=3)
