"""Analytical FLOPs and parameter counts (simulator/flops.py) against tiny torch models on the CPU.

Each family is a small ModelSpec and the plain-torch module in tests/torch_models.py that implements
exactly that architecture. One forward pass runs under torch.utils.flop_counter.FlopCounterMode
(2 FLOPs per multiply-add, like costsim; norms, softmax, activations, RoPE and the embedding lookup
are 0 in both), and its count, split by component through the tagged Linear modules, is compared with
costsim's per-token forward FLOPs x (batch x seq_len) tokens.

Attention convention: the torch modules write QK^T and A.V as explicit matmuls, which FlopCounterMode
counts over the full s x s score matrix whatever the causal mask, so they are compared with
`token_flops(..., causal=False)`. The causal convention (each query sees s/2 keys on average) is then
checked arithmetically: causal = non-causal - half the attention core of every layer, MTP included.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from torch_models import MoE, TaggedLinear, TinyLM

from simulator.inputs.files import validate
from simulator.inputs.specs import ModelSpec
from simulator.model.flops import attention_core_forward_flops_per_token, parameter_counts
from simulator.model.layer_work import token_flops

REL = 0.01

_BASE = {"source": "tests/test_flops_torch.py", "vocab_size": 512, "n_layers": 2, "d_model": 64}
_MLA = {"attention": "mla", "n_heads": 4, "n_kv_heads": 4, "head_dim": 24}
_DEEPSEEK_MOE = {"n_routed_experts": 8, "top_k": 2, "d_ff_expert": 32, "n_shared_experts": 2, "first_dense_layers": 1}

# name -> (spec fields, batch, seq_len)
FAMILIES: dict[str, tuple[dict, int, int]] = {
    # (1) GPT-2/3: MHA, GELU MLP, learned positions, every bias, LayerNorm, tied head.
    "gpt_mha": (
        {
            "n_heads": 4,
            "n_kv_heads": 4,
            "head_dim": 16,
            "ffn": "gelu",
            "d_ff": 256,
            "tied_embeddings": True,
            "position_embedding": "learned",
            "max_position_embeddings": 64,
            "norm": "layernorm",
            "attention_bias": True,
            "output_bias": True,
            "ffn_bias": True,
        },
        2,
        64,
    ),
    # (2) Llama: GQA 8q/2kv, SwiGLU, RoPE, RMSNorm, untied.
    "llama_gqa": (
        {"d_model": 128, "n_heads": 8, "n_kv_heads": 2, "head_dim": 16, "ffn": "swiglu", "d_ff": 344, "tied_embeddings": False},
        2,
        48,
    ),
    # (3) MQA, with n_heads x head_dim != d_model, GeGLU, qkv bias and qk-norm (Qwen-style extras).
    "mqa": (
        {
            "d_model": 96,
            "n_layers": 3,
            "n_heads": 4,
            "n_kv_heads": 1,
            "head_dim": 32,
            "ffn": "geglu",
            "d_ff": 192,
            "tied_embeddings": False,
            "attention_bias": True,
            "qk_norm": True,
        },
        2,
        32,
    ),
    # (4) Parallel attention, Falcon-40B layout (GQA, GELU, LayerNorm, no biases, tied, two norms per block).
    "parallel_falcon": (
        {
            "n_heads": 8,
            "n_kv_heads": 2,
            "head_dim": 8,
            "ffn": "gelu",
            "d_ff": 256,
            "tied_embeddings": True,
            "parallel_attention": True,
            "norm": "layernorm",
        },
        2,
        32,
    ),
    # (5) DeepSeek-MoE: 1 leading dense layer, 8 routed experts top-2, 2 shared experts, router GEMM.
    "moe_deepseek": (
        {
            "n_layers": 3,
            "n_heads": 4,
            "n_kv_heads": 4,
            "head_dim": 16,
            "ffn": "swiglu",
            "d_ff": 192,
            "tied_embeddings": False,
            "moe": _DEEPSEEK_MOE,
        },
        2,
        32,
    ),
    # (5b) Qwen2-MoE-like: sigmoid-gated shared expert of its own width, MoE every 2nd layer, ReLU experts with biases.
    "moe_gated_shared": (
        {
            "n_layers": 3,
            "n_heads": 4,
            "n_kv_heads": 2,
            "head_dim": 16,
            "ffn": "relu",
            "d_ff": 128,
            "ffn_bias": True,
            "tied_embeddings": False,
            "moe": {
                "n_routed_experts": 6,
                "top_k": 3,
                "d_ff_expert": 24,
                "d_ff_shared": 80,
                "shared_expert_gate": True,
                "layer_freq": 2,
            },
        },
        2,
        32,
    ),
    # (6a) MLA with the q low-rank path (DeepSeek-V2/V3), dense FFN.
    "mla_q_lora": (
        {
            **_MLA,
            "mla": {"q_lora_rank": 48, "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16},
            "ffn": "swiglu",
            "d_ff": 160,
            "tied_embeddings": False,
        },
        2,
        32,
    ),
    # (6b) DeepSeek-V2-Lite: MLA without q_lora_rank, MoE with shared experts and a leading dense layer.
    "mla_v2_lite": (
        {
            **_MLA,
            "n_layers": 3,
            "mla": {"q_lora_rank": None, "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 24},
            "ffn": "swiglu",
            "d_ff": 160,
            "tied_embeddings": False,
            "moe": _DEEPSEEK_MOE,
        },
        2,
        32,
    ),
    # (7a) DeepSeek-V3: MLA with q_lora + MoE + one MTP module (its block is an MoE layer, head shared).
    "mtp_v3": (
        {
            **_MLA,
            "n_layers": 3,
            "mla": {"q_lora_rank": 48, "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16},
            "ffn": "swiglu",
            "d_ff": 160,
            "tied_embeddings": False,
            "moe": _DEEPSEEK_MOE,
            "mtp_depth": 1,
        },
        2,
        32,
    ),
    # (7b) MTP on a dense GQA model, depth 2 (the dense branch of token_flops adds the 2h -> h projection separately).
    "mtp_dense": (
        {"n_heads": 4, "n_kv_heads": 2, "head_dim": 16, "ffn": "swiglu", "d_ff": 160, "tied_embeddings": False, "mtp_depth": 2},
        2,
        32,
    ),
}
MOE_FAMILIES = [name for name, (fields, _, _) in FAMILIES.items() if "moe" in fields]


def _spec(name: str) -> ModelSpec:
    return validate({**_BASE, "name": name, **FAMILIES[name][0]}, ModelSpec, f"test family {name}")


def _build(name: str) -> tuple[ModelSpec, TinyLM, torch.Tensor]:
    spec = _spec(name)
    torch.manual_seed(0)
    model = TinyLM(spec).eval()
    _, batch, seq = FAMILIES[name]
    tokens = torch.randint(0, spec.vocab_size, (batch, seq))
    return spec, model, tokens


def _torch_flops(model: TinyLM, tokens: torch.Tensor, include_mtp: bool) -> dict[str, float]:
    """FlopCounterMode count of one forward pass, split by the components of the TaggedLinear modules.

    Whatever is counted outside a TaggedLinear is attributed to the attention core.
    """
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(tokens, include_mtp=include_mtp)
    per_module = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    root = type(model).__name__
    out: dict[str, float] = {}
    for name, module in model.named_modules():
        if isinstance(module, TaggedLinear):
            out[module.component] = out.get(module.component, 0.0) + per_module.get(f"{root}.{name}", 0)
    out["attention_core"] = counter.get_total_flops() - sum(out.values())
    return {k: float(v) for k, v in out.items() if v}


def _torch_by_component(model: TinyLM, tokens: torch.Tensor) -> dict[str, float]:
    """Main-model components, plus `mtp`: everything the MTP modules add (their blocks and the shared head calls)."""
    main = _torch_flops(model, tokens, include_mtp=False)
    if len(model.mtp):
        main["mtp"] = sum(_torch_flops(model, tokens, include_mtp=True).values()) - sum(main.values())
    return main


def _table(costsim: dict[str, float], torch_counts: dict[str, float]) -> str:
    rows = [f"{'component':<16}{'costsim':>14}{'torch':>14}{'rel err':>10}"]
    for k in sorted(set(costsim) | set(torch_counts)):
        c, t = costsim.get(k, 0.0), torch_counts.get(k, 0.0)
        rel = (c - t) / t if t else float("inf") if c else 0.0
        rows.append(f"{k:<16}{c:>14.0f}{t:>14.0f}{rel:>+10.2%}")
    return "\n".join(rows)


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_flops_match_flop_counter(family: str) -> None:
    spec, model, tokens = _build(family)
    n_tokens = tokens.numel()
    per_token = token_flops(spec, tokens.shape[1], causal=False)
    costsim = {k: v * n_tokens for k, v in per_token.forward_by_component.items() if v}
    measured = _torch_by_component(model, tokens)
    table = _table(costsim, measured)
    print(f"\n{family} ({n_tokens} tokens, seq {tokens.shape[1]}):\n{table}")

    total_costsim, total_torch = per_token.forward_flops * n_tokens, sum(measured.values())
    assert total_costsim == pytest.approx(total_torch, rel=REL), (
        f"{family}: costsim {total_costsim:.0f} vs FlopCounterMode {total_torch:.0f} forward FLOPs "
        f"({(total_costsim - total_torch) / total_torch:+.2%})\n{table}"
    )
    assert set(costsim) == set(measured), f"{family}: components differ\n{table}"
    for component, flops in measured.items():
        assert costsim[component] == pytest.approx(flops, rel=REL), f"{family}: component {component} differs\n{table}"


@pytest.mark.parametrize("family", FAMILIES)
def test_causal_count_halves_the_attention_core(family: str) -> None:
    spec = _spec(family)
    seq = FAMILIES[family][2]
    full = token_flops(spec, seq, causal=False, include_mtp=True)
    causal = token_flops(spec, seq, causal=True, include_mtp=True)
    core_per_layer = attention_core_forward_flops_per_token(spec, seq, causal=False)
    layers_with_attention = spec.n_layers + spec.mtp_depth

    assert causal.attention_convention == "causal" and full.attention_convention == "full"
    assert attention_core_forward_flops_per_token(spec, seq, causal=True) == 0.5 * core_per_layer
    assert causal.forward_by_component["attention_core"] == 0.5 * full.forward_by_component["attention_core"]
    assert full.forward_flops - causal.forward_flops == pytest.approx(0.5 * core_per_layer * layers_with_attention, rel=1e-12), (
        f"{family}: causal {causal.forward_flops:.0f} vs non-causal {full.forward_flops:.0f} per token; "
        f"expected a difference of half the core ({core_per_layer:.0f}) x {layers_with_attention} layers"
    )
    for component in full.forward_by_component.keys() - {"attention_core", "mtp"}:
        assert causal.forward_by_component[component] == full.forward_by_component[component], component


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("family", FAMILIES)
def test_parameter_total_matches_module(family: str) -> None:
    spec, model, _ = _build(family)
    counts = parameter_counts(spec)
    if spec.tied_embeddings:
        # One tensor for embedding and head: module.parameters() yields it once, costsim counts head = 0.
        assert model.lm_head.weight is model.tok_emb.weight
        assert counts.head == 0
    mtp = _n_params(model.mtp)
    main = _n_params(model) - mtp
    assert counts.total == main, f"{family}: costsim total {counts.total:.0f} vs torch {main} ({counts.total - main:+.0f})"
    assert counts.mtp == mtp, f"{family}: costsim MTP params {counts.mtp:.0f} vs torch {mtp} ({counts.mtp - mtp:+.0f})"
    assert counts.total_with_mtp == _n_params(model)
    if spec.moe is None:
        assert counts.activated == counts.total


@pytest.mark.parametrize("family", MOE_FAMILIES)
def test_moe_activated_parameters_match_one_token(family: str) -> None:
    spec, model, tokens = _build(family)
    with torch.no_grad():
        model(tokens, include_mtp=False)
    assert spec.moe is not None
    top_k = spec.moe.top_k
    moe_layers = [layer.ffn for layer in model.layers if isinstance(layer.ffn, MoE)]
    assert len(moe_layers) == spec.n_moe_layers

    nonexpert = sum(p.numel() for name, p in model.named_parameters() if ".experts." not in name and not name.startswith("mtp."))
    expert_sizes = [[_n_params(e) for e in moe.experts] for moe in moe_layers]
    touched = set()
    for t in range(tokens.numel()):
        routed = 0
        for moe, sizes in zip(moe_layers, expert_sizes, strict=True):
            chosen = moe.last_topk[t].tolist()
            assert len(set(chosen)) == top_k, f"token {t} went to experts {chosen}, not {top_k} distinct ones"
            routed += sum(sizes[e] for e in chosen)
        touched.add(nonexpert + routed)
    assert len(touched) == 1, f"tokens touch different parameter counts: {sorted(touched)}"
    (per_token,) = touched
    activated = parameter_counts(spec).activated
    assert activated == per_token, (
        f"{family}: costsim activated {activated:.0f} vs {per_token} parameters touched by one token "
        f"({nonexpert} non-expert incl. embedding + {per_token - nonexpert} in {top_k} experts x {len(moe_layers)} MoE layers)"
    )
