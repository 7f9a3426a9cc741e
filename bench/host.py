"""The machine a benchmark ran on, for every bench/ JSON and README figure: the same model ran
4x faster on one host kind than on another (STACK.md). The detection itself is
:func:`videoboost.evaluation.runtime_select.detect_host`, the one the runtime choice uses."""

from __future__ import annotations


def host() -> dict:
    """``{"cpu": model, "flags": [...], "kind": "AMX + avx512_bf16" | ..., "cores": n}``."""
    from videoboost.evaluation.runtime_select import detect_host

    h = detect_host()
    return {"cpu": h.cpu_model, "flags": list(h.flags), "kind": h.kind, "cores": h.cores}


if __name__ == "__main__":
    print(host())
