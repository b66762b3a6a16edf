"""bin/ground: one raw video and one paragraph to timestamps, in one process (no Ray start-up).

The video is decoded and its features extracted with the settings stored in the checkpoint
(clip length, stride, frame rate, C3D layer and weights), the paragraph is parsed with spaCy,
and the model grounds the paragraph, every sentence and every word. The result is a table on
the terminal, and on request the JSON of DESIGN.md and a timeline picture.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from extract import atomic
from extract.c3d import file_identity
from extract.errors import InputError
from extract.store import video_id_for
from extract.text import english
from extract.video import ClipSettings
from hscnet.checkpoint import load_model, resolve_device
from hscnet.infer import ground_paragraph
from hscnet.plot import plot_grounding
from pipeline.extract import ExtractSettings, extract_video

log = logging.getLogger(__name__)

DEMO_CHECKPOINT = Path(__file__).resolve().parents[1] / "demo" / "run" / "best.pt"


def read_paragraph(path: str | os.PathLike, sentences_per_line: bool) -> str | list[str]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: paragraph file not found")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise InputError(f"{path}: empty paragraph: the file has no text")
    if sentences_per_line:
        return [line.strip() for line in text.splitlines() if line.strip()]
    return text


def extraction_settings(
    features: dict, checkpoint: str, weights: str | None, device: str, pca: str | None = None
) -> ExtractSettings:
    """The extractor the checkpoint's training features came from, or a clear refusal."""
    settings = features.get("extractor")
    if not settings:
        raise InputError(
            f"{checkpoint}: trained on features from {features.get('source')} whose extraction settings are unknown "
            "(released HDF5 features); bin/ground needs a checkpoint trained on a feature store written by bin/extract"
        )
    if settings.get("backbone") != "c3d":
        raise InputError(
            f"{checkpoint}: trained on {settings.get('backbone')} features, which bin/ground cannot extract"
        )
    if settings["weights"] != "random":
        if not weights:
            raise InputError(
                f"{checkpoint}: trained on features of C3D weights {settings['weights']}; give them with --weights"
            )
        identity = file_identity(Path(weights))
        if identity != settings["weights"]:
            expected = settings["weights"]
            raise InputError(f"{weights}: these C3D weights ({identity}) are not the checkpoint's ({expected})")
    elif weights:
        raise InputError(f"{checkpoint}: trained on features of a random C3D; --weights {weights} would not match them")
    recorded_pca = settings.get("pca", "")
    if recorded_pca and not pca:
        raise InputError(f"{checkpoint}: trained on features projected with the PCA {recorded_pca}; give it with --pca")
    if pca and f"{file_identity(Path(pca))} to {settings['dim']}" != recorded_pca:
        raise InputError(f"{pca}: not the PCA the checkpoint's features were projected with ({recorded_pca or 'none'})")
    clip = ClipSettings(clip_len=settings["clip_len"], stride=settings["stride"], target_fps=settings["target_fps"])
    return ExtractSettings(
        clip=clip,
        weights=weights,
        layer=settings["layer"],
        device=device,
        dtype=settings["dtype"],
        pca=pca,
        pca_dims=settings["dim"] if pca else 500,
    )


def format_table(result: dict) -> str:
    lines = [
        f"{result['video']} ({result['duration']:.1f} s): paragraph {result['paragraph']['start']:.1f}-"
        f"{result['paragraph']['end']:.1f} s",
        f"{'#':>3} {'start':>7} {'end':>7}  sentence",
    ]
    for i, sentence in enumerate(result["sentences"], start=1):
        lines.append(f"{i:>3} {sentence['start']:>7.1f} {sentence['end']:>7.1f}  {sentence['text']}")
        words = ", ".join(f"{w['word']} {w['start']:.1f}-{w['end']:.1f}" for w in sentence["words"])
        lines.append(f"{'':>19}  words: {words}")
    if result["unknown_words"]:
        unknown = result["unknown_words"]
        lines.append(f"{len(unknown)} words the model never saw in training: {', '.join(unknown)}")
    return "\n".join(lines)


def ground_video(
    video: str | os.PathLike,
    paragraph_file: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    json_out: str | None = None,
    plot_out: str | None = None,
    sentences_per_line: bool = False,
    weights: str | None = None,
    device: str = "auto",
    word_sentence: int = 1,
    quiet: bool = False,
    truth: list | None = None,
    pca: str | None = None,
) -> dict:
    """bin/ground: see the module docstring. Returns the result dict (the JSON written with --json).

    `truth`, the true (start, end) of each sentence when known, is drawn beside the prediction."""
    if checkpoint is None:
        if not DEMO_CHECKPOINT.is_file():
            raise InputError(
                f"no --checkpoint given and no demo checkpoint at {DEMO_CHECKPOINT}: run `make demo` "
                "or train one with bin/train"
            )
        checkpoint = DEMO_CHECKPOINT
    paragraph = read_paragraph(paragraph_file, sentences_per_line)
    torch_device = resolve_device(device)
    trained = load_model(checkpoint, torch_device)
    settings = extraction_settings(trained.features, str(checkpoint), weights, str(torch_device), pca)
    encoder = settings.encoder()
    # spaCy takes about a second to import and build: let that happen while C3D works.
    text_ready = threading.Thread(target=english, daemon=True)
    text_ready.start()
    features, record = extract_video(video, video_id_for(video), encoder.encode, settings, encoder.weights)
    text_ready.join()
    if features is None:
        raise InputError(record.error)
    if features.shape[1] != trained.config.data.feature_dim:
        expected = trained.config.data.feature_dim
        raise InputError(f"{video}: features of dimension {features.shape[1]}, the checkpoint expects {expected}")
    result = ground_paragraph(
        trained, features, record.duration, paragraph, video=Path(video).name, device=torch_device
    )
    if not quiet:
        print(format_table(result))
    if json_out:
        atomic.write_json(json_out, result)
    if plot_out:
        plot_grounding(result, plot_out, word_sentence=word_sentence - 1, truth=truth)
    return result
