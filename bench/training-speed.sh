#!/usr/bin/env bash
# DJL against PyTorch 1.13 training (Adam 0.001) or running a built-in architecture on Fashion-MNIST
# (default LeNet-5 training, batch 128, 2 threads), run alternately in one sitting: DJL, torch, DJL,
# torch ... with a ratio per round.
#
#   bench/training-speed.sh [rounds=3] [samples=60000] [epochs=1]
#
# Environment knobs (defaults = the recommended configuration):
#   ARCH        lenet5 (default) or convnet;  MODE  train (default) or infer;  BATCH  (default 128)
#   DJL_OPTS    extra key=value args for TrainingSpeedBench; words starting with "-" go to the JVM
#               instead, e.g. "-Ddistillery.kernels=native" (the kernels shipped before the probe)
#   TORCH_OPTS  extra args for bench/torch/speed.py, e.g. "--mkldnn off --channels-last"
#   ISA         ONEDNN_MAX_CPU_ISA for the DJL side (default unset: the CPU's best, as the services run)
#   MALLOC      tuned (default: MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1e11 MALLOC_TOP_PAD_=512MB
#               on both sides) | default (glibc defaults on both sides) | djl-only | torch-only
#   THREADS     libtorch/torch intra-op threads on both sides (default 2)
#   VARIANTS    several DJL configurations per round instead of one, "label:ISA:args;label:ISA:args",
#               e.g. "after:unset:;before:unset:-Ddistillery.kernels=native" (torch runs once per round)
#
# Each run line ends with "other=<x>%": CPU used on the machine by processes other than the run,
# as a share of both cores over the run's wall time (from /proc/stat). Above ~5% the round was
# disturbed (for example by a Maven build) and its ratio should not be trusted. minorFaults is the
# process's minor page faults (from /usr/bin/time), the symptom glibc's default malloc settings cause.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-3}" SAMPLES="${2:-60000}" EPOCHS="${3:-1}"
THREADS="${THREADS:-2}" ISA="${ISA:-unset}" MALLOC="${MALLOC:-tuned}"
ARCH="${ARCH:-lenet5}" MODE="${MODE:-train}" BATCH="${BATCH:-128}"
DATA=/usr/share/datasets/fashion-mnist
export OPT_OUT_TRACKING=true DJL_CACHE_DIR="${DJL_CACHE_DIR:-$HOME/.djl.ai}"

# Compile only this benchmark (javac against the bench module's classpath), so neither a full
# reactor build nor another engineer's half-finished change elsewhere in bench/ is needed.
CLASSES=bench/target/training-speed-classes
mkdir -p "$CLASSES"
if [[ ! -s "$CLASSES/.classpath" ]]; then
  ./mvnw -q -B -o -pl bench dependency:build-classpath -Dmdep.outputFile="$PWD/$CLASSES/.classpath" >/dev/null
fi
javac -d "$CLASSES" -cp "$(cat "$CLASSES/.classpath")" bench/src/main/java/dev/distillery/bench/TrainingSpeedBench.java
CP="$CLASSES:$(cat "$CLASSES/.classpath")"

tuned=(MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=536870912)
djl_env=() torch_env=()
case "$MALLOC" in
  tuned) djl_env=("${tuned[@]}") torch_env=("${tuned[@]}") ;;
  djl-only) djl_env=("${tuned[@]}") ;;
  torch-only) torch_env=("${tuned[@]}") ;;
  default) ;;
  *) echo "MALLOC must be tuned, default, djl-only or torch-only" >&2; exit 2 ;;
esac

busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }   # user nice system irq softirq steal
hz=$(getconf CLK_TCK)

# Waits (at most QUIET_WAIT seconds, default 180) until the machine has been idle (<10% of both
# cores busy) for 2 s, so a run does not start in the middle of someone else's build.
quiet() {
  local waited=0 b a
  while (( waited < ${QUIET_WAIT:-180} )); do
    b=$(busy); sleep 2; a=$(busy)
    if awk -v b="$b" -v a="$a" -v hz="$hz" 'BEGIN{exit !((a-b)/hz/4*100 < 10)}'; then return 0; fi
    sleep 3; waited=$((waited + 5))
  done
  echo "  (machine still busy after ${waited}s; running anyway)"
}

# run <label> <command...>: prints the command's result line plus the disturbance estimate.
run() {
  local label=$1; shift
  quiet
  local before after t0 t1 out own
  before=$(busy); t0=$(date +%s.%N)
  out=$(/usr/bin/time -f 'TIME %U %S %R' "$@" 2>&1 | grep -E '^(djl|torch) samples|^TIME|Exception|Error' || true)
  t1=$(date +%s.%N); after=$(busy)
  own=$(awk '/^TIME/{print $2+$3}' <<<"$out")
  local line; line=$(grep -E '^(djl|torch) samples' <<<"$out" || echo "$label FAILED: $out")
  local other; other=$(awk -v b="$before" -v a="$after" -v hz="$hz" -v o="${own:-0}" -v w="$(echo "$t1 - $t0" | bc)" \
    'BEGIN{x=((a-b)/hz-o)/(2*w)*100; if(x<0)x=0; printf "%.1f", x}')
  local faults; faults=$(awk '/^TIME/{print $4}' <<<"$out")
  echo "$line minorFaults=${faults:-?} other=${other}%"
}

djl_run() {  # djl_run <ISA or unset> <extra args...>
  local isa=$1; shift
  local e=("${djl_env[@]}")
  [[ "$isa" != unset ]] && e+=(ONEDNN_MAX_CPU_ISA="$isa")
  local jvm=() app=() a
  for a in "$@"; do if [[ "$a" == -* ]]; then jvm+=("$a"); else app+=("$a"); fi; done  # -X... go to the JVM
  run djl env "${e[@]}" java -Xmx2g "${jvm[@]}" -cp "$CP" dev.distillery.bench.TrainingSpeedBench \
      samples="$SAMPLES" epochs="$EPOCHS" threads="$THREADS" dir="$DATA" arch="$ARCH" mode="$MODE" batch="$BATCH" \
      "${app[@]}"
}
rate() { sed -n 's/.*samples\/s=\([0-9.]*\).*/\1/p' <<<"$1"; }

echo "# $(date -Is) rounds=$ROUNDS samples=$SAMPLES epochs=$EPOCHS threads=$THREADS MALLOC=$MALLOC arch=$ARCH mode=$MODE batch=$BATCH"
if [[ -n "${VARIANTS:-}" ]]; then
  # VARIANTS="label:ISA:djl args;label:ISA:djl args;..." - per round: torch, then every DJL variant,
  # each variant's ratio taken against that round's torch run.
  echo "# VARIANTS='$VARIANTS' TORCH_OPTS='${TORCH_OPTS:-}'"
  IFS=';' read -ra variants <<<"$VARIANTS"
  for r in $(seq 1 "$ROUNDS"); do
    t=$(run torch env "${torch_env[@]}" /usr/bin/python3 bench/torch/speed.py \
        --samples "$SAMPLES" --epochs "$EPOCHS" --threads "$THREADS" --dir "$DATA" --arch "$ARCH" --mode "$MODE" \
        --batch "$BATCH" ${TORCH_OPTS:-})
    echo "  $t"; ts=$(rate "$t")
    for v in "${variants[@]}"; do
      IFS=':' read -r label isa args <<<"$v"
      d=$(djl_run "$isa" $args); echo "  [$label] $d"; ds=$(rate "$d")
      echo "round $r [$label]: djl ${ds:-?} torch ${ts:-?} djl/torch $( [[ -n "$ds" && -n "$ts" ]] && echo "scale=3; $ds / $ts" | bc)"
    done
  done
  exit 0
fi
echo "# ISA(djl)=$ISA DJL_OPTS='${DJL_OPTS:-}' TORCH_OPTS='${TORCH_OPTS:-}'"
for r in $(seq 1 "$ROUNDS"); do
  d=$(djl_run "$ISA" ${DJL_OPTS:-})
  echo "  $d"
  t=$(run torch env "${torch_env[@]}" /usr/bin/python3 bench/torch/speed.py \
      --samples "$SAMPLES" --epochs "$EPOCHS" --threads "$THREADS" --dir "$DATA" --arch "$ARCH" --mode "$MODE" \
      --batch "$BATCH" ${TORCH_OPTS:-})
  echo "  $t"
  ds=$(rate "$d"); ts=$(rate "$t")
  if [[ -n "$ds" && -n "$ts" ]]; then
    echo "round $r: djl $ds samples/s, torch $ts samples/s, djl/torch $(echo "scale=3; $ds / $ts" | bc)"
  else
    echo "round $r: failed"
  fi
done
