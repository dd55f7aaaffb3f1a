"""Token counts with OpenAI's ``cl100k_base`` BPE, offline (the ``bpe-openai`` package carries its vocabulary)."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def encoder():
    import bpe_openai

    return bpe_openai.get_encoding("cl100k_base")


def count_tokens(text: str) -> int:
    """cl100k_base tokens of ``text`` (special-token spellings count as ordinary text)."""
    return len(encoder().encode_ordinary(text)) if text else 0
