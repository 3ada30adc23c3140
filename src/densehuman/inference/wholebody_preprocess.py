"""OpenPose's preprocessing of an image for the network (``scaleAndSizeExtractor.cpp``, ``resizeFixedAspectRatio``
and ``poseExtractorCaffe.cpp``; steps 1-2 of ``densehuman.inference.wholebody``): the net input size, the scale,
the padded BGR input, and the scale back to image pixels."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from densehuman.models.bottomup.peaks import NET_DECREASE_FACTOR

NET_WIDTH_MULTIPLE = 16  # OpenPose rounds a -1 net width to a multiple of 16
MAX_NET_SIDE = 8192  # net input sides beyond this are refused (extreme aspect ratios)
PAD_BGR = (0, 0, 0)  # resizeFixedAspectRatio's default border value


def check_net_height(net_height: int) -> int:
    """``net_height`` as an int, checked: a multiple of the network stride (8) up to ``MAX_NET_SIDE``."""
    if isinstance(net_height, bool) or not isinstance(net_height, int | np.integer):
        raise ValueError(f"net_height must be an integer, got {net_height!r}")
    if not (NET_DECREASE_FACTOR <= net_height <= MAX_NET_SIDE and net_height % NET_DECREASE_FACTOR == 0):
        raise ValueError(f"net_height must be a multiple of 8 in 8..{MAX_NET_SIDE}, got {net_height}")
    return int(net_height)


def resize_scale_factor(initial: tuple[int, int], target: tuple[int, int]) -> float:
    """OpenPose's ``resizeGetScaleFactor`` for (width, height) sizes: ``min((tw - 1) / (iw - 1), (th - 1) / (ih -
    1))`` (first and last pixel centres map onto each other); a 1-pixel side uses ``t / i`` instead."""
    ratios = [(t - 1) / (i - 1) if i > 1 and t > 1 else t / i for i, t in zip(initial, target, strict=True)]
    return float(min(ratios))


@dataclass(frozen=True)
class NetInput:
    """An image prepared as OpenPose prepares it: ``bgr`` (Hn, Wn, 3) uint8 padded net input, ``scale`` image ->
    net pixels, ``content`` (h, w) net pixels the image covers (OpenPose's ``netSize``), ``scale_to_image`` net
    -> image pixels (OpenPose's ``scaleNetToOutput``)."""

    bgr: np.ndarray
    scale: float
    content: tuple[int, int]
    scale_to_image: float


def net_input_width(height: int, width: int, net_height: int) -> int:
    """OpenPose's ``-1`` net width for an image of ``height x width``: ``16 * round(net_height * W / H / 16)``."""
    units = int(net_height * width / height / NET_WIDTH_MULTIPLE + 0.5)
    return NET_WIDTH_MULTIPLE * max(units, 1)


def prepare_input(rgb: np.ndarray, net_height: int) -> NetInput:
    """Resize with fixed aspect ratio and pad, as OpenPose (module docstring, steps 1-2)."""
    h, w = rgb.shape[:2]
    net_w = net_input_width(h, w, net_height)
    if net_w > MAX_NET_SIDE:
        raise ValueError(f"image of size {h}x{w}: too wide for a {net_height}-row net input ({net_w} columns)")
    scale = resize_scale_factor((w, h), (net_w, net_height))
    matrix = np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]])
    flags = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    bgr = cv2.warpAffine(
        np.ascontiguousarray(rgb[..., ::-1]),
        matrix,
        (net_w, net_height),
        flags=flags,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=PAD_BGR,
    )
    content = (min(net_height, max(1, int(scale * h + 0.5))), min(net_w, max(1, int(scale * w + 0.5))))
    back = resize_scale_factor((content[1], content[0]), (w, h))
    return NetInput(bgr, scale, content, back)
