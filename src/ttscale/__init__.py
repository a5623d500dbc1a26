"""ttscale: test-time compute scaling with verifier-guided search."""

__version__ = "0.1.0"
