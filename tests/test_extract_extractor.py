"""extract/extractor.py: one real video to its features and manifest record."""

from __future__ import annotations

import numpy as np
import pytest

from hscnet.extract.encoders import build_encoder
from hscnet.extract.extractor import extract_video
from hscnet.extract.settings import ExtractSettings
from hscnet.extract.spec import FeatureSpec
from hscnet.extract.video import clip_count, decode_clips, probe


def test_the_real_video_gives_the_rows_its_frames_and_stride_imply(charades):
    info = probe(charades)
    assert (info.num_frames, info.width, info.height) == (460, 480, 270) and info.fps == pytest.approx(14.985, abs=1e-3)
    assert info.duration == pytest.approx(30.70, abs=0.01)
    settings = ExtractSettings(stride=64)  # the fewest clips that still show the count: C3D costs per clip
    features, record = extract_video(charades, "charades", build_encoder(settings).encode, settings.spec())
    assert record.status == "ok" and record.error == "" and record.spec == settings.spec()
    assert features.shape == (clip_count(460, 16, 64), 4096) == (7, 4096)
    assert features.dtype == np.float16 and np.isfinite(features).all() and (features > 0).any()
    # Stride 8 (ActivityNet-style overlapping windows) and resampling to 5 fps change the count as implied.
    assert sum(len(c) for c in decode_clips(charades, FeatureSpec(stride=8), info)) == (460 - 16) // 8 + 1 == 56
    resampled = sum(len(c) for c in decode_clips(charades, FeatureSpec(sample_fps=5), info))
    assert resampled == (int(info.duration * 5) - 16) // 16 + 1 == 9
