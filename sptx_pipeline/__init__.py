"""sptx-pipeline: genome-wide batch scoring with SpliceTransformer."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sptx-pipeline")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
