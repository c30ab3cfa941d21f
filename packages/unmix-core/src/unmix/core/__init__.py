"""unmix core: everything that does not need a deep-learning framework.

Backends (unmix.tf, unmix.torch), data sources (unmix.sources) and the command line (unmix.cli)
build on the public names of this package and on its plugin hooks (`unmix.core.hookspecs`).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("unmix-core")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
