"""hscnet/checkpoint.py: atomic, safe to load, rebuilt from what it stores."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch
from test_hscnet_model import make_items

from hscnet import checkpoint as ckpt
from hscnet.common.errors import InputError
from hscnet.config import Config
from hscnet.data import collate
from hscnet.extract.spec import FeatureSpec
from hscnet.model import build_model
from hscnet.text import PAD, UNK


def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint(path, {"model": {"w": torch.ones(3)}})

    def broken_save(obj, target, *args, **kwargs):
        with open(target, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="No space left"):
        ckpt.save_checkpoint(path, {"model": {"w": torch.zeros(3)}})
    assert torch.equal(ckpt.load_checkpoint(path)["model"]["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["last.pt"]
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(InputError, match=r"junk\.pt: not a loadable checkpoint: not a file torch.save wrote"):
        ckpt.load_checkpoint(tmp_path / "junk.pt")


def _content(model, config, vocab_words):
    from hscnet.prior import SpanPrior

    return {
        "model_args": model.args.to_json(),
        "model": model.state_dict(),
        "config": config.to_dict(),
        "vocab": vocab_words,
        "prior": SpanPrior.fit([]).to_json(),
        "feature_spec": FeatureSpec(dim=config.data.feature_dim).to_json(),
        "feature_source": "store",
    }


def test_the_model_is_rebuilt_from_its_stored_constructor_arguments(tmp_path):
    config = Config()
    config.data.feature_dim = 24
    config.model = dataclasses.replace(config.model, hidden_dim=32, heads=4, feature_encoder_layers=1, depths=[1, 2, 1])
    words = [PAD, UNK, *(f"w{i}" for i in range(38))]  # make_items draws ids below 40
    model = build_model(config, torch.randn(len(words), 12)).eval()
    ckpt.save_checkpoint(tmp_path / "m.pt", _content(model, config, words))
    trained = ckpt.load_model(tmp_path / "m.pt")
    assert trained.model.args == model.args and trained.model.args.word_dim == 12
    assert trained.feature_spec == FeatureSpec(dim=24) and trained.vocab.words == words
    assert len(trained.model.encoder.sentence_encoder.layers) == 2
    batch = collate(make_items(2, 16, 24))
    with torch.no_grad():
        torch.testing.assert_close(trained.model(batch).final, model(batch).final)


def test_old_foreign_and_damaged_checkpoints_are_refused_with_one_line(tmp_path):
    torch.save({"format": "hscnet-checkpoint/1", "model": {}}, tmp_path / "old.pt")
    with pytest.raises(InputError, match=r"old\.pt: written by hscnet 0\.1 .* train again"):
        ckpt.load_model(tmp_path / "old.pt")
    torch.save({"format": "hscnet-checkpoint/2", "model": {}}, tmp_path / "centre_width.pt")
    with pytest.raises(InputError, match=r"centre_width\.pt: its span head read its outputs as \(centre, width\)"):
        ckpt.load_model(tmp_path / "centre_width.pt")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(InputError, match=r"foreign\.pt: not an HSCNet checkpoint"):
        ckpt.load_model(tmp_path / "foreign.pt")
    ckpt.save_checkpoint(tmp_path / "partial.pt", {"model_args": {}})
    with pytest.raises(InputError, match=r"partial\.pt"):
        ckpt.load_model(tmp_path / "partial.pt")
