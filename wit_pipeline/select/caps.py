"""Per-language caps: ``--cap`` for every language, or MetaCLIP 2's rule that matches tail shares.

``language_caps(matched, cap, rule, reference="en")`` turns the per-language
lists of per-query match counts into one cap per language (pure; ``wit select``
calls it once the counts are known). ``choose_caps`` returns the same caps with
the reference share and, when the rule could not be applied, why.

``same``: every language's cap is ``cap``.

``metaclip2``: the rule of MetaCLIP 2 ("Meta CLIP 2: A Worldwide Scaling
Recipe", arXiv 2507.22062), as its curation code applies it
(facebookresearch/MetaCLIP, ``metaclip/curation/curate.py``: ``t_to_p``,
``p_to_t`` and ``global_count``):

- English keeps ``cap`` (MetaCLIP 2's ``t_en``).
- English's *tail share* at ``cap`` is ``t_to_p``: the share of English
  matches that belong to tail queries, those matched fewer than ``cap`` times::

      p = sum(c for c in counts_en if c < cap) / sum(counts_en)

- Every other language L gets ``p_to_t(counts_L, p)``: sort L's counts
  ascending, take the running share ``P_i = (c_1 + ... + c_i) / sum(counts_L)``
  at each position, and the cap is the count ``c_i`` whose ``P_i`` is closest to
  ``p`` (the first such position on a tie, as numpy's ``argmin``). A language
  whose counts are all small relative to English's reaches ``P_n = 1`` only at
  its largest count, so when English is all tail (``p = 1``) L's cap is its
  maximum count and nothing in L is capped.

Where this module departs from that code, and why:

- Shares are compared exactly, in integers (``|S_i * den - num * T|``), not in
  floating point, so the chosen cap never depends on rounding.
- Queries that matched nothing are left out of ``p_to_t``'s sorted counts:
  they add nothing to any share, but MetaCLIP 2 keeps them, and for a small
  ``p`` its closest position can then be a zero count, a cap of 0 that would
  drop every pair of the language.
- A language with no match at all gets ``cap`` (there is nothing to cap).
- English absent from the data, or with no match: there is no share to carry
  over (MetaCLIP 2 divides by zero), so every language gets ``cap``;
  ``CapChoice.note`` says so and a warning is logged.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

log = logging.getLogger(__name__)

CAP_RULES = ("same", "metaclip2")


@dataclass(frozen=True)
class CapChoice:
    """The cap of each language, English's tail share at ``cap`` (``metaclip2`` only) and why a fallback
    was taken (empty when the rule applied as written)."""

    caps: dict[str | None, int]
    reference_share: float | None = None
    note: str = ""


def _tail_fraction(counts: Iterable[int], t: int) -> Fraction | None:
    counts = list(counts)
    total = sum(counts)
    if total <= 0:
        return None
    return Fraction(sum(c for c in counts if c < t), total)


def tail_share(counts: Iterable[int], t: int) -> float:
    """MetaCLIP 2's ``t_to_p``: the share of all matches made by queries matched fewer than ``t`` times
    (0.0 when nothing matched)."""
    share = _tail_fraction(counts, t)
    return 0.0 if share is None else float(share)


def cap_for_share(counts: Iterable[int], share: float | Fraction) -> int | None:
    """MetaCLIP 2's ``p_to_t``: the count whose running share (counts ascending) is closest to ``share``.

    Zero counts are left out; None when nothing matched (no cap is needed).
    """
    ordered = sorted(c for c in counts if c > 0)
    if not ordered:
        return None
    target = Fraction(share)
    total = sum(ordered)
    # |running/total - num/den| compared as |running*den - num*total|: exact integers
    num, den = target.numerator, target.denominator
    best, best_distance, running = ordered[0], None, 0
    for count in ordered:
        running += count
        distance = abs(running * den - num * total)
        if best_distance is None or distance < best_distance:
            best, best_distance = count, distance
        elif running * den > num * total:
            break       # past the target, the running share only moves away from it
    return best


def _check(cap: int, rule: str) -> None:
    if rule not in CAP_RULES:
        raise ValueError(f"unknown cap rule {rule!r}: choose one of {', '.join(CAP_RULES)}")
    if isinstance(cap, bool) or not isinstance(cap, numbers.Integral) or cap < 1:
        raise ValueError(f"cap must be an integer of at least 1, got {cap!r}")


def choose_caps(matched: Mapping[str | None, list[int]], cap: int, rule: str, reference: str = "en") -> CapChoice:
    """The cap of every language in ``matched`` (language -> per-query matched counts) under ``rule``."""
    _check(cap, rule)
    cap = int(cap)      # plain ints: the caps go to stats.json
    if rule == "same":
        return CapChoice({lang: cap for lang in matched})
    reference_share = _tail_fraction(matched.get(reference, ()), cap)
    if reference_share is None:
        why = "absent from the data" if reference not in matched else "without a single match"
        note = (f"cap rule metaclip2: reference language {reference!r} is {why}, so there is no tail share to "
                f"carry over; every language gets --cap {cap}")
        log.warning(note)
        return CapChoice({lang: cap for lang in matched}, note=note)
    caps = {}
    for lang, counts in matched.items():
        own = cap_for_share(counts, reference_share) if lang != reference else cap
        caps[lang] = cap if own is None else int(own)
    return CapChoice(caps, reference_share=float(reference_share))


def language_caps(matched: dict[str, list[int]], cap: int, rule: str, reference: str = "en") -> dict[str, int]:
    """``{lang: cap}`` for every language of ``matched`` under ``rule`` (``same`` or ``metaclip2``)."""
    return choose_caps(matched, cap, rule, reference).caps
