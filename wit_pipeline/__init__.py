"""wit-pipeline: build CLIP-style web image-text (WIT) datasets with Apache Beam.

Every CLI command is a thin wrapper over a function in this package (or in
``queries``, ``dedup``, ``trainer``), so each stage can be called from Python.
"""

__version__ = "0.1.0"

USER_AGENT = f"wit-pipeline/{__version__} (+https://github.com/wit-pipeline/wit-pipeline)"
