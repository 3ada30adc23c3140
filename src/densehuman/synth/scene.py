"""Random multi-person scenes: who is there, how they stand, what they wear, where the camera is.

A scene is sampled in one pass from a ``numpy.random.Generator``, so a seed fixes it completely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from densehuman.synth.body_model import AnnyBody, PosedBodies
from densehuman.synth.camera import Camera, CameraSampler
from densehuman.synth.render import Dressing, Lighting


class ShapeLike(Protocol):
    phenotypes: dict[str, float]
    age_years: float


class PoseLike(Protocol):
    rotations: np.ndarray
    family: str
    hands: tuple[str, str]
    expression: dict[str, float]


class Sampler(Protocol):
    def sample(self, rng: np.random.Generator) -> Any: ...


class BackgroundSampler(Protocol):
    def sample(self, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray: ...


@dataclass(frozen=True)
class PlacementConfig:
    """How people are spread over the image.

    Person heights in pixels are drawn log-uniformly per image between ``min_height_px`` and
    ``max_height_frac`` times the image height, then jittered per person, so an image holds people of similar but
    not equal size. Body centres land anywhere in the image widened by ``margin`` on each side, which truncates
    people at the border.
    """

    min_people: int = 1
    max_people: int = 6
    min_height_px: float = 30.0
    max_height_frac: float = 1.3
    size_jitter: float = 0.35
    margin: float = 0.12
    min_visible_fraction: float = 0.3  # of the projected box that must fall inside the image
    min_distance_factor: float = 0.8  # of the sum of two bodies' horizontal radii
    placement_tries: int = 12
    group_probability: float = 0.5  # a person joins an already placed one (overlaps and occlusion) this often

    def __post_init__(self) -> None:
        if not 1 <= self.min_people <= self.max_people:
            raise ValueError(f"need 1 <= min_people <= max_people, got {self.min_people}, {self.max_people}")
        if self.min_height_px < 4:
            raise ValueError(f"min_height_px must be at least 4, got {self.min_height_px}")


@dataclass(frozen=True)
class Person:
    shape: ShapeLike
    pose: PoseLike
    heading_deg: float
    outfit: Dressing

    def describe(self) -> dict[str, Any]:
        return {
            "age_years": round(float(self.shape.age_years), 1),
            "phenotypes": {k: round(float(v), 4) for k, v in self.shape.phenotypes.items()},
            "pose": self.pose.family,
            "hands": list(self.pose.hands),
            "expression": {k: round(float(v), 3) for k, v in self.pose.expression.items()},
            "heading_deg": round(self.heading_deg, 2),
            "outfit": getattr(self.outfit, "description", {}),
        }


@dataclass(frozen=True)
class Scene:
    camera: Camera
    people: list[Person]
    posed: PosedBodies  # world coordinates, one row per person
    lighting: Lighting
    background: np.ndarray  # (H, W, 3) uint8
    meta: dict[str, Any] = field(default_factory=dict)


def rotation_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


class SceneSampler:
    """Composes the samplers of people, outfits, cameras and backgrounds into scenes."""

    def __init__(
        self,
        body: AnnyBody,
        shapes: Sampler,
        poses: Sampler,
        outfits: Sampler,
        backgrounds: BackgroundSampler,
        size: tuple[int, int],
        placement: PlacementConfig | None = None,
        cameras: CameraSampler | None = None,
    ) -> None:
        self.body = body
        self.shapes = shapes
        self.poses = poses
        self.outfits = outfits
        self.backgrounds = backgrounds
        self.size = size
        self.placement = placement or PlacementConfig()
        self.cameras = cameras or CameraSampler()

    def sample(self, rng: np.random.Generator) -> Scene:
        cfg = self.placement
        camera = self.cameras.sample(rng, self.size)
        n = int(rng.integers(cfg.min_people, cfg.max_people + 1))
        people = []
        for _ in range(n):
            shape = self.shapes.sample(rng)
            pose = self.poses.sample(rng)
            outfit = self.outfits.sample(rng)
            people.append(Person(shape, pose, float(rng.uniform(0.0, 360.0)), outfit))
        rotations = np.stack([p.pose.rotations for p in people]).astype(np.float64)
        for k, p in enumerate(people):
            rotations[k, 0] = rotation_z(np.deg2rad(p.heading_deg)) @ rotations[k, 0]
        phenotypes = {key: np.array([p.shape.phenotypes[key] for p in people]) for key in people[0].shape.phenotypes}
        actions = sorted({a for p in people for a in p.pose.expression})
        expressions = {a: np.array([p.pose.expression.get(a, 0.0) for p in people]) for a in actions}
        posed = self.body.pose(rotations, np.zeros((n, 3)), phenotypes, expressions)
        offsets, kept = self._place(rng, camera, posed.vertices)
        people = [people[k] for k in kept]
        shift = offsets[kept].astype(np.float32)
        bone_poses = posed.bone_poses[kept].copy()
        bone_poses[:, :, :3, 3] += shift[:, None]
        posed = PosedBodies(
            vertices=posed.vertices[kept] + shift[:, None],
            bone_poses=bone_poses,
            coco_keypoints=posed.coco_keypoints[kept] + shift[:, None],
        )
        lighting = Lighting.sample(rng, camera)
        background = self.backgrounds.sample(rng, self.size)
        return Scene(camera, people, posed, lighting, background)

    def _place(self, rng: np.random.Generator, camera: Camera, vertices: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """World offsets for each body (P, 3) and the indices of the bodies that found a place."""
        cfg = self.placement
        height, width = camera.size
        lo, hi = np.log(cfg.min_height_px), np.log(max(cfg.min_height_px + 1, cfg.max_height_frac * height))
        typical = np.exp(rng.uniform(lo, hi))
        offsets = np.zeros((vertices.shape[0], 3))
        kept: list[int] = []
        placed_centres: list[np.ndarray] = []
        placed_radii: list[float] = []
        placed_pixels: list[tuple[np.ndarray, float]] = []  # image centre and pixel height of each placed body
        for k in range(vertices.shape[0]):
            v = vertices[k].astype(np.float64)
            vmin, vmax = v.min(axis=0), v.max(axis=0)
            centre = 0.5 * (vmin + vmax)
            body_height = max(vmax[2] - vmin[2], 0.2)
            radius = 0.5 * float(np.hypot(vmax[0] - vmin[0], vmax[1] - vmin[1]))
            for _ in range(cfg.placement_tries):
                px_height = typical * np.exp(rng.normal(0.0, cfg.size_jitter))
                px_height = float(np.clip(px_height, cfg.min_height_px, 1.8 * height))
                depth = max(camera.focal * body_height / px_height, 0.5 + radius)
                if placed_pixels and rng.uniform() < cfg.group_probability:
                    # Next to somebody already there, at another depth: people overlap and hide each other.
                    anchor, anchor_height = placed_pixels[int(rng.integers(len(placed_pixels)))]
                    pixel = anchor + rng.normal(0.0, 1.0, size=2) * np.array([0.3, 0.1]) * anchor_height
                else:
                    # Anywhere across the width; vertically, mostly around the middle, as photographers frame.
                    pixel = np.array(
                        [
                            rng.uniform(-cfg.margin, 1 + cfg.margin) * width,
                            np.clip(rng.normal(0.55, 0.22), -cfg.margin, 1 + cfg.margin) * height,
                        ]
                    )
                ray = camera.ray(pixel)
                along = depth / float(ray @ camera.rotation[2])
                target = camera.position + along * ray
                offset = target - centre
                if not self._visible_enough(camera, v[::7] + offset):
                    continue
                if any(
                    np.hypot(*(target - c)[:2]) < cfg.min_distance_factor * (radius + r)
                    for c, r in zip(placed_centres, placed_radii, strict=True)
                ):
                    continue
                offsets[k] = offset
                kept.append(k)
                placed_centres.append(target)
                placed_radii.append(radius)
                placed_pixels.append((pixel, px_height))
                break
            else:
                if k == 0:  # every scene has somebody: the first body goes to the middle at the typical size
                    depth = max(camera.focal * body_height / typical, 0.5 + radius)
                    ray = camera.ray(np.array([width / 2.0, height / 2.0]))
                    target = camera.position + depth / float(ray @ camera.rotation[2]) * ray
                    offsets[k] = target - centre
                    kept.append(k)
                    placed_centres.append(target)
                    placed_radii.append(radius)
        return offsets, kept

    def _visible_enough(self, camera: Camera, points: np.ndarray) -> bool:
        xy, depth = camera.project(points)
        if (depth <= 0.1).any():
            return False
        x0, y0 = xy.min(axis=0)
        x1, y1 = xy.max(axis=0)
        area = max((x1 - x0) * (y1 - y0), 1e-9)
        height, width = camera.size
        ix = max(0.0, min(x1, width) - max(x0, 0.0))
        iy = max(0.0, min(y1, height) - max(y0, 0.0))
        return ix * iy / area >= self.placement.min_visible_fraction
