"""Which number format each weight GEMM of a serving deployment runs in (docs/model.md §16.14).

A serving precision names the format of the bulk of the weights; not every GEMM follows it:
- bf16: every GEMM in BF16.
- fp8: every weight GEMM in FP8 but the router and the LM head (not FP8-eligible; DeepSeek-V3 §3.3 keeps the
  gating and the output head in their original precision).
- fp4 (NVFP4, Blackwell): the linear layers of the transformer blocks in NVFP4, weights and inputs alike, with the
  exceptions NVIDIA's quantization recipes make: the routers and the LM head stay BF16 (TensorRT Model Optimizer,
  modelopt/torch/quantization/config.py, `_default_disabled_quantizer_cfg`: "*lm_head*", "*router*", "*mlp.gate.*"
  disabled); an MLA model's attention projections stay in FP8 (its DeepSeek example, examples/deepseek/ptq.py,
  disables "*attn*", so the checkpoint keeps the original FP8 block weights there; SGLang's GB200 deployment runs
  "FP8 attention + NVFP4 MoE"); and the MTP module stays FP8 (the same script adds `layers.{n_layers}*`, the MTP
  layer, to the excluded modules). Other attention (MHA, GQA) is quantized with the rest: NVFP4_DEFAULT_CFG
  quantizes every linear layer but those above.
"""

from __future__ import annotations

import numpy as np

from simulator.inputs.specs import ModelSpec
from simulator.model.flops import Gemm
from simulator.vocab import SERVE_PRECISIONS

GEMM_FORMATS = SERVE_PRECISIONS
"""The formats a weight GEMM can run in: the serving precisions themselves (a GEMM runs in its deployment's or a wider
one, never a format no precision names)."""


def fp4_eligible(g: Gemm, model: ModelSpec, kind: str) -> bool:
    """True where a serving deployment in fp4 runs this GEMM in NVFP4 (see the module docstring)."""
    if not g.fp8_eligible or kind == "mtp":
        return False
    return not (model.attention == "mla" and g.component == "attention_proj")


def gemm_format(precision: str, g: Gemm, model: ModelSpec, kind: str) -> str:
    """The format one weight GEMM of a layer of `kind` runs in under a serving `precision` (bf16, fp8, fp4)."""
    if precision == "bf16" or not g.fp8_eligible:
        return "bf16"
    if precision == "fp4" and fp4_eligible(g, model, kind):
        return "fp4"
    return "fp8"


def gemm_formats(precisions: np.ndarray, g: Gemm, model: ModelSpec, kind: str) -> np.ndarray:
    """`gemm_format` for an array of candidate precisions (one string per candidate)."""
    out = np.full(len(precisions), "bf16", dtype="<U4")
    for p in SERVE_PRECISIONS:
        out[precisions == p] = gemm_format(p, g, model, kind)
    return out
