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

from hscnet.annotations import load_paragraphs
from hscnet.checkpoint import load_checkpoint, save_checkpoint
from hscnet.common.atomic import append_line, atomic_path, recover, write_text
from hscnet.common.devices import autocast_dtype, resolve_device
from hscnet.common.errors import InputError, PipelineError
from hscnet.common.memory import keep_freed_memory
from hscnet.config import Config, config_from_dict, load_config, save_config
from hscnet.data import EpochSampler, GroundingDataset, SampleSpec, make_loader, tokenize_paragraphs
from hscnet.evaluate import predict, score
from hscnet.extract.spec import FeatureSpec
from hscnet.features import open_features
from hscnet.losses import total_loss
from hscnet.metrics import format_metrics
from hscnet.model import build_model
from hscnet.prior import SpanPrior
from hscnet.text import Vocabulary, vocabulary_with_vectors

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
    or every sentence; their videos whole or cropped; with stories of several paragraphs or without:
    `data.sample_sentences`, `data.crop_videos`, `data.stories`)."""
    return GroundingDataset(
        paragraphs,
        store,
        vocab,
        SampleSpec.for_training(config),
        words=words,
        missing_features=config.data.missing_features,
        source=str(config.data.train),
    )


@dataclass
class TrainingData:
    """What a run trains and validates on, and what its checkpoints carry besides the weights."""

    train_set: GroundingDataset
    val_set: GroundingDataset | None
    vocab: Vocabulary
    word_vectors: torch.Tensor  # [V, De]; zeros when resuming, as the checkpoint's weights hold them
    prior: SpanPrior
    feature_spec: FeatureSpec | None  # None for released features


def load_training_data(config: Config, checkpoint: dict | None) -> TrainingData:
    """The annotations and features `config.data` names, with the vocabulary and prior of a new run
    (from the training words and GloVe) or of the checkpoint being resumed."""
    data = config.data
    if not data.train:
        raise InputError("data.train is not set: name the training annotation file (data.train=PATH)")
    if not data.features:
        raise InputError("data.features is not set: name a feature store folder or .hdf5 file (data.features=PATH)")
    train_paragraphs = load_paragraphs(data.train, data.format)
    val_paragraphs = load_paragraphs(data.val, data.format) if data.val else []
    store = open_features(data.features)
    feature_spec = store.spec()  # None for released features; a store of mixed specs is refused here
    if feature_spec is not None and feature_spec.dim != data.feature_dim:
        raise InputError(
            f"{data.features}: holds {feature_spec.dim}-d features ({feature_spec.describe()}); "
            f"data.feature_dim is {data.feature_dim}"
        )
    train_words = tokenize_paragraphs(train_paragraphs)
    if checkpoint is None:
        # Validation and test captions lend their words (not their times) to the vocabulary: see
        # vocabulary_with_vectors. The test file is read for its words only.
        test_paragraphs = load_paragraphs(data.test, data.format) if data.test else []
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
        word_vectors = torch.zeros_like(checkpoint["model"]["text_encoder.embedding.weight"])  # loaded later
        prior = SpanPrior.from_json(checkpoint["prior"])
    val_set = None
    if val_paragraphs:
        val_set = GroundingDataset(
            val_paragraphs,
            store,
            vocab,
            SampleSpec.for_evaluation(config),
            missing_features=data.missing_features,
            source=str(data.val),
        )
    train_set = training_set(config, train_paragraphs, store, vocab, train_words)
    return TrainingData(train_set, val_set, vocab, word_vectors, prior, feature_spec)


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
    started = time.time()
    device = resolve_device(config.train.device)
    if device.type == "cpu":
        keep_freed_memory()  # a step's activations would otherwise be mapped and zero-filled afresh
    torch.manual_seed(config.train.seed)
    data = load_training_data(config, checkpoint)
    run = TrainingRun(config, data, device, checkpoint)
    try:
        with _StopOnInterrupt() as interrupt:
            for epoch in range(run.state.epoch, config.train.epochs):
                epoch_start = time.time()
                if run.train_epoch(epoch, lambda: (on_step is not None and on_step(run.state)) or interrupt.requested,
                                   progress):  # fmt: skip
                    run.save("last.pt")
                    where = f"epoch {epoch + 1}, step {run.state.step_in_epoch}"
                    log.warning(
                        f"stopped at {where}: saved {run.run_dir / 'last.pt'}; resume with: bin/train --resume "
                        f"{run.run_dir}"
                    )
                    return run.state
                run.finish_epoch(epoch_start, progress)
    finally:
        run.writer.close()
    state = run.state
    best = f"; best validation mIoU {100 * state.best_miou:.2f} at epoch {state.best_epoch + 1}"
    log.info(f"done in {time.time() - started:.0f} s{best if state.best_epoch >= 0 else ''}")
    return state


class TrainingRun:
    """One run's model, optimizer, state and run folder, and the steps of an epoch."""

    def __init__(self, config: Config, data: TrainingData, device: torch.device, checkpoint: dict | None):
        self.config, self.data, self.device = config, data, device
        self.dtype = autocast_dtype(config.train.precision, device)
        self.run_dir = Path(config.run_dir)
        self.model = build_model(config, data.word_vectors).to(device)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.trainable, lr=config.train.lr, weight_decay=config.train.weight_decay)
        self.state = TrainState()
        if checkpoint is not None:
            self._restore(checkpoint)
        self._prepare_run_dir(resumed=checkpoint is not None)
        from torch.utils.tensorboard import SummaryWriter  # imported late: it loads TensorBoard

        self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        self.steps_per_epoch = math.ceil(len(data.train_set) / config.train.batch_size)
        self.last_saved: float | None = None  # time.monotonic() of this process's last write of last.pt
        val_count = len(data.val_set) if data.val_set else 0
        stories = config.data.stories
        log.info(
            f"training on {len(data.train_set) - stories} paragraphs{f' and {stories} stories' if stories else ''} "
            f"({self.steps_per_epoch} steps an epoch), validating on "
            f"{val_count}; {sum(p.numel() for p in self.trainable) / 1e6:.2f}M trainable parameters, "
            f"device {device}{', bf16 autocast' if self.dtype else ''}; run folder {self.run_dir}"
        )

    def _restore(self, checkpoint: dict) -> None:
        """Weights, optimizer, state and random generators, so that the run continues exactly."""
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.state = TrainState(**checkpoint["state"])
        self.state.interrupted = False
        torch.set_rng_state(checkpoint["rng"]["torch"])
        if self.device.type == "cuda" and checkpoint["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])

    def _prepare_run_dir(self, resumed: bool) -> None:
        """Repair what an interrupted run left, drop the metrics of epochs that run again, save the config."""
        for repair in recover(self.run_dir, logs=("metrics.jsonl",)):
            log.warning(f"{self.run_dir}: {repair} (left by an interrupted run)")
        if resumed:
            dropped = drop_metrics_after(self.run_dir / "metrics.jsonl", self.state.epoch)
            if dropped:
                log.warning(
                    f"{self.run_dir / 'metrics.jsonl'}: dropped the lines of epochs {dropped[0]}-{dropped[-1]}, "
                    f"trained after last.pt was saved at epoch {self.state.epoch}; they run again"
                )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(self.config, self.run_dir / "config.yaml")

    def save(self, name: str) -> None:
        """A checkpoint: what the model was made with and of (hscnet/checkpoint.py), and the run's state."""
        data, device = self.data, self.device
        rng = {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else []}
        content = {
            "config": self.config.to_dict(),
            "vocab": data.vocab.words,
            "prior": data.prior.to_json(),
            "model_args": self.model.args.to_json(),
            "feature_spec": data.feature_spec.to_json() if data.feature_spec is not None else None,
            "feature_source": str(self.config.data.features),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "state": dataclasses.asdict(self.state),
            "rng": rng,
        }
        save_checkpoint(self.run_dir / name, content)

    def train_epoch(self, epoch: int, stop: Callable[[], bool], progress: bool) -> bool:
        """The steps of `epoch` still to run; whether `stop()` asked to stop after one of them."""
        config, state = self.config, self.state
        state.epoch = epoch
        sampler = EpochSampler(
            len(self.data.train_set), config.train.seed, epoch, skip=state.step_in_epoch * config.train.batch_size
        )
        loader = make_loader(
            self.data.train_set, config.train.batch_size, config.data.num_workers, sampler, self.device
        )
        bar = tqdm(
            loader,
            total=self.steps_per_epoch,
            initial=state.step_in_epoch,
            disable=not progress,
            desc=f"epoch {epoch + 1}/{config.train.epochs}",
            leave=False,
        )
        try:
            for batch in bar:
                loss = self.step(batch)
                bar.set_postfix(loss=f"{state.loss_sums['loss'] / state.step_in_epoch:.3f}")
                if state.global_step % 10 == 0:
                    self.writer.add_scalar("train/loss", loss, state.global_step)
                    self.writer.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], state.global_step)
                if stop():
                    state.interrupted = True
                    return True
        finally:
            bar.close()
        return False

    def step(self, batch) -> float:
        """One optimisation step on `batch` at the scheduled learning rate; returns its loss."""
        config, state = self.config, self.state
        rate = learning_rate(config, state.global_step, self.steps_per_epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        batch = batch.to(self.device)
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            loss, terms = total_loss(self.model(batch), batch, config.loss)
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"the loss became {loss.item()} at epoch {state.epoch + 1}, step {state.step_in_epoch + 1} "
                f"(global step {state.global_step + 1}); {self.run_dir / 'last.pt'} keeps the last saved state. "
                "Check the features for NaN or lower train.lr"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.trainable, config.train.grad_clip)
        self.optimizer.step()
        state.step_in_epoch += 1
        state.global_step += 1
        for name, value in {"loss": loss.item(), **terms}.items():
            state.loss_sums[name] = state.loss_sums.get(name, 0.0) + value
        return loss.item()

    def finish_epoch(self, epoch_start: float, progress: bool) -> None:
        """Validate and record the epoch that just ended, then save `last.pt` (and `best.pt` when it improved)
        if the epoch improved, was the last, or `train.checkpoint_seconds` have passed since the last save."""
        config, state = self.config, self.state
        steps = max(state.step_in_epoch, 1)
        record = {
            "epoch": state.epoch + 1,
            "step": state.global_step,
            "train": {name: value / steps for name, value in state.loss_sums.items()},
        }
        train_seconds = time.time() - epoch_start
        metrics = {}
        if self.data.val_set is not None:
            predictions = predict(self.model, self.data.val_set, batch_size=config.eval.batch_size, device=self.device,
                                  dtype=self.dtype, num_workers=config.data.num_workers, progress=progress)  # fmt: skip
            metrics = score(predictions, config.eval.thresholds)
            record["val"] = metrics
        record["seconds"] = {"train": round(train_seconds, 1), "total": round(time.time() - epoch_start, 1)}
        for name, value in record["train"].items():
            self.writer.add_scalar(f"epoch/train_{name}", value, state.epoch + 1)
        for name, value in metrics.items():
            self.writer.add_scalar(f"val/{name}", value, state.epoch + 1)
        self.writer.flush()
        append_line(self.run_dir / "metrics.jsonl", json.dumps(record))
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

        waited = time.monotonic() - self.last_saved if self.last_saved is not None else math.inf
        if improved or state.epoch == config.train.epochs or waited >= config.train.checkpoint_seconds:
            self.save("last.pt")
            self.last_saved = time.monotonic()
            if improved:
                with atomic_path(self.run_dir / "best.pt") as tmp:
                    shutil.copyfile(self.run_dir / "last.pt", tmp)


def drop_metrics_after(path: Path, epoch: int) -> list[int]:
    """Rewrite `path` without the lines of epochs after `epoch`; returns the epochs dropped."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if json.loads(line)["epoch"] <= epoch]
    if len(kept) < len(lines):
        write_text(path, "".join(line + "\n" for line in kept))
    return [json.loads(line)["epoch"] for line in lines[len(kept) :]]


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
