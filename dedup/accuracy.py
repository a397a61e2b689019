"""``wit overlap accuracy``: zero-shot accuracy on All, Clean and Overlap eval examples, as in the CLIP paper.

Per eval set: accuracy on all examples, on the clean ones (no flagged
near-duplicate in training) and on the overlapping ones; All - Clean (how much
the overlap inflates the reported number); 99.5% Clopper-Pearson intervals of
the three accuracies; and a one-tailed binomial test of the Overlap subset with
the Clean accuracy as the null (is accuracy on overlapping examples higher than
chance would give?), Bonferroni-corrected across the eval sets tested.

The statistics are implemented here with the standard library: the binomial
upper tail through the regularized incomplete beta function (continued
fraction), its quantiles by bisection. ``tests/dedup/test_accuracy.py`` checks
them against hand-computed values and exact binomial sums.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass

from wit_pipeline import fileio
from wit_pipeline.errors import UserError
from wit_pipeline.options import option

from .evalsets import jsonl_rows
from .report import read_report

log = logging.getLogger(__name__)

CONFIDENCE = 0.995      # Clopper-Pearson interval level used by the CLIP paper's overlap analysis
ALPHA = 0.05            # family-wise significance level after Bonferroni correction



@dataclass(kw_only=True)
class AccuracyOptions:
    overlap: str = option(help="the scan's output folder", metavar="DIR")
    predictions: list[str] = option(
        help="predictions.jsonl; rows name their eval set in 'eval_set', or give NAME=FILE; repeatable",
        action="append", metavar="FILE|NAME=FILE")
    out: str | None = option(None, help="where accuracy.json/md go (default: the --overlap folder)", metavar="DIR")


# --------------------------------------------------------------------------- statistics


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz), valid for x < (a+1)/(a+b+2)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b) for a, b > 0."""
    if a <= 0 or b <= 0:
        raise ValueError("betainc needs a > 0 and b > 0")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(a * math.log(x) + b * math.log1p(-x) - _log_beta(a, b))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def beta_ppf(q: float, a: float, b: float) -> float:
    """The q-quantile of Beta(a, b), by bisection on ``betainc`` (monotone in x)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError("q must be in [0, 1]")
    if q == 0.0:
        return 0.0
    if q == 1.0:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if betainc(a, b, mid) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-15:
            break
    return (lo + hi) / 2.0


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): the one-tailed binomial test's p-value."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    return betainc(k, n - k + 1, p)


def binom_sf_exact(k: int, n: int, p: float) -> float:
    """P(X >= k) summed term by term in log space (slow; the reference the tests use)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0 or p >= 1.0:
        return float(p >= 1.0)
    total = 0.0
    for i in range(k, n + 1):
        log_term = (math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                    + i * math.log(p) + (n - i) * math.log1p(-p))
        total += math.exp(log_term)
    return min(1.0, total)


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for a binomial proportion k/n."""
    if n <= 0:
        return (float("nan"), float("nan"))
    alpha = 1.0 - confidence
    lower = 0.0 if k == 0 else beta_ppf(alpha / 2.0, k, n - k + 1)
    upper = 1.0 if k == n else beta_ppf(1.0 - alpha / 2.0, k + 1, n - k)
    return lower, upper


# --------------------------------------------------------------------------- the analysis


@dataclass
class SetAccuracy:
    eval_set: str
    examples: int               # predictions for this set
    overlap: int                # of which flagged as overlapping
    overlap_percent: float
    correct_all: int
    correct_clean: int
    correct_overlap: int
    acc_all: float | None       # accuracies in percent
    acc_clean: float | None
    acc_overlap: float | None
    all_minus_clean: float | None
    ci_all: tuple[float, float] | None
    ci_clean: tuple[float, float] | None
    ci_overlap: tuple[float, float] | None
    p_value: float | None       # one-tailed binomial test, Overlap vs Clean accuracy
    p_bonferroni: float | None
    significant: bool | None
    flagged_without_prediction: int


def _pct(k: int, n: int) -> float | None:
    return 100.0 * k / n if n else None


def _ci(k: int, n: int, confidence: float) -> tuple[float, float] | None:
    if not n:
        return None
    lo, hi = clopper_pearson(k, n, confidence)
    return (100.0 * lo, 100.0 * hi)


def analyse_set(name: str, correct: dict[str, int], flagged: set[str], confidence: float = CONFIDENCE) -> SetAccuracy:
    """One eval set's split; ``correct`` maps eval id -> 0/1, ``flagged`` the overlapping ids."""
    overlap_ids = [i for i in correct if i in flagged]
    n_all, n_over = len(correct), len(overlap_ids)
    n_clean = n_all - n_over
    k_all = sum(correct.values())
    k_over = sum(correct[i] for i in overlap_ids)
    k_clean = k_all - k_over
    p_value = None
    if n_over and n_clean:
        p_value = binom_sf(k_over, n_over, k_clean / n_clean)
    acc_all, acc_clean = _pct(k_all, n_all), _pct(k_clean, n_clean)
    return SetAccuracy(
        eval_set=name, examples=n_all, overlap=n_over, overlap_percent=_pct(n_over, n_all) or 0.0,
        correct_all=k_all, correct_clean=k_clean, correct_overlap=k_over,
        acc_all=acc_all, acc_clean=acc_clean, acc_overlap=_pct(k_over, n_over),
        all_minus_clean=(acc_all - acc_clean) if acc_all is not None and acc_clean is not None else None,
        ci_all=_ci(k_all, n_all, confidence), ci_clean=_ci(k_clean, n_clean, confidence),
        ci_overlap=_ci(k_over, n_over, confidence), p_value=p_value, p_bonferroni=None, significant=None,
        flagged_without_prediction=len(flagged - set(correct)),
    )


def bonferroni(results: list[SetAccuracy], alpha: float = ALPHA) -> None:
    """Fill in corrected p-values: each tested set's p times the number of sets tested."""
    tested = [r for r in results if r.p_value is not None]
    for r in tested:
        r.p_bonferroni = min(1.0, r.p_value * len(tested))
        r.significant = r.p_bonferroni < alpha


def _as_correct(row: dict, where: str = "a prediction row") -> int:
    value = row.get("correct")
    if value is None:
        if "label" in row and "predicted" in row:
            return int(str(row["label"]) == str(row["predicted"]))
        raise UserError(f"{where} has neither 'correct' nor 'label' and 'predicted'")
    if isinstance(value, str):
        return int(value.strip().lower() in ("1", "true", "yes"))
    return int(bool(value))


def read_predictions(specs: list[str], set_names: list[str]) -> dict[str, dict[str, int]]:
    """``{eval_set: {eval_id: correct}}`` from predictions.jsonl files (``FILE`` or ``NAME=FILE``).

    A row names its eval set in ``eval_set`` (or ``dataset``); otherwise the
    file's ``NAME=``; otherwise the only eval set of the overlap report.
    """
    out: dict[str, dict[str, int]] = {}
    for spec in specs:
        name, path = (spec.split("=", 1) if "=" in spec and not os.path.exists(spec) else (None, spec))
        if name is not None and name not in set_names:
            raise UserError(f"--predictions {spec}: no eval set named {name!r} in the overlap report "
                            f"(have: {', '.join(set_names)})")
        rows = 0
        for number, row in enumerate(jsonl_rows(path), 1):
            rows = number
            row_set = row.get("eval_set") or row.get("dataset") or name
            if row_set is None:
                if len(set_names) != 1:
                    raise UserError(f"{path}: row {number} names no eval set and the overlap report has "
                                    f"{len(set_names)}; add 'eval_set' to the rows or pass --predictions NAME={path}")
                row_set = set_names[0]
            if "eval_id" not in row:
                raise UserError(f"{path}: row {number} has no 'eval_id'")
            out.setdefault(row_set, {})[str(row["eval_id"])] = _as_correct(row, f"{path}: row {number}")
        if not rows:
            raise UserError(f"{path}: no prediction rows (one JSON object per line with eval_id and correct, "
                            "as 'wit eval zeroshot' writes); check that this is the predictions file")
    return out


def overlap_accuracy(overlap: str, predictions: list[str] | str, out: str | None = None,
                     confidence: float = CONFIDENCE, alpha: float = ALPHA) -> dict:
    """Split the predictions by the overlap report; write accuracy.json and accuracy.md to ``out``."""
    report = read_report(overlap)
    sets = report.get("eval_sets", {})
    specs = [predictions] if isinstance(predictions, str) else list(predictions)
    by_set = read_predictions(specs, sorted(sets))
    unknown = sorted(set(by_set) - set(sets))
    if unknown:
        raise UserError(f"predictions name eval sets the overlap report does not have: {', '.join(unknown)}")
    results = []
    for name in sorted(by_set):
        s = sets[name]
        flagged = set(s.get("flagged_ids") or {p["eval_id"] for p in s.get("pairs", [])})
        results.append(analyse_set(name, by_set[name], flagged, confidence))
    bonferroni(results, alpha)
    for r in results:
        if r.flagged_without_prediction:
            log.warning("%s: %d flagged eval ids have no prediction", r.eval_set, r.flagged_without_prediction)
    result = {"confidence": confidence, "alpha": alpha, "sets_tested": sum(r.p_value is not None for r in results),
              "eval_sets": [asdict(r) for r in results]}
    target = out or overlap
    fileio.makedirs(target)
    fileio.write_json_atomic(fileio.join(target, "accuracy.json"), result)
    fileio.write_text_atomic(fileio.join(target, "accuracy.md"), markdown(result))
    return result


def _f(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _fci(ci) -> str:
    return "-" if ci is None else f"[{ci[0]:.1f}, {ci[1]:.1f}]"


def _fp(p) -> str:
    return "-" if p is None else (f"{p:.3g}")


def markdown(result: dict) -> str:
    level = f"{100 * result['confidence']:g}%"
    lines = [
        "# Zero-shot accuracy on clean and overlapping eval examples",
        "",
        f"Accuracies in percent with {level} Clopper-Pearson intervals. p: one-tailed binomial test of the Overlap "
        f"subset against the Clean accuracy; Bonferroni-corrected over {result['sets_tested']} eval sets tested "
        f"(significant below {result['alpha']}).",
        "",
        "| Eval set | Examples | Overlap % | All | Clean | Overlap | All - Clean | Clean CI | Overlap CI | p "
        "| p (Bonferroni) |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    for r in result["eval_sets"]:
        lines.append(
            f"| {r['eval_set']} | {r['examples']} | {r['overlap_percent']:.1f} | {_f(r['acc_all'])} | "
            f"{_f(r['acc_clean'])} | {_f(r['acc_overlap'])} | {_f(r['all_minus_clean'], 2)} | "
            f"{_fci(r['ci_clean'])} | {_fci(r['ci_overlap'])} | {_fp(r['p_value'])} | "
            f"{_fp(r['p_bonferroni'])}{' *' if r['significant'] else ''} |")
    lines.append("")
    return "\n".join(lines)
