"""The sample web's query-building inputs: a mini Wikipedia dump, pageview dumps and a WordNet db.

``write_wiki_inputs(root, seed)`` writes, deterministically for a seed:

* ``enwiki-sample-pages-articles-multistream.xml.bz2``: a MediaWiki 0.10 export
  in Wikimedia's multistream layout (header stream, streams of a few pages,
  footer stream) plus its ``-index.txt.bz2``. Articles are about the sample
  web's colours and shapes, with real-looking markup (templates, refs, tables,
  file links with captions, piped links, categories, interlanguage links,
  comments, headings, lists); also a ``Talk:`` page, a ``File:`` page, a
  ``Template:`` page and redirects, which a query build must leave out.
* ``dewiki-``, ``zhwiki-`` and ``jawiki-sample-pages-articles-multistream.xml.bz2`` (and
  their indexes): the same in German, Chinese and Japanese (``wikiworld.py``), the words of
  that language's sample alt texts in their inflected (German) or unsegmented (Chinese,
  Japanese) forms, with each wiki's namespace names.
* ``pageviews/pageviews-20240101-HH0000.gz``: three hourly pageview dumps with
  ``en``, ``en.m``, ``de``, ``de.m``, ``zh``, ``zh.m``, ``ja``, ``ja.m``, other wikis,
  namespaced titles, percent-encoded titles and one malformed line.
* ``wordnet/``: a WordNet 3.0 ``wndb`` directory (``data.*`` and ``index.*``,
  licence header included, synset offsets equal to byte offsets) whose synsets
  include every colour and shape of the sample web.

The text uses the words of the sample captions ("a red circle on a blue
background"), so the query list built from it matches those captions.
"""

from __future__ import annotations

import bz2
import gzip
import io
import os
import random
from xml.sax.saxutils import escape, quoteattr

from .draw import COLOURS, SHAPES
from .wikiworld import world_pages, world_pageview_lines
from .world import LANGUAGES

DUMP_NAME = "enwiki-sample-pages-articles-multistream.xml.bz2"
INDEX_NAME = "enwiki-sample-pages-articles-multistream-index.txt.bz2"
PAGES_PER_STREAM = 4
PAGEVIEW_HOURS = ("000000", "010000", "020000")

SHAPE_TITLES = {
    "circle": "Circle (geometry)", "square": "Square", "triangle": "Triangle",
    "star": "Star (polygon)", "cross": "Cross", "diamond": "Rhombus",
}
SHAPE_FACTS = {
    "circle": "A circle is the set of points at a fixed distance from a centre.",
    "square": "A square has four equal sides and four right angles.",
    "triangle": "A triangle has three sides and three corners.",
    "star": "A star polygon has five or more points around its centre.",
    "cross": "A cross is made of two bars that meet at right angles.",
    "diamond": "A diamond shape, or rhombus, has four equal sides and is drawn standing on one corner.",
}
CAPTION_SENTENCES = (
    "A {c} {s} on a {b} background is a common motif.",
    "Painters often draw a large {c} {s} on {b} paper.",
    "A photo of a {c} {s} shows how the colour stands out against a {b} backdrop.",
    "The {s} is {c} and the background is {b} in many flags.",
    "A {c} {s} icon against a {b} backdrop is easy to see.",
    "Children learn to draw a {c} {s} before they learn to write.",
    "On a {b} background a {c} {s} looks brighter than on a {c2} one.",
    "Road signs use a {c} {s} on a {b} background.",
)
GENERAL_SENTENCES = (
    "The colour wheel arranges hues in a circle.",
    "Every regular polygon can be drawn inside a circle.",
    "The golden ratio appears in the proportions of the pentagram.",
    "The Pythagorean theorem relates the sides of a right triangle.",
    "Primary colours can be mixed to give every other hue.",
    "Artists choose a background colour before they paint a shape.",
)
EXTRA_ARTICLES = {
    "Colour": "Colour is what the eye sees when light of different wavelengths falls on it.",
    "Colour wheel": "The colour wheel places complementary colours opposite each other.",
    "Shape": "A shape is the outline of an object, such as a circle, a square or a triangle.",
    "Background (art)": "The background is the part of a picture behind the main subject.",
    "Regular polygon": "A regular polygon has equal sides and equal angles.",
    "Golden ratio": "The golden ratio is about 1.618 and the golden ratio is irrational.",
    "Pythagorean theorem": "The Pythagorean theorem is named after Pythagoras.",
}


# --- the dump --------------------------------------------------------------------------------------


def _sentences(rng: random.Random, n: int, colour: str | None = None, shape: str | None = None) -> list[str]:
    colours, shapes = list(COLOURS), list(SHAPES)
    out = []
    for _ in range(n):
        c = colour if colour and rng.random() < 0.6 else rng.choice(colours)
        s = shape if shape and rng.random() < 0.6 else rng.choice(shapes)
        b = rng.choice([x for x in colours if x != c])
        c2 = rng.choice([x for x in colours if x not in (c, b)])
        template = rng.choice(CAPTION_SENTENCES) if rng.random() < 0.8 else rng.choice(GENERAL_SENTENCES)
        out.append(template.format(c=c, s=s, b=b, c2=c2))
    return out


def _colour_article(rng: random.Random, colour: str) -> str:
    r, g, b = COLOURS[colour]
    shape = rng.choice(SHAPES)
    other = rng.choice([c for c in COLOURS if c != colour])
    body = _sentences(rng, 24, colour=colour)
    return "\n".join([
        "{{Short description|Colour}}",
        "{{Infobox colour",
        f"| name = {colour.capitalize()}",
        f"| hex = #{r:02X}{g:02X}{b:02X}",
        f"| image = [[File:{colour.capitalize()} {shape}.svg|120px]]",
        "| source = {{cite web|url=https://example.org/" + colour + "|title=" + colour + " {{small|(sample)}}}}",
        "}}",
        f"'''{colour.capitalize()}''' is a [[colour]] often seen as a {colour} "
        f"[[{SHAPE_TITLES[shape]}|{shape}]] on a {other} [[Background (art)|background]]."
        f"<ref name=\"hue\">{{{{cite book|title=Colour and shape|year=1999}}}}</ref> " + " ".join(body[:6]),
        "<!-- editors: keep this article short -->",
        "== Shapes ==",
        f"[[File:{colour.capitalize()} {shape}.png|thumb|upright=1.2|A {colour} [[{SHAPE_TITLES[shape]}|{shape}]] "
        f"on an {other} background]]",
        " ".join(body[6:14]) + "<ref>{{cite web|url=https://example.org/shapes|title=Shapes}}</ref>",
        "=== Shades ===",
        '{| class="wikitable"',
        "! Shade !! Hex",
        "|-",
        f"| Light {colour} || #{min(r + 60, 255):02X}{min(g + 60, 255):02X}{min(b + 60, 255):02X}",
        "|-",
        f"| Dark {colour} || #{r // 2:02X}{g // 2:02X}{b // 2:02X}",
        "|}",
        "== In art ==",
        *[f"* {sentence}" for sentence in body[14:18]],
        " ".join(body[18:]) + " See [https://example.org/" + colour + " the " + colour + " page].",
        "== See also ==",
        "* [[Colour wheel]]",
        "* [[Shape]]",
        "== References ==",
        "{{Reflist}}",
        "[[Category:Colours]]",
        f"[[de:{colour.capitalize()}]]",
    ])


def _shape_article(rng: random.Random, shape: str) -> str:
    body = _sentences(rng, 22, shape=shape)
    colour = rng.choice(list(COLOURS))
    return "\n".join([
        "{{Infobox shape|name=" + shape + "|sides={{#if:x|4|0}}|image=[[File:" + shape + ".svg|100px]]}}",
        f"A '''{shape}''' is a [[Shape|shape]]. {SHAPE_FACTS[shape]} " + " ".join(body[:8]),
        f"[[Image:{colour.capitalize()} {shape}.jpg|thumb|left|A {colour} {shape} on a "
        f"[[{colour.capitalize()}|{colour}]] background]]",
        "== Construction ==",
        "<math>x^2 + y^2 = r^2</math> " + " ".join(body[8:15]),
        "{{main|Regular polygon}}",
        "== Uses ==",
        " ".join(body[15:]) + "<ref name=\"hue\" />",
        "----",
        "__NOTOC__",
        "[[Category:Shapes]]",
        f"[[fr:{shape.capitalize()}]]",
    ])


def _extra_article(rng: random.Random, title: str, lead: str) -> str:
    body = _sentences(rng, 10)
    return "\n".join([
        "{{Use British English|date=January 2024}}",
        f"'''{title}''': {lead} " + " ".join(body[:5]),
        "; Note: " + " ".join(body[5:]),
        "[[Category:Sample]]",
    ])


def _dump_pages(rng: random.Random) -> list[dict]:
    pages: list[dict] = []

    def add(title: str, ns: int, text: str, redirect: str | None = None) -> None:
        pages.append({"title": title, "ns": ns, "id": len(pages) + 1, "text": text, "redirect": redirect})

    for colour in COLOURS:
        add(colour.capitalize(), 0, _colour_article(rng, colour))
    for shape in SHAPES:
        add(SHAPE_TITLES[shape], 0, _shape_article(rng, shape))
    for title, lead in EXTRA_ARTICLES.items():
        add(title, 0, _extra_article(rng, title, lead))
    # Pages a query build must leave out: other namespaces and redirects.
    add("Talk:Red", 1, "== Merge? ==\nShould red be merged with crimson crimson crimson? ~~~~")
    add("File:Red circle.svg", 6, "A red circle, drawn for the sample. {{Information|author=sample}}")
    add("Template:Infobox colour", 10,
        "{| class=\"infobox\"\n| {{{name}}}\n|}<noinclude>[[Category:Templates]]</noinclude>")
    add("Category:Shapes", 14, "Articles about shapes and shapes and shapes.")
    add("Color", 0, "#REDIRECT [[Colour]]\n{{R from alternative spelling}}", redirect="Colour")
    add("Circle", 0, "#REDIRECT [[Circle (geometry)]]", redirect="Circle (geometry)")
    return pages


def _page_xml(page: dict, timestamp: str) -> str:
    redirect = f"    <redirect title={quoteattr(page['redirect'])} />\n" if page["redirect"] else ""
    text = escape(page["text"])
    return (
        "  <page>\n"
        f"    <title>{escape(page['title'])}</title>\n"
        f"    <ns>{page['ns']}</ns>\n"
        f"    <id>{page['id']}</id>\n"
        f"{redirect}"
        "    <revision>\n"
        f"      <id>{1000 + page['id']}</id>\n"
        f"      <timestamp>{timestamp}</timestamp>\n"
        "      <contributor><username>SampleBot</username><id>1</id></contributor>\n"
        "      <model>wikitext</model>\n"
        "      <format>text/x-wiki</format>\n"
        f"      <text bytes=\"{len(page['text'].encode('utf-8'))}\" xml:space=\"preserve\">{text}</text>\n"
        "    </revision>\n"
        "  </page>\n"
    )


# Each wiki's names of the namespaces its sample dump uses (1 talk, 6 file, 10 template, 14 category).
NAMESPACE_NAMES = {
    "en": ("Talk", "File", "Template", "Category"),
    "de": ("Diskussion", "Datei", "Vorlage", "Kategorie"),
    "zh": ("Talk", "File", "Template", "Category"),
    "ja": ("ノート", "ファイル", "Template", "Category"),
}


def _header(lang: str) -> str:
    """The dump's opening: the <mediawiki> element's attributes on one line, as a real dump writes them."""
    talk, file, template, category = NAMESPACE_NAMES[lang]
    return ("""<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" """
            """xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" """
            """xsi:schemaLocation="http://www.mediawiki.org/xml/export-0.10/ """
            f"""http://www.mediawiki.org/xml/export-0.10.xsd" version="0.10" xml:lang="{lang}">
  <siteinfo>
    <sitename>Wikipedia</sitename>
    <dbname>{lang}wiki</dbname>
    <base>https://{lang}.wikipedia.org/wiki/Main_Page</base>
    <generator>MediaWiki 1.41.0</generator>
    <case>first-letter</case>
    <namespaces>
      <namespace key="0" case="first-letter" />
      <namespace key="1" case="first-letter">{talk}</namespace>
      <namespace key="6" case="first-letter">{file}</namespace>
      <namespace key="10" case="first-letter">{template}</namespace>
      <namespace key="14" case="first-letter">{category}</namespace>
    </namespaces>
  </siteinfo>
""")


def write_dump(path: str, index_path: str, pages: list[dict], lang: str = "en") -> None:
    """A multistream bz2 export of ``lang``'s wiki: header stream, streams of PAGES_PER_STREAM pages, footer."""
    header = _header(lang)
    streams = [header]
    index_lines = []
    offset = len(bz2.compress(header.encode("utf-8"), 9))
    for i in range(0, len(pages), PAGES_PER_STREAM):
        chunk = pages[i:i + PAGES_PER_STREAM]
        xml = "".join(_page_xml(p, f"2024-01-01T00:{p['id'] % 60:02d}:00Z") for p in chunk)
        for page in chunk:
            index_lines.append(f"{offset}:{page['id']}:{page['title']}\n")
        streams.append(xml)
        offset += len(bz2.compress(xml.encode("utf-8"), 9))
    streams.append("</mediawiki>\n")
    _write_atomic(path, b"".join(bz2.compress(s.encode("utf-8"), 9) for s in streams))
    _write_atomic(index_path, bz2.compress("".join(index_lines).encode("utf-8"), 9))


# --- pageviews -------------------------------------------------------------------------------------


def _pageview_files(rng: random.Random, pages: list[dict], other_wikis: list[list[str]]
                    ) -> list[tuple[str, bytes]]:
    """The hourly files: ``pages``' lines (the English wiki's), then ``other_wikis[hour]``'s, sorted together."""
    articles = [p["title"] for p in pages if p["ns"] == 0 and not p["redirect"]]
    # Some articles are popular, some are not: a per-article base rate, fixed for the seed.
    base = {title: rng.choice((1, 3, 8, 15, 30, 60)) for title in articles}
    files = []
    for hour in PAGEVIEW_HOURS:
        lines = []
        for title in articles:
            name = title.replace(" ", "_")
            lines.append(f"en {name} {base[title] + rng.randint(0, 4)} 0")
            lines.append(f"en.m {name} {base[title] // 2 + rng.randint(0, 3)} 0")
            lines.append(f"de {name} {rng.randint(1, 40)} 0")
        lines += [
            f"en Talk:Red {rng.randint(20, 90)} 0",
            f"en File:Red_circle.svg {rng.randint(20, 90)} 0",
            f"en Special:Search {rng.randint(500, 900)} 0",
            f"en.m Category:Shapes {rng.randint(20, 90)} 0",
            f"en Main_Page {rng.randint(1000, 2000)} 0",      # viewed, but not an article of this dump
            f"en Circle_%28geometry%29 {rng.randint(5, 9)} 0",  # percent-encoded: counts for Circle (geometry)
            f"en Color {rng.randint(10, 30)} 0",                # a redirect's name: not an article title
            f"fr Cercle {rng.randint(10, 50)} 0",
            f"commons.m File:Red_circle.svg {rng.randint(10, 50)} 0",
            f"en.wikibooks Shapes {rng.randint(10, 50)} 0",
            "en Broken_line_without_counts",
        ]
        lines += other_wikis[len(files)]
        lines.sort()
        buffer = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as handle:
            handle.write("".join(line + "\n" for line in lines).encode("utf-8"))
        files.append((f"pageviews-20240101-{hour}.gz", buffer.getvalue()))
    return files


# --- WordNet ---------------------------------------------------------------------------------------

_LICENCE = (
    "  1 This software and database is being provided to you, the LICENSEE, by  ",
    "  2 Princeton University under the following license.  By obtaining, using  ",
    "  3 and/or copying this software and database, you agree that you have  ",
    "  4 read, understood, and will comply with these terms and conditions.:  ",
    "  5   ",
    "  6 WordNet 3.0 Copyright 2006 by Princeton University.  All rights reserved.  ",
    "  7 (This mini database is a sample in the same format.)  ",
)

# (key, lex_filenum, ss_type, lemmas, pointers [(symbol, target key)], gloss); pos from the file.
_NOUNS = [
    ("shape", 3, "n", ["shape", "form"], [], "the spatial arrangement of something as distinct from its substance"),
    ("circle", 25, "n", ["circle"], [("@", "shape")], "ellipse in which the two axes are of equal length"),
    ("square", 25, "n", ["square", "foursquare"], [("@", "shape")],
     "a plane rectangle with four equal sides and four right angles"),
    ("triangle", 25, "n", ["triangle", "trigon", "trilateral"], [("@", "shape")], "a three-sided polygon"),
    ("star", 25, "n", ["star"], [("@", "shape")], "a plane figure with 5 or more points; often used as an emblem"),
    ("cross", 6, "n", ["cross"], [("@", "shape")], "a marking that consists of lines that cross each other"),
    ("diamond", 25, "n", ["diamond", "rhombus", "rhomb", "lozenge"], [("@", "shape")],
     "a parallelogram with four equal sides"),
    ("colour", 7, "n", ["color", "colour", "coloring", "colouring"], [],
     "a visual attribute of things that results from the light they emit"),
    ("primary", 7, "n", ["primary_color", "primary_colour"], [("@", "colour")],
     "any of three colors from which all others can be obtained by mixing"),
    ("background", 7, "n", ["background", "ground"], [], "the part of a scene that is behind the main subject"),
    ("red", 7, "n", ["red", "redness"], [("@", "colour")],
     "red color or pigment; the chromatic color resembling the hue of blood"),
    ("green", 7, "n", ["green", "greenness", "viridity"], [("@", "colour")], "green color or pigment"),
    ("blue", 7, "n", ["blue", "blueness"], [("@", "colour")], "the color of the clear sky in the daytime"),
    ("yellow", 7, "n", ["yellow", "yellowness"], [("@", "colour")], "yellow color or pigment"),
    ("orange", 7, "n", ["orange", "orangeness"], [("@", "colour")], "orange color or pigment"),
    ("purple", 7, "n", ["purple", "purpleness"], [("@", "colour")], "a purple color or pigment"),
    ("black", 7, "n", ["black", "blackness", "inkiness"], [("@", "colour")],
     "the quality or state of the achromatic color of least lightness"),
    ("white", 7, "n", ["white", "whiteness", "achromatic_color"], [("@", "colour")],
     "the quality or state of the achromatic color of greatest lightness"),
    ("polygon", 25, "n", ["polygon", "polygonal_shape"], [("@", "shape")],
     "a closed plane figure bounded by straight sides"),
    ("Pythagoras", 18, "n", ["Pythagoras"], [], "Greek philosopher and mathematician"),
]
_ADJECTIVES = [
    ("red_a", 0, "s", ["red", "reddish", "ruddy", "blood-red", "carmine", "cerise", "cherry", "cherry-red", "crimson"],
     [("&", "chromatic_a")], "having any of numerous bright or strong colors reminiscent of blood"),
    ("chromatic_a", 0, "a", ["chromatic"], [("!", "achromatic_a")], "being or having or characterized by hue"),
    ("achromatic_a", 0, "a", ["achromatic"], [("!", "chromatic_a")], "having no hue"),
    ("blue_a", 0, "s", ["blue", "bluish", "blueish"], [("&", "chromatic_a")],
     "of the color intermediate between green and violet"),
    ("green_a", 0, "s", ["green", "greenish", "light-green", "dark-green"], [("&", "chromatic_a")],
     "of the color between blue and yellow in the color spectrum"),
    ("yellow_a", 0, "s", ["yellow", "yellowish", "xanthous"], [("&", "chromatic_a")],
     "similar to the color of an egg yolk"),
    ("orange_a", 0, "s", ["orange", "orangish"], [("&", "chromatic_a")], "of the color between red and yellow"),
    ("purple_a", 0, "s", ["purple", "violet", "purplish"], [("&", "chromatic_a")],
     "of a color intermediate between red and blue"),
    ("black_a", 0, "a", ["black(a)"], [("!", "white_a")], "being of the achromatic color of maximum darkness"),
    ("white_a", 0, "a", ["white(a)"], [("!", "black_a")], "being of the achromatic color of maximum lightness"),
    ("large_a", 0, "a", ["large", "big"], [], "above average in size or number or quantity"),
    ("circular_a", 0, "s", ["circular", "round"], [], "having a circular shape"),
]
_VERBS = [
    ("draw_v", 36, "v", ["draw"], [], "represent by making a drawing of, as with a pencil"),
    ("colour_v", 36, "v", ["color", "colour", "emblazon"], [], "decorate with colors"),
    ("circle_v", 38, "v", ["circle", "circulate"], [], "move in circles"),
]
_ADVERBS = [
    ("brightly_r", 2, "r", ["brightly", "bright"], [], "with brightness"),
    ("vividly_r", 2, "r", ["vividly"], [], "in a vivid manner"),
]
_WORDNET_FILES = (("noun", "n", _NOUNS), ("verb", "v", _VERBS), ("adj", "a", _ADJECTIVES), ("adv", "r", _ADVERBS))


def _synset_line(entry, offsets: dict[str, tuple[int, str]], pos_letter: str) -> str:
    key, lexfile, ss_type, lemmas, pointers, gloss = entry
    words = " ".join(f"{lemma} 0" for lemma in lemmas)
    ptrs = " ".join(f"{symbol} {offsets[target][0]:08d} {offsets[target][1]} "
                    f"{'0101' if symbol == '!' else '0000'}" for symbol, target in pointers)
    frames = " 01 + 08 00" if pos_letter == "v" else ""
    return (f"{offsets[key][0]:08d} {lexfile:02d} {ss_type} {len(lemmas):02x} {words} {len(pointers):03d}"
            f"{' ' + ptrs if ptrs else ''}{frames} | {gloss}  \n")


def write_wordnet(directory: str) -> None:
    """data.* and index.* files; each synset's offset is the byte offset of its line (two passes)."""
    os.makedirs(directory, exist_ok=True)
    header = "".join(line + "\n" for line in _LICENCE)
    offsets: dict[str, tuple[int, str]] = {}
    # Offsets are fixed-width (8 digits), so a line's length does not depend on them: lay out with
    # zeros first, then write with the real values.
    for _, pos_letter, entries in _WORDNET_FILES:
        for entry in entries:
            offsets[entry[0]] = (0, pos_letter)
    for _, pos_letter, entries in _WORDNET_FILES:
        position = len(header.encode("ascii"))
        for entry in entries:
            offsets[entry[0]] = (position, pos_letter)
            position += len(_synset_line(entry, offsets, pos_letter).encode("ascii"))
    for name, pos_letter, entries in _WORDNET_FILES:
        data = header + "".join(_synset_line(entry, offsets, pos_letter) for entry in entries)
        _write_atomic(os.path.join(directory, f"data.{name}"), data.encode("ascii"))
        index: dict[str, list[tuple[int, set[str]]]] = {}
        for key, _, _, lemmas, pointers, _ in entries:
            for lemma in lemmas:
                bare = lemma.split("(")[0].lower()
                index.setdefault(bare, []).append((offsets[key][0], {symbol for symbol, _ in pointers}))
        lines = []
        for lemma in sorted(index):
            senses = index[lemma]
            symbols = sorted(set().union(*(s for _, s in senses)))
            lines.append(f"{lemma} {pos_letter} {len(senses)} {len(symbols)}"
                         f"{' ' + ' '.join(symbols) if symbols else ''} {len(senses)} 0 "
                         + " ".join(f"{offset:08d}" for offset, _ in senses) + "  \n")
        _write_atomic(os.path.join(directory, f"index.{name}"), (header + "".join(lines)).encode("ascii"))


# --- entry point -----------------------------------------------------------------------------------


def _write_atomic(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def write_wiki_inputs(root: str, seed: int) -> dict:
    """Write the mini dumps, pageview dumps and WordNet db under ``root``; returns their paths.

    ``{"wikipedia": [English dump], "wikipedia_by_lang": {lang: dump}, "pageviews": [hourly files],
    "wordnet": directory}``; ``wikipedia_by_lang`` holds English and every language of ``world.LANGUAGES``.
    """
    rng = random.Random(f"wiki-{seed}")
    root = os.path.abspath(root)
    pages = _dump_pages(rng)
    dump = os.path.join(root, DUMP_NAME)
    write_dump(dump, os.path.join(root, INDEX_NAME), pages)
    dumps = {"en": dump}
    # The other wikis draw from a generator of their own: the English dump and its pageviews stay as they are.
    world_rng = random.Random(f"wiki-world-{seed}")
    other_wikis: list[list[str]] = [[] for _ in PAGEVIEW_HOURS]
    for lang in LANGUAGES:
        lang_pages = world_pages(world_rng, lang)
        dumps[lang] = os.path.join(root, DUMP_NAME.replace("enwiki", f"{lang}wiki"))
        write_dump(dumps[lang], os.path.join(root, INDEX_NAME.replace("enwiki", f"{lang}wiki")), lang_pages, lang)
        for hour, lines in enumerate(world_pageview_lines(world_rng, lang, lang_pages, len(PAGEVIEW_HOURS))):
            other_wikis[hour] += lines
    pageview_paths = []
    for name, data in _pageview_files(rng, pages, other_wikis):
        path = os.path.join(root, "pageviews", name)
        _write_atomic(path, data)
        pageview_paths.append(path)
    wordnet_dir = os.path.join(root, "wordnet")
    write_wordnet(wordnet_dir)
    return {"wikipedia": [dump], "wikipedia_by_lang": dumps, "pageviews": pageview_paths, "wordnet": wordnet_dir}
