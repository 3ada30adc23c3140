"""One synthetic image with all its labels, from a seed and an index: scene -> render -> annotations.

``build_generator`` is the one place a ``SynthConfig`` turns into the samplers and models that make images.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from densehuman.body.build import load_body_surface
from densehuman.synth.annotate import AnnotationConfig, PersonLabels, encode_mask, keypoint_visibility, sample_densepose
from densehuman.synth.appearance import OutfitSampler
from densehuman.synth.backgrounds import BackgroundSource
from densehuman.synth.body_model import AnnyBody
from densehuman.synth.camera import CameraSampler
from densehuman.synth.label_mesh import LabelledMesh, label_mesh
from densehuman.synth.landmarks import WholeBodyLandmarks
from densehuman.synth.poses import PoseSampler
from densehuman.synth.render import RenderedScene, render_people
from densehuman.synth.scene import PlacementConfig, Scene, SceneSampler
from densehuman.synth.shapes import ShapeSampler

GENERATOR_VERSION = "1.0"


@dataclass(frozen=True)
class SynthConfig:
    """What a synthetic dataset looks like. Everything else follows from the seed."""

    size: tuple[int, int] = (512, 512)  # (H, W)
    min_people: int = 1
    max_people: int = 6
    backgrounds: Path | None = None
    jpeg_quality: tuple[int, int] = (80, 95)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    cameras: CameraSampler = field(default_factory=CameraSampler)
    annotation: AnnotationConfig = field(default_factory=AnnotationConfig)

    def __post_init__(self) -> None:
        h, w = self.size
        if not (64 <= h <= 8192 and 64 <= w <= 8192):
            raise ValueError(f"image size must be between 64 and 8192 pixels per side, got {h} x {w}")
        if not 1 <= self.min_people <= self.max_people <= 99:
            raise ValueError(f"need 1 <= min_people <= max_people <= 99, got {self.min_people}, {self.max_people}")


@dataclass(frozen=True)
class GeneratedImage:
    index: int
    rendered: RenderedScene
    people: list[PersonLabels]  # visible people in scene order; person k has instance id k + 1 in ``instance``
    instance: np.ndarray  # (H, W) uint8, 0 background, k + 1 for ``people[k]``
    jpeg_quality: int
    description: list[dict[str, Any]]  # per visible person: shape, pose family, hands, expression, outfit

    @property
    def image(self) -> np.ndarray:
        return self.rendered.image


class ImageGenerator:
    def __init__(
        self,
        config: SynthConfig,
        seed: int,
        body: AnnyBody,
        mesh: LabelledMesh,
        rest_vertices: np.ndarray,
        scenes: SceneSampler,
        landmarks: WholeBodyLandmarks,
    ) -> None:
        self.config = config
        self.seed = seed
        self.body = body
        self.mesh = mesh
        self.rest_vertices = rest_vertices
        self.scenes = scenes
        self.landmarks = landmarks

    def rng(self, index: int) -> np.random.Generator:
        """Image ``index`` draws from its own stream, so images do not depend on each other or on worker order."""
        return np.random.default_rng([self.seed, index])

    def scene(self, index: int) -> tuple[Scene, np.random.Generator]:
        rng = self.rng(index)
        return self.scenes.sample(rng), rng

    def make(self, index: int) -> GeneratedImage:
        scene, rng = self.scene(index)
        rendered = render_people(
            scene.camera,
            scene.posed.vertices,
            self.mesh,
            self.rest_vertices,
            [p.outfit for p in scene.people],
            scene.background,
            scene.lighting,
            rng,
        )
        quality = int(rng.integers(self.config.jpeg_quality[0], self.config.jpeg_quality[1] + 1))
        keypoints = self.landmarks(scene.posed)
        extras = self.landmarks.extras(scene.posed)
        cfg = self.config.annotation
        people: list[PersonLabels] = []
        description: list[dict[str, Any]] = []
        instance = np.zeros(rendered.instance.shape, dtype=np.uint8)
        for k in range(len(scene.people)):
            mask = rendered.instance == k + 1
            if not mask.any():
                continue
            new_id = len(people) + 1
            instance[mask] = new_id
            rows, cols = np.nonzero(mask)
            bbox = [
                float(cols.min()),
                float(rows.min()),
                float(cols.max() - cols.min() + 1),
                float(rows.max() - rows.min() + 1),
            ]
            kp = keypoint_visibility(
                scene.camera,
                keypoints[k],
                self.landmarks.inner_depth,
                k + 1,
                rendered.instance,
                rendered.depth,
                cfg.visibility_margin_m,
            )
            ex = keypoint_visibility(
                scene.camera,
                extras[k],
                np.zeros(extras.shape[1]),
                k + 1,
                rendered.instance,
                rendered.depth,
                cfg.visibility_margin_m + 0.05,
            )
            area = int(mask.sum())
            dp = None
            if area >= cfg.dp_min_area and int((kp[:17, 2] == 2).sum()) >= cfg.dp_min_visible_keypoints:
                dp = sample_densepose(rng, mask, bbox, rendered.coarse, rendered.chart, rendered.u, rendered.v, cfg)
            people.append(PersonLabels(k, bbox, area, encode_mask(mask), kp, ex, dp))
            description.append(scene.people[k].describe())
        return GeneratedImage(index, rendered, people, instance, quality, description)


def build_generator(config: SynthConfig, seed: int) -> ImageGenerator:
    """Build every model and sampler a ``SynthConfig`` asks for (loads Anny and the body surface)."""
    body = AnnyBody()
    surface = load_body_surface(progress=False)
    mesh = label_mesh(surface, body.faces)
    rest = np.asarray(surface.vertices, dtype=np.float64)
    outfits = OutfitSampler()
    scenes = SceneSampler(
        body=body,
        shapes=ShapeSampler(),
        poses=PoseSampler.from_body(body),
        outfits=outfits,
        backgrounds=BackgroundSource(config.backgrounds),
        size=config.size,
        placement=dataclasses.replace(config.placement, min_people=config.min_people, max_people=config.max_people),
        cameras=config.cameras,
    )
    return ImageGenerator(config, seed, body, mesh, rest, scenes, WholeBodyLandmarks(body))
