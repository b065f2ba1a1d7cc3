"""Request lengths of a served workload: from a distribution of (prompt, output) lengths to the few lengths the
serving model needs (docs/model.md §16.15).

The serving model costs a prefill pass and a decode step linearly in what they hold, so a mix of requests is costed
exactly by a single request of the right lengths, one for each phase:

- prefill: a prompt of I tokens costs I x (a + b x I) (its GEMMs per token, and causal attention whose work per token
  grows with the prompt), so the mix's cost per input token is that of a prompt of E[I^2] / E[I] tokens, the
  token-weighted prompt length, longer than the mean when lengths vary;
- decode: a request stays in the running batch for its O output steps, so a batch slot is held by each request in
  proportion to O (Little's law). The KV cache a slot holds on average is E[O x (I + O / 2)] / E[O]: that of a request
  with the output-weighted prompt E[O x I] / E[O] and the length-biased output E[O^2] / E[O]. Reserving whole requests
  at admission holds E[O x (I + O)] / E[O], the same two lengths again;
- tokens: a request brings E[I] input and E[O] output tokens, so costs per request and the prefill/decode split take
  the plain means.

One fixed request (every length the same) gives back its own lengths, so --input-len / --output-len are the special
case of a one-point workload. A sliding window is not linear (a sequence holds min(context, W) positions): the decode
takes its average over the requests exactly instead (windowed_positions), one request included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.inputs.workload_file import Lengths, Marginal, Workload


@dataclass(frozen=True)
class RequestLengths:
    """What the serving model takes from a workload (module docstring): plain means for token counts, the
    token-weighted prompt for prefill, the output-weighted prompt and length-biased output for decode."""

    mean_input_len: float
    mean_output_len: float
    prefill_input_len: float
    """E[I^2] / E[I]: the prompt length whose prefill cost per token is the mix's."""
    decode_input_len: float
    """E[O x I] / E[O]: the prompt of an average decode slot."""
    decode_output_len: float
    """E[O^2] / E[O]: the output of an average decode slot (its context is the prompt plus half of it)."""
    max_input_len: float
    max_output_len: float
    max_context_len: float
    """The longest request, prompt plus output: what the model's positions must hold (a learned table or a RoPE
    model's stated context; ModelSpec.served_positions)."""

    @property
    def decode_context_len(self) -> float:
        """Mean KV positions a running sequence holds: the decode prompt plus half the decode output."""
        return self.decode_input_len + self.decode_output_len / 2.0

    def to_dict(self) -> dict:
        return {
            "mean_input_len": self.mean_input_len,
            "mean_output_len": self.mean_output_len,
            "prefill_input_len": self.prefill_input_len,
            "decode_input_len": self.decode_input_len,
            "decode_output_len": self.decode_output_len,
            "decode_context_len": self.decode_context_len,
            "max_input_len": self.max_input_len,
            "max_output_len": self.max_output_len,
            "max_context_len": self.max_context_len,
        }


def request_lengths(d: Lengths) -> RequestLengths:
    """The effective lengths of a distribution (module docstring)."""
    i, o, w = (np.asarray(x, dtype=float) for x in (d.input_len, d.output_len, d.weight))
    w = w / w.sum()
    mean_i, mean_o = float(w @ i), float(w @ o)
    return RequestLengths(
        mean_input_len=mean_i,
        mean_output_len=mean_o,
        prefill_input_len=float(w @ (i * i)) / mean_i,
        decode_input_len=float(w @ (o * i)) / mean_o,
        decode_output_len=float(w @ (o * o)) / mean_o,
        max_input_len=float(i.max()),
        max_output_len=float(o.max()),
        max_context_len=float((i + o).max()),
    )


def independent_lengths(inputs: Marginal, outputs: Marginal) -> RequestLengths:
    """The effective lengths of prompts and outputs drawn independently: E[O x I] = E[O] E[I], so decode takes the
    mean prompt."""
    return RequestLengths(
        mean_input_len=inputs.mean,
        mean_output_len=outputs.mean,
        prefill_input_len=inputs.mean_square / inputs.mean,
        decode_input_len=inputs.mean,
        decode_output_len=outputs.mean_square / outputs.mean,
        max_input_len=inputs.longest,
        max_output_len=outputs.longest,
        max_context_len=inputs.longest + outputs.longest,
    )


def workload_lengths(w: Workload) -> RequestLengths:
    """A workload file's effective lengths: of its request classes, or of its two independent distributions."""
    d = w.lengths()
    return request_lengths(d) if isinstance(d, Lengths) else independent_lengths(*d)


def one_request(input_len: float, output_len: float) -> Lengths:
    return Lengths(np.array([float(input_len)]), np.array([float(output_len)]), np.array([1.0]))


def _window_area(x: np.ndarray, window: float) -> np.ndarray:
    """The integral of min(s, window) over s from 0 to x: x^2 / 2 up to the window, then window x - window^2 / 2."""
    return np.where(x <= window, x * x / 2.0, window * x - window * window / 2.0)


def windowed_positions(d: Lengths, window: float) -> tuple[float, float]:
    """KV positions a running sequence holds under a sliding window of `window` tokens, averaged over decode slots as
    the effective lengths are (each request weighted by its O steps): on demand, E[integral over its decode of
    min(I + t, W) dt] / E[O]; reserved whole at admission, E[O min(I + O, W)] / E[O]. The window caps a sequence's
    cache, and min is concave, so the cap of the mean context would overstate both (by 13% for one request of 100
    prompt and 8,000 output tokens under a 2,048-token window)."""
    i, o, w = (np.asarray(x, dtype=float) for x in (d.input_len, d.output_len, d.weight))
    mean_o = float(w @ o)
    on_demand = float(w @ (_window_area(i + o, window) - _window_area(i, window))) / mean_o
    reserved = float(w @ (o * np.minimum(i + o, window))) / mean_o
    return on_demand, reserved


def fixed_request(input_len: float, output_len: float) -> RequestLengths:
    """One request of these lengths: every effective length is its own."""
    return request_lengths(one_request(input_len, output_len))
