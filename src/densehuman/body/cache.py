"""Where the built body surface is cached, and a summary of a cached surface read without loading all of it.

Light on purpose (NumPy only): ``densehuman body info`` and the cache path of other tools should not wait for
SciPy, Anny or PyTorch.
"""

from __future__ import annotations

import json
import os
import zipfile
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

# Bump whenever a change to densehuman.body.build changes what a build produces: caches of other versions are ignored.
BODY_SURFACE_VERSION = 2
DEFAULT_GEODESIC_VERTICES = 4000


def cache_dir() -> Path:
    """Where densehuman caches built data: $DENSEHUMAN_CACHE_DIR, else $XDG_CACHE_HOME/densehuman, else ~/.cache."""
    if os.environ.get("DENSEHUMAN_CACHE_DIR"):
        return Path(os.environ["DENSEHUMAN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "densehuman"


def anny_version() -> str:
    try:
        return importlib_metadata.version("anny")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def cache_path(geodesic_vertices: int = DEFAULT_GEODESIC_VERTICES) -> Path:
    """The cache file of the body surface for this code version, Anny version and table size."""
    name = f"body_surface_v{BODY_SURFACE_VERSION}_anny{anny_version()}_g{geodesic_vertices}.npz"
    return cache_dir() / name


def surface_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The figures ``densehuman body info`` prints, from a file written by ``BodySurface.save``: its metadata (the
    build's per-chart distortion report) and the mesh counts, read from the small members only (not the geodesic
    table, which is most of the file)."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as data:
            metadata = json.loads(data["metadata_json"].tobytes().decode())
            faces = data["faces"]
            return {
                "metadata": metadata,
                "vertices": int(data["vertices"].shape[0]),
                "skin_vertices": int(np.unique(faces).size),
                "faces": int(faces.shape[0]),
                "geodesic_table_vertices": int(data["geodesic_vertices"].size),
            }
    except FileNotFoundError:
        raise
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{p}: cannot read body surface ({err})") from err
