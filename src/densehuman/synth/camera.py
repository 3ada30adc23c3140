"""A pinhole camera in the world frame of the synth scenes (Z up, metres) and its random placement."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    """Pinhole camera. Camera axes follow OpenCV: x right, y down, z forward (the viewing direction).

    ``rotation`` maps world vectors to camera vectors (x_cam = R (x_world - position)).
    """

    rotation: np.ndarray  # (3, 3) world -> camera
    position: np.ndarray  # (3,) world position of the optical centre
    focal: float  # pixels (square pixels)
    size: tuple[int, int]  # (H, W)

    @property
    def principal_point(self) -> tuple[float, float]:
        return self.size[1] / 2.0, self.size[0] / 2.0

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> (..., 3) camera coordinates."""
        return (points - self.position) @ self.rotation.T

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(..., 3) world points -> ((..., 2) pixel x, y with pixel centres at +0.5, (...,) depth along z)."""
        cam = self.to_camera(points)
        depth = cam[..., 2]
        safe = np.where(np.abs(depth) > 1e-9, depth, 1e-9)
        cx, cy = self.principal_point
        xy = np.stack([self.focal * cam[..., 0] / safe + cx, self.focal * cam[..., 1] / safe + cy], axis=-1)
        return xy, depth

    def ray(self, pixel: np.ndarray) -> np.ndarray:
        """(..., 2) pixel positions -> (..., 3) unit world directions of the rays through them."""
        cx, cy = self.principal_point
        d = np.stack(
            [(pixel[..., 0] - cx) / self.focal, (pixel[..., 1] - cy) / self.focal, np.ones(pixel.shape[:-1])], axis=-1
        )
        d = d @ self.rotation  # camera -> world (R^T d)
        return d / np.linalg.norm(d, axis=-1, keepdims=True)

    def to_dict(self) -> dict[str, object]:
        return {
            "rotation": np.round(self.rotation, 6).tolist(),
            "position": np.round(self.position, 6).tolist(),
            "focal": round(float(self.focal), 4),
            "size": list(self.size),
        }


def look_camera(
    position: np.ndarray, yaw: float, pitch: float, roll: float, focal: float, size: tuple[int, int]
) -> Camera:
    """A camera at ``position`` looking horizontally along (sin yaw, cos yaw, 0), tilted down by ``pitch`` and
    rolled by ``roll`` (radians). World Z is up."""
    forward = np.array([np.sin(yaw) * np.cos(pitch), np.cos(yaw) * np.cos(pitch), -np.sin(pitch)])
    right = np.array([np.cos(yaw), -np.sin(yaw), 0.0])
    down = np.cross(forward, right)
    c, s = np.cos(roll), np.sin(roll)
    right, down = c * right + s * down, -s * right + c * down
    rotation = np.stack([right, down, forward])
    return Camera(rotation=rotation, position=np.asarray(position, dtype=np.float64), focal=float(focal), size=size)


@dataclass(frozen=True)
class CameraSampler:
    """Random cameras: field of view, height above the ground, pitch and roll ranges (degrees, metres)."""

    fov_deg: tuple[float, float] = (35.0, 75.0)
    height_m: tuple[float, float] = (0.4, 3.0)
    pitch_deg: tuple[float, float] = (-15.0, 35.0)
    roll_deg: tuple[float, float] = (-6.0, 6.0)

    def sample(self, rng: np.random.Generator, size: tuple[int, int]) -> Camera:
        fov = np.deg2rad(rng.uniform(*self.fov_deg))
        focal = 0.5 * max(size) / np.tan(fov / 2)
        height = rng.uniform(*self.height_m)
        pitch = np.deg2rad(rng.uniform(*self.pitch_deg))
        roll = np.deg2rad(rng.uniform(*self.roll_deg))
        return look_camera(np.array([0.0, 0.0, height]), 0.0, pitch, roll, focal, size)
