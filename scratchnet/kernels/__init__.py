"""Pure array code, no autograd: NumPy references (`reference`) and the fast Numba kernels with the same signatures."""
