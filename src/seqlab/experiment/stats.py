"""Small-sample statistics for the transfer-gap tables: mean, std and a Student-t 95% interval."""

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
    return {"gap": gap, "ci95": t_quantile_95(max(1, math.floor(dof))) * math.sqrt(va + vb)}
