"""The NER and DP stages process each batch in a spaCy memory zone: the same output as the
full pipeline run without one, and a vocabulary that does not grow with never-seen strings."""

from __future__ import annotations

from spacy.language import Language

from eventpipe.models import DocumentMessage, job_id_for
from eventpipe.nlp.entities import entities_from_doc, sentences_from_doc
from eventpipe.nlp.memory import transient_batch, trim_caches
from eventpipe.nlp.triplets import triplets_from_doc
from services.dp.service import make_process as make_dp
from services.ner.service import make_process as make_ner
from support.unseen import unseen_documents


def messages(texts: list[str]) -> list[DocumentMessage]:
    return [DocumentMessage(job_id=job_id_for("b"), batch_id="b", doc_id=f"d{n}", text=text)
            for n, text in enumerate(texts)]


def through_stages(nlp: Language, texts: list[str], warm: int = 0) -> list[DocumentMessage]:
    ner, dp = make_ner(nlp, warm), make_dp(nlp, warm)
    out: list[DocumentMessage] = []
    for start in range(0, len(texts), 16):  # several batches: several zones
        batch = ner(messages(texts[start:start + 16]))
        assert all(isinstance(m, DocumentMessage) for m in batch)
        for message in dp(batch):  # type: ignore[arg-type]
            assert isinstance(message, DocumentMessage)
            out.append(message)
    return out


def test_stage_output_in_zones_equals_the_full_pipeline_without_one(nlp: Language) -> None:
    texts = [d["text"] for d in unseen_documents(60, seed=101)]
    # Twice: the second pass meets again strings the first pass's zones dropped.
    first = through_stages(nlp, texts)
    second = through_stages(nlp, texts)
    assert first == second
    entities = 0
    for message, doc in zip(first, nlp.pipe(texts), strict=True):
        assert message.entities == entities_from_doc(doc)
        assert message.triplets == triplets_from_doc(doc)
        assert message.sentences == sentences_from_doc(doc)
        entities += len(message.entities)
    assert entities > 300  # invented names, places and companies are found as entities


def test_never_seen_strings_leave_the_vocabulary_as_it_was(nlp: Language) -> None:
    texts = [d["text"] for d in unseen_documents(40, seed=202)]
    before = len(nlp.vocab.strings)
    through_stages(nlp, texts)
    assert len(nlp.vocab.strings) == before
    # Without the zone the same kind of text grows it: the check above can fail.
    list(nlp.pipe(d["text"] for d in unseen_documents(10, seed=303)))
    assert len(nlp.vocab.strings) > before + 300


def test_after_the_warm_up_documents_the_vocabulary_stops_growing(nlp: Language) -> None:
    texts = [d["text"] for d in unseen_documents(64, seed=404)]
    before = len(nlp.vocab.strings)
    through_stages(nlp, texts[:32], warm=32)  # two batches of 16 outside any zone
    warmed = len(nlp.vocab.strings)
    assert warmed > before + 300
    ner, dp = make_ner(nlp, 32), make_dp(nlp, 32)
    for start in (0, 16):  # the warm-up: outside any zone
        dp(ner(messages(texts[start:start + 16])))  # type: ignore[arg-type]
    after_warm_up = len(nlp.vocab.strings)
    dp(ner(messages(texts[32:48])))  # type: ignore[arg-type]  # in zones from here on
    assert len(nlp.vocab.strings) == after_warm_up


def test_strings_made_inside_a_zone_are_gone_after_it(nlp: Language) -> None:
    word = "Qzxvortlingham"
    with transient_batch(nlp):
        doc = nlp(f"{word} visited Paris.")
        assert word in nlp.vocab.strings
        kept = [t.text for t in doc]
    assert word not in nlp.vocab.strings
    assert kept[0] == word  # copied out inside the zone: still valid


def test_the_lemmatizer_cache_is_bounded(nlp: Language) -> None:
    lemmatizer = nlp.get_pipe("lemmatizer")
    list(nlp.pipe(["They walked, talked and jumped over fences."]))
    assert len(lemmatizer.cache) > 2
    trim_caches(nlp, limit=len(lemmatizer.cache))
    assert len(lemmatizer.cache) > 2  # at the limit: kept
    trim_caches(nlp, limit=2)
    assert len(lemmatizer.cache) == 0
