"""Test-session setup. Without an NVIDIA GPU the CUDA tests run in Numba's simulator, as CI runs them: the
variable is read when Numba is first imported, so it is set here, before any test module imports it (an explicit
NUMBA_ENABLE_CUDASIM, either value, is kept). Hypothesis profiles: "gpu" (`pytest --hypothesis-profile=gpu`, used
by .ci/gpu) reports the first failing example without shrinking it, because on a real GPU each shrunk shape can
cost new kernel compilations."""

import os

from hypothesis import Phase, settings

if "NUMBA_ENABLE_CUDASIM" not in os.environ and not os.path.exists("/dev/nvidiactl"):
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

settings.register_profile("gpu", phases=[Phase.explicit, Phase.reuse, Phase.generate])
