"""Every Beam stage builds a Dataflow job graph offline: the options validate, and the graph, once
serialized, loads and unpickles in a fresh process (nothing depends on the launcher's memory:
no open files, sockets or locks captured by DoFns)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.graph_capture import GraphCaptured
from wit_pipeline.cli import main

DATAFLOW = ["--runner=tests.graph_capture.OfflineDataflowRunner", "--project=wit-project", "--region=us-central1",
            "--temp_location=gs://wit-bucket/tmp", "--staging_location=gs://wit-bucket/staging",
            "--sdk_container_image=registry.example/wit-pipeline:0.1.0"]

LOAD_IN_FRESH_PROCESS = r"""
import sys
import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.runners.direct.direct_runner import DirectRunner
proto = beam_runner_api_pb2.Pipeline.FromString(open(sys.argv[1], "rb").read())
pipeline = beam.Pipeline.from_runner_api(proto, DirectRunner(), PipelineOptions([]))
names = [t.full_label for t in pipeline.transforms_stack[0].parts]
print(len(proto.components.transforms), "transforms;", ", ".join(names))
"""


def _stages(files, tmp):
    return {
        "queries": ["queries", "build", "--wikipedia", *files.wikipedia, "--pageviews", *files.pageviews,
                    "--wordnet", files.wordnet, "--out", f"{tmp}/queries"],
        "candidates": ["candidates", "--source", "wat", "--input", *files.wat, "--out", f"{tmp}/candidates"],
        "select": ["select", "--candidates", f"{tmp}/given-candidates", "--queries", f"{tmp}/q.txt",
                   "--out", f"{tmp}/select"],
        "download": ["download", "--input", files.urls_table, "--out", f"{tmp}/shards"],
        "filter": ["filter", "--shards", f"{tmp}/fshards", "--embeddings", f"{tmp}/femb", "--out", f"{tmp}/filter",
                   "--clip-score-top", "0.5", "--dedup", "near", "--semdedup-eps", "0.1",
                   "--image-cluster-eval", f"probe={tmp}/femb", "--allow-partial"],
        "embed": ["embed", "--shards", f"{tmp}/embed-shards", "--checkpoint", f"{tmp}/tiny-run", "--out", f"{tmp}/emb"],
    }


@pytest.mark.parametrize("stage", ["queries", "candidates", "select", "download", "filter", "embed"])
def test_stage_builds_a_valid_dataflow_graph_offline(stage, sample_files, tmp_path):
    # select needs candidates and queries to exist at graph-building time: give it small ones.
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "given-candidates").mkdir()
    pq.write_table(pa.table({"url": ["http://example.com/a.jpg"], "text": ["a red circle"],
                             "page_url": ["http://example.com/"], "source": ["table"], "provenance": ["{}"]}),
                   tmp_path / "given-candidates" / "part-00000.parquet")
    (tmp_path / "q.txt").write_text("red circle\n")
    if stage == "filter":        # filter reads the embeddings' parts at graph-building time: give it a small set
        from tests.filter.helpers import shape_jpeg, unit, write_embeddings, write_shards

        write_shards(str(tmp_path / "fshards"), {"00000.tar": [("a", shape_jpeg(1), "x"), ("b", shape_jpeg(2), "y")]})
        write_embeddings(str(tmp_path / "femb"), [("00000.tar", [("a", 0.5, unit([1, 0])), ("b", 0.4, unit([0, 1]))])])
    if stage == "embed":         # embed loads its model and lists the shards at graph-building time
        from tests.embed.helpers import write_embed_inputs

        write_embed_inputs(str(tmp_path))

    with pytest.raises(GraphCaptured) as captured:
        main(_stages(sample_files, tmp_path)[stage] + DATAFLOW)
    assert captured.value.errors == []
    graph = tmp_path / "graph.pb"
    graph.write_bytes(captured.value.proto_bytes)
    loaded = subprocess.run([sys.executable, "-c", LOAD_IN_FRESH_PROCESS, str(graph)], capture_output=True,
                            text=True, timeout=120, cwd=str(tmp_path), env={**os.environ, "PYTHONPATH": ""})
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert "transforms;" in loaded.stdout


def test_dataflow_options_are_checked(sample_files, tmp_path):
    with pytest.raises(GraphCaptured) as captured:
        main(_stages(sample_files, tmp_path)["candidates"] + DATAFLOW[:2])
    assert any("temp_location" in error for error in captured.value.errors)
    assert any("region" in error for error in captured.value.errors)
