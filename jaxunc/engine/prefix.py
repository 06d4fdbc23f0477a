"""Shared prompt prefixes, found on token ids: computed once into a KV cache, then every item runs
only its suffix against it.

Prompts are sorted lexicographically by token ids, so that prompts sharing a prefix are
neighbours and the common prefix of a run of neighbours is the smallest common prefix of adjacent
pairs. A run is kept whole or split at its weakest link (the adjacent pair sharing least): a group
of n prompts sharing p tokens saves (n - 1) p prompt tokens, and a split is taken only when it saves
at least `min_gain` (10%) more than the whole run, since every extra group costs a partly filled
batch and may widen the padded prefix of all. So two few-shot layouts of a mixed dataset become two
groups, each with its own long prefix, even when all prompts also share a short start, while
questions that merely start alike ("Name something ...") stay in one group. A group's prefix leaves every member at least one suffix
token (the answer slot's logits come from the last prompt token); a prefix shorter than
`min_prefix` is not worth a cache, and such prompts form one group with an empty prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np


PREFIX_MULTIPLE = 64  # every prefix of a task is padded to one width, a multiple of this (one compiled shape)


@dataclass(frozen=True)
class PrefixGroup:
    """Items (indices into the prompt list, ascending) sharing `prefix` (token ids, possibly empty)."""

    prefix: tuple[int, ...]
    items: tuple[int, ...]

    def suffixes(self, token_lists: Sequence[Sequence[int]]) -> list[list[int]]:
        return [list(token_lists[i][len(self.prefix):]) for i in self.items]


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(diff[0]) if len(diff) else n


def prefix_groups(token_lists: Sequence[Sequence[int]], min_prefix: int = 16, min_gain: float = 0.1) -> list[PrefixGroup]:
    """Partition the prompts into groups with a shared prefix (see the module docstring).

    Groups are returned in the order of their first item; the prompts of an empty-prefix group are
    run whole. Deterministic for given token lists.
    """
    if min_prefix < 1:
        raise ValueError(f"min_prefix must be >= 1, got {min_prefix}")
    if any(len(t) == 0 for t in token_lists):
        raise ValueError("every prompt needs at least one token")
    n = len(token_lists)
    order = sorted(range(n), key=lambda i: tuple(token_lists[i]))
    links = [common_prefix_length(token_lists[order[k]], token_lists[order[k + 1]]) for k in range(n - 1)]
    lengths = [len(token_lists[i]) for i in order]
    leaves = _best_split(links, lengths, min_prefix, min_gain)
    groups, loose = [], []
    for lo, hi, length in leaves:
        members = order[lo:hi]
        if length == 0:
            loose += members
        else:
            groups.append(PrefixGroup(tuple(token_lists[members[0]][:length]), tuple(sorted(members))))
    if loose:
        groups.append(PrefixGroup((), tuple(sorted(loose))))
    return sorted(groups, key=lambda g: g.items[0])


def _best_split(links: list[int], lengths: list[int], min_prefix: int, min_gain: float) -> list[tuple[int, int, int]]:
    """Leaves (lo, hi, prefix length) of the best recursive split of the sorted range [0, n).

    A range [lo, hi) shares p = min(links[lo:hi-1], lengths[lo:hi] - 1) tokens and saves
    (hi - lo - 1) p when p >= min_prefix; its value is that, unless the two halves split at its
    weakest link save more than (1 + min_gain) times as much together. Evaluated without recursion
    (post-order on a stack).
    """
    n = len(lengths)
    if n == 0:
        return []
    best: dict[tuple[int, int], tuple[int, list]] = {}
    stack = [(0, n, False)]
    while stack:
        lo, hi, expanded = stack.pop()
        shared = min(min(links[lo:hi - 1], default=lengths[lo]), min(lengths[lo:hi]) - 1)
        whole = (hi - lo - 1) * shared if hi - lo > 1 and shared >= min_prefix else 0
        leaf = [(lo, hi, shared if whole else 0)]
        if hi - lo == 1:
            best[lo, hi] = (0, leaf)
            continue
        cut = lo + 1 + int(np.argmin(links[lo:hi - 1]))
        if not expanded:
            stack += [(lo, hi, True), (lo, cut, False), (cut, hi, False)]
            continue
        (left, lleaves), (right, rleaves) = best.pop((lo, cut)), best.pop((cut, hi))
        split = left + right > whole * (1 + min_gain) if whole else left + right > 0
        best[lo, hi] = (left + right, lleaves + rleaves) if split else (whole, leaf)
    return best[0, n][1]


def groups_to_run(groups: Sequence[PrefixGroup], todo: Sequence[int]) -> Iterator[tuple[PrefixGroup, list[int]]]:
    """(group, its items that are in `todo`, in the group's order) for every group with such items."""
    wanted = set(todo)
    for group in groups:
        items = [i for i in group.items if i in wanted]
        if items:
            yield group, items


def padded_width(groups: Sequence[PrefixGroup]) -> int:
    """The width every prefix of these groups is padded to: the longest, rounded up to PREFIX_MULTIPLE."""
    longest = max(len(g.prefix) for g in groups)
    return max(1, -(-longest // PREFIX_MULTIPLE) * PREFIX_MULTIPLE)


def prefix_summary(groups: Sequence[PrefixGroup], token_lists: Sequence[Sequence[int]]) -> dict:
    """What run.json records: prefix lengths and the share of prompt tokens actually computed."""
    total = sum(len(t) for t in token_lists)
    prefix_tokens = sum(len(g.prefix) for g in groups)
    suffix_tokens = sum(len(token_lists[i]) - len(g.prefix) for g in groups for i in g.items)
    return {
        "groups": [{"prefix_length": len(g.prefix), "n_items": len(g.items)} for g in groups],
        "prompt_tokens": total,
        "suffix_tokens": suffix_tokens,
        "computed_fraction": (prefix_tokens + suffix_tokens) / total if total else 1.0,
    }
