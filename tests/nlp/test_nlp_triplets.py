"""Subject-action-object triplets read off the dependency parse."""

from __future__ import annotations

from spacy.language import Language

from eventpipe.models import PrepModifier, Triplet
from eventpipe.nlp.model import pipe_parse
from eventpipe.nlp.triplets import triplets_from_doc


def triplets(nlp: Language, text: str) -> list[Triplet]:
    (doc,) = pipe_parse(nlp, [text])  # the DP stage parses without NER
    return triplets_from_doc(doc)


def summary(found: list[Triplet]) -> list[tuple[str, str, str | None]]:
    return [(t.subject, t.action, t.object) for t in found]


def test_active_with_prepositional_modifiers(nlp: Language) -> None:
    (t,) = triplets(nlp, "Apple acquired Beats Electronics for $3 billion on Tuesday.")
    assert t == Triplet(
        subject="Apple",
        action="acquire",
        object="Beats Electronics",
        prep_modifiers=[
            PrepModifier(prep="for", object="$3 billion"),
            PrepModifier(prep="on", object="Tuesday"),
        ],
        sentence=0,
        start_char=6,
        end_char=14,
    )


def test_passive_with_agent(nlp: Language) -> None:
    (t,) = triplets(nlp, "The suspect was arrested by police on Monday.")
    assert (t.subject, t.action, t.object) == ("The suspect", "arrest", None)
    assert t.passive
    assert t.agent == "police"
    assert t.prep_modifiers == [PrepModifier(prep="on", object="Monday")]


def test_negation(nlp: Language) -> None:
    (t,) = triplets(nlp, "The minister did not sign the agreement.")
    assert summary([t]) == [("The minister", "sign", "the agreement")]
    assert t.negated
    assert not t.passive


def test_conjoined_objects(nlp: Language) -> None:
    found = triplets(nlp, "The company sells phones and laptops.")
    assert summary(found) == [
        ("The company", "sell", "phones"),
        ("The company", "sell", "laptops"),
    ]


def test_conjoined_verbs_share_the_subject(nlp: Language) -> None:
    found = triplets(nlp, "Maria Lopez visited Berlin and met the chancellor.")
    assert summary(found) == [
        ("Maria Lopez", "visit", "Berlin"),
        ("Maria Lopez", "meet", "the chancellor"),
    ]
    assert [t.start_char for t in found] == [12, 31]


def test_conjoined_subjects_and_relative_clause(nlp: Language) -> None:
    text = "Police and soldiers arrested three men who had attacked the bank."
    assert summary(triplets(nlp, text)) == [
        ("Police", "arrest", "three men"),
        ("soldiers", "arrest", "three men"),
        ("three men", "attack", "the bank"),  # "who" resolves to its antecedent
    ]


def test_subject_without_its_relative_clause(nlp: Language) -> None:
    found = triplets(nlp, "The storm, which hit Florida on Monday, killed four people.")
    assert summary(found) == [
        ("The storm", "hit", "Florida"),
        ("The storm", "kill", "four people"),
    ]


def test_copula_attr(nlp: Language) -> None:
    (t,) = triplets(nlp, "John Smith is the chief executive of Acme Corp.")
    assert summary([t]) == [("John Smith", "be", "the chief executive of Acme Corp.")]


def test_dative_and_direct_object(nlp: Language) -> None:
    assert summary(triplets(nlp, "She gave the committee a report.")) == [
        ("She", "give", "the committee"),
        ("She", "give", "a report"),
    ]


def test_prepositional_dative_is_a_modifier(nlp: Language) -> None:
    (t,) = triplets(nlp, "She gave a report to the committee.")
    assert summary([t]) == [("She", "give", "a report")]
    assert t.prep_modifiers == [PrepModifier(prep="to", object="the committee")]


def test_particle_joins_the_action(nlp: Language) -> None:
    (t,) = triplets(nlp, "The rebels took over the city.")
    assert summary([t]) == [("The rebels", "take over", "the city")]


def test_object_predicate(nlp: Language) -> None:
    assert summary(triplets(nlp, "They elected him president.")) == [
        ("They", "elect", "him"),
        ("They", "elect", "president"),
    ]


def test_controlled_verb_inherits_the_subject(nlp: Language) -> None:
    found = triplets(nlp, "Nvidia plans to buy Arm Holdings from SoftBank.")
    assert summary(found) == [("Nvidia", "plan", None), ("Nvidia", "buy", "Arm Holdings")]
    assert found[1].prep_modifiers == [PrepModifier(prep="from", object="SoftBank")]


def test_shared_passive_subject(nlp: Language) -> None:
    found = triplets(nlp, "The man was arrested and charged with fraud.")
    assert summary(found) == [("The man", "arrest", None), ("The man", "charge", None)]
    assert all(t.passive for t in found)
    assert found[1].prep_modifiers == [PrepModifier(prep="with", object="fraud")]


def test_sentence_index_and_order(nlp: Language) -> None:
    text = "The board approved the merger. Shares of Norvale Systems rose 4% on Friday."
    found = triplets(nlp, text)
    assert summary(found) == [
        ("The board", "approve", "the merger"),
        ("Shares of Norvale Systems", "rise", None),  # "4%" is an adverbial, not an object
    ]
    assert found[1].prep_modifiers == [PrepModifier(prep="on", object="Friday")]
    assert [t.sentence for t in found] == [0, 1]
    assert all(text[t.start_char : t.end_char] in ("approved", "rose") for t in found)


def test_no_subject_no_triplet(nlp: Language) -> None:
    assert triplets(nlp, "Great news for everyone!") == []
    assert triplets(nlp, "") == []
