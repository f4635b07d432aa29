"""Fused circuit-evaluation kernels (installed as ``constraintc.kernels``)."""
