"""What pinning one CPU code path (rmroute.harness.determinism) costs and changes, side by side in one run.

For each mode (``pinned``: the default, AVX2 everywhere; ``native``: RMROUTE_NATIVE_CPU=1, the
libraries' own choice for this CPU) a fresh process encodes the same texts with the offline router's
MiniLM encoder (configs/offline-cpu.yaml) and runs a float64 numpy matmul, repeating each timing;
the report gives medians, the native/pinned time ratio, and whether the output bits agree.

    .venv/bin/python benchmarks/cpu_determinism.py [--texts 256] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

WORKER = r"""
import hashlib, json, statistics, sys, time
import rmroute.harness  # pins (or not, under RMROUTE_NATIVE_CPU=1) before numpy and torch load
import numpy as np
from rmroute.harness.determinism import profile
from rmroute.harness.pipelines.offline import load_offline_config, make_featurizer
from rmroute.harness.reference_slice import OFFLINE_CONFIG, WORDS

n, repeats = int(sys.argv[1]), int(sys.argv[2])
_, cfg = load_offline_config(OFFLINE_CONFIG)
enc = make_featurizer(cfg).encoder
texts = [" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(5 + i % 60)) for i in range(n)]
enc.encode(texts[:8])  # load the model outside the timing
times, out = [], None
for _ in range(repeats):
    t0 = time.perf_counter()
    out = enc.encode(texts)
    times.append(time.perf_counter() - t0)
rng = np.random.default_rng(0)
a, b = rng.normal(size=(600, 384)), rng.normal(size=(384, 600))
mm = []
for _ in range(repeats):
    t0 = time.perf_counter()
    c = a @ b
    mm.append(time.perf_counter() - t0)
print(json.dumps({"profile": profile(), "encode_s": statistics.median(times), "matmul_s": statistics.median(mm),
                  "encode_sha": hashlib.sha256(out.tobytes()).hexdigest()[:16],
                  "matmul_sha": hashlib.sha256(c.tobytes()).hexdigest()[:16]}))
"""


def run_mode(native: bool, n: int, repeats: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RMROUTE_NATIVE_CPU"}
    if native:
        env["RMROUTE_NATIVE_CPU"] = "1"
    proc = subprocess.run([sys.executable, "-c", WORKER, str(n), str(repeats)], cwd=REPO, env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    pinned = run_mode(False, args.texts, args.repeats)
    native = run_mode(True, args.texts, args.repeats)
    print(f"{'mode':8} {'profile':16} {'encode s (median)':>18} {'matmul ms (median)':>19}  encode sha        matmul sha")
    for name, r in (("pinned", pinned), ("native", native)):
        print(f"{name:8} {r['profile']:16} {r['encode_s']:18.3f} {1000 * r['matmul_s']:19.2f}  {r['encode_sha']}  {r['matmul_sha']}")
    print(f"native / pinned time: encode {native['encode_s'] / pinned['encode_s']:.2f}, "
          f"matmul {native['matmul_s'] / pinned['matmul_s']:.2f}")
    print(f"same bits: encode {pinned['encode_sha'] == native['encode_sha']}, matmul {pinned['matmul_sha'] == native['matmul_sha']}")


if __name__ == "__main__":
    main()
