"""extract/spec.py: the feature spec, written whole, read back whole, compared whole."""

from __future__ import annotations

import json

import pytest
from conftest import write_feature_store

from hscnet.common.errors import InputError
from hscnet.extract.spec import FeatureSpec, file_identity
from hscnet.extract.store import FeatureStore, ManifestRecord


def test_a_spec_round_trips_and_names_what_differs():
    spec = FeatureSpec(stride=8, layer="fc7", dim=500, pca="pca.hdf5 sha256:ab to 500")
    assert FeatureSpec.from_json(json.loads(json.dumps(spec.to_json())), "here") == spec
    assert FeatureSpec().differences(spec) == [
        "stride 16 -> 8",
        "layer fc6 -> fc7",
        "pca  -> pca.hdf5 sha256:ab to 500",
        "dim 4096 -> 500",
    ]
    assert "16-frame clips every 8 frames" in spec.describe()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stride": "8"}, r"m\.jsonl:3: feature spec stride must be int, got '8'"),
        ({"stride": True}, r"feature spec stride must be int"),
        ({"colour": "red"}, r"a feature spec has the keys backbone, clip_len"),
    ],
)
def test_a_damaged_spec_is_one_clear_error(change, message):
    with pytest.raises(InputError, match=message):
        FeatureSpec.from_json({**FeatureSpec().to_json(), **change}, "m.jsonl:3")
    with pytest.raises(InputError, match="not a mapping"):
        FeatureSpec.from_json([1, 2], "m.jsonl:3")


def test_a_file_identity_is_its_name_and_content(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"weights")
    (tmp_path / "b.bin").write_bytes(b"weights")
    a, b = file_identity(tmp_path / "a.bin"), file_identity(tmp_path / "b.bin")
    assert a.startswith("a.bin sha256:") and a.split(":")[1] == b.split(":")[1]


def test_the_manifest_carries_the_spec_and_reads_the_flat_lines_of_0_1(tmp_path):
    store = write_feature_store(tmp_path / "store", {"v1": 3}, dim=8)
    spec = FeatureSpec(dim=8, stride=8)
    store.append(ManifestRecord(video_id="v1", source="/videos/v1.mp4", status="ok", spec=spec, clips=3))
    line = json.loads((tmp_path / "store" / "manifest.jsonl").read_text())
    assert line["spec"] == spec.to_json() and line["video_id"] == "v1"
    assert FeatureStore(tmp_path / "store").spec() == spec
    flat = {"video_id": "v2", "source": "s", "status": "ok", "clip_len": 16, "stride": 8, "target_fps": 0.0,
            "backbone": "c3d", "layer": "fc6", "dim": 8, "weights": "random", "pca": "",
            "dtype": "float16"}  # fmt: skip
    with open(tmp_path / "store" / "manifest.jsonl", "a") as handle:
        handle.write(json.dumps(flat) + "\n")
    assert FeatureStore(tmp_path / "store").records()["v2"].spec == spec


def test_a_store_of_two_specs_is_refused_naming_what_differs(tmp_path):
    store = write_feature_store(tmp_path / "store", {"a": 3, "b": 3}, dim=8)
    store.append(ManifestRecord(video_id="a", source="a", status="ok", spec=FeatureSpec(dim=8)))
    store.append(ManifestRecord(video_id="b", source="b", status="ok", spec=FeatureSpec(dim=8, stride=8)))
    with pytest.raises(InputError, match=r"store: holds features of 2 different specs \(stride 16 -> 8\)"):
        store.spec()
    assert FeatureStore(tmp_path / "empty", create=True).spec() is None
