"""The chat messages every language-model backend sends: a short instruction, the document
(cut to a length small models handle) and, as hints, the entities and subject-action-object
triplets the earlier stages found in the part of it that is sent."""

from __future__ import annotations

from collections.abc import Iterable

from eventpipe.nlp.events import EVENT_TYPES, EventInput

Messages = list[dict[str, str]]

# About 1,500 tokens of English: room for hints and the answer in a 4k-token context.
MAX_TEXT_CHARS = 6000
MAX_ENTITIES = 40
MAX_TRIPLETS = 30
MAX_REPAIR_CHARS = 1500

SYSTEM = (
    "You extract events from a news text. An event is something the text says happened or "
    "was done. For each event give: trigger, the word or short phrase of the text that names "
    "it (usually its verb); type, one of: " + ", ".join(EVENT_TYPES) + "; participants, who "
    "or what took part, each with its text as written and a role (agent: who did it; patient: "
    "who or what it was done to; theme: what it is about; recipient; other); location and "
    "time as written in the text, or null. Leave out what the text denies or only expects. "
    'Answer with JSON only: {"events": [{"trigger": ..., "type": ..., "participants": '
    '[{"text": ..., "role": ...}], "location": ..., "time": ...}]}, and {"events": []} '
    "when there are none."
)


def build_messages(doc: EventInput) -> Messages:
    text = doc.text
    if len(text) > MAX_TEXT_CHARS:
        # Cut at a space so the model does not see half a word.
        cut = text.rfind(" ", 0, MAX_TEXT_CHARS)
        text = text[: cut if cut > 0 else MAX_TEXT_CHARS] + " [...]"
    end = len(text)
    entities = _unique(
        f"{ent.text} ({ent.label})" for ent in doc.entities if ent.end_char <= end
    )[:MAX_ENTITIES]
    triplets = _unique(
        " | ".join(
            (t.subject, ("not " if t.negated else "") + t.action, t.object or t.agent or "-")
        )
        for t in doc.triplets
        if t.end_char <= end
    )[:MAX_TRIPLETS]
    parts = [f"Text:\n{text}"]
    if entities:
        parts.append("Named entities found in the text (hints):\n" + "; ".join(entities))
    if triplets:
        parts.append(
            "Subject | action | object found in the text (hints):\n" + "\n".join(triplets)
        )
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def repair_messages(messages: Messages, output: str, reason: str) -> Messages:
    """The same request, with the invalid answer and what is wrong with it."""
    shown = output[:MAX_REPAIR_CHARS] + (" [...]" if len(output) > MAX_REPAIR_CHARS else "")
    return [
        *messages,
        {"role": "assistant", "content": shown},
        {
            "role": "user",
            "content": f"That answer is invalid ({reason}). Answer again with JSON only, "
            "matching the format, with fewer or shorter events if it was cut off.",
        },
    ]


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
