"""Conv VAE speed benchmark: the slides' BADConvVAE in a plain loop against the course's ConvVAE.

Trains, in one run with interleaved epochs (the order alternating every epoch, so a shared
machine slows every run alike), on the same MNIST images with batch 128 and Adam:

    slides               BADConvVAE(latent 2, Dropout 0.5): the slides' network with the
                         output layer fixed, in a plain loop (zero_grad, forward, backward, step)
    slides-no-dropout    the same network without Dropout, same plain loop
    course               ConvVAE(latent 2, channels 32, 64) with `train_step` (fused Adam,
                         lr 3e-3, the course's setting for this network)
    course-lr1e-3        the same with the sources' lr 1e-3
    course-channels-last the same, weights and inputs in channels_last memory format
    course-bf16          the same, matrix products in bfloat16 (`precision="bf16"`)
    course-compiled      the same, encoder body and decoder wrapped in torch.compile

Only training steps are timed (torch.compile's compilation happens in an untimed warm-up);
images/s is total images / total training seconds. After every epoch each model is scored
the same way: the negative ELBO per test image (Bernoulli NLL summed over pixels + KL).

    python bench/conv.py --threads 1      # -> bench/results/conv.{json,md}
    python bench/conv.py --quick          # a smoke test -> conv-quick.*
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a plain checkout too
from companion.data import Batches, load  # noqa: E402
from companion.introspect import parameter_count  # noqa: E402
from companion.losses import elbo_loss  # noqa: E402
from companion.models import BADConvVAE, ConvVAE  # noqa: E402
from companion.training import evaluate, make_optimizer, train_step  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BASELINE = "slides"
TARGET_RATIO = 2.0   # the course's network must train at least twice as fast ...
# ... at an equal or better test loss (negative ELBO) after the same epochs


@dataclass
class Config:
    """What one benchmark run trains."""
    epochs: int = 2
    train_size: int = 10000
    test_size: int = 10000
    latent_dim: int = 2     # the slides' latent size
    batch_size: int = 128
    seed: int = 0
    runs: tuple[str, ...] = ("slides", "slides-no-dropout", "course", "course-lr1e-3",
                             "course-channels-last", "course-bf16", "course-compiled")


QUICK = Config(epochs=1, train_size=1024, test_size=1000,
               runs=("slides", "course", "course-channels-last"))


@dataclass
class Run:
    """One contender: its model, optimizer, how it steps, and what it measured."""
    name: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    seconds: float = 0.0
    images: int = 0
    compile_seconds: float = 0.0
    test_loss: list[float] = field(default_factory=list)

    @property
    def channels_last(self) -> bool:
        return self.name.endswith("channels-last")

    def step(self, x: torch.Tensor) -> None:
        if self.name.startswith("slides"):              # the plain loop of the slides
            self.optimizer.zero_grad()
            logits, mu, logvar = self.model(x)
            elbo_loss(logits, x, mu, logvar).total.backward()
            self.optimizer.step()
        else:
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            precision = "bf16" if self.name.endswith("bf16") else "fp32"
            train_step(self.model, self.optimizer, x, precision=precision)


def new_run(name: str, cfg: Config) -> Run:
    """A seeded model and its optimizer for the contender called name."""
    torch.manual_seed(cfg.seed)
    if name.startswith("slides"):
        model = BADConvVAE(cfg.latent_dim, dropout=0.0 if "no-dropout" in name else 0.5)
        return Run(name, model, torch.optim.Adam(model.parameters(), lr=1e-3))
    model = ConvVAE(cfg.latent_dim)
    if name.endswith("channels-last"):
        model = model.to(memory_format=torch.channels_last)
    run = Run(name, model, make_optimizer(model, 1e-3 if name.endswith("lr1e-3") else ConvVAE.lr))
    if name.endswith("compiled"):
        model.body, model.decoder = torch.compile(model.body), torch.compile(model.decoder)
    return run


def warm_up(run: Run, x: torch.Tensor, steps: int = 3) -> None:
    """Untimed steps on a copy of the weights (compiles the compiled run); weights restored."""
    state = {k: v.clone() for k, v in run.model.state_dict().items()}
    opt_state = run.optimizer.state_dict()
    start = time.perf_counter()
    run.model.train()
    for _ in range(steps):
        run.step(x)
    run.compile_seconds = time.perf_counter() - start
    run.model.load_state_dict(state)
    run.optimizer.load_state_dict(opt_state)


def run_benchmark(cfg: Config, say=print) -> dict:
    """Train every contender with interleaved epochs; return the results as a dict."""
    train = load("mnist", "train").subset(cfg.train_size)
    test = load("mnist", "test").subset(cfg.test_size)
    runs = [new_run(name, cfg) for name in cfg.runs]
    x0 = train.images[:cfg.batch_size]
    for run in runs:
        warm_up(run, x0)
    say(f"{len(train)} training images, {len(test)} test images, {cfg.epochs} epochs, "
        f"{torch.get_num_threads()} threads")
    for epoch in range(cfg.epochs):
        for run in runs if epoch % 2 == 0 else runs[::-1]:
            run.model.train()
            start = time.perf_counter()
            for x, _ in Batches(train, cfg.batch_size, shuffle=True, seed=cfg.seed + epoch):
                run.step(x)
                run.images += len(x)
            run.seconds += time.perf_counter() - start
            run.test_loss.append(evaluate(run.model, test).total)   # not timed
            say(f"epoch {epoch + 1}  {run.name:<22}{run.images / run.seconds:8.0f} images/s  "
                f"test loss {run.test_loss[-1]:7.2f}")
    return _results(cfg, runs)


def _results(cfg: Config, runs: list[Run]) -> dict:
    base = next(r for r in runs if r.name == BASELINE)
    base_rate = base.images / base.seconds
    rows = {r.name: {"images_per_s": r.images / r.seconds,
                     "speedup": (r.images / r.seconds) / base_rate,
                     "final_test_loss": r.test_loss[-1], "test_loss": r.test_loss,
                     "parameters": parameter_count(r.model), "train_seconds": r.seconds,
                     "warmup_seconds": r.compile_seconds} for r in runs}
    course = rows.get("course")
    met = None if course is None else bool(course["speedup"] >= TARGET_RATIO and
                                           course["final_test_loss"]
                                           <= rows[BASELINE]["final_test_loss"])
    return {"config": asdict(cfg), "runs": rows, "target_ratio": TARGET_RATIO, "target_met": met,
            "machine": {"torch": torch.__version__, "python": platform.python_version(),
                        "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}}


def to_markdown(res: dict, command: str) -> str:
    """The results as a short Markdown report."""
    cfg = res["config"]
    lines = ["# Conv VAE benchmark: the slides' BADConvVAE vs. the course's ConvVAE", "",
             f"{cfg['epochs']} epochs on {cfg['train_size']} MNIST training images, latent "
             f"{cfg['latent_dim']}, batch {cfg['batch_size']}, Adam (lr 1e-3 for slides, {ConvVAE.lr:g} "
             "for course unless named), epochs "
             "interleaved, training time only. Test loss: negative ELBO per image (Bernoulli "
             f"NLL summed over pixels + KL) on {cfg['test_size']} test images.", "",
             "| run | parameters | training images/s | speed-up over slides | test loss |",
             "|---|---:|---:|---:|---:|"]
    for name, r in res["runs"].items():
        lines.append(f"| {name} | {r['parameters']:,} | {r['images_per_s']:,.0f} | "
                     f"{r['speedup']:.2f}x | {r['final_test_loss']:.2f} |")
    verdict = {True: "met", False: "not met", None: "not measured"}[res["target_met"]]
    m = res["machine"]
    lines += ["", f"Target (course >= {res['target_ratio']:.0f}x the images/s of slides at an "
              f"equal or better test loss): {verdict}.", "",
              f"Machine: torch {m['torch']}, Python {m['python']}, torch threads {m['threads']}, "
              f"CPUs {m['cpu_count']}, {m['date']}.", "", f"Command: `{command}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 1-epoch smoke test")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = QUICK if args.quick else Config()
    if args.epochs:
        cfg.epochs = args.epochs
    res = run_benchmark(cfg)
    stem = "conv-quick" if args.quick else "conv"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(res, indent=2))
    command = "python bench/conv.py " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.out / f"{stem}.md").write_text(to_markdown(res, command.strip()))
    print(to_markdown(res, command.strip()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
