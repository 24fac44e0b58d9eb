"""The GPU lane (`make test-gpu`): the CPU suite's checks with every layer offloaded.

Without a GPU (or with the CPU wheel) each test skips with one line. Set
RAAS_GPU_TESTS_ON_CPU=1 to run the same test bodies with -ngl 0 on the CPU:
that checks the lane's own logic on a machine without a GPU.
"""

from __future__ import annotations

import os

import pytest

# ggml-cuda turns TF32 on for its cuBLAS handles (10-bit mantissa, ~1e-3 relative
# error on f32 matrix products); the comparisons with the f32 PyTorch reference
# want f32 products, so TF32 is off in this lane. cuBLAS reads the variable when
# a handle is created, at the first matrix product, which comes after this.
os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")

ON_CPU = "RAAS_GPU_TESTS_ON_CPU"


@pytest.fixture(scope="session")
def ngl() -> int:
    """-ngl for the lane: every layer on the GPU, or 0 under RAAS_GPU_TESTS_ON_CPU=1."""
    import llama_cpp

    if llama_cpp.llama_supports_gpu_offload():
        return 99
    if os.environ.get(ON_CPU) == "1":
        return 0
    pytest.skip(f"no GPU offload here (CUDA wheel: make setup RAAS_CUDA=1; same tests on the CPU: {ON_CPU}=1)")
