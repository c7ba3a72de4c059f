#!/usr/bin/env bash
# Runs a benchmark by hand:
#   bench/run.sh <throughput|replicas|publish|memory> [options]        teacher inference
#   bench/run.sh student <distill|transfer|memory> [--option value]    student trainer
#   bench/run.sh prune [--option value]                                pruner: accuracy against sparsity
#   bench/run.sh user <distil|prune|transfer> [--option value]         the user's TorchScript ResNet-18
#   bench/run.sh load [--option value]                                 jobs from three clients at once (issue 15)
#   bench/run.sh sweep --teacher FILE [--option value]                 distillation settings, by measurement (issue 16)
#   bench/run.sh onnx [--models arch=FILE|train:N:E,...]               DJL, ONNX float and int8 in ONNX Runtime (issue 17)
# Results and the exact commands used are written up in bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export OPT_OUT_TRACKING=true
export DJL_CACHE_DIR="${DJL_CACHE_DIR:-$HOME/.djl.ai}"
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=536870912
./mvnw -q -B -DskipTests install
MAIN=dev.distillery.bench.TeacherInferenceBench
if [[ "${1:-}" == student ]]; then
  MAIN=dev.distillery.bench.StudentTrainingBench
  shift
elif [[ "${1:-}" == prune ]]; then
  MAIN=dev.distillery.bench.PruningBench
  shift
elif [[ "${1:-}" == user ]]; then
  MAIN=dev.distillery.bench.UserModelBench
  shift
elif [[ "${1:-}" == sweep ]]; then
  MAIN=dev.distillery.bench.DistillationSweep
  shift
elif [[ "${1:-}" == onnx ]]; then
  MAIN=dev.distillery.bench.OnnxBench
  shift
elif [[ "${1:-}" == load ]]; then
  MAIN=dev.distillery.bench.LoadBench
  shift
fi
exec ./mvnw -q -B -pl bench exec:exec -Dexec.executable=java -Dexec.workingdir="$PWD" \
  -Dexec.args="-Xmx3g -Dorg.apache.avro.SERIALIZABLE_PACKAGES=dev.distillery.schemas -cp %classpath $MAIN $*"
