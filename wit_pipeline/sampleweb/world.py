"""The sample web in German, Chinese and Japanese: alt texts and encyclopaedia sentences per language.

The sample web's images show a coloured shape on a coloured background; an English alt text says so
("a red circle on a blue background"). This module says the same in ``de``, ``zh`` and ``ja``
(``caption``) and writes the sentences of each language's mini Wikipedia dump (``sentence``, used by
``wiki.py``), so a query list built from a language's dump matches that language's alt texts:

* German is written with spaces and inflects its adjectives (``ein roter Kreis auf blauem
  Hintergrund``, ``eine rote Raute``): the dump uses the same inflected forms as the alt texts;
* Chinese and Japanese are written without spaces (``蓝色背景上的红色圆形``, ``青の背景に描かれた赤い丸``):
  their words come from a segmenter, and ``wit select`` matches them as substrings.

Every alt text here is identified as its own language by langdetect (tests/test_sampleweb.py checks
every one), so ``wit select --lang all`` routes it to its language's queries.
"""

from __future__ import annotations

import random
from typing import Callable

LANGUAGES = ("de", "zh", "ja")
# Per language, this share of the English web's image count (10 each on the default 240-image web).
WORLD_SHARE = 1 / 24
IMAGES_PER_PAGE = 5
GALLERY_TITLES = {"de": "Beispielgalerie", "zh": "示例图库", "ja": "サンプルギャラリー"}

# --- German: articles and adjective endings by the shape's gender and the case --------------------

_DE_SHAPES = {"circle": ("Kreis", "m"), "square": ("Quadrat", "n"), "triangle": ("Dreieck", "n"),
              "star": ("Stern", "m"), "cross": ("Kreuz", "n"), "diamond": ("Raute", "f")}
# Attributive stem, predicative form.
_DE_COLOURS = {"red": ("rot", "rot"), "green": ("grün", "grün"), "blue": ("blau", "blau"),
               "yellow": ("gelb", "gelb"), "orange": ("orangefarben", "orange"), "purple": ("violett", "violett"),
               "black": ("schwarz", "schwarz"), "white": ("weiß", "weiß")}
_DE_NOMINATIVE = {"m": "er", "n": "es", "f": "e"}     # after "ein"/no article (strong or mixed declension)
_DE_INDEFINITE = {"m": "ein", "n": "ein", "f": "eine"}
_DE_DEFINITE = {"m": "der", "n": "das", "f": "die"}
_DE_DATIVE_INDEFINITE = {"m": "einem", "n": "einem", "f": "einer"}
_DE_ACCUSATIVE_INDEFINITE = {"m": "einen", "n": "ein", "f": "eine"}
_DE_ACCUSATIVE = {"m": "en", "n": "es", "f": "e"}     # after "einen"/"ein"/"eine" (mixed declension)


def _de_parts(colour: str, shape: str, background: str) -> dict[str, str]:
    noun, gender = _DE_SHAPES[shape]
    stem, predicative = _DE_COLOURS[colour]
    ending = _DE_NOMINATIVE[gender]
    return {"S": noun, "c": stem + ending, "cp": predicative, "ein": _DE_INDEFINITE[gender],
            "der": _DE_DEFINITE[gender], "einem": _DE_DATIVE_INDEFINITE[gender],
            "einen": _DE_ACCUSATIVE_INDEFINITE[gender], "ca": stem + _DE_ACCUSATIVE[gender],
            "grossa": "groß" + _DE_ACCUSATIVE[gender],
            "cd": stem + "en", "gross": "groß" + ending,
            "b": _DE_COLOURS[background][0] + "em", "bd": _DE_COLOURS[background][0] + "en",
            "bp": _DE_COLOURS[background][1]}


_DE_CAPTIONS = (
    "{ein} {c} {S} auf {b} Hintergrund",
    "{C} {S} vor einem {bd} Hintergrund",
    "Foto mit {einem} {cd} {S}",
    "{ein} {gross} {c} {S} auf {b} Papier",
    "{Der} {S} ist {cp} und der Hintergrund ist {bp}",
)
_DE_SENTENCES = (
    "{Ein} {c} {S} auf {b} Hintergrund ist ein häufiges Motiv.",
    "Maler zeichnen oft {einen} {grossa} {ca} {S} auf {b} Papier.",
    "Ein Foto mit {einem} {cd} {S} zeigt, wie die Farbe vor {b} Hintergrund hervortritt.",
    "In vielen Flaggen ist {der} {S} {cp} und der Hintergrund ist {bp}.",
    "Kinder lernen, {einen} {ca} {S} zu zeichnen, bevor sie schreiben lernen.",
    "Verkehrszeichen zeigen {einen} {ca} {S} auf {b} Hintergrund.",
)


def _de(template: str, colour: str, shape: str, background: str) -> str:
    parts = _de_parts(colour, shape, background)
    # A capitalised key ({C}, {Ein}, {Der}) is its part with a capital first letter: a sentence's first word.
    parts.update({key.capitalize(): value[:1].upper() + value[1:] for key, value in parts.items()})
    return template.format(**parts)


# --- Chinese ------------------------------------------------------------------------------------------

_ZH_COLOURS = {"red": "红色", "green": "绿色", "blue": "蓝色", "yellow": "黄色", "orange": "橙色",
               "purple": "紫色", "black": "黑色", "white": "白色"}
_ZH_SHAPES = {"circle": "圆形", "square": "正方形", "triangle": "三角形", "star": "星形", "cross": "十字形",
              "diamond": "菱形"}
_ZH_CAPTIONS = (
    "一张{b}背景上的{c}{s}的照片",
    "一个{c}的{s}",
    "这是一个{c}{s}，{b}背景",
    "画在{b}纸上的大{c}{s}",
    "{s}是{c}的，背景是{b}的",
)
_ZH_SENTENCES = (
    "{b}背景上的{c}{s}是一种常见的图案。",
    "画家常常在{b}纸上画一个大的{c}{s}。",
    "这张照片里有一个{c}的{s}，背景是{b}的。",
    "许多旗帜上的{s}是{c}的，背景是{b}的。",
    "孩子们在学写字以前就会画{c}{s}。",
    "交通标志常用{b}背景上的{c}{s}。",
)


def _zh(template: str, colour: str, shape: str, background: str) -> str:
    return template.format(c=_ZH_COLOURS[colour], s=_ZH_SHAPES[shape], b=_ZH_COLOURS[background])


# --- Japanese -----------------------------------------------------------------------------------------

# Attributive form (before a noun), noun form.
_JA_COLOURS = {"red": ("赤い", "赤"), "green": ("緑の", "緑"), "blue": ("青い", "青"), "yellow": ("黄色い", "黄色"),
               "orange": ("オレンジ色の", "オレンジ色"), "purple": ("紫の", "紫"), "black": ("黒い", "黒"),
               "white": ("白い", "白")}
_JA_SHAPES = {"circle": "丸", "square": "四角", "triangle": "三角形", "star": "星", "cross": "十字",
              "diamond": "ひし形"}
_JA_CAPTIONS = (
    "{b}の背景に描かれた{c}{s}",
    "{c}{s}を写した写真です",
    "{b}の紙に描いた大きな{c}{s}",
    "{s}は{cn}で、背景は{b}です",
    "{b}地に{c}{s}のアイコン",
)
_JA_SENTENCES = (
    "{b}の背景に{c}{s}を描いた模様はよく見られる。",
    "画家はよく{b}の紙に大きな{c}{s}を描く。",
    "{c}{s}の写真では、{b}の背景に色が映える。",
    "多くの旗では{s}は{cn}で、背景は{b}である。",
    "子どもは字を書く前に{c}{s}を描くことを覚える。",
    "道路標識には{b}の背景に{c}{s}が使われる。",
)


def _ja(template: str, colour: str, shape: str, background: str) -> str:
    attributive, noun = _JA_COLOURS[colour]
    return template.format(c=attributive, cn=noun, s=_JA_SHAPES[shape], b=_JA_COLOURS[background][1])


_WRITERS: dict[str, tuple[Callable[[str, str, str, str], str], tuple[str, ...], tuple[str, ...]]] = {
    "de": (_de, _DE_CAPTIONS, _DE_SENTENCES),
    "zh": (_zh, _ZH_CAPTIONS, _ZH_SENTENCES),
    "ja": (_ja, _JA_CAPTIONS, _JA_SENTENCES),
}


def caption(rng: random.Random, lang: str, colour: str, shape: str, background: str) -> str:
    """An alt text in ``lang`` describing a ``colour`` ``shape`` on a ``background`` background."""
    write, templates, _ = _WRITERS[lang]
    return write(rng.choice(templates), colour, shape, background)


def all_captions(lang: str, colour: str, shape: str, background: str) -> list[str]:
    """Every alt text ``caption`` can write for these colours and shape (for tests)."""
    write, templates, _ = _WRITERS[lang]
    return [write(template, colour, shape, background) for template in templates]


def sentence(rng: random.Random, lang: str, colour: str, shape: str, background: str) -> str:
    """An encyclopaedia sentence in ``lang`` about a ``colour`` ``shape`` on a ``background`` background."""
    write, _, templates = _WRITERS[lang]
    return write(rng.choice(templates), colour, shape, background)


def colour_name(lang: str, colour: str) -> str:
    """The colour's name as an article title in ``lang``."""
    if lang == "de":
        return "Orange (Farbe)" if colour == "orange" else _DE_COLOURS[colour][1].capitalize()
    if lang == "zh":
        return _ZH_COLOURS[colour]
    return _JA_COLOURS[colour][1]


def colour_word(lang: str, colour: str) -> str:
    """What every lower-cased alt text in ``lang`` naming ``colour`` contains (``roter``, ``rotem`` -> ``rot``)."""
    return {"de": _DE_COLOURS[colour][1], "zh": _ZH_COLOURS[colour], "ja": _JA_COLOURS[colour][1]}[lang]


def shape_name(lang: str, shape: str) -> str:
    """The shape's name as an article title in ``lang``."""
    return {"de": _DE_SHAPES[shape][0], "zh": _ZH_SHAPES[shape], "ja": _JA_SHAPES[shape]}[lang]
