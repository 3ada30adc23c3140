"""Render posed, dressed people into one image with exact per-pixel labels.

Labels (instance, chart I, U, V, coarse part, CIHP parsing class, depth) come straight from the z-buffer's face and
barycentric buffers, so they are exact and never blended. Only the RGB image is anti-aliased (at instance edges) and
degraded (blur, noise) the way a camera would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from densehuman.render.rasterize import rasterize
from densehuman.synth.camera import Camera
from densehuman.synth.label_mesh import LabelledMesh


class Dressing(Protocol):
    """What the renderer needs of an outfit (see ``densehuman.synth.appearance.Outfit``)."""

    face_label: np.ndarray

    def labels_and_albedo(
        self, face: np.ndarray, bary: np.ndarray, rest_position: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class Lighting:
    direction: np.ndarray  # (3,) unit vector in world coordinates, pointing from the surface towards the light
    ambient: float
    diffuse: float
    tint: np.ndarray  # (3,) RGB multiplier of the light colour

    @staticmethod
    def sample(rng: np.random.Generator, camera: Camera) -> Lighting:
        # Mostly from the camera's side and above, so people are rarely lit only from behind.
        back = -camera.rotation[2]
        azimuth = rng.uniform(-np.pi * 0.6, np.pi * 0.6)
        c, s = np.cos(azimuth), np.sin(azimuth)
        horizontal = np.array([c * back[0] - s * back[1], s * back[0] + c * back[1], 0.0])
        horizontal /= max(np.linalg.norm(horizontal), 1e-9)
        elevation = rng.uniform(0.15, 1.2)
        direction = np.cos(elevation) * horizontal + np.array([0.0, 0.0, np.sin(elevation)])
        tint = 1.0 + rng.uniform(-0.08, 0.08, size=3)
        return Lighting(direction, float(rng.uniform(0.3, 0.55)), float(rng.uniform(0.5, 0.8)), tint)


@dataclass(frozen=True)
class RenderedScene:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    instance: np.ndarray  # (H, W) int32: 0 background, k + 1 for person k of the scene
    chart: np.ndarray  # (H, W) uint8: DensePose chart I (0 background)
    u: np.ndarray  # (H, W) float32 in [0, 1]
    v: np.ndarray  # (H, W) float32 in [0, 1]
    coarse: np.ndarray  # (H, W) uint8: coarse part 1..14 (0 background)
    parsing: np.ndarray  # (H, W) uint8: CIHP class (0 background)
    depth: np.ndarray  # (H, W) float32: camera depth in metres (inf background)


def render_people(
    camera: Camera,
    vertices: np.ndarray,
    mesh: LabelledMesh,
    rest_vertices: np.ndarray,
    outfits: Sequence[Dressing],
    background: np.ndarray,
    lighting: Lighting,
    rng: np.random.Generator,
) -> RenderedScene:
    """Render P people.

    Args:
        vertices: (P, V, 3) posed world vertices.
        mesh: labels of the model's triangles (shared by all people).
        rest_vertices: (V, 3) the rest mesh the outfits' patterns are defined on.
        outfits: one per person.
        background: (H, W, 3) uint8 RGB.
    """
    height, width = camera.size
    n_people, n_vertices, _ = vertices.shape
    n_faces = mesh.faces.shape[0]
    if background.shape != (height, width, 3):
        raise ValueError(f"background is {background.shape}, the camera wants {(height, width, 3)}")
    flat = vertices.reshape(-1, 3)
    xy, depth = camera.project(flat)
    faces = (mesh.faces[None] + (np.arange(n_people) * n_vertices)[:, None, None]).reshape(-1, 3)
    # Triangles crossing the near plane are dropped (the rasterizer needs positive depth).
    frags = rasterize(xy, np.where(depth > 0.05, depth, -1.0), faces, (height, width), cull_backfaces=True)
    hit = frags.face >= 0
    gface = frags.face[hit]
    person = gface // n_faces
    local = gface % n_faces
    bary = frags.bary[hit].astype(np.float64)

    instance = np.zeros((height, width), dtype=np.int32)
    instance[hit] = person + 1
    chart = np.zeros((height, width), dtype=np.uint8)
    chart[hit] = mesh.face_chart[local]
    coarse = np.zeros((height, width), dtype=np.uint8)
    coarse[hit] = mesh.face_coarse[local]
    uv = np.einsum("nk,nkc->nc", bary, mesh.corner_uv[local])
    u = np.zeros((height, width), dtype=np.float32)
    v = np.zeros((height, width), dtype=np.float32)
    u[hit] = np.clip(uv[:, 0], 0.0, 1.0)
    v[hit] = np.clip(uv[:, 1], 0.0, 1.0)

    # Colour: albedo from each outfit at the fragment's rest-pose point, Lambert shading with smooth normals.
    rest_pos = np.einsum("nk,nkc->nc", bary, rest_vertices[mesh.faces[local]])
    count = int(hit.sum())
    colour = np.zeros((count, 3), dtype=np.float32)
    normals = np.zeros((count, 3), dtype=np.float64)
    labels = np.zeros(count, dtype=np.uint8)
    for p in range(n_people):
        sel = person == p
        if not sel.any():
            continue
        labels[sel], colour[sel] = outfits[p].labels_and_albedo(local[sel], bary[sel], rest_pos[sel])
        vn = vertex_normals(vertices[p], mesh.faces)
        normals[sel] = np.einsum("nk,nkc->nc", bary[sel], vn[mesh.faces[local[sel]]])
    parsing = np.zeros((height, width), dtype=np.uint8)
    parsing[hit] = labels
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-9)
    lambert = np.clip(normals @ lighting.direction, 0.0, 1.0)
    # A little light from the camera side too, so shadowed sides are not black.
    fill = np.clip(normals @ -camera.rotation[2], 0.0, 1.0) * 0.15
    shade = lighting.ambient + lighting.diffuse * lambert + fill
    image = background.astype(np.float32) / 255.0
    image[hit] = np.clip(colour * shade[:, None] * lighting.tint, 0.0, 1.0)
    image = _antialias_edges(image, instance)
    image = _camera_effects(image, rng)
    return RenderedScene(
        image=image,
        instance=instance,
        chart=chart,
        u=u,
        v=v,
        coarse=coarse,
        parsing=parsing,
        depth=frags.depth,
    )


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (V, 3) of a triangle mesh."""
    tri = vertices[faces].astype(np.float64)
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    out = np.zeros((vertices.shape[0], 3), dtype=np.float64)
    for k in range(3):
        for c in range(3):
            out[:, c] += np.bincount(faces[:, k], weights=fn[:, c], minlength=vertices.shape[0])
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def _antialias_edges(image: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """Soften the one-pixel staircase where instances meet each other or the background (RGB only)."""
    edge = np.zeros(instance.shape, dtype=bool)
    edge[:, 1:] |= instance[:, 1:] != instance[:, :-1]
    edge[:, :-1] |= instance[:, 1:] != instance[:, :-1]
    edge[1:, :] |= instance[1:, :] != instance[:-1, :]
    edge[:-1, :] |= instance[1:, :] != instance[:-1, :]
    blurred = cv2.GaussianBlur(image, (3, 3), 0.8)
    out = image.copy()
    out[edge] = 0.4 * image[edge] + 0.6 * blurred[edge]
    return out


def _camera_effects(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Optics and sensor: a slight blur, colour noise, then 8-bit quantisation."""
    sigma = rng.uniform(0.0, 0.8)
    if sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    noise = rng.normal(0.0, rng.uniform(0.0, 0.02), size=image.shape).astype(np.float32)
    return np.clip((image + noise) * 255.0 + 0.5, 0, 255).astype(np.uint8)
