"""``densehuman train`` for the BODY_135 whole-body network (``WholeBodyTrainConfig``).

The mix of partial datasets (``MixtureSampler`` over ``WholeBodyTrainingSet``) feeds a ``DataLoader``; Adam with a
warm-up and multistep decay minimises the masked L2 loss of every stage (``wholebody_loss``). The run folder is laid
out as the region models' (``engine.trainer``): ``config.yaml``, ``metrics.jsonl``, ``model_{it:07d}.safetensors``
(metadata ``format: densehuman-wholebody-1``, ``config``: the ``WholeBodyNetConfig`` as JSON, ``train_config``,
``iteration``) with its ``.state.safetensors`` (Adam, scheduler, RNG), ``last_checkpoint``, ``losses.png``,
``eval_{it:07d}.json`` (COCO-WholeBody AP per part on the validation split) with the results it scored
(``results_{it:07d}.json``) and ``result.json``.

Resume is exact: the sampler's stream and every augmentation are functions of (seed, position), so a run resumed
from iteration k sees the batches an uninterrupted run sees, and the optimizer, scheduler and RNG states come back.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader
from tqdm import tqdm

from densehuman import atomic
from densehuman.data.wholebody import WholeBodySource
from densehuman.data.wholebody_mix import MixtureSampler, WholeBodyDataConfig
from densehuman.data.wholebody_transforms import WholeBodyTrainingSet
from densehuman.engine.checkpoint import last_checkpoint, load_training_state, load_weights
from densehuman.engine.schedule import build_scheduler
from densehuman.engine.trainer import plot_losses, seed_everything
from densehuman.engine.wholebody_checkpoint import (
    CHECKPOINT_FORMAT,
    check_wholebody_run_dir,
    load_wholebody_checkpoint,
    save_wholebody_checkpoint,
    truncate_metrics,
)
from densehuman.engine.wholebody_config import WholeBodyTrainConfig, wholebody_config_dict
from densehuman.engine.wholebody_eval import evaluate_net, part_aps, val_files
from densehuman.models.bottomup.config import build_wholebody_net
from densehuman.models.bottomup.loss import wholebody_loss
from densehuman.models.bottomup.network import WholeBodyNet

__all__ = ["CHECKPOINT_FORMAT", "load_wholebody_checkpoint", "prepare_wholebody_data", "run_wholebody_training"]

PIXEL_ORIGIN = 0.5  # densehuman synth: pixel i spans [i, i + 1)


def prepare_wholebody_data(config: WholeBodyTrainConfig, data_root: Path) -> WholeBodyDataConfig:
    """Check the dataset folder and resolve the mix over it. A missing partial JSON of a ``densehuman synth``
    dataset is written with ``synth.partial.write_partial`` (saying so); anything else missing is an error."""
    from densehuman.synth.partial import write_partial

    root = Path(data_root)
    if not root.is_dir():
        raise FileNotFoundError(f"--data {root}: no such folder")
    d = config.data
    source = root / "annotations" / f"coco_wholebody_{d.train_split}.json"
    val_json = val_files(root, d.val_split)[0]
    if not val_json.is_file():  # every run ends with an evaluation, as the region models'
        raise FileNotFoundError(f"--data {root}: {val_json.relative_to(root)} is missing (the validation split)")
    mix = d.resolve(root, seed=config.seed)
    missing = [spec for spec in mix.datasets if not spec.annotations.is_file()]
    for spec in missing:  # everything is checked before anything is written
        if not (spec.format == "coco_wholebody" and spec.kind is not None and source.is_file()):
            raise FileNotFoundError(
                f"--data {root}: {spec.annotations.relative_to(root)} is missing (dataset {spec.name!r}; "
                f"is {root} a `densehuman synth` dataset? `densehuman synth-partial` writes the partial files)"
            )
    for spec in missing:
        assert spec.kind is not None
        print(f"{spec.annotations} is missing: writing it from {source.name} (as `densehuman synth-partial` does)")
        write_partial(root, spec.kind, spec.annotations, d.train_split, overwrite=True, seed=0)
    return mix


# ------------------------------------------------------------------------------------------------ building
def build_optimizer(net: WholeBodyNet, config: WholeBodyTrainConfig) -> torch.optim.Adam:
    """Adam; the stages get ``stage_lr_mult`` times the learning rate; no weight decay on normalization layers."""
    s = config.solver
    norm = (torch.nn.BatchNorm2d, torch.nn.GroupNorm, torch.nn.LayerNorm)
    stage_ids = {id(p) for stages in (net.paf_stages, net.cm_stages) for p in stages.parameters()}
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    seen: set[int] = set()
    for module in net.modules():
        for param in module.parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            groups.setdefault((id(param) in stage_ids, isinstance(module, norm)), []).append(param)
    params = [
        {
            "params": ps,
            "lr": s.base_lr * (s.stage_lr_mult if stage else 1.0),
            "weight_decay": 0.0 if is_norm else s.weight_decay,
        }
        for (stage, is_norm), ps in sorted(groups.items())
    ]
    return torch.optim.Adam(params, lr=s.base_lr, betas=s.betas, weight_decay=s.weight_decay)


def build_loader(
    dataset: WholeBodyTrainingSet, mix: WholeBodyDataConfig, config: WholeBodyTrainConfig, start_iter: int
) -> DataLoader[Any]:
    """Endless batches from position ``start_iter * batch_size`` of the mix's stream."""
    batch = config.solver.batch_size
    sampler = MixtureSampler(dataset.sizes, list(mix.probabilities), seed=config.seed, start=start_iter * batch)
    workers = config.data.num_workers
    return DataLoader(
        dataset,  # indexed by MixtureKey
        batch_size=batch,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=False,
        prefetch_factor=2 if workers else None,
        pin_memory=torch.cuda.is_available(),
    )


# ------------------------------------------------------------------------------------------------ the loop
class WholeBodyRun:
    """One training run in ``run_dir`` (already claimed): the network, the optimizer, the loop, the evaluation."""

    def __init__(
        self,
        config: WholeBodyTrainConfig,
        net: WholeBodyNet,
        data_root: Path,
        run_dir: Path,
        device: torch.device,
        progress: bool,
    ) -> None:
        self.config, self.run_dir, self.data_root, self.device, self.progress = (
            config,
            run_dir,
            data_root,
            device,
            progress,
        )
        self.net = net.to(device)
        s = config.solver
        self.optimizer = build_optimizer(self.net, config)
        self.scheduler = build_scheduler(self.optimizer, s.warmup_iters, s.warmup_factor, s.steps, s.gamma)
        self.amp = s.amp and device.type == "cuda"
        self.iteration = 0
        self.lr = 0.0

    def resume(self) -> int:
        path = last_checkpoint(self.run_dir)
        if path is None:
            return 0
        load_weights(path, self.net)
        self.iteration = int(load_training_state(path, self.optimizer, self.scheduler)["iteration"])
        truncate_metrics(self.run_dir / "metrics.jsonl", self.iteration)
        return self.iteration

    def _log(self, record: dict[str, Any]) -> None:
        with (self.run_dir / "metrics.jsonl").open("a") as handle:
            handle.write(json.dumps(record) + "\n")

    def _checkpoint(self) -> None:
        save_wholebody_checkpoint(self.run_dir, self.iteration, self.net, self.config, self.optimizer, self.scheduler)
        plot_losses(self.run_dir)

    def evaluate(self) -> dict[str, float]:
        d = self.config.data
        gt_path, images = val_files(self.data_root, d.val_split)
        figures, results = evaluate_net(
            self.net,
            gt_path,
            images,
            eval_height=d.eval_height,
            max_images=d.eval_max_images,
            pixel_origin=PIXEL_ORIGIN,
            device=self.device,
            progress=self.progress,
        )
        it = self.iteration
        atomic.write_json(self.run_dir / f"results_{it:07d}.json", results)
        atomic.write_json(self.run_dir / f"eval_{it:07d}.json", {"iteration": it, **figures}, indent=1)
        aps = part_aps(figures)
        self._log({"iteration": it, "eval": aps})
        self.net.train()
        return aps

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        s = self.config.solver
        images = batch["image"].to(self.device, non_blocking=True)
        targets = [
            batch[k].to(self.device, non_blocking=True) for k in ("pafs", "paf_weights", "heatmaps", "heatmap_weights")
        ]
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            output = self.net(images)
        output.pafs = [p.float() for p in output.pafs]
        output.heatmaps = [h.float() for h in output.heatmaps]
        losses = wholebody_loss(output, *targets)
        total = losses["total"]
        if not torch.isfinite(total):
            raise FloatingPointError(f"iteration {self.iteration}: the loss is {float(total)}")
        self.lr = float(self.optimizer.param_groups[0]["lr"])  # this iteration's (the scheduler steps after it)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if s.clip_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), s.clip_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.iteration += 1
        return {("total_loss" if k == "total" else f"loss_{k}"): float(v.detach()) for k, v in losses.items()}

    def train(self, loader: DataLoader[Any]) -> dict[str, Any]:
        s = self.config.solver
        bar = tqdm(total=s.max_iter, initial=self.iteration, desc="train", unit="it", disable=not self.progress)
        window: list[dict[str, float]] = []
        last: dict[str, Any] = {}
        started, images_seen = time.perf_counter(), 0
        self.net.train()
        batches = iter(loader)
        try:
            while self.iteration < s.max_iter:
                t0 = time.perf_counter()
                batch = next(batches)
                t_data = time.perf_counter() - t0
                window.append(self.step(batch))
                images_seen += int(batch["image"].shape[0])
                bar.update()
                it = self.iteration
                if it % s.log_period == 0 or it == s.max_iter:
                    elapsed = time.perf_counter() - started
                    mean = {k: round(float(np.mean([w[k] for w in window])), 6) for k in window[0]}
                    last = {
                        "iteration": it,
                        "lr": self.lr,
                        "data_time": round(t_data, 4),
                        "images_per_s": round(images_seen / max(elapsed, 1e-9), 3),
                        **mean,
                    }
                    self._log(last)
                    bar.set_postfix(loss=f"{mean['total_loss']:.4g}", lr=f"{last['lr']:.2e}")
                    window = []
                if s.checkpoint_period and it % s.checkpoint_period == 0 and it < s.max_iter:
                    self._checkpoint()
                if s.eval_period and it % s.eval_period == 0 and it < s.max_iter:
                    self.evaluate()
        finally:
            bar.close()
            del batches  # stops the loader's workers
        self._checkpoint()
        aps = self.evaluate()
        elapsed = time.perf_counter() - started
        return {
            "seconds": elapsed,
            "images_per_s": images_seen / max(elapsed, 1e-9),
            **last,
            "iteration": self.iteration,
            "eval": aps,
        }


def run_wholebody_training(
    config: WholeBodyTrainConfig,
    data_root: Path,
    run_dir: Path,
    resume: bool = False,
    progress: bool = True,
    init: Path | None = None,
    device: torch.device | str | None = None,
) -> dict[str, Any]:
    """Everything ``densehuman train --preset body135...`` does: check the run folder and the data (writing missing
    partial files), build the network (``init``: starting weights, a ``.safetensors`` checkpoint), claim the
    folder, train with checkpoints and evaluations, and return the last logged figures and the final per-part AP.
    Nothing is written to the run folder before every check has passed."""
    run_dir, data_root = Path(run_dir), Path(data_root)
    config = check_wholebody_run_dir(run_dir, config, resume)
    mix = prepare_wholebody_data(config, data_root)
    sources: list[WholeBodySource] = [spec.load() for spec in mix.datasets]
    if not any(len(src) for src in sources):
        raise ValueError(
            f"--data {data_root}: every dataset of the mix is empty ({', '.join(s.name for s in mix.datasets)})"
        )
    dataset = WholeBodyTrainingSet(sources, mix.datasets, seed=config.seed, targets=config.targets)
    seed_everything(config.seed)
    net = build_wholebody_net(config.net)
    resuming = resume and last_checkpoint(run_dir) is not None
    if init is not None and not resuming:
        if Path(init).suffix != ".safetensors":
            raise ValueError(f"--init {init}: the whole-body network starts from a .safetensors checkpoint")
        load_weights(Path(init), net)
    if not resume:
        run_dir.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(wholebody_config_dict(config), sort_keys=False)
        atomic.write_bytes(run_dir / "config.yaml", text.encode())
        if init is not None:
            atomic.write_json(run_dir / "init.json", {"weights": str(init)}, indent=1)
    torch_device = (
        torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    run = WholeBodyRun(config, net, data_root, run_dir, torch_device, progress)
    start = run.resume() if resume else 0
    if start >= config.solver.max_iter:
        print(f"{run_dir} is at iteration {start} already (max_iter {config.solver.max_iter})", file=sys.stderr)
    result = run.train(build_loader(dataset, mix, config, start))
    atomic.write_json(run_dir / "result.json", result, indent=1)
    return result
