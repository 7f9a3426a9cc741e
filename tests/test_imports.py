"""The package's shape: stages import downward only, and only the MLOps edge (and the CLI)
imports MLflow, BentoML, Prefect or Great Expectations (docs/architecture.md)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

EDGE = ("mlflow", "bentoml", "prefect", "great_expectations")
PACKAGE = Path(__file__).resolve().parent.parent / "videoboost"
# Bottom to top: a module may import its own stage and the stages before it.
STAGES = ("root", "video", "data", "inference", "evaluation", "training", "batch", "mlops", "cli")
ROOT_MODULES = {"config", "errors", "state", "progress", "heap", "host"}


def _stage_of(module: str) -> str:
    """``videoboost.data.align`` -> ``data``; a root module -> ``root``."""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "videoboost":
        raise ValueError(module)
    if len(parts) == 2:
        return parts[1] if parts[1] in STAGES else "root"
    return "root" if parts[1] in ROOT_MODULES else parts[1]


def _imports(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (lazy imports count)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            if node.module == "videoboost":
                out |= {f"videoboost.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(p for p in rel.parts if p != "__init__")
        mods[name] = path
    return mods


def test_every_module_belongs_to_a_stage():
    for name in _modules():
        if name != "videoboost":
            assert _stage_of(name) in STAGES, f"{name} is in no stage of {STAGES}"


@pytest.mark.parametrize("name", sorted(n for n in _modules() if n != "videoboost"))
def test_stages_import_downward_only(name):
    stage = STAGES.index(_stage_of(name))
    for dep in _imports(_modules()[name]):
        if dep.startswith("videoboost."):
            target = _stage_of(dep)
            assert STAGES.index(target) <= stage, (
                f"{name} ({STAGES[stage]}) imports {dep} ({target}), a stage above it"
            )


@pytest.mark.parametrize("name", sorted(n for n in _modules() if n != "videoboost"))
def test_only_the_mlops_edge_imports_the_edge_libraries(name):
    if STAGES.index(_stage_of(name)) >= STAGES.index("mlops"):
        return
    edge = {d.split(".")[0] for d in _imports(_modules()[name])} & set(EDGE)
    assert not edge, f"{name} imports {sorted(edge)}; only videoboost.mlops may"


def test_the_import_test_sees_a_violation(tmp_path):
    # The checks above must be able to fail: an upward import is found in source text.
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from videoboost.mlops.tracking import MODEL_NAME\n")
    assert "videoboost.mlops.tracking" in _imports(bad)
    assert STAGES.index(_stage_of("videoboost.mlops.tracking")) > STAGES.index("data")


def test_core_imports_without_edge_libraries():
    # A fresh interpreter: the stages below the edge and the networks pull none of it in.
    code = (
        "import sys\n"
        "import videoboost.cli, videoboost.config, videoboost.state\n"
        "import videoboost.data.dataset, videoboost.data.degrade, videoboost.data.frames\n"
        "import videoboost.inference.engine, videoboost.evaluation.benchmark\n"
        "import videoboost.training.train, videoboost.video.pipeline, videoboost.batch.jobs\n"
        "import models.networks, models.losses, models.gan\n"
        f"print(sorted(m for m in {EDGE!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_help_does_not_import_tensorflow():
    code = (
        "import sys, contextlib, io\n"
        "from videoboost.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "print('tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_old_flat_import_paths_still_resolve():
    # Scripts written against the flat package keep working, told where the module went.
    code = (
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    import videoboost.registry as old\n"
        "    from videoboost.engine import Upscaler\n"
        "import videoboost.mlops.registry as new\n"
        "print(old is new, Upscaler.__module__, 'videoboost.mlops.registry' in str(w[0].message))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "videoboost.inference.engine", "True"]
