"""Tiny plain-torch transformers built from a costsim ModelSpec, for cross-checking FLOP and parameter counts.

One module per architectural feature of the spec schema: standard attention (MHA/GQA/MQA, optional
biases, qk-norm, RoPE or learned positions), MLA with or without the q low-rank path, gated and plain
FFNs, parallel attention (Falcon-40B layout: two norms reading the same input), DeepSeek-style MoE
(router GEMM, shared experts, optional shared-expert gate, leading dense layers, layer_freq) and
DeepSeek-V3 MTP modules.

Every weight GEMM is a `TaggedLinear` carrying the costsim component it belongs to, so a
FlopCounterMode run can be split by component. Whatever torch counts outside a TaggedLinear must
be the attention core (QK^T and A.V), which is written as explicit matmuls: on CPU,
F.scaled_dot_product_attention with equal q/v head dims dispatches to a flash kernel that
FlopCounterMode does not count at all (0 FLOPs in torch 2.13).

Routing is deterministic in FLOPs: every token goes to exactly top_k distinct experts (torch.topk),
and each expert runs once on the tokens routed to it (index_select / index_add), so the routed-expert
FLOPs are tokens x top_k x one expert, whatever the routing.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from calibrate.transformer import rope_tables, rotate
from simulator.inputs.specs import ModelSpec


class TaggedLinear(nn.Linear):
    """nn.Linear labelled with the costsim component (`attention_proj`, `dense_ffn`, `router`, ...)."""

    def __init__(self, k: int, n: int, bias: bool, component: str):
        super().__init__(k, n, bias=bias)
        self.component = component


def make_norm(spec: ModelSpec, width: int) -> nn.Module:
    return nn.LayerNorm(width) if spec.norm == "layernorm" else nn.RMSNorm(width)


def apply_rope(x: torch.Tensor) -> torch.Tensor:
    """Rotary embedding on the last dim of x [b, heads, s, d], the local trainer's (calibrate/transformer.py)
    without its custom backward (elementwise: no FLOPs for FlopCounterMode)."""
    return rotate(x, *rope_tables(x.shape[-1], x.shape[-2]))


def attention_core(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal softmax attention as explicit matmuls; torch counts the full s x s score matrix."""
    s = q.shape[-2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    mask = torch.ones(s, s, dtype=torch.bool).triu(1)
    probs = scores.masked_fill(mask, float("-inf")).softmax(dim=-1)
    return probs @ v


class StandardAttention(nn.Module):
    """MHA / GQA / MQA with a fused qkv projection (costsim's `qkv_proj` GEMM)."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.n, self.n_kv, self.d = spec.n_heads, spec.n_kv_heads, spec.head_dim
        self.rope = spec.position_embedding == "rope"
        self.qkv = TaggedLinear(spec.d_model, (self.n + 2 * self.n_kv) * self.d, spec.attention_bias, "attention_proj")
        self.out = TaggedLinear(self.n * self.d, spec.d_model, spec.output_bias, "attention_proj")
        self.q_norm = nn.RMSNorm(self.d) if spec.qk_norm else None
        self.k_norm = nn.RMSNorm(self.d) if spec.qk_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        q, k, v = self.qkv(x).split([self.n * self.d, self.n_kv * self.d, self.n_kv * self.d], dim=-1)
        q = q.view(b, s, self.n, self.d).transpose(1, 2)
        k = k.view(b, s, self.n_kv, self.d).transpose(1, 2)
        v = v.view(b, s, self.n_kv, self.d).transpose(1, 2)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.rope:
            q, k = apply_rope(q), apply_rope(k)
        group = self.n // self.n_kv
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        y = attention_core(q, k, v).transpose(1, 2).reshape(b, s, self.n * self.d)
        return self.out(y)


class MLAttention(nn.Module):
    """Multi-head latent attention (DeepSeek-V2 §2.1), training form: explicit up-projections."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        mla = spec.mla
        assert mla is not None
        h, self.n = spec.d_model, spec.n_heads
        self.nope, self.rope_dim, self.v_dim, self.kv_rank = (
            mla.qk_nope_head_dim,
            mla.qk_rope_head_dim,
            mla.v_head_dim,
            mla.kv_lora_rank,
        )
        d_qk = self.nope + self.rope_dim
        if mla.q_lora_rank is None:
            self.q_proj = TaggedLinear(h, self.n * d_qk, False, "attention_proj")
            self.q_down = self.q_norm = self.q_up = None
        else:
            self.q_proj = None
            self.q_down = TaggedLinear(h, mla.q_lora_rank, False, "attention_proj")
            self.q_norm = nn.RMSNorm(mla.q_lora_rank)
            self.q_up = TaggedLinear(mla.q_lora_rank, self.n * d_qk, False, "attention_proj")
        self.kv_down = TaggedLinear(h, self.kv_rank + self.rope_dim, False, "attention_proj")
        self.kv_norm = nn.RMSNorm(self.kv_rank)
        self.kv_up = TaggedLinear(self.kv_rank, self.n * (self.nope + self.v_dim), False, "attention_proj")
        self.out = TaggedLinear(self.n * self.v_dim, h, False, "attention_proj")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        q = self.q_proj(x) if self.q_proj is not None else self.q_up(self.q_norm(self.q_down(x)))
        q = q.view(b, s, self.n, self.nope + self.rope_dim).transpose(1, 2)
        q_nope, q_rope = q.split([self.nope, self.rope_dim], dim=-1)
        latent, k_rope = self.kv_down(x).split([self.kv_rank, self.rope_dim], dim=-1)
        kv = self.kv_up(self.kv_norm(latent)).view(b, s, self.n, self.nope + self.v_dim).transpose(1, 2)
        k_nope, v = kv.split([self.nope, self.v_dim], dim=-1)
        k_rope = apply_rope(k_rope.unsqueeze(1)).expand(b, self.n, s, self.rope_dim)  # one rope key shared by all heads
        q = torch.cat((q_nope, apply_rope(q_rope)), dim=-1)
        k = torch.cat((k_nope, k_rope), dim=-1)
        y = attention_core(q, k, v).transpose(1, 2).reshape(b, s, self.n * self.v_dim)
        return self.out(y)


class FFN(nn.Module):
    """Gated (SwiGLU/GeGLU: gate, up, down) or plain (GELU/ReLU: fc1, fc2) feed-forward."""

    def __init__(self, spec: ModelSpec, width: int, component: str):
        super().__init__()
        h, bias = spec.d_model, spec.ffn_bias
        self.kind = spec.ffn
        self.gate = TaggedLinear(h, width, bias, component) if spec.gated_ffn else None
        self.up = TaggedLinear(h, width, bias, component)
        self.down = TaggedLinear(width, h, bias, component)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "swiglu":
            a = F.silu(self.gate(x)) * self.up(x)
        elif self.kind == "geglu":
            a = F.gelu(self.gate(x), approximate="tanh") * self.up(x)
        elif self.kind == "gelu":
            a = F.gelu(self.up(x))
        else:
            a = F.relu(self.up(x))
        return self.down(a)


class MoE(nn.Module):
    """Router GEMM + softmax top-k, routed experts run on index_select'ed tokens, optional (gated) shared experts."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        moe = spec.moe
        assert moe is not None
        self.top_k = moe.top_k
        self.router = TaggedLinear(spec.d_model, moe.n_routed_experts, False, "router")
        self.experts = nn.ModuleList(FFN(spec, moe.d_ff_expert, "routed_experts") for _ in range(moe.n_routed_experts))
        self.shared = FFN(spec, moe.shared_width, "shared_experts") if moe.shared_width else None
        self.shared_gate = TaggedLinear(spec.d_model, 1, False, "router") if moe.shared_expert_gate else None
        self.last_topk: torch.Tensor | None = None
        """[tokens, top_k] expert ids chosen in the last forward (for the activated-parameter check)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        weights, chosen = self.router(x).softmax(dim=-1).topk(self.top_k, dim=-1)
        self.last_topk = chosen.detach()
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            token, slot = (chosen == e).nonzero(as_tuple=True)
            if token.numel() == 0:
                continue
            y = expert(x.index_select(0, token)) * weights[token, slot].unsqueeze(-1)
            out = out.index_add(0, token, y)
        if self.shared is not None:
            shared = self.shared(x)
            if self.shared_gate is not None:
                shared = torch.sigmoid(self.shared_gate(x)) * shared
            out = out + shared
        return out.view(shape)


class Block(nn.Module):
    def __init__(self, spec: ModelSpec, moe: bool):
        super().__init__()
        self.parallel = spec.parallel_attention
        self.attn_norm = make_norm(spec, spec.d_model)
        self.attn = MLAttention(spec) if spec.attention == "mla" else StandardAttention(spec)
        self.ffn_norm = make_norm(spec, spec.d_model)
        self.ffn = MoE(spec) if moe else FFN(spec, spec.d_ff, "dense_ffn")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.parallel:  # Falcon-40B / GPT-NeoX: both branches read the block input, each through its own norm
            return x + self.attn(self.attn_norm(x)) + self.ffn(self.ffn_norm(x))
        x = x + self.attn(self.attn_norm(x))
        return x + self.ffn(self.ffn_norm(x))


class MTPModule(nn.Module):
    """DeepSeek-V3 §2.2: h' = M [RMSNorm(h); RMSNorm(Emb(t_{i+k}))], one block, own final norm, shared head."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        h = spec.d_model
        self.h_norm = make_norm(spec, h)
        self.e_norm = make_norm(spec, h)
        self.proj = TaggedLinear(2 * h, h, False, "mtp")
        self.block = Block(spec, moe=spec.moe is not None)
        self.final_norm = make_norm(spec, h)

    def forward(self, hidden: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.block(self.proj(torch.cat((self.h_norm(hidden), self.e_norm(emb)), dim=-1)))


class TinyLM(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        h = spec.d_model
        self.tok_emb = nn.Embedding(spec.vocab_size, h)
        self.pos_emb = nn.Embedding(spec.max_position_embeddings, h) if spec.position_embedding == "learned" else None
        self.emb_norm = make_norm(spec, h) if spec.embedding_norm else None
        self.layers = nn.ModuleList(Block(spec, spec.is_moe_layer(i)) for i in range(spec.n_layers))
        self.final_norm = make_norm(spec, h)
        self.lm_head = TaggedLinear(h, spec.vocab_size, False, "lm_head")
        if spec.tied_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        self.mtp = nn.ModuleList(MTPModule(spec) for _ in range(spec.mtp_depth))

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.tok_emb(tokens)
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(tokens.shape[1]))
        if self.emb_norm is not None:
            x = self.emb_norm(x)
        return x

    def forward(self, tokens: torch.Tensor, include_mtp: bool = True) -> list[torch.Tensor]:
        """Logits of the main model, then of each MTP depth (depth k predicts token i+k+1)."""
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x)
        logits = [self.lm_head(self.final_norm(x))]
        if include_mtp:
            hidden = x
            for depth, module in enumerate(self.mtp, start=1):
                # Rolled, not truncated, so every depth sees all s positions (Megatron's MTP does the same).
                hidden = module(hidden, self.embed(torch.roll(tokens, -depth, dims=1)))
                logits.append(self.lm_head(module.final_norm(hidden)))
        return logits
