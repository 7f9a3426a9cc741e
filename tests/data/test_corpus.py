"""The licensed base corpus: every training file listed with a licence, no reserved media."""

import json
import re
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


def test_prescale_is_a_factor_below_one_for_videos_only(tmp_path):
    data = json.loads(MANIFEST.read_text())
    video = next(e for e in data["files"] if e["kind"] == "video")
    still = next(e for e in data["files"] if e["kind"] != "video")
    manifest = tmp_path / "manifest.json"
    data["files"] = [{**video, "prescale": 0.5}, still]
    manifest.write_text(json.dumps(data))
    assert load_corpus(manifest, verify=False).prescale() == {video["sha256"]: 0.5}
    for bad, why in (({**still, "prescale": 0.5}, "videos only"), ({**video, "prescale": 0}, "(0, 1]"),
                     ({**video, "prescale": "half"}, "(0, 1]")):  # fmt: skip
        data["files"] = [bad]
        manifest.write_text(json.dumps(data))
        with pytest.raises(SourceError, match=re.escape(why)):
            load_corpus(manifest, verify=False)


def test_no_clip_swamps_the_stills():
    from videoboost.cli.main import CORPUS_CLIP_FRAMES
    from videoboost.config import SamplingConfig
    from videoboost.data.frames import clip_picks, read_video_info

    corpus = load_corpus(verify=False)
    stills = sum(1 for f in corpus.files if f.kind != "video")
    sampling = SamplingConfig(every=2, max_frames_per_clip=CORPUS_CLIP_FRAMES)
    for f in corpus.files:
        if f.kind == "video":
            total = read_video_info(f.path).frame_count
            picks = clip_picks(total, sampling) or set(range(0, total, 2))
            # At most the cap, from all of the clip (its validation tail included).
            assert len(picks) <= CORPUS_CLIP_FRAMES < stills / 3, f.path.name
            assert max(picks) >= 0.9 * total, f.path.name
