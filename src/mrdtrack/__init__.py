"""mrdtrack: tumor-informed ctDNA minimal residual disease (MRD) calling and MRD-progression modeling."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mrdtrack")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
