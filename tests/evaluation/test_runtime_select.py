"""`auto` picks the fastest runtime that agrees with TensorFlow float32, caches the choice per
model, host and size, and `--runtime` / `VIDEOBOOST_SERVE_RUNTIME` force one."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from tiny import tiny_generator

from videoboost.cli import main
from videoboost.evaluation import runtime_select as rs
from videoboost.inference.engine import keras_predict

ZEN4 = rs.Host("AMD EPYC family 25 model 17", ("avx2", "avx512f", "avx512_bf16", "avx512_vnni"), 2)
ZEN3 = rs.Host("AMD EPYC family 25 model 1", ("avx2",), 2)
SIZE = (24, 16)  # LR (width, height): the tests time tiny frames


@pytest.fixture(scope="module")
def generator():
    return tiny_generator(scale=4, seed=3)


def _frames():
    return rs.probe_frames(SIZE[1], SIZE[0], n=2)


def _nearest(batch: np.ndarray) -> np.ndarray:
    """x4 by pixel repetition: far cheaper than the model, and a different picture."""
    return batch.repeat(4, axis=1).repeat(4, axis=2)


def test_a_fast_but_wrong_candidate_is_refused(generator):
    reference = keras_predict(generator)
    rng = np.random.default_rng(0)

    def noisy(batch):  # the model plus noise of ~3 grey levels: ~38 dB agreement
        out = reference(batch)
        return out + rng.normal(0, 3, out.shape).astype(np.float32)

    best, _, table = rs.choose(
        {"tf-f32": lambda: reference, "nearest": lambda: _nearest, "noisy": lambda: noisy},
        _frames(),
    )
    assert best == "tf-f32"
    assert "under 50 dB" in table["nearest"]["refused"]
    assert table["noisy"]["agreement_db"] < rs.MIN_AGREEMENT_DB
    assert "refused" in table["noisy"]
    assert table["tf-f32"]["fps"] > 0


def test_a_faithful_candidate_that_is_faster_wins_and_a_refused_one_never_does(generator):
    reference = keras_predict(generator)
    # The same numbers, precomputed: faithful by construction and much faster than the model.
    frames = _frames()
    answers = {f.tobytes(): reference(f) for f in frames}
    table_lookup = lambda batch: answers[batch.tobytes()]  # noqa: E731
    candidates = {"tf-f32": lambda: reference, "lookup": lambda: table_lookup}
    assert rs.choose(candidates, frames)[0] == "lookup"
    best, _, table = rs.choose(candidates, frames, refused={"lookup": "failed at bento build"})
    assert best == "tf-f32"
    assert table["lookup"] == {"refused": "failed at bento build"}


def test_a_candidate_that_does_not_build_is_skipped(generator):
    def broken():
        raise RuntimeError("no such plugin")

    best, _, table = rs.choose(
        {"tf-f32": lambda: keras_predict(generator), "ov-bf16": broken}, _frames()
    )
    assert best == "tf-f32"
    assert "does not build: RuntimeError: no such plugin" in table["ov-bf16"]["refused"]


def _counting(generator, built: list[str]):
    def make(name, fn):
        def build():
            built.append(name)
            return fn

        return build

    ref = keras_predict(generator)
    return {"tf-f32": make("tf-f32", ref), "nearest": make("nearest", _nearest)}


def test_the_choice_is_cached_and_measured_again_for_another_host_model_or_size(
    generator, tmp_path
):
    cache = tmp_path / "choices.json"
    built: list[str] = []

    def pick(host=ZEN4, gen=generator, size=SIZE):
        return rs.select(gen, size=size, host=host, candidates=_counting(gen, built),
                         cache=cache, rounds=1, frames=_frames())  # fmt: skip

    first = pick()
    assert first.how == "auto, measured" and first.name == "tf-f32"
    assert sorted(built) == ["nearest", "tf-f32"]
    entry = next(iter(json.loads(cache.read_text()).values()))
    assert entry["runtime"] == "tf-f32" and "AMD EPYC family 25 model 17" in entry["host"]
    assert "refused" in entry["table"]["nearest"]

    built.clear()
    again = pick()
    assert again.how == "auto, cached" and again.name == "tf-f32"
    assert built == ["tf-f32"]  # only the chosen runtime is built, nothing is timed
    assert again.fps == first.fps and again.predict is not None

    for changed in ({"host": ZEN3}, {"gen": tiny_generator(4, seed=4)}, {"size": (32, 16)}):
        built.clear()
        assert pick(**changed).how == "auto, measured", changed
        assert sorted(built) == ["nearest", "tf-f32"]
    assert len(json.loads(cache.read_text())) == 4


def test_forcing_a_runtime_skips_the_measurement(generator, tmp_path):
    forced = rs.select(generator, size=SIZE, runtime="tf-f32", host=ZEN3,
                       cache=tmp_path / "c.json", frames=_frames())  # fmt: skip
    assert forced.how == "forced" and forced.name == "tf-f32" and forced.precision == "float32"
    assert not (tmp_path / "c.json").exists()
    out = forced.predict(np.zeros((1, 8, 8, 3), np.float32))
    assert out.shape == (1, 32, 32, 3)
    with pytest.raises(rs.RuntimeUnavailable, match="tf-bf16 cannot run here: AVX2 only"):
        rs.select(generator, size=SIZE, runtime="tf-bf16", host=ZEN3, frames=_frames())


def test_candidates_follow_the_cpu_flags():
    caps_bf16, caps_avx2 = ("FP32", "BF16", "INT8"), ("FP32", "INT8")
    zen4 = rs.supported(ZEN4, ov_caps=caps_bf16)
    assert [k for k, v in zen4.items() if v is None] == list(rs.RUNTIMES)
    zen3 = rs.supported(ZEN3, ov_caps=caps_avx2)
    assert [k for k, v in zen3.items() if v is None] == ["tf-f32", "ov-f32", "ov-int8"]
    assert "no bf16 units" in zen3["tf-bf16"]
    no_ov = rs.supported(ZEN3, ov_caps=())
    assert [k for k, v in no_ov.items() if v is None] == ["tf-f32"]


CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480C
flags\t\t: fpu sse avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480C
flags\t\t: fpu sse avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""


def test_the_host_is_read_from_cpuinfo():
    host = rs.detect_host(CPUINFO)
    assert host.cpu_model == "Intel(R) Xeon(R) Platinum 8480C family 6 model 143"
    assert host.flags == ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile",
                          "amx_bf16", "amx_int8")  # fmt: skip
    assert host.bf16 and host.kind == "AMX + avx512_bf16"
    assert ZEN3.kind == "AVX2 only" and not ZEN3.bf16
    assert ZEN4.kind == "AVX-512 + avx512_bf16 + VNNI"
    assert rs.detect_host(CPUINFO.replace("amx_tile", "")).key() != host.key()


def _upscale_runtime_line(tmp_path, model_file, capsys, runtime: str) -> str:
    src = tmp_path / "a.png"
    cv2.imwrite(str(src), np.random.default_rng(0).integers(0, 256, (16, 24, 3), np.uint8))
    rc = main(["upscale", str(src), "-o", str(tmp_path / "a_x4.png"), "--model", str(model_file),
               "--runtime", runtime, "--quiet"])  # fmt: skip
    assert rc == 0
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if ln.startswith("runtime: "))
    assert " frames/s at 24x16 " in line
    assert (tmp_path / "a_x4.png").is_file()
    return line


def test_upscale_prints_the_forced_runtime_line(tmp_path, model_file, capsys):
    line = _upscale_runtime_line(tmp_path, model_file, capsys, "tf-f32")
    assert line.startswith("runtime: tf-f32 (float32), ") and line.endswith("[forced]")


def test_upscale_auto_prints_its_choice_and_makes_the_int8_model_once(tmp_path, model_file, capsys):
    """`--runtime auto` measures every runtime, ov-int8 included: the int8 model it made is
    the one :func:`int8_model_for` returns after (not quantised again), with the picture path
    in float and the trunk in int8, and it agrees with TensorFlow float32."""
    pytest.importorskip("nncf")
    import keras

    from videoboost import state
    from videoboost.inference import runtimes

    line = _upscale_runtime_line(tmp_path, model_file, capsys, "auto")
    assert line.endswith("[auto, measured]")
    assert line.split()[1] in rs.RUNTIMES

    generator = keras.models.load_model(model_file)
    model = runtimes.openvino_model(generator)
    kept = runtimes.picture_path_ops(model)
    convs = [op.get_friendly_name() for op in model.get_ordered_ops()
             if op.get_type_name() == "Convolution"]  # fmt: skip
    assert 0 < len(set(kept) & set(convs)) < len(convs)  # some convolutions stay float, not all
    xml = state.home() / "runtime" / "int8" / rs.model_key(generator) / runtimes.OPENVINO_XML
    assert xml.is_file()  # made by the measurement above
    stamp = xml.stat().st_mtime_ns
    assert rs.int8_model_for(generator) == xml
    assert xml.stat().st_mtime_ns == stamp  # reused, not quantised again
    import openvino as ov

    ops = ov.Core().read_model(str(xml)).get_ordered_ops()
    assert any(op.get_type_name() == "FakeQuantize" for op in ops)  # the trunk is int8
    quantised = runtimes.openvino_predict(xml, threads=2)
    frames = _frames()
    reference = [rs._uint8(keras_predict(generator)(f)) for f in frames]
    assert rs.agreement_db(quantised, reference, frames) >= rs.MIN_AGREEMENT_DB


def test_int8_and_the_fidelity_check_round_trip_through_the_registry_and_the_bento(served):
    """The session's bento (tests/bento.py: `videoboost bento build` of a registry version, which
    imports it): the int8 model is made, checked on the benchmark, logged to the version's run
    and tags, and ships in the BentoML model. (test_openapi_page.py runs `bento import` itself
    and checks its printout.)"""
    import yaml
    from mlflow import MlflowClient

    from videoboost.mlops.tracking import MODEL_NAME

    (xml,) = served.bento_home.glob("models/videoboost-generator/*/int8/generator.xml")
    assert xml.with_suffix(".bin").is_file()
    model = yaml.safe_load((xml.parents[1] / "model.yaml").read_text())
    assert "runtime_refused" in model["labels"]  # the label, empty when every runtime passed
    assert model["metadata"]["runtime_fidelity"]["tf-f32"]["ok"]

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIDEOBOOST_HOME", str(served.root / "state"))
        from videoboost.mlops import tracking

        tracking.setup()
        client = MlflowClient()
        mv = client.get_model_version(MODEL_NAME, served.version)
        fidelity = json.loads(mv.tags["runtime_fidelity"])
        assert fidelity["tf-f32"]["ok"] and fidelity["max_loss_db"] == rs.MAX_LOSS_DB
        assert "ov-int8" in fidelity and "delta_db" in fidelity["ov-int8"]
        logged = [a.path for a in client.list_artifacts(mv.run_id, "int8_openvino")]
        assert sorted(logged) == ["int8_openvino/generator.bin", "int8_openvino/generator.xml"]


def test_the_service_prints_its_runtime_line_and_names_it_in_answers(served):
    line = next(ln for ln in served.log.read_text().splitlines() if "runtime: " in ln)
    name = line.split("runtime: ", 1)[1].split()[0]
    assert name in rs.RUNTIMES and " frames/s at 320x180 [" in line
    png = cv2.imencode(".png", np.full((16, 24, 3), 90, np.uint8))[1].tobytes()
    r = served.client.post("/upscale", files={"image": ("lr.png", png, "image/png")})
    assert r.status_code == 200, r.text
    assert r.headers["x-videoboost-runtime"] == name


def test_the_serve_setting_takes_a_runtime_name_only():
    from pydantic import ValidationError

    from videoboost.config import ServeConfig

    assert ServeConfig().runtime == "auto"
    assert ServeConfig.model_validate({"runtime": "ov-int8"}).runtime == "ov-int8"
    with pytest.raises(ValidationError):
        ServeConfig.model_validate({"runtime": "tensorrt"})


def test_a_version_tag_of_the_benchmark_check_refuses_what_failed():
    tag = json.dumps({"host": "x", "max_loss_db": 0.1,
                      "tf-f32": {"psnr": 33.0, "delta_db": 0.0, "ok": True},
                      "ov-int8": {"psnr": 32.4, "delta_db": -0.6, "ok": False},
                      "ov-bf16": {"ok": False, "error": "RuntimeError: no plugin"}})  # fmt: skip
    refused = rs.refused_by_tag(tag)
    assert sorted(refused) == ["ov-bf16", "ov-int8"]
    assert "-0.600 dB against tf-f32" in refused["ov-int8"]
    assert rs.refused_by_tag(None) == {} and rs.refused_by_tag("not json") == {}
