"""Deterministic synthetic text for the candidate/matching benchmarks: a Zipf vocabulary, a
500k-entry query list shaped like CLIP's (unigrams + bigrams), and alt-text-like captions."""

from __future__ import annotations

import bisect
import itertools
import random

SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou", "ee")]


def vocabulary(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct pseudo-words, most frequent first (short words are the frequent ones)."""
    rng = random.Random(seed)
    words, seen = [], set()
    while len(words) < n:
        size = 1 + min(4, int(rng.expovariate(1.0) + 1) if len(words) > 300 else 1 + (len(words) > 60))
        word = "".join(rng.choice(SYLLABLES) for _ in range(size))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


class Zipf:
    """Draw ranks with probability ~ 1 / (rank + 2.7)^s (a Zipf-Mandelbrot law)."""

    def __init__(self, n: int, s: float = 1.05, seed: int = 0):
        self.rng = random.Random(seed)
        weights = [1.0 / (r + 2.7) ** s for r in range(n)]
        self.cumulative = list(itertools.accumulate(weights))
        self.total = self.cumulative[-1]

    def draw(self) -> int:
        return bisect.bisect_left(self.cumulative, self.rng.random() * self.total)


def query_list(words: list[str], n: int = 500_000, seed: int = 0) -> list[str]:
    """``n`` queries: the most frequent ~60% unigrams plus bigrams of frequent words (canonical form)."""
    rng = random.Random(seed)
    n_uni = int(n * 0.6)
    skip = 400   # the most frequent words (function words) are not queries
    queries = list(words[skip:skip + n_uni])
    seen = set(queries)
    zipf = Zipf(len(words) // 4, seed=seed + 1)
    while len(queries) < n:
        bigram = f"{words[zipf.draw()]} {words[zipf.draw()]}"
        if bigram not in seen:
            seen.add(bigram)
            queries.append(bigram)
    rng.shuffle(queries)
    return queries


def captions(words: list[str], n: int, seed: int = 0, mean_words: int = 9) -> list[str]:
    """``n`` alt-text-like captions (capitalised, punctuated) over the Zipf vocabulary."""
    rng = random.Random(seed)
    zipf = Zipf(len(words), seed=seed + 2)
    out = []
    for _ in range(n):
        k = max(1, int(rng.gauss(mean_words, 4)))
        text = " ".join(words[zipf.draw()] for _ in range(k))
        out.append(text[:1].upper() + text[1:] + rng.choice(["", ".", " - photo", ", 2019", "!"]))
    return out


# -- alt texts with real languages (so langdetect has real work) --------------------------------
EN_ADJ = ("red blue green old new small large wooden white black ancient modern beautiful empty busy quiet "
          "golden rusty snowy sunny rainy famous tiny giant historic colourful").split()
EN_NOUN = ("dog cat house car bridge river mountain beach church castle garden street train boat city tree "
           "flower bird horse kitchen table chair window door road market festival lighthouse harbour forest "
           "village museum statue bicycle tower lake island desert field farm school library station").split()
EN_PLACE = ("in the morning", "at sunset", "near the sea", "in winter", "on a rainy day", "in the old town",
            "from above", "at night", "in spring", "by the river", "in the park", "after the storm")
EN_TEMPLATES = ("a {a} {n} {p}", "the {a} {n} and the {n2} {p}", "{A} {n} with a {a2} {n2}",
                "photo of a {a} {n} {p}", "view of the {n} {p}", "{A} {n} {p}, {year}")
FOREIGN = {
    "fr": ("une {x} près de la rivière au coucher du soleil", "la vieille {x} dans le centre de la ville",
           "photo d'une belle {x} en hiver"),
    "de": ("ein altes {x} am Ufer des Flusses", "die schöne {x} in der Altstadt bei Nacht",
           "Blick auf das {x} im Winter"),
    "es": ("una {x} antigua cerca del mar al atardecer", "la hermosa {x} en el centro de la ciudad",
           "vista de la {x} en primavera"),
    "it": ("una vecchia {x} vicino al fiume al tramonto", "la bella {x} nel centro storico",
           "veduta della {x} in inverno"),
}
FOREIGN_NOUNS = {"fr": ("maison", "église", "voiture", "rue"), "de": ("Haus", "Kirche", "Auto", "Schloss"),
                 "es": ("casa", "iglesia", "calle", "torre"), "it": ("casa", "chiesa", "strada", "torre")}
BOILERPLATE = ("logo", "icon", "image", "IMG_{n}.JPG", "DSC{n:05d}.jpg", "banner", "thumbnail", "photo",
               "spacer", "avatar")


def alt_text(rng: random.Random, words: list[str]) -> str | None:
    """One alt attribute as found in crawled pages: often missing or empty, some boilerplate,
    English and foreign captions, sometimes with a name from the long-tail vocabulary."""
    roll = rng.random()
    if roll < 0.30:
        return None
    if roll < 0.42:
        return ""
    if roll < 0.52:
        return rng.choice(BOILERPLATE).format(n=rng.randrange(100000))
    if roll < 0.60:
        lang = rng.choice(sorted(FOREIGN))
        return rng.choice(FOREIGN[lang]).format(x=rng.choice(FOREIGN_NOUNS[lang]))
    if roll < 0.66:   # short nav-like alts: too few words
        return rng.choice(EN_NOUN).capitalize()
    text = rng.choice(EN_TEMPLATES).format(
        a=rng.choice(EN_ADJ), a2=rng.choice(EN_ADJ), A=rng.choice(EN_ADJ).capitalize(), n=rng.choice(EN_NOUN),
        n2=rng.choice(EN_NOUN), p=rng.choice(EN_PLACE), year=rng.randrange(1900, 2025))
    if rng.random() < 0.5:   # a proper name from the long tail ("Kaibo Lighthouse")
        text += " " + words[rng.randrange(len(words))].capitalize()
    return text
