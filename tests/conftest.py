"""Shared fixtures: one sample web per test session, served on loopback, and its files on disk."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WIT_PROGRESS", "0")
# Beam's multi-process DirectRunner (the default for users) costs seconds per job to start its
# workers; tests run jobs in-process, and tests/test_runners.py covers the multi-process mode.
os.environ.setdefault("WIT_DIRECT_RUNNING_MODE", "in_memory")

from wit_pipeline.sampleweb import serve_sample_web  # noqa: E402

# Faults that would slow every test down are kept small here; their declared behaviour is the same.
TEST_SLOW_S = 1.5
TEST_OVERSIZED_BYTES = 3 << 20


@pytest.fixture(scope="session", autouse=True)
def direct_runner_without_prism():
    """Tests' ``TestPipeline``s run on what our stages run on (``LocalBatchRunner``). Beam's DirectRunner would
    first try Prism, fail to download it here, and leave Beam's process-wide Prism job server behind without
    a ``--prism_location``, which a later real Prism run in the same session (tests/test_engines.py) would
    reuse. The original stays reachable as ``__wrapped__`` for the test that checks our stages avoid it."""
    from apache_beam.runners.direct import direct_runner

    from wit_pipeline.beam import LocalBatchRunner

    original = direct_runner.DirectRunner.run_pipeline

    def run_locally(self, pipeline, options):
        return LocalBatchRunner().run_pipeline(pipeline, options)

    run_locally.__wrapped__ = original
    patch = pytest.MonkeyPatch()
    patch.setattr(direct_runner.DirectRunner, "run_pipeline", run_locally)
    yield
    patch.undo()


@pytest.fixture(scope="session")
def sample_web():
    with serve_sample_web(seed=0, slow_s=TEST_SLOW_S, oversized_bytes=TEST_OVERSIZED_BYTES) as web:
        yield web


@pytest.fixture(scope="session")
def sample_files(sample_web, tmp_path_factory):
    return sample_web.write_files(str(tmp_path_factory.mktemp("sampleweb")))
