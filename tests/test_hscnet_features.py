"""hscnet/features.py: released HDF5 layouts and the clip resampling."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from hscnet.common.errors import InputError
from hscnet.features import HDF5Features, open_features, prepare_video, resample_clips


def test_resampling_averages_within_bins_and_interpolates_short_videos():
    clips = np.arange(12, dtype=np.float32).reshape(6, 2)  # rows [0,1], [2,3], ..., [10,11]
    np.testing.assert_allclose(resample_clips(clips, 3), [[1, 2], [5, 6], [9, 10]])
    np.testing.assert_allclose(resample_clips(clips, 6), clips)
    stretched = resample_clips(clips[:2], 4)  # 2 clips to 4: interpolated between them
    np.testing.assert_allclose(stretched[:, 0], [0.0, 0.5, 1.5, 2.0])
    prepared = prepare_video(np.array([[3.0, 4.0], [0.0, 2.0]]), 2)
    np.testing.assert_allclose(prepared, [[0.6, 0.8], [0.0, 1.0]])


def test_both_released_hdf5_layouts_are_read(tmp_path):
    with h5py.File(tmp_path / "anet.hdf5", "w") as f:
        f.create_group("v_a").create_dataset("c3d_features", data=np.ones((7, 500), np.float32))
    with h5py.File(tmp_path / "tall.hdf5", "w") as f:
        f.create_dataset("s13-d21.avi", data=np.ones((9, 4096), np.float32))
    anet, tall = open_features(tmp_path / "anet.hdf5"), open_features(tmp_path / "tall.hdf5")
    assert isinstance(anet, HDF5Features)
    assert anet.read("v_a").shape == (7, 500) and tall.read("s13-d21.avi").shape == (9, 4096)
    (tmp_path / "junk.hdf5").write_bytes(b"not hdf5")
    with pytest.raises(InputError, match=r"junk\.hdf5: not a readable HDF5 file"):
        open_features(tmp_path / "junk.hdf5")
