"""The German, Chinese and Japanese mini Wikipedias: their pages and their pageview lines.

``world_pages(rng, lang)`` is one article per colour and per shape of the sample web, written with
``world.sentence`` (so the words of that language's alt texts recur often enough to become queries),
in real-looking markup (an infobox template, a ref, headings, a file link with a caption, a list,
categories, an interlanguage link), plus a talk page, a file page and a redirect, which a query build
must leave out. ``world_pageview_lines`` gives each article views on ``lang`` and ``lang.m``, a
percent-encoded title among them, and the talk page views a build must not count.
"""

from __future__ import annotations

import random
from urllib.parse import quote

from . import world
from .draw import COLOURS, SHAPES

# Per language: lead of a colour article, lead of a shape article, section headings, the redirect magic word.
_WORDS = {
    "de": {"colour_lead": "Der Begriff '''{t}''' bezeichnet eine [[Farbe]].",
           "shape_lead": "Der Begriff '''{t}''' bezeichnet eine geometrische [[Form (Geometrie)|Form]].",
           "sections": ("Formen", "In der Kunst", "Siehe auch", "Einzelnachweise"),
           "redirect": "#WEITERLEITUNG", "infobox": "Infobox Farbe", "cite": "Literatur|Titel=Farbe und Form|Jahr=1999",
           "talk": "Diskussion", "file": "Datei", "talk_text": "== Zusammenführen? ==\nSoll das mit Farbe "
           "zusammengeführt werden? ~~~~", "colours": "Farbe", "shapes": "Geometrische Form"},
    "zh": {"colour_lead": "'''{t}'''是一种[[颜色]]。",
           "shape_lead": "'''{t}'''是一种[[几何]]图形。",
           "sections": ("图形", "艺术", "参见", "参考文献"),
           "redirect": "#重定向", "infobox": "Infobox 颜色", "cite": "cite book|title=颜色与形状|year=1999",
           "talk": "Talk", "file": "File", "talk_text": "== 合并？ ==\n是否应与颜色条目合并？ ~~~~",
           "colours": "颜色", "shapes": "几何图形"},
    "ja": {"colour_lead": "'''{t}'''は[[色]]の一つである。",
           "shape_lead": "'''{t}'''は[[図形]]の一つである。",
           "sections": ("図形", "美術", "関連項目", "脚注"),
           "redirect": "#転送", "infobox": "Infobox 色", "cite": "Cite book|title=色と形|year=1999",
           "talk": "ノート", "file": "ファイル", "talk_text": "== 統合の提案 ==\n色の記事と統合すべきでしょうか？ ~~~~",
           "colours": "色", "shapes": "図形"},
}


def _sentences(rng: random.Random, lang: str, n: int, colour: str | None = None, shape: str | None = None
               ) -> list[str]:
    out = []
    for _ in range(n):
        c = colour if colour and rng.random() < 0.6 else rng.choice(list(COLOURS))
        s = shape if shape and rng.random() < 0.6 else rng.choice(SHAPES)
        b = rng.choice([x for x in COLOURS if x != c])
        out.append(world.sentence(rng, lang, c, s, b))
    return out


def _joined(lang: str, sentences: list[str]) -> str:
    return ("" if lang in ("zh", "ja") else " ").join(sentences)


def _article(rng: random.Random, lang: str, title: str, lead: str, english: str, category: str,
             colour: str | None = None, shape: str | None = None) -> str:
    words = _WORDS[lang]
    body = _sentences(rng, lang, 16, colour=colour, shape=shape)
    shapes, art, see_also, references = words["sections"]
    figure_colour = colour or rng.choice(list(COLOURS))
    figure_shape = shape or rng.choice(SHAPES)
    figure = world.caption(rng, lang, figure_colour, figure_shape,
                           rng.choice([x for x in COLOURS if x != figure_colour]))
    r, g, b = COLOURS[figure_colour]
    return "\n".join([
        "{{" + words["infobox"] + f"\n| name = {title}\n| hex = #{r:02X}{g:02X}{b:02X}\n" + "}}",
        _joined(lang, [lead.format(t=title), *body[:4]]) + "<ref>{{" + words["cite"] + "}}</ref>",
        "<!-- sample -->",
        f"== {shapes} ==",
        # The canonical namespace name, which every wiki accepts (queries/wikitext.py drops links by it).
        f"[[File:{english} {figure_shape}.svg|thumb|{figure}]]",
        _joined(lang, body[4:9]),
        f"== {art} ==",
        *[f"* {sentence}" for sentence in body[9:12]],
        _joined(lang, body[12:]),
        f"== {see_also} ==",
        f"* [[{world.colour_name(lang, 'red')}]]",
        f"== {references} ==",
        "{{Reflist}}",
        f"[[Category:{category}]]",
        f"[[en:{english}]]",
    ])


def world_pages(rng: random.Random, lang: str) -> list[dict]:
    """The pages of ``lang``'s mini dump, as ``wiki.write_dump`` takes them."""
    words = _WORDS[lang]
    pages: list[dict] = []

    def add(title: str, ns: int, text: str, redirect: str | None = None) -> None:
        pages.append({"title": title, "ns": ns, "id": len(pages) + 1, "text": text, "redirect": redirect})

    for colour in COLOURS:
        add(world.colour_name(lang, colour), 0, _article(rng, lang, world.colour_name(lang, colour),
                                                          words["colour_lead"], colour.capitalize(),
                                                          words["colours"], colour=colour))
    for shape in SHAPES:
        add(world.shape_name(lang, shape), 0, _article(rng, lang, world.shape_name(lang, shape), words["shape_lead"],
                                                        shape.capitalize(), words["shapes"], shape=shape))
    red = world.colour_name(lang, "red")
    add(f"{words['talk']}:{red}", 1, words["talk_text"])
    add(f"{words['file']}:{red} circle.svg", 6, world.caption(rng, lang, "red", "circle", "white"))
    add(f"{red} (sample)", 0, f"{words['redirect']} [[{red}]]", redirect=red)
    return pages


def world_pageview_lines(rng: random.Random, lang: str, pages: list[dict], hours: int) -> list[list[str]]:
    """Per hour, the pageview lines of ``lang``'s wiki (``lang`` and ``lang.m``) for ``pages``."""
    articles = [page["title"] for page in pages if page["ns"] == 0 and not page["redirect"]]
    base = {title: rng.choice((1, 3, 8, 15, 30, 60)) for title in articles}
    talk = next(page["title"] for page in pages if page["ns"] == 1)
    per_hour = []
    for _ in range(hours):
        lines = []
        for index, title in enumerate(articles):
            name = title.replace(" ", "_")
            if index == 0:   # real dumps hold some titles percent-encoded
                name = quote(name, safe="")
            lines.append(f"{lang} {name} {base[title] + rng.randint(0, 4)} 0")
            lines.append(f"{lang}.m {name} {base[title] // 2 + rng.randint(0, 3)} 0")
        lines.append(f"{lang} {talk.replace(' ', '_')} {rng.randint(20, 90)} 0")
        per_hour.append(lines)
    return per_hour
