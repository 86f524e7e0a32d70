"""The CPU a run was measured on, described for a reader: vendor, family and SIMD features.

``meta.json`` records ``cpu_vendor``, ``cpu_family`` and ``cpu_simd`` beside ``cpu_model``
(:func:`describe_cpu`), since the same code on Intel and on AMD, or with and without AVX-512,
differs in time and in float32 rounding.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

#: SIMD features recorded (``/proc/cpuinfo`` names; py-cpuinfo's, which may lack the
#: underscores, match too), in the order shown. They decide the vector width and the fused
#: multiply-adds of the BLAS, XLA and oneDNN kernels, and so a CPU's times and float32 rounding.
SIMD_FLAGS: dict[str, str] = {
    "sse4_2": "SSE4.2",
    "avx": "AVX",
    "avx2": "AVX2",
    "fma": "FMA",
    "avx512f": "AVX-512F",
    "avx512_vnni": "AVX-512 VNNI",
    "avx512_bf16": "AVX-512 BF16",
    "avx512_fp16": "AVX-512 FP16",
    "amx_tile": "AMX",
    "asimd": "NEON",
    "sve": "SVE",
    "sve2": "SVE2",
}
#: CPUID vendor strings, as a reader names the vendor.
CPU_VENDORS = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD", "HygonGenuine": "Hygon"}
#: Product lines named in brand strings: with the vendor, a readable family.
_PRODUCT_LINES = ("Xeon", "Core", "Pentium", "Celeron", "Atom", "EPYC", "Ryzen", "Opteron")
NOT_RECORDED = "not recorded"


def _flag_key(flag: str) -> str:
    return flag.lower().replace("_", "").replace(".", "")


def describe_cpu(info: Mapping[str, Any], flags: Iterable[str] | None) -> dict[str, Any]:
    """``cpu_vendor``, ``cpu_family`` and ``cpu_simd`` of a CPU, from py-cpuinfo's record.

    ``info`` holds py-cpuinfo's ``vendor_id_raw``, ``brand_raw``, ``family`` and ``model``
    (any may be missing); ``flags`` the CPU's feature flags, or None where they are unknown
    (then ``cpu_simd`` is None: not recorded, which is not the same as none). ``cpu_family``
    reads like ``AMD EPYC (family 25, model 1)``: the vendor and product line for a person,
    the CPUID family and model for telling generations apart.
    """
    raw_vendor = info.get("vendor_id_raw") or None
    vendor = CPU_VENDORS.get(raw_vendor, raw_vendor) if raw_vendor else None
    brand = re.sub(r"\((?:R|TM)\)", " ", str(info.get("brand_raw") or ""), flags=re.IGNORECASE)
    line = next((w for w in brand.split() if w in _PRODUCT_LINES), None)
    family = " ".join(x for x in (vendor, line) if x) or brand.strip() or None
    if info.get("family") is not None:
        numbers = f"family {info['family']}, model {info.get('model', '?')}"
        family = f"{family} ({numbers})" if family else numbers
    simd = None
    if flags is not None:
        have = {_flag_key(f) for f in flags}
        simd = [name for name in SIMD_FLAGS if _flag_key(name) in have]
    return {"cpu_vendor": vendor, "cpu_family": family, "cpu_simd": simd}


def simd_label(simd: Iterable[str] | None) -> str:
    """``AVX, AVX2, FMA``: how a report names recorded SIMD features."""
    if simd is None:
        return NOT_RECORDED
    names = [SIMD_FLAGS.get(f, f) for f in simd]
    return ", ".join(names) if names else "none of " + ", ".join(SIMD_FLAGS.values())
