"""Decisions + updates per second of the linear routers, against the alternatives.

    .venv/bin/python benchmarks/routing_throughput.py            # full grid: K = 4, 8, 32; d = 384, 576, 1024
    .venv/bin/python benchmarks/routing_throughput.py --quick    # K = 4, 8; d = 384
    .venv/bin/python benchmarks/routing_throughput.py --repeats 5 --out /tmp/table.md

One "item" is one decision and then the update with its feedback. Two modes:

* sequential: select one item, update it, next item (B = 1);
* batched:    select a batch of B = 1024 items with one call, then update them with one call.

Implementations (the same posterior maths, float64, same BLAS threads):

* ``bayesian`` (ours):  rmroute.routers.bayesian.BayesianRouter, Σ_k = Λ_k⁻¹ kept by Sherman–Morrison/Woodbury.
* ``laser`` (ours):     rmroute.routers.laser.LaserRouter in per_item mode (per-item LinUCB, α = 1, λ = 1).
* ``naive``:            :class:`NaiveEighBayesian` below: the BayesianRouter posterior computed as the
                        published research code does (gp_router/utils5.py): every decision
                        eigen-decomposes each arm's precision to draw a weight sample, every update
                        eigen-decomposes it again to get μ. It handles items one at a time in both
                        modes (its decisions cannot share work), so it runs on fewer items: at
                        least one, then until ``--budget`` seconds pass; its figures are per-item
                        rates, comparable to the others'.
* ``mabwiser LinTS`` / ``mabwiser LinUCB``: mabwiser's MAB with LearningPolicy.LinTS / LinUCB
                        (α = 1, l2_lambda = 1), fed with fit / partial_fit and predict.

Every figure is the median over ``--repeats`` timed runs of items per second; each run takes at
least one unit (one item, or one batch) and goes on until ``--budget`` seconds have passed.
Before timing, each grid cell checks that our posterior equals the naive one (μ of every arm, Σ
of up to four arms) and mabwiser's LinTS ridge posterior (β and A⁻¹), and prints the largest
relative differences.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rmroute.routers.bayesian import BayesianRouter  # noqa: E402
from rmroute.routers.laser import LaserRouter  # noqa: E402


class NaiveEighBayesian:
    """The straightforward BayesianRouter: eigen-decomposition of Λ_k at every decision and update."""

    def __init__(self, n_arms, dim, prior_mean, prior_precision=1.0, noise=1.0, seed=0, tol_eig=1e-10):
        self.n_arms, self.dim, self.noise, self.tol_eig = n_arms, dim, noise, tol_eig
        self.precision = np.stack([prior_precision * np.eye(dim) for _ in range(n_arms)])
        self.b = prior_precision * np.array(prior_mean, dtype=np.float64)
        self.mu = np.array(prior_mean, dtype=np.float64)
        self.rng = np.random.default_rng(seed)

    def _eig(self, k):
        sym = 0.5 * (self.precision[k] + self.precision[k].T)
        w, Q = np.linalg.eigh(sym)
        return np.maximum(w, self.tol_eig * w.max()), Q

    def select(self, X):
        arms = np.empty(X.shape[0], dtype=np.int64)
        for i, x in enumerate(X):
            scores = np.empty(self.n_arms)
            for k in range(self.n_arms):
                w, Q = self._eig(k)
                z = self.rng.standard_normal(self.dim)
                theta = self.mu[k] + Q @ ((Q.T @ z) / np.sqrt(w))  # a draw from N(μ_k, Λ_k⁻¹)
                scores[k] = theta @ x
            arms[i] = int(np.argmax(scores))
        return arms

    def update(self, X, arms, r):
        for x, k, rk in zip(X, arms, r):
            self.precision[k] += np.outer(x, x) / self.noise
            self.b[k] += (rk / self.noise) * x
            w, Q = self._eig(k)
            self.mu[k] = Q @ ((Q.T @ self.b[k]) / w)

    def cov(self, k):
        w, Q = self._eig(k)
        return (Q / w) @ Q.T


# ---- adapters: select(X) -> arms, update(X, arms, r) -------------------------------------------
class Ours:
    def __init__(self, router):
        self.router = router

    def select(self, X):
        return self.router.select(X).arms

    def update(self, X, arms, r):
        self.router.update(X, arms, r)


class Mab:
    def __init__(self, policy, K, X0, a0, r0):
        from mabwiser.mab import MAB

        self.mab = MAB(arms=list(range(K)), learning_policy=policy, seed=0)
        self.mab.fit(decisions=a0, rewards=r0, contexts=X0)

    def select(self, X):
        return np.atleast_1d(np.asarray(self.mab.predict(X), dtype=np.int64))

    def update(self, X, arms, r):
        self.mab.partial_fit(decisions=arms, rewards=r, contexts=X)


def make_impls(name, K, d, X0, a0, r0, M0):
    from mabwiser.mab import LearningPolicy

    if name == "bayesian":
        impl = Ours(BayesianRouter(K, d, seed=0, prior_mean=M0))
    elif name == "laser":
        impl = Ours(LaserRouter(K, d, seed=0, alpha=1.0, ridge=1.0, mode="per_item"))
    elif name == "naive":
        impl = NaiveEighBayesian(K, d, M0, seed=0)
    elif name == "mab-lints":
        return Mab(LearningPolicy.LinTS(alpha=1.0, l2_lambda=1.0), K, X0, a0, r0)
    elif name == "mab-linucb":
        return Mab(LearningPolicy.LinUCB(alpha=1.0, l2_lambda=1.0), K, X0, a0, r0)
    else:
        raise ValueError(name)
    impl.update(X0, a0, r0)  # the same warm-up data mabwiser is fitted on
    return impl


# ---- timing ------------------------------------------------------------------------------------
def time_run(impl, X, theta, noise, unit, budget):
    """Items per second over whole units of ``unit`` items, at least one unit, until ``budget`` s."""
    n, i, start = X.shape[0], 0, time.perf_counter()
    while True:
        lo = (i * unit) % (n - unit + 1)
        Xb = X[lo:lo + unit]
        arms = impl.select(Xb)
        r = np.einsum("bd,bd->b", Xb, theta[arms]) + noise[lo:lo + unit]
        impl.update(Xb, arms, r)
        i += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget:
            return i * unit / elapsed


def check_posteriors(K, d, rng):
    """Largest relative differences: ours vs naive (μ all arms, Σ ≤ 4 arms), bayesian-online vs LinTS."""
    from mabwiser.mab import MAB, LearningPolicy

    M0 = rng.normal(size=(K, d)) / np.sqrt(d)
    n = 3 * min(K, 4)
    X = rng.normal(size=(n, d)) / np.sqrt(d)
    arms = np.arange(n) % min(K, 4)
    r = rng.normal(size=n)
    ours, naive = BayesianRouter(K, d, prior_mean=M0), NaiveEighBayesian(K, d, M0)
    ours.update(X, arms, r)  # one batched call (Woodbury per arm)
    naive.update(X, arms, r)  # one eigen-decomposition per row
    rel = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))  # noqa: E731
    err_mu = rel(ours.posterior_mean(), naive.mu)
    err_cov = max(rel(ours.posterior_cov()[k], naive.cov(k)) for k in range(min(K, 4)))
    online = BayesianRouter(K, d)
    online.update(X, arms, r)
    mab = MAB(arms=list(range(K)), learning_policy=LearningPolicy.LinTS(alpha=1.0, l2_lambda=1.0), seed=0)
    mab.fit(decisions=arms, rewards=r, contexts=X)
    err_mab = max(
        max(rel(online.posterior_mean()[k], mab._imp.arm_to_model[k].beta),
            rel(online.posterior_cov()[k], mab._imp.arm_to_model[k].A_inv))
        for k in range(min(K, 4))
    )
    return err_mu, err_cov, err_mab


IMPLS = ["bayesian", "naive", "mab-lints", "laser", "mab-linucb"]


def bench_cell(K, d, batch, repeats, budget, seed=0):
    rng = np.random.default_rng(seed)
    n_items = max(4 * batch, 4096)
    X = rng.normal(size=(n_items, d)) / np.sqrt(d)  # unit-scale contexts, like normalized embeddings
    theta = rng.normal(size=(K, d))
    noise = 0.1 * rng.normal(size=n_items)
    X0 = rng.normal(size=(2 * K, d)) / np.sqrt(d)
    a0, r0 = np.arange(2 * K) % K, rng.normal(size=2 * K)
    M0 = rng.normal(size=(K, d)) / np.sqrt(d)
    errs = check_posteriors(K, d, rng)
    rates = {}
    for mode, unit in (("sequential", 1), ("batched", batch)):
        impls = {name: make_impls(name, K, d, X0, a0, r0, M0) for name in IMPLS}
        for name, impl in impls.items():  # warm-up: one unit each (caches, BLAS threads, allocations)
            time_run(impl, X, theta, noise, 1 if name == "naive" else unit, 0.0)
        runs = {name: [] for name in IMPLS}
        for _ in range(repeats):  # interleaved, so drifting machine load hits everyone alike
            for name, impl in impls.items():
                runs[name].append(time_run(impl, X, theta, noise, 1 if name == "naive" else unit, budget))
        rates[mode] = {name: statistics.median(v) for name, v in runs.items()}
    return rates, errs


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    blas = "unknown BLAS"
    try:
        cfg = np.show_config(mode="dicts")
        info = cfg["Build Dependencies"]["blas"]
        blas = f"{info.get('name')} {info.get('version')}"
    except Exception:
        pass
    threads = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or "default"
    return (f"{cpu}, {os.cpu_count()} logical CPUs; Python {platform.python_version()}, numpy {np.__version__} "
            f"({blas}, BLAS threads: {threads}); {platform.system()} {platform.release()}")


def fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small grid: K = 4, 8 and d = 384")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per figure; the median is reported (default 3)")
    p.add_argument("--budget", type=float, default=0.5, help="seconds per timed run, after at least one unit (default 0.5)")
    p.add_argument("--batch", type=int, default=1024, help="batch size of the batched mode (default 1024)")
    p.add_argument("--ks", type=int, nargs="+", help="numbers of arms (overrides the grid)")
    p.add_argument("--ds", type=int, nargs="+", help="context dimensions (overrides the grid)")
    p.add_argument("--out", type=Path, help="also write the markdown table to this file")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.budget < 0 or args.batch < 1:
        p.error("--repeats and --batch must be >= 1 and --budget >= 0")
    ks = args.ks or ([4, 8] if args.quick else [4, 8, 32])
    ds = args.ds or ([384] if args.quick else [384, 576, 1024])

    header = (
        "| K | d | mode | bayesian (ours) | naive eigh | × naive | mabwiser LinTS | × LinTS "
        "| laser (ours) | mabwiser LinUCB | × LinUCB |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines, checks = [header], ["| K | d | μ ours vs naive | Σ ours vs naive | ours vs mabwiser LinTS (β, A⁻¹) |",
                               "|---|---|---:|---:|---:|"]
    print(f"# machine: {machine()}", flush=True)
    print(f"# repeats={args.repeats} budget={args.budget}s batch={args.batch}", flush=True)
    t0 = time.perf_counter()
    for K in ks:
        for d in ds:
            rates, (e_mu, e_cov, e_mab) = bench_cell(K, d, args.batch, args.repeats, args.budget)
            checks.append(f"| {K} | {d} | {e_mu:.1e} | {e_cov:.1e} | {e_mab:.1e} |")
            for mode in ("sequential", "batched"):
                r = rates[mode]
                lines.append(
                    f"| {K} | {d} | {mode} | {fmt(r['bayesian'])} | {fmt(r['naive'])} | "
                    f"{r['bayesian'] / r['naive']:,.0f}× | {fmt(r['mab-lints'])} | {r['bayesian'] / r['mab-lints']:,.1f}× | "
                    f"{fmt(r['laser'])} | {fmt(r['mab-linucb'])} | {r['laser'] / r['mab-linucb']:,.1f}× |"
                )
                print(lines[-1], flush=True)
    table = "\n".join(lines)
    check_table = "\n".join(checks)
    print("\nitems (decision + update) per second, median of repeats; × = ours / theirs\n")
    print(table)
    print("\nlargest relative differences of the posteriors\n")
    print(check_table)
    print(f"\n# total wall time {time.perf_counter() - t0:.0f} s")
    if args.out:
        args.out.write_text(f"{table}\n\n{check_table}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
