"""Collective times (simulator/model/comms.py) against hand-worked closed forms.

Fabric used throughout: NVLink 100 GB/s and NIC 10 GB/s per GPU (achieved), 8 GPUs per NVLink domain,
10 us latency per collective: every expectation below is written out with these numbers.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator.model.comms import (
    Fabric,
    Group,
    bus_bandwidth,
    bus_factor,
    collective_s,
    expected_nodes_hit,
    moe_dispatch_combine_s,
)

UP, OUT, LAT = 100e9, 10e9, 10e-6
FABRIC = Fabric(scale_up_bytes_per_s=UP, scale_out_bytes_per_s=OUT, domain_gpus=8, latency_s=LAT)


# --------------------------------------------------------------------------- nccl-tests bus factors


def test_bus_factor_all_reduce_is_2_n_minus_1_over_n():
    """nccl-tests doc/PERFORMANCE.md: all-reduce busBW = algBW x 2(n-1)/n."""
    assert bus_factor("all_reduce", 4) == pytest.approx(2 * 3 / 4)
    assert bus_factor("all_reduce", 2) == pytest.approx(1.0)


@pytest.mark.parametrize("op", ["all_gather", "reduce_scatter", "all_to_all"])
def test_bus_factor_gather_scatter_all_to_all_is_n_minus_1_over_n(op):
    assert bus_factor(op, 4) == pytest.approx(3 / 4)
    assert bus_factor(op, 8) == pytest.approx(7 / 8)


def test_bus_factor_send_recv_is_one_for_every_entry():
    assert bus_factor("send_recv", 2) == 1.0
    np.testing.assert_array_equal(bus_factor("send_recv", np.array([2, 4, 16])), [1.0, 1.0, 1.0])


def test_bus_factor_is_zero_for_a_group_of_one_or_less():
    assert bus_factor("all_reduce", 1) == 0.0
    assert bus_factor("all_gather", 0) == 0.0  # clamped to a group of one


# --------------------------------------------------------------------------- hierarchy


def test_ranks_per_domain_is_min_of_size_and_domain_over_stride():
    assert Group(16, 1).ranks_per_domain(8) == 8  # 16 consecutive ranks: 8 per domain
    assert Group(4, 1).ranks_per_domain(8) == 4  # the group fits
    assert Group(4, 4).ranks_per_domain(8) == 2  # ranks 0, 4 | 8, 12
    assert Group(4, 16).ranks_per_domain(8) == 1  # one rank per domain (8 // 16 = 0, clamped to 1)


def test_bus_bandwidth_inside_one_domain_is_nvlink():
    """docs/model.md §4.2: a group inside one NVLink domain reaches B_nvlink (also when it fills the domain)."""
    assert bus_bandwidth(Group(4, 1), FABRIC) == UP
    assert bus_bandwidth(Group(8, 1), FABRIC) == UP
    assert bus_bandwidth(Group(2, 4), FABRIC) == UP


def test_bus_bandwidth_across_domains_is_min_of_nvlink_and_local_ranks_times_nic():
    """busBW = min(B_nvlink, n_l x B_nic): 16 ranks, 8 per domain: min(100, 8 x 10) = 80 GB/s; 4 ranks with
    stride 4 (2 per domain): 20 GB/s; one rank per domain: 10 GB/s."""
    assert bus_bandwidth(Group(16, 1), FABRIC) == pytest.approx(80e9)
    assert bus_bandwidth(Group(4, 4), FABRIC) == pytest.approx(20e9)
    assert bus_bandwidth(Group(4, 16), FABRIC) == pytest.approx(10e9)
    fast_nics = Fabric(UP, 20e9, 8, LAT)  # 8 x 20 = 160 GB/s > NVLink: capped at 100
    assert bus_bandwidth(Group(16, 1), fast_nics) == pytest.approx(UP)


def test_bus_bandwidth_vectorised_over_layouts():
    groups = Group(np.array([4, 16, 4]), np.array([1, 1, 4]))
    np.testing.assert_allclose(bus_bandwidth(groups, FABRIC), [UP, 80e9, 20e9])


# --------------------------------------------------------------------------- collective time


def test_ring_all_reduce_time_is_latency_plus_2_n_minus_1_over_n_size_over_busbw():
    """t = alpha + 2(n-1)/n x S / busBW: 8 ranks in one domain, 1 GB: 10 us + 1.75 x 1e9 / 1e11 = 17.51 ms."""
    t = collective_s("all_reduce", 1e9, Group(8, 1), FABRIC)
    assert t == pytest.approx(LAT + 1.75 * 1e9 / UP, rel=1e-12)
    assert t == pytest.approx(0.01751, rel=1e-12)


def test_all_gather_across_domains_uses_the_nic_bound_bus_bandwidth():
    """16 ranks (8 per domain): busBW 80 GB/s; all-gather of 800 MB: 10 us + 15/16 x 8e8 / 8e10 = 9.385 ms."""
    t = collective_s("all_gather", 8e8, Group(16, 1), FABRIC)
    assert t == pytest.approx(LAT + 15 / 16 * 8e8 / 80e9, rel=1e-12)


def test_send_recv_time_is_latency_plus_size_over_bandwidth():
    """Pipeline send between two ranks in different domains (stride 8): 10 us + 1e8 / 1e10."""
    assert collective_s("send_recv", 1e8, Group(2, 8), FABRIC) == pytest.approx(LAT + 1e8 / OUT, rel=1e-12)


def test_collective_over_a_group_of_one_costs_nothing_not_even_latency():
    assert collective_s("all_reduce", 1e9, Group(1, 1), FABRIC) == 0.0
    assert collective_s("send_recv", 1e9, Group(1, 1), FABRIC) == 0.0


# --------------------------------------------------------------------------- MoE all-to-all


def test_expected_nodes_hit_is_n_times_1_minus_1_minus_1_over_n_to_the_k():
    """k experts uniform over N nodes hit N(1 - (1 - 1/N)^k) distinct nodes: 4 nodes, k = 8: 4(1 - 0.75^8)."""
    assert expected_nodes_hit(8, 4, None) == pytest.approx(4 * (1 - 0.75**8), rel=1e-12)
    assert expected_nodes_hit(2, 2, None) == pytest.approx(2 * (1 - 0.5**2), rel=1e-12)  # 1.5


def test_expected_nodes_hit_is_capped_by_node_limited_routing():
    """DeepSeek-V3 §3.2.2 node-limited routing (M = 4): min(N(1 - (1 - 1/N)^k), M)."""
    assert expected_nodes_hit(8, 8, 4) == 4.0
    assert expected_nodes_hit(8, 4, 4) == pytest.approx(4 * (1 - 0.75**8))  # 3.6 < 4: the cap does not bind


def test_expected_nodes_hit_is_one_on_a_single_node():
    assert expected_nodes_hit(8, 1, None) == 1.0
    assert expected_nodes_hit(8, 0, None) == 1.0  # clamped


TOKENS, TOP_K, HIDDEN = 1000.0, 2, 1000
# BF16 dispatch and combine: 2 + 2 bytes per element, so 4000 bytes per routed token copy.
BYTES_PER_TOKEN = HIDDEN * (2.0 + 2.0)


def test_moe_all_to_all_inside_one_domain_moves_k_n_minus_1_over_n_copies_over_nvlink():
    """docs/model.md §4.5, in-domain: 2 alpha + T x k(1 - 1/EP) x h(b_dispatch + b_combine) / B_nvlink.

    EP 8 inside an 8-GPU node: 2 x 10 us + 1000 x 2 x 7/8 x 4000 / 1e11 = 20 us + 70 us = 90 us."""
    t = moe_dispatch_combine_s(TOKENS, TOP_K, HIDDEN, 2.0, 2.0, Group(8, 1), FABRIC, None)
    assert t == pytest.approx(2 * LAT + TOKENS * TOP_K * (7 / 8) * BYTES_PER_TOKEN / UP, rel=1e-12)
    assert t == pytest.approx(90e-6, rel=1e-12)


def test_moe_all_to_all_in_domain_charges_dispatch_and_combine_bytes_separately():
    """FP8 dispatch with 1x128 fp32 scales (1.03125 B) and BF16 combine (2 B): EP 4 in one domain,
    2 x 10 us + 1000 x 2 x 3/4 x 1000 x 3.03125 / 1e11."""
    t = moe_dispatch_combine_s(TOKENS, TOP_K, HIDDEN, 1.03125, 2.0, Group(4, 1), FABRIC, None)
    assert t == pytest.approx(2 * LAT + TOKENS * TOP_K * 0.75 * HIDDEN * 3.03125 / UP, rel=1e-12)


def test_moe_all_to_all_across_nodes_is_network_bound_by_remote_nodes_hit():
    """Across domains (DeepSeek-V3 §3.2.2): each token crosses the network once per remote node it targets,
    then NVLink forwards it. EP 32 = 4 nodes of 8, k = 8:
      network = T x N(1 - (1 - 1/N)^k) x (1 - 1/N) x bytes / B_nic
      nvlink  = T x k x bytes x (n_l - 1)/n_l / B_nvlink
      t = 2 alpha + max(network, nvlink)."""
    nodes = 4 * (1 - 0.75**8)
    network = TOKENS * nodes * 0.75 * BYTES_PER_TOKEN / OUT
    nvlink = TOKENS * 8 * BYTES_PER_TOKEN * (7 / 8) / UP
    assert network > nvlink
    t = moe_dispatch_combine_s(TOKENS, 8, HIDDEN, 2.0, 2.0, Group(32, 1), FABRIC, None)
    assert t == pytest.approx(2 * LAT + network, rel=1e-12)


def test_moe_all_to_all_across_nodes_with_node_limit_can_be_nvlink_bound():
    """Node-limited routing to 1 node and fast NICs (50 GB/s): network = T x 1 x 3/4 x 4000 / 5e10 = 60 us,
    NVLink forwarding = T x 8 x 4000 x 7/8 / 1e11 = 280 us: the NVLink term sets the time."""
    fabric = Fabric(UP, 50e9, 8, LAT)
    network = TOKENS * 1.0 * 0.75 * BYTES_PER_TOKEN / 50e9
    nvlink = TOKENS * 8 * BYTES_PER_TOKEN * (7 / 8) / UP
    assert nvlink > network
    t = moe_dispatch_combine_s(TOKENS, 8, HIDDEN, 2.0, 2.0, Group(32, 1), fabric, 1)
    assert t == pytest.approx(2 * LAT + nvlink, rel=1e-12)
    assert t == pytest.approx(20e-6 + 280e-6, rel=1e-12)


def test_moe_all_to_all_with_strided_ep_counts_ranks_per_node():
    """EP 4 with stride 4 (TP 4 below it): 2 EP ranks per 8-GPU node, 2 nodes. k = 2:
    nodes hit 2(1 - 0.5^2) = 1.5, remote 1.5 x 1/2; NVLink forwarding to the 1 other local rank of 2."""
    network = TOKENS * 1.5 * 0.5 * BYTES_PER_TOKEN / OUT
    nvlink = TOKENS * 2 * BYTES_PER_TOKEN * (1 / 2) / UP
    t = moe_dispatch_combine_s(TOKENS, 2, HIDDEN, 2.0, 2.0, Group(4, 4), FABRIC, None)
    assert t == pytest.approx(2 * LAT + max(network, nvlink), rel=1e-12)


def test_moe_all_to_all_over_a_group_of_one_costs_nothing():
    assert moe_dispatch_combine_s(TOKENS, 8, HIDDEN, 2.0, 2.0, Group(1, 1), FABRIC, None) == 0.0


def test_moe_all_to_all_is_vectorised_over_layouts():
    groups = Group(np.array([1, 8, 32]), np.array([1, 1, 1]))
    t = moe_dispatch_combine_s(TOKENS, 8, HIDDEN, 2.0, 2.0, groups, FABRIC, None)
    in_domain = 2 * LAT + TOKENS * 8 * (7 / 8) * BYTES_PER_TOKEN / UP
    across = 2 * LAT + TOKENS * 4 * (1 - 0.75**8) * 0.75 * BYTES_PER_TOKEN / OUT
    np.testing.assert_allclose(t, [0.0, in_domain, across], rtol=1e-12)


def test_an_ep_group_spilling_into_a_second_domain_crosses_the_network():
    """EP 128 on 72-GPU NVLink domains (GB200 NVL72): 72 ranks in one domain, 56 in the next. Some routed copies must
    cross the NIC, so dispatch + combine costs more than the all-NVLink formula 2a + T k (1 - 1/EP) bytes / B_nvlink
    (the group touches ceil(128 / 72) = 2 domains; flooring the count to 1 charged it as all-NVLink)."""
    fabric = Fabric(1e11, 1e10, 72, 1e-5)
    t = moe_dispatch_combine_s(1000.0, 8, 1000, 2.0, 2.0, Group(128, 1), fabric, None)
    all_nvlink = 2e-5 + 1000 * 8 * (127 / 128) * 4000 / 1e11
    assert t > all_nvlink


# --------------------------------------------------------------------------- measured all-reduce floors (§4.2)


def _h100_fabric():
    from simulator.inputs.assumptions import BASE
    from simulator.inputs.catalog import load_hardware
    from simulator.model.efficiency import device_rates

    return device_rates(load_hardware("h100-sxm"), BASE).fabric


def _formula_s(op, size, group, fabric):
    return fabric.latency_s + bus_factor(op, group.size) * size / bus_bandwidth(group, fabric)


def test_h100_all_reduce_across_two_nodes_takes_the_measured_time():
    """nccl-tests #309 (2 x 8 H100, NCCL 2.26.2): 1 MiB in 71.93 us, 8 MiB in 132.6 us, where latency + bytes over the
    large-message bus bandwidth gives 25 and 63 us. A decode step's TP all-reduce (64 tokens x 7,168 x 2 B) sits there."""
    fabric, tp16 = _h100_fabric(), Group(16, 1)
    assert float(collective_s("all_reduce", 2**20, tp16, fabric)) == pytest.approx(71.93e-6, rel=1e-9)
    assert float(collective_s("all_reduce", 2**23, tp16, fabric)) == pytest.approx(132.6e-6, rel=1e-9)
    assert _formula_s("all_reduce", 2**23, tp16, fabric) < 70e-6
    # between rows: log-log interpolation, so 1.5 MiB lies between the 1 and 2 MiB rows
    mid = float(collective_s("all_reduce", 1.5 * 2**20, tp16, fabric))
    assert 71.93e-6 < mid < 76.24e-6
    assert mid == pytest.approx(np.exp(np.interp(np.log(1.5), [0, np.log(2)], np.log([71.93e-6, 76.24e-6]))), rel=1e-9)


def test_measured_floor_drops_a_first_call_spike():
    """The table's 512 KiB row (77.69 us) is slower than its 1 MiB row (71.93 us): a smaller all-reduce is never slower,
    so the floor at 512 KiB is the 1 MiB time (MeasuredAllReduce.lower_envelope)."""
    fabric = _h100_fabric()
    assert float(collective_s("all_reduce", 2**19, Group(16, 1), fabric)) == pytest.approx(71.93e-6, rel=1e-9)


def test_large_all_reduce_across_two_nodes_keeps_the_formula():
    """At 1 GiB the 2-node table (4,485 us, NVLS tree at 469 GB/s busbw) is faster than the formula's 369 GB/s: the
    floor does not bind and the formula stands, as before the tables."""
    fabric, tp16 = _h100_fabric(), Group(16, 1)
    assert float(collective_s("all_reduce", 2**30, tp16, fabric)) == pytest.approx(
        _formula_s("all_reduce", 2**30, tp16, fabric), rel=1e-12
    )


def test_floor_applies_only_to_groups_containing_the_measured_one():
    fabric = _h100_fabric()
    size = 2**20
    # Inside one node (8 ranks) and a DP group with one rank per node (stride 8): no table holds them, the formula does.
    for group in (Group(8, 1), Group(16, 8), Group(4, 1)):
        assert float(collective_s("all_reduce", size, group, fabric)) == pytest.approx(
            _formula_s("all_reduce", size, group, fabric), rel=1e-12
        )
    # Only all-reduce has tables: an all-gather across the same two nodes keeps the formula.
    assert float(collective_s("all_gather", size, Group(16, 1), fabric)) == pytest.approx(
        _formula_s("all_gather", size, Group(16, 1), fabric), rel=1e-12
    )
    # Four nodes: the 4-node table (82.17 us at 1 MiB); eight nodes hold at least that, a lower bound.
    assert float(collective_s("all_reduce", size, Group(32, 1), fabric)) == pytest.approx(82.17e-6, rel=1e-9)
    assert float(collective_s("all_reduce", size, Group(64, 1), fabric)) == pytest.approx(82.17e-6, rel=1e-9)


def test_floor_below_and_beyond_the_table():
    from simulator.model.comms import AllReduceFloor, all_reduce_floor_s

    table = AllReduceFloor.from_table(2, 8, [1e3, 1e6], [20e-6, 50e-6])
    fabric = Fabric(UP, OUT, 8, LAT, all_reduce_floors=(table,))
    group = Group(16, 1)
    # below the smallest row: that row's time
    assert float(all_reduce_floor_s(10.0, group, fabric)) == pytest.approx(20e-6)
    # beyond the largest: from the last row at the formula's bus bandwidth (8 x 10 GB/s = 80 GB/s), continuous
    slope = bus_factor("all_reduce", 16) / 80e9
    assert float(all_reduce_floor_s(1e6 + 1.0, group, fabric)) == pytest.approx(50e-6 + slope, rel=1e-12)
    assert float(all_reduce_floor_s(5e6, group, fabric)) == pytest.approx(50e-6 + slope * 4e6, rel=1e-12)
    # vectorized over candidate groups, as the layout search calls it: 2 nodes floored, 1 node not
    sizes = np.array([1e6, 1e6])
    out = all_reduce_floor_s(sizes, Group(np.array([16, 8]), np.array([1, 1])), fabric)
    assert out.tolist() == pytest.approx([50e-6, 0.0])


def test_floor_needs_whole_domains_and_a_message():
    """A group of 12 ranks on 8-GPU nodes fills one node, not two: the 2-node table is no lower bound for it; 20 ranks
    fill two. An empty all-reduce has no floor (the formula's latency)."""
    fabric, size = _h100_fabric(), 2**20
    assert float(collective_s("all_reduce", size, Group(12, 1), fabric)) == pytest.approx(
        _formula_s("all_reduce", size, Group(12, 1), fabric), rel=1e-12
    )
    assert float(collective_s("all_reduce", size, Group(20, 1), fabric)) == pytest.approx(71.93e-6, rel=1e-9)
    assert float(collective_s("all_reduce", 0.0, Group(16, 1), fabric)) == pytest.approx(fabric.latency_s)


def test_four_node_table_stops_at_8_mib_and_grows_at_the_bus_bandwidth():
    """The 4-VM table's rows stop at 8 MiB (217.3 us; above, those VMs' own peak sets the times): a 32-rank all-reduce
    of 1 GiB is that time plus the rest at the formula's bus bandwidth, within 3% of the formula."""
    fabric, group = _h100_fabric(), Group(32, 1)
    expected = 217.3e-6 + bus_factor("all_reduce", 32) * (2**30 - 2**23) / bus_bandwidth(group, fabric)
    assert float(collective_s("all_reduce", 2**30, group, fabric)) == pytest.approx(expected, rel=1e-9)
    assert expected / _formula_s("all_reduce", 2**30, group, fabric) - 1 < 0.03


def test_network_draw_moves_the_measured_floor():
    """The uncertainty band's network efficiency draw scales the measured times as it scales the bandwidths."""
    from simulator.analysis.uncertainty import scale_rates
    from simulator.inputs.assumptions import BASE
    from simulator.inputs.catalog import load_hardware
    from simulator.model.efficiency import device_rates

    rates = device_rates(load_hardware("h100-sxm"), BASE)
    slow = scale_rates(rates, gemm=1.0, fp8=1.0, attention=1.0, hbm=1.0, network=0.8)
    size, group = 2**20, Group(16, 1)
    assert float(collective_s("all_reduce", size, group, slow.fabric)) == pytest.approx(71.93e-6 / 0.8, rel=1e-9)
