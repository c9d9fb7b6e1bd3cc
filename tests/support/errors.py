"""How an error reads to whoever sees it, for checks that it carries no key material."""

from __future__ import annotations

import traceback


def full_text(exc: BaseException) -> str:
    """Everything a traceback of ``exc`` would print, chained causes included."""
    return "".join(traceback.format_exception(exc)) + repr(exc)
