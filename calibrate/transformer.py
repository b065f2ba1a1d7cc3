"""A plain-torch decoder-only transformer built from a ModelSpec, trained the way the simulator models it.

Architecture (the simulator's standard dense layer): RMSNorm, fused QKV projection, RoPE, causal
scaled_dot_product_attention (GQA), output projection, residual; RMSNorm, fused gate+up projection,
SwiGLU, down projection, residual; final RMSNorm, untied LM head, cross-entropy on fp32 logits.

Precision (the simulator's BF16 recipe, Megatron-LM style): BF16 weights and activations, gradients
accumulated into fp32 main gradients as soon as they are produced, fused AdamW on fp32 master weights,
then the BF16 weights refreshed from the masters. That is 2 + 4 + 12 = 18 bytes per parameter, the
state memory simulator/memory.py counts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from simulator.errors import InputError
from simulator.inputs.specs import ModelSpec

# Non-reentrant checkpointing stops recomputing a layer once every tensor its backward needs is saved again (PyTorch's
# default since 2.1). A GEMM's inputs are saved before it runs, so the layer's last GEMM, the down projection, is never
# recomputed. validate local predicts with this setting (Job.checkpoint_early_stop; docs/model.md §2.5).
CHECKPOINT_EARLY_STOP = True


def check_supported(spec: ModelSpec) -> None:
    unsupported = []
    if spec.attention != "standard" or spec.moe is not None or spec.mtp_depth:
        unsupported.append("MLA, MoE or MTP")
    if spec.ffn != "swiglu":
        unsupported.append(f"ffn {spec.ffn}")
    if spec.norm != "rmsnorm" or spec.position_embedding != "rope":
        unsupported.append(f"{spec.norm} / {spec.position_embedding} positions")
    if spec.attention_bias or spec.output_bias or spec.ffn_bias or spec.qk_norm or spec.parallel_attention:
        unsupported.append("biases, qk-norm or parallel attention")
    if spec.sliding_window or spec.embedding_norm or spec.tied_embeddings:
        unsupported.append("sliding window, embedding norm or tied embeddings")
    if unsupported:
        raise InputError(
            f"the local trainer builds Llama-style dense models only; {spec.name} has {', '.join(unsupported)}. "
            "Use a Llama-style spec (swiglu, rmsnorm, rope, no biases, untied)"
        )


# The norm, RoPE and SwiGLU keep for the backward exactly what the simulator's activation memory counts
# (simulator/memory.py, fused kernels as in Megatron-LM): the norm input and its fp32 1/rms, nothing for
# RoPE, and the SwiGLU inputs (the activation output is kept by the down projection). Eager torch would
# keep more (fp32 intermediates, both RoPE operands, silu(gate)).


class _RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        xf = x.to(_accumulate(x))  # statistics in fp32 (or wider)
        rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
        ctx.save_for_backward(x, weight, rstd)
        return (xf * rstd).to(x.dtype) * weight

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight, rstd = ctx.saved_tensors
        acc = _accumulate(x)
        xhat = x.to(acc) * rstd
        gw = grad.to(acc) * weight.to(acc)
        dx = rstd * (gw - xhat * (gw * xhat).mean(-1, keepdim=True))
        dweight = (grad.to(acc) * xhat).flatten(0, -2).sum(0)
        return dx.to(x.dtype), dweight.to(weight.dtype), None


def _accumulate(x: torch.Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, torch.float32)


class RMSNorm(nn.Module):
    def __init__(self, width: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _RMSNorm.apply(x, self.weight, self.eps)


def rope_tables(head_dim: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotary angles (base 10000) of positions 0 .. seq_len - 1: [seq_len, head_dim], fp32."""
    inv = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv)
    emb = torch.cat((angles, angles), dim=-1)
    return emb.cos(), emb.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE (rotate-half form) on the last dim of x [..., seq, head_dim] with the tables of rope_tables."""
    a, b = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-b, a), dim=-1) * sin


class _Rope(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(cos, sin)
        return rotate(x, cos, sin)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        cos, sin = ctx.saved_tensors
        return rotate(grad, cos, -sin), None, None  # the transpose of a rotation is the rotation back


class Rope(nn.Module):
    def __init__(self, head_dim: int, seq_len: int) -> None:
        super().__init__()
        cos, sin = rope_tables(head_dim, seq_len)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Rope.apply(x, self.cos, self.sin)


class _SwiGLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(gate, up)
        return F.silu(gate) * up

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        gate, up = ctx.saved_tensors
        sig = torch.sigmoid(gate)
        silu = gate * sig
        return grad * up * sig * (1 + gate * (1 - sig)), grad * silu


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return _SwiGLU.apply(gate, up)


class Block(nn.Module):
    def __init__(self, spec: ModelSpec, seq_len: int) -> None:
        super().__init__()
        h, hd = spec.d_model, spec.head_dim
        self.heads, self.kv_heads, self.head_dim = spec.n_heads, spec.n_kv_heads, hd
        self.norm1 = RMSNorm(h)
        self.qkv = nn.Linear(h, (spec.n_heads + 2 * spec.n_kv_heads) * hd, bias=False)
        self.out = nn.Linear(spec.n_heads * hd, h, bias=False)
        self.norm2 = RMSNorm(h)
        self.up = nn.Linear(h, 2 * spec.d_ff, bias=False)
        self.down = nn.Linear(spec.d_ff, h, bias=False)
        self.rope = Rope(hd, seq_len)
        # The attention core; calibrate/memory_kernels.py swaps it (and the projections) for stand-ins to time
        # the rest of the layer as it runs here.
        self.attention = F.scaled_dot_product_attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        hd = self.head_dim
        q, k, v = self.qkv(self.norm1(x)).split([self.heads * hd, self.kv_heads * hd, self.kv_heads * hd], dim=-1)
        q = self.rope(q.view(b, s, self.heads, hd).transpose(1, 2))
        k = self.rope(k.view(b, s, self.kv_heads, hd).transpose(1, 2))
        v = v.view(b, s, self.kv_heads, hd).transpose(1, 2)
        a = self.attention(q, k, v, is_causal=True, enable_gqa=self.kv_heads != self.heads)
        x = x + self.out(a.transpose(1, 2).reshape(b, s, self.heads * hd))
        gate, up = self.up(self.norm2(x)).chunk(2, dim=-1)
        return x + self.down(swiglu(gate, up))


class DecoderLM(nn.Module):
    """`recompute`: full activation recomputation, one checkpoint per layer (Megatron-LM's --recompute-granularity
    full --recompute-method uniform --recompute-num-layers 1, FSDP's activation checkpointing of each block): only
    each layer's input is kept, and its forward runs again in the backward, up to the down projection
    (CHECKPOINT_EARLY_STOP)."""

    def __init__(self, spec: ModelSpec, seq_len: int, recompute: bool = False) -> None:
        super().__init__()
        check_supported(spec)
        self.recompute = recompute
        self.embed = nn.Embedding(spec.vocab_size, spec.d_model)
        self.blocks = nn.ModuleList(Block(spec, seq_len) for _ in range(spec.n_layers))
        self.norm = RMSNorm(spec.d_model)
        self.head = nn.Linear(spec.d_model, spec.vocab_size, bias=False)

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for block in self.blocks:
            if self.recompute and self.training:
                x = checkpoint(block, x, use_reentrant=False, early_stop=CHECKPOINT_EARLY_STOP)
            else:
                x = block(x)
        logits = self.head(self.norm(x))
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())


class MixedPrecisionAdam:
    """BF16 model weights, fp32 main gradients filled by hooks, fused AdamW on fp32 masters (see module doc)."""

    def __init__(self, params: list[torch.Tensor], lr: float = 1e-4) -> None:
        self.params = params
        self.masters = [p.detach().float().clone() for p in params]
        self.main_grads = [torch.zeros_like(m) for m in self.masters]
        for master, grad in zip(self.masters, self.main_grads, strict=True):
            master.grad = grad
        fused = params[0].device.type in ("cuda", "cpu")
        self.optimizer = torch.optim.AdamW(self.masters, lr=lr, fused=fused)
        for p, g in zip(params, self.main_grads, strict=True):
            p.register_post_accumulate_grad_hook(_accumulate_into(g))

    def step(self) -> None:
        self.optimizer.step()
        with torch.no_grad():
            torch._foreach_copy_(self.params, self.masters)
            torch._foreach_zero_(self.main_grads)


def _accumulate_into(main_grad: torch.Tensor):
    def hook(p: torch.Tensor) -> None:
        main_grad.add_(p.grad)
        p.grad = None  # the BF16 gradient is freed at once, as with Megatron's main_grad buffers

    return hook


def build(spec: ModelSpec, seq_len: int, device: torch.device, recompute: bool = False) -> tuple[DecoderLM, MixedPrecisionAdam]:
    with device:  # built and initialised where it trains (a 1B model would take seconds on the host)
        model = DecoderLM(spec, seq_len, recompute)
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() > 1:
                    nn.init.normal_(p, std=0.02)
    model = model.to(device=device, dtype=torch.bfloat16)  # weights and the RoPE tables
    return model, MixedPrecisionAdam(list(model.parameters()))


def random_batch(spec: ModelSpec, batch: int, seq_len: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.randint(0, spec.vocab_size, (batch, seq_len), device=device)
    targets = torch.randint(0, spec.vocab_size, (batch, seq_len), device=device)
    return tokens, targets


def train_step(model: DecoderLM, opt: MixedPrecisionAdam, tokens: torch.Tensor, targets: torch.Tensor) -> float:
    loss = model(tokens, targets)
    loss.backward()
    opt.step()
    return float(loss.detach())
