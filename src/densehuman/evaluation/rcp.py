"""The paper's pointwise evaluation: the ratio of correct points (RCP) as the geodesic threshold grows.

Every annotated GT point is scored by the geodesic distance between where it is on the body and where the detection
assigned to its person puts it. Each GT person gets the detection that a greedy, score-ordered matching on box IoU
>= 0.5 gives it (one detection per person); points of unmatched people, and points the detection calls background,
count as infinitely wrong. RCP(t) is the share of points with distance <= t; AUC_a is the mean of RCP over [0, a].
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from densehuman.body.charts import CHART_NAMES

RCP_MAX_M = 0.30
RCP_STEPS = 301  # 1 mm steps from 0 to 30 cm


@dataclass(frozen=True)
class PointErrors:
    distance: np.ndarray  # (P,) metres, inf where wrong everywhere
    chart: np.ndarray  # (P,) GT chart of each point


def rcp_curve(distance: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    if distance.size == 0:
        return np.zeros_like(thresholds)
    d = np.sort(distance)
    return np.searchsorted(d, thresholds, side="right") / d.size


def auc(curve: np.ndarray, thresholds: np.ndarray, limit: float) -> float:
    """Mean of RCP over [0, limit] (trapezoid rule), in [0, 1]."""
    sel = thresholds <= limit + 1e-12
    t, c = thresholds[sel], curve[sel]
    if t.size < 2:
        return float(c[0]) if c.size else 0.0
    return float(np.sum((c[1:] + c[:-1]) * np.diff(t)) / 2.0 / (t[-1] - t[0]))


def summarize_rcp(errors: PointErrors) -> dict[str, object]:
    thresholds = np.linspace(0.0, RCP_MAX_M, RCP_STEPS)
    curve = rcp_curve(errors.distance, thresholds)
    out: dict[str, object] = {
        "points": int(errors.distance.size),
        "AUC10": auc(curve, thresholds, 0.10),
        "AUC30": auc(curve, thresholds, 0.30),
        "RCP@5cm": float(np.mean(errors.distance <= 0.05)) if errors.distance.size else 0.0,
        "RCP@10cm": float(np.mean(errors.distance <= 0.10)) if errors.distance.size else 0.0,
        "RCP@30cm": float(np.mean(errors.distance <= 0.30)) if errors.distance.size else 0.0,
        # None when more than half of the points are wrong everywhere (JSON has no infinity).
        "median_error_cm": _finite_or_none(float(np.median(errors.distance) * 100)) if errors.distance.size else None,
        "thresholds_m": [round(float(t), 4) for t in thresholds],
        "curve": [round(float(c), 6) for c in curve],
    }
    per_chart = {}
    for c in range(1, 25):
        sel = errors.chart == c
        if not sel.any():
            continue
        cc = rcp_curve(errors.distance[sel], thresholds)
        per_chart[CHART_NAMES[c]] = {
            "chart": c,
            "points": int(sel.sum()),
            "AUC10": auc(cc, thresholds, 0.10),
            "AUC30": auc(cc, thresholds, 0.30),
        }
    out["per_chart"] = per_chart
    return out


def _finite_or_none(value: float) -> float | None:
    return value if np.isfinite(value) else None


def plot_rcp(summary: dict[str, object], path: str | os.PathLike[str], title: str = "DensePose RCP") -> None:
    """The RCP curve as a PNG (written atomically)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from densehuman import atomic

    thresholds = np.asarray(summary["thresholds_m"], dtype=np.float64) * 100
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    curve = np.asarray(summary["curve"], dtype=np.float64)
    ax.plot(thresholds, curve, lw=2, label=f"AUC10 {summary['AUC10']:.3f}, AUC30 {summary['AUC30']:.3f}")
    ax.set_xlabel("geodesic error threshold (cm)")
    ax.set_ylabel("ratio of correct points")
    ax.set_xlim(0, thresholds[-1])
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="lower right")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic.write_bytes(path, buf.getvalue())
