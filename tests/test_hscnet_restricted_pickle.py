"""hscnet/restricted_pickle.py: the VPG .npy files read, code never run."""

from __future__ import annotations

import os

import numpy as np
import pytest

from hscnet.annotations import read_annotations
from hscnet.common.errors import InputError
from hscnet.restricted_pickle import load_object_npy


class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_a_command_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    payload = np.empty(1, dtype=object)
    payload[0] = _RunsACommand(marker)
    np.save(tmp_path / "evil.npy", payload, allow_pickle=True)
    with pytest.raises(InputError, match=r"evil\.npy: refused to load posix\.system"):
        load_object_npy(tmp_path / "evil.npy")
    with pytest.raises(InputError, match="refused"):
        read_annotations(tmp_path / "evil.npy")
    assert not marker.exists()


def test_the_restricted_unpickler_reads_the_real_vpg_files(shared_data):
    array = load_object_npy(shared_data / "activitynet" / "val_2_paragraphs.npy")
    assert array.shape == (4929,) and array[0]["video"] == "v_my9Z4bun_Dk"
    assert array[0]["timestamps"][0] == [0, 22.35]
