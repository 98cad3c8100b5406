"""Small-sample statistics for the transfer-gap tables: mean, std and a Student-t 95% interval, the
difference of two gaps, and label efficiency (labels the scratch arm needs to match the pretrained one)."""

import math
from collections.abc import Sequence

# two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (no scipy dependency)
_T95 = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
]  # fmt: skip


def t_quantile_95(degrees_of_freedom: int) -> float:
    if degrees_of_freedom < 1:
        raise ValueError(f"a t interval needs at least 1 degree of freedom, got {degrees_of_freedom}")
    if degrees_of_freedom <= len(_T95):
        return _T95[degrees_of_freedom - 1]
    return 1.96 + 2.4 / degrees_of_freedom  # within 0.005 of the exact quantile beyond 30


def summarize(values: Sequence[float]) -> dict:
    """Mean, sample std and the 95% t-interval half-width of a few seeds' results."""
    n = len(values)
    if n == 0:
        raise ValueError("summarize() needs at least one value")
    mean = sum(values) / n
    if n == 1:
        return {"n": 1, "mean": mean, "std": float("nan"), "ci95": float("nan")}
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return {"n": n, "mean": mean, "std": std, "ci95": t_quantile_95(n - 1) * std / math.sqrt(n)}


def difference_of_means(a: Sequence[float], b: Sequence[float]) -> dict:
    """mean(a) - mean(b) with a Welch 95% interval: the transfer gap of pretrained (a) over scratch (b)."""
    sa, sb = summarize(a), summarize(b)
    gap = sa["mean"] - sb["mean"]
    if sa["n"] < 2 or sb["n"] < 2:
        return {"gap": gap, "ci95": float("nan")}
    va, vb = sa["std"] ** 2 / sa["n"], sb["std"] ** 2 / sb["n"]
    if va + vb == 0:
        return {"gap": gap, "ci95": 0.0}
    dof = (va + vb) ** 2 / (va**2 / (sa["n"] - 1) + vb**2 / (sb["n"] - 1))
    return {"gap": gap, "ci95": t_quantile_95(max(1, math.floor(dof + 1e-9))) * math.sqrt(va + vb)}


def difference_of_gaps(a1: Sequence[float], b1: Sequence[float], a2: Sequence[float], b2: Sequence[float]) -> dict:
    """(mean(a1) - mean(b1)) - (mean(a2) - mean(b2)): how much larger one family's transfer gap is than
    another's, with a 95% interval from the four independent arms (Welch-Satterthwaite degrees of freedom)."""
    groups = [summarize(g) for g in (a1, b1, a2, b2)]
    value = (groups[0]["mean"] - groups[1]["mean"]) - (groups[2]["mean"] - groups[3]["mean"])
    if any(g["n"] < 2 for g in groups):
        return {"difference": value, "ci95": float("nan")}
    variances = [g["std"] ** 2 / g["n"] for g in groups]
    total = sum(variances)
    if total == 0:
        return {"difference": value, "ci95": 0.0}
    # rounded down (conservative); the epsilon keeps an exact integer from becoming the one below
    dof = total**2 / sum(v**2 / (g["n"] - 1) for v, g in zip(variances, groups))
    return {"difference": value, "ci95": t_quantile_95(max(1, math.floor(dof + 1e-9))) * math.sqrt(total)}


def labels_to_reach(budgets: Sequence[float], accuracies: Sequence[float], target: float) -> float:
    """The label budget at which an accuracy-vs-labels curve first reaches ``target``.

    The curve is linear in log(labels) between measured budgets. Returns the smallest budget when the curve
    starts at or above the target, and ``inf`` when it never reaches it within the measured budgets.
    """
    points = sorted(zip(budgets, accuracies))
    if not points:
        raise ValueError("labels_to_reach() needs at least one (budget, accuracy) point")
    if points[0][1] >= target:
        return float(points[0][0])
    for (n0, y0), (n1, y1) in zip(points, points[1:]):
        if y1 >= target:
            fraction = (target - y0) / (y1 - y0)
            return float(math.exp(math.log(n0) + fraction * (math.log(n1) - math.log(n0))))
    return math.inf


def label_efficiency(
    reference: Sequence[float], curve: dict[float, Sequence[float]], resamples: int = 2000, seed: int = 0
) -> dict:
    """How many labels the ``curve`` arm (scratch: per-seed scores at each budget) needs to match the mean of
    ``reference`` (the pretrained arm's per-seed scores at one budget), with a bootstrap 95% interval over
    seeds (each arm's seeds resampled with replacement, the budgets' curve recomputed each time).

    ``labels`` is ``inf`` (and the interval's upper end too) when the curve does not reach the target
    within its largest budget: the number is then only known to be larger than that budget.
    """
    import numpy as np

    budgets = sorted(curve)
    point = labels_to_reach(budgets, [sum(curve[n]) / len(curve[n]) for n in budgets], sum(reference) / len(reference))
    rng = np.random.default_rng(seed)
    reference_arr = np.asarray(reference, dtype=float)
    curve_arrs = [np.asarray(curve[n], dtype=float) for n in budgets]
    draws = np.empty(resamples)
    for i in range(resamples):
        target = rng.choice(reference_arr, size=reference_arr.size).mean()
        means = [rng.choice(a, size=a.size).mean() for a in curve_arrs]
        draws[i] = labels_to_reach(budgets, means, target)
    # order statistics, not interpolation: draws that never reach the target are inf
    low, high = np.quantile(draws, 0.025, method="lower"), np.quantile(draws, 0.975, method="higher")
    return {
        "labels": point,
        "low": float(low),
        "high": float(high),
        "min_budget": float(budgets[0]),
        "max_budget": float(budgets[-1]),
    }


def paired_difference(a: Sequence[float], b: Sequence[float]) -> dict:
    """mean(a - b) over pairs with a t-interval of the per-pair differences.

    The experiment pairs by seed: a seed fixes the label subset identically for every arm and family, so
    the subset's own difficulty (a large part of the spread at small budgets) cancels in the difference.
    """
    if len(a) != len(b):
        raise ValueError(f"paired_difference() needs pairs, got {len(a)} and {len(b)} values")
    stats = summarize([x - y for x, y in zip(a, b)])
    return {"gap": stats["mean"], "ci95": stats["ci95"], "n": stats["n"]}
