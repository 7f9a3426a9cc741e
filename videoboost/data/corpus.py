"""The base training corpus: a manifest of licensed files shipped in ``data/base/``.

``data/base/manifest.json`` lists every file the base generators train on, each with the
registry package it was taken from (name, version, path inside it), its authors and licence as
the package states them, its size and its SHA-256 (``scripts/corpus_fetch.py`` rebuilds the
files from Debian's packages). :func:`load_corpus` reads and checks it; ``videoboost corpus
build`` turns it into a training dataset.

A video entry may carry ``prescale`` (a factor below 1): the builder area-downscales its frames
by it before using them as HR, for heavily compressed clips whose codec artefacts would
otherwise be learnt (:meth:`Corpus.prescale`).

Reserved media never enter: OpenCV's, scikit-image's and matplotlib's sample media are kept for
independent evaluation, and the project's own benchmark footage is refused by content hash
(:func:`videoboost.data.sources.held_out_hashes`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from videoboost.data.sources import DATA_DIR, held_out_hashes
from videoboost.errors import SourceError

BASE_DIR = DATA_DIR / "base"
MANIFEST = BASE_DIR / "manifest.json"
# Packages whose sample media are reserved for independent evaluation.
RESERVED_PACKAGES = ("opencv", "scikit-image", "skimage", "matplotlib")
REQUIRED = ("file", "kind", "package", "package_version", "source_path", "licence", "sha256")


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    kind: str  # photo, artwork or video
    package: str
    package_version: str
    licence: str
    sha256: str
    prescale: float = 1.0  # area-downscale factor before use as HR (videos only)


@dataclass(frozen=True)
class Corpus:
    name: str
    version: int
    files: tuple[CorpusFile, ...]
    manifest_sha256: str  # of the manifest file: what a model card names

    def paths(self) -> list[Path]:
        return [f.path for f in self.files]

    def prescale(self) -> dict[str, float]:
        """Content hash -> prescale factor of the files that have one: DatasetConfig.prescale."""
        return {f.sha256: f.prescale for f in self.files if f.prescale < 1}

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.files:
            out[f.kind] = out.get(f.kind, 0) + 1
        return out


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def reserved_package(package: str) -> bool:
    name = package.lower()
    return any(r in name for r in RESERVED_PACKAGES)


def load_corpus(manifest: str | Path = MANIFEST, *, verify: bool = True) -> Corpus:
    """Read the manifest; with ``verify``, check every file against it.

    Raises:
        SourceError: the manifest is missing or malformed, an entry lacks a licence or another
            required field, a file is missing or differs from its hash, comes from a package
            whose media are reserved, or is benchmark footage. The message names each.
    """
    manifest = Path(manifest)
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError) as exc:
        raise SourceError(
            f"corpus manifest {manifest}: {exc}; restore it from git or rebuild it with "
            "`python scripts/corpus_fetch.py`"
        ) from exc
    problems, files = [], []
    held_out = held_out_hashes() if verify else {}
    for i, entry in enumerate(data.get("files", [])):
        missing = [k for k in REQUIRED if not str(entry.get(k, "")).strip()]
        if missing:
            problems.append(f"entry {i} ({entry.get('file', '?')}) lacks {', '.join(missing)}")
            continue
        path = (manifest.parent / entry["file"]).resolve()
        factor = entry.get("prescale", 1.0)
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not 0 < factor <= 1:
            problems.append(f"{entry['file']}: prescale must be a number in (0, 1]")
            factor = 1.0
        elif factor < 1 and entry["kind"] != "video":
            # Stills are built as one source per folder: a factor could not apply to one image.
            problems.append(f"{entry['file']}: prescale applies to videos only")
        if reserved_package(entry["package"]):
            problems.append(f"{entry['file']} is from {entry['package']}, reserved for evaluation")
        if verify:
            if not path.is_file():
                problems.append(f"{entry['file']} is missing")
                continue
            digest = file_sha256(path)
            if digest != entry["sha256"]:
                problems.append(f"{entry['file']} differs from the manifest's SHA-256")
            if digest in held_out:
                problems.append(f"{entry['file']} is benchmark footage ({held_out[digest]})")
        files.append(
            CorpusFile(
                path,
                entry["kind"],
                entry["package"],
                entry["package_version"],
                entry["licence"],
                entry["sha256"],
                float(factor),
            )
        )
    if not files and not problems:
        problems.append("it lists no files")
    if problems:
        raise SourceError(f"corpus manifest {manifest}: " + "; ".join(problems))
    return Corpus(
        name=str(data.get("name", manifest.parent.name)),
        version=int(data.get("version", 0)),
        files=tuple(files),
        manifest_sha256=file_sha256(manifest),
    )


def dataset_sources(corpus: Corpus) -> list[Path]:
    """The dataset builder's sources for ``corpus``: each video, and each folder of stills as
    one source (a folder holds its share of stills out for validation, chosen by content hash).

    Raises:
        SourceError: a folder holds an image the manifest does not list (it would be trained
            on without a licence on record).
    """
    from videoboost.data.frames import list_images

    videos = [f.path for f in corpus.files if f.kind == "video"]
    stills = [f.path for f in corpus.files if f.kind != "video"]
    folders = sorted({p.parent for p in stills})
    listed = set(stills)
    for folder in folders:
        extra = [p.name for p in list_images(folder) if p.resolve() not in listed]
        if extra:
            raise SourceError(
                f"{folder} holds images the corpus manifest does not list ({', '.join(extra[:5])}"
                f"{', ...' if len(extra) > 5 else ''}); add them to the manifest with their "
                "licence, or remove them"
            )
    return [*videos, *folders]
