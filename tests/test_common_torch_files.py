"""common/torch_files.py: torch files read without running code, and one line for each way a file fails."""

from __future__ import annotations

import pytest
import torch

from hscnet.common.errors import InputError
from hscnet.common.torch_files import load_weights_only


def test_both_formats_of_torch_save_load_and_every_refusal_says_why_in_one_line(tmp_path):
    weights = {"conv.weight": torch.arange(6.0).reshape(2, 3), "epoch": 3}
    torch.save(weights, tmp_path / "zip.pt")
    # Converted weights made before torch 1.6 (the usual Sports-1M c3d.pickle) are in the older format.
    torch.save(weights, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    for name in ("zip.pt", "legacy.pt"):
        loaded = load_weights_only(tmp_path / name, "state dict")
        assert torch.equal(loaded["conv.weight"], weights["conv.weight"]) and loaded["epoch"] == 3

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (marker.write_text, ("code ran",))

    torch.save({"x": Payload()}, tmp_path / "payload.pt")
    torch.save({"x": Payload()}, tmp_path / "legacy-payload.pt", _use_new_zipfile_serialization=False)
    (tmp_path / "cut.pt").write_bytes((tmp_path / "zip.pt").read_bytes()[:200])
    (tmp_path / "text.pt").write_text("conv.weight = [[0, 1, 2], [3, 4, 5]]\n")
    reasons = {
        "payload.pt": "it holds objects other than tensors and plain values, which are never loaded",
        "legacy-payload.pt": "it holds objects other than tensors and plain values, which are never loaded",
        "cut.pt": "not a file torch.save wrote, or one cut short",
        "text.pt": "not a file torch.save wrote, or one cut short",
    }
    for name, reason in reasons.items():
        with pytest.raises(InputError) as caught:
            load_weights_only(tmp_path / name, "state dict")
        message = str(caught.value)
        assert message.startswith(f"{tmp_path / name}: not a loadable state dict: {reason}"), message
        assert "\n" not in message and "weights_only" not in message
    assert not marker.exists()
