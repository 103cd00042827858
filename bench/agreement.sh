#!/usr/bin/env bash
# Agreement of pilot characterize with `vllm bench serve` (issue 17 part 6).
#
# On one OpenAI-compatible server (pilot's embedded engine, fixed settings) and the same
# request shape (random prompts of INPUT tokens, exactly OUTPUT tokens, CONCURRENCY users,
# PROMPTS requests), runs `vllm bench serve --save-result --save-detailed` and
# `pilot characterize`, imports vLLM's result with `pilot dataset import vllm-bench` (so both
# sides' numbers come out of pilot's one metric definition, recomputed from vLLM's own
# per-request timings), and writes a table of TTFT, TPOT and ITL at p50 and p99 from each tool
# with the relative difference, to $OUT/agreement.md and stdout.
#
# Needs: a built pilot (PILOT, default target/debug/pilot or $CARGO_TARGET_DIR/debug/pilot),
# `vllm` on PATH or VLLM (vLLM 0.34: `vllm bench serve`), python3, and a tokenizer directory for
# vLLM's client (TOKENIZER, default: made here with the `tokenizers` package of VLLM's Python:
# one token per printable ASCII character, as the embedded engine counts bytes).
#
#   bench/agreement.sh                      # defaults below
#   MODEL=small-llama CONCURRENCY=8 PROMPTS=400 RUNS=3 bench/agreement.sh
#   SERVER_CPUS=0 CLIENT_CPUS=1 bench/agreement.sh   # server and clients on their own cores
#
# The server's speed sets every latency, so the two tools must not compete with it (or with
# other work) for CPU: on a small machine, pin the server and the clients to separate cores.
set -euo pipefail

MODEL=${MODEL:-tiny-llama}
INPUT=${INPUT:-128}
OUTPUT=${OUTPUT:-64}
CONCURRENCY=${CONCURRENCY:-4}
PROMPTS=${PROMPTS:-200}
RUNS=${RUNS:-1}
PORT=${PORT:-8199}
OUT=${OUT:-bench/agreement-out}
PILOT=${PILOT:-${CARGO_TARGET_DIR:-target}/debug/pilot}
VLLM=${VLLM:-vllm}
PYTHON=${PYTHON:-$(dirname "$(command -v "$VLLM")")/python3}
[ -x "$PYTHON" ] || PYTHON=python3

SERVER_CPUS=${SERVER_CPUS:-}
CLIENT_CPUS=${CLIENT_CPUS:-}
# Runs "$@" on the CPUs $1 names (taskset), or anywhere when $1 is empty.
pin() {
  local cpus=$1; shift
  if [ -n "$cpus" ]; then taskset -c "$cpus" "$@"; else "$@"; fi
}

mkdir -p "$OUT"
if [ -z "${TOKENIZER:-}" ]; then
  TOKENIZER=$OUT/tokenizer
  mkdir -p "$TOKENIZER"
  "$PYTHON" - "$TOKENIZER" <<'PY'
import json, sys
from tokenizers import Tokenizer, decoders, models
vocab = {"<unk>": 0}
for c in range(32, 127):
    vocab[chr(c)] = len(vocab)
tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
tok.decoder = decoders.Fuse()
tok.save(f"{sys.argv[1]}/tokenizer.json")
json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "<unk>",
           "model_max_length": 1 << 20}, open(f"{sys.argv[1]}/tokenizer_config.json", "w"))
PY
fi

# Started directly (not through `pin`), so that $! is the server itself and the trap stops it.
if [ -n "$SERVER_CPUS" ]; then
  taskset -c "$SERVER_CPUS" "$PILOT" serve --model "$MODEL" --port "$PORT" > "$OUT/serve.log" 2>&1 &
else
  "$PILOT" serve --model "$MODEL" --port "$PORT" > "$OUT/serve.log" 2>&1 &
fi
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/v1/models" > /dev/null && break
  sleep 0.2
done
# A server that did not start (the port taken by another) must not let the tools measure
# whatever else answers there.
if ! kill -0 "$SERVER" 2>/dev/null; then
  echo "pilot serve did not start:" >&2
  tail -3 "$OUT/serve.log" >&2
  exit 1
fi
SERVED=$(curl -sf "http://127.0.0.1:$PORT/v1/models" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')

run_vllm() {
  pin "$CLIENT_CPUS" "$VLLM" bench serve --backend vllm --base-url "http://127.0.0.1:$PORT" --model "$SERVED" \
    --tokenizer "$TOKENIZER" --dataset-name random --random-input-len "$INPUT" \
    --random-output-len "$OUTPUT" --random-range-ratio 0 --ignore-eos \
    --max-concurrency "$CONCURRENCY" --num-prompts "$PROMPTS" --seed "$1" \
    --percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,99 \
    --save-result --save-detailed --result-dir "$OUT" --result-filename "vllm-$1.json" \
    > "$OUT/vllm-$1.log" 2>&1
  "$PILOT" dataset import vllm-bench "$OUT/vllm-$1.json" --gpu H100 --gpus 1 \
    --engine pilot -o "$OUT/vllm-$1.csv" --overwrite > /dev/null 2>&1
}
run_pilot() {
  rm -rf "$OUT/pilot-$1"
  pin "$CLIENT_CPUS" "$PILOT" characterize --endpoint "http://127.0.0.1:$PORT" --model "$SERVED" \
    --users "$CONCURRENCY" --num-prompts "$PROMPTS" --input-tokens "$INPUT" \
    --output-tokens "$OUTPUT" --warmup 1s --duration 600s --seed "$1" -q \
    --out "$OUT/pilot-$1" > "$OUT/pilot-$1.log" 2>&1
}
# The two tools take turns going first, so that a drift of the server's speed (a shared
# machine) does not always favour the same one.
for run in $(seq 1 "$RUNS"); do
  if [ $((run % 2)) = 1 ]; then run_vllm "$run"; run_pilot "$run"
  else run_pilot "$run"; run_vllm "$run"; fi
done

"$PYTHON" - "$OUT" "$RUNS" "$MODEL" "$INPUT" "$OUTPUT" "$CONCURRENCY" "$PROMPTS" <<'PY' | tee "$OUT/agreement.md"
import csv, glob, sys
out, runs, model, i, o, c, n = sys.argv[1:]
def row(path):
    with open(path) as f:
        return next(csv.DictReader(f))
print(f"Agreement of `pilot characterize` with `vllm bench serve` (vLLM 0.34): pilot serve "
      f"--model {model}, {i} input / {o} output tokens, {c} concurrent users, {n} prompts.\n")
print("| run | metric | vLLM ms | pilot ms | pilot vs vLLM |")
print("|---|---|---|---|---|")
worst = 0.0
for r in range(1, int(runs) + 1):
    v = row(f"{out}/vllm-{r}.csv")
    p = row(glob.glob(f"{out}/pilot-{r}/**/summary.csv", recursive=True)[0])
    for m in ["ttft", "tpot", "itl"]:
        for q in ["p50", "p99"]:
            col = f"{m}_ms_{q}"
            a, b = float(v[col]), float(p[col])
            d = (b - a) / a if a else float("nan")
            worst = max(worst, abs(d))
            print(f"| {r} | {m.upper()} {q} | {a:.3f} | {b:.3f} | {d:+.1%} |")
print(f"\nLargest difference: {worst:.1%} ({'within' if worst <= 0.10 else 'NOT within'} 10%).")
PY
