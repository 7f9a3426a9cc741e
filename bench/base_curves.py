"""Plot the base generators' held-out gains against hours of training (``docs/base_curves.png``).

The points are the mid-training exports recorded in ``docs/benchmarks/base_exports.json``
(each a ``videoboost base export`` scored on the held-out benchmark; the last ones are the
shipped cards, which ``--cards`` appends). One panel per track, one line per tier, the
from-scratch ``make run`` champion as a dashed reference.

    .venv/bin/python bench/base_curves.py --cards --png docs/base_curves.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POINTS = ROOT / "docs" / "benchmarks" / "base_exports.json"


def card_points(tracks: list[str]) -> list[dict]:
    """The shipped bases' cards as points (their hours, steps and per-track gains)."""
    out = []
    for card_file in sorted((ROOT / "models" / "base").glob("*-x4.json")):
        card = json.loads(card_file.read_text())
        gains = [card["benchmark"]["tracks"][t]["bench_psnr_gain"] for t in tracks]
        out.append({"tier": card["tier"], "hours": card["training"]["hours"],
                    "steps": card["training"]["steps"], "gains": gains})  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", action="store_true", help="add the shipped cards' points")
    parser.add_argument("--png", default=str(ROOT / "docs" / "base_curves.png"))
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(POINTS.read_text())
    tracks, points = data["tracks"], list(data["exports"])
    if args.cards:
        known = {(p["tier"], p["steps"]) for p in points}
        points += [p for p in card_points(tracks) if (p["tier"], p["steps"]) not in known]
    fig, axes = plt.subplots(1, len(tracks), figsize=(3.2 * len(tracks), 3.5), sharex=True)
    for k, (ax, track) in enumerate(zip(axes, tracks, strict=True)):
        for tier, colour in (("fast", "tab:blue"), ("quality", "tab:orange")):
            pts = sorted((p["hours"], p["gains"][k]) for p in points if p["tier"] == tier)
            ax.plot(*zip(*pts, strict=True), "o-", color=colour, label=f"{tier} base")
        ax.axhline(data["reference"]["gains"][k], color="grey", ls="--",
                   label=data["reference"]["label"])  # fmt: skip
        ax.set_title(track)
        ax.set_xlabel("hours of training")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("gain over bicubic, dB (held-out)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    out = Path(args.png)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(out)  # atomic: a reader never sees half a PNG
    print(f"wrote {out} ({len(points)} points)")


if __name__ == "__main__":
    main()
