#!/usr/bin/env bash
# Issue 14's measurement on one lent NVIDIA GPU as one prepared command: device time is scarce, so
# plan and rehearse it here (on the CPU, with a tiny profile), then run it once there.
#
# On the GPU machine, from the repository root (its python3 has PyTorch, pandas, matplotlib, tqdm,
# scipy and safetensors; no registry, no internet). The corpus must travel inside the checkout:
# here, `mkdir -p .data && cp "$GPT_LADDER_DATA" .data/tinyshakespeare.txt` with `.data/` in
# .git/info/exclude, and name `.data` in the call's carry. Then:
#
#   bash bench/gpu_session.sh                      # every step, with the limits below
#   STEPS="ladder" LADDER_S=540 bash bench/gpu_session.sh
#
# Steps (STEPS, in this order; each under its own limit in seconds, and none past TOTAL_S (560) from
# the start, so the whole, archive included, stays inside the device tool's 10 minutes a command):
#   info     nvidia-smi, PyTorch's version and the GPU's name
#   ladder   runner.py --ladder lecture --profile gpu, SEEDS, JOBS runs side by side on the GPU  (LADDER_S)
#   lecture  runner.py --profile lecture --stage scaled: the lecture's 10.8M GPT, SEEDS            (LECTURE_S)
#   bench    bench/bench.py --device cuda --no-ttq: ms/step, tokens/s and share of the bf16 peak   (BENCH_S)
# The issue's results first: the benchmark gets what time is left, up to BENCH_S.
# Each training step runs with --resume: a second call continues an interrupted run where the
# machine still holds its checkpoint (a fresh machine starts bare). Device time is 15 minutes a
# session, the machine's start included, and a machine stays warm 30 s after a call: make the first
# call with timeout_s 600; if a step was cut short, call again at once with what the status says is
# left, e.g. `TOTAL_S=150 bash bench/gpu_session.sh`. Checkpoints (*.pt) are ignored files, so a warm
# machine keeps them, and --resume rebuilds a finished run's record from its checkpoint.
# Everything lands in $OUT (default ./gpu-out): session.log, bench-gpu.md, and results.tar.gz with
# the results folders it wrote (records, curves, samples, tables, charts; no checkpoints).
#
# Rehearsal on the CPU (about a minute), into scratch folders:
#   PYTHON=.venv/bin/python PROFILE=smoke LECTURE_PROFILE=smoke DEVICE=cpu RESULTS=/tmp/rehearsal \
#   OUT=/tmp/rehearsal-out GPT_LADDER_DATA=data/tinyshakespeare.txt bash bench/gpu_session.sh
set -uo pipefail
cd "$(dirname "$0")/.."

STEPS=${STEPS:-"info ladder lecture bench"}
PROFILE=${PROFILE:-gpu}
LECTURE_PROFILE=${LECTURE_PROFILE:-lecture}
DEVICE=${DEVICE:-cuda}
SEEDS=${SEEDS:-"0 1 2"}
JOBS=${JOBS:-3}
BENCH_S=${BENCH_S:-90}
LADDER_S=${LADDER_S:-330}
LECTURE_S=${LECTURE_S:-150}
TOTAL_S=${TOTAL_S:-560}  # the whole script, inside the device tool's 600 s a command
OUT=${OUT:-./gpu-out}
RESULTS=${RESULTS:-results}  # the runner's --out
PYTHON=${PYTHON:-python3}
export GPT_LADDER_DATA=${GPT_LADDER_DATA:-.data/tinyshakespeare.txt}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
log="$OUT/session.log"
written=()

step() {  # step NAME LIMIT COMMAND...: run it under its limit, log its output and its wall time
    local name=$1 limit=$2
    shift 2
    local left=$((TOTAL_S - SECONDS))  # never past TOTAL_S, so the archive below is always written
    if [ "$left" -lt 20 ]; then
        echo "== $name: skipped, ${left}s left of TOTAL_S=${TOTAL_S}" | tee -a "$log"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "== $name (limit ${limit}s): $*" | tee -a "$log"
    local start=$SECONDS
    timeout -k 15 "$limit" "$@" 2>&1 | tee -a "$log"  # SIGTERM: a run stops at the end of its step
    local status=${PIPESTATUS[0]}
    echo "== $name: exit $status after $((SECONDS - start)) s" | tee -a "$log"
}

for name in $STEPS; do
    case $name in
        info)
            step info 30 bash -c "nvidia-smi || true; $PYTHON -c 'import torch; print(\"torch\", torch.__version__, \"cuda\", torch.cuda.is_available() and torch.cuda.get_device_name())'" ;;
        bench)
            step bench "$BENCH_S" "$PYTHON" bench/bench.py --device "$DEVICE" --no-ttq --out "$OUT/bench-gpu.md" ;;
        ladder)
            # shellcheck disable=SC2086  # SEEDS is a list
            step ladder "$LADDER_S" "$PYTHON" runner.py --ladder lecture --resume --profile "$PROFILE" --device "$DEVICE" \
                --jobs "$JOBS" --seeds $SEEDS --no-progress --out "$RESULTS"
            written+=("$RESULTS/$PROFILE") ;;
        lecture)
            # shellcheck disable=SC2086
            step lecture "$LECTURE_S" "$PYTHON" runner.py --stage scaled --resume --profile "$LECTURE_PROFILE" \
                --device "$DEVICE" --jobs "$JOBS" --seeds $SEEDS --no-progress --out "$RESULTS"
            written+=("$RESULTS/$LECTURE_PROFILE") ;;
        *)
            echo "unknown step '$name': choose from info ladder lecture bench" | tee -a "$log"
            exit 2 ;;
    esac
done

if [ ${#written[@]} -gt 0 ]; then
    existing=()
    for folder in "${written[@]}"; do  # each once (PROFILE and LECTURE_PROFILE may be the same)
        [ -d "$folder" ] && [[ " ${existing[*]} " != *" $folder "* ]] && existing+=("$folder")
    done
    if [ ${#existing[@]} -gt 0 ]; then
        tar czf "$OUT/results.tar.gz" --exclude=checkpoint.pt --exclude='*.tmp' "${existing[@]}"
        echo "results: $OUT/results.tar.gz ($(du -h "$OUT/results.tar.gz" | cut -f1)) from ${existing[*]}" | tee -a "$log"
    fi
fi
