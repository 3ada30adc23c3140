"""Random Anny body shapes: age from young children to elders, both sexes, varied height, weight, muscle, proportions.

Ages are drawn in years from weighted bands and mapped to Anny's ``age`` phenotype with the piecewise-linear table
of Anny's own shape calibration (``anny/data/shape_calibration``). Height is drawn from Anny's WHO-calibrated Beta
distributions conditioned on sex and age (their alpha/beta anchors are copied below; beyond the last anchor, 16 y,
they stay constant), so a 6-year-old is child-sized and adults are about 1.55-1.95 m. Weight, muscle and proportions
use broad Beta distributions of our own (Anny's calibration makes them U-shaped, i.e. mostly extreme bodies).
Everything is drawn with the caller's ``numpy.random.Generator``; no torch randomness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from densehuman.synth.body_model import PHENOTYPES

# Anny age value <-> years (anny/data/shape_calibration/*.pth "morphological_age_mapping").
AGE_YEARS_ANCHORS = np.array([0.0, 1.0, 4.0, 11.0, 16.0, 18.0, 64.0, 110.0])
AGE_ANNY_ANCHORS = np.array([0.0, 0.05, 0.215, 0.415, 0.67, 0.77, 0.83, 1.0])

# Anny's calibrated Beta(alpha, beta) of the ``height`` phenotype at these Anny ages (boys.pth / girls.pth).
_HEIGHT_AGES = np.array([0.0, 0.05, 0.215, 0.415, 0.67])
_HEIGHT_ALPHA = {"male": np.array([21.596, 51.978, 22.147, 13.405, 16.496]),
                 "female": np.array([29.521, 66.282, 31.816, 21.264, 13.684])}  # fmt: skip
_HEIGHT_BETA = {"male": np.array([58.601, 57.36, 45.859, 22.105, 25.656]),
                "female": np.array([96.722, 74.54, 59.491, 23.975, 25.748])}  # fmt: skip


def years_to_anny_age(years: float | np.ndarray) -> np.ndarray:
    """Age in years -> Anny ``age`` phenotype (0 = baby, 1/3 ≈ 8 y, 2/3 ≈ 16 y, 1 = 110 y)."""
    return np.interp(years, AGE_YEARS_ANCHORS, AGE_ANNY_ANCHORS)


def anny_age_to_years(age: float | np.ndarray) -> np.ndarray:
    """Inverse of ``years_to_anny_age`` on [0, 1]."""
    return np.interp(age, AGE_ANNY_ANCHORS, AGE_YEARS_ANCHORS)


@dataclass(frozen=True)
class ShapeSample:
    """One body shape: Anny phenotype values (keys ``body_model.PHENOTYPES``) and the age it stands for."""

    phenotypes: dict[str, float]
    age_years: float
    sex: str  # "male" or "female" (the ``gender`` phenotype is near 0 or near 1)


@dataclass(frozen=True)
class ShapeSampler:
    """Draws ``ShapeSample``s.

    ``age_bands``: (lowest years, highest years, weight) bands, uniform within a band. ``female_fraction``: share of
    female bodies; ``gender`` moves from 0 (male) or 1 (female) toward 0.5 by 0.5 * Beta(1, ``gender_blend``) (larger
    = more clearly male / female; mean shift 0.1 by default). ``height_spread`` > 1 widens Anny's calibrated height
    distribution (same mean). ``weight_beta``, ``muscle_beta``, ``proportions_beta``: Beta(a, b) of those phenotypes;
    children and people over 65 get ``muscle_beta`` with b + 1 (less muscular on average).
    """

    age_bands: tuple[tuple[float, float, float], ...] = (
        (4.0, 12.0, 0.14),
        (12.0, 18.0, 0.1),
        (18.0, 40.0, 0.32),
        (40.0, 65.0, 0.26),
        (65.0, 90.0, 0.18),
    )
    female_fraction: float = 0.5
    gender_blend: float = 4.0
    height_spread: float = 1.0
    weight_beta: tuple[float, float] = (1.6, 1.6)
    muscle_beta: tuple[float, float] = (1.6, 1.8)
    proportions_beta: tuple[float, float] = (1.0, 1.6)

    def __post_init__(self) -> None:
        if not self.age_bands:
            raise ValueError("age_bands must not be empty")
        for lo, hi, w in self.age_bands:
            if not (0.0 <= lo <= hi <= AGE_YEARS_ANCHORS[-1]) or w < 0:
                raise ValueError(f"bad age band {(lo, hi, w)}: need 0 <= lo <= hi <= 110 years and weight >= 0")
        if sum(w for *_, w in self.age_bands) <= 0:
            raise ValueError("age band weights must have a positive sum")
        if not 0.0 <= self.female_fraction <= 1.0:
            raise ValueError(f"female_fraction must be in [0, 1], got {self.female_fraction}")
        betas = (self.weight_beta, self.muscle_beta, self.proportions_beta)
        if self.gender_blend <= 0 or self.height_spread <= 0 or min(min(b) for b in betas) <= 0:
            raise ValueError("gender_blend, height_spread and the Beta parameters must be positive")

    def sample(self, rng: np.random.Generator) -> ShapeSample:
        weights = np.array([w for *_, w in self.age_bands])
        lo, hi, _ = self.age_bands[int(np.searchsorted(np.cumsum(weights), rng.random() * weights.sum(), "right"))]
        years = float(rng.uniform(lo, hi))
        age = float(years_to_anny_age(years))
        sex = "female" if rng.random() < self.female_fraction else "male"
        offset = 0.5 * float(rng.beta(1.0, self.gender_blend))
        alpha = np.interp(age, _HEIGHT_AGES, _HEIGHT_ALPHA[sex]) / self.height_spread
        beta = np.interp(age, _HEIGHT_AGES, _HEIGHT_BETA[sex]) / self.height_spread
        muscle_a, muscle_b = self.muscle_beta
        if years < 12.0 or years > 65.0:
            muscle_b += 1.0
        phenotypes = {
            "gender": 1.0 - offset if sex == "female" else offset,
            "age": age,
            "muscle": float(rng.beta(muscle_a, muscle_b)),
            "weight": float(rng.beta(*self.weight_beta)),
            "height": float(rng.beta(alpha, beta)),
            "proportions": float(rng.beta(*self.proportions_beta)),
        }
        if tuple(phenotypes) != PHENOTYPES:
            raise RuntimeError("phenotype keys out of sync with body_model.PHENOTYPES")
        return ShapeSample(phenotypes, years, sex)
