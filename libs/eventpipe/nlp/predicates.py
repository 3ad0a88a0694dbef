"""Words that may name an event, read off a parse: the candidates the events stage turns into
event triggers.

News annotators (ECB+, TimeML) mark as events nearly every main verb and the nouns that
name happenings ("the earthquake", "his arrest", "the takeover"), not only the verbs at the
root of a subject-verb-object triplet. The DP stage therefore reports:

- every verb that is not an auxiliary ("has been arrested": only "arrested");
- every noun whose lemma is in `EVENT_NOUNS` (general newswire happenings, nothing
  corpus-specific), and gerund nouns of event verbs ("the shooting", "the killing");
- a few adjectives that state an outcome ("dead", "guilty", "injured").
"""

from __future__ import annotations

from collections.abc import Iterable

from spacy.tokens import Doc, Token

from eventpipe.models import Predicate

AUXILIARY_DEPS = frozenset({"aux", "auxpass"})
_EVENT_NOUN_WORDS = """
accident acquisition agreement airstrike ambush appeal appointment arrest assassination
assault attack auction battle bid blast blaze blockade bombing boycott breach break-in
bribery burglary campaign capture ceasefire celebration ceremony charge clash closure
collapse collision conference conflict conviction coup crash crackdown crime crisis
death debut defeat deal departure deployment detention disaster dismissal dispute divorce
earthquake election eruption escape evacuation execution expansion explosion extradition
failure fight fire firing flood flooding funeral game hearing heist hijacking hurricane
inauguration incident indictment injury invasion investigation kidnapping killing landslide
launch lawsuit layoff leak marriage massacre match meeting merger murder negotiation
offensive operation outage outbreak overdose protest purchase quake raid rally rape
rebellion recall release repair rescue resignation retirement riot robbery sale scandal
search seizure sentence settlement shooting shootout siege slaying stabbing storm strike
suicide summit surgery suspension takeover talk tornado trade transaction transfer tremor
trial tsunami typhoon verdict victory visit vote war wedding win wreck
"""
EVENT_NOUNS = frozenset(_EVENT_NOUN_WORDS.split())
EVENT_ADJECTIVES = frozenset({"dead", "guilty", "injured", "wounded", "missing", "killed",
                              "arrested", "bankrupt"})
# Nouns in -ing that name things or times, not happenings.
_NOT_GERUNDS = frozenset({"morning", "evening", "building", "thing", "something", "nothing",
                          "anything", "everything", "ceiling", "king", "spring", "ring", "wing",
                          "string", "clothing", "housing", "funding", "offering", "setting"})
_VERB_TAGS = frozenset({"VB", "VBD", "VBG", "VBN", "VBP", "VBZ"})
_NOUN_TAGS = frozenset({"NN", "NNS"})


def _noun_lemma(token: Token) -> str:
    """A noun's lemma without a lemmatizer: the lowercase word, singular when the plural
    form is a listed noun ("charges", "talks")."""
    word = token.lower_
    if token.tag_ == "NNS":
        for singular in (word[:-1], word[:-2], word[:-3] + "y"):
            if singular in EVENT_NOUNS:
                return singular
    return word


def is_candidate(token: Token) -> bool:
    """Whether a token may name an event (before lemmas are known)."""
    if token.tag_ in _VERB_TAGS:
        return token.dep_ not in AUXILIARY_DEPS
    if token.tag_ in _NOUN_TAGS:
        lemma = _noun_lemma(token)
        return lemma in EVENT_NOUNS or (lemma.endswith("ing") and token.tag_ == "NN"
                                        and lemma not in _NOT_GERUNDS
                                        and token.dep_ in ("nsubj", "nsubjpass", "dobj",
                                                           "pobj"))
    return token.tag_ == "JJ" and token.lower_ in EVENT_ADJECTIVES


def candidate_positions(doc: Doc) -> list[int]:
    """Positions of the candidates, whose lemma the DP stage must compute."""
    return [token.i for token in doc if is_candidate(token)]


def predicates_from_doc(doc: Doc, positions: Iterable[int] | None = None) -> list[Predicate]:
    """The candidates of a parsed doc (lemmas set on at least the verbs among them)."""
    sentence_of: dict[int, int] = {}
    for number, sent in enumerate(doc.sents):
        for i in range(sent.start, sent.end):
            sentence_of[i] = number
    found = []
    for i in candidate_positions(doc) if positions is None else positions:
        token = doc[i]
        kind = ("verb" if token.tag_ in _VERB_TAGS
                else "noun" if token.tag_ in _NOUN_TAGS else "adjective")
        lemma = token.lemma_.lower() if kind == "verb" and token.lemma_ else _noun_lemma(token)
        particles = [c.lower_ for c in token.children if c.dep_ == "prt"]
        found.append(Predicate(
            lemma=" ".join([lemma, *particles]), kind=kind, start_char=token.idx,
            end_char=token.idx + len(token.text), sentence=sentence_of.get(i, 0),
            negated=any(c.dep_ == "neg" for c in token.children),
        ))
    return found
