# A custom Beam SDK worker image for Dataflow / Flink / Spark (and a `wit` CLI image):
#   docker build -t REGISTRY/wit-pipeline:0.1.0 . && docker push REGISTRY/wit-pipeline:0.1.0
#   wit ... --runner DataflowRunner --sdk_container_image REGISTRY/wit-pipeline:0.1.0
# The Beam version here must match the apache-beam that pip resolves below (see pyproject.toml).
FROM apache/beam_python3.11_sdk:2.77.0

ENV NO_ALBUMENTATIONS_UPDATE=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends wordnet-base && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/wit-pipeline
COPY pyproject.toml README.md ./
COPY wit_pipeline ./wit_pipeline
COPY queries ./queries
COPY dedup ./dedup
COPY trainer ./trainer
# The same two steps .ci/run proves: the CPU torch wheel first, then the package with the word
# segmenters a worker of a Chinese, Japanese or Thai build needs ([world]: jieba, fugashi + unidic-lite, PyThaiNLP).
RUN pip install torch==2.13.0 && pip install -e '.[world]'

# Runners start SDK workers with flags only (--id=..., --provision_endpoint=...): those go to the
# base image's Beam boot binary. Anything else runs as a command, `wit` by default.
RUN printf '#!/bin/sh\ncase "$1" in --*) exec /opt/apache/beam/boot "$@";; esac\nexec "$@"\n' \
      > /usr/local/bin/wit-entrypoint && chmod +x /usr/local/bin/wit-entrypoint
ENTRYPOINT ["/usr/local/bin/wit-entrypoint"]
CMD ["wit"]
