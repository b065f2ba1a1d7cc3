"""The Python API checks what a caller passes as the command line checks its flags (simulator/inputs/arguments.py).

From a fuzzing review: api.estimate(..., seq_len=-1) returned -75M GPU-hours, tp=-2 a third of the real run, tp=0 a
ZeroDivisionError, uncertainty="no" turned the band on, and None, numbers or text in the wrong place escaped as raw
TypeErrors. Each now raises the project's InputError naming the field and the value."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator import api
from simulator.errors import InputError
from simulator.inputs.arguments import layout_values

RUN = ("llama-3.1-8b", "h100", 8, "1T")

ESTIMATE_CASES = {
    "seq_len": [-1, 0, True, "8192", math.nan, 10**8],
    "tp": [-2, 0, "2", 2.5, True],
    "pp": [-1, 0],
    "zero_stage": [4, -1, "1"],
    "schedule": ["x", 1],
    "recompute": [True, "all"],
    "tp_overlap": ["no", 1],
    "dropout": [5.0, -1, math.nan, "0.1", None],
    "attention_kernel": ["x", 1],
    "stack": [5],
    "calibration": [5],
}


@pytest.mark.parametrize(("field", "value"), [(f, v) for f, values in ESTIMATE_CASES.items() for v in values], ids=repr)
def test_estimate_refuses_a_bad_keyword_naming_it(field, value):
    with pytest.raises(InputError, match=field):
        api.estimate(*RUN, **{field: value})


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"usd_per_gpu_hour": "2"}, "--usd-per-gpu-hour"),
        ({"usd_per_gpu_hour": True}, "--usd-per-gpu-hour"),
        ({"pue": "1.2"}, "--pue"),
        ({"uncertainty": "no"}, "uncertainty"),
        ({"uncertainty": True, "draws": "100"}, "draws"),
        ({"uncertainty": True, "draws": 100.0}, "draws"),
        ({"uncertainty": True, "seed": None}, "seed"),
        ({"uncertainty": True, "tokens_spread": "0.1"}, "tokens_spread"),
    ],
)
def test_estimate_refuses_bad_prices_and_band_options(kwargs, named):
    with pytest.raises(InputError, match=named):
        api.estimate(*RUN, **kwargs)


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda: api.estimate(None, "h100", 8, "1T"), "model=None"),
        (lambda: api.estimate(5, "h100", 8, "1T"), "model=5"),
        (lambda: api.estimate("llama-3.1-8b", None, 8, "1T"), "gpu=None"),
        (lambda: api.serve(None, "h100"), "model=None"),
        (lambda: api.plan(None), "plan=None"),
        (lambda: api.compare(None, "deepseek-v3"), "plan=None"),
        (lambda: api.search(None, "h100", 8, "1T"), "model=None"),
        (lambda: api.search(*RUN, top="3"), "top"),
        (lambda: api.claim(plan=5, gpu_hours="1M"), "plan=5"),
        (lambda: api.claim("deepseek-v3", "h800", "2.6M", "14.8T", num_gpus="2048"), "--num-gpus .2048. must be a whole number"),
        (lambda: api.claim(plan="deepseek-v3", gpu_hours="2.6M", stages=[1]), r"stages=\[1\] must be a list of stage names"),
    ],
)
def test_every_entry_point_names_a_wrong_type(call, named):
    with pytest.raises(InputError, match=named):
        call()


def test_layout_values_pass_good_fields_through():
    good = {"tp": 8, "pp": 2, "zero_stage": 0, "schedule": "interleaved", "recompute": "full", "tp_overlap": False}
    assert layout_values(good) == good
    assert api.estimate(*RUN, tp=2, pp=1).gpu_hours > 0


def test_numpy_values_from_a_search_frame_pass_as_python_values():
    """A layout read back from api.search(...).to_frame() holds numpy integers; the checks take them (a review found
    'tp=np.int64(2) must be a whole number') and hand the model Python ints."""
    import numpy as np

    assert layout_values({"tp": np.int64(2), "tp_overlap": np.bool_(False)}) == {"tp": 2, "tp_overlap": False}
    assert type(layout_values({"pp": np.int32(4)})["pp"]) is int
    a = api.estimate(*RUN, seq_len=np.int64(8192), tp=np.int64(2), pp=1)
    b = api.estimate(*RUN, seq_len=8192, tp=2, pp=1)
    assert a.gpu_hours == b.gpu_hours
    with pytest.raises(InputError, match="tp"):
        api.estimate(*RUN, tp=np.float64(2.0))


def test_a_claim_band_takes_a_model_path_and_a_zero_price():
    """A Path to a spec loaded for the claim but not for its band (AttributeError); a claim stated at $0 per GPU-hour
    refused its GPU-hour band, which is what the claim is judged by (its dollars stay at the estimate's price)."""
    from pathlib import Path

    from simulator.inputs.data_files import model_dir

    common = {"num_gpus": 2048, "uncertainty": True, "draws": 100}
    by_path = api.claim(Path(model_dir() / "deepseek-v3.yaml"), "h800", "2.788M", "14.8T", **common)
    by_name = api.claim("deepseek-v3", "h800", "2.788M", "14.8T", **common)
    assert by_path.uncertainty.bands["gpu_hours"].p50 == by_name.uncertainty.bands["gpu_hours"].p50
    free = api.claim("deepseek-v3", "h800", "2.788M", "14.8T", usd_per_gpu_hour=0.0, **common).uncertainty
    assert free.bands["gpu_hours"].p50 == by_name.uncertainty.bands["gpu_hours"].p50


@pytest.mark.parametrize("price", [1e-300, 0.0])
def test_fleet_and_price_claim_refuse_a_price_under_a_cent(price):
    """1e-300 per GPU-hour printed a 300-digit fleet margin and a 5e302x cost ratio."""
    with pytest.raises(InputError, match="0.01"):
        api.fleet("deepseek-v3-r1-day", usd_per_gpu_hour=price)
    with pytest.raises(InputError, match="0.01"):
        api.price_claim("deepseek-reasoner-2025", "openai-o1-2025-01", "20-50", usd_per_gpu_hour=price)


def test_numpy_and_fraction_numbers_give_plain_results():
    """A review's usd_per_gpu_hour=np.int64(2) broke .to_dict()'s JSON and np.float32 priced in float32: every entry
    point takes numpy and Fraction numbers as the Python ones they stand for, and returns plain data."""
    import json
    from fractions import Fraction

    layout = {"tp": np.int64(1), "pp": 1, "zero_stage": 3, "micro_batch_size": 1, "schedule": "1f1b", "recompute": "none"}
    plain = api.estimate("llama-3.1-8b", "h100", 64, "1T", usd_per_gpu_hour=2.5, **layout).to_dict()
    for price in (np.float32(2.5), Fraction(5, 2), np.float64(2.5)):
        d = api.estimate("llama-3.1-8b", "h100", np.int64(64), "1T", usd_per_gpu_hour=price, **layout).to_dict()
        assert json.loads(json.dumps(d))["cost_usd"] == plain["cost_usd"]
    s = api.serve("llama-3.1-70b", "h100", tp=np.int64(2), cache_hit_rate=np.float32(0.5)).to_dict()
    assert type(s["prefill"]["layout"]["tp"]) is int and json.dumps(s)
    assert json.dumps(api.claim("deepseek-v3", "h800", "2.664M", "14.8T", num_gpus=np.int64(2048)).to_dict())


def test_write_report_checks_its_arguments(tmp_path):
    """force='no' (truthy) overwrote a report, and output=None or a string for `given` failed inside (a review)."""
    from simulator.errors import CostsimError

    e = api.estimate("llama-3.1-8b", "h100", 8, "10B", tp=1, pp=1, zero_stage=3, micro_batch_size=1, schedule="1f1b",
                     recompute="none")  # fmt: skip
    for kwargs, needle in ((dict(output=str(tmp_path), force="no"), "force='no' must be True or False"),
                           (dict(output=None), "must be a folder path"),
                           (dict(output=str(tmp_path / "r"), given="tp=1"), "must be a dict of layout fields"),
                           (dict(output=str(tmp_path / "r"), given={"foo": 1}), "must be a dict of layout fields"),
                           (dict(output=str(tmp_path / "r"), given={"tp": 3}), "is not this estimate's layout"),
                           (dict(output=str(tmp_path / "r"), command=None), "must be text")):  # fmt: skip
        with pytest.raises(CostsimError, match=needle):
            e.write_report(**kwargs)


def test_a_claim_far_above_the_expected_run_says_so_and_one_below_a_step_is_refused():
    """A review's 1,000B GPU-hours for DeepSeek-V3's 14.8T tokens (232,512x the expected run) read plainly PLAUSIBLE, and
    --tokens 1 was taken (estimate refuses tokens below one step)."""
    from simulator.errors import InputError

    far = api.claim("deepseek-v3", "h800", "1000B", "14.8T", num_gpus=2048).to_dict()
    assert far["verdict"] == "plausible" and "an order of magnitude beyond any realization" in far["reason"]
    with pytest.raises(InputError, match="less than one step"):
        api.claim("deepseek-v3", "h800", "2.664M", "1", num_gpus=2048)


def test_an_argument_an_entry_point_does_not_take_is_named():
    """plan(..., tp=2) and price_claim(..., foo=1) raised a bare TypeError where estimate names an unknown option (a
    review): every entry point names it and what it takes."""
    with pytest.raises(InputError, match=r"plan\(\): got an unexpected keyword argument 'tp'; it takes plan, pricing"):
        api.plan("deepseek-v3", tp=2)
    with pytest.raises(InputError, match="price_claim"):
        api.price_claim("deepseek-reasoner-2025", "openai-o1-2025-01", 20, foo=1)


def test_the_second_review_s_api_gaps():
    """compare and validate name an unknown argument too; search refuses a reference or progress of the wrong type;
    Fraction(64) is 64 GPUs, an int."""
    from fractions import Fraction

    with pytest.raises(InputError, match="compare"):
        api.compare("deepseek-v3", "llama-3.1-405b", foo=1)
    with pytest.raises(InputError, match="reference"):
        api.search("llama-3.1-8b", "h100", 8, "1T", reference={"tp": 1})
    with pytest.raises(InputError, match="progress"):
        api.search("llama-3.1-8b", "h100", 8, "1T", progress=5)
    assert api.estimate("llama-3.1-8b", "h100", Fraction(64), "1T").to_dict()["num_gpus"] == 64


def test_band_options_need_uncertainty_in_the_api_too():
    """draws=-3 or tokens_spread=5 without uncertainty=True were ignored by the API while the CLI refuses them."""
    with pytest.raises(InputError, match="only apply with uncertainty=True"):
        api.estimate("llama-3.1-8b", "h100", 64, "1T", draws=-3)
    with pytest.raises(InputError, match="tokens_spread=5"):
        api.plan("deepseek-v3", tokens_spread=5)
