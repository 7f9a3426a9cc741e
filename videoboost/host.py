"""The host's CPU as far as speed is concerned: model, the flags that matter, cores.

Read by the runtime choice (:mod:`videoboost.evaluation.runtime_select`, part of its cache key)
and by training (the host of each stretch of a run). Plain Python, no dependencies.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# The cpuinfo flags that change which runtime is fastest or even possible.
RELEVANT_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


@dataclass(frozen=True)
class Host:
    """The CPU as far as runtime choice is concerned."""

    cpu_model: str
    flags: tuple[str, ...]
    cores: int

    @property
    def bf16(self) -> bool:
        return "avx512_bf16" in self.flags or "amx_bf16" in self.flags

    @property
    def kind(self) -> str:
        """One phrase for tables: AMX, avx512_bf16, AVX-512, AVX2 only."""
        if "amx_tile" in self.flags:
            return "AMX + avx512_bf16" if "avx512_bf16" in self.flags else "AMX"
        if "avx512_bf16" in self.flags:
            return "AVX-512 + avx512_bf16" + (" + VNNI" if "avx512_vnni" in self.flags else "")
        if "avx512f" in self.flags:
            return "AVX-512, no bf16"
        return "AVX2 only" if "avx2" in self.flags else "no AVX2"

    def describe(self) -> str:
        return f"{self.cpu_model} ({self.kind}; {' '.join(self.flags) or 'no flags'}), {self.cores} cores"

    def key(self) -> str:
        return f"{self.cpu_model}|{','.join(self.flags)}|{self.cores}"


def detect_host(cpuinfo: str | None = None) -> Host:
    """The host from ``/proc/cpuinfo`` (or the text given); elsewhere ``platform`` says less."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "flags" and not flags:
            flags = set(value.split())
        elif key in ("model name", "cpu family", "model") and key not in fields:
            fields[key] = " ".join(value.split())
    # "AMD EPYC" alone names several generations: the family and model numbers tell them apart.
    model = fields.get("model name", "")
    if "cpu family" in fields:
        model = f"{model} family {fields['cpu family']} model {fields.get('model', '?')}".strip()
    if not model:
        import platform

        model = platform.processor() or platform.machine() or "unknown CPU"
    return Host(
        cpu_model=model,
        flags=tuple(f for f in RELEVANT_FLAGS if f in flags),
        cores=os.cpu_count() or 1,
    )
