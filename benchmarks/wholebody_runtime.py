"""The single-network whole-body runtime claim on this CPU: BODY_135 against OpenPose's multi-network pipeline.

    python benchmarks/wholebody_runtime.py [--runs 5] [--warmup 1] [--preset body135_cpu] [--height 368]
        [--width 656] [--threads N] [--plot wholebody_runtime.png] [--people 1 2 5 10 15 20]

Hidalgo et al. (ICCV'19, Fig. 4) claim that the single whole-body network runs in the same time whatever the
number of people, while whole-body OpenPose (a body network, then per person a face network and two hand networks
on crops) grows linearly with it. Both run here with RANDOM weights (times only, no accuracy) at a FIXED net input
size, for n people:

* single network: ``WholeBodyPredictor(--preset)`` on an image of exactly ``--height x --width`` pixels, so that its
  preprocessing gives that net input at scale 1. ``network ms`` and ``assembly ms`` are the predictor's own
  ``network_seconds`` (input to tensor, forward pass, maps off the device), ``maps_seconds`` (heatmap peaks and the
  PAFs' resize from the stride-8 maps; with ``--exact-maps`` OpenPose's x8 cubic upsampling of all 439 maps and the
  peaks) and ``assembly_seconds`` (PAF connections, people, filters) of each call. The forward pass does not depend on
  the maps' content but the assembly does, and random weights show nobody: after the real forward pass, the outputs
  are replaced by OpenPose ground-truth maps (``make_targets``: 135 heatmaps, 304 PAFs on the stride-8 grid) of n
  synthetic whole-body people (``wholebody_assembly.random_person``, laid out as in that benchmark), so the
  assembly parses n people.
* multi-network (OpenPose whole-body without BODY_135): a BODY_25-like body network (the preset's architecture with
  26 heatmaps, 25 parts + background, and 52 PAFs) and its assembly (25 body and foot parts, BODY_25's 26 pairs:
  the BODY_135 body tree + the two ear-shoulder pairs) on ground-truth maps of the same people; then, for each of
  the n people (fixed detections: exactly n faces and 2n hands, boxes from the people's true keypoints, hands by
  OpenPose's ``handDetector`` rule), a face crop and two hand crops (``--crop`` square, OpenPose's 368 default)
  warped from the image and run ONE AT A TIME, as OpenPose does, through a CPM-like keypoint network: the preset's
  trunk, then the preset's stages (widths, blocks) as heatmap-only stages (stage 0 reads the features, stage s
  reads features + stage s-1's heatmaps), 71 heatmaps for the face, 22 for a hand. Their maps are upsampled to the
  crop (OpenPose's resize) and reduced to one maximum per keypoint. ``body ms`` is the body network + body
  assembly; ``face+hand ms`` the crops, networks and maxima. OpenPose's own face and hand networks are 6-stage
  CPMs on a VGG trunk with 7x7 convs, heavier than these stand-ins.

``total ms`` is the median of the per-call sums; single and multi calls alternate. NumPy's BLAS threads (used by
the upsampling) follow ``OMP_NUM_THREADS``; ``--threads`` sets PyTorch's.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch
from torch import Tensor, nn
from wholebody_assembly import random_person

from densehuman.inference.wholebody import WHOLEBODY_PRESETS, WholeBodyPredictor
from densehuman.inference.wholebody_parse import upsample_cropped
from densehuman.inference.wholebody_preprocess import NetInput, prepare_input
from densehuman.keypoints.layouts import BODY135_PAF_PAIRS, NUM_BODY135
from densehuman.models.bottomup.assembly import AssemblyConfig, assemble, assemble_coarse
from densehuman.models.bottomup.config import WholeBodyNetConfig, build_wholebody_net
from densehuman.models.bottomup.network import Stage, Trunk, WholeBodyNet, WholeBodyOutput, normalize_openpose
from densehuman.models.bottomup.peaks import resize_maps_cubic
from densehuman.models.bottomup.targets import make_targets

BODY_PARTS = 25  # BODY_135 points 0-24: COCO body, upper neck, head top, feet (BODY_25's count)
# BODY_25's 26 PAFs in BODY_135 terms: the 24 pairs of the body and foot tree, then the ear-shoulder pairs.
BODY25_PAIRS: tuple[tuple[int, int], ...] = (*BODY135_PAF_PAIRS[:24], (3, 5), (4, 6))
BODY25_PAF_INDEX = [BODY135_PAF_PAIRS.index(pair) for pair in BODY25_PAIRS]
BODY25_CHANNELS = [c for i in BODY25_PAF_INDEX for c in (2 * i, 2 * i + 1)]  # their x, y channels in the 304
FACE_POINTS, HAND_POINTS = 70, 21  # OpenPose's face and hand networks add a background map to these
FACE_SLICE = slice(65, 135)
HANDS = ((5, 7, 9), (6, 8, 10))  # (shoulder, elbow, wrist) of the left, then the right arm
HAND_WRIST_ELBOW_RATIO = 0.33  # handDetector.cpp: the box centre is the wrist + 0.33 (wrist - elbow)
BOX_SIZE_FACTOR = 1.5  # handDetector.cpp: side 1.5 max(|wrist - elbow|, 0.9 |elbow - shoulder|); faces here too


class KeypointNet(nn.Module):
    """A CPM-like single-branch keypoint network (the face and hand networks' stand-in): ``trunk``, then one
    heatmap stage per ``(width, blocks, mid_channels)`` of ``stages``; stage 0 reads the features, stage s > 0 reads
    ``concat(features, heatmaps of stage s-1)``. Returns the last stage's heatmaps."""

    def __init__(self, trunk: Trunk, stages: Sequence[tuple[int, int, int]], num_heatmaps: int) -> None:
        super().__init__()
        self.trunk = trunk
        features = trunk.out_channels
        self.stages = nn.ModuleList(
            Stage(features + (num_heatmaps if s else 0), w, b, m, num_heatmaps, s, "L1")
            for s, (w, b, m) in enumerate(stages)
        )

    def forward(self, x: Tensor) -> Tensor:
        features = self.trunk(x)
        heatmaps = self.stages[0](features)
        for stage in self.stages[1:]:
            heatmaps = stage(torch.cat([features, heatmaps], dim=1))
        return heatmaps


class RenderedOutputs(nn.Module):
    """The real network's forward pass (its time is the network time), then the scene's rendered maps in place of
    its outputs, so that the predictor's assembly parses the scene's people."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.heatmaps: Tensor | None = None  # (1, 135, h, w)
        self.pafs: Tensor | None = None  # (1, 304, h, w)

    def forward(self, x: Tensor) -> WholeBodyOutput:
        out = self.net(x)
        if self.heatmaps is None or self.pafs is None:
            raise RuntimeError("no rendered maps set")
        if out.final_heatmaps.shape != self.heatmaps.shape or out.final_pafs.shape != self.pafs.shape:
            raise ValueError(
                f"network outputs {tuple(out.final_heatmaps.shape)}, {tuple(out.final_pafs.shape)} but rendered maps"
                f" are {tuple(self.heatmaps.shape)}, {tuple(self.pafs.shape)}"
            )
        return WholeBodyOutput(pafs=[self.pafs], heatmaps=[self.heatmaps])


@dataclass
class MultiNetwork:
    """OpenPose's whole-body pipeline without BODY_135: body network + assembly, then face and hand networks."""

    body_net: WholeBodyNet
    face_net: KeypointNet
    hand_net: KeypointNet
    crop: int
    assembly: AssemblyConfig
    exact_maps: bool


@dataclass(frozen=True)
class Row:
    people: int
    network: float
    maps: float
    assembly: float
    single: float
    single_found: int
    body: float
    parts: float
    multi: float
    multi_found: int


def stage_specs(config: WholeBodyNetConfig, count: int) -> list[tuple[int, int, int]]:
    """(width, blocks, mid_channels) of the keypoint networks' stages: the preset's PAF then CM stages (``count``
    0), else the last ``count`` of them (1: one CM stage), repeating the CM stage beyond the preset's number."""
    specs = [
        *zip(config.paf_widths, config.paf_blocks, config.paf_mid_channels, strict=True),
        *zip(config.cm_widths, config.cm_blocks, config.cm_mid_channels, strict=True),
    ]
    if count <= 0:
        return specs
    if count <= len(specs):
        return specs[-count:]
    return specs + [specs[-1]] * (count - len(specs))


def describe(config: WholeBodyNetConfig) -> str:
    if config.trunk == "timm":
        return f"{config.timm_name} stride-8 features + 3x3 conv to {config.feature_channels}"
    return f"VGG-19 to conv4_2 + 2 CPM convs to {config.feature_channels}"


def describe_stages(specs: Sequence[tuple[int, int, int]]) -> str:
    return f"{len(specs)} stages (" + ", ".join(f"{b} dense blocks of 3x{w}, 1x1 {m}" for w, b, m in specs) + ")"


def millions(net: nn.Module) -> str:
    return f"{sum(p.numel() for p in net.parameters()) / 1e6:.2f} M params"


def scene(count: int, height: int, width: int) -> np.ndarray:
    """(count, 135, 3) x, y, v = 2 of ``count`` synthetic people: ``wholebody_assembly.people_layout`` for any net
    input size (one row up to 5 people, two beyond; the same people at 368x656)."""
    rng = np.random.default_rng(count)
    rows = 1 if count <= 5 else 2
    per_row = -(-count // rows)
    tall = min(300.0 / 368.0 * height, 0.9 * height / rows)
    people = []
    for n in range(count):
        row, col = divmod(n, per_row)
        center = ((col + 0.5) * width / per_row, (row + 0.5) * height / rows + 0.03 * tall)
        people.append(random_person(rng, center, tall))
    xy = np.stack(people)
    return np.concatenate([xy, np.full((*xy.shape[:2], 1), 2.0)], axis=-1)


def body25_maps(heatmaps: np.ndarray, pafs: np.ndarray) -> np.ndarray:
    """(26 + 52, h, w) the BODY_25-like body network's maps: 25 part heatmaps, background, the 26 pairs' PAFs."""
    parts = heatmaps[:BODY_PARTS]
    background = np.clip(1.0 - parts.max(axis=0), 0.0, None)[None]
    return np.concatenate([parts, background, pafs[BODY25_CHANNELS]]).astype(np.float32)


def face_box(person: np.ndarray) -> tuple[float, float, float]:
    """(centre x, centre y, side): 1.5 times the extent of the person's face points."""
    points = person[FACE_SLICE, :2]
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre = (lo + hi) / 2
    return float(centre[0]), float(centre[1]), float(BOX_SIZE_FACTOR * max(hi - lo))


def hand_box(person: np.ndarray, shoulder: int, elbow: int, wrist: int) -> tuple[float, float, float]:
    """OpenPose's ``handDetector`` box from the arm: centre past the wrist, side from the forearm and upper arm."""
    s, e, w = (person[k, :2] for k in (shoulder, elbow, wrist))
    centre = w + HAND_WRIST_ELBOW_RATIO * (w - e)
    side = BOX_SIZE_FACTOR * max(np.linalg.norm(w - e), 0.9 * np.linalg.norm(e - s))
    return float(centre[0]), float(centre[1]), float(side)


def part_keypoints(
    net: KeypointNet, image_bgr: np.ndarray, box: tuple[float, float, float], points: int, size: int
) -> np.ndarray:
    """One face or hand: the box warped to a ``size`` square crop (OpenPose's ``resizeFixedAspectRatio`` flags),
    the network, its first ``points`` maps upsampled to the crop, and each map's maximum in image pixels."""
    cx, cy, side = box
    s = size / max(side, 1.0)
    tx, ty = size / 2 - s * cx, size / 2 - s * cy
    matrix = np.array([[s, 0.0, tx], [0.0, s, ty]])
    flags = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    crop = cv2.warpAffine(image_bgr, matrix, (size, size), flags=flags, borderMode=cv2.BORDER_CONSTANT)
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float()
    maps = net(normalize_openpose(x))[0, :points].cpu().numpy()
    up = resize_maps_cubic(maps, size, size).reshape(points, -1)
    index = up.argmax(axis=1)
    return np.stack([(index % size - tx) / s, (index // size - ty) / s, up[np.arange(points), index]], axis=1)


def single_call(predictor: WholeBodyPredictor, image: np.ndarray) -> tuple[float, float, float, int]:
    result = predictor(image)
    return result.network_seconds, result.maps_seconds, result.assembly_seconds, len(result.people)


def multi_call(
    multi: MultiNetwork,
    prepared: NetInput,
    body_maps: np.ndarray,
    boxes: Sequence[tuple[tuple[float, float, float], ...]],
) -> tuple[float, float, int]:
    """(body seconds, face + hand seconds, people found by the body assembly) of one image."""
    net_h, net_w = prepared.bgr.shape[:2]
    start = time.perf_counter()
    with torch.inference_mode():
        x = torch.from_numpy(prepared.bgr).permute(2, 0, 1)[None].float()
        out = multi.body_net(normalize_openpose(x))
        # the maps off the device, as the predictor; the assembly then parses the rendered maps instead
        torch.cat([out.final_heatmaps[0], out.final_pafs[0]]).float().cpu().numpy()
    if multi.exact_maps:
        up = upsample_cropped(body_maps, (net_h, net_w), prepared.content)
        keypoints, _ = assemble(
            up[:BODY_PARTS], up[BODY_PARTS + 1 :], BODY25_PAIRS, config=multi.assembly, scale=prepared.scale_to_image
        )
    else:
        keypoints, _ = assemble_coarse(
            body_maps[:BODY_PARTS],
            body_maps[BODY_PARTS + 1 :],
            prepared.content,
            BODY25_PAIRS,
            config=multi.assembly,
            scale=prepared.scale_to_image,
        )
    body = time.perf_counter() - start
    start = time.perf_counter()
    with torch.inference_mode():
        for face, *hands in boxes:  # one crop at a time, as OpenPose's face and hand extractors
            part_keypoints(multi.face_net, prepared.bgr, face, FACE_POINTS, multi.crop)
            for hand in hands:
                part_keypoints(multi.hand_net, prepared.bgr, hand, HAND_POINTS, multi.crop)
    return body, time.perf_counter() - start, len(keypoints)


def ms(seconds: Sequence[float]) -> float:
    return 1e3 * statistics.median(seconds)


def change(rows: Sequence[Row], key: str) -> float:
    first, last = getattr(rows[0], key), getattr(rows[-1], key)
    return 100.0 * (last / first - 1.0)


def plot(rows: Sequence[Row], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    people = [r.people for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.plot(people, [r.single for r in rows], "o-", color="C0", label="single network: network + maps + assembly")
    ax.plot(people, [r.network for r in rows], ":", color="C0", label="single network: network only")
    ax.plot(people, [r.multi for r in rows], "s-", color="C3", label="multi-network: body + face + 2 hands/person")
    ax.plot(people, [r.body for r in rows], ":", color="C3", label="multi-network: body network + assembly only")
    ax.set_xlabel("people in the image")
    ax.set_ylabel("ms per image (median)")
    ax.set_title(title, fontsize=9)
    ax.set_xticks(people)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed calls per people count (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per people count before the runs")
    parser.add_argument("--preset", choices=sorted(WHOLEBODY_PRESETS), default="body135_cpu")
    parser.add_argument("--height", type=int, default=368, help="net input height (a multiple of 8)")
    parser.add_argument("--width", type=int, default=656, help="net input width (a multiple of 16)")
    parser.add_argument("--people", type=int, nargs="+", default=[1, 2, 5, 10, 15, 20])
    parser.add_argument("--crop", type=int, default=368, help="face and hand crop side (a multiple of 8)")
    parser.add_argument(
        "--part-stages", type=int, default=0, help="stages of the face/hand networks (0: as many as the preset)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: PyTorch's default)")
    parser.add_argument("--plot", default="wholebody_runtime.png", help="PNG path of the plot")
    parser.add_argument(
        "--exact-maps", action="store_true", help="parse OpenPose's x8-upsampled maps (default: the stride-8 parse)"
    )
    args = parser.parse_args()
    if args.height % 8 or args.width % 16 or args.crop % 8 or min(args.height, args.width, args.crop) <= 0:
        parser.error("--height and --crop must be positive multiples of 8, --width a positive multiple of 16")
    if args.runs < 1 or args.warmup < 0 or min(args.people) < 1:
        parser.error("--runs and --people must be >= 1, --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the preset's "random weights" warning: said below
        predictor = WholeBodyPredictor(args.preset, net_height=args.height, exact_maps=args.exact_maps)
    config = predictor.config
    image = np.random.default_rng(0).integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
    prepared = prepare_input(image, args.height)
    if prepared.bgr.shape[:2] != (args.height, args.width) or prepared.scale != 1.0:
        raise SystemExit(f"preprocessing gave a {prepared.bgr.shape[:2]} net input, not {args.height}x{args.width}")
    single_net = predictor.net
    wrapper = RenderedOutputs(single_net)
    predictor.net = wrapper
    specs = stage_specs(config, args.part_stages)
    multi = MultiNetwork(
        body_net=build_wholebody_net(replace(config, num_heatmaps=BODY_PARTS + 1, num_pafs=2 * len(BODY25_PAIRS))),
        face_net=KeypointNet(build_wholebody_net(config).trunk, specs, FACE_POINTS + 1),
        hand_net=KeypointNet(build_wholebody_net(config).trunk, specs, HAND_POINTS + 1),
        crop=args.crop,
        assembly=predictor.assembly,
        exact_maps=args.exact_maps,
    )
    for net in (multi.body_net, multi.face_net, multi.hand_net):
        net.eval()

    paf_stages, cm_stages = len(config.paf_widths), len(config.cm_widths)
    print(f"torch {torch.__version__}, CPU, {torch.get_num_threads()} threads; RANDOM weights (times only)")
    print(
        f"net input {args.height}x{args.width} (fixed); median of {args.runs} runs after {args.warmup} warm-up"
        " call(s) per people count, single and multi calls alternating"
    )
    print(
        f"single network ({args.preset}): {describe(config)}, {paf_stages} PAF + {cm_stages} CM stages"
        f" -> 135 heatmaps + 304 PAFs, {millions(single_net)}"
    )
    print(
        "  assembly: the predictor's, on OpenPose ground-truth maps of the n people (they replace the random"
        " outputs after the forward pass); "
        + ("OpenPose's x8-upsampled maps (--exact-maps)" if args.exact_maps else "parsed from the stride-8 maps")
    )
    print(
        "multi-network body: the same architecture -> 26 heatmaps + 52 PAFs (BODY_25-like),"
        f" {millions(multi.body_net)}; assembly of 25 parts / 26 pairs on the people's ground-truth maps"
    )
    print(
        f"multi-network face/hand: per person 1 face + 2 hand crops {args.crop}x{args.crop}, one network call each:"
        f" {describe(config)} + {describe_stages(specs)} -> 71 (face, {millions(multi.face_net)}) / 22 (hand,"
        f" {millions(multi.hand_net)}) heatmaps; fixed detections: exactly n faces and 2n hands"
    )
    print()
    print(f"{'':>6} | {'single network':<45} | {'multi-network':<36} |")
    print(
        f"{'people':>6} | {'network ms':>10} {'maps ms':>7} {'assembly ms':>11} {'total ms':>8} {'found':>5} |"
        f" {'body ms':>8} {'face+hand ms':>12} {'total ms':>8} {'found':>5} | {'multi/single':>12}"
    )
    rows: list[Row] = []
    labeled = np.ones(NUM_BODY135, dtype=bool)
    for count in args.people:
        people = scene(count, args.height, args.width)
        targets = make_targets(people, (args.height, args.width), labeled)
        wrapper.heatmaps = torch.from_numpy(targets.heatmaps)[None]
        wrapper.pafs = torch.from_numpy(targets.pafs)[None]
        body_maps = body25_maps(targets.heatmaps, targets.pafs)
        boxes = [(face_box(p), *(hand_box(p, *arm) for arm in HANDS)) for p in people]
        for _ in range(args.warmup):
            single_call(predictor, image)
            multi_call(multi, prepared, body_maps, boxes)
        single: list[tuple[float, float, float, int]] = []
        several: list[tuple[float, float, int]] = []
        for _ in range(args.runs):
            single.append(single_call(predictor, image))
            several.append(multi_call(multi, prepared, body_maps, boxes))
        row = Row(
            people=count,
            network=ms([s[0] for s in single]),
            maps=ms([s[1] for s in single]),
            assembly=ms([s[2] for s in single]),
            single=ms([s[0] + s[1] + s[2] for s in single]),
            single_found=single[-1][3],
            body=ms([m[0] for m in several]),
            parts=ms([m[1] for m in several]),
            multi=ms([m[0] + m[1] for m in several]),
            multi_found=several[-1][2],
        )
        rows.append(row)
        print(
            f"{count:>6} | {row.network:>10.1f} {row.maps:>7.1f} {row.assembly:>11.1f} {row.single:>8.1f}"
            f" {row.single_found:>5} |"
            f" {row.body:>8.1f} {row.parts:>12.1f} {row.multi:>8.1f} {row.multi_found:>5} |"
            f" {row.multi / row.single:>12.2f}",
            flush=True,
        )

    first, last = rows[0].people, rows[-1].people
    single_change, multi_change = change(rows, "single"), change(rows, "multi")
    print()
    spread = 100.0 * max(abs(r.network / rows[0].network - 1.0) for r in rows)  # every row against the first
    verdict = "within" if spread <= 10 else "NOT within"
    print(f"single network, forward pass: largest change from {first} people over all rows: {spread:.1f} %:")
    print(f"  {verdict} the claimed 10 %")
    print(f"single network with its assembly {first}->{last} people: {single_change:+.1f} %")
    print(f"multi-network {first}->{last} people: {multi_change:+.1f} %")
    print(
        f"single network, forward pass alone {first}->{last}: {change(rows, 'network'):+.1f} %;"
        f" its maps {rows[0].maps:.1f} -> {rows[-1].maps:.1f} ms, assembly {rows[0].assembly:.1f} ->"
        f" {rows[-1].assembly:.1f} ms"
    )
    print(f"the multi-network takes {rows[-1].multi / rows[-1].single:.1f}x the single network's time at {last} people")
    print(f"multi-network face + 2 hands per person: {rows[-1].parts / rows[-1].people:.1f} ms (at {last} people)")
    title = (
        f"{args.preset} at {args.height}x{args.width} vs multi-network ({args.crop}px crops)\n"
        f"random weights, {torch.get_num_threads()} thread(s), median of {args.runs} run(s)"
    )
    plot(rows, args.plot, title)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
