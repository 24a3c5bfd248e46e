"""How text becomes search grams: the one tokenizer the index, the query and the backfill
migration share (`items/search.py` says how they are used).

Text is normalized (NFKC, lowercase; anything that is not a letter or digit becomes a
separator), then a run of CJK characters gives every character (unigram) and every adjacent
pair (bigram), and a run of other letters and digits (`e9901000001234567`, `2026`) gives one
whole-word token. A query term looks up the bigrams of its CJK runs (a lone character its
unigram) and its words.
"""

from __future__ import annotations

import unicodedata
from typing import Any

MAX_TOKEN = 40  # longer words are indexed and looked up by their first 40 characters
_CJK_RANGES = (
    (0x2E80, 0x2FDF),  # radicals
    (0x3007, 0x3007),  # 〇, as in 二〇二六年
    (0x3040, 0x30FF),  # kana
    (0x3100, 0x312F),  # bopomofo
    (0x3400, 0x4DBF),  # extension A
    (0x4E00, 0x9FFF),  # unified ideographs
    (0xAC00, 0xD7AF),  # hangul
    (0xF900, 0xFAFF),  # compatibility ideographs
    (0x20000, 0x3FFFF),  # extensions B and later
)


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return any(low <= code <= high for low, high in _CJK_RANGES)


def normalize(text: str) -> str:
    """NFKC, lowercase, every run of non-letters/digits one space (CJK characters kept)."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFKC", text).lower():
        out.append(ch if _is_cjk(ch) or ch.isalnum() else " ")
    return " ".join("".join(out).split())


def _runs(normal: str) -> list[tuple[bool, str]]:
    """Split normalized text into (is CJK, run) pieces: CJK runs and words."""
    runs: list[tuple[bool, str]] = []
    for word in normal.split():
        start = 0
        for i in range(1, len(word) + 1):
            if i == len(word) or _is_cjk(word[i]) != _is_cjk(word[start]):
                runs.append((_is_cjk(word[start]), word[start:i]))
                start = i
    return runs


def index_grams(text: str) -> set[str]:
    """The grams stored for normalized `text`: CJK unigrams and bigrams, whole words."""
    grams: set[str] = set()
    for cjk, run in _runs(text):
        if not cjk:
            grams.add(run[:MAX_TOKEN])
            continue
        grams.update(run)
        grams.update(run[i : i + 2] for i in range(len(run) - 1))
    return grams


def query_grams(term: str) -> set[str]:
    """The grams a normalized query term needs: bigrams of CJK runs (a lone character), words."""
    grams: set[str] = set()
    for cjk, run in _runs(term):
        if not cjk:
            grams.add(run[:MAX_TOKEN])
        elif len(run) == 1:
            grams.add(run)
        else:
            grams.update(run[i : i + 2] for i in range(len(run) - 1))
    return grams


def document(title: str, summary: str) -> str:
    """The normalized text of a version; a newline keeps phrases from spanning title and summary."""
    return f"{normalize(title)}\n{normalize(summary)}"


def index_rows(item_id: int, version: int, title: str, summary: str) -> tuple[dict[str, Any], ...]:
    """The document row then one row per gram of a version (also used by the backfill migration)."""
    text = document(title, summary)
    ids = {"item_id": item_id, "version": version}
    grams = sorted(set().union(*(index_grams(part) for part in text.split("\n"))))
    return ({**ids, "text": text}, *({**ids, "gram": gram} for gram in grams))


def terms_of(query: str) -> tuple[str, ...]:
    """The normalized terms of a query (whitespace separates terms), duplicates dropped."""
    return tuple(dict.fromkeys(t for t in (normalize(part) for part in query.split()) if t))
