"""Hugging Face `config.json` -> ModelSpec.

Key names and defaults follow the `transformers` configuration classes
(`transformers/models/<type>/configuration_<type>.py`, checked against transformers 5.23): a key the
file omits takes the class default, and a `null` takes the value the class derives from other keys
(e.g. gpt2 `n_inner: null` -> 4 x n_embd). The size keys (layers, width, heads, vocabulary, FFN width
where the class has one) are required instead of defaulted: a config.json without them is broken, and
the class default would silently describe another model.

What a ModelSpec cannot say is approximated and noted where it happens: per-layer attention patterns
(Gemma 2/3, Qwen max_window_layers) count every layer as full attention unless every layer slides;
OPT's word_embed_proj_dim projection is folded into d_model; the vision tower of a Gemma 3 wrapper
config is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from simulator.errors import SpecError
from simulator.inputs.files import validate
from simulator.inputs.specs import MAX_LAYERS, ModelSpec

_MISSING = object()
Keys = str | tuple[str, ...]


class _Config:
    """A raw config.json dict with typed, default-aware accessors that raise SpecError."""

    def __init__(self, raw: dict[str, Any], model_type: str, where: Path | str):
        self.raw, self.model_type, self.where = raw, model_type, where

    def error(self, message: str) -> SpecError:
        suffix = "" if "model_type" in message else f" (model_type {self.model_type!r})"
        return SpecError(f"{self.where}: {message}{suffix}")

    def value(self, keys: Keys, default: Any = _MISSING) -> Any:
        """The first present, non-null key; else `default`; else a missing-key error."""
        names = (keys,) if isinstance(keys, str) else keys
        for key in names:
            if self.raw.get(key) is not None:
                return self.raw[key]
        if default is _MISSING:
            alias = f" (or {', '.join(f'`{k}`' for k in names[1:])})" if len(names) > 1 else ""
            raise self.error(
                f"config.json has no `{names[0]}`{alias}, which model_type {self.model_type!r} requires; "
                "add it from the model's published config.json"
            )
        return default

    def name(self, keys: Keys) -> str:
        """The key `value` reads: the first present, non-null one, else the first listed."""
        names = (keys,) if isinstance(keys, str) else keys
        return next((key for key in names if self.raw.get(key) is not None), names[0])

    def integer(self, keys: Keys, default: Any = _MISSING, minimum: int = 1) -> int:
        v = self.value(keys, default)
        name = self.name(keys)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise self.error(f"`{name}` = {v!r:.60} must be an integer >= {minimum}")
        return v

    def flag(self, keys: Keys, default: bool) -> bool:
        v = self.value(keys, default)
        if not isinstance(v, bool):
            raise self.error(f"`{self.name(keys)}` = {v!r:.60} must be true or false")
        return v

    def sub(self, key: str) -> dict[str, Any]:
        v = self.raw.get(key) or {}
        if not isinstance(v, dict):
            raise self.error(f"`{key}` must be a JSON object, got {type(v).__name__}")
        return v


# --------------------------------------------------------------------------- shared pieces


def _head_dim(cfg: _Config, d_model: int, n_heads: int, default: int | None = None) -> int:
    """`head_dim` from the config, else the class default, else d_model / n_heads (which must divide)."""
    if cfg.raw.get("head_dim") is not None:
        return cfg.integer("head_dim")
    if default is not None:
        return default
    if d_model % n_heads:
        raise cfg.error(
            f"hidden size {d_model} is not divisible by the {n_heads} attention heads, so head_dim cannot be "
            "derived; set `head_dim` in config.json or fix the hidden size / head count"
        )
    return d_model // n_heads


def _check_groups(cfg: _Config, n_heads: int, n_kv_heads: int) -> None:
    if n_heads % n_kv_heads:
        raise cfg.error(
            f"{n_heads} attention heads are not divisible by {n_kv_heads} key/value heads; "
            "fix `num_key_value_heads` (it must divide the head count)"
        )


_GATED = {"silu": "swiglu", "swish": "swiglu"}
_GELU = ("gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "gelu_python", "quick_gelu", "gelu_accurate")


def _ffn(cfg: _Config, keys: Keys, default: str, gated: bool) -> str:
    act = str(cfg.value(keys, default)).lower()
    if gated and act in _GATED:
        return _GATED[act]
    if act in _GELU:
        return "geglu" if gated else "gelu"
    if act == "relu" and not gated:
        return "relu"
    kind = "gated (silu/swish, gelu*)" if gated else "two-matrix (gelu*, relu)"
    raise cfg.error(f"activation `{cfg.name(keys)}` = {act!r:.60} is not supported for this {kind} MLP")


def _regular_moe_layers(cfg: _Config, n_layers: int, is_moe: Callable[[int], bool]) -> tuple[int, int] | None:
    """(first_dense_layers, layer_freq) reproducing the config's MoE layer set; None if no layer is MoE."""
    if n_layers > MAX_LAYERS:  # checked before the loop over layers, which would otherwise run for minutes
        raise cfg.error(
            f"`{cfg.name(('num_hidden_layers', 'n_layers'))}` = {n_layers:,} layers is over the {MAX_LAYERS:,} a model "
            "may have; fix the layer count"
        )
    layers = [i for i in range(n_layers) if is_moe(i)]
    if not layers:
        return None
    first = layers[0]
    freq = layers[1] - layers[0] if len(layers) > 1 else n_layers - first
    if layers != list(range(first, n_layers, freq)):
        raise cfg.error(
            f"the MoE layers {_abbreviated(layers)} are not 'k dense layers, then every n-th layer', which is all a "
            "ModelSpec can express; write a spec YAML that approximates them instead"
        )
    return first, freq


def _abbreviated(items: list[int], shown: int = 12) -> str:
    return str(items) if len(items) <= shown else f"[{', '.join(map(str, items[:shown]))}, ... ({len(items)} layers)]"


def _all_layers_slide(cfg: _Config, window_key: str = "sliding_window") -> int | None:
    """The window when every layer uses it (layer_types all sliding), else None."""
    window = cfg.raw.get(window_key)
    types = cfg.raw.get("layer_types")
    if types is not None and not isinstance(types, list):
        raise cfg.error(f'`layer_types` = {types!r:.60} must be a list of layer kinds (e.g. "sliding_attention")')
    if window is None or not types or any(t != "sliding_attention" for t in types):
        return None
    return cfg.integer(window_key)


# --------------------------------------------------------------------------- llama-style decoders

# model_type -> class defaults that differ between the llama-style families.
_DECODERS: dict[str, dict[str, Any]] = {
    "llama": {"kv": None, "tied": False, "max_pos": 2048},
    "mistral": {"kv": 8, "tied": False, "max_pos": 131072, "window": 4096},
    "mixtral": {"kv": 8, "tied": False, "max_pos": 131072},
    "qwen2": {"kv": 32, "tied": False, "max_pos": 32768, "qkv_bias": True},
    "qwen2_moe": {"kv": 16, "tied": False, "max_pos": 32768, "qkv_bias": True},
    "qwen3": {"kv": 32, "tied": False, "max_pos": 32768, "head_dim": 128, "qk_norm": True},
    "qwen3_moe": {"kv": 4, "tied": False, "max_pos": 32768, "qk_norm": True},
    "smollm3": {"kv": 4, "tied": True, "max_pos": 32768},
    "gemma": {"kv": 16, "tied": True, "max_pos": 8192, "head_dim": 256, "act": "gelu_pytorch_tanh"},
    "gemma2": {"kv": 4, "tied": True, "max_pos": 8192, "head_dim": 256, "act": "gelu_pytorch_tanh"},
    "gemma3_text": {"kv": 4, "tied": True, "max_pos": 131072, "head_dim": 256, "act": "gelu_pytorch_tanh",
                    "qk_norm": True},
}  # fmt: skip


def _llama_like(cfg: _Config) -> dict[str, Any]:
    d = _DECODERS[cfg.model_type]
    n_layers, d_model = cfg.integer("num_hidden_layers"), cfg.integer("hidden_size")
    n_heads = cfg.integer("num_attention_heads")
    n_kv = cfg.integer("num_key_value_heads", d["kv"] or n_heads)
    _check_groups(cfg, n_heads, n_kv)
    bias = cfg.flag("attention_bias", False)
    qkv_bias = cfg.flag("qkv_bias", True) if cfg.model_type == "qwen2_moe" else d.get("qkv_bias", bias)
    return {
        "n_layers": n_layers,
        "d_model": d_model,
        "vocab_size": cfg.integer("vocab_size"),
        "n_heads": n_heads,
        "n_kv_heads": n_kv,
        "head_dim": _head_dim(cfg, d_model, n_heads, d.get("head_dim")),
        "ffn": _ffn(cfg, ("hidden_activation", "hidden_act"), d.get("act", "silu"), gated=True),
        "d_ff": cfg.integer("intermediate_size"),
        "moe": _MOE_BUILDERS[cfg.model_type](cfg, n_layers) if cfg.model_type in _MOE_BUILDERS else None,
        "tied_embeddings": cfg.flag("tie_word_embeddings", d["tied"]),
        "position_embedding": "rope",
        "max_position_embeddings": cfg.integer("max_position_embeddings", d["max_pos"]),
        "norm": "rmsnorm",
        "attention_bias": qkv_bias,
        "output_bias": bias,
        "ffn_bias": cfg.flag("mlp_bias", False),
        "qk_norm": d.get("qk_norm", False),
        "sliding_window": _decoder_window(cfg, d),
    }


def _decoder_window(cfg: _Config, d: dict[str, Any]) -> int | None:
    if cfg.model_type in ("mistral", "mixtral"):  # one window for every layer, when set
        window = cfg.raw["sliding_window"] if "sliding_window" in cfg.raw else d.get("window")
        return None if window is None else cfg.integer("sliding_window", window)
    if cfg.model_type in ("qwen2", "qwen3") and cfg.flag("use_sliding_window", False) and "layer_types" not in cfg.raw:
        # layers >= max_window_layers slide: all of them only when max_window_layers is 0
        if cfg.integer("max_window_layers", 28, minimum=0) == 0:
            return cfg.integer("sliding_window", 4096)
    return _all_layers_slide(cfg)


def _mixtral_moe(cfg: _Config, n_layers: int) -> dict[str, Any]:
    return {
        "n_routed_experts": cfg.integer(("num_local_experts", "num_experts"), 8),
        "top_k": cfg.integer("num_experts_per_tok", 2),
        "d_ff_expert": cfg.integer("intermediate_size"),
    }


def _qwen_moe(cfg: _Config, n_layers: int) -> dict[str, Any] | None:
    shared = cfg.model_type == "qwen2_moe"
    n_experts = cfg.integer("num_experts", 60 if shared else 128, minimum=0)
    step = cfg.integer("decoder_sparse_step", 1)
    dense = cfg.value("mlp_only_layers", [])
    if not isinstance(dense, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in dense):
        raise cfg.error(f"`mlp_only_layers` = {dense!r:.60} must be a list of layer indices")
    outside = sorted(i for i in set(dense) if not 0 <= i < n_layers)
    if outside:
        raise cfg.error(
            f"`mlp_only_layers` names layers {_abbreviated(outside)}, outside the model's {n_layers} layers "
            f"(0-{n_layers - 1}); give layer indices in that range"
        )
    dense = set(dense)
    placement = _regular_moe_layers(cfg, n_layers, lambda i: i not in dense and n_experts > 0 and (i + 1) % step == 0)
    if placement is None:  # as Hugging Face builds it: every layer a dense MLP
        return None
    d_shared = cfg.integer("shared_expert_intermediate_size", 5632, minimum=0) if shared else 0
    return {
        "n_routed_experts": n_experts,
        "top_k": cfg.integer("num_experts_per_tok", 4 if shared else 8),
        "d_ff_expert": cfg.integer("moe_intermediate_size"),
        "n_shared_experts": 1 if d_shared else 0,
        "d_ff_shared": d_shared or None,
        "shared_expert_gate": bool(d_shared),
        "first_dense_layers": placement[0],
        "layer_freq": placement[1],
    }


_MOE_BUILDERS: dict[str, Callable[[_Config, int], dict[str, Any] | None]] = {
    "mixtral": _mixtral_moe,
    "qwen2_moe": _qwen_moe,
    "qwen3_moe": _qwen_moe,
}


# --------------------------------------------------------------------------- DeepSeek (MLA + MoE)

_DEEPSEEK: dict[str, dict[str, Any]] = {
    "deepseek_v2": {"first_dense": 0, "shared": 2, "experts": 64, "top_k": _MISSING, "d_expert": 1407, "mtp": 0,
                    "n_group": 1, "topk_group": None, "method": "greedy", "max_pos": 2048},
    "deepseek_v3": {"first_dense": 3, "shared": 1, "experts": 256, "top_k": 8, "d_expert": 2048, "mtp": 1,
                    "n_group": 8, "topk_group": 4, "method": "noaux_tc", "max_pos": 4096},
}  # fmt: skip


def _deepseek(cfg: _Config) -> dict[str, Any]:
    d = _DEEPSEEK[cfg.model_type]
    n_layers, n_heads = cfg.integer("num_hidden_layers"), cfg.integer("num_attention_heads")
    v_head_dim = cfg.integer("v_head_dim", 128)
    bias = cfg.flag("attention_bias", False)
    return {
        "n_layers": n_layers,
        "d_model": cfg.integer("hidden_size"),
        "vocab_size": cfg.integer("vocab_size"),
        "n_heads": n_heads,
        "n_kv_heads": n_heads,
        "head_dim": v_head_dim,
        "attention": "mla",
        "mla": {
            # a present `q_lora_rank: null` means no query compression (V2-Lite); an absent key, the default
            "q_lora_rank": cfg.raw["q_lora_rank"] if "q_lora_rank" in cfg.raw else 1536,
            "kv_lora_rank": cfg.integer("kv_lora_rank", 512),
            "qk_nope_head_dim": cfg.integer("qk_nope_head_dim", 128),
            "qk_rope_head_dim": cfg.integer("qk_rope_head_dim", 64, minimum=0),
            "v_head_dim": v_head_dim,
        },
        "ffn": _ffn(cfg, "hidden_act", "silu", gated=True),
        "d_ff": cfg.integer("intermediate_size"),
        "moe": _deepseek_moe(cfg, d, n_layers),
        "mtp_depth": cfg.integer(("num_nextn_predict_layers", "num_mtp_layers"), d["mtp"], minimum=0),
        "tied_embeddings": cfg.flag("tie_word_embeddings", False),
        "position_embedding": "rope",
        "max_position_embeddings": cfg.integer("max_position_embeddings", d["max_pos"]),
        "norm": "rmsnorm",
        "attention_bias": bias,
        "output_bias": bias,
    }


def _deepseek_moe(cfg: _Config, d: dict[str, Any], n_layers: int) -> dict[str, Any] | None:
    n_experts = cfg.integer("n_routed_experts", d["experts"], minimum=0)
    first_k = cfg.integer("first_k_dense_replace", d["first_dense"], minimum=0)
    freq = cfg.integer("moe_layer_freq", 1)  # DeepSeek's modeling code: i >= first_k and i % freq == 0
    placement = _regular_moe_layers(cfg, n_layers, lambda i: n_experts > 0 and i >= first_k and i % freq == 0)
    if placement is None:  # as Hugging Face builds it: every layer a dense MLP (a dense MLA model)
        return None
    n_group = cfg.integer("n_group", d["n_group"])
    topk_group = cfg.integer("topk_group", d["topk_group"] or n_group)
    # group-limited routing sends each token to at most topk_group of the n_group expert groups (nodes)
    limited = cfg.value("topk_method", d["method"]) != "greedy" and topk_group < n_group
    return {
        "n_routed_experts": n_experts,
        "top_k": cfg.integer("num_experts_per_tok", d["top_k"]),
        "d_ff_expert": cfg.integer("moe_intermediate_size", d["d_expert"]),
        "n_shared_experts": cfg.integer("n_shared_experts", d["shared"], minimum=0),
        "first_dense_layers": placement[0],
        "layer_freq": placement[1],
        "max_nodes_per_token": topk_group if limited else None,
    }


# --------------------------------------------------------------------------- GPT-2 family


def _gpt2(cfg: _Config) -> dict[str, Any]:
    """gpt2 and gpt_bigcode: learned positions, LayerNorm, biases everywhere, GELU MLP of n_inner or 4h."""
    d_model = cfg.integer(("n_embd", "hidden_size"))
    n_heads = cfg.integer(("n_head", "num_attention_heads"))
    multi_query = cfg.model_type == "gpt_bigcode" and cfg.flag("multi_query", True)
    default_act = "gelu_pytorch_tanh" if cfg.model_type == "gpt_bigcode" else "gelu_new"
    return {
        "n_layers": cfg.integer(("n_layer", "num_hidden_layers")),
        "d_model": d_model,
        "vocab_size": cfg.integer("vocab_size"),
        "n_heads": n_heads,
        "n_kv_heads": 1 if multi_query else n_heads,
        "head_dim": _head_dim(cfg, d_model, n_heads),
        "ffn": _ffn(cfg, "activation_function", default_act, gated=False),
        "d_ff": cfg.integer("n_inner", 4 * d_model),
        "tied_embeddings": cfg.flag("tie_word_embeddings", True),
        "position_embedding": "learned",
        "max_position_embeddings": cfg.integer(("n_positions", "max_position_embeddings"), 1024),
        "norm": "layernorm",
        **_all_biases(True),
    }


def _all_biases(on: bool) -> dict[str, bool]:
    return {"attention_bias": on, "output_bias": on, "ffn_bias": on}


def _gpt_neox(cfg: _Config) -> dict[str, Any]:
    d_model, n_heads = cfg.integer("hidden_size"), cfg.integer("num_attention_heads")
    bias = cfg.flag("attention_bias", True)
    return {
        "n_layers": cfg.integer("num_hidden_layers"),
        "d_model": d_model,
        "vocab_size": cfg.integer("vocab_size"),
        "n_heads": n_heads,
        "n_kv_heads": n_heads,
        "head_dim": _head_dim(cfg, d_model, n_heads),
        "ffn": _ffn(cfg, "hidden_act", "gelu", gated=False),
        "d_ff": cfg.integer("intermediate_size"),
        "tied_embeddings": cfg.flag("tie_word_embeddings", False),
        "parallel_attention": cfg.flag("use_parallel_residual", True),
        "position_embedding": "rope",  # partial rotary (rotary_pct) costs the same GEMMs
        "max_position_embeddings": cfg.integer("max_position_embeddings", 2048),
        "norm": "layernorm",
        "attention_bias": bias,
        "output_bias": bias,
        "ffn_bias": True,
    }


def _opt(cfg: _Config) -> dict[str, Any]:
    """OPT; a word_embed_proj_dim below hidden_size (opt-350m) is approximated by d_model."""
    d_model, n_heads = cfg.integer("hidden_size"), cfg.integer("num_attention_heads")
    cfg.integer("word_embed_proj_dim", d_model)  # validated only: a ModelSpec has no embedding projection
    return {
        "n_layers": cfg.integer("num_hidden_layers"),
        "d_model": d_model,
        "vocab_size": cfg.integer("vocab_size"),
        "n_heads": n_heads,
        "n_kv_heads": n_heads,
        "head_dim": _head_dim(cfg, d_model, n_heads),
        "ffn": _ffn(cfg, "activation_function", "relu", gated=False),
        "d_ff": cfg.integer("ffn_dim"),
        "tied_embeddings": cfg.flag("tie_word_embeddings", True),
        "position_embedding": "learned",
        "max_position_embeddings": cfg.integer("max_position_embeddings", 2048),
        "norm": "layernorm",
        **_all_biases(cfg.flag("enable_bias", True)),
    }


def _falcon(cfg: _Config) -> dict[str, Any]:
    d_model = cfg.integer(("hidden_size", "n_embed"))
    n_heads = cfg.integer(("num_attention_heads", "n_head"))
    new_arch = cfg.flag("new_decoder_architecture", False)
    if new_arch:
        n_kv = cfg.integer(("num_kv_heads", "n_head_kv"), n_heads)
    else:
        n_kv = 1 if cfg.flag("multi_query", True) else n_heads
    _check_groups(cfg, n_heads, n_kv)
    return {
        "n_layers": cfg.integer(("num_hidden_layers", "n_layer")),
        "d_model": d_model,
        "vocab_size": cfg.integer("vocab_size"),
        "n_heads": n_heads,
        "n_kv_heads": n_kv,
        "head_dim": _head_dim(cfg, d_model, n_heads),
        "ffn": _ffn(cfg, "activation", "gelu", gated=False),
        "d_ff": cfg.integer("ffn_hidden_size", 4 * d_model),
        "tied_embeddings": cfg.flag("tie_word_embeddings", True),
        "parallel_attention": new_arch or cfg.flag("parallel_attn", True),
        "position_embedding": "alibi" if cfg.flag("alibi", False) else "rope",
        "max_position_embeddings": cfg.integer("max_position_embeddings", 2048),
        "norm": "layernorm",
        **_all_biases(cfg.flag("bias", False)),
    }


def _bloom(cfg: _Config) -> dict[str, Any]:
    d_model = cfg.integer(("hidden_size", "n_embed"))
    n_heads = cfg.integer(("n_head", "num_attention_heads"))
    return {
        "n_layers": cfg.integer(("n_layer", "num_hidden_layers")),
        "d_model": d_model,
        "vocab_size": cfg.integer("vocab_size"),
        "n_heads": n_heads,
        "n_kv_heads": n_heads,
        "head_dim": _head_dim(cfg, d_model, n_heads),
        "ffn": "gelu",
        "d_ff": 4 * d_model,  # BloomMLP is hard-wired to 4h; the config's n_inner is unused
        "tied_embeddings": cfg.flag("tie_word_embeddings", True),
        "position_embedding": "alibi",
        "norm": "layernorm",
        "embedding_norm": True,
        **_all_biases(True),
    }


MAX_EXPANSION_RATIO = 1000.0
"""MPT's FFN width / d_model (4 in every released MPT); a larger one is a typo."""
_MPT_KV = {"multihead_attention": None, "multiquery_attention": 1, "grouped_query_attention": "kv_n_heads"}


def _mpt(cfg: _Config) -> dict[str, Any]:
    d_model, n_heads = cfg.integer("d_model"), cfg.integer("n_heads")
    attn = _Config(cfg.sub("attn_config"), cfg.model_type, f"{cfg.where} attn_config")
    attn_type = attn.value("attn_type", "multihead_attention")
    if not isinstance(attn_type, str) or attn_type not in _MPT_KV:
        raise cfg.error(f"attn_config.attn_type = {attn_type!r:.60} is not one of {', '.join(_MPT_KV)}")
    kv = _MPT_KV[attn_type]
    n_kv = n_heads if kv is None else kv if isinstance(kv, int) else attn.integer(kv)
    _check_groups(cfg, n_heads, n_kv)
    ffn_type = cfg.sub("ffn_config").get("ffn_type", "mptmlp")
    if ffn_type != "mptmlp":
        raise cfg.error(f"ffn_config.ffn_type = {ffn_type!r:.60} is not supported (only the plain GELU 'mptmlp')")
    alibi = attn.flag("alibi", True)
    learned = cfg.flag("learned_pos_emb", True)
    return {
        "n_layers": cfg.integer("n_layers"),
        "d_model": d_model,
        "vocab_size": cfg.integer("vocab_size"),
        "n_heads": n_heads,
        "n_kv_heads": n_kv,
        "head_dim": _head_dim(cfg, d_model, n_heads),
        "ffn": "gelu",
        "d_ff": _mpt_d_ff(cfg, d_model),
        "tied_embeddings": cfg.flag("tie_word_embeddings", True),
        # MosaicML's code builds the learned table only without ALiBi
        "position_embedding": "alibi" if alibi else "learned" if learned else "none",
        "max_position_embeddings": cfg.integer("max_seq_len", 2048),
        "norm": "rmsnorm" if "rms" in str(cfg.value("norm_type", "layernorm")).lower() else "layernorm",
        "qk_norm": attn.flag("qk_ln", False),
        **_all_biases(not cfg.flag("no_bias", True)),
    }


def _mpt_d_ff(cfg: _Config, d_model: int) -> int:
    ratio = cfg.value("expansion_ratio", 4)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio <= MAX_EXPANSION_RATIO:
        raise cfg.error(f"`expansion_ratio` = {ratio!r:.60} must be positive, at most {MAX_EXPANSION_RATIO:g}; MPT uses 4")
    return round(ratio * d_model)


# --------------------------------------------------------------------------- dispatch

_BUILDERS: dict[str, Callable[[_Config], dict[str, Any]]] = {
    **{t: _llama_like for t in _DECODERS},
    "deepseek_v2": _deepseek,
    "deepseek_v3": _deepseek,
    "gpt2": _gpt2,
    "gpt_bigcode": _gpt2,
    "gpt_neox": _gpt_neox,
    "opt": _opt,
    "falcon": _falcon,
    "bloom": _bloom,
    "mpt": _mpt,
}
SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(sorted([*_BUILDERS, "gemma3"]))


def model_from_hf_config(raw: object, where: Path | str) -> ModelSpec:
    """Build a ModelSpec from a parsed Hugging Face config.json; `where` names the file in messages."""
    if not isinstance(raw, dict):
        raise SpecError(
            f"{where}: a Hugging Face config.json must be a JSON object of settings, got {type(raw).__name__}; "
            "pass the model's config.json as downloaded"
        )
    model_type = raw.get("model_type")
    if model_type == "gemma3" and isinstance(raw.get("text_config"), dict):
        # the multimodal wrapper: the language model is text_config (the vision tower is not modelled)
        text = {"_name_or_path": raw.get("_name_or_path"), **raw["text_config"], "model_type": "gemma3_text"}
        text.setdefault("tie_word_embeddings", raw.get("tie_word_embeddings", True))
        return model_from_hf_config(text, where)
    if not isinstance(model_type, str) or model_type.lower() not in _BUILDERS:
        got = "has no `model_type` key" if model_type is None else f"has model_type {model_type!r:.60}"
        raise SpecError(
            f"{where}: config.json {got}; costsim reads these model_types: {', '.join(SUPPORTED_MODEL_TYPES)}. "
            "Set `model_type` to the matching architecture, or write a model spec YAML (see model_specs/)"
        )
    cfg = _Config(raw, model_type.lower(), where)
    fields = {"name": _name(raw, where), "source": f"Hugging Face config.json ({where})"}
    fields.update(_BUILDERS[cfg.model_type](cfg))
    read_from = {f: f"`{k}`" for f, keys in _READ_FROM.items() if (k := next((k for k in keys if raw.get(k) is not None), None))}
    return validate(fields, ModelSpec, where, read_from)


_READ_FROM: dict[str, tuple[str, ...]] = {
    "n_layers": ("num_hidden_layers", "n_layer", "n_layers", "num_layers"),
    "d_model": ("hidden_size", "n_embd", "d_model"),
    "n_heads": ("num_attention_heads", "n_head", "n_heads"),
    "n_kv_heads": ("num_key_value_heads", "num_kv_heads", "n_head_kv"),
    "head_dim": ("head_dim",),
    "vocab_size": ("vocab_size",),
    "d_ff": ("intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size"),
    "max_position_embeddings": ("max_position_embeddings", "n_positions", "max_seq_len"),
    "sliding_window": ("sliding_window",),
}
"""config.json keys a ModelSpec field is read from (the first present is named in an error's fix; derived fields,
such as a head_dim computed from hidden_size / heads, name none)."""


def _name(raw: dict[str, Any], where: Path | str) -> str:
    """`_name_or_path`'s last component, else the parent directory of a config.json, else the file stem."""
    named = raw.get("_name_or_path")
    if isinstance(named, str) and named.strip("/ "):
        return Path(named.strip().rstrip("/")).name
    path = Path(where)
    if path.name == "config.json" and path.parent.name:
        return path.parent.name
    return path.stem
