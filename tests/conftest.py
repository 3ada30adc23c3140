"""Shared fixtures: the body surface is built once per machine and cached (see densehuman.body.build)."""

from __future__ import annotations

import pytest

from densehuman.body.build import load_body_surface
from densehuman.body.surface import BodySurface


@pytest.fixture(scope="session")
def surface() -> BodySurface:
    return load_body_surface(progress=False)
