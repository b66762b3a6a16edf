"""Configuration: one plain YAML file per dataset or use, read into typed dataclasses.

`load_config("configs/tacos.yaml", ["train.lr=2e-4", "model.depths=[1,1,1]"])` reads the file,
applies the overrides and checks every key and type: an unknown key or a value of the wrong
type is an InputError that names the file and the key. Relative paths are taken from the
directory the command runs in.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hscnet.common import atomic
from hscnet.common.errors import InputError


@dataclass
class DataConfig:
    format: str = "auto"  # annotation format: auto, activitynet, tacos, vpg-npy, jsonl
    features: str = ""  # feature store folder, or a released .hdf5 file
    train: str = ""
    val: str = ""
    test: str = ""
    num_clips: int = 256  # Nv: clips per video after resampling (256 ActivityNet, 512 TACoS)
    feature_dim: int = 500  # Dv: 500 for the released ActivityNet PCA features, 4096 for C3D fc6
    max_sentences: int = 8  # sentences sampled from a training paragraph, in annotation order
    sample_sentences: bool = True  # train on 1..max_sentences of them (PRVG); false: all, in chunks of max_sentences
    crop_videos: bool = False  # train on a random window of whole clips around the sentences (not the paper's)
    # Long paragraphs (not the paper's): each epoch also trains on this many stories, each story_paragraphs
    # random training paragraphs told one after another, their videos joined in that order, with 1 to
    # story_sentences of their sentences; the model still reads max_sentences at a time.
    stories: int = 0
    story_paragraphs: int = 4
    story_sentences: int = 16
    max_words: int = 64  # words kept per sentence; longer sentences are truncated and counted
    missing_features: str = "error"  # "error", or "skip" paragraphs whose video has no features
    num_workers: int = -1  # loader processes; -1: 0 on CPU (in-process is faster there), 2 on CUDA


@dataclass
class TextConfig:
    glove: str = ""  # GloVe text file (glove.840B.300d.txt in the paper); empty: packaged 6B-50d
    min_count: int = 1  # training-set occurrences a word needs to enter the vocabulary
    cache_dir: str = ""  # where vectors read from a GloVe file are cached; empty: ~/.cache/hscnet
    freeze_embeddings: bool = True  # GloVe vectors stay fixed, as in the VPG models


@dataclass
class ModelConfig:
    hidden_dim: int = 256  # D
    heads: int = 8
    feature_encoder_layers: int = 3  # self-attention layers of the video and text encoders (§3.2)
    depths: list[int] = field(default_factory=lambda: [1, 1, 1])  # C1, C2, C3 (§3.3)
    dropout: float = 0.1
    temperature: float = 0.2  # τ of Eq. (5), all levels
    word_level: bool = True  # Table 2 "WL": word-level encoder, alignment and decoder
    paragraph_level: bool = True  # Table 2 "PL": paragraph-level encoder, alignment and decoder
    paragraph_decoder: bool = True  # Table 4 "PD"
    word_decoder: bool = True  # Table 4 "WD"
    bidirectional_lstm: bool = False  # the decoders' LSTMs read sentences/words in order


@dataclass
class LossConfig:
    """Weights of the terms of Eq. (11); a weight of 0 switches its term off (Table 3)."""

    align_word: float = 1.0  # L_enc^VW
    align_sentence: float = 1.0  # L_enc^VS
    align_paragraph: float = 1.0  # L_enc^VP
    paragraph: float = 1.0  # L_dec^P
    sentence: float = 1.0  # L_dec^S
    word_union: float = 1.0  # L_union^W
    word_subset: float = 1.0  # L_subset^W
    final: float = 1.0  # L_grd
    l1: float = 1.0  # weight of the L1 part inside every localisation loss
    giou: float = 1.0  # weight of the GIoU part inside every localisation loss


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.0
    seed: int = 0
    grad_clip: float = 1.0  # max gradient norm; 0 switches clipping off
    lr_schedule: str = "constant"  # constant, cosine (to 0 at the last epoch), or step
    lr_step_epochs: int = 10  # step schedule: multiply by lr_gamma every this many epochs
    lr_gamma: float = 0.1
    warmup_steps: int = 0
    device: str = "auto"  # auto, cpu, cuda
    precision: str = "auto"  # auto (float32; see hscnet.common.devices.autocast_dtype), fp32, bf16 (autocast)
    # last.pt after an epoch once this many seconds have passed since it was last written (and always after
    # the first and the last epoch, when validation improves, and on Ctrl-C); 0 writes it after every epoch.
    checkpoint_seconds: float = 60.0


@dataclass
class EvalConfig:
    thresholds: list[float] = field(default_factory=lambda: [0.3, 0.5, 0.7])
    batch_size: int = 64


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    text: TextConfig = field(default_factory=TextConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run_dir: str = "runs/default"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_config(path: str | os.PathLike, overrides: list[str] = ()) -> Config:
    return config_from_dict(_read_yaml(path), str(path), overrides)


def _read_yaml(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not valid YAML ({error})".replace("\n", " ")) from error
    if not isinstance(raw, dict):
        raise InputError(f"{path}: a config file is a mapping of keys to values")
    return raw


def config_from_dict(raw: dict, source: str = "config", overrides: list[str] = ()) -> Config:
    """A Config from nested dicts (a YAML file's or a checkpoint's), with `key=value` overrides.

    The file's own keys are checked before the overrides, and each override after it is applied, so that an
    error names what the user wrote wrong: the file, or the override on the command line."""
    raw = copy.deepcopy(raw)
    config = _build(Config, raw, source, "")
    for override in overrides:
        _apply_override(raw, override, source)
        config = _build(Config, raw, f"override {override.strip()!r}", "")
    return config


def save_config(config: Config, path: str | os.PathLike) -> None:
    atomic.write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


def _apply_override(raw: dict, override: str, source: str) -> None:
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise InputError(f"override {override!r}: expected key=value, for example train.lr=2e-4")
    node = raw
    *parents, leaf = key.strip().split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise InputError(f"{source}: override {key!r}: {part!r} is not a section")
    node[leaf] = yaml.safe_load(text) if text.strip() else ""


def dataclass_from_yaml(cls, path: str | os.PathLike):
    """Any config dataclass from a YAML file, with the same checks (unknown keys, types)."""
    return _build(cls, _read_yaml(path), str(path), "")


def dataclass_from_dict(cls, raw, source: str):
    """Any config dataclass from nested dicts (a checkpoint's), with the same checks."""
    return _build(cls, raw, source, "")


def _build(cls, raw, source: str, prefix: str):
    if not isinstance(raw, dict):
        raise InputError(f"{source}: '{prefix.rstrip('.') or 'config'}' must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in known:
            raise InputError(f"{source}: unknown config key '{prefix}{key}' (known: {', '.join(sorted(known))})")
    values = {}
    for name in known & raw.keys():
        values[name] = _convert(hints[name], raw[name], source, prefix + name)
    return cls(**values)


def _convert(kind, value, source: str, key: str):
    if dataclasses.is_dataclass(kind):
        return _build(kind, value or {}, source, key + ".")
    origin = typing.get_origin(kind)
    if origin is list:
        if not isinstance(value, list):
            raise InputError(f"{source}: config key '{key}' must be a list, got {value!r}")
        (item_kind,) = typing.get_args(kind)
        return [_convert(item_kind, item, source, key) for item in value]
    if origin in (typing.Union, types.UnionType):
        kinds = [k for k in typing.get_args(kind) if k is not type(None)]
        if len(kinds) != 1 or len(typing.get_args(kind)) != 2:
            raise TypeError(f"config field {key} has an unsupported union type")
        return None if value is None else _convert(kinds[0], value, source, key)  # `X | None`: null is "unset"
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif kind is str:
        if value is None:
            return ""
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    raise InputError(f"{source}: config key '{key}' must be {kind.__name__}, got {value!r}")
