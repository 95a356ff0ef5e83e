"""Data-pipeline benchmark: companion's tensor batches against torchvision's DataLoader.

Trains the same MLP VAE (784-400-20, batch 128, Adam lr 1e-3) on MNIST two ways in one run:

    companion    the images are loaded once into one tensor; a batch is one indexing operation
                 (`companion.data.Batches`), and each step is `companion.training.train_step`,
                 the step of `fit` (fused Adam); "companion-bf16" also runs the model's matrix
                 products in bfloat16 (`fit(..., precision="bf16")`), loss and weights in float32
    torchvision  the canonical PyTorch VAE example: `datasets.MNIST(transform=ToTensor())` and a
                 shuffling `DataLoader(batch_size=128)`, one PIL image at a time

The epochs are interleaved (companion 1, torchvision 1, torchvision 2, companion 2, ...), the
order alternating so that neither pipeline always runs first, so a shared machine slows both
alike. Only training is timed; images/s is total images / total training seconds. Both models
start from the same seeded weights, and after every epoch both are scored the same way: the
negative ELBO per test image (BCE summed over pixels + KL, pixels in [0, 1]).

    python bench/pipeline.py                  # 10 epochs -> bench/results/pipeline.{json,md}
    python bench/pipeline.py --quick          # 1 epoch on 2 000 images -> pipeline-quick.*
    python bench/pipeline.py --workers 0 1    # also the DataLoader with one worker process
    python bench/pipeline.py --precisions fp32   # companion in float32 only

On a machine shared with other jobs, pass --threads 1 (or set OMP_WAIT_POLICY=PASSIVE): with
two OpenMP threads on two busy cores, a thread spins while its partner waits for a core, and
every operation slows ten-fold or more, which measures the neighbours rather than the pipeline.

Reference: the PyTorch examples repository, vae/main.py (github.com/pytorch/examples).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import torch
import torchvision
from torchvision import datasets, transforms

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a plain checkout too
from companion import settings  # noqa: E402
from companion.data import Batches, load  # noqa: E402
from companion.losses import elbo_loss  # noqa: E402
from companion.models import MLPVAE  # noqa: E402
from companion.training import evaluate, make_optimizer, train_step  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"min_ratio": 5.0, "max_test_loss": 105.6}  # speed-up over torchvision; loss, 10 epochs


@dataclass
class Config:
    """What one benchmark run trains; None sizes mean the whole split."""
    epochs: int = 10
    train_size: int | None = None
    test_size: int | None = None
    workers: tuple[int, ...] = (0,)   # DataLoader num_workers values to run; 0 is the example's
    precisions: tuple[str, ...] = ("fp32", "bf16")   # companion's precisions to run
    batch_size: int = 128
    lr: float = 1e-3
    latent_dim: int = 20
    seed: int = 0


QUICK = Config(epochs=1, train_size=2000, test_size=1000)   # --quick: a smoke test


@dataclass
class Run:
    """One pipeline's model and optimizer, and what it measured epoch by epoch."""
    name: str
    model: MLPVAE
    optimizer: torch.optim.Optimizer
    precision: str = "fp32"
    epoch_seconds: list[float] = field(default_factory=list)
    epoch_images: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        seconds, images = sum(self.epoch_seconds), sum(self.epoch_images)
        return {"images_per_s": images / seconds, "train_seconds": seconds, "images": images,
                "final_test_loss": self.test_loss[-1], "test_loss": self.test_loss,
                "train_loss": self.train_loss, "epoch_seconds": self.epoch_seconds}


def new_run(name: str, cfg: Config, device: torch.device) -> Run:
    """A freshly initialized VAE (the same weights for every pipeline) and its optimizer:
    companion's (fused) Adam for companion runs, the example's plain Adam otherwise."""
    torch.manual_seed(cfg.seed)
    model = MLPVAE(cfg.latent_dim).to(device).train()
    if name.startswith("companion"):
        precision = "bf16" if name.endswith("bf16") else "fp32"
        return Run(name, model, make_optimizer(model, cfg.lr), precision)
    return Run(name, model, torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999)))


def companion_epoch(run: Run, batches: Batches) -> tuple[float, int, float]:
    """One epoch with companion's batches and fit's step; returns (seconds, images, mean loss)."""
    total, images = torch.zeros(()), 0
    start = time.perf_counter()
    for x, _ in batches:                                         # x: [128, 1, 28, 28], on device
        total += train_step(run.model, run.optimizer, x, precision=run.precision).total * len(x)
        images += len(x)
    return time.perf_counter() - start, images, total.item() / images


def torchvision_loader(cfg: Config, train: bool, workers: int) -> torch.utils.data.DataLoader:
    """The canonical example's pipeline: MNIST with ToTensor() behind a shuffling DataLoader."""
    data = datasets.MNIST(root=str(settings.data_dir()), train=train, download=False,
                          transform=transforms.ToTensor())
    size = cfg.train_size if train else cfg.test_size
    if size is not None:
        data = torch.utils.data.Subset(data, range(min(size, len(data))))
    return torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=train,
                                       num_workers=workers,
                                       generator=torch.Generator().manual_seed(cfg.seed))


def torchvision_epoch(run: Run, loader: torch.utils.data.DataLoader,
                      device: torch.device) -> tuple[float, int, float]:
    """One epoch of the example's training loop; returns (seconds, images, mean loss).

    The loss is companion's elbo_loss, a mean over the batch where the example sums over it;
    Adam's steps do not depend on that constant factor (up to its eps).
    """
    total, images = 0.0, 0
    start = time.perf_counter()
    for x, _ in loader:                                          # x: [128, 1, 28, 28] on the CPU
        x = x.to(device)
        run.optimizer.zero_grad()
        logits, mu, logvar = run.model(x)
        loss = elbo_loss(logits, x, mu, logvar).total
        loss.backward()
        total += loss.item() * len(x)
        run.optimizer.step()
        images += len(x)
    return time.perf_counter() - start, images, total / images


def data_only(batches) -> float:
    """Images/s of one pass over a pipeline's batches with no model: the data cost alone."""
    images, start = 0, time.perf_counter()
    for x, _ in batches:
        images += len(x)
    return images / (time.perf_counter() - start)


def warm_up(device: torch.device, steps: int = 5) -> None:
    """A few steps on a throwaway model, so one-off library start-up costs are not timed."""
    model = MLPVAE(20).to(device)
    optimizer = torch.optim.Adam(model.parameters())
    x = torch.rand(128, 1, 28, 28, device=device)
    for _ in range(steps):
        optimizer.zero_grad()
        model.loss(x).total.backward()
        optimizer.step()


def machine_info(device: torch.device) -> dict:
    """What the numbers depend on: library versions, threads, cores, device, date."""
    return {"torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version(), "threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
            "cpu_count": os.cpu_count(), "cpu": _cpu_model(), "device": str(device),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_benchmark(cfg: Config, progress: bool = True) -> dict:
    """Train both pipelines with interleaved epochs; return the results as a dict."""
    device = settings.device()
    say = print if progress else (lambda *a, **k: None)
    train, test = load("mnist", "train", device), load("mnist", "test", device)
    train = train.subset(cfg.train_size) if cfg.train_size else train
    test = test.subset(cfg.test_size) if cfg.test_size else test
    ours = lambda: Batches(train, cfg.batch_size, shuffle=True, seed=cfg.seed)
    feeds = {("companion" if p == "fp32" else f"companion-{p}"): ours for p in cfg.precisions}
    feeds.update({f"torchvision-w{w}" if w else "torchvision":
                  lambda w=w: torchvision_loader(cfg, True, w) for w in cfg.workers})
    warm_up(device)
    data_rates = {name: data_only(feed()) for name, feed in feeds.items()}  # own copies
    feeds_now = {name: feed() for name, feed in feeds.items()}
    runs = [new_run(name, cfg, device) for name in feeds]
    say(f"{len(train)} training images, {len(test)} test images, {cfg.epochs} epochs, "
        f"{torch.get_num_threads()} threads, device {device}")
    for epoch in range(cfg.epochs):
        order = runs if epoch % 2 == 0 else runs[::-1]
        for run in order:
            if run.name.startswith("companion"):
                seconds, images, loss = companion_epoch(run, feeds_now[run.name])
            else:
                seconds, images, loss = torchvision_epoch(run, feeds_now[run.name], device)
            run.epoch_seconds.append(seconds)
            run.epoch_images.append(images)
            run.train_loss.append(loss)
            run.test_loss.append(evaluate(run.model, test).total)   # not timed
            say(f"epoch {epoch + 1:2d}  {run.name:<15} {images / seconds:8.0f} images/s  "
                f"train loss {loss:7.2f}  test loss {run.test_loss[-1]:7.2f}")
    return _results(cfg, runs, data_rates, len(train), len(test), device)


def _results(cfg: Config, runs: list[Run], data_rates: dict[str, float], n_train: int,
             n_test: int, device: torch.device) -> dict:
    pipelines = {run.name: {**run.summary(), "data_only_images_per_s": data_rates[run.name]}
                 for run in runs}
    base = pipelines["torchvision"] if "torchvision" in pipelines else next(
        p for name, p in pipelines.items() if not name.startswith("companion"))
    for p in pipelines.values():
        p["speedup_over_torchvision"] = p["images_per_s"] / base["images_per_s"]
        p["speedup_median_of_epochs"] = statistics.median(  # robust to bursts of other jobs
            b / a for a, b in zip(p["epoch_seconds"], base["epoch_seconds"]))
        p["data_only_speedup"] = p["data_only_images_per_s"] / base["data_only_images_per_s"]
    targets = {name: {"ratio": p["speedup_over_torchvision"],
                      "ratio_met": p["speedup_over_torchvision"] >= TARGETS["min_ratio"],
                      "test_loss_met": p["final_test_loss"] <= TARGETS["max_test_loss"],
                      "test_loss_not_worse": p["final_test_loss"] <= base["final_test_loss"]}
               for name, p in pipelines.items() if name.startswith("companion")}
    config = {**asdict(cfg), "workers": list(cfg.workers), "precisions": list(cfg.precisions),
              "train_images": n_train, "test_images": n_test}
    return {"config": config, "machine": machine_info(device), "pipelines": pipelines,
            "targets": {**TARGETS, "by_pipeline": targets}}


def markdown(results: dict) -> str:
    """The results as a markdown table with the machine they were measured on."""
    cfg, m, t = results["config"], results["machine"], results["targets"]
    lines = ["# Data-pipeline benchmark: MLP VAE 784-400-20 on MNIST", "",
             f"{cfg['epochs']} epochs on {cfg['train_images']} training images, batch "
             f"{cfg['batch_size']}, Adam lr {cfg['lr']}, epochs interleaved, training time only. "
             f"Test loss: BCE summed over pixels + KL, per image, mean over "
             f"{cfg['test_images']} test images. Speed-up: the row's images/s over torchvision's "
             f"(DataLoader, num_workers=0).",
             "", f"| pipeline | training images/s | speed-up (total) | speed-up (median "
             f"epoch) | test loss after {cfg['epochs']} epochs | data-only images/s |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, p in results["pipelines"].items():
        lines.append(f"| {name} | {p['images_per_s']:,.0f} | {p['speedup_over_torchvision']:.2f}x "
                     f"| {p['speedup_median_of_epochs']:.2f}x | {p['final_test_loss']:.2f} "
                     f"| {p['data_only_images_per_s']:,.0f} |")
    lines.append("")
    for name, r in t["by_pipeline"].items():
        lines.append(f"Targets for {name}: speed-up >= {t['min_ratio']:g}x: "
                     f"{'met' if r['ratio_met'] else 'not met'} ({r['ratio']:.2f}x); test loss "
                     f"<= {t['max_test_loss']:g}: {'met' if r['test_loss_met'] else 'not met'}; "
                     f"no worse than torchvision's: {'yes' if r['test_loss_not_worse'] else 'no'}.")
    lines += ["",
              f"Machine: torch {m['torch']}, torchvision {m['torchvision']}, Python "
              f"{m['python']}, torch threads: {m['threads']} (OMP_WAIT_POLICY "
              f"{m.get('omp_wait_policy', '(default)')}), CPUs: {m['cpu_count']} ({m['cpu']}), "
              f"device {m['device']}, {m['date']}.", "",
              f"Command: `{cfg.get('command', 'python bench/pipeline.py')}`", ""]
    return "\n".join(lines)


def save(results: dict, out: Path, stem: str) -> tuple[Path, Path]:
    """Write <stem>.json and <stem>.md under out; return both paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = out / f"{stem}.json", out / f"{stem}.md"
    paths[0].write_text(json.dumps(results, indent=2) + "\n")
    paths[1].write_text(markdown(results))
    return paths


def main(argv: list[str] | None = None) -> dict:
    """Command line: parse options, run, print the summary, save the results."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--quick", action="store_true",
                    help="1 epoch on 2 000 images, a smoke test (ignores --epochs)")
    ap.add_argument("--workers", type=int, nargs="+", default=[0],
                    help="DataLoader num_workers values for the torchvision pipeline")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"],
                    help="companion's precisions to run")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = replace(QUICK if args.quick else Config(epochs=args.epochs), workers=tuple(args.workers),
                  precisions=tuple(args.precisions))
    results = run_benchmark(cfg)
    options = sys.argv[1:] if argv is None else argv
    results["config"]["command"] = " ".join(["python bench/pipeline.py", *options])
    print()
    for name, p in results["pipelines"].items():
        print(f"{name:<16} {p['images_per_s']:8.0f} images/s   test loss after {cfg.epochs} "
              f"epochs {p['final_test_loss']:.2f}")
    for name, r in results["targets"]["by_pipeline"].items():
        print(f"speed-up of {name} over torchvision: {r['ratio']:.2f}x")
    for path in save(results, args.out, "pipeline-quick" if args.quick else "pipeline"):
        print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
