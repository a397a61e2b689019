"""The sample web's content model: which pages and images exist and what their alt texts say.

Everything is a pure function of the seed, so a demo, a test and a benchmark
run on the same seed see the same web. The HTTP server renders pages and images
from this model on request; the Common Crawl writer describes the same pages.

Besides well-captioned images the web holds what a model-based filter must remove, each declared on its
``WebImage`` (and in ``eval/truth.json``, ``files.py``): mismatched pairs, whose English alt text describes
another image (``caption_of``: a colour the image does not have), and near duplicates, an image served
again under its own URL as a re-encoded, resized, slightly cropped copy (``copy_of``, ``copy_geometry``).

The web also speaks German, Chinese and Japanese (``world.py``): ``WORLD_SHARE`` of the image count per language,
each alt text describing its image in that language, on pages of their own (``/de/page/NNN.html`` ...) listed
first. They are drawn from a generator of their own, so the English web of a seed is the same with or without them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from . import world
from .draw import COLOURS, SHAPES

ENGLISH_TEMPLATES = (
    "a {c} {s} on a {b} background",
    "{c} {s} on {b}",
    "photo of a {c} {s}",
    "a large {c} {s} drawn on {b} paper",
    "the {s} is {c} and the background is {b}",
    "{c} {s} icon against a {b} backdrop",
)
# Non-English alt texts on random images, so the language filter has something to remove: ``--lang en`` drops
# all five; ``--lang all`` drops four (no list of their language) and matches the German one against the German
# list (``world.py``), which selects it although it describes no image of the web.
FOREIGN_CAPTIONS = (
    "un cercle rouge sur un fond bleu clair",
    "ein großes gelbes Dreieck auf grünem Hintergrund",
    "una estrella azul sobre un fondo blanco",
    "un quadrato viola su sfondo nero",
    "uma cruz laranja sobre fundo amarelo",
)
# Alt texts a caption filter must drop: file names, boilerplate, too short.
BOILERPLATE_CAPTIONS = ("IMG_1234.JPG", "image", "logo", "DSC00042.jpg", "", "photo")
# What a model-based filter must remove (``add_mismatches_and_copies``).
MISMATCHED_SHARE = 0.2    # of the plain English-captioned images
COPY_SHARE = 0.07         # of all images: ~16 near-duplicate copies on the default 240-image web
COPY_MAX_CROP = 0.04      # a copy loses up to 4% of its source on each side,
COPY_SCALE = (0.75, 1.5)  # is resized by this factor,
COPY_MIN_SIDE = 224       # never below this shorter side (the download stage's default minimum is 200),
COPY_QUALITY = (60, 90)   # and re-encoded at this JPEG quality


@dataclass(frozen=True)
class WebImage:
    id: int
    shape: str
    colour: str
    background: str
    width: int
    height: int
    fmt: str                      # "jpg" or "png"
    caption: str                  # the alt text used on its pages
    language: str                 # "en", "de", "zh", "ja" (world.LANGUAGES), "xx" (other) or "boilerplate"
    eval_copy_of: str | None = None   # eval image id (``colour/NNNNN.jpg``) this is a transformed copy of
    caption_of: int | None = None     # a mismatched pair: the id of the other image its alt text describes
    copy_of: int | None = None        # a near duplicate: the id of the image it is a transformed copy of

    @property
    def path(self) -> str:
        return f"/img/{self.id:05d}.{self.fmt}"

    @property
    def caption_matches(self) -> bool:
        """Its alt text is English and describes this image (not another one)."""
        return self.language == "en" and self.caption_of is None


@dataclass(frozen=True)
class ImgTag:
    src: str                      # as written in the HTML (relative, absolute or protocol-relative)
    alt: str | None
    image_id: int | None          # None for fault or data: images
    srcset: str | None = None


@dataclass(frozen=True)
class WebPage:
    path: str
    title: str
    base_href: str | None
    imgs: tuple[ImgTag, ...]
    links: tuple[str, ...]
    tdm_reserved: bool = False    # carries <meta name="tdm-reservation" content="1"> (W3C TDMRep)


@dataclass
class Site:
    seed: int
    images: list[WebImage]
    pages: list[WebPage]
    eval_images: list["EvalImage"] = field(default_factory=list)

    def image_by_id(self, image_id: int) -> WebImage:
        return self.images[image_id]


@dataclass(frozen=True)
class EvalImage:
    eval_id: str                  # ``colour/NNNNN.jpg``, the path under the eval root (class = the shape's colour)
    shape: str
    colour: str
    background: str
    size: tuple[int, int]
    draw_seed: int
    planted_as: int | None        # web image id of its transformed copy, if planted


def english_caption(rng: random.Random, colour: str, shape: str, background: str) -> str:
    return rng.choice(ENGLISH_TEMPLATES).format(c=colour, s=shape, b=background)


def _pick_colours(rng: random.Random) -> tuple[str, str]:
    colour = rng.choice(list(COLOURS))
    background = rng.choice([c for c in COLOURS if c != colour])
    return colour, background


def _size(rng: random.Random) -> tuple[int, int]:
    roll = rng.random()
    if roll < 0.06:  # too small for the default --min-image-size
        return rng.randint(60, 150), rng.randint(60, 150)
    if roll < 0.10:  # too elongated for the default --max-aspect-ratio
        return rng.randint(800, 960), rng.randint(180, 220)
    return rng.randint(224, 640), rng.randint(224, 520)


def build_site(seed: int = 0, n_images: int = 240, images_per_page: int = 8, n_eval_per_class: int = 8,
               n_planted: int = 9, mismatched_share: float = MISMATCHED_SHARE, copy_share: float = COPY_SHARE,
               world_share: float = world.WORLD_SHARE) -> Site:
    """The whole sample web as data. ``n_planted`` eval images also appear on the web, transformed;
    ``mismatched_share`` of the plain English-captioned images get another image's description and
    ``copy_share`` of all images are near-duplicate copies of others (``add_mismatches_and_copies``).
    ``world_share`` of ``n_images`` more images per language of ``world.LANGUAGES`` follow, with their pages.

    The eval set's classes are the colours of the drawn shapes: a tiny CLIP trained for seconds on a
    CPU learns colour words from these captions well before it tells shapes apart at 32 px, so a
    zero-shot score over colours shows a demo's training at work.
    """
    rng = random.Random(seed)
    eval_images: list[EvalImage] = []
    for colour in COLOURS:
        for _ in range(n_eval_per_class):
            shape = rng.choice(SHAPES)
            background = rng.choice([c for c in COLOURS if c != colour])
            eval_images.append(EvalImage(
                eval_id=f"{colour}/{len(eval_images):05d}.jpg", shape=shape, colour=colour,
                background=background, size=(rng.randint(240, 400), rng.randint(240, 400)),
                draw_seed=rng.randrange(2**31), planted_as=None))
    planted_eval = rng.sample(range(len(eval_images)), min(n_planted, len(eval_images), n_images))
    planted_ids = rng.sample(range(n_images), len(planted_eval))
    plant_for_image = dict(zip(planted_ids, planted_eval, strict=True))

    images: list[WebImage] = []
    for image_id in range(n_images):
        eval_index = plant_for_image.get(image_id)
        if eval_index is not None:
            source = eval_images[eval_index]
            eval_images[eval_index] = EvalImage(**{**source.__dict__, "planted_as": image_id})
            colour, shape, background = source.colour, source.shape, source.background
            width, height = source.size
        else:
            colour, background = _pick_colours(rng)
            shape = rng.choice(SHAPES)
            width, height = _size(rng)
        roll = rng.random()
        if eval_index is not None or roll < 0.84:
            caption, language = english_caption(rng, colour, shape, background), "en"
        elif roll < 0.93:
            caption, language = rng.choice(FOREIGN_CAPTIONS), "xx"
        else:
            caption, language = rng.choice(BOILERPLATE_CAPTIONS), "boilerplate"
        images.append(WebImage(
            id=image_id, shape=shape, colour=colour, background=background, width=width, height=height,
            fmt="png" if rng.random() < 0.25 else "jpg", caption=caption, language=language,
            eval_copy_of=eval_images[eval_index].eval_id if eval_index is not None else None))

    # A generator of its own, so the images drawn above and the page layout below stay what they were.
    images = add_mismatches_and_copies(random.Random(seed * 7_368_787 + 1), images, seed, mismatched_share,
                                       copy_share)
    pages = _build_pages(rng, images, images_per_page)
    world_images, world_pages = _build_world(random.Random(f"world-{seed}"), len(images),
                                             int(n_images * world_share))
    return Site(seed=seed, images=images + world_images, pages=world_pages + pages, eval_images=eval_images)


def _build_world(rng: random.Random, first_id: int, per_language: int) -> tuple[list[WebImage], list[WebPage]]:
    """``per_language`` images per language of ``world.LANGUAGES``, ids from ``first_id``, with their pages."""
    images: list[WebImage] = []
    pages: list[WebPage] = []
    for lang in world.LANGUAGES:
        start = len(images)
        for _ in range(per_language):
            colour, background = _pick_colours(rng)
            shape = rng.choice(SHAPES)
            images.append(WebImage(
                id=first_id + len(images), shape=shape, colour=colour, background=background,
                width=rng.randint(224, 640), height=rng.randint(224, 520), fmt="png" if rng.random() < 0.25 else "jpg",
                caption=world.caption(rng, lang, colour, shape, background), language=lang))
        pages += _world_pages(rng, lang, images[start:])
    return images, pages


def _world_pages(rng: random.Random, lang: str, images: list[WebImage]) -> list[WebPage]:
    per_page = world.IMAGES_PER_PAGE
    chunks = [images[i:i + per_page] for i in range(0, len(images), per_page)]
    pages = []
    for index, chunk in enumerate(chunks):
        tags = []
        for image in chunk:
            src, srcset = _img_src(rng, image, index, None)
            if src.startswith("../"):   # one folder deeper than /page/
                src = "../" + src
            tags.append(ImgTag(src=src, alt=image.caption, image_id=image.id, srcset=srcset))
        tags.append(ImgTag(src="/static/logo.png", alt="logo", image_id=None))
        path = f"/{lang}/page/{index:03d}.html"
        links = tuple(p for p in (f"/{lang}/page/{(index + 1) % len(chunks):03d}.html", "/") if p != path)
        pages.append(WebPage(path=path, title=f"{world.GALLERY_TITLES[lang]} {index}", base_href=None,
                             imgs=tuple(tags), links=links))
    return pages


def copy_geometry(seed: int, image_id: int, source_size: tuple[int, int]
                  ) -> tuple[tuple[int, int, int, int], tuple[int, int], int]:
    """How copy ``image_id`` is made from its source: crop box, size after resizing, JPEG quality.

    A pure function of its arguments, so the site model (the copy's width and height) and the renderer agree.
    """
    rng = random.Random(seed * 15_485_863 + image_id)
    width, height = source_size
    box = (int(width * rng.uniform(0, COPY_MAX_CROP)), int(height * rng.uniform(0, COPY_MAX_CROP)),
           width - int(width * rng.uniform(0, COPY_MAX_CROP)), height - int(height * rng.uniform(0, COPY_MAX_CROP)))
    cropped = (box[2] - box[0], box[3] - box[1])
    low = max(COPY_SCALE[0], COPY_MIN_SIDE / min(cropped))
    scale = rng.uniform(low, max(low, COPY_SCALE[1]))
    return box, (round(cropped[0] * scale), round(cropped[1] * scale)), rng.randint(*COPY_QUALITY)


def _plain(image: WebImage) -> bool:
    """A well-captioned, normal-sized image that is no planted eval copy: what mismatches and copies are made of."""
    return (image.language == "en" and image.eval_copy_of is None
            and min(image.width, image.height) >= COPY_MIN_SIDE)


def add_mismatches_and_copies(rng: random.Random, images: list[WebImage], seed: int, mismatched_share: float,
                              copy_share: float) -> list[WebImage]:
    """Turn some plain images into near-duplicate copies of others and give some others a mismatched caption.

    A copy shows its source's shape and colours under its own URL, with an English caption of its own that
    describes it; a mismatched image's alt text describes another plain image whose shape colour is neither
    its shape's nor its background's (nor is that image's background its shape colour). Copies, their sources
    and mismatched images are disjoint sets, so each sample of a shard set is one of: good, mismatched, copy.
    """
    plain = [image.id for image in images if _plain(image)]
    rng.shuffle(plain)
    n_copies = min(round(len(images) * copy_share), len(plain) // 3)
    copies, sources, rest = plain[:n_copies], plain[n_copies:2 * n_copies], plain[2 * n_copies:]
    images = list(images)
    for copy_id, source_id in zip(copies, sources, strict=True):
        images[copy_id] = _copy(rng, images[copy_id], images[source_id], seed)
    for image_id in rest[:round(len(rest) * mismatched_share)]:
        images[image_id] = _mismatched(rng, images[image_id], [images[i] for i in plain if images[i].copy_of is None])
    return images


def _copy(rng: random.Random, image: WebImage, source: WebImage, seed: int) -> WebImage:
    _, (width, height), _ = copy_geometry(seed, image.id, (source.width, source.height))
    return replace(image, shape=source.shape, colour=source.colour, background=source.background, width=width,
                   height=height, copy_of=source.id,
                   caption=english_caption(rng, source.colour, source.shape, source.background))


def _mismatched(rng: random.Random, image: WebImage, candidates: list[WebImage]) -> WebImage:
    """``image`` captioned with a description of one of ``candidates`` whose colours cannot pass for its own."""
    others = [other for other in candidates if other.colour not in (image.colour, image.background)
              and other.background != image.colour]
    if not others:
        return image
    other = rng.choice(others)
    return replace(image, caption_of=other.id, caption=english_caption(rng, other.colour, other.shape,
                                                                        other.background))


def _img_src(rng: random.Random, image: WebImage, page_index: int, base_href: str | None) -> tuple[str, str | None]:
    """How a page refers to an image: every URL form a real extractor must resolve."""
    style = (image.id + page_index) % 5
    if base_href is not None:  # <base href="/media/">: relative paths resolve under it
        return f"img/{image.id:05d}.{image.fmt}", None
    if style == 0:
        return image.path, None                                   # site-relative
    if style == 1:
        return f"../img/{image.id:05d}.{image.fmt}", None         # document-relative from /page/
    if style == 2:
        return "{origin}" + image.path, None                       # absolute
    if style == 3:
        return "//{authority}" + image.path, None                  # protocol-relative
    small = f"{image.path}?w=160"
    return small, f"{small} 160w, {image.path} {image.width}w"     # srcset: a 160 px variant and the original


def _build_pages(rng: random.Random, images: list[WebImage], per_page: int) -> list[WebPage]:
    order = list(range(len(images)))
    rng.shuffle(order)
    chunks = [order[i:i + per_page] for i in range(0, len(order), per_page)]
    pages: list[WebPage] = []
    for index, chunk in enumerate(chunks):
        gallery = index % 4 == 3
        path = f"/gallery/{index:03d}.html" if gallery else f"/page/{index:03d}.html"
        base_href = "/media/" if gallery else None
        tags = []
        for image_id in chunk:
            src, srcset = _img_src(rng, images[image_id], index, base_href)
            tags.append(ImgTag(src=src, alt=images[image_id].caption, image_id=image_id, srcset=srcset))
        # The site logo on every page (boilerplate alt), a tracking pixel with no alt, and a data: URI.
        tags.append(ImgTag(src="/static/logo.png", alt="logo", image_id=None))
        tags.append(ImgTag(src="/static/pixel.gif", alt=None, image_id=None))
        if index % 3 == 0:
            tags.append(ImgTag(src="data:image/png;base64,iVBORw0KGgo=", alt="a red circle inline", image_id=None))
        if index > 0 and index % 5 == 0:
            # The same image with the same alt text on a second page: exact (url, text) duplicates.
            previous = chunks[index - 1][0]
            src, srcset = images[previous].path, None
            tags.append(ImgTag(src=src, alt=images[previous].caption, image_id=previous, srcset=srcset))
        links = tuple(p for p in (f"/page/{(index + 1) % len(chunks):03d}.html", "/") if p != path)
        pages.append(WebPage(path=path, title=f"Sample gallery {index}", base_href=base_href,
                             imgs=tuple(tags), links=links))
    return pages


def tdm_reserved_page(site: Site, path: str) -> WebPage:
    """A page reserving text-and-data-mining rights in its ``<meta>``: two of the site's images, with alt
    texts no other page uses, so a pair of it that ``wit candidates`` kept would show."""
    imgs = tuple(ImgTag(src=image.path, alt=f"{image.caption} (on a page that reserves TDM rights)",
                        image_id=image.id) for image in site.images[:2])
    return WebPage(path=path, title="A page that reserves TDM rights", base_href=None, imgs=imgs, links=("/",),
                   tdm_reserved=True)


def resolve_placeholders(src: str, origin: str) -> str:
    """Fill in the ``{origin}``/``{authority}`` of absolute and protocol-relative URLs for a served site."""
    return src.replace("{origin}", origin).replace("{authority}", origin.split("://", 1)[1])


def page_html(page: WebPage, origin: str) -> str:
    """The HTML of ``page`` as served from ``origin`` (``http://127.0.0.1:PORT``)."""
    import html

    head = [f"<title>{html.escape(page.title)}</title>", '<meta charset="utf-8">']
    if page.tdm_reserved:
        head.append('<meta name="tdm-reservation" content="1">')
    if page.base_href:
        head.append(f'<base href="{page.base_href}">')
    body = [f"<h1>{html.escape(page.title)}</h1>"]
    for tag in page.imgs:
        attrs = [f'src="{html.escape(resolve_placeholders(tag.src, origin))}"']
        if tag.srcset:
            attrs.append(f'srcset="{html.escape(tag.srcset)}"')
        if tag.alt is not None:
            attrs.append(f'alt="{html.escape(tag.alt)}"')
        body.append(f"<figure><img {' '.join(attrs)}></figure>")
    for link in page.links:
        body.append(f'<p><a href="{link}">next</a></p>')
    return ("<!DOCTYPE html>\n<html><head>" + "".join(head) + "</head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
