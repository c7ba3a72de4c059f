#!/usr/bin/env bash
# Runs the Distillery demo: an embedded Kafka broker, all services in one JVM, and one compression
# job on Fashion-MNIST with live progress and a results table. Options go to DemoMain, e.g.
#   ./demo.sh --train-limit 60000      ./demo.sh --dataset datasets/fashion-mnist-subset
set -euo pipefail
cd "$(dirname "$0")"
# Must be set before the JVM starts (see services/common/.../DjlRuntime.java). DjlRuntime picks
# libtorch's kernels itself, after checking them on this CPU (README, "Kernels").
export OPT_OUT_TRACKING=true
export DJL_CACHE_DIR="${DJL_CACHE_DIR:-$HOME/.djl.ai}"
# Keep freed activation buffers in the process instead of returning them to the OS after every
# step: measured 2.6x faster convnet training here (340 -> 890 samples/s, bench notes in README).
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=536870912
./mvnw -q -B -DskipTests install
exec ./mvnw -q -B -pl services/launcher exec:exec -Dexec.executable=java \
  -Dexec.workingdir="$PWD" \
  -Dexec.args="-Xmx4g -Dai.djl.offline=true -Dorg.apache.avro.SERIALIZABLE_PACKAGES=dev.distillery.schemas -cp %classpath dev.distillery.launcher.DemoMain $*"
