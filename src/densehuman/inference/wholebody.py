"""Whole-body (OpenPose BODY_135) inference: images in, people with 135 keypoints in original image pixels out.

``WholeBodyPredictor(model)`` loads a densehuman whole-body checkpoint (``save_wholebody_checkpoint``), a BODY_135
``pose_iter_*.caffemodel`` of OpenPose, or a preset name (``body135``, ``body135_cpu``; random weights and a
warning, for tests only). Calling it on an image runs OpenPose's single-scale pipeline (reference notes
``wholebody.md`` §4.1, ``poseExtractorCaffe.cpp`` and ``scaleAndSizeExtractor.cpp``):

1. Net input size: height ``net_height``; width ``16 * round(net_height * W / H / 16)`` (OpenPose's
   ``--net_resolution -1xH``; at least 16).
2. ``s = resizeGetScaleFactor(image, net input) = min((Wn - 1) / (W - 1), (Hn - 1) / (H - 1))`` and the image is
   warped with ``[[s, 0, 0], [0, s, 0]]`` (``cv2.warpAffine``, ``INTER_AREA`` when shrinking, else ``INTER_CUBIC``,
   as ``resizeFixedAspectRatio``) into the top-left corner; the rest is padding with OpenPose's border value, BGR
   ``(0, 0, 0)``, i.e. ``-0.5`` after the normalisation. (OpenPose's C++ pads black; only the CVPR'17 Python demo
   pads grey.)
3. The BGR input is normalised ``value / 256 - 0.5`` (``normalize_openpose``); the final stage's heatmaps and PAFs
   are upsampled x8 (``upsample_maps``) to the net input size and the padding is cropped: the image covers
   ``round(s * W) x round(s * H)`` net pixels (OpenPose's ``netSize``). OpenPose parses the padded maps whole;
   the crop drops peaks in the padding and makes the assembly's short-pair distance ``sqrt(W H) / 150`` that of
   the image's part of the net input.
4. ``assemble`` parses them with ``scale = resizeGetScaleFactor(netSize, image)`` (OpenPose's
   ``scaleNetToOutput``): a keypoint at net pixel ``p`` is reported at ``p * scale + 0.5`` image pixels, the
   ``+ 0.5`` being OpenPose's own offset ("to keep Matlab format"), so the output equals OpenPose's JSON.

Steps 1-2 are ``densehuman.inference.wholebody_preprocess``, steps 1-4 ``wholebody_parse.parse_image``. Missing
keypoints are ``(0, 0, 0)``, as in OpenPose.
People come in OpenPose's order (that of the assembly).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from densehuman import atomic
from densehuman.inference.wholebody_parse import parse_image
from densehuman.inference.wholebody_preprocess import check_net_height
from densehuman.keypoints.layouts import NUM_BODY135, body135_to_wholebody
from densehuman.models.bottomup.assembly import AssemblyConfig
from densehuman.models.bottomup.config import WholeBodyNetConfig, build_wholebody_net
from densehuman.models.bottomup.network import WholeBodyNet

WHOLEBODY_FORMAT = "densehuman-wholebody-1"
# name -> (config, default net input height): 480 rows is OpenPose's BODY_135 setting (``-1x480``), 368 its default
WHOLEBODY_PRESETS: dict[str, tuple[Callable[[], WholeBodyNetConfig], int]] = {
    "body135": (WholeBodyNetConfig.body135, 480),
    "body135_cpu": (WholeBodyNetConfig.body135_cpu, 368),
}
CAFFE_NET_HEIGHT = 480

# Keypoint groups (BODY_135 indices). A hand is OpenPose's 21-point hand: the body wrist as its root (BODY_135 has
# no separate hand root), then its 20 finger points; the face is the 68 iBUG points and the two pupils.
BODY_INDICES = tuple(range(17))
FEET_INDICES = tuple(range(19, 25))
FACE_INDICES = tuple(range(65, 135))
LEFT_HAND_INDICES = (9, *range(25, 45))
RIGHT_HAND_INDICES = (10, *range(45, 65))


# --------------------------------------------------------------------------------------------------- checkpoints
@dataclass(frozen=True)
class WholeBodyCheckpoint:
    """A loaded whole-body checkpoint: the network (weights loaded, eval mode), its config and the stored net input
    height (None when the file has none)."""

    net: WholeBodyNet
    config: WholeBodyNetConfig
    net_height: int | None


def save_wholebody_checkpoint(
    path: str | Path,
    net: WholeBodyNet,
    config: WholeBodyNetConfig,
    *,
    net_height: int | None = None,
    overwrite: bool = False,
    half: bool = False,
) -> Path:
    """Write ``net``'s weights as safetensors with the metadata ``{"format": "densehuman-wholebody-1", "config":
    <WholeBodyNetConfig as JSON>}`` (and ``"net_height"`` when given), atomically. An existing file is an error
    unless ``overwrite``. ``half``: store floating-point tensors as float16 (half the file; loading casts back)."""
    from safetensors.torch import save

    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists (pass overwrite=True to replace it)")
    if net_height is not None:
        check_net_height(net_height)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}
    if half:
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    meta = {"format": WHOLEBODY_FORMAT, "config": json.dumps(dataclasses.asdict(config))}
    if net_height is not None:
        meta["net_height"] = str(int(net_height))
    atomic.write_bytes(target, save(tensors, metadata=meta))
    return target


def _config_from_json(text: str, where: Path) -> WholeBodyNetConfig:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise ValueError(f"{where}: metadata field 'config' is not JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{where}: metadata field 'config' must be a JSON object, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(WholeBodyNetConfig)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ValueError(f"{where}: metadata field 'config': unknown field {key!r}")
        default = getattr(WholeBodyNetConfig(), key)
        if isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise ValueError(f"{where}: metadata field 'config': {key}: expected a list of integers, got {value!r}")
            value = tuple(value)
        elif type(value) is not type(default):
            raise ValueError(
                f"{where}: metadata field 'config': {key}: expected {type(default).__name__}, got {value!r}"
            )
        values[key] = value
    try:
        return WholeBodyNetConfig(**values)
    except ValueError as err:
        raise ValueError(f"{where}: metadata field 'config': {err}") from None


def read_wholebody_metadata(path: str | Path) -> dict[str, str]:
    """The safetensors metadata of ``path`` (errors name the file)."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such whole-body checkpoint")
    try:
        with safe_open(str(p), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(f"{p}: not a readable safetensors checkpoint ({err})") from None


def load_wholebody_checkpoint(path: str | Path) -> WholeBodyCheckpoint:
    """Read a checkpoint written by ``save_wholebody_checkpoint`` (or by whole-body training, which writes the same
    format with more metadata): its config is rebuilt and every weight must fit (no missing, unexpected or reshaped
    tensors). Every problem is an error naming the file (and field)."""
    from safetensors.torch import load_file

    p = Path(path)
    meta = read_wholebody_metadata(p)
    kind = meta.get("format")
    if kind != WHOLEBODY_FORMAT:
        what = f"its metadata format is {kind!r}" if kind else "its metadata has no 'format'"
        raise ValueError(f"{p}: not a densehuman whole-body checkpoint ({what}, expected {WHOLEBODY_FORMAT!r})")
    if "config" not in meta:
        raise ValueError(f"{p}: metadata field 'config' is missing")
    config = _config_from_json(meta["config"], p)
    net_height = None
    if "net_height" in meta:
        try:
            net_height = check_net_height(int(meta["net_height"]))
        except ValueError as err:
            raise ValueError(f"{p}: metadata field 'net_height': {err}") from None
    else:
        net_height = _training_eval_height(meta)
    try:
        tensors = load_file(str(p))
    except Exception as err:
        raise ValueError(f"{p}: not a readable safetensors checkpoint ({err})") from None
    net = build_wholebody_net(config)
    _load_state(net, tensors, p)
    return WholeBodyCheckpoint(net.eval(), config, net_height)


def _training_eval_height(meta: dict[str, str]) -> int | None:
    """A training checkpoint's (``engine.wholebody_checkpoint``) evaluation input height, ``train_config`` ->
    ``data.eval_height``, when it is a usable net height (0 there means "the image size")."""
    try:
        height = json.loads(meta.get("train_config", "{}")).get("data", {}).get("eval_height")
        return check_net_height(height)
    except (ValueError, AttributeError, RecursionError):
        return None


def _load_state(net: WholeBodyNet, tensors: dict[str, torch.Tensor], where: Path) -> None:
    state = net.state_dict()
    missing = sorted(set(state) - set(tensors))
    unexpected = sorted(set(tensors) - set(state))
    reshaped = [k for k in state if k in tensors and tuple(tensors[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or reshaped:
        parts = [
            f"{label} {names[:5]}" + (f" (+{len(names) - 5})" if len(names) > 5 else "")
            for label, names in (("missing", missing), ("unexpected", unexpected), ("reshaped", reshaped))
            if names
        ]
        raise ValueError(f"{where}: weights do not fit the stored config's network: {'; '.join(parts)}")
    net.load_state_dict(tensors, strict=True)


# ------------------------------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class WholeBodyPerson:
    """One person: ``keypoints`` (135, 3) x, y (original image pixels), peak score in BODY_135 order (zeros where
    missing), and the assembly's ``score``. The groups are views in the same rows."""

    keypoints: np.ndarray
    score: float

    def __post_init__(self) -> None:
        if np.shape(self.keypoints) != (NUM_BODY135, 3):
            raise ValueError(f"keypoints must have shape ({NUM_BODY135}, 3), got {np.shape(self.keypoints)}")

    @property
    def body(self) -> np.ndarray:
        """(17, 3) the COCO body points (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles)."""
        return self.keypoints[list(BODY_INDICES)]

    @property
    def feet(self) -> np.ndarray:
        """(6, 3) left big toe, small toe, heel, then the right ones."""
        return self.keypoints[list(FEET_INDICES)]

    @property
    def face(self) -> np.ndarray:
        """(70, 3) the 68 iBUG face points, then the right and left pupils (OpenPose's 70-point face)."""
        return self.keypoints[list(FACE_INDICES)]

    @property
    def left_hand(self) -> np.ndarray:
        """(21, 3) OpenPose's hand layout: the left wrist, then thumb, index, middle, ring, pinky (4 points each)."""
        return self.keypoints[list(LEFT_HAND_INDICES)]

    @property
    def right_hand(self) -> np.ndarray:
        """(21, 3) as ``left_hand``, for the right hand."""
        return self.keypoints[list(RIGHT_HAND_INDICES)]

    def wholebody(self) -> np.ndarray:
        """(133, 3) in COCO-WholeBody order (hand roots from the body wrists)."""
        return body135_to_wholebody(self.keypoints)


@dataclass(frozen=True)
class WholeBodyResult:
    """The people of one image; ``image_size`` (H, W), ``net_input_size`` (H, W) of the padded net input,
    ``scale`` image -> net input pixels, and the time spent in the network (``network_seconds``, including the copy
    of its outputs off the device), on the maps (``maps_seconds``: heatmap peaks and PAF resizing, or with
    ``exact_maps`` the full x8 upsampling and peaks) and in the assembly (``assembly_seconds``: PAF connections,
    people, filters)."""

    people: list[WholeBodyPerson]
    image_size: tuple[int, int]
    net_input_size: tuple[int, int]
    scale: float
    network_seconds: float
    assembly_seconds: float
    maps_seconds: float = 0.0


# ---------------------------------------------------------------------------------------------------- predictor
def is_caffemodel(model: str | Path) -> bool:
    return Path(model).suffix.lower() == ".caffemodel"


def _load_model(model: str | Path) -> tuple[torch.nn.Module, WholeBodyNetConfig, int]:
    path = Path(model)
    if path.is_dir():  # a training run folder: its newest checkpoint
        from densehuman.engine.checkpoint import last_checkpoint

        newest = last_checkpoint(path)
        if newest is None:
            raise FileNotFoundError(f"{path}: run folder without a checkpoint (no last_checkpoint file)")
        path = newest
    if path.is_file() and path.suffix.lower() == ".onnx":
        from densehuman.export.wholebody_onnx import load_wholebody_onnx

        session, meta = load_wholebody_onnx(path)
        if "config" not in meta:
            raise ValueError(f"{path}: whole-body ONNX export without its 'config' metadata")
        stored = meta.get("net_height", "")
        if not stored.isdigit():
            raise ValueError(f"{path}: metadata field 'net_height' must be an integer, got {stored!r}")
        return session, _config_from_json(meta["config"], path), int(stored)
    if path.is_file() and is_caffemodel(path):
        from densehuman.models.bottomup.caffe_weights import load_caffe_weights

        config = WholeBodyNetConfig.body135()
        net = build_wholebody_net(config)
        load_caffe_weights(net, path)
        return net, config, CAFFE_NET_HEIGHT
    if path.is_file():
        loaded = load_wholebody_checkpoint(path)
        height = loaded.net_height if loaded.net_height is not None else WHOLEBODY_PRESETS["body135_cpu"][1]
        return loaded.net, loaded.config, height
    if isinstance(model, str) and model in WHOLEBODY_PRESETS:
        make, height = WHOLEBODY_PRESETS[model]
        warnings.warn(
            f"WholeBodyPredictor({model!r}) has no checkpoint: the network has RANDOM weights (useful for tests only)",
            stacklevel=3,
        )
        config = make()
        return build_wholebody_net(config), config, height
    raise FileNotFoundError(
        f"{model}: no such whole-body checkpoint or .caffemodel, and not a whole-body preset "
        f"(presets: {', '.join(WHOLEBODY_PRESETS)})"
    )


def _as_rgb(image: Any, bgr: bool) -> np.ndarray:
    from densehuman.inference.predictor import _as_rgb as as_rgb

    return as_rgb(image, bgr)


class WholeBodyPredictor:
    """OpenPose BODY_135 inference, one image at a time (module docstring).

    Args:
        model: a densehuman whole-body checkpoint (``.safetensors`` by ``save_wholebody_checkpoint`` or whole-body
            training; a training run folder gives its ``last_checkpoint``), an OpenPose
            BODY_135 ``.caffemodel`` (loaded into ``WholeBodyNetConfig.body135()``), or a preset name
            (``WHOLEBODY_PRESETS``; random weights with a warning: for tests only).
        net_height: net input height (a multiple of 8); default the checkpoint's stored value (``net_height``, or
            a training checkpoint's evaluation height), 480 for a caffemodel and ``body135``, 368 for
            ``body135_cpu`` and for checkpoints without one.
        device: torch device, e.g. ``"cpu"`` or ``"cuda"``.
        assembly: the parsing constants (default OpenPose's; ``AssemblyConfig.maximizing_positives()`` for
            ``--maximize_positives``).
        exact_maps: parse OpenPose's fully upsampled maps (``parse_image``); default the fast equivalent.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        net_height: int | None = None,
        device: str = "cpu",
        assembly: AssemblyConfig | None = None,
        exact_maps: bool = False,
    ) -> None:
        net, config, default_height = _load_model(model)
        self.net_height = check_net_height(default_height if net_height is None else net_height)
        self.config = config
        self.device = torch.device(device)
        self.net: torch.nn.Module = net.to(self.device).eval()
        self.assembly = assembly or AssemblyConfig()
        self.exact_maps = exact_maps
        self.model = str(model)

    def __call__(self, image: Any, *, bgr: bool = False) -> WholeBodyResult:
        """One image: numpy uint8 (H, W, 3) RGB (BGR with ``bgr=True``; grayscale and RGBA accepted), a PIL image
        or a path."""
        rgb = _as_rgb(image, bgr)
        parsed = parse_image(
            self.net, rgb, self.net_height, device=self.device, assembly=self.assembly, exact_maps=self.exact_maps
        )
        people = [WholeBodyPerson(k, float(s)) for k, s in zip(parsed.keypoints, parsed.scores, strict=True)]
        return WholeBodyResult(
            people,
            (rgb.shape[0], rgb.shape[1]),
            parsed.net_size,
            parsed.prepared.scale,
            parsed.network_seconds,
            parsed.assembly_seconds,
            parsed.maps_seconds,
        )
