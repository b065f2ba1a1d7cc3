"""The shipped hardware profiles load, are internally consistent, and bad profiles fail loudly."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from cli_support import REQUIRED_GPU_IDS

from simulator.errors import SpecError
from simulator.inputs.catalog import load_hardware, load_hardware_file
from simulator.inputs.data_files import hardware_dir
from simulator.inputs.specs import HardwareProfile

PROFILE_PATHS = sorted(hardware_dir().glob("*.yaml"))


# Vendor 2:4-sparse BF16 headlines (TFLOP/s; "with sparsity" rows of the NVIDIA H100/H200/A100/A800/L40S/B200/GB200
# datasheets and the AMD MI300X datasheet, as quoted with their sources in hardware_profiles/*.yaml). A dense BF16
# peak must be half of these, never the headline; 1% slack covers rounding of the headline (A800's 623.8 against 312 dense).
SPARSE_BF16_HEADLINE = {
    "h100-sxm": 1979,
    "h800": 1979,
    "h200": 1979,
    "h100-pcie": 1513,
    "a100-40gb": 624,
    "a100-80gb": 624,
    "a800": 623.8,
    "b200": 4500,
    "gb200": 5000,
    "l40s": 733,
    "mi300x": 2614.9,
}

PEAK_DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "fp4")


def _profiles() -> list[HardwareProfile]:
    return [load_hardware_file(p) for p in PROFILE_PATHS]


def _write(tmp_path: Path, raw: dict, stem: str | None = None) -> Path:
    path = tmp_path / f"{stem or raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False))
    return path


@pytest.fixture
def h800_raw() -> dict:
    return yaml.safe_load((hardware_dir() / "h800.yaml").read_text())


# --------------------------------------------------------------------------- shipped profiles


def test_profiles_are_shipped():
    assert len(PROFILE_PATHS) >= len(REQUIRED_GPU_IDS)


@pytest.mark.parametrize("path", PROFILE_PATHS, ids=lambda p: p.stem)
def test_every_profile_loads(path: Path):
    hw = load_hardware_file(path)
    assert hw.name == path.stem
    assert all(alias == alias.lower() for alias in hw.aliases)


@pytest.mark.parametrize("gpu", REQUIRED_GPU_IDS)
def test_required_ids_resolve(gpu: str):
    assert load_hardware(gpu).name == gpu


def test_ids_and_aliases_are_unique():
    seen: dict[str, str] = {}
    for hw in _profiles():
        for key in [hw.name, *hw.aliases]:
            assert key not in seen, f"{key!r} names both {seen[key]} and {hw.name}"
            seen[key] = hw.name


@pytest.mark.parametrize("hw", _profiles(), ids=lambda hw: hw.name)
def test_aliases_give_the_same_profile(hw: HardwareProfile):
    for alias in hw.aliases:
        assert load_hardware(alias) == load_hardware(hw.name)
        assert load_hardware(alias.upper()) == hw


def test_known_aliases():
    assert load_hardware("h800-sxm5").name == "h800"
    assert load_hardware("a100").name == "a100-80gb"
    assert load_hardware("v100-sxm2-32gb").name == "v100"
    assert load_hardware("h200-141gb").name == "h200"


@pytest.mark.parametrize("hw", _profiles(), ids=lambda hw: hw.name)
def test_dense_peaks_are_consistent(hw: HardwareProfile):
    peaks = hw.dense_tflop_per_s
    bf16 = peaks.bf16.value
    assert peaks.fp16.value == pytest.approx(bf16, rel=0.01)
    if peaks.fp8 is not None:
        assert peaks.fp8.value == pytest.approx(2 * bf16, rel=0.03), "dense fp8 should be ~2x dense bf16"
    if peaks.tf32 is not None:
        assert bf16 >= peaks.tf32.value
    assert bf16 > peaks.fp32.value


@pytest.mark.parametrize("gpu", sorted(SPARSE_BF16_HEADLINE))
def test_bf16_peak_is_dense_not_sparse(gpu: str):
    bf16 = load_hardware(gpu).dense_tflop_per_s.bf16.value
    assert bf16 <= SPARSE_BF16_HEADLINE[gpu] / 2 * 1.01


def test_h100_bf16_is_dense():
    assert load_hardware("h100-sxm").dense_tflop_per_s.bf16.value < 1000
    assert load_hardware("h800").dense_tflop_per_s.bf16.value < 1000


def test_no_fp8_on_ampere_and_volta():
    for gpu in ("a100-40gb", "a100-80gb", "a800", "v100"):
        hw = load_hardware(gpu)
        assert not hw.has_dtype("fp8")
        with pytest.raises(SpecError, match="no dense fp8 peak"):
            hw.peak_flop_per_s("fp8")


@pytest.mark.parametrize("hw", _profiles(), ids=lambda hw: hw.name)
def test_efficiencies_cover_every_peak_and_are_fractions(hw: HardwareProfile):
    eff = hw.efficiency
    with_peak = {d for d in PEAK_DTYPES if hw.has_dtype(d)}
    assert set(eff.gemm_best) == with_peak
    for name in ("attention", "hbm", "scale_up_bus", "scale_out_bus"):
        assert 0 < getattr(eff, name).value <= 1, name
    assert eff.collective_latency_us.value > 0


@pytest.mark.parametrize("hw", _profiles(), ids=lambda hw: hw.name)
def test_price_and_sources_are_well_formed(hw: HardwareProfile):
    assert re.fullmatch(r"\d{4}-\d{2}", hw.price.date)
    assert hw.price.source in hw.sources
    for citation in hw.sources.values():
        assert "shared/" not in citation


def test_documented_link_rates():
    # Sources: DeepSeek-V3 report §3.2.2 (H800 NVLink 160 GB/s measured of 200 per direction; IB 50 GB/s = 400 Gb/s
    # per GPU), NVIDIA A100/V100/B200/GB200 datasheets (NVLink 600/300/1800/1800 GB/s bidirectional, NVL72 domain),
    # H100 PCIe NVLink bridge pairs, A800 200 Gb/s NICs; the H800 price is the V3 report's $2/GPU-hour (Table 1).
    assert load_hardware("h800").scale_up.gb_per_s_per_direction.value == 200
    assert load_hardware("a100-80gb").scale_up.gb_per_s_per_direction.value == 300
    assert load_hardware("v100").scale_up.gb_per_s_per_direction.value == 150
    assert load_hardware("b200").scale_up.gb_per_s_per_direction.value == 900
    gb200 = load_hardware("gb200")
    assert gb200.domain_gpus == 72
    assert gb200.scale_up.gb_per_s_per_direction.value == 900
    assert load_hardware("h100-pcie").domain_gpus == 2
    assert load_hardware("h800").scale_out.gbit_per_s_per_gpu.value == 400
    assert load_hardware("a800").scale_out.gbit_per_s_per_gpu.value == 200
    h800_price = load_hardware("h800").price
    assert (h800_price.usd_per_gpu_hour, h800_price.kind, h800_price.date) == (2.0, "reserved", "2024-12")


# --------------------------------------------------------------------------- bad input


def test_unknown_id_suggests_close_match():
    with pytest.raises(SpecError) as err:
        load_hardware("h80")
    assert "h800" in str(err.value)


def test_misspelt_key_is_named(tmp_path: Path, h800_raw: dict):
    raw = copy.deepcopy(h800_raw)
    raw["memory_gb"] = raw.pop("memory_gib")
    with pytest.raises(SpecError) as err:
        load_hardware_file(_write(tmp_path, raw))
    assert "memory_gb" in str(err.value)


def test_memory_in_bytes_is_rejected(tmp_path: Path, h800_raw: dict):
    raw = copy.deepcopy(h800_raw)
    raw["memory_gib"]["value"] = 85.9e9
    with pytest.raises(SpecError) as err:
        load_hardware_file(_write(tmp_path, raw))
    assert "memory_gib" in str(err.value)


def test_source_key_must_be_listed(tmp_path: Path, h800_raw: dict):
    raw = copy.deepcopy(h800_raw)
    raw["tdp_w"]["source"] = "no_such_source"
    with pytest.raises(SpecError) as err:
        load_hardware_file(_write(tmp_path, raw))
    assert "no_such_source" in str(err.value)


def test_name_must_match_file_stem(tmp_path: Path, h800_raw: dict):
    with pytest.raises(SpecError, match="must match the file name"):
        load_hardware_file(_write(tmp_path, h800_raw, stem="h800-copy"))


def test_profile_path_loads(tmp_path: Path, h800_raw: dict):
    assert load_hardware(str(_write(tmp_path, h800_raw))) == load_hardware("h800")


def _with_table(h800_raw: dict, **table) -> dict:
    raw = copy.deepcopy(h800_raw)
    row = {"domains": 2, "ranks_per_domain": 8, "source": raw["efficiency"]["scale_out_bus"]["source"],
           "times_us": {1024: 30.0, 1048576: 72.0}}  # fmt: skip
    raw["efficiency"]["all_reduce_measured"] = [{**row, **table}]
    return raw


def test_measured_all_reduce_table_loads(tmp_path: Path, h800_raw: dict):
    hw = load_hardware_file(_write(tmp_path, _with_table(h800_raw)))
    (table,) = hw.efficiency.all_reduce_measured
    sizes, times = table.lower_envelope()
    assert sizes == (1024.0, 1048576.0) and times == pytest.approx((30e-6, 72e-6), rel=1e-12)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"times_us": {1024: 30.0}}, "needs at least two points and at most 1000, not 1"),
        ({"times_us": {1024: -1.0, 2048: 30.0}}, "out of range"),
        ({"times_us": {0.5: 1.0, 2048: 30.0}}, "out of range"),
        ({"ranks_per_domain": 9}, "exceed the 8 GPUs"),
        ({"source": "no_such_source"}, "no_such_source"),
        ({"domains": 0}, "domains"),
    ],
)
def test_bad_measured_all_reduce_table_is_refused(tmp_path: Path, h800_raw: dict, table: dict, message: str):
    with pytest.raises(SpecError, match=message):
        load_hardware_file(_write(tmp_path, _with_table(h800_raw, **table)))
