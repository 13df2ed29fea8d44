"""Side-by-side measurements of the attention modules: cost and accuracy.

- ``cost``: parameters, counted FLOPs, CPU latency / throughput / training
  step time of every variant in one run, and the machine's matmul peak
  (``cfsam-keras benchmark --cost``, ``benchmarks/cost.py``).
- ``report``: renders ``docs/results.md`` from the JSON the cost benchmark and
  ``recipes/compare_attention.py`` write.
"""

from cfsam_keras.benchmarks.cost import COST_VARIANTS
from cfsam_keras.benchmarks.cost import Variant
from cfsam_keras.benchmarks.cost import cfsam_matmul_flops
from cfsam_keras.benchmarks.cost import conv2d_flops
from cfsam_keras.benchmarks.cost import cost_benchmark
from cfsam_keras.benchmarks.cost import cost_table
from cfsam_keras.benchmarks.cost import cost_variants
from cfsam_keras.benchmarks.cost import interleaved_latency
from cfsam_keras.benchmarks.cost import machine
from cfsam_keras.benchmarks.cost import median_seconds
from cfsam_keras.benchmarks.cost import peak_matmul_gflops

__all__ = [
    "COST_VARIANTS",
    "Variant",
    "cfsam_matmul_flops",
    "conv2d_flops",
    "cost_benchmark",
    "cost_table",
    "cost_variants",
    "interleaved_latency",
    "machine",
    "median_seconds",
    "peak_matmul_gflops",
]
