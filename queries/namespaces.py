"""Namespace names of a wiki: which link prefixes mark files, media and categories, in any language.

A link ``[[Prefix:...]]`` whose prefix names the File (6), Media (-2) or Category (14) namespace
is not prose (``wikitext`` drops it with its caption). A wiki accepts three kinds of names for them:

* the canonical English ones (``File``, ``Image``, ``Media``, ``Category``), on every wiki;
* its own localised names, which a dump lists in ``<siteinfo><namespaces>``
  (``<namespace key="6">Datei</namespace>``; ``parse_siteinfo_namespaces``);
* aliases, which the dump does not list (German ``Bild``, Japanese ``画像``; Chinese Wikipedia's
  siteinfo says ``File``/``Category`` while its pages write ``文件``, ``檔案``, ``分类``, ``分類``):
  ``LOCALISED_LINK_NAMES`` has them, with each language's localised names, for the languages
  listed there, so a dump without siteinfo is read right too.

``dropped_link_names(site_names, lang)`` is the set of all three for a dump of ``lang``, normalised
as ``normalise_name`` does (case-insensitive, ``_`` = space). English's set is the canonical one.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from typing import Mapping

log = logging.getLogger(__name__)

MEDIA, FILE, CATEGORY = -2, 6, 14
DROPPED_LINK_KEYS = (MEDIA, FILE, CATEGORY)
CANONICAL_LINK_NAMES = frozenset({"file", "image", "media", "category"})

# MediaWiki's names (MessagesXx.php and the wiki's alias settings) of the Media, File and Category
# namespaces, aliases included: the dump lists only one name per namespace and never the aliases.
LOCALISED_LINK_NAMES: dict[str, tuple[str, ...]] = {
    "de": ("Medium", "Datei", "Bild", "Kategorie"),
    "es": ("Medio", "Archivo", "Imagen", "Categoría"),
    "fr": ("Média", "Fichier", "Catégorie"),
    "it": ("Media", "File", "Immagine", "Categoria"),
    "ja": ("メディア", "ファイル", "画像", "カテゴリ"),
    "ko": ("미디어", "파일", "그림", "분류"),
    "nl": ("Media", "Bestand", "Afbeelding", "Categorie"),
    "pl": ("Media", "Plik", "Grafika", "Kategoria"),
    "pt": ("Multimédia", "Ficheiro", "Arquivo", "Imagem", "Categoria"),
    "ru": ("Медиа", "Файл", "Изображение", "Категория"),
    "sv": ("Media", "Fil", "Bild", "Kategori"),
    "zh": ("媒体", "媒體", "文件", "檔案", "档案", "图像", "圖像", "分类", "分類"),
}


def normalise_name(name: str) -> str:
    """A namespace name as links are compared with it: ``"Kategorie"``, ``"kategorie"`` -> ``"kategorie"``."""
    return name.replace("_", " ").strip().lower()


def dropped_link_names(site_names: Mapping[int, str], lang: str) -> frozenset[str]:
    """Normalised prefixes of the links a dump of ``lang`` with ``site_names`` (``{key: name}``) does not show
    as prose: the canonical names, the dump's own and ``lang``'s known names."""
    names = set(CANONICAL_LINK_NAMES)
    names.update(normalise_name(site_names[key]) for key in DROPPED_LINK_KEYS if site_names.get(key))
    names.update(normalise_name(name) for name in LOCALISED_LINK_NAMES.get(lang, ()))
    # The canonical set itself where nothing is added: ``strip_wikitext`` keeps a ready link handler for it.
    return CANONICAL_LINK_NAMES if names == CANONICAL_LINK_NAMES else frozenset(names)


def parse_siteinfo_namespaces(siteinfo: bytes) -> dict[int, str]:
    """``<siteinfo>...</siteinfo>`` -> ``{key: name}`` of its named namespaces; ``{}`` (and a warning) when
    it is not well-formed, so that the dump is still read with the canonical names."""
    try:
        element = ET.fromstring(siteinfo)
    except ET.ParseError as exc:
        log.warning("the dump's <siteinfo> is not well-formed XML (%s): using the canonical namespace names", exc)
        return {}
    names: dict[int, str] = {}
    for namespace in element.iterfind("namespaces/namespace"):
        key = (namespace.get("key") or "").strip()
        name = (namespace.text or "").strip()
        if name and key.lstrip("-").isdigit():
            names[int(key)] = name
    return names
