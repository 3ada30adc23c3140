"""Shared fixtures: the body surface is built once per machine and cached (see densehuman.body.build)."""

from __future__ import annotations

import os

import pytest

from densehuman.body.build import load_body_surface
from densehuman.body.surface import BodySurface

# The variables .ci/run sets to make this CPU compute like another one (see the `numerics` marker).
CPU_DISPATCH_VARIABLES = (
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "MKL_CBWR",
    "OPENBLAS_CORETYPE",
    "NPY_DISABLE_CPU_FEATURES",
    "OMP_NUM_THREADS",
)


def pytest_report_header() -> list[str]:
    import torch

    forced = [f"{k}={os.environ[k]}" for k in CPU_DISPATCH_VARIABLES if k in os.environ]
    capability = torch.backends.cpu.get_cpu_capability()
    line = f"torch {torch.__version__}, CPU dispatch {capability}, {torch.get_num_threads()} threads"
    return [line + (f" (forced: {' '.join(forced)})" if forced else "")]


@pytest.fixture(scope="session")
def surface() -> BodySurface:
    return load_body_surface(progress=False)
