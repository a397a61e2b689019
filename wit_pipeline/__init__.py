"""wit-pipeline: build CLIP-style web image-text (WIT) datasets with Apache Beam.

Every CLI command is a thin wrapper over a function in this package (or in
``queries``, ``dedup``, ``trainer``), so each stage can be called from Python.
The stage chain (commands, entry points, options, inputs and outputs, demo
steps) is listed once, in ``wit_pipeline.stages``; every stage that writes
output runs through ``wit_pipeline.stage.StageRun``.
"""

__version__ = "0.1.0"

USER_AGENT = f"wit-pipeline/{__version__} (+https://github.com/wit-pipeline/wit-pipeline)"
