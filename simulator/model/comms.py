"""Collective communication times: latency plus bytes over bus bandwidth.

t = alpha + factor(op, n) · S / busBW, with the nccl-tests bus-bandwidth factors
(nccl-tests doc/PERFORMANCE.md): all-reduce 2(n-1)/n; all-gather, reduce-scatter and
all-to-all (n-1)/n; send/recv and broadcast 1. S is the full array size in bytes, as nccl-tests defines it.

Hierarchy (docs/model.md §4.2): a group of n ranks with n_l of them inside one NVLink domain
reaches busBW = min(B_nvlink, n_l · B_nic) when it spans several domains (one NIC per GPU,
rail-optimized), and B_nvlink when it stays inside one.

busBW is a large-message figure. Where a profile has published all-reduce times of groups that span domains
(nccl-tests tables), an all-reduce takes at least the measured time of a group it contains (`all_reduce_floor_s`):
across nodes NCCL reaches a fraction of busBW below about 100 MB.

Every function takes scalars or numpy arrays (one entry per candidate layout) and has no branches
on values, so the scalar estimate and the vectorized search run the same formulas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Collective = Literal["all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv", "broadcast"]


def bus_factor(op: Collective, n):
    """nccl-tests bus-bandwidth factor; 0 for a group of one (nothing to exchange)."""
    n = np.maximum(n, 1)
    if op == "all_reduce":
        return 2.0 * (n - 1) / n
    if op in ("send_recv", "broadcast"):
        return np.ones_like(n, dtype=float)
    return (n - 1) / n


@dataclass(frozen=True)
class AllReduceFloor:
    """Measured all-reduce times of a group of `domains` scale-up domains with `ranks_per_domain` ranks in each
    (specs.MeasuredAllReduce.lower_envelope), as ln bytes -> ln seconds, sizes ascending."""

    domains: int
    ranks_per_domain: int
    ln_sizes: tuple[float, ...]
    ln_times: tuple[float, ...]

    @classmethod
    def from_table(cls, domains: int, ranks_per_domain: int, sizes_bytes, times_s) -> AllReduceFloor:
        return cls(domains, ranks_per_domain, tuple(np.log(sizes_bytes)), tuple(np.log(times_s)))

    def slowed(self, factor: float) -> AllReduceFloor:
        """The table with every time `factor` times as long (a network efficiency drawn `1 / factor` of nominal)."""
        shift = math.log(factor)
        return AllReduceFloor(self.domains, self.ranks_per_domain, self.ln_sizes, tuple(t + shift for t in self.ln_times))


@dataclass(frozen=True)
class Fabric:
    """Achieved bandwidths of one GPU's links, after the bus efficiencies."""

    scale_up_bytes_per_s: float
    scale_out_bytes_per_s: float
    domain_gpus: int
    latency_s: float
    all_to_all_latency_s: float | None = None
    """Latency of one EP dispatch or combine where a calibration measured the all-to-all of few tokens per rank
    (costsim serve --calibration, docs/model.md §16.13); None: latency_s."""
    all_reduce_floors: tuple[AllReduceFloor, ...] = ()
    """The profile's measured all-reduce tables (EfficiencyDefaults.all_reduce_measured); empty: the formula alone."""

    @property
    def exchange_latency_s(self) -> float:
        """Latency charged per EP dispatch and per combine."""
        return self.latency_s if self.all_to_all_latency_s is None else self.all_to_all_latency_s


@dataclass(frozen=True)
class Group:
    """A communicator: `size` ranks, consecutive ranks `stride` apart (Megatron order TP, CP, EP/DP, PP).

    size and stride may be numpy arrays (one communicator per candidate layout)."""

    size: int
    stride: int

    def ranks_per_domain(self, domain_gpus: int):
        return np.maximum(1, np.minimum(self.size, domain_gpus // self.stride))


def bus_bandwidth(group: Group, fabric: Fabric):
    n_local = group.ranks_per_domain(fabric.domain_gpus)
    spans = np.minimum(fabric.scale_up_bytes_per_s, n_local * fabric.scale_out_bytes_per_s)
    return np.where(n_local >= group.size, fabric.scale_up_bytes_per_s, spans)


def collective_s(op: Collective, size_bytes, group: Group, fabric: Fabric):
    """Time of one collective over `group` moving a full array of `size_bytes` (0 for a group of one).

    All-to-all goes through moe_dispatch_combine_s, which knows how tokens cross nodes."""
    t = fabric.latency_s + bus_factor(op, group.size) * size_bytes / bus_bandwidth(group, fabric)
    if op == "all_reduce" and fabric.all_reduce_floors:
        t = np.maximum(t, all_reduce_floor_s(size_bytes, group, fabric))
    return np.where(group.size > 1, t, 0.0)


def all_reduce_floor_s(size_bytes, group: Group, fabric: Fabric):
    """The least time an all-reduce of `size_bytes` over `group` takes by the fabric's measured tables (0 where none
    applies; docs/model.md §4.2).

    A table applies to a group with at least its domains fully taken, each with at least its ranks: more domains add
    network steps and more ranks per domain add NVLink steps, so the table's time is a lower bound (a group of 12 ranks
    on 8-GPU nodes fills one node, not two). Inside a table the time is interpolated in log bytes and log time, below
    its smallest size it holds that size's time, and above its largest it grows from the last row at the formula's bus
    bandwidth. Where several apply, the largest floor binds; an empty message has none."""
    n_local = group.ranks_per_domain(fabric.domain_gpus)
    full_domains = np.maximum(group.size, 1) // n_local
    size = np.maximum(size_bytes, 1.0)
    ln_size = np.log(size)
    seconds_per_byte = bus_factor("all_reduce", group.size) / bus_bandwidth(group, fabric)
    floor = np.zeros(np.broadcast(size, full_domains).shape)
    for table in fabric.all_reduce_floors:
        largest, last_s = math.exp(table.ln_sizes[-1]), math.exp(table.ln_times[-1])
        inside = np.exp(np.interp(ln_size, table.ln_sizes, table.ln_times))
        t = np.where(size > largest, last_s + (size - largest) * seconds_per_byte, inside)
        applies = (n_local >= table.ranks_per_domain) & (full_domains >= table.domains)
        floor = np.maximum(floor, np.where(applies, t, 0.0))
    return np.where(np.asarray(size_bytes) > 0, floor, 0.0)


def expected_nodes_hit(k: int, n_nodes, max_nodes: int | None):
    """Distinct nodes a token's k experts land on, experts spread uniformly; capped by node-limited routing."""
    n_nodes = np.maximum(n_nodes, 1)
    uniform = n_nodes * (1.0 - (1.0 - 1.0 / n_nodes) ** k)
    capped = np.minimum(uniform, float(max_nodes)) if max_nodes else uniform
    return np.where(n_nodes <= 1, 1.0, capped)


def moe_dispatch_combine_s(
    tokens,
    top_k: int,
    hidden: int,
    dispatch_bytes_per_elem: float,
    combine_bytes_per_elem: float,
    group: Group,
    fabric: Fabric,
    max_nodes_per_token: int | None,
):
    """One dispatch plus one combine for `tokens` local tokens (docs/model.md §4.5); 0 for a group of one.

    Across domains a token crosses the network once per remote target node and is then forwarded
    over NVLink (DeepSeek-V3 §3.2.2); inside a domain each routed copy goes over NVLink.
    """
    size = np.maximum(group.size, 1)
    n_local = group.ranks_per_domain(fabric.domain_gpus)
    n_nodes = np.maximum(1, -(-size // n_local))  # domains the group touches: 128 ranks over 72-GPU domains touch 2
    bytes_per_token = hidden * (dispatch_bytes_per_elem + combine_bytes_per_elem)
    k_remote_ranks = top_k * (1.0 - 1.0 / size)
    in_domain = 2 * fabric.exchange_latency_s + tokens * k_remote_ranks * bytes_per_token / fabric.scale_up_bytes_per_s
    nodes = expected_nodes_hit(top_k, n_nodes, max_nodes_per_token)
    remote_nodes = nodes * (1.0 - 1.0 / n_nodes)
    network_s = tokens * remote_nodes * bytes_per_token / fabric.scale_out_bytes_per_s
    nvlink_s = tokens * top_k * bytes_per_token * (n_local - 1) / n_local / fabric.scale_up_bytes_per_s
    across = 2 * fabric.exchange_latency_s + np.maximum(network_s, nvlink_s)
    return np.where(size <= 1, 0.0, np.where(n_nodes == 1, in_domain, across))


def moe_low_latency_exchange_s(tokens, top_k: int, hidden: int, bytes_per_elem: float, group: Group, fabric: Fabric):
    """One direction (a dispatch, or a combine) of the EP exchange with decode-time low-latency kernels (docs/model.md
    §16.5): every routed copy of a token goes straight to its expert's GPU (over RDMA to other nodes, NVLink inside
    one), with no per-node deduplication and forwarding, which trades bytes for latency; one latency plus the larger
    of the copies' remote bytes over the GPU's NIC and their local bytes over NVLink. DeepEP's low-latency kernels
    measured this way on H800 + CX7 (deepseek-ai/DeepEP docs/legacy.md: 128 tokens, hidden 7168, top-8, EP128:
    dispatch 192 us at 39 GB/s, combine 369 us): the bytes are tokens x top_k x hidden per direction. 0 for a
    group of one."""
    size = np.maximum(group.size, 1)
    n_local = group.ranks_per_domain(fabric.domain_gpus)
    remote = tokens * top_k * (1.0 - n_local / size) * hidden * bytes_per_elem / fabric.scale_out_bytes_per_s
    local = tokens * top_k * (n_local - 1) / size * hidden * bytes_per_elem / fabric.scale_up_bytes_per_s
    return np.where(size <= 1, 0.0, fabric.exchange_latency_s + np.maximum(remote, local))
