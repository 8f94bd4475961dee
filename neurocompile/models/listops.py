"""ListOps generator written from the LRA grammar (Nangia & Bowman 2018; Tay et al. 2021), seeded and offline.

Grammar: ``EXPR := digit | OP EXPR EXPR+ ']'`` with OP in ``[MAX``, ``[MIN``, ``[MED``, ``[SM`` (sum modulo 10) and
digits 0-9. As in LRA's generator, a node below ``max_depth`` is an operator with probability 0.25 (else a digit),
an operator has 2..``max_args`` arguments, and trees are drawn until their token count lies in
[``min_length``, ``max_length``]. The LRA text's parentheses are dropped (as the LRA input pipelines do), so the
sequence is just the operator, digit and ``]`` tokens. MED is ``int(median)`` (the mean of the two middle values,
truncated, for an even count), as in LRA. The label is the value of the expression (10 classes).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

__all__ = ["OPERATORS", "VOCAB", "PAD_ID", "ListOpsSpec", "generate_tree", "evaluate", "tokens", "encode",
           "generate_listops"]


OPERATORS = ("[MAX", "[MIN", "[MED", "[SM")
END = "]"
VOCAB = ("<pad>",) + tuple(str(d) for d in range(10)) + OPERATORS + (END,)  # id 0 is padding
PAD_ID = 0
_TOKEN_ID = {tok: i for i, tok in enumerate(VOCAB)}
VALUE_P = 0.25  # LRA's name: probability that a node (above max_depth) is an operator


@dataclass(frozen=True)
class ListOpsSpec:
    """Generation parameters (LRA: max_depth 10, max_args 10, lengths 500..2000)."""

    max_length: int = 512
    min_length: int = 1
    max_depth: int = 10
    max_args: int = 10


class _TooLong(Exception):
    pass


def generate_tree(rng: random.Random, depth: int, spec: ListOpsSpec, budget: list[int] | None = None):
    """A random expression: an int (digit) or ``(op, [children])``.

    ``budget`` (a one-element list, the tokens still allowed) lets :func:`generate_listops` abandon a tree as soon
    as it exceeds ``max_length``, which it would reject anyway (the accepted distribution is unchanged).
    """
    if budget is not None:
        budget[0] -= 1
        if budget[0] < 0:
            raise _TooLong
    if depth < spec.max_depth and rng.random() < VALUE_P:
        op = rng.choice(OPERATORS)
        n_args = rng.randint(2, spec.max_args)
        if budget is not None:
            budget[0] -= 1  # the closing ']'
        return (op, [generate_tree(rng, depth + 1, spec, budget) for _ in range(n_args)])
    return rng.randrange(10)


def evaluate(tree) -> int:
    if isinstance(tree, int):
        return tree
    op, children = tree
    values = [evaluate(c) for c in children]
    if op == "[MAX":
        return max(values)
    if op == "[MIN":
        return min(values)
    if op == "[MED":
        return int(np.median(values))
    return sum(values) % 10  # [SM


def tokens(tree) -> list[str]:
    if isinstance(tree, int):
        return [str(tree)]
    op, children = tree
    out = [op]
    for c in children:
        out.extend(tokens(c))
    out.append(END)
    return out


def encode(toks: list[str]) -> list[int]:
    """Token strings -> ids (see :data:`VOCAB`; 0 is padding)."""
    return [_TOKEN_ID[t] for t in toks]


def generate_listops(n: int, seed: int, spec: ListOpsSpec = ListOpsSpec()) -> tuple[np.ndarray, np.ndarray]:
    """``n`` examples: ids int64 [n, max_length] (right-padded with 0) and labels int64 [n]."""
    rng = random.Random(seed)
    x = np.zeros((n, spec.max_length), dtype=np.int64)
    y = np.zeros(n, dtype=np.int64)
    i = 0
    while i < n:
        try:
            tree = generate_tree(rng, 0, spec, [spec.max_length])
        except _TooLong:
            continue
        toks = tokens(tree)
        if not spec.min_length <= len(toks) <= spec.max_length:
            continue
        x[i, : len(toks)] = encode(toks)
        y[i] = evaluate(tree)
        i += 1
    return x, y
