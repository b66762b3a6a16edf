"""A clip encoder in a chosen memory layout, so that the speed benchmarks can compare layouts.

The library runs C3D in `channels_last_3d` only; "contiguous" is the layout it ran in before, kept
here as the baseline. The Kinetics encoders have one layout, so "auto" and "contiguous" leave them be.
"""

from __future__ import annotations

import torch

from hscnet.extract.encoders import build_encoder
from hscnet.extract.settings import ExtractSettings

LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last_3d": torch.channels_last_3d}


def encoder_in_layout(settings: ExtractSettings, layout: str = "auto"):
    """`build_encoder(settings)`, its model and inputs moved to `layout` unless that is "auto"."""
    encoder = build_encoder(settings)
    if layout != "auto" and hasattr(encoder, "memory_format"):
        encoder.memory_format = LAYOUTS[layout]
        encoder.model = encoder.model.to(memory_format=LAYOUTS[layout])
    return encoder
