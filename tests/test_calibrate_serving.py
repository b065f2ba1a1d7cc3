"""Calibration for serving (issue 12 item 6): decode GEMMs, decode attention and the decode all-to-all in the
calibration file, sealed and recomputed on load like every other fit, and applied by `costsim serve --calibration`.

Built from the synthetic files of calibration_support (fixed samples timed by known rooflines): deterministic and
fast, nothing measured. The measured side (a smoke calibration holds the new samples; `calibrate check` measures them
again; validate local's decode cases) is in test_calibrate.py and test_validate_local.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from calibration_support import CPU_DECODE, H100_DECODE, cpu_calibration, h100_calibration
from cli_support import clean_error, invoke
from test_calibrate_integrity import ESTIMATE, assert_refused, forge

from simulator.inputs.assumptions import DEFAULT
from simulator.inputs.calibration import (
    GPU_STATE_KEYS,
    SCHEMA_VERSION,
    SERVING_KEYS,
    Calibration,
    content_hash,
    load_calibration,
    write_calibration,
)
from simulator.inputs.catalog import load_hardware
from simulator.model.comms import Fabric, Group, moe_dispatch_combine_s, moe_low_latency_exchange_s
from simulator.model.efficiency import calibrated_device, device_rates, gemm_bytes_moved
from simulator.model.serve.decode import Candidates, step_s
from simulator.run.serve import ServeRequest, serve, setup_for

SERVE = {
    "cpu": ["serve", "llama-3.2-1b", "--gpu", "cpu", "--input-len", "512", "--output-len", "128", "--phase", "decode"],
    "h100": ["serve", "llama-3.1-8b", "--gpu", "h100", "--phase", "decode"],
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("serving")
    return {
        "cpu": write_calibration(cpu_calibration(), folder / "cpu.json"),
        "h100": write_calibration(h100_calibration(), folder / "h100.json"),
        "h100-fast-kv": write_calibration(h100_calibration(kv_rate=2 * H100_DECODE["kv_rate"]), folder / "h100-fast-kv.json"),
        "h100-slow-a2a": write_calibration(h100_calibration(a2a_latency=10 * H100_DECODE["a2a_latency"]), folder / "slow.json"),
    }


def one(batch: float, tp: float = 1.0, dp: float = 1.0) -> Candidates:
    return Candidates(np.array([tp]), np.array([dp]), np.array([1.0]), np.array([batch]), np.array(["bf16"]))


# --------------------------------------------------------------------------- the file: fits, seal, versions


def test_the_serving_fits_recover_the_rates_the_samples_were_timed_at(files):
    """Known rooflines in, the same rates out: operand bandwidth, KV bandwidth, all-to-all latency and bandwidth."""
    for kind, rates in (("cpu", CPU_DECODE), ("h100", H100_DECODE)):
        cal = load_calibration(files[kind])
        assert cal.schema_version == SCHEMA_VERSION == 3
        for g in cal.fit.decode_gemm.values():
            assert g.operand_bytes_per_s == pytest.approx(rates["operand_rate"], rel=1e-9) and g.memory_bound_points >= 2
        assert cal.fit.decode_attention.kv_bytes_per_s == pytest.approx(rates["kv_rate"], rel=1e-9)
        a2a = cal.fit.decode_all_to_all["scale_up"]
        assert a2a.latency_s == pytest.approx(rates["a2a_latency"], rel=1e-6)
        assert a2a.bytes_per_s == pytest.approx(rates["a2a_rate"], rel=1e-6)
    assert set(load_calibration(files["h100"]).fit.decode_gemm) == {"bf16", "fp8"}


def test_the_decode_gemm_fit_predicts_what_the_serving_rates_charge(files):
    """The fit's decode roofline is the model's: DeviceRates.gemm_s with the serving rates (gemm_sustain 1) gives the
    time the fit predicts for each sample, memory- and compute-bound alike."""
    from dataclasses import replace

    cal = load_calibration(files["cpu"])
    _, rates = calibrated_device("cpu", files["cpu"], replace(DEFAULT, gemm_sustain=1.0), serving=True)
    g, fit = cal.fit.gemm["bf16"], cal.fit.decode_gemm["bf16"]
    for s in cal.samples.decode_gemm:
        assert s.bytes_moved == gemm_bytes_moved(s.m, s.n, s.k, s.dtype)
        curve = np.interp(np.log(s.bytes_moved), *fit.curve.as_curve())
        compute = s.flops / (g.best_flop_per_s * np.interp(np.log(s.flops), *g.curve.as_curve()))
        expected = max(compute, s.bytes_moved / (fit.operand_bytes_per_s * curve)) + cal.fit.kernel_overhead_s
        assert float(rates.gemm_s(s.m, s.n, s.k, "bf16")) == pytest.approx(expected, rel=1e-9)


def test_the_hash_covers_the_serving_samples_and_fits(files):
    cal = load_calibration(files["h100"])
    samples, fit = cal.samples, cal.fit
    changed = [cal.model_copy(update={"samples": samples.model_copy(update={key: []})}) for key in SERVING_KEYS] + [
        cal.model_copy(update={"fit": fit.model_copy(update={"decode_gemm": {}})}),
        cal.model_copy(update={"fit": fit.model_copy(update={"decode_attention": None})}),
        cal.model_copy(update={"fit": fit.model_copy(update={"decode_all_to_all": {}})}),
    ]
    assert len({content_hash(c) for c in [cal, *changed]}) == len(changed) + 1


def _double_kv_rate(raw: dict) -> None:
    raw["fit"]["decode_attention"]["kv_bytes_per_s"] *= 2


def _faster_kv_sample(raw: dict) -> None:
    t = raw["samples"]["decode_attention"][-1]["timing"]
    t["median_s"] /= 2
    t["min_s"] /= 2


def _lower_a2a_latency(raw: dict) -> None:
    raw["fit"]["decode_all_to_all"]["scale_up"]["latency_s"] /= 10


def _faster_a2a_sample(raw: dict) -> None:
    t = raw["samples"]["decode_all_to_all"][0]["timing"]
    t["median_s"] /= 3
    t["min_s"] /= 3


def _double_operand_rate(raw: dict) -> None:
    raw["fit"]["decode_gemm"]["bf16"]["operand_bytes_per_s"] *= 2


@pytest.mark.parametrize(
    ("edit", "needles"),
    [
        (_double_kv_rate, ["fit.decode_attention.kv_bytes_per_s is", "2x"]),
        (_faster_kv_sample, ["fit.decode_attention.", "but its samples give"]),
        (_lower_a2a_latency, ["fit.decode_all_to_all.scale_up.latency_s is", "0.1x"]),
        (_faster_a2a_sample, ["fit.decode_all_to_all.scale_up.", "but its samples give"]),
        (_double_operand_rate, ["fit.decode_gemm.bf16.operand_bytes_per_s is", "2x"]),
    ],
    ids=["kv-rate-x2", "kv-sample", "a2a-latency", "a2a-sample", "operand-rate-x2"],
)
def test_an_edited_serving_number_is_refused(files, tmp_path, edit, needles):
    """By estimate --calibration and calibrate check (assert_refused) and by serve --calibration: with the hash kept
    the hash says so; with the hash recomputed the fit recomputed from the samples names the number."""
    for kind in ("cpu", "h100"):
        plain = forge(files[kind], tmp_path / f"{kind}-plain.json", edit, reseal=False)
        assert_refused(plain, kind, "sha256", "does not match its content")
        resealed = forge(files[kind], tmp_path / f"{kind}-resealed.json", edit, reseal=True)
        assert_refused(resealed, kind, "the stored fit does not follow from its samples", *needles)
        for path, needle in ((plain, "does not match its content"), (resealed, needles[0])):
            out = clean_error(invoke(*SERVE[kind], "--calibration", str(path)), f"calibration {path}", needle, error="prefix")
            assert len(out.strip().splitlines()) == 1 and "costsim calibrate" in out


def test_an_all_to_all_sample_whose_size_contradicts_its_tokens_is_refused(files, tmp_path):
    def edit(raw: dict) -> None:
        raw["samples"]["decode_all_to_all"][1]["tokens_per_rank"] *= 4  # a bigger message, same time

    bad = forge(files["h100"], tmp_path / "tokens.json", edit, reseal=True)
    assert_refused(bad, "h100", "samples.decode_all_to_all.1.size_bytes is", "tokens x 8 copies")


def test_a_gpu_decode_bandwidth_above_its_memory_is_refused(tmp_path):
    """A decode attention 'measured' at 10 TB/s on an H100 (3.35 TB/s) read a cache, not HBM: refused, samples and fit
    consistent and sealed."""
    path = write_calibration(h100_calibration(kv_rate=10e12), tmp_path / "l2.json")
    assert_refused(path, "h100", "decode attention KV bandwidth, 10 TB/s, is above the h100-sxm memory bandwidth")


def _as_version_2(cal: Calibration, path: Path) -> Path:
    """`cal` (without serving measurements) written as costsim wrote version 2 files: no serving keys, hashed by the
    version 2 rule (canonical JSON of everything but sha256)."""
    raw = cal.model_dump(mode="json", by_alias=True)
    for part in ("samples", "fit"):
        for key in SERVING_KEYS:
            assert not raw[part].pop(key)
    for sample in raw["samples"]["memory"]:  # a key added after version 2 (MemorySample.launches)
        assert sample.pop("launches") == 0
    for key in GPU_STATE_KEYS:  # provenance added after version 2 (None on a CPU)
        assert raw["provenance"].pop(key) is None
    raw["schema_version"] = 2
    raw.pop("sha256")
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), allow_nan=False)
    raw["sha256"] = hashlib.sha256(canonical.encode()).hexdigest()
    path.write_text(json.dumps(raw, indent=1))
    return path


def test_a_version_2_file_is_read_as_before(tmp_path):
    """Version 2 files (no serving measurements) load under their own hash and give the same estimate as before;
    serve takes its training fits and says the decode terms are the defaults. A version 2 file holding serving
    samples, or edited, is refused."""
    v2 = _as_version_2(cpu_calibration(serving=False), tmp_path / "v2.json")
    cal = load_calibration(v2)
    assert cal.schema_version == 2 and not cal.samples.decode_gemm and cal.fit.decode_attention is None
    v3 = write_calibration(cpu_calibration(serving=False), tmp_path / "v3.json")
    results = [json.loads(invoke(*ESTIMATE["cpu"], "--calibration", str(p), "--format", "json").output) for p in (v2, v3)]
    assert results[0]["step_time_s"] == results[1]["step_time_s"] > 0
    s = setup_for(ServeRequest("llama-3.2-1b", "cpu", calibration=str(v2)))
    assert s.rates.kv_read_bytes_per_s is None and s.rates.decode_gemm_bandwidth == {}
    assert s.rates.fabric.all_to_all_latency_s is None
    assert "not measured, defaults: decode GEMM, decode attention, decode all-to-all" in s.rates.source

    raw = json.loads(v2.read_text())
    raw["samples"]["decode_attention"] = cpu_calibration().model_dump(mode="json")["samples"]["decode_attention"]
    bad = tmp_path / "v2-serving.json"
    bad.write_text(json.dumps(raw))
    assert_refused(bad, "cpu", "schema_version 2 has no serving measurements", "samples.decode_attention")
    edited = forge(v2, tmp_path / "v2-edited.json", lambda r: r["notes"].append("x"), reseal=False)
    assert_refused(edited, "cpu", "sha256", "does not match its content")


def test_versions_1_and_4_are_refused(files, tmp_path):
    for version, needle in ((1, "covers the samples only"), (4, "schema_version 4 is not supported")):
        raw = json.loads(files["cpu"].read_text())
        raw["schema_version"] = version
        path = tmp_path / f"v{version}.json"
        path.write_text(json.dumps(raw))
        assert_refused(path, "cpu", needle, "this costsim reads version 3, and version 2 without the serving measurements")


# --------------------------------------------------------------------------- serve --calibration


def test_a_doubled_decode_attention_bandwidth_lowers_the_attention_time_of_a_decode_step(files):
    """Same file but for the KV bandwidth of decode attention, twice as fast: the attention core of a decode step of a
    memory-bound batch falls, its KV read term exactly halves; nothing else of the step moves."""
    steps = {}
    for kind in ("h100", "h100-fast-kv"):
        s = setup_for(ServeRequest("llama-3.1-8b", "h100", input_len=4096, output_len=512, calibration=str(files[kind])))
        steps[kind] = {k: float(v[0]) for k, v in step_s(s, one(batch=64)).items()}
    slow, fast = steps["h100"], steps["h100-fast-kv"]
    overhead = load_calibration(files["h100"]).fit.kernel_overhead_s
    layers = 32
    per_layer = [(x["attention_core"] / layers - overhead) for x in (slow, fast)]
    assert fast["attention_core"] < slow["attention_core"]
    assert per_layer[1] == pytest.approx(per_layer[0] / 2, rel=1e-6)
    for key in ("attention_proj", "ffn", "lm_head", "elementwise"):
        assert fast[key] == slow[key]


def test_serve_applies_the_measured_decode_gemm_bandwidth_and_all_to_all_latency(files):
    """Each serving fit replaces its default: the decode GEMMs' memory term at the measured operand bandwidth, the KV
    read at the measured bandwidth, the EP exchange's latency at the measured decode all-to-all latency."""
    cal = load_calibration(files["h100"])
    plain = setup_for(ServeRequest("deepseek-v3", "h100"))
    s = setup_for(ServeRequest("deepseek-v3", "h100", calibration=str(files["h100"])))
    r = s.rates
    assert r.kv_read_bytes_per_s == cal.fit.decode_attention.kv_bytes_per_s
    assert r.decode_gemm_bandwidth["bf16"][0] == cal.fit.decode_gemm["bf16"].operand_bytes_per_s
    assert r.fabric.all_to_all_latency_s == cal.fit.decode_all_to_all["scale_up"].latency_s
    assert r.fabric.exchange_latency_s == pytest.approx(H100_DECODE["a2a_latency"], rel=1e-6)
    assert r.fabric.latency_s == cal.fit.collectives["scale_up"].latency_s  # TP all-reduces keep the collectives' latency
    assert "decode GEMM bf16/fp8, decode attention, scale_up decode all-to-all" in r.source
    # Without a calibration the KV cache is read at the profile's published decode-attention rate (FlashMLA).
    published = load_hardware("h100-sxm")
    assert plain.rates.fabric.all_to_all_latency_s is None
    kv_fraction = published.efficiency.decode_attention.value
    assert plain.rates.kv_read_bytes_per_s == pytest.approx(published.hbm_bytes_per_s * kv_fraction)
    # A 1-token GEMM of a 4096 x 4096 weight is memory-bound: its time is bytes over the measured bandwidth (its curve).
    moved = gemm_bytes_moved(1, 4096, 4096, "bf16")
    expected = moved / (r.decode_gemm_bandwidth["bf16"][0] * np.interp(np.log(moved), *r.decode_gemm_bandwidth["bf16"][1]))
    assert float(r.gemm_s(1, 4096, 4096, "bf16")) == pytest.approx(expected + r.kernel_overhead_s, rel=1e-9)
    # Ten times the all-to-all latency: the EP exchange of a decode step grows by 2 x 9 x the latency (dispatch and
    # combine), in both the low-latency and the normal kernels' model.
    slow = setup_for(ServeRequest("deepseek-v3", "h100", calibration=str(files["h100-slow-a2a"])))
    group = Group(np.array([16.0]), 1)

    def low_latency(tokens, top_k, hidden, dispatch_bytes, combine_bytes, group, fabric):
        return moe_low_latency_exchange_s(tokens, top_k, hidden, dispatch_bytes, group, fabric) + (
            moe_low_latency_exchange_s(tokens, top_k, hidden, combine_bytes, group, fabric)
        )

    for fn, extra in ((low_latency, ()), (moe_dispatch_combine_s, (8,))):
        times = [float(fn(np.array([8.0]), 8, 7168, 1.0, 2.0, group, x.rates.fabric, *extra)[0]) for x in (s, slow)]
        assert times[1] - times[0] == pytest.approx(2 * 9 * H100_DECODE["a2a_latency"], rel=1e-6)


def test_without_a_calibration_the_exchange_latency_is_the_fabrics():
    fabric = Fabric(1e11, 1e10, 8, 1e-5)
    assert fabric.exchange_latency_s == 1e-5 and fabric.all_to_all_latency_s is None


def test_serve_with_a_calibration_says_so_and_uses_its_rates(files):
    result = invoke(*SERVE["h100"], "--calibration", str(files["h100"]), "--format", "json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.output)
    rates = next(a for a in d["assumptions"] if a["name"] == "rates")
    assert rates["value"].startswith(f"calibration {files['h100']} (") and rates["source"] == "costsim calibrate (--calibration)"
    plain = json.loads(invoke(*SERVE["h100"], "--format", "json").output)
    assert d["decode"]["output_tokens_per_s_per_gpu"] != plain["decode"]["output_tokens_per_s_per_gpu"]
    # The API takes the same option.
    api = serve(ServeRequest("llama-3.1-8b", "h100", phase="decode", calibration=str(files["h100"]))).to_dict()
    assert api["decode"]["output_tokens_per_s_per_gpu"] == pytest.approx(d["decode"]["output_tokens_per_s_per_gpu"], rel=1e-12)
    cpu = invoke(*SERVE["cpu"], "--calibration", str(files["cpu"]), "--format", "json")
    assert cpu.exit_code == 0, cpu.output
    assert json.loads(cpu.output)["decode"]["output_tokens_per_s_per_gpu"] > 0


def test_serve_refuses_a_calibration_of_another_device(files, tmp_path):
    """Mirrors estimate --calibration: a GPU calibration only for its profile, a CPU calibration only with --gpu cpu."""
    h100, cpu = str(files["h100"]), str(files["cpu"])
    clean_error(invoke("serve", "llama-3.1-8b", "--gpu", "a100", "--calibration", h100), "not on a100-80gb",
                "pass --gpu h100-sxm", error="prefix")  # fmt: skip
    clean_error(invoke("serve", "llama-3.1-8b", "--gpu", "cpu", "--calibration", h100), error="prefix")
    clean_error(invoke("serve", "llama-3.1-8b", "--gpu", "h100", "--calibration", cpu), "measured on a CPU", "--gpu cpu",
                error="prefix")  # fmt: skip
    missing = tmp_path / "missing.json"
    clean_error(invoke("serve", "llama-3.1-8b", "--gpu", "h100", "--calibration", str(missing)), "no such file", error="prefix")
    for gpu in ("h100", "h100-sxm"):
        assert invoke("serve", "llama-3.1-8b", "--gpu", gpu, "--phase", "decode", "--calibration", h100).exit_code == 0


def test_estimate_reads_the_training_fits_only(files, tmp_path):
    """The serving fits change no training estimate: the same file without them gives the same estimate."""
    without = write_calibration(h100_calibration(serving=False), tmp_path / "training-only.json")
    est = [*ESTIMATE["h100"], "--format", "json", "--calibration"]
    a, b = (json.loads(invoke(*est, str(p)).output) for p in (files["h100"], without))
    assert a["step_time_s"] == b["step_time_s"] > 0
    _, rates = calibrated_device("h100", files["h100"], DEFAULT)
    assert rates.kv_read_bytes_per_s == device_rates(load_hardware("h100"), DEFAULT).kv_read_bytes_per_s  # the profile's
    assert rates.decode_gemm_bandwidth == {}
    assert rates.fabric.all_to_all_latency_s is None and "decode" not in rates.source
