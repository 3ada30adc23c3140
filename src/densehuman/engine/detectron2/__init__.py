"""Running detectron2 DensePose checkpoints without detectron2: read the files, translate the config, map every
tensor, and convert to densehuman checkpoints (``densehuman convert detectron2``)."""

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
