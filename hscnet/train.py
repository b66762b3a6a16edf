"""Training (bin/train): HSCNet with Adam as the paper trains it, evaluated every epoch.

Each epoch trains with a progress bar, evaluates on the validation split, and appends a line to
`run_dir/metrics.jsonl` and TensorBoard scalars. `last.pt` is saved after the first and the last
epoch, after every epoch whose validation mIoU improves (then copied to `best.pt`), and otherwise
once `train.checkpoint_seconds` have passed since it was last saved: an epoch of the paper's data
takes minutes, so each is saved, while a run of many one-second epochs (small own data) would
spend half its time writing checkpoints. Ctrl-C finishes the current step, saves `last.pt` and
stops; `--resume run_dir` continues from it and ends with the same weights as an uninterrupted run
(the data order, the sentence sampling and the dropout generator are all restored); lines of
`metrics.jsonl` for epochs after the one `last.pt` holds are dropped then, as those epochs run again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from common.atomic import append_line, atomic_path, recover, write_text
from common.devices import autocast_dtype, resolve_device
from common.errors import InputError, PipelineError
from common.memory import keep_freed_memory
from extract.text import Vocabulary, vocabulary_with_vectors
from hscnet.annotations import load_paragraphs
from hscnet.checkpoint import load_checkpoint, save_checkpoint
from hscnet.config import Config, config_from_dict, load_config, save_config
from hscnet.data import EpochSampler, GroundingDataset, make_loader, tokenize_paragraphs
from hscnet.evaluate import predict, score
from hscnet.features import open_features
from hscnet.losses import total_loss
from hscnet.metrics import format_metrics
from hscnet.model import build_model
from hscnet.prior import SpanPrior

log = logging.getLogger(__name__)


class TrainingDiverged(PipelineError):
    """The loss stopped being a finite number."""


@dataclass
class TrainState:
    """Where a run stands; saved in every checkpoint so that a resumed run continues exactly."""

    epoch: int = 0  # the epoch in progress (epochs are counted from 0)
    step_in_epoch: int = 0  # batches of `epoch` already trained on
    global_step: int = 0
    loss_sums: dict[str, float] = field(default_factory=dict)  # sums over this epoch's steps
    best_miou: float = -1.0
    best_epoch: int = -1
    interrupted: bool = False


def learning_rate(config: Config, step: int, steps_per_epoch: int) -> float:
    """The schedule of `train.lr_schedule`, with linear warm-up, as a function of the step."""
    train = config.train
    rate = train.lr
    if train.lr_schedule == "cosine":
        progress = step / max(1, train.epochs * steps_per_epoch)
        rate *= 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    elif train.lr_schedule == "step":
        rate *= train.lr_gamma ** ((step // steps_per_epoch) // max(1, train.lr_step_epochs))
    elif train.lr_schedule != "constant":
        raise InputError(f"unknown train.lr_schedule {train.lr_schedule!r}: use constant, cosine or step")
    if train.warmup_steps and step < train.warmup_steps:
        rate *= (step + 1) / train.warmup_steps
    return rate


def training_set(config: Config, paragraphs, store, vocab: Vocabulary, words) -> GroundingDataset:
    """The training paragraphs as bin/train samples them (1 to max_sentences, in annotation order,
    or every sentence; their videos whole or cropped: `data.sample_sentences`, `data.crop_videos`)."""
    data = config.data
    return GroundingDataset(
        paragraphs,
        store,
        vocab,
        data.num_clips,
        data.feature_dim,
        data.max_words,
        data.max_sentences,
        config.train.seed,
        data.missing_features,
        str(data.train),
        words,
        sample_sentences=data.sample_sentences,
        crop_videos=data.crop_videos,
    )


class _StopOnInterrupt:
    """Turns the first Ctrl-C into a request to stop after the current step; a second one aborts."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, _signum, _frame):
        self.requested = True
        signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)
        log.warning("interrupt: finishing this step, then saving last.pt (Ctrl-C again aborts without saving)")

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def train(
    config: Config,
    checkpoint: dict | None = None,
    on_step: Callable[[TrainState], bool] | None = None,
    progress: bool = True,
) -> TrainState:
    """Train HSCNet as `config` says, continuing from `checkpoint` when given.

    `on_step(state)` is called after every step; returning True stops the run as Ctrl-C does.
    Returns the final state (`state.interrupted` when it stopped early).
    """
    device = resolve_device(config.train.device)
    if device.type == "cpu":
        keep_freed_memory()  # a step's activations would otherwise be mapped and zero-filled afresh
    dtype = autocast_dtype(config.train.precision, device)
    run_dir = Path(config.run_dir)
    torch.manual_seed(config.train.seed)
    started = time.time()

    if not config.data.train:
        raise InputError("data.train is not set: name the training annotation file (data.train=PATH)")
    if not config.data.features:
        raise InputError("data.features is not set: name a feature store folder or .hdf5 file (data.features=PATH)")
    train_paragraphs = load_paragraphs(config.data.train, config.data.format)
    val_paragraphs = load_paragraphs(config.data.val, config.data.format) if config.data.val else []
    store = open_features(config.data.features)
    feature_spec = store.spec()  # None for released features; a store of mixed specs is refused here
    if feature_spec is not None and feature_spec.dim != config.data.feature_dim:
        raise InputError(
            f"{config.data.features}: holds {feature_spec.dim}-d features ({feature_spec.describe()}); "
            f"data.feature_dim is {config.data.feature_dim}"
        )
    train_words = tokenize_paragraphs(train_paragraphs)
    if checkpoint is None:
        # Validation and test captions lend their words (not their times) to the vocabulary: see
        # vocabulary_with_vectors. The test file is read for its words only.
        test_paragraphs = load_paragraphs(config.data.test, config.data.format) if config.data.test else []
        others = [s for p in tokenize_paragraphs([*val_paragraphs, *test_paragraphs]) for s in p]
        vocab, vectors = vocabulary_with_vectors(
            (s for p in train_words for s in p),
            others,
            config.text.min_count,
            config.text.glove or None,
            config.text.cache_dir or None,
            config.train.seed,
        )
        log.info(vectors.report())
        word_vectors = torch.from_numpy(vectors.matrix)
        prior = SpanPrior.fit(train_paragraphs)
    else:
        vocab = Vocabulary(checkpoint["vocab"])
        word_vectors = torch.zeros_like(checkpoint["model"]["text_encoder.embedding.weight"])  # loaded below
        prior = SpanPrior.from_json(checkpoint["prior"])
    data = config.data
    train_set = training_set(config, train_paragraphs, store, vocab, train_words)
    val_set = None
    if val_paragraphs:
        val_set = GroundingDataset(
            val_paragraphs,
            store,
            vocab,
            data.num_clips,
            data.feature_dim,
            data.max_words,
            missing_features=data.missing_features,
            source=str(data.val),
            chunk_sentences=data.max_sentences,
        )

    model = build_model(config, word_vectors).to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=config.train.lr, weight_decay=config.train.weight_decay)
    state = TrainState()
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        state = TrainState(**checkpoint["state"])
        state.interrupted = False
        torch.set_rng_state(checkpoint["rng"]["torch"])
        if device.type == "cuda" and checkpoint["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])

    for repair in recover(run_dir, logs=("metrics.jsonl",)):
        log.warning(f"{run_dir}: {repair} (left by an interrupted run)")
    if checkpoint is not None:
        dropped = drop_metrics_after(run_dir / "metrics.jsonl", state.epoch)
        if dropped:
            log.warning(
                f"{run_dir / 'metrics.jsonl'}: dropped the lines of epochs {dropped[0]}-{dropped[-1]}, trained after "
                f"last.pt was saved at epoch {state.epoch}; they run again"
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    from torch.utils.tensorboard import SummaryWriter  # imported late: it loads TensorBoard

    writer = SummaryWriter(str(run_dir / "tensorboard"))
    steps_per_epoch = math.ceil(len(train_set) / config.train.batch_size)
    base = {
        "config": config.to_dict(),
        "vocab": vocab.words,
        "prior": prior.to_json(),
        "model_args": model.args.to_json(),
        "feature_spec": feature_spec.to_json() if feature_spec is not None else None,
        "feature_source": str(data.features),
    }
    log.info(
        f"training on {len(train_set)} paragraphs ({steps_per_epoch} steps an epoch), validating on "
        f"{len(val_set) if val_set else 0}; {sum(p.numel() for p in trainable) / 1e6:.2f}M trainable parameters, "
        f"device {device}{', bf16 autocast' if dtype else ''}; run folder {run_dir}"
    )

    last_saved: float | None = None  # time.monotonic() of this process's last write of last.pt

    def save(name: str) -> None:
        rng = {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else []}
        content = {
            **base,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "state": dataclasses.asdict(state),
            "rng": rng,
        }
        save_checkpoint(run_dir / name, content)

    try:
        with _StopOnInterrupt() as interrupt:
            for epoch in range(state.epoch, config.train.epochs):
                state.epoch = epoch
                sampler = EpochSampler(
                    len(train_set), config.train.seed, epoch, skip=state.step_in_epoch * config.train.batch_size
                )
                loader = make_loader(train_set, config.train.batch_size, data.num_workers, sampler, device)
                bar = tqdm(
                    loader,
                    total=steps_per_epoch,
                    initial=state.step_in_epoch,
                    disable=not progress,
                    desc=f"epoch {epoch + 1}/{config.train.epochs}",
                    leave=False,
                )
                epoch_start = time.time()
                for batch in bar:
                    rate = learning_rate(config, state.global_step, steps_per_epoch)
                    for group in optimizer.param_groups:
                        group["lr"] = rate
                    batch = batch.to(device)
                    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                        loss, terms = total_loss(model(batch), batch, config.loss)
                    if not torch.isfinite(loss):
                        raise TrainingDiverged(
                            f"the loss became {loss.item()} at epoch {epoch + 1}, step {state.step_in_epoch + 1} "
                            f"(global step {state.global_step + 1}); {run_dir / 'last.pt'} keeps the last saved state. "
                            "Check the features for NaN or lower train.lr"
                        )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if config.train.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(trainable, config.train.grad_clip)
                    optimizer.step()
                    state.step_in_epoch += 1
                    state.global_step += 1
                    for name, value in {"loss": loss.item(), **terms}.items():
                        state.loss_sums[name] = state.loss_sums.get(name, 0.0) + value
                    bar.set_postfix(loss=f"{state.loss_sums['loss'] / state.step_in_epoch:.3f}")
                    if state.global_step % 10 == 0:
                        writer.add_scalar("train/loss", loss.item(), state.global_step)
                        writer.add_scalar("train/lr", rate, state.global_step)
                    if (on_step is not None and on_step(state)) or interrupt.requested:
                        state.interrupted = True
                        break
                bar.close()
                del loader, bar
                if state.interrupted:
                    save("last.pt")
                    where = f"epoch {epoch + 1}, step {state.step_in_epoch}"
                    log.warning(
                        f"stopped at {where}: saved {run_dir / 'last.pt'}; resume with: bin/train --resume {run_dir}"
                    )
                    return state
                improved = _finish_epoch(config, state, model, val_set, device, dtype, writer, run_dir, epoch_start,
                                         progress)  # fmt: skip
                waited = time.monotonic() - last_saved if last_saved is not None else math.inf
                if improved or state.epoch == config.train.epochs or waited >= config.train.checkpoint_seconds:
                    save("last.pt")
                    last_saved = time.monotonic()
                    if improved:
                        with atomic_path(run_dir / "best.pt") as tmp:
                            shutil.copyfile(run_dir / "last.pt", tmp)
    finally:
        writer.close()
    best = f"; best validation mIoU {100 * state.best_miou:.2f} at epoch {state.best_epoch + 1}"
    log.info(f"done in {time.time() - started:.0f} s{best if state.best_epoch >= 0 else ''}")
    return state


def drop_metrics_after(path: Path, epoch: int) -> list[int]:
    """Rewrite `path` without the lines of epochs after `epoch`; returns the epochs dropped."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if json.loads(line)["epoch"] <= epoch]
    if len(kept) < len(lines):
        write_text(path, "".join(line + "\n" for line in kept))
    return [json.loads(line)["epoch"] for line in lines[len(kept) :]]


def _finish_epoch(config, state, model, val_set, device, dtype, writer, run_dir, epoch_start, progress) -> bool:
    """Evaluate and record the epoch that just ended; whether its validation mIoU is the best so far."""
    steps = max(state.step_in_epoch, 1)
    record = {
        "epoch": state.epoch + 1,
        "step": state.global_step,
        "train": {name: value / steps for name, value in state.loss_sums.items()},
    }
    train_seconds = time.time() - epoch_start
    metrics = {}
    if val_set is not None:
        predictions = predict(model, val_set, config.eval.batch_size, device, dtype, config.data.num_workers, progress)
        metrics = score(predictions, config.eval.thresholds)
        record["val"] = metrics
    record["seconds"] = {"train": round(train_seconds, 1), "total": round(time.time() - epoch_start, 1)}
    for name, value in record["train"].items():
        writer.add_scalar(f"epoch/train_{name}", value, state.epoch + 1)
    for name, value in metrics.items():
        writer.add_scalar(f"val/{name}", value, state.epoch + 1)
    writer.flush()
    append_line(run_dir / "metrics.jsonl", json.dumps(record))
    improved = bool(metrics) and metrics["mIoU"] > state.best_miou
    if improved:
        state.best_miou, state.best_epoch = metrics["mIoU"], state.epoch
    state.epoch += 1
    state.step_in_epoch = 0
    state.loss_sums = {}
    summary = f"epoch {record['epoch']}/{config.train.epochs}: train loss {record['train']['loss']:.4f}"
    summary += f" ({train_seconds:.0f} s)"
    if metrics:
        summary += f" | val {format_metrics(metrics)}{' (best)' if improved else ''}"
    log.info(summary)
    return improved


def run(config_path: str | None, overrides: list[str], resume: str | None, progress: bool = True) -> int:
    """bin/train: from a config file and overrides, or resuming a run folder. Exit code 130 when interrupted."""
    checkpoint = None
    if resume:
        last = Path(resume) / "last.pt"
        checkpoint = load_checkpoint(last)
        config = config_from_dict(checkpoint["config"], str(last), overrides)
        config.run_dir = str(resume)
    elif config_path:
        config = load_config(config_path, overrides)
    else:
        raise InputError("give --config FILE (or --resume RUN_DIR)")
    state = train(config, checkpoint, progress=progress)
    return 130 if state.interrupted else 0
