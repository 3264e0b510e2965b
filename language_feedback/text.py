"""Plain-text helpers shared by the selectors, the ILF loop and the feedback world's scorer: one definition of a
word and of a sentence, so that what a filter counts and what the ground truth counts cannot drift apart."""

from __future__ import annotations

import re

WORD = re.compile(r"[A-Za-z0-9']+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
_THOUSANDS = re.compile(r"(?<=\d)[,.](?=\d{3}\b)")


def split_sentences(text: str) -> list[str]:
    """Sentences ending in . ! or ? followed by white space; pieces without a word (a lone "...") are dropped."""
    return [p for p in _SENTENCE_END.split(text.strip()) if WORD.search(p)]


def words(text: str) -> list[str]:
    """The words of ``text`` as written, numbers without thousands separators ("3,950" and "3950" are one word)."""
    return WORD.findall(_THOUSANDS.sub("", text))
