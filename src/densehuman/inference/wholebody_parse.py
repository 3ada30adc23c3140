"""One image through the whole-body network and the parse: OpenPose's preprocessing, the forward pass, the peaks
and the PAF assembly, timed separately (steps 1-4 of ``densehuman.inference.wholebody``). ``WholeBodyPredictor``
and the evaluation during training both call ``parse_image``, so they find the same people."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from densehuman.inference.wholebody_preprocess import NetInput, prepare_input
from densehuman.keypoints.layouts import BODY135_PAF_PAIRS
from densehuman.models.bottomup.assembly import (
    BODY135_PAF_CHANNELS,
    AssemblyConfig,
    assemble_from_peaks,
    coarse_parse_inputs,
)
from densehuman.models.bottomup.network import normalize_openpose
from densehuman.models.bottomup.paf_sampler import PafSampler
from densehuman.models.bottomup.peaks import NET_DECREASE_FACTOR, cubic_resize_matrix, find_peaks


def upsample_cropped(
    maps: np.ndarray, net_size: tuple[int, int], content: tuple[int, int], *, chunk: int = 32
) -> np.ndarray:
    """``upsample_maps(maps)[:, :content[0], :content[1]]``: the stride-8 (C, h, w) maps upsampled x8 to the net
    input size ``net_size`` (H, W) and cropped to the image, without computing the cropped rows and columns (the
    cubic resize is separable: the crop keeps the first rows of its two matrices)."""
    maps = np.asarray(maps, dtype=np.float32)
    channels, h, w = maps.shape
    if (NET_DECREASE_FACTOR * h, NET_DECREASE_FACTOR * w) != tuple(net_size):
        raise ValueError(f"the network's {h}x{w} outputs are not the {net_size[0]}x{net_size[1]} net input / 8")
    ch, cw = content
    rows = cubic_resize_matrix(h, net_size[0])[:ch]
    cols_t = np.ascontiguousarray(cubic_resize_matrix(w, net_size[1])[:cw].T)
    out = np.empty((channels, ch, cw), np.float32)
    for start in range(0, channels, chunk):
        out[start : start + chunk] = rows @ (maps[start : start + chunk] @ cols_t)
    return out


@dataclass(frozen=True)
class ParsedImage:
    """``parse_image``'s output: keypoints (P, 135, 3) in image pixels (OpenPose's convention, see
    ``densehuman.inference.wholebody``),
    person scores (P,), the prepared net input and the seconds spent in the network, on the maps and in the
    assembly (``WholeBodyResult``)."""

    keypoints: np.ndarray
    scores: np.ndarray
    prepared: NetInput
    network_seconds: float
    maps_seconds: float
    assembly_seconds: float

    @property
    def net_size(self) -> tuple[int, int]:
        return (int(self.prepared.bgr.shape[0]), int(self.prepared.bgr.shape[1]))


def parse_image(
    net: torch.nn.Module,
    rgb: np.ndarray,
    net_height: int,
    *,
    device: torch.device | None = None,
    assembly: AssemblyConfig | None = None,
    exact_maps: bool = False,
) -> ParsedImage:
    """Steps 1-4 of ``densehuman.inference.wholebody``'s docstring on an RGB uint8 image with a network in eval
    mode. ``exact_maps``: upsample all maps x8 as OpenPose does (``upsample_cropped``, then ``find_peaks``); default
    the same parse from the stride-8 maps (``coarse_maps``: peaks in tiles around the coarse maxima, PAFs read at
    their samples), several times faster on a CPU."""
    prepared = prepare_input(rgb, net_height)
    net_h, net_w = prepared.bgr.shape[:2]
    device = device or next(net.parameters()).device
    start = time.perf_counter()
    with torch.inference_mode():
        x = torch.from_numpy(prepared.bgr).to(device).permute(2, 0, 1)[None].float()
        out = net(normalize_openpose(x))
        maps = torch.cat([out.final_heatmaps[0], out.final_pafs[0]]).float().cpu().numpy()
    network_seconds = time.perf_counter() - start
    start = time.perf_counter()
    cfg = assembly or AssemblyConfig()
    count = int(out.final_heatmaps.shape[1])
    pafs: np.ndarray | PafSampler
    if exact_maps:
        up = upsample_cropped(maps, (net_h, net_w), prepared.content)  # the padding is not parsed
        offset = float(0.5 / prepared.scale_to_image)  # as ``assemble`` shifts peaks
        peaks = find_peaks(up[:count], cfg.nms_threshold, max_peaks=cfg.max_peaks, offset=offset)
        pafs = up[count:]
    else:
        peaks, pafs = coarse_parse_inputs(
            maps[:count], maps[count:], prepared.content, cfg, scale=prepared.scale_to_image
        )
    maps_seconds = time.perf_counter() - start
    start = time.perf_counter()
    keypoints, scores = assemble_from_peaks(
        peaks, pafs, BODY135_PAF_PAIRS, BODY135_PAF_CHANNELS, cfg, scale=prepared.scale_to_image
    )
    return ParsedImage(keypoints, scores, prepared, network_seconds, maps_seconds, time.perf_counter() - start)
