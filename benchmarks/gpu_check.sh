#!/usr/bin/env bash
# One device check on a lent GPU machine, sized for a 15-minute lease (about 8 minutes here):
#   1. the tests that run on CUDA (every layout and gradient kind against float64 NumPy on the
#      host, the agreement grid, far-apart latents, device errors), with a junit report;
#   2. the large-N GPU sweep, blocked layout, each backend's hand-derived gradient, float32,
#      N = 10,000 ... 1,000,000 (issue 9's goals: N = 1e5 under 50 ms, 1e6 under 5 s), with
#      its report, archived as one file.
# The machine has no network and no .git: run it from the working tree, naming the commit
# (commit first: the copy is of the working tree, and the run says it is that commit):
#   UKR_BENCH_SOURCE_COMMIT=<40-hex commit> PYTHONPATH=. bash benchmarks/gpu_check.sh "$OUT"
# GPU_CHECK_ARGS adds bench options (a dry run on a CPU: "--devices cpu --n 500 1000").
# Everything lands in OUTDIR as at most 6 files; a step that fails or times out does not stop
# the next one, and the exit status is that of the first failure.
set -u -o pipefail
out=${1:?usage: gpu_check.sh OUTDIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
py=${PYTHON:-python3}
status=0
run_dir=results/gpu_check_large_n

{ nvidia-smi; "$py" -c 'import jax, torch; print(jax.devices(), torch.cuda.get_device_name())'; } \
    >"$out/machine.txt" 2>&1 || status=$?

# 1. CUDA tests: the device-parametrised ones ("cuda" in their ids); -p no:cacheprovider keeps
# the copied tree clean.
timeout 240 "$py" -m pytest -q -p no:cacheprovider -k cuda --junitxml="$out/tests-cuda.xml" \
    tests/ >"$out/tests-cuda.log" 2>&1 || { s=$?; [ "$status" = 0 ] && status=$s; }
tail -3 "$out/tests-cuda.log"

# 2. Large N on the GPU: a series stops where its next call is predicted to exceed 30 s.
timeout 330 "$py" -m ukr_bench.cli bench --preset large-gpu --layouts blocked --gradients manual \
    --max-call-seconds 30 --no-progress --out "$run_dir" ${GPU_CHECK_ARGS:-} >"$out/bench.log" 2>&1 \
    || { s=$?; [ "$status" = 0 ] && status=$s; }
tail -5 "$out/bench.log"
# finished rows survive a timeout (results.jsonl is appended per configuration): report them
[ -f "$run_dir/report.md" ] || "$py" -m ukr_bench.cli report "$run_dir" >>"$out/bench.log" 2>&1
tar czf "$out/gpu_check_large_n.tar.gz" "$run_dir" 2>>"$out/bench.log" || status=$?
exit "$status"
