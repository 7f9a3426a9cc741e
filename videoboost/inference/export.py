"""Standalone copies of a generator: ``.keras``, ``.h5``, a TF SavedModel and an OpenVINO IR."""

from __future__ import annotations

import os
from pathlib import Path

from videoboost.errors import OutputConflict, VideoBoostError

EXPORT_SUFFIXES = {"keras": ".keras", "h5": ".h5", "savedmodel": "", "openvino": ""}


def export_model(generator, fmt: str, path: str | Path, *, force: bool = False) -> Path:
    """Save ``generator`` standalone: ``keras`` (native), ``h5`` (legacy HDF5, the original
    VideoBoost's format) or ``savedmodel`` (a TF SavedModel folder for TF Serving, signature
    ``serve``) or ``openvino`` (a folder with ``generator.xml``/``.bin`` in float32, see
    :func:`videoboost.inference.runtimes.save_openvino`). Written to a temp name beside ``path`` and
    renamed when complete.

    The ``.keras`` and ``.h5`` files need ``models.layers`` imported to load (the
    ``PixelShuffle`` layer); the SavedModel needs nothing but TensorFlow.
    """
    import secrets
    import shutil

    from models.legacy import modernize

    if fmt not in EXPORT_SUFFIXES:
        raise VideoBoostError(f"unknown format {fmt!r}; use one of {', '.join(EXPORT_SUFFIXES)}")
    path = Path(path)
    want = EXPORT_SUFFIXES[fmt]
    if want and path.suffix.lower() != want:
        if path.suffix:
            raise VideoBoostError(
                f"--format {fmt} writes a {want} file; name it {path.with_suffix(want)}"
            )
        path = path.with_suffix(want)
    if path.exists() and not force:
        raise OutputConflict(f"{path} exists; pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    # An old-style generator's resize skip cannot trace with open sizes (the SavedModel must
    # take any frame); its rebuild can, and the .keras/.h5 copies then load without it too.
    generator = modernize(generator)
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.partial{want}")
    try:
        if fmt == "savedmodel":
            generator.export(str(tmp), format="tf_saved_model", verbose=False)
        elif fmt == "openvino":
            from videoboost.inference.runtimes import save_openvino

            save_openvino(generator, tmp)
        else:
            generator.save(str(tmp))
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    return path
