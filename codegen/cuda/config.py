"""Launch settings of the CUDA module, fixed at code generation (Numba compiles them in as
constants). The defaults suit current data-centre GPUs; tests use smaller blocks so that the
simulator exercises several blocks and the grid-stride loops on tiny batches."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CudaConfig:
    # threads per block of the sample kernels: one thread per sample
    threads_per_block: int = 128
    # the most blocks a sample kernel launches; beyond, each thread loops over several
    # samples (a grid-stride loop), and there are never more per-block partials than this
    max_blocks: int = 1024
    # threads per block of the reduction kernel
    reduce_threads: int = 128
    # the reduction gives each parameter a block of its own up to this many parameters (few
    # parameters, many partials each), and each parameter a thread beyond (many parameters)
    reduce_blockwise_max: int = 4096
    # up to this many parameters a training step is one kernel: the last block to finish
    # sums the partials and applies the update; beyond, a second kernel does (_reduce_update)
    fused_max: int = 128
    # loop form: stage weight matrices in shared memory, layer by layer, up to this many bytes
    shared_weights_bytes: int = 32768
    # per-block partial sums are reduced this many accumulators at a time in shared memory
    reduce_chunk: int = 16

    def __post_init__(self):
        # powers of two for the tree reductions; below 32 a block wastes most of a GPU warp,
        # which only the simulator tests want (fewer Python threads per block)
        for key in ("threads_per_block", "reduce_threads"):
            value = getattr(self, key)
            if value < 1 or value > 1024 or value & (value - 1):
                raise ValueError(f"{key}: expected a power of 2 in [1, 1024], got {value}")
        if self.max_blocks < 1 or self.reduce_chunk < 1 or self.shared_weights_bytes < 0:
            raise ValueError("max_blocks and reduce_chunk: expected >= 1, "
                             "shared_weights_bytes >= 0")
