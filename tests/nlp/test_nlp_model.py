"""The pipeline resolver and the component subsets the stages run."""

from __future__ import annotations

import pytest
from spacy.language import Language
from spacy.pipeline import Tok2Vec

from eventpipe.nlp.errors import ModelNotFoundError, NLPError
from eventpipe.nlp.model import (
    FALLBACK_MODELS,
    NER_COMPONENTS,
    PARSER_COMPONENTS,
    candidate_models,
    disabled_except,
    load_pipeline,
    ner_only,
    parse_only,
    pipe_ner,
    pipe_parse,
)

BOGUS = "no_such_pipeline_for_eventpipe_tests"


def test_loads_a_fallback_with_the_components_the_stages_need(nlp: Language) -> None:
    assert set(NER_COMPONENTS) | set(PARSER_COMPONENTS) <= set(nlp.pipe_names)


def test_pipelines_are_cached(nlp: Language) -> None:
    assert load_pipeline() is nlp


def test_bogus_configured_name_falls_back(nlp: Language) -> None:
    assert load_pipeline(BOGUS) is nlp


def test_bogus_name_without_fallbacks_names_it_and_the_reason() -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        load_pipeline(BOGUS, fallbacks=False)
    message = str(caught.value)
    assert BOGUS in message
    assert "OSError" in message
    assert isinstance(caught.value, NLPError)


def test_nothing_to_try_is_an_error() -> None:
    with pytest.raises(ModelNotFoundError, match="fallbacks are disabled"):
        load_pipeline(None, fallbacks=False)


def test_candidates_in_order_without_repeats() -> None:
    assert candidate_models("custom") == ["custom", *FALLBACK_MODELS]
    assert candidate_models(FALLBACK_MODELS[1]) == [FALLBACK_MODELS[1], FALLBACK_MODELS[0]]
    assert candidate_models(None) == list(FALLBACK_MODELS)
    assert candidate_models("custom", fallbacks=False) == ["custom"]


def test_ner_does_not_listen_to_the_shared_tok2vec(nlp: Language) -> None:
    # The premise of running NER and parsing in separate processes.
    tok2vec = nlp.get_pipe("tok2vec")
    assert isinstance(tok2vec, Tok2Vec)
    listeners = tok2vec.listening_components
    assert "ner" not in listeners
    assert {"tagger", "parser"} <= set(listeners)


def test_disable_lists_keep_only_the_wanted_components(nlp: Language) -> None:
    assert set(nlp.pipe_names) - set(ner_only(nlp)) == set(NER_COMPONENTS)
    assert set(nlp.pipe_names) - set(parse_only(nlp)) == set(PARSER_COMPONENTS)


def test_missing_component_is_reported(nlp: Language) -> None:
    with pytest.raises(ModelNotFoundError, match="coref"):
        disabled_except(nlp, ["ner", "coref"])


def test_pipe_ner_sets_entities_only(nlp: Language) -> None:
    texts = ["Maria Lopez visited Berlin.", "Apple hired 300 engineers in Dublin."]
    docs = list(pipe_ner(nlp, texts, batch_size=2))
    assert [doc.text for doc in docs] == texts
    assert [ent.text for ent in docs[0].ents] == ["Maria Lopez", "Berlin"]
    assert not docs[0].has_annotation("DEP")
    assert not docs[0].has_annotation("TAG")


def test_pipe_parse_sets_parse_and_lemmas_only(nlp: Language) -> None:
    (doc,) = pipe_parse(nlp, ["Maria Lopez visited Berlin. She met the mayor."])
    assert doc.has_annotation("DEP")
    assert doc.has_annotation("LEMMA")
    assert len(list(doc.sents)) == 2
    assert doc.ents == ()
