"""The detector's trunk (backbone + neck) as one FX graph: what graph-mode quantization and export work on.

timm's ``feature_location="expansion"`` takes features with forward hooks (the input of each stage's last
pointwise-linear convolution), and FX tracing does not run hooks. ``trace_trunk`` traces the backbone with a tracer
that records, at each hooked module, the value the hook would have seen, and makes those the backbone's outputs; the
neck is traced on top. The graph computes exactly what the eager trunk computes (tests compare them).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, fx, nn

from densehuman.models.backbones import TimmBackbone
from densehuman.models.detector import Detector


class Trunk(nn.Module):
    """Backbone then neck: a normalized batch (N, 3, H, W) -> the neck's maps as a tuple, in ``names`` order."""

    def __init__(self, backbone: nn.Module, neck: nn.Module | None, names: tuple[str, ...]) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.names = names

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        maps = self.backbone(x)
        if self.neck is not None:
            maps = self.neck(maps)
        return tuple(maps[name] for name in self.names)


class _HookedFeatureTracer(fx.Tracer):
    """Traces through everything, and records the input (``forward_pre`` hooks) or output (``forward``) of the
    modules timm hooks its features on."""

    def __init__(self, hooked: dict[str, str]) -> None:
        super().__init__()
        self.hooked = hooked
        self.captured: dict[str, fx.Proxy] = {}

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return module_qualified_name in self.hooked or super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        name = self.path_of_module(m)
        if self.hooked.get(name) == "forward_pre":
            self.captured[name] = args[0]
        result = super().call_module(m, forward, args, kwargs)
        if self.hooked.get(name) == "forward":
            self.captured[name] = result
        return result


class _HookedBody(nn.Module):
    """What timm's hook-based feature models run: the stem, then the blocks (their outputs come from hooks)."""

    def __init__(self, backbone: TimmBackbone) -> None:
        super().__init__()
        self.body: Any = backbone.body

    def forward(self, x: Tensor) -> None:
        x = self.body.conv_stem(x)
        x = self.body.bn1(x)
        self.body.blocks(x)


def trace_backbone(backbone: nn.Module) -> fx.GraphModule:
    """The backbone as a graph returning ``{res{k}: map}``; timm's hook-based features become graph outputs."""
    hooks = getattr(getattr(backbone, "body", None), "feature_hooks", None)
    if not isinstance(backbone, TimmBackbone) or hooks is None:
        return fx.symbolic_trace(backbone)
    if not all(hasattr(backbone.body, m) for m in ("conv_stem", "bn1", "blocks")):
        raise ValueError(f"{type(backbone.body).__name__}: hook-based features of an unknown layout cannot be traced")
    body: Any = backbone.body
    info = body.feature_info.get_dicts()
    hooked = {f"body.{d['module']}": d.get("hook_type", "forward") for d in info}
    root = _HookedBody(backbone)
    tracer = _HookedFeatureTracer(hooked)
    graph = tracer.trace(root)
    missing = [n for n in hooked if n not in tracer.captured]
    if missing:
        raise ValueError(f"tracing the backbone did not reach its feature modules {missing}")
    output = next(n for n in graph.nodes if n.op == "output")
    features = {name: tracer.captured[module].node for name, module in zip(backbone.names, hooked, strict=True)}
    output.args = (features,)
    module = fx.GraphModule(root, graph)
    module.graph.eliminate_dead_code()
    module.recompile()
    return module


def trace_trunk(model: Detector) -> fx.GraphModule:
    """The model's backbone + neck as one graph: normalized batch -> tuple of the neck's maps (``output_names``)."""
    names = tuple((model.neck or model.backbone).output_shapes())
    trunk = Trunk(trace_backbone(model.backbone), model.neck, names)
    graph = fx.symbolic_trace(trunk)
    graph.output_names = names  # type: ignore[assignment]
    return graph
