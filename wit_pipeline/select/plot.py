"""The head/tail picture of balancing: matched vs selected pairs per query, sorted, on log axes.

``write_summary(out_dir, query_counts, stats)`` writes ``query_counts.png`` and
``summary.html`` (the PNG embedded, so the page stands alone, plus the stage's
figures and the heaviest queries).
"""

from __future__ import annotations

import base64
import html
import io

from .. import fileio


def plot_png(matched: list[int], selected: list[int], cap: int, title: str = "") -> bytes:
    """PNG bytes: both curves against query rank (by matched count, descending); zero counts left out."""
    # matplotlib loads slowly and only this function draws, so it is imported here, not at the top.
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    order = sorted(range(len(matched)), key=lambda i: -matched[i])
    m = [matched[i] for i in order if matched[i] > 0]
    s = sorted((v for v in selected if v > 0), reverse=True)
    figure = Figure(figsize=(7, 4.5), dpi=110)
    axes = figure.add_subplot(1, 1, 1)
    if m:
        axes.loglog(range(1, len(m) + 1), m, label="matched", color="#888888", linewidth=1.6)
    if s:
        axes.loglog(range(1, len(s) + 1), s, label="selected", color="#1f77b4", linewidth=1.6)
    if m:
        axes.axhline(cap, color="#d62728", linestyle="--", linewidth=1, label=f"cap = {cap:,}")
    axes.set_xlabel("query rank (sorted by count)")
    axes.set_ylabel("pairs per query")
    axes.set_title(title or "pairs per query: matched vs selected")
    axes.grid(True, which="both", alpha=0.25)
    if m:   # nothing matched: no line to name (matplotlib would warn about an empty legend)
        axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def summary_html(png: bytes, stats: dict, top_rows: list[dict]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(r['query'])}</td><td>{r['matched']:,}</td><td>{r['kept']:,}</td>"
        f"<td>{r['selected']:,}</td></tr>" for r in top_rows)
    figures = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                      for k, v in stats.items() if not isinstance(v, (dict, list)))
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>wit select: summary</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td,th{{padding:2px 10px;text-align:left}}</style>
</head><body>
<h1>wit select</h1>
<p>Pairs per query before (matched) and after (selected) the per-query cap, queries sorted by count,
log axes. Balancing flattens the head above the cap and leaves the tail untouched.</p>
<img alt="matched vs selected pairs per query" src="data:image/png;base64,{base64.b64encode(png).decode()}">
<h2>Figures</h2><table>{figures}</table>
<h2>Heaviest queries</h2>
<table><tr><th>query</th><th>matched</th><th>kept (own cap)</th><th>selected (listing it)</th></tr>{rows}</table>
</body></html>
"""


def write_summary(out_dir: str, query_counts: list[dict], stats: dict, cap: int) -> tuple[str, str]:
    """Write ``query_counts.png`` and ``summary.html`` under ``out_dir``; returns their paths."""
    png = plot_png([r["matched"] for r in query_counts], [r["selected"] for r in query_counts], cap,
                   title=f"{stats.get('balance', '')} balancing, cap {cap:,}")
    png_path = fileio.join(out_dir, "query_counts.png")
    html_path = fileio.join(out_dir, "summary.html")
    fileio.write_bytes_atomic(png_path, png)
    top = sorted(query_counts, key=lambda r: (-r["matched"], r["query"]))[:25]
    fileio.write_text_atomic(html_path, summary_html(png, stats, top))
    return png_path, html_path
