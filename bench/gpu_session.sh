#!/usr/bin/env bash
# The GPU measurements on one NVIDIA GPU as prepared commands, for a GPU machine that is borrowed by the
# minute (10 minutes a command at most, its start included): rehearse on the CPU first (a tiny profile;
# tests/test_gpu_session.py), then run it there, so the GPU's time goes to measuring.
#
# On the GPU machine, from the repository root (its python3 has PyTorch, pandas, matplotlib, tqdm,
# scipy and safetensors; no registry, no internet). What travels with the checkout, prepared here:
#   .data/      the corpus: `mkdir -p .data && cp "$GPT_LADDER_DATA" .data/tinyshakespeare.txt`, with
#               `.data/` in .git/info/exclude
#   .nanogpt/   nanoGPT's scripts and data, for `versus` only: `python bench/versus_nanogpt.py prepare
#               --nanogpt PATH` (PATH: a checkout of karpathy/nanoGPT, or its git folder)
# and name them in the call's carry. Then, one call each (timeout_s 600):
#
#   bash bench/gpu_session.sh                        # info tests ladder lecture bench: the gpu ladder, the lecture's GPT
#   STEPS="versus" bash bench/gpu_session.sh         # the runner against nanoGPT's train.py, time to val 1.48
#   STEPS="modern" bash bench/gpu_session.sh         # the 2025 GPT at the lecture GPT's size
#
# Steps (STEPS, in this order; each under its own limit in seconds, and none past TOTAL_S (560) from
# the start, so the whole, archive included, stays inside a 10-minute command):
#   info     nvidia-smi, PyTorch's version and the GPU's name; whether torch.compile (Triton, a C compiler)
#            and a pseudo-terminal (versus) are there
#   tests    pytest tests/test_accelerator.py: train, stop, resume, sample and precision on the GPU, in
#            seconds, so a broken device path shows before the long steps                        (TESTS_S)
#   ladder   runner.py --ladder lecture --profile gpu, SEEDS, JOBS runs side by side on the GPU  (LADDER_S)
#   lecture  runner.py --profile lecture --stage scaled: the lecture's 10.8M GPT, SEEDS            (LECTURE_S)
#   bench    bench/bench.py --device cuda --no-ttq --ceiling CEILING: ms/step, tokens/s and share of the
#            measured bf16 matmul peak (CEILING: bf16 on CUDA, fp32 on the CPU)                   (BENCH_S)
#   versus   bench/versus_nanogpt.py run: nanoGPT's train.py and the runner at the lecture GPT, with and
#            without torch.compile (VERSUS_COMPILE: both, on or off; compiled first, each tool's best),
#            VERSUS_ITERS steps, at most 240 s a run; its own table (versus-nanogpt.md) and log in $OUT.
#            Four runs of 5,000 steps may not fit one call: the uncompiled pair can follow in a second,
#            e.g. VERSUS_COMPILE=off VERSUS_ITERS=1500 (ms/step needs a few stretches between evaluations) (VERSUS_S)
#   modern   runner.py --profile lecture --stage MODERN_STAGE --set MODERN_SET: the top modern rung at
#            the lecture GPT's size and recipe, SEEDS, beside the `lecture` step's scaled runs   (MODERN_S)
# The results first: the benchmark gets what time is left, up to BENCH_S.
# Each training step runs with --resume: a second call continues an interrupted run where the
# machine still holds its checkpoint (a fresh machine starts bare); a machine stays warm 30 s after
# a call. If a step was cut short, call again at once with what the status says is left, e.g.
# `TOTAL_S=150 bash bench/gpu_session.sh`. Checkpoints (*.pt) are ignored files, so a warm machine
# keeps them, and --resume rebuilds a finished run's record from its checkpoint.
# Everything lands in $OUT (default ./gpu-out): session.log, bench-gpu.md, versus-nanogpt.md and .log,
# results.tar.gz with the results folders it wrote (records, curves, samples, tables, charts; no
# checkpoints), and unfinished-runs.json: the step, precision and loss curve (with its seconds) of every
# run a limit cut short, read from its checkpoint (bench/unfinished.py), so a cut-short run still says how
# far it got and how fast.
#
# Rehearsal on the CPU (about a minute), into scratch folders:
#   PYTHON=.venv/bin/python PROFILE=smoke LECTURE_PROFILE=smoke DEVICE=cpu RESULTS=/tmp/rehearsal \
#   OUT=/tmp/rehearsal-out GPT_LADDER_DATA=data/tinyshakespeare.txt VERSUS_ARGS=--tiny MODERN_SET= \
#   bash bench/gpu_session.sh
set -uo pipefail
cd "$(dirname "$0")/.."

STEPS=${STEPS:-"info tests ladder lecture bench"}
PROFILE=${PROFILE:-gpu}
LECTURE_PROFILE=${LECTURE_PROFILE:-lecture}
DEVICE=${DEVICE:-cuda}
case $DEVICE in cuda* | auto) default_ceiling=bf16 ;; *) default_ceiling=fp32 ;; esac
CEILING=${CEILING:-$default_ceiling}  # the matmul peak bench's % column is against: the rows train in bf16 on a GPU
SEEDS=${SEEDS:-"0 1 2"}
JOBS=${JOBS:-3}
BENCH_S=${BENCH_S:-90}
TESTS_S=${TESTS_S:-45}
LADDER_S=${LADDER_S:-330}
LECTURE_S=${LECTURE_S:-150}
VERSUS_S=${VERSUS_S:-520}
VERSUS_COMPILE=${VERSUS_COMPILE:-both}
VERSUS_ITERS=${VERSUS_ITERS:-5000}
VERSUS_ARGS=${VERSUS_ARGS:-}  # more options of bench/versus_nanogpt.py run (the rehearsal: --tiny)
MODERN_S=${MODERN_S:-400}
MODERN_STAGE=${MODERN_STAGE:-qk_norm}
# the lecture GPT's size and recipe (common/profiles.py LECTURE_GPT, its fused attention kernel too), the modern
# ladder's rungs have no dropout
MODERN_SET=${MODERN_SET-"block_size=256 n_embd=384 n_head=6 n_layer=6 batch_size=64 learning_rate=3e-4 init=gpt2 fused_attention=true"}
TOTAL_S=${TOTAL_S:-560}  # the whole script, inside the device tool's 600 s a command
OUT=${OUT:-./gpu-out}
RESULTS=${RESULTS:-results}  # the runner's --out
PYTHON=${PYTHON:-python3}
export GPT_LADDER_DATA=${GPT_LADDER_DATA:-.data/tinyshakespeare.txt}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
log="$OUT/session.log"
started="$OUT/.started"  # folders changed after it are this call's
touch "$started"
written=()

clamped() {  # clamped LIMIT: LIMIT, or the seconds left before TOTAL_S if fewer (so the archive is always written)
    local left=$((TOTAL_S - SECONDS))
    echo $(($1 < left ? $1 : left))
}

step() {  # step NAME LIMIT COMMAND...: run it under its limit, log its output and its wall time
    local name=$1 limit
    limit=$(clamped "$2")
    shift 2
    if [ $((TOTAL_S - SECONDS)) -lt 20 ]; then
        echo "== $name: skipped, $((TOTAL_S - SECONDS))s left of TOTAL_S=${TOTAL_S}" | tee -a "$log"
        return
    fi
    echo "== $name (limit ${limit}s): $*" | tee -a "$log"
    local start=$SECONDS
    timeout -k 15 "$limit" "$@" 2>&1 | tee -a "$log"  # SIGTERM: a run stops at the end of its step
    local status=${PIPESTATUS[0]}
    echo "== $name: exit $status after $((SECONDS - start)) s" | tee -a "$log"
}

for name in $STEPS; do
    case $name in
        info)
            checks=(
                "nvidia-smi || true"
                "$PYTHON -c 'import torch; print(\"torch\", torch.__version__, \"cuda\", torch.cuda.is_available() and torch.cuda.get_device_name())'"
                "echo \"C compiler: \$(command -v cc gcc | head -1)\""
                "$PYTHON -c 'import triton; print(\"triton\", triton.__version__)' 2>/dev/null || echo 'no triton: torch.compile builds no GPU kernels'"
                "$PYTHON -c 'import pty; pty.openpty(); print(\"pseudo-terminal: ok\")' 2>/dev/null || echo 'no pseudo-terminal: versus cannot run'"
            )
            step info 30 bash -c "$(printf '%s; ' "${checks[@]}")" ;;
        tests)
            step tests "$TESTS_S" "$PYTHON" -m pytest -q -x -p no:cacheprovider tests/test_accelerator.py ;;
        bench)
            step bench "$BENCH_S" "$PYTHON" bench/bench.py --device "$DEVICE" --no-ttq --ceiling "$CEILING" \
                --out "$OUT/bench-gpu.md" ;;
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
        versus)
            limit=$(clamped "$VERSUS_S")
            # its own budget 40 s inside the step's limit: the last run's stop (10 s), the table, python's start
            # shellcheck disable=SC2086  # VERSUS_ARGS is a list
            step versus "$limit" "$PYTHON" bench/versus_nanogpt.py run --device "$DEVICE" --python "$PYTHON" \
                --compile "$VERSUS_COMPILE" --iters "$VERSUS_ITERS" --budget $((limit - 40)) \
                --out "$OUT/versus-nanogpt.md" $VERSUS_ARGS ;;
        modern)
            sets=()
            for setting in $MODERN_SET; do sets+=(--set "$setting"); done
            # shellcheck disable=SC2086
            step modern "$MODERN_S" "$PYTHON" runner.py --stage "$MODERN_STAGE" --resume --profile "$LECTURE_PROFILE" \
                --device "$DEVICE" --jobs "$JOBS" --seeds $SEEDS --no-progress --out "$RESULTS" "${sets[@]}"
            for folder in "$RESULTS/$LECTURE_PROFILE" "$RESULTS/$LECTURE_PROFILE"-*; do  # -<hash of the --set>
                [ -d "$folder" ] && [ "$folder" -nt "$started" ] && written+=("$folder")
            done ;;
        *)
            echo "unknown step '$name': choose from info tests ladder lecture bench versus modern" | tee -a "$log"
            exit 2 ;;
    esac
done

if [ ${#written[@]} -gt 0 ]; then
    existing=()
    for folder in "${written[@]}"; do  # each once (PROFILE and LECTURE_PROFILE may be the same)
        [ -d "$folder" ] && [[ " ${existing[*]} " != *" $folder "* ]] && existing+=("$folder")
    done
    if [ ${#existing[@]} -gt 0 ]; then
        timeout 30 "$PYTHON" bench/unfinished.py "${existing[@]}" --out "$OUT/unfinished-runs.json" 2>&1 | tee -a "$log"
        tar czf "$OUT/results.tar.gz" --exclude=checkpoint.pt --exclude='*.tmp' "${existing[@]}"
        echo "results: $OUT/results.tar.gz ($(du -h "$OUT/results.tar.gz" | cut -f1)) from ${existing[*]}" | tee -a "$log"
    fi
fi
