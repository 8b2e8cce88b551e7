"""Runnable experiments, one per paper (and one for the engine). See `python -m demos list`."""

# name -> module; each module defines DESCRIPTION, add_arguments(parser) and run(args, report)
DEMOS = {
    "feature_purification": "demos.feature_purification",
    "mnist_cnn": "demos.mnist_cnn",
    "layer_norms": "demos.layer_norms",
    "adversarial_training": "demos.adversarial_training",
    "linf_dist_net": "demos.linf_dist_net",
    "width_depth": "demos.width_depth",
    "adversarial_smoothness": "demos.adversarial_smoothness",
}
