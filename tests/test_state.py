"""Where the embedded stores live: defaults and the SQLite folder the job creates."""

from __future__ import annotations

import pytest

from videoboost import state


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sqlite:////srv/vb/mlflow.db", "/srv/vb/mlflow.db"),
        ("sqlite:///relative/mlflow.db", "relative/mlflow.db"),
        ("sqlite:///file:/srv/vb/mlflow.db?mode=ro&uri=true", "/srv/vb/mlflow.db"),
        ("sqlite:///:memory:", None),
        ("postgresql://u@host/db", None),
        ("http://127.0.0.1:5000", None),
    ],
)
def test_sqlite_path_reads_plain_and_uri_filenames(uri, expected):
    path = state.sqlite_path(uri)
    assert (None if path is None else str(path)) == expected


def test_a_sqlite_uri_filename_makes_its_folder_not_a_file_colon_folder(tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    db_dir = tmp_path / "store"
    monkeypatch.setenv("VIDEOBOOST_HOME", str(tmp_path / "home"))
    for key in ("BENTOML_HOME", "PREFECT_HOME"):  # set here so the test leaves them as found
        monkeypatch.setenv(key, str(tmp_path / "home" / key.lower()))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///file:{db_dir}/mlflow.db?mode=ro&uri=true")
    state.configure_environment()
    assert db_dir.is_dir()
    assert list(cwd.iterdir()) == []  # no "file:" folder in the working directory
