#!/usr/bin/env bash
# Real Beam engines on this machine, on loopback: fetch, start, stop, and the flags to pass to `wit build`.
#
#   scripts/engines.sh {prism|spark|flink} {fetch|start|stop|env}
#
#   prism  Beam's Go runner, built with `go install .../cmd/prism@v<beam version>` (Go module proxy).
#          PrismRunner starts and stops the binary itself for each job: start = fetch, stop = nothing.
#   spark  A standalone Spark cluster (a master and $WIT_SPARK_WORKERS workers, default 2) from the pyspark
#          package of the Spark line Beam's spark-3 job server is built for (3.5.x, from PyPI), and Beam's
#          job server jar org.apache.beam:beam-runners-spark-3-job-server:<beam version> (Maven Central).
#   flink  Beam's Flink job server jar org.apache.beam:beam-runners-flink-<$WIT_FLINK_VERSION>-job-server:<beam
#          version> (Maven Central); FlinkRunner starts it for each job with its embedded mini-cluster
#          (--flink_master [local]): start = fetch, stop = nothing.
#
# `env` prints the Beam flags, one line, to put after `wit build --config FILE` (or any stage). Everything fetched
# goes to $WIT_ENGINES_CACHE (default ~/.cache/wit-pipeline/engines), never into the repository; a running
# cluster's pids, port and logs are under $WIT_ENGINES_CACHE/run/<engine>. A jar got some other way is used
# as it is when $WIT_SPARK_JOB_SERVER_JAR / $WIT_FLINK_JOB_SERVER_JAR names it. Failures print one line,
# `engines.sh: error: ...`, on stderr and exit non-zero.
set -euo pipefail

CACHE=${WIT_ENGINES_CACHE:-$HOME/.cache/wit-pipeline/engines}
PYTHON=${PYTHON:-python}
SPARK_LINE=${WIT_SPARK_LINE:-3.5}            # Beam's spark-3 job server is built against Spark 3.5
FLINK_VERSION=${WIT_FLINK_VERSION:-1.20}     # one of Beam's published Flink lines (1.19 1.20 2.0 2.1 2.2)
SPARK_WORKERS=${WIT_SPARK_WORKERS:-2}

die() { echo "engines.sh: error: $*" >&2; exit 1; }

beam_version() { "$PYTHON" -c 'import apache_beam; print(apache_beam.__version__)' 2>/dev/null \
                 || die "apache_beam is not importable with $PYTHON"; }

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_for_port() {   # PORT SECONDS PID: until something listens on 127.0.0.1:PORT, or fail
  local port=$1 limit=$2 pid=$3 waited=0
  until "$PYTHON" -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.5)" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || return 1
    (( waited++ < limit * 2 )) || return 1
    sleep 0.5
  done
}

# --- the Beam job server jars (Maven Central, by name) -------------------------------------------------------

fetch_jar() {   # ARTIFACT_ID [OVERRIDE_PATH]: print the cached jar's path, fetching it first if needed
  local artifact=$1 override=${2:-} version jar
  if [[ -n $override ]]; then
    [[ -f $override ]] || die "$override (named by the environment) is not a file"
    echo "$override"; return
  fi
  version=$(beam_version)
  jar=$CACHE/jars/$artifact-$version.jar
  if [[ ! -s $jar ]]; then
    command -v mvn >/dev/null || die "mvn is not installed: cannot fetch $artifact"
    mkdir -p "$CACHE/jars"
    local log=$CACHE/jars/$artifact-$version.fetch.log
    if ! mvn -B -q -U dependency:copy -Dartifact="org.apache.beam:$artifact:$version" \
         -DoutputDirectory="$CACHE/jars" >"$log" 2>&1; then
      local why
      why=$(grep -o 'Could not find artifact [^ ]* in [^ ]*\|[^ ]* was not found in [^ ]*\|Could not transfer artifact [^ ]*' \
            "$log" | head -n 1 || true)
      die "cannot fetch org.apache.beam:$artifact:$version from Maven Central (${why:-see $log})"
    fi
  fi
  echo "$jar"
}

# --- prism ----------------------------------------------------------------------------------------------------

prism_binary() { echo "$CACHE/prism-v$(beam_version)/bin/prism"; }

prism_fetch() {
  local binary; binary=$(prism_binary)
  if [[ ! -x $binary ]]; then
    command -v go >/dev/null || die "go is not installed: cannot build prism"
    local log=$CACHE/prism-v$(beam_version)/install.log
    mkdir -p "$(dirname "$binary")"
    GOBIN=$(dirname "$binary") go install "github.com/apache/beam/sdks/v2/go/cmd/prism@v$(beam_version)" \
      >"$log" 2>&1 || die "go install of prism v$(beam_version) failed: $(tail -n 1 "$log")"
  fi
  echo "$binary"
}

prism_env() { echo "--runner PrismRunner --prism_location $(prism_fetch) --environment_type LOOPBACK"; }

# --- spark ----------------------------------------------------------------------------------------------------

spark_home() {   # the pyspark install (it carries bin/spark-class and the Spark jars)
  local target=$CACHE/pyspark-$SPARK_LINE
  if [[ ! -x $target/pyspark/bin/spark-class ]]; then
    mkdir -p "$target"
    local wanted="pyspark>=$SPARK_LINE,<${SPARK_LINE%.*}.$(( ${SPARK_LINE#*.} + 1 ))"
    { "$PYTHON" -m pip download --no-deps --dest "$CACHE/wheels" "$wanted" &&
      "$PYTHON" -m pip install --no-deps --no-build-isolation --no-index --find-links "$CACHE/wheels" --target "$target" "$wanted"; } \
      >"$target.install.log" 2>&1 || die "pip install of pyspark $SPARK_LINE.x failed: $(tail -n 1 "$target.install.log")"
  fi
  echo "$target/pyspark"
}

spark_jar() { fetch_jar beam-runners-spark-3-job-server "${WIT_SPARK_JOB_SERVER_JAR:-}"; }

spark_fetch() { spark_jar; spark_home; }

spark_start() {
  local run=$CACHE/run/spark home port
  [[ -f $run/port ]] && spark_running && { echo "spark://127.0.0.1:$(cat "$run/port")"; return; }
  spark_fetch >/dev/null
  home=$(spark_home)
  mkdir -p "$run"; rm -f "$run"/*.pid "$run/port"
  port=$(free_port)
  export SPARK_HOME=$home SPARK_LOCAL_IP=127.0.0.1 SPARK_NO_DAEMONIZE=1
  "$home/bin/spark-class" org.apache.spark.deploy.master.Master --host 127.0.0.1 --port "$port" \
    --webui-port "$(free_port)" >"$run/master.log" 2>&1 &
  echo $! >"$run/master.pid"
  wait_for_port "$port" 90 "$(cat "$run/master.pid")" || { spark_stop; die "the Spark master did not start: $run/master.log"; }
  for ((i = 1; i <= SPARK_WORKERS; i++)); do
    "$home/bin/spark-class" org.apache.spark.deploy.worker.Worker --host 127.0.0.1 --cores 1 --memory 2g \
      --webui-port "$(free_port)" --work-dir "$run/work-$i" "spark://127.0.0.1:$port" >"$run/worker-$i.log" 2>&1 &
    echo $! >"$run/worker-$i.pid"
  done
  local waited=0
  until (( $(grep -c 'Registering worker' "$run/master.log" || true) >= SPARK_WORKERS )); do
    (( waited++ < 180 )) || { spark_stop; die "the Spark workers did not register: $run/worker-*.log"; }
    sleep 0.5
  done
  echo "$port" >"$run/port"
  echo "spark://127.0.0.1:$port"
}

spark_running() {
  local pid_file
  for pid_file in "$CACHE"/run/spark/*.pid; do
    [[ -f $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null || return 1
  done
}

spark_stop() {   # the processes this script started, by their pids (and their children: spark-class execs java)
  local pid_file pid
  for pid_file in "$CACHE"/run/spark/*.pid; do
    [[ -f $pid_file ]] || continue
    pid=$(cat "$pid_file")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pid_file"
  done
  rm -f "$CACHE/run/spark/port"
}

spark_env() {
  [[ -f $CACHE/run/spark/port ]] && spark_running || die "no Spark cluster is running: run '$0 spark start' first"
  echo "--runner SparkRunner --spark_master_url spark://127.0.0.1:$(cat "$CACHE/run/spark/port")" \
       "--spark_job_server_jar $(spark_jar) --environment_type LOOPBACK"
}

# --- flink ----------------------------------------------------------------------------------------------------

flink_jar() { fetch_jar "beam-runners-flink-$FLINK_VERSION-job-server" "${WIT_FLINK_JOB_SERVER_JAR:-}"; }

flink_env() {
  echo "--runner FlinkRunner --flink_master [local] --flink_job_server_jar $(flink_jar) --environment_type LOOPBACK"
}

# --------------------------------------------------------------------------------------------------------------

usage() { echo "usage: $0 {prism|spark|flink} {fetch|start|stop|env}" >&2; exit 2; }

[[ $# -eq 2 ]] || usage
case "$1:$2" in
  prism:fetch | prism:start) prism_fetch ;;
  prism:stop | flink:stop) ;;                 # the runner stops what it started with the job
  prism:env) prism_env ;;
  spark:fetch) spark_fetch ;;
  spark:start) spark_start ;;
  spark:stop) spark_stop ;;
  spark:env) spark_env ;;
  flink:fetch | flink:start) flink_jar ;;
  flink:env) flink_env ;;
  *) usage ;;
esac
