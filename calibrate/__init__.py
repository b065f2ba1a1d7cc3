"""Microbenchmarks that calibrate the simulator's efficiency terms on real hardware.

The only package of costsim that imports torch. The measurements and fitting are built by the
calibration issue; the simulator reads their output through the hardware-profile efficiency terms.
"""
