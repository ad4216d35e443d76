"""BayesianRouter's offline stage: a multi-task router that learns one vector per RM (torch).

Input: the raw pair feature f = [(h1 + h2)/2 ; |h1 - h2|] of a frozen text encoder
(``rmroute.routers.featurize``; computed once through the embedding cache). Trained here: the projection

    x = normalize(LayerNorm(ReLU(W·f + w0)))                        (d dims, unit length)

and, per RM k, one vector per head:

    BT             s_k = bt_scale · cos(x, e_k)
                   L_bt = Σ w_p softplus(-(s_i - s_j)) / Σ w_p over every (pair, i, j) with RM i right
                   and RM j wrong on the same pair (pairs where all RMs are right or all are wrong
                   contribute nothing). w_p = 1, or the pairwise balancing weight (below).
    classification logit_k = cls_scale · cos(x, c_k) + b_k  (cosine + bias, as the released code)
                   L_cls = Σ w BCE(logit_k, [RM k right]) / Σ w over (pair, k)
    regression     pred_k = reg_scale · cos(x, r_k) + a_k
                   L_reg = mean |pred_k - y_k| over (pair, k) with a margin, y_k = gold · m_k / σ_k:
                   RM k's margin signed towards the gold response (the pair feature is symmetric in A
                   and B, so only a gold-signed target is learnable) divided by the population std σ_k
                   of RM k's margins on the training part (RMs' score scales differ by orders).

    L = λ_bt L_bt + λ_cls L_cls + λ_reg L_reg          (default λ = (1, 0, 0): the released config)

Labels: RM k is right on a pair when sign(margin_k) == gold; a tie (0) or an abstention
(NaN) is not right. Unlabelled pairs (gold 0) are dropped.

Label balancing (off by default; ``balance_bt`` / ``balance_cls``):
* BT, pairwise: with n_ij = #(pairs where i right and j wrong), a (i right, j wrong) triple weighs
  min(n_ij, n_ji) / n_ij, so for every two RMs both directions carry the same total weight and every
  RM's weighted wins equal its weighted losses (the released data prep reaches per-RM win = loss by
  deleting surplus triples; this keeps all data and balances each RM pair). It removes the global
  "RM i is better on average" signal, so the router must find it in the context.
* classification: per RM, right and wrong labels weigh n/(2·n_right) and n/(2·n_wrong) (the released
  prep subsamples to equal counts instead).

Routing: argmax_k s_k of the BT head (or of the classification / regression head when the BT weight
is 0; ``route_head``). Routing accuracy = share of pairs where the chosen RM is right, over pairs
where at least one RM is right. Early stopping keeps the epoch with the best routing accuracy on a
held-out validation part of the training split (ties: lower validation loss).

The bundle (``save_bundle`` / :class:`OfflineBundle`): ``model.safetensors`` (projection, LayerNorm,
RM vectors) + ``bundle.json`` (featurizer and encoder identity, dims, RM names in arm order, training
data hash, config, metrics, seed). ``prior_means()`` returns the BT vectors normalized to unit length,
e_k/‖e_k‖, in the space of x: then μ0_kᵀx = cos(x, e_k), so the BayesianRouter prior mean scores
contexts exactly as the offline router does (up to the positive constant bt_scale).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from rmroute.harness.analysis import correct, oracle_right, routed_right
from rmroute.harness.core.errors import RmrouteError
from rmroute.harness.core.plugins import create
from rmroute.harness.determinism import fixed_threads
from rmroute.harness.devices import pick_device

BUNDLE_SCHEMA = 1
BUNDLE_KIND = "rmroute-offline-router"
HEADS = ("bt", "cls", "reg")


class BundleError(RmrouteError, ValueError):
    """A bundle is missing, corrupt, or does not fit the pool / featurizer it is used with."""


# ---- labels -----------------------------------------------------------------------------------
def right_matrix(margins: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(N, K) bool: RM k is right on pair n (:func:`rmroute.harness.analysis.correct`: its margin has the
    gold sign; 0 and NaN are not right), and no RM is right on an unlabelled pair (gold 0), where
    ``correct`` alone would count a tie as right."""
    g = np.asarray(gold)
    return correct(margins, g) & (g != 0)[:, None]


def bt_triples(right: np.ndarray) -> np.ndarray:
    """(P, 3) int64 rows (pair, i, j) for every RM i right and RM j wrong on the same pair.

    Pairs where every RM is right, or every RM is wrong, give none. Order: by pair, then i, then j.
    """
    r = np.asarray(right, dtype=bool)
    mask = r[:, :, None] & ~r[:, None, :]  # (N, K, K): i right, j wrong
    return np.argwhere(mask).astype(np.int64)


def bt_balance_weights(triples: np.ndarray, n_rms: int) -> np.ndarray:
    """Pairwise balancing: weight min(n_ij, n_ji) / n_ij for a (·, i, j) triple."""
    t = np.asarray(triples, dtype=np.int64).reshape(-1, 3)
    n = np.zeros((n_rms, n_rms))
    np.add.at(n, (t[:, 1], t[:, 2]), 1.0)
    low = np.minimum(n, n.T)
    w = np.divide(low, n, out=np.zeros_like(n), where=n > 0)
    return w[t[:, 1], t[:, 2]]


def cls_balance_weights(right: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(N, K) weights: per RM, right labels weigh n/(2·n_right), wrong ones n/(2·n_wrong); 0 where not valid.

    An RM that is always right (or always wrong) keeps weight 1 on its labels.
    """
    r = np.asarray(right, dtype=bool)
    v = np.ones_like(r) if valid is None else np.asarray(valid, dtype=bool)
    n = v.sum(0).astype(np.float64)
    pos = (r & v).sum(0).astype(np.float64)
    neg = n - pos
    both = (pos > 0) & (neg > 0)
    w_pos = np.where(both, n / (2 * np.maximum(pos, 1)), 1.0)
    w_neg = np.where(both, n / (2 * np.maximum(neg, 1)), 1.0)
    return np.where(v, np.where(r, w_pos, w_neg), 0.0)


def margin_scales(margins: np.ndarray) -> np.ndarray:
    """(K,) population std of each RM's non-NaN margins; 1 where it is not > 1e-12 or there are none."""
    m = np.asarray(margins, dtype=np.float64)
    out = np.ones(m.shape[1])
    for k in range(m.shape[1]):
        col = m[:, k][~np.isnan(m[:, k])]
        if col.size:
            s = float(col.std())
            out[k] = s if s > 1e-12 else 1.0
    return out


def reg_targets(margins: np.ndarray, gold: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """(N, K) y = gold · margin / scale; NaN where the RM abstained or the pair is unlabelled."""
    m = np.asarray(margins, dtype=np.float64)
    g = np.asarray(gold, dtype=np.float64)[:, None]
    y = g * m / np.asarray(scales, dtype=np.float64)[None, :]
    return np.where(g == 0, np.nan, y)


def routing_accuracy(right: np.ndarray, arms: np.ndarray) -> float:
    """Share of pairs where the chosen RM is right, over pairs where at least one RM is right."""
    r = np.asarray(right, dtype=bool)
    some = oracle_right(r)
    if not some.any():
        return float("nan")
    return float(routed_right(r, np.asarray(arms, dtype=np.int64))[some].mean())


# ---- losses (torch tensors in, scalar tensor out) ----------------------------------------------
def bt_loss(scores, triples, weights=None):
    """Σ w softplus(-(s[p, i] - s[p, j])) / Σ w over the (p, i, j) triples; 0 when there are none."""
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(triples, dtype=torch.long).reshape(-1, 3)
    if t.shape[0] == 0:
        return scores.sum() * 0.0
    diff = scores[t[:, 0], t[:, 1]] - scores[t[:, 0], t[:, 2]]
    w = torch.ones_like(diff) if weights is None else torch.as_tensor(weights, dtype=scores.dtype)
    total = w.sum()
    if float(total) <= 0:
        return scores.sum() * 0.0
    return (w * F.softplus(-diff)).sum() / total


def cls_loss(logits, right, weights=None):
    """Σ w BCE-with-logits(logit, right) / Σ w over (pair, RM); 0 when every weight is 0."""
    import torch
    import torch.nn.functional as F

    y = torch.as_tensor(right, dtype=logits.dtype)
    w = torch.ones_like(logits) if weights is None else torch.as_tensor(weights, dtype=logits.dtype)
    total = w.sum()
    if float(total) <= 0:
        return logits.sum() * 0.0
    return (w * F.binary_cross_entropy_with_logits(logits, y, reduction="none")).sum() / total


def reg_loss(pred, target):
    """mean |pred - target| over the entries where target is not NaN; 0 when there are none."""
    import torch

    y = torch.as_tensor(target, dtype=pred.dtype)
    ok = ~torch.isnan(y)
    if not bool(ok.any()):
        return pred.sum() * 0.0
    return (pred[ok] - y[ok]).abs().mean()


# ---- the network ------------------------------------------------------------------------------
def _make_net(in_dim: int, dim: int, n_rms: int, scales: dict[str, float], rng: np.random.Generator | None):
    import torch
    from torch import nn

    class OfflineRouterNet(nn.Module):
        """x = normalize(LayerNorm(ReLU(W f + w0))); per-RM vectors for the BT, cls and reg heads."""

        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(in_dim, dim)
            self.ln = nn.LayerNorm(dim)
            self.bt = nn.Parameter(torch.zeros(n_rms, dim))
            self.cls = nn.Parameter(torch.zeros(n_rms, dim))
            self.cls_bias = nn.Parameter(torch.zeros(n_rms))
            self.reg = nn.Parameter(torch.zeros(n_rms, dim))
            self.reg_bias = nn.Parameter(torch.zeros(n_rms))
            self.scales = dict(scales)

        def contexts(self, f):
            h = self.ln(torch.relu(self.proj(f)))
            return torch.nn.functional.normalize(h, p=2, dim=1)

        def heads(self, x):
            def cos(v):
                return x @ torch.nn.functional.normalize(v, p=2, dim=1).T

            return (
                self.scales["bt"] * cos(self.bt),
                self.scales["cls"] * cos(self.cls) + self.cls_bias,
                self.scales["reg"] * cos(self.reg) + self.reg_bias,
            )

    net = OfflineRouterNet()
    if rng is not None:  # seeded init from numpy (no global torch state): PyTorch's own default ranges
        bound = 1.0 / math.sqrt(in_dim)
        vec = 1.0 / math.sqrt(dim)
        init = {
            "proj.weight": rng.uniform(-bound, bound, size=(dim, in_dim)),
            "proj.bias": rng.uniform(-bound, bound, size=dim),
            "bt": rng.uniform(-vec, vec, size=(n_rms, dim)),
            "cls": rng.uniform(-vec, vec, size=(n_rms, dim)),
            "reg": rng.uniform(-vec, vec, size=(n_rms, dim)),
        }
        with torch.no_grad():
            for name, p in net.named_parameters():
                if name in init:
                    p.copy_(torch.as_tensor(init[name], dtype=p.dtype))
    return net


# ---- training ---------------------------------------------------------------------------------
@dataclass
class OfflineTrainSettings:
    """Everything that shapes an offline router training run (``rmroute.harness.pipelines.offline``
    maps an offline config onto this)."""

    dim: int | None = None  # d; None = the encoder's width (feature width / 2), as the released code
    heads: dict[str, float] = field(default_factory=lambda: {"bt": 1.0, "cls": 0.0, "reg": 0.0})
    route_head: str = "auto"  # auto | bt | cls | reg
    bt_scale: float = 1.0
    cls_scale: float = 1.0
    reg_scale: float = 1.0
    balance_bt: bool = False
    balance_cls: bool = False
    val_fraction: float = 0.2
    epochs: int = 100
    patience: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    device: str = "cpu"
    threads: int = 1  # torch CPU threads while training (restored after); 0 = leave torch's setting

    def __post_init__(self) -> None:
        bad = set(self.heads) - set(HEADS)
        if bad:
            raise ValueError(f"offline router: unknown head(s) {sorted(bad)}; heads are {', '.join(HEADS)}")
        self.heads = {h: float(self.heads.get(h, 0.0)) for h in HEADS}
        if any(v < 0 or not math.isfinite(v) for v in self.heads.values()) or not any(self.heads.values()):
            raise ValueError(f"offline router: head weights must be finite, >= 0, and not all 0; got {self.heads}")
        if self.route_head not in ("auto",) + HEADS:
            raise ValueError(f"offline router: route_head must be auto, bt, cls or reg; got {self.route_head!r}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"offline router: val_fraction must be in (0, 1), got {self.val_fraction}")

    def routing_head(self) -> str:
        if self.route_head != "auto":
            return self.route_head
        return next(h for h in HEADS if self.heads[h] > 0)


@dataclass
class TrainResult:
    net: Any
    settings: OfflineTrainSettings
    seed: int
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    train_idx: np.ndarray
    val_idx: np.ndarray
    margin_scales: np.ndarray


def split_indices(n: int, val_fraction: float, rng: np.random.Generator, strata: Sequence[str] | None = None):
    """(train, val) index arrays; stratified by ``strata`` (e.g. domains) when given; val gets at least 1 per stratum of >= 2."""
    groups: dict[str, list[int]] = {}
    for i in range(n):
        groups.setdefault(strata[i] if strata is not None else "", []).append(i)
    train, val = [], []
    for key in sorted(groups):
        idx = np.array(groups[key])
        idx = idx[rng.permutation(idx.size)]
        n_val = int(round(val_fraction * idx.size))
        if idx.size >= 2:
            n_val = min(max(n_val, 1), idx.size - 1)
        else:
            n_val = 0
        val.extend(idx[:n_val].tolist())
        train.extend(idx[n_val:].tolist())
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(val, dtype=np.int64))


def train_offline_router(
    features: np.ndarray,
    margins: np.ndarray,
    gold: np.ndarray,
    settings: OfflineTrainSettings | None = None,
    seed: int = 0,
    strata: Sequence[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train projection + heads on precomputed pair features (N, F), margins (N, K), gold (N,) in {+1, -1, 0}.

    The matrices are small, so one CPU thread is fastest (several threads mostly fight each other and
    any other process on the machine); ``settings.threads`` sets it for the duration of the call.
    """
    s = settings or OfflineTrainSettings()
    with fixed_threads(s.threads or None):
        return _train(features, margins, gold, s, seed, strata, log)


def _train(features, margins, gold, s: OfflineTrainSettings, seed: int, strata, log) -> TrainResult:
    import torch

    f = np.asarray(features, dtype=np.float32)
    m = np.asarray(margins, dtype=np.float64)
    g = np.asarray(gold, dtype=np.int64)
    if f.ndim != 2 or m.ndim != 2 or f.shape[0] != m.shape[0] or g.shape != (f.shape[0],):
        raise ValueError(f"offline router: features (N, F), margins (N, K), gold (N,) must agree; got {f.shape}, {m.shape}, {g.shape}")
    if not np.isfinite(f).all():
        raise ValueError("offline router: features contain NaN/inf")
    if np.isinf(m).any():
        raise ValueError("offline router: margins contain ±inf (abstain with NaN)")
    keep = g != 0
    f, m, g = f[keep], m[keep], g[keep]
    strata = None if strata is None else [x for x, k in zip(strata, keep) if k]
    n, K = m.shape
    if n < 2:
        raise ValueError(f"offline router: need at least 2 labelled pairs, got {n}")
    rng = np.random.default_rng(seed)
    train_idx, val_idx = split_indices(n, s.val_fraction, rng, strata)
    dim = int(s.dim) if s.dim else max(1, f.shape[1] // 2)
    right = right_matrix(m, g)
    scales = margin_scales(m[train_idx])
    y_reg = reg_targets(m, g, scales)

    triples_all = bt_triples(right[train_idx])  # local to the train part
    w_bt_all = bt_balance_weights(triples_all, K) if s.balance_bt else np.ones(len(triples_all))
    w_cls = cls_balance_weights(right[train_idx]) if s.balance_cls else np.ones((train_idx.size, K))

    device = torch.device(pick_device(s.device))
    net = _make_net(f.shape[1], dim, K, {"bt": s.bt_scale, "cls": s.cls_scale, "reg": s.reg_scale}, rng).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    F_all = torch.as_tensor(f, device=device)
    head = HEADS.index(s.routing_head())

    # triples grouped by (train-local) pair, for mini-batching
    order_t = np.argsort(triples_all[:, 0], kind="stable")
    triples_all, w_bt_all = triples_all[order_t], w_bt_all[order_t]
    starts = np.searchsorted(triples_all[:, 0], np.arange(train_idx.size + 1))

    def loss_on(feats_idx: np.ndarray, tri: np.ndarray, w_tri: np.ndarray, wc: np.ndarray):
        x = net.contexts(F_all[torch.as_tensor(feats_idx, device=device)])
        s_bt, logit, pred = net.heads(x)
        total = s_bt.sum() * 0.0
        parts = {}
        if s.heads["bt"]:
            parts["bt"] = bt_loss(s_bt, torch.as_tensor(tri, device=device), torch.as_tensor(w_tri, device=device, dtype=s_bt.dtype))
            total = total + s.heads["bt"] * parts["bt"]
        if s.heads["cls"]:
            parts["cls"] = cls_loss(logit, torch.as_tensor(right[feats_idx], device=device), torch.as_tensor(wc, device=device))
            total = total + s.heads["cls"] * parts["cls"]
        if s.heads["reg"]:
            parts["reg"] = reg_loss(pred, torch.as_tensor(y_reg[feats_idx], device=device))
            total = total + s.heads["reg"] * parts["reg"]
        return total, parts

    def evaluate(idx: np.ndarray) -> tuple[float, float]:
        with torch.no_grad():
            net.eval()
            x = net.contexts(F_all[torch.as_tensor(idx, device=device)])
            out = net.heads(x)[head].cpu().numpy()
            tri = bt_triples(right[idx])
            w_tri = bt_balance_weights(tri, K) if s.balance_bt else np.ones(len(tri))
            wc = cls_balance_weights(right[idx]) if s.balance_cls else np.ones((idx.size, K))
            loss, _ = loss_on(idx, tri, w_tri, wc)
            net.train()
        return routing_accuracy(right[idx], np.argmax(out, axis=1)), float(loss)

    history: list[dict[str, float]] = []
    best = (-1.0, math.inf)
    best_state, best_epoch, bad_epochs = None, -1, 0
    t0 = time.perf_counter()
    for epoch in range(int(s.epochs)):
        perm = rng.permutation(train_idx.size)
        losses = []
        for start in range(0, perm.size, int(s.batch_size)):
            local = np.sort(perm[start : start + int(s.batch_size)])
            pos = {int(p): r for r, p in enumerate(local)}
            sel = np.concatenate([np.arange(starts[p], starts[p + 1]) for p in local]) if local.size else np.zeros(0, int)
            tri = triples_all[sel].copy()
            tri[:, 0] = [pos[int(p)] for p in tri[:, 0]]
            loss, _ = loss_on(train_idx[local], tri, w_bt_all[sel], w_cls[local])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        val_acc, val_loss = evaluate(val_idx if val_idx.size else train_idx)
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else float("nan"),
                        "val_acc": val_acc, "val_loss": val_loss})
        if log:
            log(f"[offline] seed {seed} epoch {epoch}: train loss {history[-1]['train_loss']:.4f}, "
                f"val loss {val_loss:.4f}, val routing acc {val_acc:.4f}")
        score = (val_acc if math.isfinite(val_acc) else 0.0, val_loss if math.isfinite(val_loss) else 0.0)
        if score[0] > best[0] + 1e-12 or (abs(score[0] - best[0]) <= 1e-12 and score[1] < best[1]):
            best, best_epoch, bad_epochs = score, epoch, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            bad_epochs += 1
            if bad_epochs >= int(s.patience):
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    train_acc, train_loss = evaluate(train_idx)
    metrics = {
        "best_epoch": best_epoch, "epochs_run": len(history), "val_routing_accuracy": best[0],
        "val_loss": best[1], "train_routing_accuracy": train_acc, "train_loss": train_loss,
        "n_train": int(train_idx.size), "n_val": int(val_idx.size), "n_bt_triples": int(len(triples_all)),
        "train_s": time.perf_counter() - t0,
    }
    net.eval()
    return TrainResult(net.cpu(), s, int(seed), metrics, history, train_idx, val_idx, scales)


# ---- bundles ----------------------------------------------------------------------------------
TENSORS = ("proj.weight", "proj.bias", "ln.weight", "ln.bias", "bt", "cls", "cls_bias", "reg", "reg_bias")


def bundle_data_sha256(features_identity: str, pair_ids: Sequence[str], margins: np.ndarray, gold: np.ndarray, rm_names: Sequence[str]) -> str:
    """Hash of what a bundle was trained on: featurizer identity, pair ids, margins, gold, RM names."""
    h = hashlib.sha256()
    h.update(json.dumps([features_identity, list(pair_ids), list(rm_names)], ensure_ascii=False).encode())
    h.update(np.ascontiguousarray(np.asarray(margins, dtype=np.float64)).tobytes())
    h.update(np.ascontiguousarray(np.asarray(gold, dtype=np.int64)).tobytes())
    return h.hexdigest()


def save_bundle(
    path: str | Path,
    result: TrainResult,
    rm_names: Sequence[str],
    featurizer: dict[str, Any],
    data_hash: str,
    config: dict[str, Any] | None = None,
    extra_metrics: dict[str, Any] | None = None,
) -> Path:
    """Write ``model.safetensors`` + ``bundle.json`` into the folder ``path`` (each file atomically).

    ``featurizer`` = {"name", "params", "identity"}: how to rebuild the context features.
    """
    from safetensors.torch import save_file

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    sd = result.net.state_dict()
    tensors = {k: sd[k].detach().cpu().float().contiguous() for k in TENSORS}
    K, d = tensors["bt"].shape
    if len(rm_names) != K:
        raise BundleError(f"save_bundle: {len(rm_names)} RM names for {K} RM vectors")
    tmp = folder / ".model.safetensors.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, folder / "model.safetensors")
    meta = {
        "schema": BUNDLE_SCHEMA, "kind": BUNDLE_KIND,
        "featurizer": featurizer,
        "dims": {"in_dim": int(tensors["proj.weight"].shape[1]), "dim": int(d), "n_rms": int(K)},
        "rm_names": list(rm_names),
        "data_sha256": data_hash,
        "settings": asdict(result.settings),
        "routing_head": result.settings.routing_head(),
        "margin_scales": result.margin_scales.tolist(),
        "config": config or {},
        "metrics": {**result.metrics, **(extra_metrics or {})},
        "history": result.history,
        "seed": result.seed,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tmp = folder / ".bundle.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2, default=float) + "\n", encoding="utf-8")
    os.replace(tmp, folder / "bundle.json")
    return folder


class OfflineBundle:
    """A trained offline router, loaded from a bundle folder (numpy float64 maths, no torch needed).

    ``rm_names`` (arm order), ``dim`` (d of x), ``in_dim`` (feature width), ``prior_means()``,
    ``features_to_contexts(F)``, ``contexts(prompts, a, b)``, ``scores(X)``, ``argmax(X)``,
    ``check_pool(names)``.
    """

    def __init__(self, path: Path, meta: dict[str, Any], tensors: dict[str, np.ndarray], featurizer: Any = None) -> None:
        self.path, self.meta, self.tensors = path, meta, tensors
        self.rm_names: list[str] = list(meta["rm_names"])
        self.dim: int = int(meta["dims"]["dim"])
        self.in_dim: int = int(meta["dims"]["in_dim"])
        self.seed: int = int(meta.get("seed", 0))
        if featurizer is not None:
            self._check_featurizer(featurizer)
        self._featurizer = featurizer

    @classmethod
    def load(cls, path: str | Path, featurizer: Any = None) -> "OfflineBundle":
        """Load a bundle folder; ``featurizer`` overrides the one the bundle names (it must have the same identity)."""
        from safetensors.numpy import load_file

        folder = Path(path)
        meta_path, model_path = folder / "bundle.json", folder / "model.safetensors"
        if not meta_path.is_file() or not model_path.is_file():
            raise BundleError(f"{folder}: not an offline-router bundle (needs bundle.json and model.safetensors)")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise BundleError(f"{meta_path}: not valid JSON: {exc}") from None
        if meta.get("kind") != BUNDLE_KIND or meta.get("schema") != BUNDLE_SCHEMA:
            raise BundleError(f"{meta_path}: kind {meta.get('kind')!r} schema {meta.get('schema')!r}; "
                              f"expected {BUNDLE_KIND!r} schema {BUNDLE_SCHEMA}")
        raw = load_file(str(model_path))
        missing = [k for k in TENSORS if k not in raw]
        if missing:
            raise BundleError(f"{model_path}: missing tensors {missing}")
        tensors = {k: raw[k].astype(np.float64) for k in TENSORS}
        K, d = tensors["bt"].shape
        if (K, d) != (len(meta["rm_names"]), meta["dims"]["dim"]) or tensors["proj.weight"].shape != (d, meta["dims"]["in_dim"]):
            raise BundleError(f"{folder}: tensor shapes do not match bundle.json dims {meta['dims']} / {len(meta['rm_names'])} RMs")
        return cls(folder, meta, tensors, featurizer)

    # ---- pool and featurizer checks --------------------------------------------------------
    def check_pool(self, names: Sequence[str]) -> None:
        """Refuse a pool whose RM names (in arm order) differ from the bundle's."""
        names = list(names)
        if names != self.rm_names:
            why = "the same RMs in a different order" if sorted(names) == sorted(self.rm_names) else "different RMs"
            raise BundleError(
                f"offline bundle {self.path} was trained on RMs {self.rm_names} but the pool has {names} "
                f"({why}); retrain the bundle on this pool (rmroute offline train) or use the matching pool"
            )

    @property
    def featurizer(self) -> Any:
        if self._featurizer is None:
            spec = self.meta["featurizer"]
            self._featurizer = create("featurizer", spec["name"], **spec.get("params", {}))
        self._check_featurizer(self._featurizer)
        return self._featurizer

    @featurizer.setter
    def featurizer(self, value: Any) -> None:
        self._check_featurizer(value)
        self._featurizer = value

    def _check_featurizer(self, feat: Any) -> None:
        if getattr(feat, "dim", None) != self.in_dim:
            raise BundleError(f"offline bundle {self.path}: featurizer gives {getattr(feat, 'dim', None)} dims, the bundle needs {self.in_dim}")
        want = self.meta["featurizer"].get("identity")
        ident = getattr(feat, "identity", None)
        got = ident() if callable(ident) else ident
        if want and got and want != got:
            raise BundleError(f"offline bundle {self.path}: featurizer identity differs from the one it was trained with:\n"
                              f"  bundle:     {want}\n  featurizer: {got}")

    # ---- maths -------------------------------------------------------------------------------
    def prior_means(self) -> np.ndarray:
        """(K, d) float64 unit BT vectors e_k/‖e_k‖: μ0_kᵀx = cos(x, e_k) for a unit context x."""
        e = self.tensors["bt"]
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)

    def features_to_contexts(self, features: np.ndarray) -> np.ndarray:
        """(B, in_dim) raw pair features -> (B, d) float64 unit contexts x."""
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or f.shape[1] != self.in_dim:
            raise ValueError(f"offline bundle: features must have shape (B, {self.in_dim}), got {f.shape}")
        t = self.tensors
        h = np.maximum(f @ t["proj.weight"].T + t["proj.bias"], 0.0)
        mu = h.mean(axis=1, keepdims=True)
        var = h.var(axis=1, keepdims=True)
        h = (h - mu) / np.sqrt(var + 1e-5) * t["ln.weight"] + t["ln.bias"]  # torch LayerNorm eps 1e-5
        return h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)

    def contexts(self, prompts: Sequence[str], a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """(B, d) float64 contexts x for (prompt, A, B) triples, through the featurizer (and its cache)."""
        return self.features_to_contexts(self.featurizer.embed_pairs(prompts, a, b))

    def scores(self, contexts: np.ndarray, head: str | None = None) -> np.ndarray:
        """(B, K) head outputs for unit contexts (the BT head: cos(x, e_k) · bt_scale)."""
        x = np.asarray(contexts, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"offline bundle: contexts must have shape (B, {self.dim}), got {x.shape}")
        head = head or self.meta.get("routing_head", "bt")
        st = self.meta.get("settings", {})
        t = self.tensors

        def unit(v):
            return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

        if head == "bt":
            return st.get("bt_scale", 1.0) * (x @ unit(t["bt"]).T)
        if head == "cls":
            return st.get("cls_scale", 1.0) * (x @ unit(t["cls"]).T) + t["cls_bias"]
        if head == "reg":
            return st.get("reg_scale", 1.0) * (x @ unit(t["reg"]).T) + t["reg_bias"]
        raise ValueError(f"offline bundle: head must be bt, cls or reg, got {head!r}")

    def argmax(self, contexts: np.ndarray) -> np.ndarray:
        """(B,) int64 arm = argmax_k of the routing head's score (ties: lowest index)."""
        return np.argmax(self.scores(contexts), axis=1).astype(np.int64)
