#!/usr/bin/env bash
# The WebGPU fast-kernel figures on a lent GPU machine (an H200), in one call. Prepare here, then run there:
#   npm run build && ../shared/gpu/stage.sh       # .gpu/: node, the Vulkan loader debs, node_modules with Dawn
#   device run: command "bash bench/gpu/device-run.sh", carry [".gpu", "dist"], timeout_s 540
# Prints (and writes to $OUT/device-run.log): the adapter, PyTorch's fp32 GEMM (TF32 off) at
# n = 1024..8192, lowbit's WebGPU linear, reference / fast kernels, at the same square sizes
# (bench/webgpuGemm.ts, timestamp-query), the fast GEMM's designs side by side at 4096 and 8192, the Gram reference / tiled (its TwoProduct error by fma where the probe finds it fused, and by split products; bench/webgpuGram.ts), attention and its backward reference / tiled (bench/webgpuAttention.ts), the parity tests (first: correctness
# on this GPU before speed), AWQ and GPTQ of one 8B block (bench/awqBlock.ts), and the time of
# `lowbit eval --backend webgpu --ppl tinystories --limit 4` with each kernel choice; block-streamed perplexity
# on LLaMA-3-8B shapes (bench/pplSpeed.ts: tokens/s, peak device memory; 2 blocks, and all 32 last if time is left) and GPTQ of one 8B block
# (bench/gptqBlock.ts: with the solve on the device, --device-solve, then on the host's wasm kernels near the end),
# each next to PyTorch on CUDA.
# Every step runs under what is left of BUDGET_S (default 480 s); a step that fails or runs out is
# reported and the script goes on.
set -euo pipefail
cd "$(dirname "$0")/../.."
budget=${BUDGET_S:-480}
start=$SECONDS
log=${OUT:-/tmp}/device-run.log
: > "$log"
step() { # step NAME CMD...: runs CMD with the time left, output to the terminal and the log
  local name=$1; shift
  local left=$((budget - (SECONDS - start)))
  if [ "$left" -le 5 ]; then echo "== $name: skipped, time budget spent" | tee -a "$log"; return 0; fi
  echo "== $name (${left} s left)" | tee -a "$log"
  timeout "$left" "$@" 2>&1 | grep -v 'artificially reduced' | tee -a "$log" || echo "== $name: failed or timed out (status ${PIPESTATUS[0]})" | tee -a "$log"
}
# a worktree's node_modules symlink arrives dangling; boot.sh unpacks the staged node_modules in its place
if [ -L node_modules ] && [ ! -e node_modules ]; then rm node_modules; fi
# shellcheck disable=SC1091
source .gpu/boot.sh
step 'GPU' nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
# the adapter as lowbit sees it: hardware or software, limits, subgroups, the fma probe, the GEMM design auto timed
step 'lowbit info --backends' node bin/lowbit.js info --backends
step 'parity tests on this GPU (the fma probe, fast and reference kernels, the GEMM designs, the Gram, div_cr, the column ops, QuIP rebuild, the GPTQ device solve)' node --expose-gc --test dist/test/backend/fmaProbe.test.js dist/test/backend/gptqDevice.test.js dist/test/backend/fastKernels.test.js dist/test/backend/gemmDesigns.test.js dist/test/backend/fastAttentionBackward.test.js dist/test/backend/parity.test.js dist/test/backend/gram.test.js dist/test/backend/searchOps.test.js dist/test/backend/columnOps.test.js dist/test/backend/quipDevice.test.js dist/test/backend/quipCache.test.js dist/test/backend/deviceErrors.test.js
step 'PyTorch fp32 GEMM anchor' python3 bench/gpu/torch_gemm.py 1024 2048 4096 8192
step 'WebGPU linear, square' node dist/bench/webgpuGemm.js --tokens square --sizes 1024,2048,4096,8192 --dtypes f32,bf16,gptq
# the fast GEMM's designs (LOWBIT_WEBGPU_GEMM: tiled, tiled8, prefetch, double, shuffle (subgroups: B passed between
# lanes by subgroupShuffle, 16 lanes on 32-wide subgroups)) side by side, the fastest named per row; capped at 110 s
# (rows print as they finish)
step 'WebGPU linear, square, GEMM designs (LOWBIT_WEBGPU_GEMM)' timeout 110 node dist/bench/webgpuGemm.js --tokens square --sizes 4096,8192 --dtypes f32,gptq --variants all
step 'WebGPU linear, square, Dawn bounds clamping off' env LOWBIT_DAWN_TOGGLES=disable_robustness node dist/bench/webgpuGemm.js --tokens square --sizes 4096,8192 --dtypes f32,gptq
# issue 13's other two targets, each beside PyTorch on CUDA (float32, TF32 off) in the same step
step 'block-streamed ppl, LLaMA-3-8B shapes (2 blocks), 1 x 2048' node --expose-gc dist/bench/pplSpeed.js llama3-8b 1 2048 --backend webgpu
# GPTQ with its solve on the device (float32, --device-solve) beside gptq.py on CUDA (the host's float64 solve: near the end)
step 'GPTQ of one LLaMA-3-8B block, 16 x 2048, solve on the device (float32)' node --expose-gc dist/bench/gptqBlock.js --backend webgpu --samples 16 --seqlen 2048 --device-solve
# the device solve alone per 8B layer shape, fast (blocked) and reference kernels, beside fasterquant on CUDA
step 'GPTQ solve on the device per LLaMA-3-8B layer, fast / reference kernels' timeout 75 node dist/bench/webgpuGptqSolve.js --kernels fast,reference
step 'GPTQ of one LLaMA-3-8B block, 16 x 2048, Hessian f32, solve on the device' node --expose-gc dist/bench/gptqBlock.js --backend webgpu --samples 16 --seqlen 2048 --device-solve --hessian f32 --no-torch
step 'AWQ and GPTQ of one LLaMA-3-8B block, 16 x 512 (scale search on the device)' node --expose-gc dist/bench/awqBlock.js 16 512 --backend webgpu
step 'WebGPU linear, 128 tokens' node dist/bench/webgpuGemm.js --tokens 128 --sizes 4096 --dtypes f32,gptq
step 'WebGPU Gram (GPTQ Hessian sums), reference / fast (fma where fused) / fast with split products / f32' node dist/bench/webgpuGram.js --shapes 1024:2048,4096:2048,14336:2048 --kernels reference,fast,fast-split,f32
step 'WebGPU attention and its backward' node dist/bench/webgpuAttention.js --shapes 512:8:4:16,2048:32:8:128,4096:32:8:128 --backward-shapes 512:8:4:64,2048:32:8:128
for k in reference fast; do
  step "eval ppl, $k kernels" env LOWBIT_WEBGPU_KERNELS=$k bash -c 'time node --expose-gc bin/lowbit.js eval --backend webgpu --ppl tinystories --limit 4'
done
# GPTQ with the host's float64 solve: the wasm kernels here (this machine has no OpenBLAS)
step 'GPTQ of one LLaMA-3-8B block, 16 x 2048, solve on the host (wasm kernels)' node --expose-gc dist/bench/gptqBlock.js --backend webgpu --samples 16 --seqlen 2048 --no-torch
# the whole depth where time is left (the step is cut at the budget like the others)
step 'block-streamed ppl, LLaMA-3-8B shapes (32 blocks), 1 x 2048' node --expose-gc dist/bench/pplSpeed.js llama3-8b 1 2048 --blocks 32 --backend webgpu
echo "== done in $((SECONDS - start)) s" | tee -a "$log"
