"""The vectorized layout search, `costsim search` and `costsim sweep`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_support import invoke
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from simulator.analysis.sweep import parse_gpu_counts
from simulator.errors import InputError, LayoutError
from simulator.inputs.assumptions import DEFAULT
from simulator.inputs.catalog import load_hardware, load_model
from simulator.inputs.job import Job, with_fp8_recipe
from simulator.inputs.specs import ModelSpec
from simulator.model.efficiency import device_rates
from simulator.model.flops import parameter_counts
from simulator.model.layer_work import token_flops
from simulator.model.layout import layout_problems
from simulator.model.step_time import evaluate, step
from simulator.run.estimate import estimate
from simulator.run.search import search
from simulator.units import SECONDS_PER_HOUR

V3 = load_model("deepseek-v3")
LLAMA = load_model("llama-3.1-405b")
H800 = load_hardware("h800")
H100 = load_hardware("h100-sxm")
V3_JOB = with_fp8_recipe(Job(2048, 14.8e12, 4096, 62914560, "fp8"), V3)  # block scaling, as published
LLAMA_JOB = Job(16384, 15.6e12, 8192, 2048 * 8192, "bf16")


@pytest.fixture(scope="module")
def v3_search():
    return search(V3, H800, V3_JOB)


@pytest.fixture(scope="module")
def llama_search():
    return search(LLAMA, H100, LLAMA_JOB)


def _agree(model, hw, job, result, n_samples: int, seed: int) -> None:
    rates = device_rates(hw, DEFAULT)
    counts = parameter_counts(model)
    rng = np.random.default_rng(seed)
    sample = rng.choice(result.n_valid, size=n_samples, replace=False)
    # The search skips the breakdown; a batch of the sampled layouts computes it with the same code.
    batch = evaluate(model, job, result.layouts.take(sample), rates, counts, DEFAULT)
    for j, i in enumerate(sample):
        lay = result.layouts.at(int(i))
        assert layout_problems(model, job, lay) == []
        one = step(model, job, lay, rates, counts, DEFAULT)
        assert one.step_time_s == pytest.approx(result.steps.step_time_s[i], rel=1e-9, abs=0)
        assert one.step_time_s == pytest.approx(batch.step_time_s[j], rel=1e-9, abs=0)
        assert one.memory.total_bytes == pytest.approx(result.memory_bytes[i], rel=1e-9, abs=0)
        assert sum(one.breakdown_s.values()) == pytest.approx(one.step_time_s, rel=1e-9)
        for key, value in batch.breakdown_s.items():
            assert one.breakdown_s.get(key, 0.0) == pytest.approx(value[j], rel=1e-9, abs=1e-15), key


def test_scalar_and_vectorized_agree_for_deepseek_v3(v3_search):
    _agree(V3, H800, V3_JOB, v3_search, 40, seed=1)


def test_scalar_and_vectorized_agree_for_llama_405b(llama_search):
    _agree(LLAMA, H100, LLAMA_JOB, llama_search, 40, seed=2)


def test_search_spaces_hold_at_least_100k_candidates(v3_search, llama_search):
    for result in (v3_search, llama_search):
        assert result.grid_size >= 100_000
        invalid = result.grid_size - result.n_valid
        # Invalid candidates are counted by rule; a candidate may break several rules.
        assert sum(result.invalid_by_rule.values()) >= invalid > 0
        assert 0 < result.n_feasible < result.n_valid


def test_ranking_is_feasible_first_then_fastest(v3_search):
    r = v3_search
    feasible = r.feasible[r.order]
    n_ok = int(feasible.sum())
    assert feasible[:n_ok].all() and not feasible[n_ok:].any()
    times = r.steps.step_time_s[r.order[:n_ok]]
    assert np.all(np.diff(times) >= 0)
    assert np.all(r.memory_bytes[r.feasible] <= H800.memory_bytes)
    assert np.all(r.memory_bytes[~r.feasible] > H800.memory_bytes)


def test_partial_ranking_agrees_with_the_full_order(v3_search):
    r = v3_search
    for k in (1, 10, 1000):
        assert np.array_equal(r.top(k), r.order[:k])
    for match in ({"tp": 1, "pp": 16, "ep": 64, "schedule": "dualpipe"}, {"pp": 32}, {"zero_stage": 0, "tp": 8}):
        rank = r.rank_of(match)
        i = r.order[rank]
        assert all(getattr(r.layouts, k)[i] == v for k, v in match.items())
        earlier = r.order[:rank]
        assert not any(all(getattr(r.layouts, k)[j] == v for k, v in match.items()) for j in earlier)


def test_estimate_picks_the_search_best():
    est = estimate(V3, H800, V3_JOB, {})
    result = search(V3, H800, V3_JOB, {"tp_overlap": False})  # estimate leaves TP overlap off unless asked
    best = result.best()
    assert est.layout == result.layouts.at(best)
    assert est.step_time_s == pytest.approx(result.steps.step_time_s[best], rel=1e-9)
    assert est.gpu_hours == pytest.approx(result.gpu_hours[best], rel=1e-9)


def test_published_v3_layout_is_ranked_or_explained():
    """Done-when of issue 3: the published layout (TP1, PP16, EP64, DualPipe) is in the top 10 feasible
    layouts, or the output shows which terms make the better layouts faster."""
    res = invoke(
        *"search deepseek-v3 --gpu h800 --num-gpus 2048 --tokens 14.8T --seq-len 4096 "
        "--global-batch-tokens 62914560 --precision fp8 --format json".split(),
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    cands = doc["candidates"]
    assert len(cands) == 1000 and doc["evaluated"] > 100_000 and doc["evaluated"] > doc["feasible"] > 0
    for row in cands[:5] + cands[-5:]:
        assert set(row) >= {"layout", "feasible", "step_time_s", "gpu_hours", "memory_per_gpu_gib", "reason"}
    assert cands[0]["feasible"] and cands[0]["reason"] == ""
    steps = [c["step_time_s"] for c in cands if c["feasible"]]
    assert steps == sorted(steps)  # best first
    ref = doc["reference"]
    assert ref["layout"] == {"tp": 1, "pp": 16, "ep": 64, "cp": 1, "zero_stage": 1, "schedule": "dualpipe"}
    assert ref["rank"] is not None and ref["feasible"]
    if not ref["in_top_10_feasible"]:
        _check_why_slower(ref["why_slower"])


def _check_why_slower(why: dict) -> None:
    assert why["reference_step_time_s"] > why["best_step_time_s"]
    diffs = sum(t["reference_minus_best_s"] for t in why["terms_s"])
    assert diffs == pytest.approx(why["reference_step_time_s"] - why["best_step_time_s"], rel=1e-6)
    assert "less time per step than" in why["summary"]


def test_a_slower_reference_is_explained_term_by_term():
    # TP8 x PP8 for an 8B model on 64 GPUs: feasible, far from the best, so the explanation must be there.
    res = invoke(*"search llama-3.1-8b --gpu h100-sxm --num-gpus 64 --tokens 1T --reference tp=8,pp=8 --format json".split())
    assert res.exit_code == 0, res.output
    ref = json.loads(res.stdout)["reference"]
    assert ref["feasible"] and ref["rank"] > 10 and not ref["in_top_10_feasible"]
    _check_why_slower(ref["why_slower"])


def test_search_table_shows_top_layouts_and_headroom():
    res = invoke(*"search llama-3.1-8b --gpu h100-sxm --num-gpus 64 --tokens 1T --top 5".split())
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert "candidates" in lines[0] and lines[1].startswith("priced at $2.10/GPU-hour") and "free" in lines[3]
    assert sum(1 for line in lines if line.strip().startswith(("1 ", "2 ", "3 ", "4 ", "5 "))) == 5
    assert "step time breakdown of #1" in res.stdout


def test_nothing_fits_is_data_not_an_error():
    res = invoke(*"search llama-3.1-405b --gpu l40s --num-gpus 8 --tokens 1T --format json".split())
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["feasible"] == 0 and doc["best"] is None
    assert all(not c["feasible"] and "does not fit" in c["reason"] for c in doc["candidates"])
    table = invoke(*"search llama-3.1-405b --gpu l40s --num-gpus 8 --tokens 1T".split())
    assert table.exit_code == 0 and "no layout fits" in table.stdout
    least = doc["closest"]["memory_per_gpu_gib"]
    assert least <= min(c["memory_per_gpu_gib"] for c in doc["candidates"])  # the least of all, listed or not
    assert f"needs {least:.1f} GiB" in table.stdout  # the closest is the one needing the least memory


@pytest.mark.parametrize(
    "args, needle",
    [
        ("search llama-3.1-8b --gpu h999 --num-gpus 64 --tokens 1T", "h999"),
        ("search llama-3.1-8b --gpu h100 --num-gpus 64 --tokens lots", "--tokens"),
        ("search llama-3.1-8b --gpu h100 --num-gpus 64 --tokens 1T --reference tp=x", "integer"),
        ("search llama-3.1-8b --gpu h100 --num-gpus 64 --tokens 1T --reference speed=3", "FIELD=VALUE"),
        ("search llama-3.1-8b --gpu h100 --num-gpus 64 --tokens 1T --tp 3", "no valid layout"),
        ("sweep llama-3.1-8b --gpu h100 --num-gpus 8,x --tokens 1T", "--num-gpus"),
        ("sweep llama-3.1-8b --gpu h100,nope --num-gpus 8,16 --tokens 1T", "nope"),
        ("sweep llama-3.1-8b --gpu h100 --num-gpus 8,16 --tokens 1k", "less than one step"),
        ("sweep llama-3.1-8b --gpu h100 --num-gpus 8 --tokens 1T --output /nonexistent/dir/x.csv", "does not exist"),
        ("sweep llama-3.1-8b --gpu h100 --num-gpus 8 --tokens 1T --plot /tmp/x.txt", ".png"),
        ("estimate --plan deepseek-v3 --precision bf16", "drop --precision"),
    ],
)
def test_bad_input_is_one_clean_message(args, needle):
    res = invoke(*args.split())
    assert res.exit_code != 0
    assert needle in res.output
    assert "Traceback" not in res.output


def test_gpu_count_ranges():
    assert parse_gpu_counts("256,512,...,4096") == [256, 512, 1024, 2048, 4096]
    assert parse_gpu_counts("64, 8,16") == [8, 16, 64]
    with pytest.raises(InputError, match="1,000,000"):
        parse_gpu_counts("8,16,...,2000000")  # a range obeys the same cap as a list
    # A range whose ratio is not whole, and an empty item, are named (a review: a generic message, and silence).
    with pytest.raises(InputError, match="96 / 64 is not whole"):
        parse_gpu_counts("64,96,...,1024")
    with pytest.raises(InputError, match="empty item"):
        parse_gpu_counts("64,,128")
    # A review's 8,24,...,100 stopped at 72 without a word: a range ends at the count it names.
    with pytest.raises(InputError, match="100 is not in the range 8, 24, 72, ... .*end it at 72 or 216"):
        parse_gpu_counts("8,24,...,100")


def test_sweep_takes_one_row_per_gpu_whatever_its_aliases():
    """A review's --gpu h100,h100-sxm,H100 printed the same H100 rows three times."""
    doc = json.loads(
        invoke(*"sweep llama-3.1-8b --tokens 1T --gpu h100,h100-sxm,H100 --num-gpus 64 --format json".split()).output
    )
    assert [r["gpu"] for r in doc["rows"]] == ["h100-sxm"]


def test_sweep_writes_png_and_csv_and_answers_inverse_questions(tmp_path):
    import matplotlib.image

    png, csv_path = tmp_path / "sweep.png", tmp_path / "sweep.csv"
    res = invoke(
        *[
            *"sweep deepseek-v3 --gpu h800,h100-sxm --num-gpus 1024,2048,4096 --tokens 14.8T --seq-len 4096".split(),
            *"--global-batch-tokens 62914560 --precision fp8 --tp 1 --schedule dualpipe --format json".split(),
            *["--deadline-days", "60", "--budget-usd", "5e6", "--plot", str(png), "--output", str(csv_path)],
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    rows = doc["rows"]
    assert len(rows) == 6 and all(r["feasible"] for r in rows)
    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400
    assert csv_path.read_text().count("\n") == 7
    by = {(r["gpu"], r["num_gpus"]): r for r in rows}
    # The H800 differs from the H100 only in NVLink (400 vs 900 GB/s): it can be slower, never faster.
    for n in (1024, 2048, 4096):
        assert by[("h800", n)]["step_time_s"] >= by[("h100-sxm", n)]["step_time_s"] * (1 - 1e-9)
    for r in rows:
        assert r["gpu_hours"] == pytest.approx(r["wall_clock_days"] * 24 * r["num_gpus"], rel=1e-9)
    deadline = doc["deadline_days"]["answer"]
    ok = [r for r in rows if r["wall_clock_days"] <= 60]
    assert deadline["cost_usd"] == min(r["cost_usd"] for r in ok) and deadline["wall_clock_days"] <= 60
    budget = doc["budget_usd"]["answer"]
    within = [r for r in rows if r["cost_usd"] <= 5e6]
    assert budget["wall_clock_days"] == min(r["wall_clock_days"] for r in within)


# ------------------------------------------------------------------ properties over random models and clusters


@st.composite
def models(draw):
    heads = draw(st.sampled_from([8, 16, 32]))
    head_dim = draw(st.sampled_from([64, 128]))
    d_model = heads * head_dim
    kv = draw(st.sampled_from([h for h in (1, 2, 4, 8, heads) if heads % h == 0]))
    n_layers = draw(st.integers(2, 48))
    spec = {
        "name": "random",
        "source": "hypothesis",
        "n_layers": n_layers,
        "d_model": d_model,
        "vocab_size": draw(st.sampled_from([32000, 50257, 128256])),
        "n_heads": heads,
        "n_kv_heads": kv,
        "head_dim": head_dim,
        "ffn": draw(st.sampled_from(["swiglu", "gelu"])),
        "d_ff": d_model * draw(st.sampled_from([2, 3, 4])),
        "tied_embeddings": draw(st.booleans()),
    }
    if draw(st.booleans()):
        experts = draw(st.sampled_from([8, 16, 64]))
        spec["moe"] = {
            "n_routed_experts": experts,
            "top_k": draw(st.sampled_from([1, 2, 4])),
            "n_shared_experts": draw(st.sampled_from([0, 1])),
            "d_ff_expert": d_model,
            "first_dense_layers": draw(st.integers(0, min(2, n_layers - 1))),
        }
    return ModelSpec.model_validate(spec)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=models(),
    gpu=st.sampled_from(["h100-sxm", "a100-40gb", "mi300x", "h800"]),
    num_gpus=st.sampled_from([8, 16, 64, 256]),
    seq_len=st.sampled_from([1024, 4096]),
)
def test_every_feasible_candidate_fits_and_is_consistent(model, gpu, num_gpus, seq_len):
    hw = load_hardware(gpu)
    job = Job(num_gpus, 1e11, seq_len, 512 * seq_len, "bf16")
    try:
        result = search(model, hw, job)
    except LayoutError as e:  # only a clean "no valid layout" is acceptable
        assert "no valid layout" in str(e) or "no layout" in str(e)
        assume(False)
    ok = result.feasible
    assert np.all(result.memory_bytes[ok] <= hw.memory_bytes)
    assert np.all(result.steps.step_time_s[ok] > 0)
    flops = token_flops(model, seq_len).training_flops
    tokens_per_s_per_gpu = job.global_batch_sequences * seq_len / result.steps.step_time_s / num_gpus
    assert np.all(flops * tokens_per_s_per_gpu / hw.peak_flop_per_s("bf16") <= 1.0)
    best = result.best()
    assume(best is not None)
    est = estimate(model, hw, job, result.layouts.at(best).to_dict())
    assert est.step.memory.total_bytes <= hw.memory_bytes
    assert 0 < est.mfu <= 1.0
    assert est.gpu_hours == pytest.approx(est.wall_clock_s / SECONDS_PER_HOUR * num_gpus, rel=1e-12)
    assert est.gpu_hours == pytest.approx(result.gpu_hours[best], rel=1e-9)


def test_search_top_limits_json_and_csv_and_the_table_shows_ten_by_default():
    """JSON and CSV list the best 1,000 candidates unless --top says how many (a large search has 10^5-10^6: every one
    of DeepSeek-V3's on 2,048 H800 was 0.5 GB of JSON); the table shows the best 10 unless --top says otherwise."""
    from cli.planner import DATA_TOP

    args = ("search", "llama-3-8b", "--gpu", "h100-sxm", "--num-gpus", "64", "--tokens", "1T")
    default = json.loads(invoke(*args, "--format", "json").output)
    assert DATA_TOP == 1000 and len(default["candidates"]) == DATA_TOP < default["evaluated"]
    every = json.loads(invoke(*args, "--format", "json", "--top", str(default["evaluated"])).output)
    assert len(every["candidates"]) == every["evaluated"] and every["candidates"][:DATA_TOP] == default["candidates"]
    five = json.loads(invoke(*args, "--format", "json", "--top", "5").output)
    assert len(five["candidates"]) == 5
    assert five["candidates"] == every["candidates"][:5]
    csv_rows = invoke(*args, "--format", "csv", "--top", "3").output.strip().splitlines()
    assert len(csv_rows) == 1 + 3


def test_the_sweep_table_shows_the_expected_run_beside_the_achievable_one():
    """A review found a 30-day deadline met by the achievable run (17.8 days) while the expected run on the same
    cluster took 32.7 days, with nothing in the table saying which run it was: the table gives the expected days and
    dollars of each row, and the answer says whether the expected run keeps the deadline too."""
    out = invoke(*"sweep llama-3.1-8b --tokens 1T --gpu h100 --num-gpus 64,128 --deadline-days 30".split()).output
    assert "exp. days" in out and "exp. $" in out
    assert "the expected run on this cluster (the stack's practice layout, realized) takes" in out
    doc = json.loads(invoke(*"sweep llama-3.1-8b --tokens 1T --gpu h100 --num-gpus 64 --format json".split()).output)
    expected = doc["rows"][0]["expected"]
    assert (
        f"{expected['wall_clock_days']:.1f}" in invoke(*"sweep llama-3.1-8b --tokens 1T --gpu h100 --num-gpus 64".split()).output
    )


def test_cost_objective_refuses_a_free_gpu_hour():
    """At $0 per GPU-hour every layout costs $0 and the cost ranking fell to the memory tie-break: a review's search
    ranked a CP8, full-recompute layout of 60K GPU-hours first against 27K for the true best."""
    r = invoke(*"search llama-3.1-8b --gpu h100 --num-gpus 8 --tokens 1T --usd-per-gpu-hour 0 --objective cost".split())
    assert r.exit_code != 0 and "priced at $0" in r.output and "Traceback" not in r.output


def test_a_sweep_with_nothing_feasible_draws_no_chart(tmp_path):
    """A review's all-infeasible sweep wrote an empty 0-1 chart and exited 0: --plot is refused with the reason."""
    png = tmp_path / "none.png"
    r = invoke(*"sweep llama-3.1-405b --tokens 15T --gpu h100-sxm --num-gpus 1,8 --plot".split(), str(png))
    assert r.exit_code != 0 and "nothing to draw" in r.output and not png.exists()


def test_the_sweep_csv_has_one_header_whichever_row_comes_first():
    """An infeasible first row (layout null) put a lone `layout` column first and moved the layout's fields to the end
    (a review): the columns are the row model's fields, whatever the order."""
    heads = [invoke("sweep", "llama-3.1-405b", "--tokens", "15T", "--gpu", g, "--num-gpus", "8,16384", "--format", "csv")
             .output.splitlines()[0] for g in ("a100-40gb,h100-sxm", "h100-sxm,a100-40gb")]  # fmt: skip
    assert heads[0] == heads[1] and "layout.tp" in heads[0] and ",layout," not in heads[0] + ","


ACHIEVABLE_RUNS = [
    # (model, gpu, GPUs, tokens, fixed layout fields): the first is a review's, 15.23 s achievable against search's 13.94 s
    ("llama-3.1-70b", "h100-sxm", 256, "1T", {}),
    ("llama-3.1-8b", "h100-sxm", 64, "100B", {}),
    ("mixtral-8x7b", "h100-sxm", 64, "100B", {}),
    ("llama-3.1-70b", "h100-sxm", 256, "1T", {"tp": 8}),
    ("llama-3.1-70b", "h100-sxm", 256, "1T", {"tp_overlap": True}),
    ("llama-3.1-8b", "h100-sxm", 64, "100B", {"tp": 1}),
]


@pytest.mark.parametrize(("model", "gpu", "gpus", "tokens", "layout"), ACHIEVABLE_RUNS)
def test_search_is_never_slower_than_the_estimates_achievable_run(model, gpu, gpus, tokens, layout):
    """`costsim estimate`'s achievable run holds TP-communication overlap off unless given; `costsim search` tries both
    ways over the same layouts, so its best is never slower, and where the overlap is fixed (given, or moot at TP1)
    the two are the same run."""
    from simulator import api

    achievable = api.estimate(model, gpu, gpus, tokens, **layout).achievable
    best = api.search(model, gpu, gpus, tokens, top=1, **layout).to_dict()["best"]
    assert best["step_time_s"] <= achievable.step_time_s * (1 + 1e-9)
    if "tp_overlap" in layout or layout.get("tp") == 1:
        assert best["step_time_s"] == pytest.approx(achievable.step_time_s, rel=1e-9)


def test_the_achievable_run_says_it_is_without_tp_overlap():
    """The review's run: the achievable step (15.23 s, no TP overlap) is slower than search's best (13.94 s, with it),
    so the estimate table, its JSON schema and its report say the achievable run is without TP-communication overlap
    and point at `costsim search`; with --tp-overlap given they do not."""
    from simulator.outputs import EstimateOutput, Headline
    from simulator.report.document import _two_numbers, to_markdown
    from simulator.run.basis_notes import NO_TP_OVERLAP, without_tp_overlap

    args = ("estimate", "llama-3.1-70b", "--gpu", "h100-sxm", "--num-gpus", "256", "--tokens", "1T")
    line = next(x for x in invoke(*args).output.splitlines() if x.startswith("achievable"))
    assert "without TP-communication overlap (`costsim search` tries it too)" in line
    assert NO_TP_OVERLAP not in next(x for x in invoke(*args, "--tp-overlap").output.splitlines() if x.startswith("achievable"))
    assert without_tp_overlap({"tp_overlap": True}) == "" and without_tp_overlap({"tp_overlap": False}) == NO_TP_OVERLAP
    assert without_tp_overlap({"tp": 1, "tp_overlap": False}) == ""  # no TP communication to overlap
    for text in (EstimateOutput.model_json_schema()["properties"]["achievable"]["description"],
                 Headline.model_json_schema()["properties"]["basis"]["description"]):  # fmt: skip
        assert "TP-communication overlap" in text and "costsim search" in text
    from simulator import api

    d = api.estimate("llama-3.1-70b", "h100-sxm", 256, "1T").to_dict()
    assert "without TP-communication overlap (`costsim search` tries it too), would take" in to_markdown(_two_numbers(d))
    d = api.estimate("llama-3.1-70b", "h100-sxm", 256, "1T", tp_overlap=True).to_dict()
    assert "as costsim models it, would take" in to_markdown(_two_numbers(d))
