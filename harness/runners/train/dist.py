"""Data-parallel training across processes (``accelerate launch --num_processes N``): who does what.

One process (``WORLD_SIZE`` unset or 1) is the plain path: every helper here is then a no-op and the
loop runs exactly as it always has. Under ``accelerate launch --multi_gpu --num_processes N`` (N GPUs;
on a machine without CUDA, N CPU processes on gloo: accelerate 1.16's ``--cpu`` starts one process
unless given an MPI hostfile) every process runs the same grid of (router, seed) runs in lockstep and:

* generates the responses of its share of the iteration's prompts (generation chunks dealt round
  robin, :func:`rmroute.harness.runners.train.loop.generate_batch`); the samples are gathered to
  every process;
* rank 0 alone forms the candidate pairs, routes, scores and decides them, and broadcasts the kept
  pairs (:meth:`Dist.on_main`): the router sees exactly the batch it would see in one process;
* each process computes the per-pair DPO losses of its block of the kept pairs; they are gathered
  (in pair order) to every process, and rank 0 feeds them back to the router;
* the DPO step is TRL's: each process's trainer reads its block of the pairs
  (:class:`PairFeed` shards) and the gradients are averaged by DDP inside the trainer;
* rank 0 alone writes checkpoints, run files and logs; every process reads the same checkpoint on
  ``--resume``.

The maths: DDP averages the processes' gradients of their block's mean loss, which is the gradient
of the mean over all P pairs, as in one process, when the blocks are equal. TRL gathers per-pair
metrics across processes, which needs equal blocks too, so a step under N processes trains on the
first N·⌊P/N⌋ trainable pairs (the iteration's log says how many: ``pairs_trained``; the feedback
still covers every kept pair), and an iteration with fewer than N trainable pairs skips its step and
says so. With P a multiple of N the step is one process's step; floating-point sums then differ in
their last bits, so continuous quantities (losses, router posteriors) agree to a tolerance and
discrete ones (prompts, pairs, arms, calls) exactly, as long as no draw lands on such a difference
(tests/test_train_dp.py checks both).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

from rmroute.harness.core.errors import RmrouteError

T = TypeVar("T")


class MainProcessFailed(RmrouteError):
    """Rank 0 raised in a step only it runs (routing, scoring); the other processes raise this with its message."""


def world_size() -> int:
    """The number of processes of this launch (``WORLD_SIZE``; 1 when not launched by accelerate/torchrun)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        raise RmrouteError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number of processes") from None


def launch_rank() -> int:
    """This process's rank in the launch (``RANK``; 0 when not launched by accelerate/torchrun)."""
    return int(os.environ.get("RANK", "0") or 0) if world_size() > 1 else 0


@dataclass(frozen=True)
class Dist:
    """This process's place in the launch: ``rank`` of ``world`` processes (rank 0 is the main one)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls) -> "Dist":
        """One process, or (under ``accelerate launch``) accelerate's process group, started here."""
        if world_size() == 1:
            return cls()
        import torch
        from accelerate import PartialState

        # without CUDA, accelerate sets up the process group only when told it is on CPU (gloo)
        state = PartialState(cpu=not torch.cuda.is_available())
        if state.num_processes != world_size():
            raise RmrouteError(f"WORLD_SIZE is {world_size()} but accelerate set up {state.num_processes} process(es)")
        return cls(rank=state.process_index, world=state.num_processes)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every process."""
        if self.world == 1:
            return obj
        from accelerate.utils import broadcast_object_list

        box = [obj]
        broadcast_object_list(box, from_process=0)
        return box[0]

    def gather(self, obj: T) -> list[T]:
        """Every process's ``obj``, in rank order, on every process."""
        if self.world == 1:
            return [obj]
        from accelerate.utils import gather_object

        return list(gather_object([obj]))

    def barrier(self) -> None:
        if self.world > 1:
            from accelerate import PartialState

            PartialState().wait_for_everyone()

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (it fills caches, trains missing RMs), then the others."""
        if self.world == 1:
            yield
            return
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def on_main(self, fn: Callable[[], T], share: Callable[[T], Any] = lambda v: v) -> Any:
        """Run ``fn`` on rank 0 only; every process gets ``share(result)`` (rank 0 gets ``fn``'s result
        itself). If ``fn`` raises on rank 0, it re-raises there and the others raise
        :class:`MainProcessFailed` with its message, so no process waits for a broadcast that never comes."""
        if self.world == 1:
            return fn()
        if self.is_main:
            try:
                value = fn()
            except Exception as exc:
                self.broadcast(("error", f"{type(exc).__name__}: {exc}"))
                raise
            self.broadcast(("ok", share(value)))
            return value
        tag, value = self.broadcast(None)
        if tag == "error":
            raise MainProcessFailed(f"rank 0 failed: {value}")
        return value

    def blocks(self, n: int) -> list[range]:
        """``range(n)`` cut into ``world`` contiguous blocks as equal as possible (the first ``n % world``
        one longer): block k is process k's share of n pairs."""
        base, extra = divmod(n, self.world)
        out, start = [], 0
        for k in range(self.world):
            size = base + (1 if k < extra else 0)
            out.append(range(start, start + size))
            start += size
        return out

    def mine(self, n: int) -> range:
        return self.blocks(n)[self.rank]


class PairFeed:
    """The pairs of the current iteration, as the rows of the trainer's ``datasets.IterableDataset``.

    The dataset is built once, with one generator shard per process (``gen_kwargs={"shards": [0..N-1]}``);
    accelerate gives process k shard k, and :meth:`rows` yields block k of the pairs set last by
    :meth:`set`. Each ``trainer.train()`` call iterates the dataset afresh, so TRL tokenises this
    iteration's pairs through its public dataset path (no private preprocessing is called)."""

    def __init__(self, dist: Dist) -> None:
        self.dist = dist
        # TRL peeks at one row when the trainer is built: a placeholder until the first iteration
        self.set(["a"], ["b"], ["c"])

    def set(self, prompts: list[str], chosen: list[str], rejected: list[str]) -> None:
        if not len(prompts) == len(chosen) == len(rejected):
            raise ValueError("PairFeed.set: prompts, chosen and rejected differ in length")
        self.prompts, self.chosen, self.rejected = list(prompts), list(chosen), list(rejected)

    def rows(self, shards: list[int]) -> Iterator[dict[str, str]]:
        blocks = self.dist.blocks(len(self.prompts))
        for k in shards:
            for i in blocks[k]:
                yield {"prompt": self.prompts[i], "chosen": self.chosen[i], "rejected": self.rejected[i]}

    def dataset(self):
        from datasets import IterableDataset

        return IterableDataset.from_generator(self.rows, gen_kwargs={"shards": list(range(self.dist.world))})
