"""Language codes: the one form every stage writes and compares.

A query list's ``lang`` column, a selected row's ``lang`` and ``wit select --lang`` all use the
same code: ISO 639-1 where the language has one (``en``, ``de``, ``zh``, ``ja``), Wikipedia's
own code otherwise (``yue``, ``als``). Detectors and Wikipedia name a few languages by a
variant; ``normalise`` folds those into the one code (langdetect's ``zh-cn`` and ``zh-tw`` are
both ``zh``: one Chinese query list serves both scripts).
"""

from __future__ import annotations

# Variant codes -> the code of the language they belong to.
_VARIANTS = {
    "zh-cn": "zh", "zh-tw": "zh", "zh-hans": "zh", "zh-hant": "zh", "zh-sg": "zh", "zh-hk": "zh",
    "zh-classical": "lzh", "zh-min-nan": "nan", "zh-yue": "yue",
    "nb": "no",   # Wikipedia's Norwegian Bokmål is "no" (no.wikipedia.org); langdetect says "no" too
}


def normalise(code: str) -> str:
    """The code as queries and selected rows carry it: lower case, variants folded (``zh-CN`` -> ``zh``)."""
    code = (code or "").strip().lower().replace("_", "-")
    return _VARIANTS.get(code, code)
