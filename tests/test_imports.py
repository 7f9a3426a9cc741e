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
