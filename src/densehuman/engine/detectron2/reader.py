"""Reading detectron2 checkpoint files without detectron2: the model-zoo pickles and ``.pth`` training outputs.

Model-zoo files (``model_final_<hash>.pkl``) are pickles of ``{"model": {name: numpy array}, "__author__": ...,
"matching_heuristics": bool}``; detectron2's own training writes ``model_*.pth`` with ``torch.save`` of
``{"model": state_dict, "optimizer": ..., "scheduler": ..., "iteration": int}``. Neither is unpickled with the
general unpickler: pickles go through one that only rebuilds numpy arrays and plain containers, ``.pth`` files
through ``torch.load(weights_only=True)``, so a checkpoint cannot run code on load.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

# What a model-zoo pickle may contain: numpy arrays and scalars, and plain containers.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a weights pickle holds only arrays")


@dataclass(frozen=True)
class Detectron2Weights:
    """The model tensors of a detectron2 checkpoint (float32 CPU tensors, detectron2 names) and where they came from.

    ``extra`` holds the file's other top-level entries that are plain values (``__author__``, ``iteration``...).
    """

    path: Path
    tensors: dict[str, torch.Tensor]
    extra: dict[str, Any] = field(default_factory=dict)


def _to_tensor(path: Path, name: str, value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
    elif isinstance(value, np.ndarray):
        if value.dtype == object or not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
            raise ValueError(f"{path}: entry {name!r} is an array of {value.dtype}, not numbers")
        tensor = torch.from_numpy(np.ascontiguousarray(value))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        tensor = torch.tensor(value)
    else:
        raise ValueError(f"{path}: entry {name!r} of the model is a {type(value).__name__}, not an array")
    return tensor.float() if tensor.is_floating_point() else tensor


def _read_pickle(path: Path, data: bytes) -> Any:
    try:
        return _ArrayUnpickler(io.BytesIO(data), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as err:
        raise ValueError(f"{path}: not a readable detectron2 weights pickle ({err})") from err


def _read_torch(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path}: the file holds Python objects besides tensors, which are not loaded for safety ({err}). If you "
            "trust it, keep only its weights: torch.save(torch.load(f, weights_only=False)['model'], 'weights.pth')"
        ) from err
    except (RuntimeError, EOFError, ValueError, OSError) as err:
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({err})") from err


def read_detectron2_weights(path: str | Path) -> Detectron2Weights:
    """The model tensors of a detectron2 ``.pkl`` (model zoo) or ``.pth`` (detectron2 training) checkpoint.

    Accepts ``{"model": {...}, ...}`` and a bare ``{name: array}`` mapping; strips the ``module.`` prefix that
    DistributedDataParallel adds. Detectron1 (Caffe2) pickles (``{"blobs": ...}``) and checkpoints flagged with
    ``matching_heuristics`` (names that detectron2 itself guesses at load time) are refused with the reason.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    data = path.read_bytes()
    if not data:
        raise ValueError(f"{path}: empty file")
    # torch.save writes a zip archive (magic PK) since PyTorch 1.6; anything else is taken for a plain pickle.
    raw = _read_torch(path) if data[:2] == b"PK" else _read_pickle(path, data)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a dict of weights at the top level, got {type(raw).__name__}")
    if "blobs" in raw and "model" not in raw:
        raise ValueError(
            f"{path}: a Detectron1 (Caffe2) pickle; densehuman reads detectron2 checkpoints (the DensePose model zoo "
            "at dl.fbaipublicfiles.com/densepose/ has them)"
        )
    if raw.get("matching_heuristics"):
        raise ValueError(
            f"{path}: flagged 'matching_heuristics' (names detectron2 guesses at load time); load it in detectron2 "
            "and save its state_dict, or convert it with detectron2's tools first"
        )
    model = raw.get("model", raw)
    if not isinstance(model, dict) or not model:
        raise ValueError(f"{path}: the 'model' entry is not a non-empty dict of weights")
    tensors: dict[str, torch.Tensor] = {}
    for name, value in model.items():
        if not isinstance(name, str):
            raise ValueError(f"{path}: weight names must be strings, got {name!r}")
        key = name[len("module.") :] if name.startswith("module.") else name
        tensors[key] = _to_tensor(path, name, value)
    extra = {
        k: v for k, v in raw.items() if k != "model" and isinstance(v, (str, int, float, bool)) and model is not raw
    }
    return Detectron2Weights(path, tensors, extra)
