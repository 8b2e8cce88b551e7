"""numba.cuda kernels with the same names and signatures as the CPU kernels in `kernels/` (backend "cuda"; the
distance backwards also take an optional `need_gx`).

One module per family, as on the CPU: conv (the three conv2d passes as one tiled matrix product), pool, activation,
linf_dist (the l-inf-dist neuron, its interval bounds), lp_dist (its lp relaxation), attack (the fused step and
projections) and norms (the exact conv norms); `launch` holds what they share. Host arrays in, host arrays out; device
arrays in, device arrays out (see `launch.py`). Nothing here is imported until the cuda backend is chosen
(`scratchnet/backend.py`), so scratchnet imports without numba-cuda or a GPU. In CI the kernels run in Numba's CUDA
simulator (NUMBA_ENABLE_CUDASIM=1), which checks their indexing, not their speed.
"""
