"""Backgrounds for synthetic people: procedural images, or random crops of a user's folder of photographs.

Procedural kinds: smooth gradients, multi-scale value noise (clouds), textures (bricks, tiles, stripes, wood),
clutter (overlapping shaded rectangles, ellipses, polygons and lines) and rooms (a wall and a floor in perspective
meeting at a horizon). Kinds are sometimes blended through a noise mask, then blurred, lit unevenly and given
sensor noise, so that a person's edges are not the only structure in the image. All randomness comes from the
generator passed to ``sample``. Images are (H, W, 3) uint8 RGB.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class BackgroundSource:
    """Draws backgrounds: procedural ones, or crops of the images in ``folder`` (searched recursively)."""

    def __init__(self, folder: Path | str | None = None) -> None:
        self.folder = None if folder is None else Path(folder)
        self.files: list[Path] = []
        if self.folder is not None:
            if not self.folder.is_dir():
                raise ValueError(f"background folder {self.folder} does not exist or is not a folder")
            self.files = sorted(p for p in self.folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not self.files:
                raise ValueError(f"background folder {self.folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            if not any(_readable(p) for p in self.files):
                raise ValueError(f"background folder {self.folder} holds no readable image")

    def sample(self, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
        """(H, W, 3) uint8 RGB background of ``size`` = (H, W)."""
        h, w = (int(s) for s in size)
        if h <= 0 or w <= 0:
            raise ValueError(f"background size must be positive, got {size}")
        if self.files:
            return self._photo(rng, self.files[int(rng.integers(len(self.files)))], h, w)
        return procedural_background(rng, h, w)

    def _photo(self, rng: np.random.Generator, path: Path, h: int, w: int) -> np.ndarray:
        """A random crop (35-100 % of the largest crop with the target aspect), resized, maybe flipped and jittered."""
        scale = rng.uniform(0.35, 1.0)
        try:
            with Image.open(path) as im:
                crop_w, crop_h = _largest_crop(im.size, w / h, scale)
                # JPEGs decode at a reduced size directly, as long as the crop keeps at least (w, h) pixels.
                im.draft("RGB", (max(1, im.size[0] * w // crop_w), max(1, im.size[1] * h // crop_h)))
                img = np.asarray(im.convert("RGB"))
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, ValueError) as err:
            raise ValueError(f"cannot read background image {path}: {err}") from err
        crop_w, crop_h = _largest_crop((img.shape[1], img.shape[0]), w / h, scale)
        x0 = int(rng.integers(img.shape[1] - crop_w + 1))
        y0 = int(rng.integers(img.shape[0] - crop_h + 1))
        crop = img[y0 : y0 + crop_h, x0 : x0 + crop_w]
        shrink = crop_w > w
        out = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        if rng.random() < 0.5:
            out = out[:, ::-1]
        if rng.random() < 0.5:
            out = _jitter(rng, out.astype(np.float32) / 255.0)
            return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)
        return np.ascontiguousarray(out)


def _readable(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            im.verify()
        return True
    except Exception:  # any failure means "not a readable image"
        return False


def _largest_crop(image_size: tuple[int, int], aspect: float, scale: float) -> tuple[int, int]:
    """(width, height) of a crop with width / height = ``aspect``, ``scale`` times the largest that fits."""
    iw, ih = image_size
    cw = min(iw, ih * aspect) * scale
    return max(1, min(iw, round(cw))), max(1, min(ih, round(cw / aspect)))


# ------------------------------------------------------------------------------------------------ procedural
_SMOOTH_SIDE = 128  # smooth kinds are drawn at most this large, then upsampled


def procedural_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(H, W, 3) uint8 procedural background (see the module docstring)."""
    kinds: list[Callable[[np.random.Generator, int, int], np.ndarray]] = [_gradient, _clouds, _texture, _clutter, _room]
    probs = [0.12, 0.18, 0.25, 0.25, 0.2]
    img = kinds[int(rng.choice(len(kinds), p=probs))](rng, h, w)
    if rng.random() < 0.3:  # blend with a second kind through a soft noise mask
        other = kinds[int(rng.choice(len(kinds), p=probs))](rng, h, w)
        img = _lerp(other, img, _smooth(_noise(rng, h, w, cells=int(rng.integers(2, 6)), octaves=2), 0.35, 0.65))
    if rng.random() < 0.3:
        img = _jitter(rng, img)
    if rng.random() < 0.6:  # uneven lighting
        img *= _grey3(0.6 + 0.55 * _noise(rng, h, w, cells=2, octaves=1))
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 2.5) * max(h, w) / 512)
    if rng.random() < 0.6:  # sensor noise (uniform, much cheaper to draw than Gaussian), sd 0.005 to 0.04
        amplitude = np.float32(rng.uniform(0.005, 0.04) * np.sqrt(12))
        img += _grey3((rng.random((h, w), dtype=np.float32) - np.float32(0.5)) * amplitude)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def _colour(rng: np.random.Generator, saturation: float = 0.6) -> np.ndarray:
    rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0, saturation), rng.uniform(0.12, 0.95))
    return np.array(rgb, dtype=np.float32)


def _smooth(x: np.ndarray, e0: float, e1: float) -> np.ndarray:
    t = np.clip((x - np.float32(e0)) * np.float32(1 / (e1 - e0)), 0, 1)
    return t * t * (3 - 2 * t)


def _noise(rng: np.random.Generator, h: int, w: int, cells: int, octaves: int) -> np.ndarray:
    """(H, W) float32 multi-scale value noise in [0, 1]: a random grid of ``cells`` across the long side, refined
    by doubling and adding half-amplitude detail ``octaves - 1`` times, then upsampled bicubically."""
    gh, gw = max(2, round(cells * h / max(h, w))), max(2, round(cells * w / max(h, w)))
    acc = rng.random((gh, gw), dtype=np.float32)
    for k in range(1, octaves):
        gh, gw = 2 * gh, 2 * gw
        acc = cv2.resize(acc, (gw, gh), interpolation=cv2.INTER_CUBIC) + 0.5**k * rng.random((gh, gw), dtype=np.float32)
    out = cv2.resize(acc, (w, h), interpolation=cv2.INTER_CUBIC)
    lo, hi = float(out.min()), float(out.max())
    return (out - np.float32(lo)) * np.float32(1 / max(hi - lo, 1e-6))


def _grey3(t: np.ndarray) -> np.ndarray:
    """(H, W) -> (H, W, 3) by repeating the channel (much faster than numpy broadcasting over a last axis of 3)."""
    return cv2.merge([t, t, t])


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 blend from a to b (RGB colours or images) by weights t (H, W)."""
    t = np.ascontiguousarray(t, dtype=np.float32)
    if a.ndim == 1 and b.ndim == 1:
        return cv2.merge([a[c] + (b[c] - a[c]) * t for c in range(3)])
    return a + (b - a) * _grey3(t)


def _upsampled(draw: Callable[[np.random.Generator, int, int], np.ndarray]) -> Callable[..., np.ndarray]:
    """Draw a smooth kind at low resolution and upsample it: the same look for a fraction of the cost."""

    def wrapped(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        k = max(1.0, max(h, w) / _SMOOTH_SIDE)
        small = draw(rng, max(2, round(h / k)), max(2, round(w / k)))
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)

    wrapped.__name__ = draw.__name__
    return wrapped


@_upsampled
def _gradient(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    side = max(h, w)
    y = np.arange(h, dtype=np.float32)[:, None] / side
    x = np.arange(w, dtype=np.float32)[None, :] / side
    if rng.random() < 0.6:
        angle = rng.uniform(0, 2 * np.pi)
        t = x * np.float32(np.cos(angle)) + y * np.float32(np.sin(angle))
    else:
        t = np.hypot(x - np.float32(rng.uniform(0, w / side)), y - np.float32(rng.uniform(0, h / side)))
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = _lerp(_colour(rng), _colour(rng), t)
    if rng.random() < 0.5:  # a third colour in the middle
        colour = _colour(rng)
        img = _lerp(img, _lerp(colour, colour, t), 0.6 * np.exp(-np.square((t - 0.5) / 0.2)))
    return img


@_upsampled
def _clouds(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    t = _noise(rng, h, w, cells=int(rng.integers(2, 8)), octaves=int(rng.integers(3, 6)))
    img = _lerp(_colour(rng), _colour(rng), t)
    if rng.random() < 0.5:
        colour = _colour(rng)
        img = _lerp(img, _lerp(colour, colour, t), _smooth(_noise(rng, h, w, 3, 3), 0.55, 0.8))
    return img


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    scale = np.float32(512 / max(h, w))
    y = np.arange(h, dtype=np.float32)[:, None] * scale
    x = np.arange(w, dtype=np.float32)[None, :] * scale
    angle = rng.normal(0, 0.15) if rng.random() < 0.7 else rng.uniform(0, np.pi)
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    return _pattern(rng, x * c + y * s, y * c - x * s)


def _pattern(rng: np.random.Generator, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bricks, tiles, stripes or wood at texture coordinates (u, v) (broadcastable, in 512-pixel-image units)."""
    kind = rng.choice(["bricks", "tiles", "stripes", "wood"], p=[0.3, 0.3, 0.25, 0.15])
    a, b = _colour(rng), _colour(rng)
    f32 = np.float32
    if kind in ("bricks", "tiles"):
        size = rng.uniform(12, 70)
        bh, bw = (size, size * rng.uniform(1.8, 3.2)) if kind == "bricks" else (size, size)
        row = np.floor(v * f32(1 / bh))
        uu = u + (row * f32(0.5) - np.floor(row * f32(0.5))) * f32(bw) if kind == "bricks" else u  # odd rows shift
        col = np.floor(uu * f32(1 / bw))
        gap = f32(rng.uniform(1.0, 4.0))
        mortar = ((uu - col * f32(bw)) < gap) | ((v - row * f32(bh)) < gap)
        shade = np.sin(row * f32(12.9898) + col * f32(78.233) + f32(rng.uniform(0, 100))) * f32(43758.5453)
        shade -= np.floor(shade)  # a pseudo-random shade per brick
        img = _lerp(a, a * 0.6 + 0.4 * b, shade * f32(rng.uniform(0.2, 1.0)))
        img[mortar] = b * 0.5 + 0.5 * rng.uniform(0.3, 0.9)
        return img
    if kind == "stripes":
        t = f32(0.5) + f32(0.5) * np.sin(u * f32(2 * np.pi / rng.uniform(6, 80)))
        return _lerp(a, b, _smooth(t, 0.5 - rng.uniform(0.01, 0.5), 0.5 + rng.uniform(0.01, 0.5)))
    h, w = u.shape
    warp = _noise(rng, h, w, cells=4, octaves=3) * f32(rng.uniform(1, 4))
    cu, cv = f32(rng.uniform(-300, 800)), f32(rng.uniform(-300, 800))
    rings = np.hypot((u - cu) * f32(0.15), v - cv) * f32(1 / rng.uniform(8, 25)) + warp
    brown = np.array(colorsys.hsv_to_rgb(rng.uniform(0.04, 0.11), rng.uniform(0.4, 0.8), rng.uniform(0.3, 0.8)))
    t = _smooth(np.abs(2 * (rings - np.floor(rings)) - 1), rng.uniform(0, 0.4), rng.uniform(0.6, 1.0))
    return _lerp(brown.astype(f32), (brown * rng.uniform(0.5, 0.8)).astype(f32), t)


def _clutter(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Overlapping shapes with drop shadows and a light-to-dark shading ramp each."""
    img = np.empty((h, w, 3), dtype=np.float32)
    img[:] = _colour(rng)
    scale = max(h, w)
    for _ in range(int(rng.integers(8, 40))):
        colour = tuple(float(c) for c in _colour(rng, 0.9))
        dark = tuple(0.55 * c for c in colour)
        cx, cy = rng.uniform(-0.1, 1.1) * w, rng.uniform(-0.1, 1.1) * h
        size = scale * rng.uniform(0.03, 0.35)
        shift = int(rng.uniform(1, 6) * scale / 512)
        kind = rng.choice(["rect", "ellipse", "polygon", "line"])
        if kind == "line":
            end = np.array([cx, cy]) + size * rng.normal(size=2)
            cv2.line(img, (int(cx), int(cy)), (int(end[0]), int(end[1])), colour, max(1, int(size / 15)), cv2.LINE_AA)
            continue
        if kind == "rect":
            angle = rng.uniform(0, 180)
            box = cv2.boxPoints(((cx, cy), (size, size * rng.uniform(0.2, 1.5)), angle))
            pts = box.astype(np.int32)
        elif kind == "ellipse":
            axes = (int(size / 2), int(size * rng.uniform(0.1, 0.6)))
            pts = np.asarray(cv2.ellipse2Poly((int(cx), int(cy)), axes, int(rng.uniform(0, 180)), 0, 360, 10))
        else:
            n = int(rng.integers(3, 8))
            angles = np.sort(rng.uniform(0, 2 * np.pi, n))
            radii = size * rng.uniform(0.3, 0.7, n)
            pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1).astype(np.int32)
        under = img[min(h - 1, max(0, int(cy))), min(w - 1, max(0, int(cx)))]
        cv2.fillPoly(img, [pts + shift], tuple(0.4 * float(c) for c in under))  # drop shadow
        cv2.fillPoly(img, [pts], dark, cv2.LINE_AA)
        centre = pts.mean(axis=0)
        inner = ((pts - centre) * 0.85 + centre - shift).astype(np.int32)  # lit face, offset towards the light
        cv2.fillPoly(img, [inner], colour, cv2.LINE_AA)
    return img


def _room(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A wall above a horizon and a floor below it with its pattern in perspective."""
    horizon = int(h * rng.uniform(0.2, 0.75))
    img = np.empty((h, w, 3), dtype=np.float32)
    wall = _clouds(rng, horizon, w) if rng.random() < 0.5 else _texture(rng, horizon, w)
    img[:horizon] = wall if rng.random() < 0.6 else 0.3 * wall + 0.7 * _colour(rng)  # textured or plain wall
    rows = h - horizon
    y = np.arange(1, rows + 1, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    depth = np.float32(rng.uniform(100, 600)) / y  # distance along the floor grows as rows near the horizon
    u = (x - np.float32(w * rng.uniform(0.2, 0.8))) * depth * np.float32(512 / max(h, w) / 40)
    floor = _pattern(rng, u, depth * np.float32(rng.uniform(20, 60)))
    img[horizon:] = floor * _grey3(np.broadcast_to(0.55 + 0.45 * y / rows, floor.shape[:2]))
    if rng.random() < 0.6:  # skirting board
        img[horizon : horizon + max(1, int(h * rng.uniform(0.005, 0.03)))] = _colour(rng, 0.3)
    return img


def _jitter(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Random brightness, contrast, saturation and colour balance, on float RGB in [0, 1]."""
    grey = img.mean(axis=2, keepdims=True)
    img = grey + (img - grey) * rng.uniform(0.5, 1.4)  # saturation
    img = (img - 0.5) * rng.uniform(0.7, 1.3) + 0.5  # contrast
    return img * rng.uniform(0.7, 1.3) * rng.uniform(0.9, 1.1, 3).astype(np.float32)  # brightness, white balance
