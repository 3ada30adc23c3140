"""Running detectron2 DensePose checkpoints without detectron2: read the files, translate the config, map every
tensor, and convert to densehuman checkpoints (``densehuman convert detectron2``).

The names are imported on first use, so that ``densehuman.engine.detectron2.cli`` (the command line's parser) does
not load PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from densehuman.engine.detectron2.config import UnsupportedModelError, config_from_detectron2, load_detectron2_yaml
    from densehuman.engine.detectron2.convert import (
        ImportedModel,
        convert_detectron2,
        is_detectron2_checkpoint,
        load_detectron2_model,
    )
    from densehuman.engine.detectron2.reader import Detectron2Weights, read_detectron2_weights
    from densehuman.engine.detectron2.weights import MappingReport, WeightMismatchError
    from densehuman.engine.detectron2.zoo import zoo_config, zoo_names

_HOMES = {
    "config": ("UnsupportedModelError", "config_from_detectron2", "load_detectron2_yaml"),
    "convert": ("ImportedModel", "convert_detectron2", "is_detectron2_checkpoint", "load_detectron2_model"),
    "reader": ("Detectron2Weights", "read_detectron2_weights"),
    "weights": ("MappingReport", "WeightMismatchError"),
    "zoo": ("zoo_config", "zoo_names"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "Detectron2Weights",
    "ImportedModel",
    "MappingReport",
    "UnsupportedModelError",
    "WeightMismatchError",
    "config_from_detectron2",
    "convert_detectron2",
    "is_detectron2_checkpoint",
    "load_detectron2_model",
    "load_detectron2_yaml",
    "read_detectron2_weights",
    "zoo_config",
    "zoo_names",
]


def __getattr__(name: str) -> Any:
    if name in _MODULE_OF:
        return getattr(importlib.import_module(f"densehuman.engine.detectron2.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
