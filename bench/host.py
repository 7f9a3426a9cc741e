"""The machine a benchmark ran on: CPU model and the flags that decide which paths are fast.

Every bench/ JSON carries this, and every README figure names it: the same model ran 4x
faster on one host kind than on another (STACK.md).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

FLAGS = ("amx_tile", "avx512_bf16", "avx512_vnni", "avx512f", "avx2")


def host() -> dict:
    """``{"cpu": model name, "flags": [...], "kind": "AMX + bf16" | ..., "cores": n}``."""
    model, flags, family = platform.processor() or platform.machine(), set(), {}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine(), "x86_64"):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
            elif key.strip() in ("cpu family", "model") and key.strip() not in family:
                family[key.strip()] = value.strip()
    if family:  # a VM may show only "AMD EPYC": family and model tell the generation
        model += f" (family {family.get('cpu family', '?')}, model {family.get('model', '?')})"
    have = [f for f in FLAGS if f in flags]
    if "amx_tile" in have:
        kind = "AMX + avx512_bf16"
    elif "avx512_bf16" in have:
        kind = "AVX-512 with bf16 and VNNI, no AMX" if "avx512_vnni" in have else "AVX-512 bf16"
    elif "avx512f" in have:
        kind = "AVX-512, no bf16"
    else:
        kind = "AVX2 only" if "avx2" in have else "no AVX2"
    return {"cpu": model, "flags": have, "kind": kind, "cores": os.cpu_count()}


if __name__ == "__main__":
    print(host())
