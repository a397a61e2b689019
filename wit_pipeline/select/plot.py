"""The head/tail picture of balancing: matched vs selected pairs per query, sorted, on log axes.

``write_summary(out_dir, query_counts, stats, cap, caps=None)`` writes ``query_counts.png``
and ``summary.html`` (the PNG embedded, so the page stands alone, plus the stage's
figures and the heaviest queries).

query_counts rows may carry ``lang`` (None for a language-neutral list). Rows of one
language, or none, draw today's picture: matched and selected curves and the cap line
(``plot_png``). Rows of several languages draw one matched curve per language (its
selected curve dashed in the same colour) and a dotted line, in that colour, at the
language's cap (``plot_languages_png``; the ``MAX_PLOTTED_LANGUAGES`` languages with
the most matches, the rest are in the page's table); the page lists every language's
cap, queries, queries matched and capped, and matches, and names the language of each
of the heaviest queries.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass

from .. import fileio

MAX_PLOTTED_LANGUAGES = 12     # more curves than this are a tangle: the page's table has every language
MAX_CURVE_POINTS = 2000        # a curve drawn through this many log-spaced ranks looks the same as through all
NO_LANGUAGE = "no language"    # the label of queries from a list without a lang column


@dataclass(frozen=True)
class LanguageCounts:
    """One language's per-query counts (query order as given) and its cap."""

    lang: str | None
    matched: list[int]
    selected: list[int]
    cap: int

    @property
    def label(self) -> str:
        return NO_LANGUAGE if self.lang is None else self.lang


def by_language(query_counts: list[dict], cap: int, caps: dict | None = None) -> list[LanguageCounts]:
    """query_counts rows grouped by ``lang`` (missing = None), most matches first; a language's cap is
    ``caps[lang]``, else ``cap``."""
    groups: dict[str | None, list[dict]] = {}
    for row in query_counts:
        groups.setdefault(row.get("lang"), []).append(row)
    caps = caps or {}
    languages = [LanguageCounts(lang, [r["matched"] for r in rows], [r["selected"] for r in rows],
                                caps.get(lang, cap)) for lang, rows in groups.items()]
    return sorted(languages, key=lambda g: (-sum(g.matched), g.label))


def curve(counts: list[int]) -> tuple[list[int], list[int]]:
    """``(ranks, counts)`` of the non-zero ``counts`` sorted descending, for a log-log plot: every rank up to
    ``MAX_CURVE_POINTS`` ranks, past that at most that many log-spaced ones (the first and last among them),
    which draw the same picture as hundreds of thousands of points, at a fraction of the cost."""
    values = sorted((v for v in counts if v > 0), reverse=True)
    if len(values) <= MAX_CURVE_POINTS:
        return list(range(1, len(values) + 1)), values
    ranks = sorted({round(len(values) ** (i / (MAX_CURVE_POINTS - 1))) for i in range(MAX_CURVE_POINTS)})
    return ranks, [values[rank - 1] for rank in ranks]


def plot_png(matched: list[int], selected: list[int], cap: int, title: str = "") -> bytes:
    """PNG bytes: both curves against query rank (by matched count, descending); zero counts left out."""
    m, s = curve(matched), curve(selected)
    figure, axes = _axes()
    if m[1]:
        axes.loglog(*m, label="matched", color="#888888", linewidth=1.6)
    if s[1]:
        axes.loglog(*s, label="selected", color="#1f77b4", linewidth=1.6)
    if m[1]:
        axes.axhline(cap, color="#d62728", linestyle="--", linewidth=1, label=f"cap = {cap:,}")
    _finish(axes, title or "pairs per query: matched vs selected", legend=bool(m[1]))
    return _png(figure)


def plot_languages_png(languages: list[LanguageCounts], title: str = "") -> bytes:
    """PNG bytes: per language, matched pairs per query (solid) and selected (dashed) against query rank,
    and a dotted line at the language's cap; the ``MAX_PLOTTED_LANGUAGES`` first languages only."""
    figure, axes = _axes()
    colours = [f"C{i}" for i in range(10)] + ["#555555", "#8c6d31"]
    drawn = False
    for index, language in enumerate(languages[:MAX_PLOTTED_LANGUAGES]):
        m = curve(language.matched)
        if not m[1]:
            continue
        s = curve(language.selected)
        colour = colours[index % len(colours)]
        axes.loglog(*m, color=colour, linewidth=1.6, label=f"{language.label} (cap {language.cap:,})")
        if s[1]:
            axes.loglog(*s, color=colour, linewidth=1.0, linestyle="--")
        axes.hlines(language.cap, 1, max(m[0][-1], 2), colors=colour, linestyles=":", linewidth=1.0)
        drawn = True
    more = len(languages) - MAX_PLOTTED_LANGUAGES
    default = "pairs per query per language: matched (solid), selected (dashed), cap (dotted)"
    _finish(axes, (title or default) + (f"; {more} more language(s) in the table" if more > 0 else ""),
            legend=drawn, small=True)
    return _png(figure)


def _axes():
    # matplotlib loads slowly and only this module draws, so it is imported here, not at the top.
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5), dpi=110)
    return figure, figure.add_subplot(1, 1, 1)


def _finish(axes, title: str, legend: bool, small: bool = False) -> None:
    """Labels, grid and legend; ``small`` text where one curve per language makes a long legend."""
    axes.set_xlabel("query rank (sorted by count)")
    axes.set_ylabel("pairs per query")
    axes.set_title(title, **({"fontsize": "medium"} if small else {}))
    axes.grid(True, which="both", alpha=0.25)
    if legend:   # nothing matched: no line to name (matplotlib would warn about an empty legend)
        axes.legend(**({"fontsize": "small"} if small else {}))


def _png(figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def caps_table(languages: list[LanguageCounts]) -> str:
    """The per-language rows of summary.html: cap, queries, queries matched and capped, matches."""
    rows = "".join(
        f"<tr><td>{html.escape(g.label)}</td><td>{g.cap:,}</td><td>{len(g.matched):,}</td>"
        f"<td>{sum(1 for v in g.matched if v > 0):,}</td><td>{sum(1 for v in g.matched if v > g.cap):,}</td>"
        f"<td>{sum(g.matched):,}</td></tr>" for g in languages)
    return ("<h2>Caps per language</h2>\n<table><tr><th>language</th><th>cap</th><th>queries</th>"
            f"<th>queries matched</th><th>queries capped</th><th>matches</th></tr>{rows}</table>\n")


def _language_cell(row: dict) -> str:
    lang = row.get("lang")
    return f"<td>{html.escape(NO_LANGUAGE if lang is None else lang)}</td>"


def summary_html(png: bytes, stats: dict, top_rows: list[dict], languages: list[LanguageCounts] | None = None) -> str:
    """The page; with ``languages`` (several of them) it adds the caps table and a language column."""
    rows = "".join(
        f"<tr>{_language_cell(r) if languages else ''}<td>{html.escape(r['query'])}</td>"
        f"<td>{r['matched']:,}</td><td>{r['kept']:,}</td>"
        f"<td>{r['selected']:,}</td></tr>" for r in top_rows)
    figures = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                      for k, v in stats.items() if not isinstance(v, (dict, list)))
    if languages:
        intro = ("<p>Pairs per query before (matched, solid) and after (selected, dashed) each language's cap "
                 "(dotted), one colour per language, queries sorted by count, log axes.</p>")
    else:
        intro = ("<p>Pairs per query before (matched) and after (selected) the per-query cap, queries sorted by "
                 "count,\nlog axes. Balancing flattens the head above the cap and leaves the tail untouched.</p>")
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>wit select: summary</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td,th{{padding:2px 10px;text-align:left}}</style>
</head><body>
<h1>wit select</h1>
{intro}
<img alt="matched vs selected pairs per query" src="data:image/png;base64,{base64.b64encode(png).decode()}">
<h2>Figures</h2><table>{figures}</table>
{caps_table(languages) if languages else ""}<h2>Heaviest queries</h2>
<table><tr>{"<th>language</th>" if languages else ""}<th>query</th><th>matched</th><th>kept (own cap)</th>\
<th>selected (listing it)</th></tr>{rows}</table>
</body></html>
"""


def write_summary(out_dir: str, query_counts: list[dict], stats: dict, cap: int,
                  caps: dict | None = None) -> tuple[str, str]:
    """Write ``query_counts.png`` and ``summary.html`` under ``out_dir``; returns their paths.

    ``caps`` ({lang: cap}, as stats.json's ``caps``) gives each language its own cap line; a
    language it does not name is drawn with ``cap``.
    """
    languages = by_language(query_counts, cap, caps)
    balance = stats.get("balance", "")
    if len(languages) > 1:
        png = plot_languages_png(languages, title=f"{balance} balancing, caps per language")
    else:
        own_cap = languages[0].cap if languages else cap
        png = plot_png([r["matched"] for r in query_counts], [r["selected"] for r in query_counts], own_cap,
                       title=f"{balance} balancing, cap {own_cap:,}")
    png_path = fileio.join(out_dir, "query_counts.png")
    html_path = fileio.join(out_dir, "summary.html")
    fileio.write_bytes_atomic(png_path, png)
    top = sorted(query_counts, key=lambda r: (-r["matched"], r["query"]))[:25]
    fileio.write_text_atomic(html_path, summary_html(png, stats, top, languages if len(languages) > 1 else None))
    return png_path, html_path
