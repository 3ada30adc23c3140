"""Training and test augmentations of ``DensePoseSample``s: resize, horizontal flip, colour jitter.

Each transform is a small callable ``t(sample, rng) -> sample`` that draws its randomness from the
``numpy.random.Generator`` it is given (same generator state, same output) and never changes its input. They are
composed as a list with ``apply_transforms``. A transform's ``deterministic`` is true when its output does not
depend on the generator (what a test-time pipeline needs).

DensePose annotations are relative to their GT box (points in [0, 256] of the box, masks on a 256 x 256 grid over
it), so resizing changes only the boxes (and the parsing maps, resized nearest); a flip mirrors the boxes and,
inside each box, the points (x -> 256 - x, detectron2's convention), the masks and the chart labels: chart I
becomes ``POINT_LABEL_SYMMETRIES[I]``, the coarse mask label k becomes ``MASK_LABEL_SYMMETRIES[k]`` and (U, V)
follow the UV symmetry of the body surface. Our Anny charts are laid out as exact mirror images, so there (U, V) ->
(1 - U, V) (``MirrorUV``); the official SMPL-based layout needs DensePose's ``UV_symmetry_transforms.mat``
(``UVSymmetry``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
import scipy.io
import torch
from PIL import Image

from densehuman.body.charts import MASK_LABEL_SYMMETRIES, NUM_CHARTS, POINT_LABEL_SYMMETRIES
from densehuman.data.densepose_coco import DP_GRID, DensePoseSample
from densehuman.data.parsing_classes import CIHP
from densehuman.models.branches.parsing.targets import interpolate_nearest
from densehuman.models.instances import DensePoseTarget, ParsingMaps, Targets

if TYPE_CHECKING:
    from densehuman.body.surface import BodySurface

DEFAULT_TRAIN_SHORT_EDGES: tuple[int, ...] = (640, 672, 704, 736, 768, 800)  # detectron2 DensePose configs


class Transform(Protocol):
    @property
    def deterministic(self) -> bool: ...

    def __call__(self, sample: DensePoseSample, rng: np.random.Generator) -> DensePoseSample: ...


def apply_transforms(
    transforms: Sequence[Transform], sample: DensePoseSample, rng: np.random.Generator
) -> DensePoseSample:
    """Apply ``transforms`` in order, all drawing from ``rng``."""
    for t in transforms:
        sample = t(sample, rng)
    return sample


# -------------------------------------------------------------------------------------------------- resize
def shortest_edge_size(height: int, width: int, short: int, max_size: int) -> tuple[int, int]:
    """detectron2's ``ResizeShortestEdge.get_output_shape``: (new_h, new_w) with the shorter side ``short`` and the
    longer at most ``max_size``, each rounded half up."""
    scale = short / min(height, width)
    new_h, new_w = (short, scale * width) if height < width else (scale * height, short)
    if max(new_h, new_w) > max_size:
        scale = max_size / max(new_h, new_w)
        new_h, new_w = new_h * scale, new_w * scale
    return int(new_h + 0.5), int(new_w + 0.5)


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """A uint8 (H, W, 3) image resized as detectron2's ``ResizeTransform`` does it, in training and at test time:
    PIL's bilinear filter (which widens its support when shrinking, unlike OpenCV's)."""
    if image.dtype != np.uint8:
        raise ValueError(f"resize_bilinear takes uint8 images, got {image.dtype}")
    return np.array(Image.fromarray(np.ascontiguousarray(image)).resize((width, height), Image.Resampling.BILINEAR))


class ResizeShortestEdge:
    """Scale the image so its shorter side is a drawn length, unless the longer side would exceed ``max_size``
    (then the longer side is ``max_size``); boxes scale with it (detectron2's ``ResizeShortestEdge``).

    ``sample="choice"`` draws one of ``short_edges``; ``"range"`` draws an integer in [min, max] of them.
    """

    def __init__(
        self,
        short_edges: Sequence[int] = DEFAULT_TRAIN_SHORT_EDGES,
        max_size: int = 1333,
        sample: Literal["choice", "range"] = "choice",
    ) -> None:
        self.short_edges = tuple(int(s) for s in short_edges)
        if not self.short_edges or min(self.short_edges) < 1:
            raise ValueError(f"short_edges must be positive lengths, got {short_edges}")
        if max_size < 1:
            raise ValueError(f"max_size must be positive, got {max_size}")
        if sample not in ("choice", "range"):
            raise ValueError(f"sample must be 'choice' or 'range', got {sample!r}")
        if sample == "range" and len(self.short_edges) != 2:
            raise ValueError(f"sample='range' takes (min, max) short edges, got {self.short_edges}")
        self.max_size = int(max_size)
        self.sample = sample

    def __repr__(self) -> str:
        return f"ResizeShortestEdge({self.short_edges}, max_size={self.max_size}, sample={self.sample!r})"

    @property
    def deterministic(self) -> bool:
        return len(set(self.short_edges)) == 1

    def output_size(self, height: int, width: int, short_edge: int) -> tuple[int, int]:
        """(H, W) after resizing an image of ``height`` x ``width`` to ``short_edge``."""
        return shortest_edge_size(height, width, short_edge, self.max_size)

    def __call__(self, sample: DensePoseSample, rng: np.random.Generator) -> DensePoseSample:
        if self.sample == "choice":
            short = self.short_edges[int(rng.integers(len(self.short_edges)))]
        else:
            short = int(rng.integers(min(self.short_edges), max(self.short_edges) + 1))
        h, w = sample.size
        new_h, new_w = self.output_size(h, w, short)
        if (new_h, new_w) == (h, w):
            return sample
        image = resize_bilinear(sample.image, new_h, new_w)
        scale = torch.tensor([new_w / w, new_h / h, new_w / w, new_h / h], dtype=torch.float32)
        t = sample.targets
        parsing = None
        if t.parsing is not None:  # label maps: nearest neighbour, never blended
            parsing = ParsingMaps(interpolate_nearest(t.parsing.labels, (new_h, new_w)), t.parsing.has)
        targets = Targets(
            boxes=t.boxes * scale,
            classes=t.classes,
            densepose=[None if d is None else dataclasses.replace(d, box=d.box * scale) for d in t.densepose],
            crowd=t.crowd,
            parsing=parsing,
        )
        return dataclasses.replace(sample, image=image, targets=targets)


# ---------------------------------------------------------------------------------------------------- flip
class UVFlip(Protocol):
    def __call__(self, charts: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(U, V) of the mirror-image points of points on (original, 1-based) ``charts``."""
        ...


class MirrorUV:
    """(U, V) -> (1 - U, V): the UV symmetry of charts laid out as exact mirror images (our Anny body surface)."""

    def __call__(self, charts: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = np.asarray(u)
        return (np.asarray(1.0, dtype=u.dtype) - u), np.asarray(v).copy()

    def __repr__(self) -> str:
        return "MirrorUV()"


class UVSymmetry:
    """DensePose's tabulated UV symmetry: ``U' = u_transforms[I - 1, v_loc, u_loc]``, likewise V', with
    ``u_loc = int(U * (S - 1))``, ``v_loc = int(V * (S - 1))`` (S = 256 in ``UV_symmetry_transforms.mat``)."""

    def __init__(self, u_transforms: np.ndarray, v_transforms: np.ndarray) -> None:
        u_t, v_t = np.asarray(u_transforms, np.float32), np.asarray(v_transforms, np.float32)
        if u_t.ndim != 3 or u_t.shape[0] != NUM_CHARTS or u_t.shape[1] != u_t.shape[2] or u_t.shape != v_t.shape:
            raise ValueError(f"UV symmetry tables must both be ({NUM_CHARTS}, S, S), got {u_t.shape}, {v_t.shape}")
        self.u_transforms, self.v_transforms = u_t, v_t

    @classmethod
    def load(cls, path: Path) -> UVSymmetry:
        """Read ``UV_symmetry_transforms.mat`` (keys ``U_transforms``, ``V_transforms``: 1 x 24 cells of S x S)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no UV symmetry file there")
        try:
            data = scipy.io.loadmat(str(path))
            tables = [
                np.stack([np.asarray(c, np.float32) for c in data[k].ravel()]) for k in ("U_transforms", "V_transforms")
            ]
        except KeyError as err:
            raise ValueError(f"{path}: no {err} in the file (not a UV_symmetry_transforms.mat)") from err
        except (ValueError, TypeError, OSError) as err:
            raise ValueError(f"{path}: cannot read UV symmetry tables ({err})") from err
        try:
            return cls(*tables)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err

    @classmethod
    def from_body_surface(cls, surface: BodySurface, size: int = 256) -> UVSymmetry:
        """The tables of a ``BodySurface`` in the official layout (for Anny: a quantized ``MirrorUV``)."""
        return cls(*surface.uv_symmetry_transforms(size))

    def __call__(self, charts: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        charts = np.asarray(charts, dtype=np.int64)
        if charts.size and (charts.min() < 1 or charts.max() > NUM_CHARTS):
            raise ValueError(f"charts must be 1..{NUM_CHARTS} to look up a UV symmetry, got {np.unique(charts)}")
        last = self.u_transforms.shape[1] - 1
        u_loc = np.clip((np.asarray(u) * last).astype(np.int64), 0, last)
        v_loc = np.clip((np.asarray(v) * last).astype(np.int64), 0, last)
        dtype = np.asarray(u).dtype
        return (
            self.u_transforms[charts - 1, v_loc, u_loc].astype(dtype),
            self.v_transforms[charts - 1, v_loc, u_loc].astype(dtype),
        )

    def __repr__(self) -> str:
        return f"UVSymmetry(size={self.u_transforms.shape[1]})"


class RandomFlip:
    """Mirror the image left-right with probability ``prob``, and every label with it (see the module docstring).

    ``chart_permutation`` (25 entries, background first) and ``mask_permutation`` (15) must be involutions;
    ``uv_flip`` maps (U, V) on an original chart to its mirror chart (default ``MirrorUV()``, right for Anny).
    ``parsing_permutation`` swaps the left and right part classes of parsing maps (CIHP's by default; MHP's for
    MHP v2.0: ``ParsingClasses.flip_permutation()``).
    """

    def __init__(
        self,
        prob: float = 0.5,
        chart_permutation: Sequence[int] = POINT_LABEL_SYMMETRIES,
        uv_flip: UVFlip | None = None,
        mask_permutation: Sequence[int] = MASK_LABEL_SYMMETRIES,
        parsing_permutation: Sequence[int] | None = None,
    ) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"flip probability must be in [0, 1], got {prob}")
        self.prob = float(prob)
        self.chart_permutation = _involution(chart_permutation, NUM_CHARTS + 1, "chart_permutation")
        self.mask_permutation = _involution(mask_permutation, len(MASK_LABEL_SYMMETRIES), "mask_permutation")
        self.uv_flip: UVFlip = MirrorUV() if uv_flip is None else uv_flip
        table = CIHP.flip_permutation().tolist() if parsing_permutation is None else list(parsing_permutation)
        self.parsing_permutation = _involution(table, len(table), "parsing_permutation")

    def __repr__(self) -> str:
        return f"RandomFlip(prob={self.prob}, uv_flip={self.uv_flip!r})"

    @property
    def deterministic(self) -> bool:
        return self.prob in (0.0, 1.0)

    def __call__(self, sample: DensePoseSample, rng: np.random.Generator) -> DensePoseSample:
        if not rng.random() < self.prob:
            return sample
        return self.flip(sample)

    def flip(self, sample: DensePoseSample) -> DensePoseSample:
        """The mirrored sample (no randomness)."""
        width = sample.size[1]
        t = sample.targets
        parsing = None
        if t.parsing is not None:
            if t.parsing.labels.numel() and int(t.parsing.labels.max()) >= len(self.parsing_permutation):
                raise ValueError(f"parsing labels beyond the {len(self.parsing_permutation)} classes of the flip table")
            swap = torch.from_numpy(self.parsing_permutation.astype(np.uint8))
            parsing = ParsingMaps(swap[t.parsing.labels.flip(-1).long()], t.parsing.has)
        targets = Targets(
            boxes=_mirror_boxes(t.boxes, width),
            classes=t.classes,
            densepose=[None if d is None else self.flip_target(d, width) for d in t.densepose],
            crowd=t.crowd,
            parsing=parsing,
        )
        image = np.ascontiguousarray(sample.image[:, ::-1])
        meta = {**sample.meta, "flipped": not sample.meta.get("flipped", False)}
        return dataclasses.replace(sample, image=image, targets=targets, meta=meta)

    def flip_target(self, d: DensePoseTarget, width: int) -> DensePoseTarget:
        """One person's DensePose target mirrored in an image ``width`` pixels wide."""
        charts = d.i.numpy()
        u, v = self.uv_flip(charts, d.u.numpy(), d.v.numpy())
        segm = None
        if d.segm is not None:
            segm = torch.from_numpy(self.mask_permutation[d.segm.flip(1).numpy()])
        return DensePoseTarget(
            box=_mirror_boxes(d.box[None], width)[0],
            x=DP_GRID - d.x,
            y=d.y.clone(),
            i=torch.from_numpy(self.chart_permutation[charts]),
            u=torch.from_numpy(np.ascontiguousarray(u, dtype=np.float32)),
            v=torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)),
            segm=segm,
        )


def _mirror_boxes(boxes: torch.Tensor, width: int) -> torch.Tensor:
    """xyxy boxes mirrored in an image ``width`` pixels wide: (x0, x1) -> (W - x1, W - x0)."""
    out = boxes.clone()
    out[:, 0] = width - boxes[:, 2]
    out[:, 2] = width - boxes[:, 0]
    return out


def _involution(table: Sequence[int], n: int, name: str) -> np.ndarray:
    perm = np.asarray(table, dtype=np.int64)
    if (
        perm.shape != (n,)
        or perm[0] != 0
        or (np.sort(perm) != np.arange(n)).any()
        or (perm[perm] != np.arange(n)).any()
    ):
        raise ValueError(f"{name} must be a flip table of {n} labels (0 fixed, an involution), got {list(table)}")
    return perm


# ------------------------------------------------------------------------------------------------ colour
class ColorJitter:
    """Photometric jitter of the image only: brightness, contrast and saturation in that order, each by a factor
    drawn uniformly in [1 - amount, 1 + amount] (detectron2's ``RandomBrightness``/``Contrast``/``Saturation``)."""

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0) -> None:
        for name, amount in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if not 0.0 <= amount <= 1.0:
                raise ValueError(f"{name} jitter must be in [0, 1], got {amount}")
        self.amounts = (float(brightness), float(contrast), float(saturation))

    def __repr__(self) -> str:
        return "ColorJitter(brightness={}, contrast={}, saturation={})".format(*self.amounts)

    @property
    def deterministic(self) -> bool:
        return not any(self.amounts)

    def __call__(self, sample: DensePoseSample, rng: np.random.Generator) -> DensePoseSample:
        b, c, s = (rng.uniform(1.0 - a, 1.0 + a) for a in self.amounts)
        if not any(self.amounts):
            return sample
        img = sample.image.astype(np.float32) * np.float32(b)
        gray = img @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601 luma
        img = img * np.float32(c) + np.float32((1.0 - c) * gray.mean())
        gray = img @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
        img = img * np.float32(s) + (np.float32(1.0 - s) * gray)[..., None]
        image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        return dataclasses.replace(sample, image=image)


# ----------------------------------------------------------------------------------------------- presets
def train_transforms(
    short_edges: Sequence[int] = DEFAULT_TRAIN_SHORT_EDGES,
    max_size: int = 1333,
    flip_prob: float = 0.5,
    uv_flip: UVFlip | None = None,
    color: tuple[float, float, float] = (0.0, 0.0, 0.0),
    parsing_permutation: Sequence[int] | None = None,
) -> list[Transform]:
    """detectron2's DensePose training augmentation (resize to a random short edge, random flip), plus an
    optional ``ColorJitter(*color)``."""
    flip = RandomFlip(flip_prob, uv_flip=uv_flip, parsing_permutation=parsing_permutation)
    out: list[Transform] = [ResizeShortestEdge(short_edges, max_size), flip]
    if any(color):
        out.append(ColorJitter(*color))
    return out


def inference_transforms(short_edge: int = 800, max_size: int = 1333) -> list[Transform]:
    """The test-time pipeline: one fixed resize."""
    return [ResizeShortestEdge((short_edge,), max_size)]
