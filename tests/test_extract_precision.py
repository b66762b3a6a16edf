"""extract/precision.py: one precision rule for every network, from the CPU's flags and vendor."""

from __future__ import annotations

import pytest

from hscnet.common.errors import InputError
from hscnet.extract.precision import choose_precision, fast_bf16


def test_bf16_where_it_was_measured_faster_and_float32_elsewhere():
    assert fast_bf16({"avx512f", "avx512_bf16", "amx_bf16"}, "GenuineIntel")  # Xeon with AMX: 3.8x float32
    assert fast_bf16({"avx512f", "avx512_bf16"}, "AuthenticAMD")  # Zen 5 EPYC: 2.0x
    assert not fast_bf16({"avx512f", "avx512_bf16"}, "GenuineIntel")  # Xeon showing no AMX: 0.6x
    assert not fast_bf16({"avx2", "fma"}, "AuthenticAMD")  # AVX2 only: no bf16 at all
    assert not fast_bf16({"avx512f"}, "GenuineIntel")  # AVX-512 without bf16 emulates it slowly
    assert not fast_bf16({"avx512_bf16", "amx_bf16"}, "GenuineIntel", cap="AVX2")  # oneDNN capped below bf16


def test_a_precision_is_chosen_per_device_and_fp16_needs_cuda(monkeypatch):
    from hscnet.extract import precision

    monkeypatch.setattr(precision, "cpu_prefers_bf16", lambda: True)
    assert (choose_precision("auto", "cpu"), choose_precision("auto", "cuda")) == ("bf16", "fp16")
    monkeypatch.setattr(precision, "cpu_prefers_bf16", lambda: False)
    assert choose_precision("auto", "cpu") == "fp32" and choose_precision("bf16", "cpu") == "bf16"
    with pytest.raises(InputError, match="precision fp16 needs CUDA; on cpu use fp32 or bf16"):
        choose_precision("fp16", "cpu")
    with pytest.raises(InputError, match="unknown precision 'half'"):
        choose_precision("half", "cpu")
