"""The precision every network runs in, one rule for C3D and the Kinetics backbones alike.

On a CPU, bf16 where the processor computes it fast (AMX-bf16, or avx512_bf16 on AMD) and float32
elsewhere: bf16 features are within 0.5 % of float32's for all four networks and 1.3 to 4 times as
fast there, while elsewhere bf16 was slower than float32 (docs/benchmarks.md). On CUDA,
fp16 autocast. A user may force `fp32` anywhere, `bf16` on either device, `fp16` on CUDA only.
This module imports no torch.
"""

from __future__ import annotations

import os

from hscnet.common.errors import InputError

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


def cpu_prefers_bf16() -> bool:
    """Whether C3D and the Kinetics networks run faster in bf16 than in float32 on this CPU (`fast_bf16`
    on the flags and vendor of Linux's /proc/cpuinfo and oneDNN's instruction-set cap)."""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL").upper()
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:  # the first processor's block is every core's
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:  # not Linux: float32 is never wrong, only slower
        return False
    return fast_bf16(set(fields.get("flags", "").split()), fields.get("vendor_id", ""), cap)


def fast_bf16(flags: set[str], vendor: str, cap: str = "ALL") -> bool:
    """The rule, measured on C3D (docs/benchmarks.md): bf16 where the CPU has AMX-bf16 (Intel), or
    avx512_bf16 on AMD (Zen 4 and 5 run it at twice float32's rate); float32 elsewhere. An Intel CPU that
    shows avx512_bf16 without AMX ran C3D in bf16 at 0.6 of float32's rate, and AVX-512 without bf16
    emulates it slowly. A cap on oneDNN's instruction set below bf16 (ONEDNN_MAX_CPU_ISA=AVX2) counts as
    none, since oneDNN then cannot use it."""
    if cap not in _BF16_ISAS:
        return False
    return "amx_bf16" in flags or ("avx512_bf16" in flags and vendor == "AuthenticAMD")


def choose_precision(requested: str, device_type: str) -> str:
    """The precision a network runs in on `device_type` ("cpu" or "cuda") when `requested` is asked for."""
    if requested not in PRECISIONS:
        raise InputError(f"unknown precision {requested!r}: use {', '.join(PRECISIONS)}")
    if requested == "auto":
        return "fp16" if device_type == "cuda" else "bf16" if cpu_prefers_bf16() else "fp32"
    if requested == "fp16" and device_type != "cuda":
        raise InputError(f"precision fp16 needs CUDA; on {device_type} use fp32 or bf16")
    return requested
