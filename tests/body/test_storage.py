from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from densehuman.body.build import cache_path
from densehuman.body.surface import BodySurface


def test_save_load_round_trip(surface: BodySurface, tmp_path: Path) -> None:
    path = tmp_path / "surface.npz"
    surface.save(path)
    loaded = BodySurface.load(path)
    for name in ("vertices", "faces", "face_chart", "corner_uv", "geodesic_table", "uv_table_uv"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(surface, name))
    assert loaded.metadata == surface.metadata
    assert [p.name for p in tmp_path.iterdir()] == ["surface.npz"]  # no temporary file left behind


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.npz"):
        BodySurface.load(tmp_path / "missing.npz")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=r"corrupt\.npz"):
        BodySurface.load(corrupt)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(ValueError, match=r"other\.npz.*missing"):
        BodySurface.load(other)


def test_cache_path_is_versioned(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DENSEHUMAN_CACHE_DIR", str(tmp_path))
    path = cache_path(4000)
    assert path.parent == tmp_path
    assert "_v" in path.name
    assert "g4000" in path.name
