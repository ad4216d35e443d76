"""A tiny benchmark suite for pool tests: lengths decide some domains, word overlap others."""

from rmroute import hookimpl
from rmroute.harness.core.types import PreferencePair


def _pairs(split: str, n: int) -> list[PreferencePair]:
    out = []
    for i in range(n):
        if i % 2 == 0:  # 'long' domain: the longer answer is gold; overlap is uninformative
            good, bad, dom, kind = "alpha beta gamma delta", "alpha", "long", "cut"
        else:  # 'echo' domain: the answer repeating the prompt's words is gold, and it is shorter
            good, bad, dom, kind = "zebra quartz", "one two three four five", "echo", "off-topic"
        gold_a = (i // 2) % 2 == 0
        out.append(PreferencePair(
            id=f"{split}-{i}", domain=dom, prompt=f"zebra quartz question {i}?\n",
            response_a=good if gold_a else bad, response_b=bad if gold_a else good,
            label="a" if gold_a else "b", metadata={"kind": kind}))
    return out


class TinySuite:
    def __init__(self, seed: int = 0):
        self.seed = seed

    def splits(self):
        return {s: _pairs(s, n) for s, n in (("rm-train", 4), ("offline", 20), ("online", 40), ("test", 30))}

    def pairs(self, split):
        return self.splits()[split]


@hookimpl
def register_suites(register):
    register("tiny-suite", TinySuite, kind="benchmark")
