"""Fixtures of the synth tests: the Anny body model is built once per session."""

from __future__ import annotations

import pytest

from densehuman.body.surface import BodySurface
from densehuman.synth.body_model import AnnyBody
from densehuman.synth.label_mesh import LabelledMesh, label_mesh


@pytest.fixture(scope="session")
def anny_body() -> AnnyBody:
    return AnnyBody()


@pytest.fixture(scope="session")
def labelled_mesh(surface: BodySurface, anny_body: AnnyBody) -> LabelledMesh:
    return label_mesh(surface, anny_body.faces)
