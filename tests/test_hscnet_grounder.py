"""hscnet/grounder.py: the Python API and the extraction settings it rebuilds from a checkpoint."""

from __future__ import annotations

import pytest
from conftest import SMOKE

from hscnet.annotations import Paragraph
from hscnet.common.errors import InputError
from hscnet.extract.spec import FeatureSpec, file_identity
from hscnet.extract.video import clip_count
from hscnet.grounder import Grounder, extraction_settings
from hscnet.pipeline import synthetic
from hscnet.pipeline.ground import ModelChoice, format_table, ground_command


def test_ground_asks_for_the_pca_the_features_were_projected_with(tmp_path):
    (tmp_path / "pca.hdf5").write_bytes(b"stand-in: only its identity is compared here")
    (tmp_path / "other.hdf5").write_bytes(b"another file")
    spec = FeatureSpec(stride=8, layer="fc7", dim=500, pca=f"{file_identity(tmp_path / 'pca.hdf5')} to 500")
    with pytest.raises(InputError, match=r"projected with the PCA pca\.hdf5 sha256:\w+ to 500; give it with --pca"):
        extraction_settings(spec, "ckpt", None, None, "cpu")
    with pytest.raises(InputError, match=r"other\.hdf5: not the PCA the checkpoint's features were projected with"):
        extraction_settings(spec, "ckpt", None, str(tmp_path / "other.hdf5"), "cpu")
    settings = extraction_settings(spec, "ckpt", None, str(tmp_path / "pca.hdf5"), "cpu")
    assert (settings.layer, settings.pca_dims, settings.stride) == ("fc7", 500, 8) and settings.spec() == spec
    with pytest.raises(InputError, match=r"released HDF5 features"):
        extraction_settings(None, "ckpt", None, None, "cpu")


def test_a_grounder_loads_once_and_grounds_a_video_for_many_paragraphs(small_world, monkeypatch):
    from hscnet import grounder as module

    calls = {"load_model": 0, "build_encoder": 0, "extract_video": 0}
    for name in calls:
        original = getattr(module, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)
    folder, splits = small_world
    example = splits["test"][0]
    video, text = folder / "videos" / f"{example['video']}.mp4", (folder / "paragraphs" / f"{example['video']}.txt")
    grounder = Grounder.from_checkpoint(folder / "run" / "last.pt", device="cpu")
    encoded = grounder.encode_video(video)
    assert encoded.features.shape == (clip_count(round(example["duration"] * synthetic.FPS), 16, 16), grounder.spec.dim)
    assert encoded.duration == pytest.approx(example["duration"], abs=0.2)
    as_text = grounder.ground(encoded, text.read_text())
    as_list = grounder.ground(encoded, example["sentences"])
    assert calls == {"load_model": 1, "build_encoder": 1, "extract_video": 1}  # encoded once, grounded twice
    assert as_text == as_list == grounder.ground(video, example["sentences"])
    assert calls == {"load_model": 1, "build_encoder": 1, "extract_video": 2}  # a path is extracted, nothing reloads
    model = ModelChoice(checkpoint=folder / "run" / "last.pt", device="cpu")
    assert as_text == ground_command(video, text, model=model)
    assert [s["text"] for s in as_text["sentences"]] == example["sentences"]
    first = grounder.ground(encoded, example["sentences"][:1])
    assert len(first["sentences"]) == 1 and first["video"] == video.name
    assert calls == {"load_model": 2, "build_encoder": 2, "extract_video": 3}  # ground_command loads its own


def test_a_paragraph_longer_than_the_trained_length_is_grounded_in_chunks(small_world, encoded_test_video, shared_data):
    from hscnet.annotations import read_annotations

    folder, _ = small_world
    paragraphs, _ = read_annotations(shared_data / "activitynet" / "val_1.json")
    longest = max(paragraphs, key=lambda p: len(p.sentences))  # 25 real sentences
    grounder = Grounder.from_checkpoint(folder / "run" / "last.pt", device="cpu")
    assert grounder.trained.config.data.max_sentences == 8
    encoded = encoded_test_video
    result = grounder.ground(encoded, longest.sentences)
    assert [s["text"] for s in result["sentences"]] == [s.strip() for s in longest.sentences]
    assert result["chunks"] == [list(range(1, 7)), list(range(7, 13)), list(range(13, 19)), list(range(19, 26))]
    assert 0 <= result["paragraph"]["start"] <= result["paragraph"]["end"] <= result["duration"]
    paragraph = result["paragraph"]
    for sentence in result["sentences"]:  # the spans nest: words in their sentence, sentences in the paragraph
        assert paragraph["start"] <= sentence["start"] <= sentence["end"] <= paragraph["end"]
        assert all(sentence["start"] <= w["start"] <= w["end"] <= sentence["end"] for w in sentence["words"])
    # Read as the paper reads a test file, each chunk is a paragraph of its own over the whole video.
    chunked = grounder.ground(encoded, longest.sentences, reading="chunks")
    first_chunk = grounder.ground(encoded, longest.sentences[:6])
    assert first_chunk["sentences"] == chunked["sentences"][:6] and "chunks" not in first_chunk
    assert "grounded in chunks of at most the trained length (6, 6, 6, 7)" in format_table(result)


def test_a_model_of_the_released_activitynet_features_grounds_with_their_recipe(tmp_path):
    import h5py
    import numpy as np
    import torch
    from conftest import SMOKE, solid_frames

    from hscnet.annotations import write_jsonl
    from hscnet.config import load_config
    from hscnet.extract.c3d import C3D
    from hscnet.extract.spec import RELEASED_ACTIVITYNET
    from hscnet.pipeline.synthetic import write_video
    from hscnet.train import train

    rng = np.random.default_rng(0)
    videos = ["v_a", "v_b", "v_c"]
    with h5py.File(tmp_path / "sub_activitynet_v1-3.c3d.hdf5", "w") as f:  # the released layout, made up
        for video in videos:
            f.create_group(video).create_dataset("c3d_features", data=rng.standard_normal((20, 500), np.float32))
    paragraphs = [Paragraph(v, 30.0, ["A man runs.", "He stops."], [(0.0, 12.0), (12.0, 30.0)]) for v in videos]
    annotations = write_jsonl(tmp_path / "train.jsonl", paragraphs)
    config = load_config(
        SMOKE,
        [f"data.features={tmp_path / 'sub_activitynet_v1-3.c3d.hdf5'}", f"data.train={annotations}", "data.val=",
         "data.test=", "data.feature_dim=500", f"run_dir={tmp_path / 'run'}", "train.epochs=1"],
    )  # fmt: skip
    train(config, progress=False)
    checkpoint = tmp_path / "run" / "last.pt"

    torch.save(C3D().state_dict(), tmp_path / "c3d.pickle")  # random weights in the converted layout
    with h5py.File(tmp_path / "PCA_activitynet_v1-3.hdf5", "w") as f:
        f["data/U"] = rng.standard_normal((4096, 600)).astype(np.float32)
        f["data/S"], f["data/x_mean"] = np.ones(600, np.float32), np.zeros(4096, np.float32)
    with h5py.File(tmp_path / "not_the_pca.hdf5", "w") as f:
        f["data/U"] = np.zeros((4096, 600), np.float32)
    state = C3D().state_dict()
    del state["fc8.weight"]
    torch.save(state, tmp_path / "other.pickle")
    weights, pca = str(tmp_path / "c3d.pickle"), str(tmp_path / "PCA_activitynet_v1-3.hdf5")

    with pytest.raises(InputError, match=r"released ActivityNet features .* --weights c3d\.pickle --pca"):
        Grounder.from_checkpoint(checkpoint, device="cpu")
    with pytest.raises(InputError, match=r"other\.pickle: not C3D Sports-1M weights"):
        Grounder.from_checkpoint(checkpoint, weights=str(tmp_path / "other.pickle"), pca=pca, device="cpu")
    with pytest.raises(InputError, match=r"not_the_pca\.hdf5: not the official ActivityNet PCA file"):
        Grounder.from_checkpoint(checkpoint, weights=weights, pca=str(tmp_path / "not_the_pca.hdf5"), device="cpu")
    grounder = Grounder.from_checkpoint(checkpoint, weights=weights, pca=pca, device="cpu")
    assert grounder.trained.feature_spec == RELEASED_ACTIVITYNET
    assert (grounder.spec.layer, grounder.spec.stride, grounder.spec.dim) == ("fc7", 8, 500)
    video = write_video(tmp_path / "new.mp4", solid_frames(24, (200, 30, 30)), fps=8)
    assert grounder.encode_video(video).features.shape == (2, 500)  # 16-frame clips every 8 frames
    result = grounder.ground(video, "A man runs. He stops.")
    assert len(result["sentences"]) == 2


def test_a_word_glove_knows_is_not_unknown_at_grounding(small_world, encoded_test_video):
    import torch

    from hscnet.text import PAD, UNK, Vocabulary, load_word_vectors

    folder, _ = small_world
    grounder = Grounder.from_checkpoint(folder / "run" / "last.pt", device="cpu")
    assert "zebra" not in grounder.trained.vocab and "qwzxplk" not in grounder.trained.vocab
    result = grounder.ground(encoded_test_video, "A zebra comes in from the left. The qwzxplk leaves.")
    assert result["unknown_words"] == ["qwzxplk"]
    index = grounder.trained.vocab.encode(["zebra"])[0]
    expected = load_word_vectors(Vocabulary([PAD, UNK, "zebra"])).matrix[2]
    torch.testing.assert_close(grounder.trained.model.text_encoder.embedding.weight[index], torch.from_numpy(expected))
    assert grounder.learn_words(["zebra", "qwzxplk"]) == []  # known now, and still lacking


@pytest.mark.slow
def test_a_model_trained_on_x3d_m_features_grounds_with_x3d_m(small_world, tmp_path):
    from hscnet.config import load_config
    from hscnet.extract.settings import ExtractSettings
    from hscnet.extract.store import FeatureStore
    from hscnet.pipeline.extraction import run_extraction
    from hscnet.train import train

    folder, splits = small_world
    settings = ExtractSettings(backbone="x3d_m")
    summary = run_extraction(folder / "videos", tmp_path / "x3d", settings, use_ray=False, progress=False)
    assert not summary.failed and FeatureStore(tmp_path / "x3d").spec() == settings.spec()
    with pytest.raises(InputError, match=r"holds features extracted with other settings \(backbone c3d -> x3d_m"):
        run_extraction(folder / "videos", folder / "features", settings, use_ray=False, progress=False)
    annotations = [f"data.{name}={folder / 'annotations' / f'{name}.jsonl'}" for name in ("train", "val", "test")]
    config = load_config(
        SMOKE,
        [f"data.features={tmp_path / 'x3d'}", "data.feature_dim=2048", *annotations, f"run_dir={tmp_path / 'run'}",
         "train.epochs=1"],
    )  # fmt: skip
    train(config, progress=False)
    grounder = Grounder.from_checkpoint(tmp_path / "run" / "last.pt", device="cpu")
    assert grounder.settings.backbone == "x3d_m" and grounder.spec == settings.spec()
    example = splits["test"][0]
    result = grounder.ground(folder / "videos" / f"{example['video']}.mp4", example["sentences"])
    assert [s["text"] for s in result["sentences"]] == example["sentences"]
    assert all(0 <= s["start"] <= s["end"] <= result["duration"] for s in result["sentences"])
    (tmp_path / "X3D_M.pyth").write_bytes(b"not these")
    with pytest.raises(InputError, match=r"trained on features of a random x3d_m; --weights .* would not match"):
        Grounder.from_checkpoint(tmp_path / "run" / "last.pt", weights=str(tmp_path / "X3D_M.pyth"), device="cpu")
