"""Text that both databases can store: the one check the store and the tracking API share."""

from __future__ import annotations

from modelcycle.errors import InvalidValueError

__all__ = ["check_text"]


def check_text(text: str, what: str) -> str:
    """``text`` if both databases can store it: a NUL character, or a lone surrogate (what ``os.fsdecode`` makes of a
    file name that is not UTF-8), cannot, and would make the whole write (or search) fail later.

    Raises:
        InvalidValueError: naming where the character is.

    Example:
        >>> check_text("churn", "a name")
        'churn'
    """
    nul = text.find("\x00")
    if nul >= 0:
        raise InvalidValueError(
            f"{what} holds a NUL character (position {nul}: {text[max(0, nul - 20):nul]!r}…), which PostgreSQL cannot "
            "store; remove it, or log binary data as an artifact")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidValueError(
            f"{what} holds a character that is not text (position {e.start}: {text[max(0, e.start - 20):e.start]!r}…), "
            "as os.fsdecode gives for a file name in another encoding; decode it with errors='replace' first") from None
    return text
