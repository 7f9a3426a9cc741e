"""The licensed base corpus: every training file listed with a licence, no reserved media."""

import json
import shutil

import pytest

from videoboost.data.corpus import (
    MANIFEST,
    dataset_sources,
    load_corpus,
    reserved_package,
)
from videoboost.errors import SourceError


def test_the_manifest_lists_every_training_file_with_a_licence():
    corpus = load_corpus()  # checks every file's SHA-256, licence and package
    assert corpus.counts()["video"] >= 1 and len(corpus.files) >= 150
    assert all(f.licence.strip() and f.package.strip() for f in corpus.files)
    listed = {f.path for f in corpus.files}
    for folder in {f.path.parent for f in corpus.files if f.kind != "video"}:
        assert {p.resolve() for p in folder.iterdir() if p.is_file()} <= listed


def test_no_reserved_sample_media_is_in_the_corpus():
    from videoboost.data.sources import RESERVED_MEDIA

    corpus = load_corpus(verify=False)
    assert not {f.sha256 for f in corpus.files} & set(RESERVED_MEDIA)
    assert not [f.package for f in corpus.files if reserved_package(f.package)]


def test_a_missing_licence_and_an_unlisted_image_are_refused(tmp_path):
    data = json.loads(MANIFEST.read_text())
    entry = next(e for e in data["files"] if e["kind"] != "video")
    shutil.copytree(MANIFEST.parent / "photos", tmp_path / "photos")
    data["files"] = [{**entry, "licence": ""}]
    bad = tmp_path / "manifest.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(SourceError, match="lacks licence"):
        load_corpus(bad)
    data["files"] = [entry]  # one listed, the folder holds ~200
    bad.write_text(json.dumps(data))
    with pytest.raises(SourceError, match="does not list"):
        dataset_sources(load_corpus(bad))
