"""VideoBoost: GAN video super-resolution, grouped by stage (see docs/architecture.md).

``config``, ``errors``, ``state``, ``progress`` and ``heap`` sit at the root; the stages are
``data``, ``video``, ``inference``, ``evaluation``, ``training``, ``batch``, ``mlops`` (the
MLflow, BentoML, Prefect and Great Expectations edge) and ``cli``.

Modules moved into the stages in version 0.2; a script that still imports an old flat path
(``videoboost.registry``, ``videoboost.engine``, ...) gets the module at its new place and a
``DeprecationWarning`` that names it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# Old flat module -> its place now.
MOVED: dict[str, str] = {
    "align": "data.align", "dataset": "data.dataset", "degrade": "data.degrade",
    "frames": "data.frames", "report": "data.report", "shards": "data.shards",
    "sources": "data.sources", "windows": "data.windows",
    "video_read": "video.read", "video_write": "video.write", "videoio": "video.pipeline",
    "segments": "video.segments", "stages": "video.stages",
    "engine": "inference.engine", "images": "inference.images",
    "runtimes": "inference.runtimes", "export": "inference.export",
    "metrics": "evaluation.metrics", "compare": "evaluation.compare",
    "evaluate": "evaluation.benchmark", "runtime_select": "evaluation.runtime_select",
    "train": "training.train", "crops": "training.crops", "distribute": "training.distribute",
    "fanout": "batch.fanout",
    "tracking": "mlops.tracking", "registry": "mlops.registry",
    "version_card": "mlops.version_card", "serving": "mlops.serving",
    "prefect_server": "mlops.prefect_server", "validation": "mlops.validation",
    "commands.upscale": "cli.upscale", "commands.evaluate": "cli.evaluate",
}  # fmt: skip


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``videoboost.<old>`` to the module at its new place (the same object)."""

    def find_spec(self, fullname, path=None, target=None):
        old = fullname.removeprefix(__name__ + ".")
        if fullname.startswith(__name__ + ".") and old in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        new = f"{__name__}.{MOVED[spec.name.removeprefix(__name__ + '.')]}"
        warnings.warn(
            f"{spec.name} moved to {new}; import it from there", DeprecationWarning, stacklevel=2
        )
        module = importlib.import_module(new)
        sys.modules[spec.name] = module
        return module

    def exec_module(self, module):
        pass


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.append(_MovedModules())
