"""What a built pool shows: per-domain and per-kind RM accuracy with 95% CIs, tie and abstention
rates, and whether routing can matter (learnable headroom, per-pair signal, oracle against a
shuffled oracle).

Accuracies, the headroom and the per-pair signal use the project's one scoring rule,
:func:`rmroute.harness.analysis.score` (a tie or an abstention scores 0.5); the oracle ("some RM is
right") uses the strict :func:`rmroute.harness.analysis.correct`."""

from __future__ import annotations

import re
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


# ---- score-table pools: diagnostics over every item, choices cross-fitted by group -----------------

#: resamples of the item bootstrap behind the table report's intervals (a report, not a leaderboard)
TABLE_RESAMPLES = 2000


def _cluster_acc(scores: np.ndarray, clusters: np.ndarray, seed: int) -> dict[str, float]:
    """Mean score with a 95% interval from resampling the clusters (the questions), as a dict."""
    if scores.size == 0:
        return {"acc": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    c = A.cluster_bootstrap_diff(scores, clusters, n_boot=TABLE_RESAMPLES, seed=seed)
    return {"acc": c.diff, "lo": c.lo, "hi": c.hi, "n": int(scores.size)}


def group_folds(groups: np.ndarray, domains: list[str], n_folds: int, seed: int = 0) -> np.ndarray:
    """(N,) fold of each item: per domain, the groups are dealt into ``n_folds`` folds in a seeded
    order (a group never straddles two folds; its first item's domain places it)."""
    fold_of = A.deal_folds(A.groups_by_domain(groups.tolist(), domains), n_folds, np.random.default_rng(seed))
    return np.array([fold_of[g] for g in groups.tolist()])


def error_correlation(score_all: np.ndarray) -> np.ndarray:
    """(K, K) Pearson correlation of the scorers' errors (1 − score) over the items (NaN where a
    scorer's errors do not vary)."""
    err = 1.0 - score_all
    sd = err.std(axis=0)
    z = (err - err.mean(axis=0)) / np.where(sd > 0, sd, np.nan)
    return (z.T @ z) / err.shape[0]


def table_report(pool: Pool, seed: int = 0, n_folds: int = 5) -> dict[str, Any]:
    """The diagnostics of a score-table pool (JSON-ready), over every item of the table:

    - per scorer: accuracy (the project's rule, and strict: a tie or abstention counts wrong, as
      most papers count it), tie and abstention rates, cost, and accuracy per domain, with 95%
      intervals from an item (question) bootstrap;
    - the correlation of the scorers' errors;
    - the per-item oracle (some scorer strictly right) against the same oracle with each scorer's
      record shuffled within its domain (is there per-pair structure, or only domain structure?);
    - the best single scorer and the per-domain best, each chosen on the other folds' items and
      measured on the held-out fold (``n_folds`` folds by question, so every item is tested once),
      and their difference with an item-bootstrap interval.
    """
    table = pool.table
    if table is None:
        raise ValueError(f"pool {pool.config.name} is not a score-table pool")
    names = pool.names
    K = len(names)
    margins, gold = table.margins(), table.gold_signs()
    domains = [it.domain for it in table.items]
    groups = A.item_ids(table.to_pairs())
    s = A.score(margins, gold)
    right = A.correct(margins, gold)
    by_domain = A.group_indices(domains)

    scorers = {}
    for k, name in enumerate(names):
        scorers[name] = {
            "kind": table.scorers[k].kind, "cost": table.scorers[k].cost, "cost_note": table.scorers[k].cost_note,
            "accuracy": _cluster_acc(s[:, k], groups, seed),
            "strict_accuracy": float(right[:, k].mean()),
            "tie_rate": float((margins[:, k] == 0).mean()), "abstain_rate": float(np.isnan(margins[:, k]).mean()),
            "per_domain": {d: _cluster_acc(s[idx, k], groups[idx], seed) for d, idx in by_domain.items()},
        }

    folds = group_folds(groups, domains, n_folds, seed)
    single = np.zeros(len(gold))
    per_domain = np.zeros(len(gold))
    chosen: list[dict[str, Any]] = []
    for f in range(n_folds):
        test, train = folds == f, folds != f
        arms, best = A.domain_best_arms(s[train], [d for d, t in zip(domains, train) if t])
        idx = np.flatnonzero(test)
        single[idx] = s[idx, best]
        per_domain[idx] = [s[i, arms.get(domains[i], best)] for i in idx]
        chosen.append({"best_single": names[best], "domain_best": {d: names[a] for d, a in arms.items()}})
    gain = A.cluster_bootstrap_diff(per_domain - single, groups, n_boot=TABLE_RESAMPLES, seed=seed)

    rng = np.random.default_rng(seed)
    oracle = float(A.oracle_right(right).mean())
    shuffled = A.shuffled_oracle(right, domains, rng)
    # with many scorers "some scorer is right" is near 100% either way: the same test on the 3 best
    top = sorted(range(K), key=lambda k: -s[:, k].mean())[:3]
    oracle_top = float(A.oracle_right(right[:, top]).mean())
    shuffled_top = A.shuffled_oracle(right[:, top], domains, rng)
    corr = error_correlation(s)
    off = corr[~np.eye(K, dtype=bool)] if K > 1 else np.array([])
    return {
        "pool": pool.config.name, "table": table.name, "description": table.description, "source": table.source,
        "licence": table.licence, "names": names, "n_items": len(gold), "n_groups": int(np.unique(groups).size),
        "domains": {d: int(idx.size) for d, idx in by_domain.items()},
        "scorers": scorers,
        "error_correlation": {"matrix": [[None if np.isnan(x) else float(x) for x in row] for row in corr],
                              "mean_off_diagonal": float(np.nanmean(off)) if off.size else None},
        "oracle": {"all": oracle, "shuffled_within_domain": shuffled, "gap": oracle - shuffled,
                   "top3": [names[k] for k in top], "top3_all": oracle_top, "top3_shuffled": shuffled_top,
                   "top3_gap": oracle_top - shuffled_top},
        "cross_fitted": {
            "n_folds": n_folds, "choices": chosen,
            "best_single": _cluster_acc(single, groups, seed), "domain_best": _cluster_acc(per_domain, groups, seed),
            "gain": gain.diff, "gain_ci95": [gain.lo, gain.hi],
        },
        "timings": pool.timings,
    }


def _short_source(source: str) -> str:
    """A table's source for a report line: its GitHub repositories at their commits when the
    source lists ``github:`` files (the full list is in the JSON report), else the text itself."""
    repos = list(dict.fromkeys(re.findall(r"github:([^@\s;]+)@([0-9a-f]{8})", source or "")))
    if repos:
        return ", ".join(f"github.com/{r} @ {c}" for r, c in repos) + " (the files: the JSON report)"
    return source or "-"


def render_table_markdown(rep: dict[str, Any]) -> str:
    """:func:`table_report` as Markdown (what `rmroute pool build` writes for a score-table pool)."""

    def acc(a: dict[str, float]) -> str:
        return "-" if not a["n"] else f"{100 * a['acc']:.1f} [{100 * a['lo']:.1f}, {100 * a['hi']:.1f}]"

    names, doms = rep["names"], list(rep["domains"])
    out = [f"Score table `{rep['table']}` (pool `{rep['pool']}`): {rep['n_items']} pairs from {rep['n_groups']} "
           f"questions; domains " + ", ".join(f"{d} {n}" for d, n in rep["domains"].items()) + ".",
           "", f"Source: {_short_source(rep['source'])}. Licence: {rep['licence'] or '-'}.", "",
           "Accuracy in % over every pair (a tie or an abstention scores 0.5), with 95% intervals from resampling "
           "questions; *strict* counts a tie or an abstention as wrong (as the papers do).", "",
           "| scorer | kind | cost | all | strict | tie % | abstain % | " + " | ".join(doms) + " |",
           "|---|---|---:|---|---:|---:|---:|" + "---|" * len(doms)]
    best = max(r["accuracy"]["acc"] for r in rep["scorers"].values())
    for name in names:
        r = rep["scorers"][name]
        cell = acc(r["accuracy"])
        out.append(f"| {name} | {r['kind']} | {r['cost']:g} | {'**' + cell + '**' if r['accuracy']['acc'] == best else cell} | "
                   f"{100 * r['strict_accuracy']:.1f} | {100 * r['tie_rate']:.1f} | {100 * r['abstain_rate']:.1f} | "
                   + " | ".join(acc(r["per_domain"][d]) for d in doms) + " |")
    notes = sorted({(n, r["cost_note"]) for n, r in rep["scorers"].items() if r["cost_note"]})
    if notes:
        out += ["", "Cost per call: " + "; ".join(f"{n}: {note}" for n, note in notes) + "."]
    cf = rep["cross_fitted"]
    picks = sorted({c["best_single"] for c in cf["choices"]})
    out += ["", f"**Chosen on offline data, measured on held-out data** ({cf['n_folds']} folds by question; each "
            f"fold's choice made on the other folds): best single scorer ({', '.join(picks)}) {acc(cf['best_single'])}; "
            f"per-domain best {acc(cf['domain_best'])}; difference {100 * cf['gain']:+.1f} points "
            f"[{100 * cf['gain_ci95'][0]:.1f}, {100 * cf['gain_ci95'][1]:.1f}]."]
    arms = cf["choices"][0]["domain_best"]
    out += ["", "Per-domain best on fold 0's training folds: " + ", ".join(f"{d}: {n}" for d, n in arms.items()) + "."]
    o = rep["oracle"]
    out += ["", f"**Per-pair structure.** Oracle (some scorer strictly right): {100 * o['all']:.1f}%; with each "
            f"scorer's right/wrong record shuffled within its domain (mean of 50 shuffles): "
            f"{100 * o['shuffled_within_domain']:.1f}%; gap {100 * o['gap']:+.1f} points (negative: the scorers' "
            "errors fall on the same pairs more than chance would put them). The same for the three most accurate "
            f"scorers ({', '.join(o['top3'])}): {100 * o['top3_all']:.1f}% vs {100 * o['top3_shuffled']:.1f}% shuffled, "
            f"gap {100 * o['top3_gap']:+.1f} points."]
    ec = rep["error_correlation"]
    if ec["mean_off_diagonal"] is not None:
        out += ["", f"**Error correlation** (Pearson, over pairs, of 1 − score): mean between two scorers "
                f"{ec['mean_off_diagonal']:.2f}."]
        m = np.array([[np.nan if x is None else x for x in row] for row in ec["matrix"]])
        if len(names) <= 12:
            out += ["", "| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
            out += [f"| {a} | " + " | ".join("-" if np.isnan(x) else f"{x:.2f}" for x in m[i]) + " |"
                    for i, a in enumerate(names)]
        else:
            iu = [(i, j) for i in range(len(names)) for j in range(i + 1, len(names)) if not np.isnan(m[i, j])]
            iu.sort(key=lambda ij: -m[ij])
            out += ["", "Most correlated: " + ", ".join(f"{names[i]}–{names[j]} {m[i, j]:.2f}" for i, j in iu[:6])
                    + "; least: " + ", ".join(f"{names[i]}–{names[j]} {m[i, j]:.2f}" for i, j in iu[-6:]) + "."]
    return "\n".join(out) + "\n"
