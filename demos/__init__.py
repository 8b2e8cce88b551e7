"""Runnable experiments, one per paper (and one for the engine). See `python -m demos list`."""

# name -> module; each module defines DESCRIPTION, add_arguments(parser) and run(args, report)
DEMOS = {
    "mnist_cnn": "demos.mnist_cnn",
    "adversarial_training": "demos.adversarial_training",
    "layer_norms": "demos.layer_norms",
    "width_depth": "demos.width_depth",
    "adversarial_smoothness": "demos.adversarial_smoothness",
    "feature_purification": "demos.feature_purification",
    "linf_dist_net": "demos.linf_dist_net",
}
