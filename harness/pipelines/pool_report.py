"""What a built pool shows: per-domain and per-kind RM accuracy with 95% CIs, tie and abstention
rates, and whether routing can matter (learnable headroom, per-pair signal, oracle against a
shuffled oracle).

Accuracies, the headroom and the per-pair signal use the project's one scoring rule,
:func:`rmroute.harness.analysis.score` (a tie or an abstention scores 0.5); the oracle ("some RM is
right") uses the strict :func:`rmroute.harness.analysis.correct`."""

from __future__ import annotations

from typing import Any

import numpy as np

from rmroute.harness import analysis as A
from rmroute.harness.pipelines.pool import Pool


def pool_report(pool: Pool, seed: int = 0) -> dict[str, Any]:
    """The report of a built pool (JSON-ready): accuracies with CIs, headroom, per-pair signal, oracle gap."""
    rng = np.random.default_rng(seed)
    names = pool.names
    margins_t = pool.margins["test"]
    score_t = A.score(margins_t, pool.gold("test"))
    score_o = A.score(pool.margins["offline"], pool.gold("offline"))
    right_t = A.correct(margins_t, pool.gold("test"))
    dom_t, kind_t = pool.domains("test"), pool.kinds("test")
    abstain_t = np.isnan(margins_t).mean(axis=0)
    tie_t = (margins_t == 0).mean(axis=0)

    overall = [A.accuracy(score_t[:, k]) for k in range(len(names))]
    per_domain = A.per_group_accuracy(score_t, dom_t)
    per_kind = A.per_group_accuracy(score_t, kind_t)

    # learnable headroom: the per-domain best RM chosen on `offline`, applied to `test`
    best_by_domain, global_best = A.domain_best_arms(score_o, pool.domains("offline"))
    arms = np.array([best_by_domain.get(d, global_best) for d in dom_t])
    domain_best = A.routed_right(score_t, arms)
    best_single = int(np.argmax(score_o.mean(axis=0)))  # chosen on `offline` too, like the domain-best arms
    cmp = A.cluster_bootstrap_diff(domain_best - score_t[:, best_single], A.item_ids(pool.splits["test"]), seed=seed)
    diff, lo, hi = cmp.diff, cmp.lo, cmp.hi

    # per-pair signal: within a domain, how much the best RM per construction kind beats the domain's best RM
    signal = {}
    for domain in sorted(set(dom_t)):
        d_idx = np.array([i for i, d in enumerate(dom_t) if d == domain])
        d_best = int(np.argmax(score_t[d_idx].mean(axis=0)))
        rows = {}
        for kind, acc_list in per_kind.items():
            if not kind.startswith(domain + "/"):
                continue
            accs = np.array([a.acc for a in acc_list])
            rows[kind.split("/", 1)[1]] = {
                "best_rm": names[int(np.argmax(accs))], "best_acc": float(accs.max()),
                "domain_best_rm": names[d_best], "domain_best_acc": float(accs[d_best]),
                "gain": float(accs.max() - accs[d_best]), "n": acc_list[0].n,
            }
        accs_by_kind = {k: v["best_acc"] for k, v in rows.items()}
        spread = max(accs_by_kind.values()) - min(accs_by_kind.values()) if accs_by_kind else 0.0
        signal[domain] = {"kinds": rows, "max_gain": max((r["gain"] for r in rows.values()), default=0.0),
                          "best_rm_spread_between_kinds": spread}

    oracle = float(A.oracle_right(right_t).mean())
    shuffled = A.shuffled_oracle(right_t, dom_t, rng)
    weak_domains = [d for d, accs in per_domain.items() if max(a.acc for a in accs) < 0.60]
    return {
        "pool": pool.config.name, "names": names, "n_test": int(right_t.shape[0]),
        "overall": {n: a.__dict__ for n, a in zip(names, overall)},
        "abstain_rate": {n: float(x) for n, x in zip(names, abstain_t)},
        "tie_rate": {n: float(x) for n, x in zip(names, tie_t)},
        "per_domain": {d: {n: a.__dict__ for n, a in zip(names, accs)} for d, accs in per_domain.items()},
        "per_kind": {k: {n: a.__dict__ for n, a in zip(names, accs)} for k, accs in per_kind.items()},
        "headroom": {
            "domain_best_arms": {d: names[k] for d, k in best_by_domain.items()},
            "domain_best_test": A.accuracy(domain_best).__dict__,
            "best_single": names[best_single], "best_single_test": overall[best_single].__dict__,
            "gain": diff, "gain_ci95": [lo, hi],
        },
        "per_pair_signal": signal,
        "oracle": {"test": oracle, "shuffled_within_domain": shuffled, "gap": oracle - shuffled},
        "weak_domains": weak_domains,
        "timings": pool.timings,
        "scoring": _scoring_summary(pool),
    }


def _scoring_summary(pool: Pool) -> dict[str, dict[str, float]]:
    """Per RM, over every scored split: items, newly scored, truncated, seconds, items/s."""
    out: dict[str, dict[str, float]] = {}
    for r in pool.score_reports:
        row = out.setdefault(r.rm, {"items": 0, "scored": 0, "truncated": 0, "wall_s": 0.0})
        row["items"] += r.total
        row["scored"] += r.scored
        row["truncated"] += getattr(r, "truncated", 0)
        row["wall_s"] += r.wall_s
    for row in out.values():
        row["scored_per_s"] = row["scored"] / row["wall_s"] if row["scored"] and row["wall_s"] > 0 else None
    return out


def render_markdown(rep: dict[str, Any]) -> str:
    """:func:`pool_report`'s report as the Markdown `rmroute pool build` writes."""
    names = rep["names"]
    out = [f"Pool `{rep['pool']}`, test split ({rep['n_test']} pairs). Accuracy in % with 95% Wilson CIs; "
           "a tie or an abstention scores 0.5 (`rmroute.harness.analysis.score`), in the headroom and "
           "per-pair signal too.", ""]

    def table(title: str, rows: dict[str, dict[str, dict]]) -> None:
        out.extend([f"| {title} | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)])
        for key, per_rm in rows.items():
            accs = [per_rm[n] for n in names]
            best = max(a["acc"] for a in accs)
            cells = []
            for a in accs:
                cell = A.Acc(**a).fmt()
                cells.append(f"**{cell}**" if a["acc"] == best and a["n"] else cell)
            out.append(f"| {key} (n={accs[0]['n']}) | " + " | ".join(cells) + " |")
        out.append("")

    table("domain", {**rep["per_domain"], "all": rep["overall"]})
    table("domain / construction kind", rep["per_kind"])
    out += ["Tie (margin 0) and abstention (no score) rates on test, in % of pairs:", "",
            "| RM | tie % | abstain % |", "|---|---:|---:|"]
    out += [f"| {n} | {100 * rep['tie_rate'][n]:.1f} | {100 * rep['abstain_rate'][n]:.1f} |" for n in names]
    h = rep["headroom"]
    out += ["", "**Learnable headroom.** Per-domain best RM chosen on `offline` ("
            + ", ".join(f"{d}: {n}" for d, n in h["domain_best_arms"].items())
            + f"), applied to `test`: {A.Acc(**h['domain_best_test']).fmt()} vs the best single RM "
            f"({h['best_single']}) {A.Acc(**h['best_single_test']).fmt()}: "
            f"+{100 * h['gain']:.1f} points (item bootstrap 95% CI [{100 * h['gain_ci95'][0]:.1f}, {100 * h['gain_ci95'][1]:.1f}])."]
    out += ["", "**Per-pair signal** (within a domain, best RM per construction kind vs the domain's best RM):", "",
            "| domain | kind | best RM | acc | domain's best RM | its acc | gain |", "|---|---|---|---|---|---|---|"]
    for domain, sig in rep["per_pair_signal"].items():
        for kind, r in sig["kinds"].items():
            out.append(f"| {domain} | {kind} | {r['best_rm']} | {100 * r['best_acc']:.1f} | {r['domain_best_rm']} | "
                       f"{100 * r['domain_best_acc']:.1f} | +{100 * r['gain']:.1f} |")
    o = rep["oracle"]
    out += ["", f"**Structure, not chance.** Per-item oracle (some RM right) on test: {100 * o['test']:.1f}%; "
            f"the same oracle with each RM's right/wrong record shuffled within its domain (mean of 50 shuffles): "
            f"{100 * o['shuffled_within_domain']:.1f}%; gap {100 * o['gap']:+.1f} points."]
    if rep["weak_domains"]:
        out += ["", f"**Weak domains:** no RM reaches 60% on {', '.join(rep['weak_domains'])}."]
    t = rep["timings"]
    out += ["", "Build time on this machine: " + ", ".join(f"{k.replace('_s', '')} {v:.0f} s" for k, v in t.items()) + "."]
    return "\n".join(out) + "\n"
