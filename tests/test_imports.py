import subprocess
import sys

EDGE = ("mlflow", "bentoml", "prefect", "great_expectations")


def test_core_imports_without_edge_libraries():
    # A fresh interpreter: the core and the networks must not pull the edge stack in.
    code = (
        "import sys\n"
        "import videoboost.cli, videoboost.config, videoboost.dataset, videoboost.degrade\n"
        "import videoboost.frames, videoboost.metrics, videoboost.state\n"
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


def _core_imports() -> dict[str, set[str]]:
    """``videoboost`` module -> the ``videoboost`` modules it imports (anywhere in the file)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "videoboost"
    graph = {}
    for path in root.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("videoboost."):
                deps.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                deps |= {
                    a.name.split(".")[1] for a in node.names if a.name.startswith("videoboost.")
                }
        graph[path.stem] = deps
    return graph


def test_data_and_training_modules_import_one_way():
    # dataset, evaluate, tracking, train and validation once imported each other in a circle.
    graph = _core_imports()
    assert "dataset" not in graph["validation"] and "dataset" not in graph["evaluate"]
    assert "tracking" not in graph["evaluate"] and "evaluate" not in graph["dataset"]

    def reaches(start: str, goal: str, seen: frozenset = frozenset()) -> bool:
        return any(
            dep == goal or (dep not in seen and reaches(dep, goal, seen | {dep}))
            for dep in graph.get(start, ())
        )

    for module in ("dataset", "evaluate", "tracking", "train", "validation", "shards", "crops"):
        assert not reaches(module, module), f"{module} imports itself through a cycle"
