"""A DataflowRunner that submits nothing: it validates the options as Dataflow would, turns the
job graph into its portable proto (pickling every DoFn, as a submission does), and stops the stage
with ``GraphCaptured`` carrying the serialized graph."""

from __future__ import annotations

from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator
from apache_beam.runners.dataflow.dataflow_runner import DataflowRunner


class GraphCaptured(Exception):
    def __init__(self, proto_bytes: bytes, errors: list[str]):
        super().__init__(f"captured a job graph of {len(proto_bytes)} bytes")
        self.proto_bytes = proto_bytes
        self.errors = errors


class OfflineDataflowRunner(DataflowRunner):
    def run_pipeline(self, pipeline, options):
        # The validator applies the service's checks only to a runner of DataflowRunner's own type.
        errors = PipelineOptionsValidator(options, DataflowRunner()).validate()
        proto = pipeline.to_runner_api(use_fake_coders=False)
        raise GraphCaptured(proto.SerializeToString(), errors)
