"""Checkpoints: everything `bin/eval` and `bin/ground` need, loadable without running code.

A checkpoint (format "hscnet-checkpoint/3") holds:
- "model_args": the model's constructor arguments (`ModelArgs`), "model": its weights;
- "config": the resolved config of the run, "vocab": the vocabulary, "prior": the dataset prior;
- "feature_spec": the spec of the features it was trained on (`FeatureSpec`, whole), or None
  where it is not known (released HDF5 features), and "feature_source": where they were read;
- for `bin/train --resume`: "optimizer", "state" and "rng", so that a resumed run ends exactly as
  an uninterrupted one.
It is written atomically and read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from hscnet.common.atomic import atomic_path
from hscnet.common.errors import InputError
from hscnet.common.torch_files import load_weights_only
from hscnet.config import Config, config_from_dict
from hscnet.extract.spec import FeatureSpec
from hscnet.model import HSCNet, ModelArgs
from hscnet.prior import SpanPrior
from hscnet.text import Vocabulary

FORMAT = "hscnet-checkpoint/3"  # 3: spans kept inside the video by the head (hscnet/model.py)


def save_checkpoint(path: str | os.PathLike, content: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **content}, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    content = load_weights_only(path, "checkpoint")
    found = content.get("format") if isinstance(content, dict) else None
    if found == "hscnet-checkpoint/1":
        raise InputError(
            f"{path}: written by hscnet 0.1 (format hscnet-checkpoint/1), which this version cannot read: train again"
        )
    if found == "hscnet-checkpoint/2":
        raise InputError(
            f"{path}: its span head read its outputs as (centre, width) (format hscnet-checkpoint/2); this version "
            "reads them as spans kept inside the video, so its weights would give other spans: train again"
        )
    if found != FORMAT:
        raise InputError(f"{path}: not an HSCNet checkpoint of this tool (format {FORMAT})")
    return content


@dataclass
class TrainedModel:
    """A model ready to predict, with what it was trained with."""

    model: HSCNet
    config: Config
    vocab: Vocabulary
    prior: SpanPrior
    feature_spec: FeatureSpec | None  # None: trained on features of unknown making (released HDF5)
    feature_source: str


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> TrainedModel:
    content = load_checkpoint(path)
    try:
        args = ModelArgs.from_json(content["model_args"], f"{path} (model_args)")
        model = HSCNet(args)
        model.load_state_dict(content["model"])
        spec = content["feature_spec"]
        trained = TrainedModel(
            model=model.to(device).eval(),
            config=config_from_dict(content["config"], f"{path} (config)"),
            vocab=Vocabulary(content["vocab"]),
            prior=SpanPrior.from_json(content["prior"]),
            feature_spec=FeatureSpec.from_json(spec, f"{path} (feature_spec)") if spec is not None else None,
            feature_source=str(content["feature_source"]),
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        if isinstance(error, InputError):
            raise
        raise InputError(f"{path}: a damaged checkpoint ({type(error).__name__}: {str(error)[:200]})") from error
    if len(trained.vocab) != args.vocab_size:
        raise InputError(f"{path}: a vocabulary of {len(trained.vocab)} words for a model of {args.vocab_size}")
    return trained
