"""Subject-action-object triplets read off a dependency parse (spaCy's ClearNLP-style
labels, as produced by en_core_web_sm)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from spacy.tokens import Doc, Token

from eventpipe.models import PrepModifier, Triplet

SUBJECT_DEPS = frozenset({"nsubj", "nsubjpass", "csubj", "csubjpass"})
PASSIVE_SUBJECT_DEPS = frozenset({"nsubjpass", "csubjpass"})
OBJECT_DEPS = frozenset({"dobj", "attr", "dative", "oprd"})
# Verbs that may share the subject of their head: "visited Berlin and met ...",
# "plans to buy ...".
SUBJECT_SHARING_DEPS = frozenset({"conj", "xcomp"})
# Children left out of a phrase: clauses and appositions make it long, and conjuncts and
# their conjunction become triplets of their own.
PHRASE_EXCLUDED_DEPS = frozenset({"relcl", "acl", "appos", "conj", "cc", "preconj"})
RELATIVE_PRONOUN_TAGS = frozenset({"WDT", "WP"})


def triplets_from_doc(doc: Doc) -> list[Triplet]:
    """One triplet per (subject, verb, object) of `doc`, ordered by verb, then subject, then
    object position. Verbs without a subject give none; without an object, one with
    ``object=None`` per subject."""
    sentence_of = _sentence_index(doc)
    found: list[tuple[int, int, int, Triplet]] = []
    for verb in doc:
        for subject in _subjects(verb):
            for obj_pos, triplet in _verb_triplets(verb, subject, sentence_of[verb.i]):
                found.append((verb.i, subject.i, obj_pos, triplet))
    found.sort(key=lambda item: item[:3])
    return [item[3] for item in found]


def attribute_readers(doc: Doc) -> list[int]:
    """Positions of the tokens whose POS or lemma `triplets_from_doc` reads: verbs with a
    subject of their own, and verbs that may share one (the only tokens `_subjects` asks the
    POS of, and the only ones `action` lemmatizes). Kept next to the code that reads them."""
    return [token.i for token in doc
            if token.dep_ in SUBJECT_SHARING_DEPS
            or any(child.dep_ in SUBJECT_DEPS for child in token.children)]


def _verb_triplets(verb: Token, subject: Token, sentence: int) -> Iterator[tuple[int, Triplet]]:
    """(object position, triplet) for each object of `verb`, or (-1, triplet) if none."""
    objects: list[Token | None] = [*_objects(verb)] or [None]
    for obj in objects:
        triplet = Triplet(
            subject=phrase(subject),
            action=action(verb),
            object=phrase(obj) if obj is not None else None,
            negated=any(child.dep_ == "neg" for child in verb.children),
            passive=_is_passive(verb, subject),
            agent=_agent(verb),
            prep_modifiers=_prep_modifiers(verb),
            sentence=sentence,
            start_char=verb.idx,
            end_char=verb.idx + len(verb.text),
        )
        yield (obj.i if obj is not None else -1), triplet


def action(verb: Token) -> str:
    """The verb's lemma with its particles: "took over" -> "take over"."""
    particles = [child.text.lower() for child in verb.children if child.dep_ == "prt"]
    return " ".join([verb.lemma_.lower(), *particles])


def _subjects(verb: Token) -> list[Token]:
    own = [child for child in verb.children if child.dep_ in SUBJECT_DEPS]
    if own:
        return _with_conjuncts(_resolve_relative(verb, subject) for subject in own)
    if verb.pos_ in ("VERB", "AUX") and verb.dep_ in SUBJECT_SHARING_DEPS:
        return _subjects(verb.head) if verb.head is not verb else []
    return []


def _resolve_relative(verb: Token, subject: Token) -> Token:
    # "men who attacked the bank": the subject of "attacked" is "men", not "who".
    if subject.tag_ in RELATIVE_PRONOUN_TAGS and verb.dep_ == "relcl":
        head: Token = verb.head
        return head
    return subject


def _objects(verb: Token) -> list[Token]:
    direct = [
        child
        for child in verb.children
        if child.dep_ in OBJECT_DEPS and not _is_prepositional_dative(child)
    ]
    return _with_conjuncts(direct)


def _is_prepositional_dative(token: Token) -> bool:
    # "gave a report to the committee": the parser may label "to" as dative; it is then a
    # preposition with its own object, recorded among the prepositional modifiers.
    return token.dep_ == "dative" and any(child.dep_ == "pobj" for child in token.children)


def _with_conjuncts(tokens: Iterable[Token]) -> list[Token]:
    """`tokens` and their conjuncts ("Police and soldiers"), by position, without repeats."""
    seen: dict[int, Token] = {}
    stack = list(tokens)
    while stack:
        token = stack.pop()
        if token.i in seen:
            continue
        seen[token.i] = token
        stack.extend(child for child in token.children if child.dep_ == "conj")
    return [seen[i] for i in sorted(seen)]


def _is_passive(verb: Token, subject: Token) -> bool:
    if any(child.dep_ == "auxpass" for child in verb.children):
        return True
    if subject.dep_ in PASSIVE_SUBJECT_DEPS:
        # An inherited passive subject makes a shared verb passive only if it is a
        # participle: "was arrested and charged" but not "was arrested and fled".
        return subject.head is verb or verb.tag_ == "VBN"
    return False


def _agent(verb: Token) -> str | None:
    for child in verb.children:
        if child.dep_ == "agent":
            objects = [grand for grand in child.children if grand.dep_ == "pobj"]
            if objects:
                return " and ".join(phrase(obj) for obj in _with_conjuncts(objects))
    return None


def _prep_modifiers(verb: Token) -> list[PrepModifier]:
    modifiers = []
    for child in verb.children:
        if child.dep_ == "prep" or _is_prepositional_dative(child):
            objects = [grand for grand in child.children if grand.dep_ == "pobj"]
            for obj in _with_conjuncts(objects):
                modifiers.append(PrepModifier(prep=child.text.lower(), object=phrase(obj)))
    return modifiers


def phrase(head: Token) -> str:
    """The compact phrase headed by `head`: its subtree without relative clauses,
    appositions or conjuncts, and without punctuation at either end."""
    tokens = sorted(_phrase_tokens(head), key=lambda token: token.i)
    while len(tokens) > 1 and tokens[0].is_punct:
        tokens.pop(0)
    while len(tokens) > 1 and tokens[-1].is_punct:
        tokens.pop()
    parts: list[str] = []
    for token, following in zip(tokens, [*tokens[1:], None], strict=True):
        if following is None:
            parts.append(token.text)
        elif following.i == token.i + 1:
            parts.append(token.text_with_ws)
        else:  # a left-out clause sat in between
            parts.append(token.text + " ")
    return "".join(parts)


def _phrase_tokens(head: Token) -> list[Token]:
    kept = [head]
    for child in head.children:
        if child.dep_ not in PHRASE_EXCLUDED_DEPS:
            kept.extend(child.subtree)
    return kept


def _sentence_index(doc: Doc) -> list[int]:
    index = [0] * len(doc)
    for number, sent in enumerate(doc.sents):
        for i in range(sent.start, sent.end):
            index[i] = number
    return index
