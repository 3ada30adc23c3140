"""The detectron2 DensePose model zoo: config names, the file hashes of their ``model_final_<hash>.pkl`` downloads,
and the densehuman config of each chart-based model (our presets, with the zoo's depth, head and confidences).

The zoo's files are named ``https://dl.fbaipublicfiles.com/densepose/<config name>/<id>/model_final_<hash>.pkl``, so
a downloaded file tells its config by its hash. Models densehuman does not run (continuous surface embeddings,
animals, the bootstrapping chimp models) are listed too, so their files get a clear refusal.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from densehuman.config import Config
from densehuman.engine.detectron2.config import UnsupportedModelError
from densehuman.models import zoo

# Chart-based (IUV) human models: config name (without the "densepose_rcnn_" prefix) -> file hash.
CHART_MODELS: dict[str, str] = {
    "R_50_FPN_s1x_legacy": "d366fa",
    "R_101_FPN_s1x_legacy": "10af0e",
    "R_50_FPN_s1x": "162be9",
    "R_101_FPN_s1x": "c6ab63",
    "R_50_FPN_DL_s1x": "0ed407",
    "R_101_FPN_DL_s1x": "844d15",
    "R_50_FPN_WC1_s1x": "289019",
    "R_50_FPN_WC2_s1x": "3abe14",
    "R_50_FPN_DL_WC1_s1x": "b1e525",
    "R_50_FPN_DL_WC2_s1x": "60fed4",
    "R_101_FPN_WC1_s1x": "9e47f0",
    "R_101_FPN_WC2_s1x": "5ea023",
    "R_101_FPN_DL_WC1_s1x": "f359f3",
    "R_101_FPN_DL_WC2_s1x": "6e1ed1",
    "R_50_FPN_WC1M_s1x": "48a9d9",
    "R_50_FPN_WC2M_s1x": "d79ada",
    "R_50_FPN_DL_WC1M_s1x": "61971e",
    "R_50_FPN_DL_WC2M_s1x": "7bfb43",
    "R_101_FPN_WC1M_s1x": "0a7287",
    "R_101_FPN_WC2M_s1x": "e354d9",
    "R_101_FPN_DL_WC1M_s1x": "0ebeb3",
    "R_101_FPN_DL_WC2M_s1x": "de6e7a",
}

# Zoo files densehuman refuses, by hash: what they are.
UNSUPPORTED_MODELS: dict[str, str] = {
    **{
        h: "a DensePose bootstrapping model for chimpanzees (evolution/); densehuman runs the human chart models"
        for h in ("9fe1cc", "241ff5", "d689e2", "cb4ac6", "a6a4bf")
    },
    **{
        h: "a continuous surface embedding (CSE) model; densehuman runs the chart-based (IUV) models"
        for h in ("c4ea5f", "5c995f", "e96218", "b236ce", "2c4512", "4637da", "9199f5", "1d3314")
    },
    **{
        h: "a CSE model for animals; densehuman runs the chart-based (IUV) human models"
        for h in ("52f649", "8f8ba2", "6d69b7", "421d28", "6fe5f4", "8c9d99")
    },
}

_NAME = re.compile(r"^(?:densepose_rcnn_)?R_(50|101)_FPN(_DL)?(?:_(WC1|WC2|WC1M|WC2M))?_s1x(_legacy)?$")
_UNSUPPORTED_WORDS = {
    "HRNet": "an HRNet backbone; densehuman runs ResNet-FPN models",
    "HRFPN": "an HRNet backbone; densehuman runs ResNet-FPN models",
    "soft": "a CSE model; densehuman runs the chart-based (IUV) models",
    "cse": "a CSE model; densehuman runs the chart-based (IUV) models",
    "animals": "an animal CSE model; densehuman runs the human chart models",
    "chimps": "an animal CSE model; densehuman runs the human chart models",
    "Atop10": "a bootstrapping (evolution) model; densehuman runs the human chart models",
}


def zoo_names() -> list[str]:
    """The full config names of the supported zoo models, e.g. ``densepose_rcnn_R_50_FPN_s1x``."""
    return [f"densepose_rcnn_{name}" for name in CHART_MODELS]


def canonical_name(name: str) -> str | None:
    """``densepose_rcnn_R_50_FPN_s1x`` for that name with or without the prefix, a ``.yaml`` suffix or folders;
    None if it is not a supported zoo name. Raises :class:`UnsupportedModelError` for zoo models densehuman
    refuses (HRNet, CSE, animals)."""
    *folders, stem = name.replace("\\", "/").split("/")
    stem = stem.removesuffix(".yaml")
    if "cse" in folders:  # configs/cse/ reuses the chart models' names
        raise UnsupportedModelError(f"{name}: {_UNSUPPORTED_WORDS['cse']}")
    for word, why in _UNSUPPORTED_WORDS.items():
        if word.lower() in stem.lower():
            raise UnsupportedModelError(f"{name}: {why}")
    match = _NAME.match(stem)
    if match is None:
        return None
    short = stem.removeprefix("densepose_rcnn_")
    return f"densepose_rcnn_{short}" if short in CHART_MODELS else None


def name_from_file(path: str | Path) -> str | None:
    """The zoo config name of a downloaded ``model_final_<hash>.pkl`` (None for other names)."""
    match = re.search(r"model_final_([0-9a-f]{6})", Path(path).name)
    if match is None:
        return None
    digest = match.group(1)
    if digest in UNSUPPORTED_MODELS:
        raise UnsupportedModelError(f"{path}: {UNSUPPORTED_MODELS[digest]}")
    for name, known in CHART_MODELS.items():
        if known == digest:
            return f"densepose_rcnn_{name}"
    return None


def zoo_config(name: str) -> Config:
    """The densehuman config of a zoo model (full width), from its config name (see :func:`canonical_name`)."""
    full = canonical_name(name)
    if full is None:
        raise ValueError(f"{name}: not a detectron2 DensePose model-zoo name; known: {', '.join(zoo_names())}")
    match = _NAME.match(full)
    assert match is not None  # canonical_name checked
    depth, deeplab, confidence, legacy = match.groups()
    if legacy:
        base = zoo.densepose_rcnn_r50_fpn_legacy()
    elif confidence:
        uv = "iid_iso" if confidence.startswith("WC1") else "indep_aniso"
        base = {
            ("iid_iso", False): zoo.densepose_rcnn_r50_fpn_wc1,
            ("indep_aniso", False): zoo.densepose_rcnn_r50_fpn_wc2,
            ("iid_iso", True): zoo.densepose_rcnn_r50_fpn_wc1m,
            ("indep_aniso", True): zoo.densepose_rcnn_r50_fpn_wc2m,
        }[(uv, confidence.endswith("M"))]()
    else:
        base = zoo.densepose_rcnn_r50_fpn()
    model = base.model
    if deeplab:
        model = replace(model, densepose=replace(model.densepose, head="deeplab"))
    model = replace(model, backbone=replace(model.backbone, depth=int(depth)))
    return replace(base, name=full, model=model)
