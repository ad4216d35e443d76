"""Convert a wide CSV of published scores into a rmroute-score-table/1 file (docs/real-rms.md).

    python examples/score-table/convert.py examples/score-table/scores.csv table.jsonl

The CSV has one row per pair: id, question (the group), domain, prompt, response_a, response_b,
gold (a or b), then per reward model two columns `<rm>:a` and `<rm>:b` (its score of each response;
empty = no score), and per pairwise judge two columns `<judge>:ab` and `<judge>:ba` (the response it
preferred, a / b / tie, when shown the pair in that order; empty = no verdict). Costs are declared
below. Only the standard library is used: copy this file and change the column names to yours.
"""

import csv
import json
import sys

SCORERS = [  # name, kind, cost per call (here: billions of parameters), note
    {"name": "rm-math-7b", "kind": "scalar", "cost": 7.0, "cost_note": "7B parameters"},
    {"name": "rm-code-7b", "kind": "scalar", "cost": 7.0, "cost_note": "7B parameters"},
    {"name": "rm-chat-2b", "kind": "scalar", "cost": 2.0, "cost_note": "2B parameters"},
    {"name": "judge", "kind": "verdict", "cost": 70.0, "cost_note": "70B parameters"},
]


def convert(csv_path: str, out_path: str) -> int:
    header = {"format": "rmroute-score-table/1", "name": "example-scores",
              "description": "a synthetic table: three RMs good at different domains and one pairwise judge",
              "source": "examples/score-table/scores.csv (synthetic, written for the docs)", "licence": "CC0-1.0",
              "scorers": SCORERS}
    n = 0
    with open(csv_path, newline="", encoding="utf-8") as fh, open(out_path, "w", encoding="utf-8") as out:
        out.write(json.dumps(header) + "\n")
        for row in csv.DictReader(fh):
            scores = {}
            for s in SCORERS:
                if s["kind"] == "scalar":
                    a, b = row[f"{s['name']}:a"], row[f"{s['name']}:b"]
                    if a and b:
                        scores[s["name"]] = {"a": float(a), "b": float(b)}
                else:
                    scores[s["name"]] = {order: row[f"{s['name']}:{order}"] or None for order in ("ab", "ba")}
            item = {"id": row["id"], "group": row["question"], "domain": row["domain"], "prompt": row["prompt"],
                    "response_a": row["response_a"], "response_b": row["response_b"], "gold": row["gold"],
                    "scores": scores}
            out.write(json.dumps(item) + "\n")
            n += 1
    return n


if __name__ == "__main__":
    print(f"wrote {convert(sys.argv[1], sys.argv[2])} items to {sys.argv[2]}")
