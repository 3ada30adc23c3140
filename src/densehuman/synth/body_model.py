"""The Anny body model as the synth engine uses it: float32, a fixed set of facial actions, batched posing.

Pose convention: ``rotations`` are (B, J, 3, 3) rotations in Anny's ``local-ref`` parameterization (each bone's
rotation relative to its parent, axes world-aligned at rest: Z up, the body faces -Y, its left is +X);
``rotations[:, 0]`` is the root's world orientation and ``root_translation`` its world position in metres.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

# Blendshapes the engine animates (ARKit names, each in [0, 1]); a short list keeps the forward pass cheap.
FACIAL_ACTIONS: tuple[str, ...] = (
    "jawOpen",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthPucker",
    "eyeBlinkLeft",
    "eyeBlinkRight",
    "browInnerUp",
    "browDownLeft",
    "browDownRight",
)

PHENOTYPES: tuple[str, ...] = ("gender", "age", "muscle", "weight", "height", "proportions")


@dataclass(frozen=True)
class PosedBodies:
    """A batch of posed bodies in world coordinates (metres)."""

    vertices: np.ndarray  # (B, V, 3) float32, all model vertices (skin, eyeballs, tongue, cavities)
    bone_poses: np.ndarray  # (B, J, 4, 4) float32 world bone poses; [..., :3, 3] are the joint positions
    coco_keypoints: np.ndarray  # (B, 23, 3) float32: Anny's 17 COCO + 6 foot keypoints (see KeypointsRegressor)


class AnnyBody:
    """Builds ``anny.Anny()`` once (float32, with ``FACIAL_ACTIONS``) and poses batches of bodies."""

    def __init__(self) -> None:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import anny

            self.model: Any = anny.Anny(facial_actions=list(FACIAL_ACTIONS))
            self.model.to(torch.float32)
            self.coco_regressor: Any = anny.KeypointsRegressor.coco(self.model)
        self.bone_labels: tuple[str, ...] = tuple(self.model.bone_labels)
        self.bone_count = len(self.bone_labels)
        self.faces = self.model.faces.numpy().astype(np.int64)  # (27420, 3) all triangles
        self.vertex_count = int(self.model.template_vertices.shape[0])

    def bone_index(self, label: str) -> int:
        return self.bone_labels.index(label)

    def pose(
        self,
        rotations: np.ndarray,
        root_translation: np.ndarray,
        phenotypes: dict[str, np.ndarray],
        expressions: dict[str, np.ndarray] | None = None,
    ) -> PosedBodies:
        """Pose a batch: rotations (B, J, 3, 3), root_translation (B, 3), phenotypes and expressions {label: (B,)}."""
        b = rotations.shape[0]
        if rotations.shape != (b, self.bone_count, 3, 3):
            raise ValueError(f"rotations must be (B, {self.bone_count}, 3, 3), got {rotations.shape}")
        unknown = set(phenotypes) - set(PHENOTYPES)
        if unknown:
            raise ValueError(f"unknown phenotype labels {sorted(unknown)}; known: {PHENOTYPES}")
        pose = torch.zeros((b, self.bone_count, 4, 4), dtype=torch.float32)
        pose[:, :, :3, :3] = torch.as_tensor(rotations, dtype=torch.float32)
        pose[:, :, 3, 3] = 1.0
        pose[:, 0, :3, 3] = torch.as_tensor(root_translation, dtype=torch.float32)
        pheno = {k: torch.as_tensor(v, dtype=torch.float32).reshape(b) for k, v in phenotypes.items()}
        actions = None
        if expressions:
            actions = torch.zeros((b, len(FACIAL_ACTIONS)), dtype=torch.float32)
            for name, value in expressions.items():
                if name not in FACIAL_ACTIONS:
                    raise ValueError(f"unknown facial action {name!r}; known: {FACIAL_ACTIONS}")
                actions[:, FACIAL_ACTIONS.index(name)] = torch.as_tensor(value, dtype=torch.float32).reshape(b)
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            out = self.model(pose_parameters=pose, phenotype_kwargs=pheno, facial_actions=_actions_arg(actions))
            coco = self.coco_regressor(out)
        return PosedBodies(
            vertices=out["vertices"].numpy(),
            bone_poses=out["bone_poses"].numpy(),
            coco_keypoints=coco.numpy(),
        )


def _actions_arg(actions: torch.Tensor | None) -> dict[str, torch.Tensor] | None:
    if actions is None:
        return None
    return {name: actions[:, k] for k, name in enumerate(FACIAL_ACTIONS)}
