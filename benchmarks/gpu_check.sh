#!/usr/bin/env bash
# One device check on a lent GPU machine, sized for a 15-minute lease (at most 8 minutes here):
#   1. the tests that run on CUDA (every layout, fused included, and gradient kind against
#      float64 NumPy on the host, the agreement grid, far-apart latents, device errors), with a
#      junit report;
#   2. dense vs blocked vs fused (issue 26), jax and torch, each layout's default gradient
#      (dense autodiff, blocked and fused hand-derived), float32, D = 3, N = 1e4, 3e4, 1e5, 3e5,
#      1e6, with the in-run bound of every row; dense only where it fits (the harness skips by
#      its memory estimate), and a series stops where its next call is predicted to exceed
#      MAX_CALL seconds;
#   3. the report, archived with the run and the test logs as one file.
# The machine has no network and no .git: run it from the working tree, naming the commit
# (commit first: the copy is of the working tree, and the run says it is that commit):
#   UKR_BENCH_SOURCE_COMMIT=<40-hex commit> PYTHONPATH=. bash benchmarks/gpu_check.sh "$OUT"
# GPU_CHECK_DRY_RUN=1: the same steps on this CPU, as a check of the script for whoever next has
# a GPU: the fused layout's tests instead of the CUDA ones, the sweep on the CPU at tiny N with
# the fused kernels measured in interpret mode (UKR_BENCH_MEASURE_INTERPRETED=1; the harness
# skips them on a CPU otherwise) and short timings: its numbers mean nothing.
# GPU_CHECK_ARGS adds bench options. Everything lands in OUTDIR as at most 5 files (the device
# tool returns 8); a step that fails or times out does not stop the next one, and the exit
# status is that of the first failure.
# The precision columns compare with NumPy's float64 value and gradient, computed on the host's
# CPUs in O(N^2) time once per backend's worker: only up to N = 3e4 here (--reference-max-n),
# since at 1e6 that alone would take far longer than the budget.
set -u -o pipefail
out=${1:?usage: gpu_check.sh OUTDIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
py=${PYTHON:-python3}
status=0
fail() { [ "$status" = 0 ] && status=$1; }

if [ "${GPU_CHECK_DRY_RUN:-0}" = 1 ]; then
    export UKR_BENCH_MEASURE_INTERPRETED=1
    run_dir=${GPU_CHECK_RUN_DIR:-$out/gpu_check_dry_run}
    tests=(tests/test_fused_layout.py -k "value_and_grad_fused_layout or backend_object")
    sweep=(--devices cpu --n 40 70 --repeats 2 --max-rounds 2 --min-time 0 --warmup 1)
    t_tests=300 t_bench=600 max_call=30
else
    run_dir=${GPU_CHECK_RUN_DIR:-results/gpu_check_fused}
    tests=(tests/ -k cuda)
    sweep=(--devices cuda --n 10000 30000 100000 300000 1000000 --repeats 3 --max-rounds 50
           --min-time 0.5 --warmup 1 --reference-max-n 30000)
    t_tests=180 t_bench=270 max_call=10
fi
# the data's own D = 3 only, where the harness has a D axis
dims=()
"$py" -m ukr_bench.cli bench --help 2>/dev/null | grep -q -- --data-dims && dims=(--data-dims 3)

{ nvidia-smi; "$py" -c 'import jax, torch; print(jax.devices(), torch.cuda.is_available())'; } \
    >"$out/machine.txt" 2>&1 || fail $?

# 1. Tests; -p no:cacheprovider keeps the copied tree clean.
timeout "$t_tests" "$py" -m pytest -q -p no:cacheprovider --junitxml="$out/tests.xml" \
    "${tests[@]}" >"$out/tests.log" 2>&1 || fail $?
tail -3 "$out/tests.log"

# 2. The three layouts. Finished rows survive a timeout (results.jsonl is appended per
# configuration).
timeout "$t_bench" "$py" -m ukr_bench.cli bench --backends jax torch \
    --layouts dense blocked fused --gradients auto --dtypes float32 "${dims[@]}" \
    "${sweep[@]}" --fit-iters 0 --timeout 240 --max-call-seconds "$max_call" --no-progress \
    --out "$run_dir" ${GPU_CHECK_ARGS:-} >"$out/bench.log" 2>&1 || fail $?
tail -5 "$out/bench.log"

# 3. The report (the sweep writes it unless it timed out), then one archive.
[ -f "$run_dir/report.md" ] || timeout 60 "$py" -m ukr_bench.cli report "$run_dir" \
    >>"$out/bench.log" 2>&1 || fail $?
tar czf "$out/gpu_check.tar.gz" "$run_dir" -C "$out" tests.log 2>>"$out/bench.log" || fail $?
exit "$status"
