"""The data package's own exception and warning classes, so that callers and tests can catch exactly them."""


class DatasetNotFoundError(FileNotFoundError):
    """A data set's files are in none of the places searched and could not be downloaded.

    The message lists the folders searched, why a download failed, and how to get the files.
    """


class DownloadError(OSError):
    """Every mirror of a file failed to answer (no network, a proxy, a dead URL)."""


class MnistSplitWarning(UserWarning):
    """`mnist()` found only the 10k test files and returns a fixed 8,000 / 2,000 split of them."""
