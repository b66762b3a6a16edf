"""The precision every network runs in, one rule for C3D and the Kinetics backbones alike.

On a CPU, bf16 where the processor computes it natively and float32 elsewhere: bf16 features are
within 0.5 % of float32's for all four networks and 1.3 to 4 times as fast where bf16 is native,
while emulated bf16 (AVX-512 without bf16) is slower than float32 (docs/benchmarks.md). On CUDA,
fp16 autocast. A user may force `fp32` anywhere, `bf16` on either device, `fp16` on CUDA only.
This module imports no torch.
"""

from __future__ import annotations

import os

from common.errors import InputError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# oneDNN's ISA levels (ONEDNN_MAX_CPU_ISA) from which bf16 convolutions run natively.
_BF16_ISAS = {
    "AVX512_CORE_BF16",
    "AVX512_CORE_FP16",
    "AVX10_1_512",
    "AVX512_CORE_AMX",
    "AVX10_1_512_AMX",
    "AVX512_CORE_AMX_FP16",
    "AVX10_1_512_AMX_FP16",
    "ALL",
}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (the avx512_bf16 or amx_bf16 flags of Linux).

    Not `torch.ops.mkldnn._is_mkldnn_bf16_supported()`: that is also true on AVX-512 CPUs without
    bf16 (Skylake-X, Cascade Lake), where oneDNN emulates bf16 slowly. A cap on oneDNN's instruction
    set below bf16 (`ONEDNN_MAX_CPU_ISA=AVX2`) counts as no native bf16, since oneDNN then cannot use it.
    """
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL").upper()
    if cap not in _BF16_ISAS:
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = next((line.split(":", 1)[1].split() for line in handle if line.startswith("flags")), [])
    except OSError:  # not Linux: float32 is never wrong, only slower
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def choose_precision(requested: str, device_type: str) -> str:
    """The precision a network runs in on `device_type` ("cpu" or "cuda") when `requested` is asked for."""
    if requested not in PRECISIONS:
        raise InputError(f"unknown precision {requested!r}: use {', '.join(PRECISIONS)}")
    if requested == "auto":
        return "fp16" if device_type == "cuda" else "bf16" if cpu_has_native_bf16() else "fp32"
    if requested == "fp16" and device_type != "cuda":
        raise InputError(f"precision fp16 needs CUDA; on {device_type} use fp32 or bf16")
    return requested
