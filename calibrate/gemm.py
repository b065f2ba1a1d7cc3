"""GEMM microbenchmarks: the three GEMMs of a linear layer in training, over shapes and dtypes.

For each shape (m tokens, n outputs, k inputs) the forward Y = X.W^T, the input gradient dX = dY.W and
the weight gradient dW = dY^T.X are timed separately; the simulator charges each at one forward GEMM's
time, so the fit uses their mean. FP8 runs through torch._scaled_mm (per-tensor scales, BF16 output)
where the GPU has FP8 tensor cores. FP4 runs as NVFP4 (W4A4: both operands E2M1 with an E4M3 scale per 16 elements
of the inner dimension and an FP32 scale per tensor, BF16 output) through torch.nn.functional.scaled_mm where the GPU
has FP4 tensor cores (Blackwell); each of its three GEMMs is the same NVFP4 product at that GEMM's inner dimension.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from calibrate.device import DTYPES, FP4, FP8
from calibrate.timing import Budget, measure, randn
from simulator.inputs.calibration import GemmSample, Timing
from simulator.inputs.specs import ModelSpec
from simulator.model.flops import head_gemm, layer_gemms, layer_kinds


@dataclass(frozen=True)
class Shape:
    m: int
    n: int
    k: int
    origin: str = "sweep"

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.n * self.k


def model_shapes(spec: ModelSpec, tokens: int, tp: int = 1) -> list[Shape]:
    """The weight GEMMs of one micro-batch of `tokens` tokens of `spec` on one GPU with tensor parallelism `tp`."""
    out: list[Shape] = []
    kinds = sorted(set(layer_kinds(spec)))
    gemms = [g for kind in kinds for g in layer_gemms(spec, kind)] + [head_gemm(spec)]  # type: ignore[arg-type]
    for g in gemms:
        m, n, k = float(tokens), float(g.n), float(g.k)
        if g.routed and spec.moe is not None:
            m = tokens * g.multiplicity / spec.moe.n_routed_experts
        if g.sharding in ("column", "vocab"):
            n /= tp
        elif g.sharding == "row":
            k /= tp
        out.append(Shape(max(1, round(m)), max(1, round(n)), max(1, round(k)), spec.name))
    return unique(out)


def unique(shapes: list[Shape]) -> list[Shape]:
    seen, out = set(), []
    for s in shapes:
        if (s.m, s.n, s.k) not in seen:
            seen.add((s.m, s.n, s.k))
            out.append(s)
    return out


def square_shapes(sizes: list[int]) -> list[Shape]:
    return [Shape(s, s, s) for s in sizes]


def _calls(shape: Shape, dtype: str, device: torch.device) -> tuple[Callable, Callable, Callable]:
    m, n, k = shape.m, shape.n, shape.k
    if dtype == FP8:
        return _fp8_calls(m, n, k, device)
    if dtype == FP4:
        return _fp4_calls(m, n, k, device)
    dt = DTYPES[dtype]
    x, w, dy = randn((m, k), dt, device), randn((n, k), dt, device), randn((m, n), dt, device)
    dy_t = dy.t()
    return (lambda: F.linear(x, w)), (lambda: dy @ w), (lambda: dy_t @ x)


def _fp8_calls(m: int, n: int, k: int, device: torch.device) -> tuple[Callable, Callable, Callable]:
    # torch._scaled_mm wants the first operand row-major and the second column-major.
    e4m3 = torch.float8_e4m3fn
    one = torch.tensor(1.0, device=device)
    x = randn((m, k), e4m3, device)  # X
    w = randn((n, k), e4m3, device)  # W
    w_t = randn((k, n), e4m3, device)  # W^T stored row-major, read column-major as W
    dy = randn((m, n), e4m3, device)
    dy_t = randn((n, m), e4m3, device)
    x_t = randn((k, m), e4m3, device)

    def mm(a, b):
        return torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)

    return (lambda: mm(x, w.t())), (lambda: mm(dy, w_t.t())), (lambda: mm(dy_t, x_t.t()))


NVFP4_BLOCK = 16
"""Elements of the inner dimension per E4M3 scale (NVFP4)."""
SCALE_TILE_ROWS, SCALE_TILE_COLS = 128, 4
"""The swizzled block-scale layout (SWIZZLE_32_4_4) stores the scales in whole tiles of 128 rows x 4 scale columns."""
NVFP4_ALIGN = 128
"""NVFP4 points are measured at dimensions rounded up to this: every dimension is an inner one in some GEMM of the
three, and the scale tiles cover 128 rows."""


def round_up(x: int, to: int) -> int:
    """The smallest multiple of `to` that is at least `x` (and at least `to`)."""
    return max(to, -(-x // to) * to)


def nvfp4_scale_elements(rows: int, inner: int) -> int:
    """E4M3 block scales of a [rows x inner] NVFP4 operand in the swizzled layout (padded to whole tiles)."""
    return round_up(rows, SCALE_TILE_ROWS) * round_up(-(-inner // NVFP4_BLOCK), SCALE_TILE_COLS)


def random_fp4_bytes(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Packed E2M1 pairs as random bytes: every 4-bit code is a finite E2M1 value, so random bytes are random data, as
    the other dtypes use (never constants: they change a GEMM's power draw and clocks)."""
    return torch.randint(0, 256, shape, dtype=torch.uint8, device=device)


def nvfp4_operand(rows: int, inner: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(values, block scales, tensor scale) of a [rows x inner] NVFP4 operand: random E2M1 pairs packed two to a byte
    (random_fp4_bytes), unit block scales and a unit tensor scale."""
    if inner % (2 * NVFP4_BLOCK):
        raise ValueError(f"an NVFP4 operand needs an inner dimension that is a multiple of {2 * NVFP4_BLOCK}, got {inner}")
    packed = random_fp4_bytes((rows, inner // 2), device).view(torch.float4_e2m1fn_x2)
    scales = torch.ones(nvfp4_scale_elements(rows, inner), device=device).to(torch.float8_e4m3fn)
    return packed, scales, torch.tensor(1.0, device=device)


def nvfp4_product(a, a_blocks, a_scale, b, b_blocks, b_scale) -> Callable:
    """The NVFP4 GEMM [rows_a x inner] . [rows_b x inner]^T of two operands as nvfp4_operand makes them, BF16 out;
    scaled_mm wants the second operand column-major, as .t() gives."""
    functional = torch.nn.functional
    recipe = [functional.ScalingType.BlockWise1x16, functional.ScalingType.TensorWise]
    swizzle = [functional.SwizzleType.SWIZZLE_32_4_4, functional.SwizzleType.NO_SWIZZLE]
    return lambda: functional.scaled_mm(
        a, b.t(), [a_blocks, a_scale], recipe, [b_blocks, b_scale], recipe, swizzle, swizzle, output_dtype=torch.bfloat16
    )


def _fp4_calls(m: int, n: int, k: int, device: torch.device) -> tuple[Callable, Callable, Callable]:
    def product(rows_a: int, rows_b: int, inner: int) -> Callable:
        return nvfp4_product(*nvfp4_operand(rows_a, inner, device), *nvfp4_operand(rows_b, inner, device))

    # Y[m,n] = X[m,k].W[n,k]^T; dX[m,k] = dY[m,n].W (inner n); dW[n,k] = dY^T.X (inner m).
    return product(m, n, k), product(m, k, n), product(n, k, m)


def bench(shape: Shape, dtype: str, device: torch.device, budget: Budget) -> GemmSample:
    fwd, dgrad, wgrad = _calls(shape, dtype, device)
    timings: list[Timing] = [measure(f, device, budget) for f in (fwd, dgrad, wgrad)]
    return GemmSample(
        m=shape.m,
        n=shape.n,
        k=shape.k,
        dtype=dtype,  # type: ignore[arg-type]
        forward=timings[0],
        input_grad=timings[1],
        weight_grad=timings[2],
        origin=shape.origin,
    )


def kernel_overhead_s(device: torch.device) -> float:
    """Median time of a 16 x 16 x 16 BF16 GEMM: the fixed cost of launching one kernel."""
    x, w = randn((16, 16), torch.bfloat16, device), randn((16, 16), torch.bfloat16, device)
    return measure(lambda: F.linear(x, w), device, Budget(warmup=5, min_repeats=50, max_repeats=200, target_s=0.05)).median_s
