"""Collective communication times: latency plus bytes over bus bandwidth.

t = alpha + factor(op, n) · S / busBW, with the nccl-tests bus-bandwidth factors
(nccl-tests doc/PERFORMANCE.md): all-reduce 2(n-1)/n; all-gather, reduce-scatter and
all-to-all (n-1)/n; send/recv 1. S is the full array size in bytes, as nccl-tests defines it.

Hierarchy (theory.md §3.1): a group of n ranks with n_l of them inside one NVLink domain
reaches busBW = min(B_nvlink, n_l · B_nic) when it spans several domains (one NIC per GPU,
rail-optimized), and B_nvlink when it stays inside one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Collective = Literal["all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv"]


def bus_factor(op: Collective, n: int) -> float:
    if n <= 1 and op != "send_recv":
        return 0.0
    if op == "all_reduce":
        return 2.0 * (n - 1) / n
    if op == "send_recv":
        return 1.0
    return (n - 1) / n


@dataclass(frozen=True)
class Fabric:
    """Achieved bandwidths of one GPU's links, after the bus efficiencies."""

    scale_up_bytes_per_s: float
    scale_out_bytes_per_s: float
    domain_gpus: int
    latency_s: float


@dataclass(frozen=True)
class Group:
    """A communicator: `size` ranks, consecutive ranks `stride` apart (Megatron order TP, CP, EP/DP, PP)."""

    size: int
    stride: int

    def ranks_per_domain(self, domain_gpus: int) -> int:
        return max(1, min(self.size, domain_gpus // self.stride))


def bus_bandwidth(group: Group, fabric: Fabric) -> float:
    n_local = group.ranks_per_domain(fabric.domain_gpus)
    if n_local >= group.size:
        return fabric.scale_up_bytes_per_s
    return min(fabric.scale_up_bytes_per_s, n_local * fabric.scale_out_bytes_per_s)


def collective_s(op: Collective, size_bytes: float, group: Group, fabric: Fabric) -> float:
    """Time of one collective over `group` moving a full array of `size_bytes`."""
    if group.size <= 1 and op != "send_recv":
        return 0.0
    if op == "all_to_all":
        return all_to_all_s(size_bytes, group, fabric)
    bw = (
        fabric.scale_out_bytes_per_s if op == "send_recv" and group.stride >= fabric.domain_gpus else bus_bandwidth(group, fabric)
    )
    return fabric.latency_s + bus_factor(op, group.size) * size_bytes / bw


def all_to_all_s(send_bytes: float, group: Group, fabric: Fabric) -> float:
    """Pairwise all-to-all, `send_bytes` per rank: the share leaving the domain crosses the NIC (theory §3.1)."""
    n, n_local = group.size, group.ranks_per_domain(fabric.domain_gpus)
    remote = send_bytes * (n - n_local) / n / fabric.scale_out_bytes_per_s
    local = send_bytes * (n_local - 1) / n / fabric.scale_up_bytes_per_s
    return fabric.latency_s + max(remote, local)


def expected_nodes_hit(k: int, n_nodes: int, max_nodes: int | None) -> float:
    """Distinct nodes a token's k experts land on, experts spread uniformly; capped by node-limited routing."""
    if n_nodes <= 1:
        return 1.0
    uniform = n_nodes * (1.0 - (1.0 - 1.0 / n_nodes) ** k)
    return min(uniform, float(max_nodes)) if max_nodes else uniform


def moe_dispatch_combine_s(
    tokens: float,
    top_k: int,
    hidden: int,
    dispatch_bytes_per_elem: float,
    combine_bytes_per_elem: float,
    group: Group,
    fabric: Fabric,
    max_nodes_per_token: int | None,
) -> float:
    """One dispatch plus one combine for `tokens` local tokens (theory §3.5).

    Across domains a token crosses the network once per remote target node and is then forwarded
    over NVLink (DeepSeek-V3 §3.2.2); inside a domain each routed copy goes over NVLink.
    """
    if group.size <= 1:
        return 0.0
    n_local = group.ranks_per_domain(fabric.domain_gpus)
    n_nodes = max(1, group.size // n_local)
    bytes_per_token = hidden * (dispatch_bytes_per_elem + combine_bytes_per_elem)
    k_remote_ranks = top_k * (1.0 - 1.0 / group.size)
    if n_nodes == 1:
        return 2 * fabric.latency_s + tokens * k_remote_ranks * bytes_per_token / fabric.scale_up_bytes_per_s
    nodes = expected_nodes_hit(top_k, n_nodes, max_nodes_per_token)
    remote_nodes = nodes * (1.0 - 1.0 / n_nodes)
    network_s = tokens * remote_nodes * bytes_per_token / fabric.scale_out_bytes_per_s
    nvlink_s = tokens * top_k * bytes_per_token * (n_local - 1) / n_local / fabric.scale_up_bytes_per_s
    return 2 * fabric.latency_s + max(network_s, nvlink_s)
