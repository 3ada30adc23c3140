"""The training loop: SGD with warm-up and steps, gradient clipping, mixed precision on GPUs, checkpoints with exact
resume, periodic GPS evaluation, a progress bar and a JSON-lines log; DDP under ``torchrun``.

A run folder holds ``config.yaml`` (the resolved config), ``metrics.jsonl`` (one line per logged iteration and per
evaluation), ``model_*.safetensors`` checkpoints with their ``.state.safetensors`` training state,
``last_checkpoint``, ``losses.png`` and ``eval_<iter>.json``.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import yaml
from tqdm import tqdm

from densehuman import atomic
from densehuman.config import Config, from_dict, to_dict
from densehuman.engine.checkpoint import (
    last_checkpoint,
    load_initial_weights,
    load_training_state,
    load_weights,
    save_checkpoint,
)
from densehuman.engine.distributed import DistInfo, barrier, init_distributed, reduce_mean
from densehuman.engine.schedule import build_optimizer, build_scheduler
from densehuman.validation import InputError, read_yaml

T = TypeVar("T")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_run_folder(
    run_dir: Path,
    config: T,
    resume: bool,
    load: Callable[[dict[str, Any]], T],
    dump: Callable[[T], dict[str, Any]],
    what: str = "densehuman run",
) -> T:
    """The config the run will use, once the folder is known to be usable; writes nothing. On resume the stored
    config wins (a changed one is an error naming the sections); a fresh run needs a new or empty folder. ``load``
    and ``dump`` turn the kind of config ``config`` is from and to its ``config.yaml`` dict; ``what`` names the run
    kind in errors."""
    stored = run_dir / "config.yaml"
    if resume:
        if not stored.is_file():
            raise ValueError(f"--resume: {run_dir} holds no run (no config.yaml)")
        data = read_yaml(stored, "run config")
        try:
            if not isinstance(data, dict):
                raise ValueError("the top level is not a mapping")
            saved = load(data)
        except ValueError as err:
            raise InputError(stored, f"not the config of a {what} ({err})") from None
        a, b = dump(saved), dump(config)
        if a != b:
            diff = sorted(k for k in a if a[k] != b.get(k))
            raise ValueError(f"--resume: the run in {run_dir} used another config (sections {', '.join(diff)})")
        return saved
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"{run_dir} is a file; choose a new run folder")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ValueError(f"{run_dir} is not empty; choose a new run folder or pass --resume to continue it")
    return config


def check_run_dir(run_dir: Path, config: Config, resume: bool) -> Config:
    """``check_run_folder`` for the region models' configs."""
    return check_run_folder(run_dir, config, resume, from_dict, to_dict)


def prepare_run_dir(run_dir: Path, config: Config, resume: bool) -> Config:
    """Claim the run folder (``check_run_dir``, then write ``config.yaml`` for a fresh run)."""
    config = check_run_dir(run_dir, config, resume)
    if not resume:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(run_dir / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False).encode())
    return config


class Trainer:
    """Trains ``model`` on batches from ``loader`` (an iterator of (images, targets, meta))."""

    def __init__(
        self,
        config: Config,
        model: torch.nn.Module,
        run_dir: Path,
        info: DistInfo,
        evaluate: Any = None,  # callable(model, iteration) -> dict of figures, run on the main process
        progress: bool = True,
    ) -> None:
        self.config = config
        self.info = info
        self.run_dir = run_dir
        self.model = model.to(info.device)
        self.module = model
        if info.distributed:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[info.device.index] if info.device.type == "cuda" else None
            )
        s = config.solver
        self.optimizer = build_optimizer(self.module, s.base_lr, s.momentum, s.weight_decay)
        self.scheduler = build_scheduler(self.optimizer, s.warmup_iters, s.warmup_factor, s.steps, s.gamma)
        self.amp = s.amp and info.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.evaluate = evaluate
        self.progress = progress and info.is_main
        self.start_iter = 0

    def resume(self) -> int:
        path = last_checkpoint(self.run_dir)
        if path is None:
            return 0
        load_weights(path, self.module)
        state = load_training_state(path, self.optimizer, self.scheduler)
        self.start_iter = state["iteration"]
        return self.start_iter

    def _log(self, record: dict[str, Any]) -> None:
        if not self.info.is_main:
            return
        path = self.run_dir / "metrics.jsonl"
        with path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")

    def _checkpoint(self, iteration: int) -> None:
        if self.info.is_main:
            save_checkpoint(self.run_dir, iteration, self.module, to_dict(self.config), self.optimizer, self.scheduler)
            plot_losses(self.run_dir)
        barrier(self.info)

    def train(self, loader: Any) -> dict[str, Any]:
        s = self.config.solver
        it = self.start_iter
        bar = tqdm(total=s.max_iter, initial=it, desc="train", unit="it", disable=not self.progress)
        data_iter = iter(loader)
        self.model.train()
        window: list[dict[str, float]] = []
        started = time.perf_counter()
        images_seen = 0
        last: dict[str, Any] = {}
        while it < s.max_iter:
            t0 = time.perf_counter()
            images, targets, _ = next(data_iter)
            targets = [t.to(self.info.device) for t in targets]
            images = [im.to(self.info.device) for im in images]
            t_data = time.perf_counter() - t0
            with torch.autocast(self.info.device.type, enabled=self.amp):
                losses = self.model(images, targets)
            total = sum(losses.values())
            if not torch.isfinite(total):
                raise FloatingPointError(f"iteration {it}: the loss is {float(total)} ({_fmt(losses)})")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(total).backward()
            if s.clip_grad_norm > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.module.parameters(), s.clip_grad_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            it += 1
            images_seen += len(images) * self.info.world_size
            window.append({k: float(v.detach()) for k, v in losses.items()} | {"total_loss": float(total.detach())})
            bar.update()
            if it % s.log_period == 0 or it == s.max_iter:
                mean = reduce_mean({k: float(np.mean([w[k] for w in window])) for k in window[0]}, self.info)
                elapsed = time.perf_counter() - started
                record = {
                    "iteration": it,
                    "lr": self.optimizer.param_groups[0]["lr"],
                    "data_time": round(t_data, 4),
                    "images_per_s": round(images_seen / max(elapsed, 1e-9), 3),
                    **{k: round(v, 6) for k, v in mean.items()},
                }
                self._log(record)
                bar.set_postfix(loss=f"{mean['total_loss']:.3f}", lr=f"{record['lr']:.2e}")
                window = []
                last = record
            if s.checkpoint_period and it % s.checkpoint_period == 0 and it < s.max_iter:
                self._checkpoint(it)
            if s.eval_period and it % s.eval_period == 0 and it < s.max_iter:
                self._run_eval(it)
                self.model.train()
        bar.close()
        self._checkpoint(it)
        figures = self._run_eval(it)
        elapsed = time.perf_counter() - started
        return {
            "iteration": it,
            "seconds": elapsed,
            "images_per_s": images_seen / max(elapsed, 1e-9),
            **last,
            **figures,
        }

    def _run_eval(self, iteration: int) -> dict[str, Any]:
        figures: dict[str, Any] = {}
        if self.evaluate is not None and self.info.is_main:
            self.module.eval()
            figures = self.evaluate(self.module, iteration)
            atomic.write_json(self.run_dir / f"eval_{iteration:07d}.json", figures, indent=1)
            summary: dict[str, float] = {m: figures[m]["AP"] for m in ("gps", "gpsm", "iou") if m in figures}
            if "bbox" in figures:
                summary["bbox"] = figures["bbox"]["AP"]
            for key in ("mIoU", "APp50", "APp_vol", "PCP50"):
                if "parsing" in figures and figures["parsing"].get(key) is not None:
                    summary[key] = figures["parsing"][key]
            self._log({"iteration": iteration, "eval": summary})
            figures = {"eval": summary}
        barrier(self.info)
        return figures


def plot_losses(run_dir: Path) -> None:
    """losses.png: every logged loss against the iteration (log scale)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "total_loss" in r]
    if not rows:
        return
    keys = [k for k in rows[-1] if k.startswith("loss") or k == "total_loss"]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    its = [r["iteration"] for r in rows]
    for k in keys:
        values = [r.get(k, math.nan) for r in rows]
        ax.plot(its, values, label=k, lw=2 if k == "total_loss" else 1)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic.write_bytes(run_dir / "losses.png", buf.getvalue())


def _fmt(losses: dict[str, torch.Tensor]) -> str:
    return ", ".join(f"{k} {float(v):.4g}" for k, v in losses.items())


def run_training(
    config: Config,
    data_root: Path,
    run_dir: Path,
    resume: bool = False,
    progress: bool = True,
    init: Path | None = None,
) -> dict[str, Any]:
    """Everything ``densehuman train`` does: set up (DDP from torchrun's environment), build, train, evaluate.

    ``init``: weights to start from (``load_initial_weights``: a densehuman or detectron2 checkpoint); ignored when
    resuming a run that has checkpoints already.
    """
    from densehuman.engine.evaluation import build_evaluator
    from densehuman.engine.inputs import build_training_loader, training_dataset
    from densehuman.models.build import build_model

    info = init_distributed()
    # Everything is checked before the run folder is claimed: a bad config, dataset or --init leaves nothing behind.
    if info.is_main or resume:  # (other ranks: the main one may have claimed the folder already)
        config = check_run_dir(run_dir, config, resume)
    seed_everything(config.seed + info.rank)
    model = build_model(config.model)
    init_line = None
    if init is not None and not (resume and last_checkpoint(run_dir) is not None):
        init_line = load_initial_weights(init, model)
    dataset = training_dataset(config, data_root)
    if config.quantization.qat:
        from densehuman.export.quantize import prepare_qat

        # traced on a few training images (tracing follows the model; it needs detections to reach every head)
        examples = [torch.from_numpy(dataset[k].image.transpose(2, 0, 1).copy()) for k in range(min(2, len(dataset)))]
        prepare_qat(model, examples, config.quantization.backend, config.quantization.freeze_bn_stats)
    evaluator = build_evaluator(config, data_root) if info.is_main else None
    if info.is_main:
        prepare_run_dir(run_dir, config, resume)
        if init_line is not None:
            atomic.write_json(run_dir / "init.json", {"weights": str(init), "note": init_line}, indent=1)
    barrier(info)
    trainer = Trainer(config, model, run_dir, info, evaluate=evaluator, progress=progress)
    start = trainer.resume() if resume else 0
    loader = build_training_loader(config, data_root, info, start_iter=start, dataset=dataset)
    result = trainer.train(loader)
    if info.is_main and config.quantization.qat:
        from densehuman.export.quantize import INT8_FILE, convert, save_int8

        convert(model.cpu().eval())
        result["int8"] = str(save_int8(model, config, run_dir / INT8_FILE, examples))
    if info.is_main:
        atomic.write_json(run_dir / "result.json", result, indent=1)
    return result
