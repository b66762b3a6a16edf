"""Shared fixtures: the real data of ../shared/data, small feature stores, and one Ray session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from extract.store import FeatureStore

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("HSCNET_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real annotation files and video of ../shared/data (or $HSCNET_SHARED_DATA)."""
    path = shared_data_dir()
    if not (path / "activitynet" / "train.json").is_file():
        pytest.skip(f"real data not found at {path}: set HSCNET_SHARED_DATA to the shared/data folder")
    return path


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    np.random.seed(0)


def write_feature_store(folder: Path, videos: dict[str, int], dim: int, seed: int = 0) -> FeatureStore:
    """A feature store with random [clips, dim] features for each video (float16, as extracted)."""
    store = FeatureStore(folder, create=True)
    rng = np.random.default_rng(seed)
    for video, clips in videos.items():
        store.write(video, rng.standard_normal((clips, dim)).astype(np.float16))
    return store


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the whole test session (starting Ray takes seconds)."""
    import ray

    ray.init(
        num_cpus=2,
        object_store_memory=200 * 1024**2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    yield ray
    ray.shutdown()
