"""extract/store.py: the feature store and its manifest."""

from __future__ import annotations

import numpy as np
from conftest import write_feature_store

from hscnet.extract.store import FeatureStore
from hscnet.features import open_features


def test_feature_store_is_memory_mapped(tmp_path):
    store = write_feature_store(tmp_path / "store", {"v1": 5}, dim=8)
    reopened = open_features(tmp_path / "store")
    assert isinstance(reopened, FeatureStore) and "v1" in reopened and "v2" not in reopened
    assert isinstance(reopened.read("v1"), np.memmap)
    assert store.read("v1").shape == (5, 8)
