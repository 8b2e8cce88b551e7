"""Hypothesis profiles: "gpu" (`pytest --hypothesis-profile=gpu`, used by .ci/gpu) reports the first failing
example without shrinking it, because on a real GPU each shrunk shape can cost new kernel compilations."""

from hypothesis import Phase, settings

settings.register_profile("gpu", phases=[Phase.explicit, Phase.reuse, Phase.generate])
