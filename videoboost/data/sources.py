"""Which bundled footage is for what: the training corpus and the held-out benchmark.

The bottom of the import graph for data (it needs only :mod:`videoboost.data.frames`), so that the
dataset builder can refuse benchmark footage and the benchmark can recognise leaked footage by
the same content hash, without either importing the other.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from videoboost.data.frames import list_images

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
SAMPLE_DIR = DATA_DIR / "sample"
TRAIN_DIR = DATA_DIR / "train"

# The demo clip of `make run` (also training footage).
SAMPLE_CLIP = SAMPLE_DIR / "bigbuckbunny.mp4"
# The held-out benchmark: never trained on (the dataset builder refuses these files).
DEFAULT_SOURCES: tuple[Path, ...] = (SAMPLE_DIR / "bikes.mp4", SAMPLE_DIR / "stills")
# The training footage of `make run` and the weekly retrain (origins and licences in
# data/sample/README.md): a cartoon clip and natural photos, so a model learns more than one look.
TRAIN_SOURCES: tuple[Path, ...] = (SAMPLE_CLIP, TRAIN_DIR / "photos")
# Sample media of OpenCV, scikit-image and matplotlib are reserved for independent evaluation:
# the dataset builder refuses them by content hash (SHA-256 of the file), like the benchmark.
# These three were once part of the bundled training footage.
RESERVED_MEDIA: dict[str, str] = {
    "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf": "OpenCV's vtest.avi",
    "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5": "scikit-image's astronaut.png",
    "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c": "scikit-image's rocket.jpg",
}


def _hash_file(path: Path, h) -> None:
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)


def source_hash(path: str | Path) -> str:
    """Content hash of a video/image file or of every image of a folder (names + bytes)."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        for img in list_images(path):
            h.update(img.name.encode())
            _hash_file(img, h)
    else:
        _hash_file(path, h)
    return h.hexdigest()


def held_out_hashes(sources: tuple[Path, ...] = DEFAULT_SOURCES) -> dict[str, str]:
    """Content hash -> file name of every file of the held-out benchmark (never trained on)."""
    out: dict[str, str] = {}
    for src in sources:
        files = list_images(src) if src.is_dir() else [src] if src.is_file() else []
        out.update({source_hash(f): f.name for f in files})
    return out
