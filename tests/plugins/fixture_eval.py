"""Fixture evaluation plugins for the evaluate-runner tests: outcomes are computable by hand.

- generator ``fixture-echo``: the completion is the prompt's last 3 characters, reversed (n copies);
- suite ``fixture-count``: share of 4 fixed prompts whose completion contains a "?";
- suite ``fixture-judged``: needs a judge; mean of judge.compare(output, "x") over the items;
- suite ``fixture-fail``: raises on its second item;
- judge ``fixture-judge``: compare = 1.0 when A is longer than B, 0.0 when shorter, 0.5 on ties.
"""

import json

import numpy as np

from rmroute import hookimpl
from rmroute.harness.core.types import SuiteResult

PROMPTS = ["what?", "no", "why?!", "ok?"]


class EchoGenerator:
    def __init__(self, model, tokenizer, suffix: str = ""):
        self.suffix = suffix
        self.calls = 0

    def generate(self, prompts, n, seed, max_new_tokens=None):
        self.calls += 1
        return [[p[-3:][::-1] + self.suffix] * n for p in prompts]

    def sync(self, model):
        pass


class Judge:
    name = "fixture-judge"

    def __init__(self):
        self.stats = {"requests": 0}

    def compare(self, questions, a, b):
        self.stats["requests"] += len(a)
        return np.array([0.5 if len(x) == len(y) else float(len(x) > len(y)) for x, y in zip(a, b)])

    def grade(self, questions, answers, references):
        return np.full(len(answers), 5.0)


class CountSuite:
    name, needs_judge, headline = "fixture-count", False, ("share",)

    def __init__(self, limit: int | None = None):
        self.limit = limit

    def evaluate(self, policy, generator, judge, out_dir, rng):
        prompts = PROMPTS[: self.limit]
        outs = [o[0] for o in generator.generate(prompts, n=1, seed=0)]
        hits = [("?" in o) for o in outs]
        (out_dir / "lm_eval_results.json").write_text("{}")  # a suite's own JSON: not a run file
        path = out_dir / "samples.jsonl"
        path.write_text("".join(json.dumps({"prompt": p, "output": o, "hit": h}) + "\n" for p, o, h in zip(prompts, outs, hits)))
        return SuiteResult(self.name, {"share": float(np.mean(hits)), "n_hits": float(sum(hits))}, len(prompts),
                           ci={"share": (0.0, 1.0)}, samples=str(path))


class JudgedSuite:
    name, needs_judge = "fixture-judged", True

    def evaluate(self, policy, generator, judge, out_dir, rng):
        outs = [o[0] for o in generator.generate(PROMPTS, n=1, seed=0)]
        p = judge.compare(PROMPTS, outs, ["x"] * len(outs))
        return SuiteResult(self.name, {"win_rate": float(np.mean(p))}, len(outs),
                           flags={"lc_without_gamed_baselines": True})


class FailSuite:
    name, needs_judge = "fixture-fail", False

    def evaluate(self, policy, generator, judge, out_dir, rng):
        raise RuntimeError("item 'fixture-fail/1': the judge endpoint returned garbage")


@hookimpl
def register_suites(register):
    register("fixture-count", CountSuite, kind="eval")
    register("fixture-judged", JudgedSuite, kind="eval")
    register("fixture-fail", FailSuite, kind="eval")


@hookimpl
def register_generators(register):
    register("fixture-echo", EchoGenerator)


@hookimpl
def register_judges(register):
    register("fixture-judge", Judge)
