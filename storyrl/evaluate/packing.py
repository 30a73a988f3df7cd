"""Plan forward passes that run every distinct token prefix once: candidates packed as a tree.

In a causal LM the hidden state at position t depends only on tokens 0..t, so candidates that
share their first k tokens share their first k hidden states. A row of a pass holds a prefix
tree (trie) of candidates: each node is one input token at its depth (its position id), and it
attends to its ancestors and itself only. Scoring a candidate needs, at each scored position t,
log p(token t+1 | tokens 0..t): the logits of the node of tokens 0..t, shared by every
candidate with that prefix, so the LM head runs once per such node and each (node, target)
pair is computed once. The result is the plain forward pass's computation, reordered, with no
padding inside a row. Pure planning here: no model.
"""

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Pass:
    """One forward pass: `rows` packed rows right-padded to `width` tokens."""

    ids: torch.Tensor
    """(rows, width) input tokens."""
    positions: torch.Tensor
    """(rows, width) position ids: the node's depth."""
    visible: torch.Tensor
    """(rows, width, width) bool: query node sees key node (an ancestor or itself)."""
    head_row: torch.Tensor
    head_col: torch.Tensor
    """Nodes whose next-token distribution is needed (one entry per node)."""
    edge_head: torch.Tensor
    edge_target: torch.Tensor
    """Distinct (node, next token) pairs: index into the head nodes, and the token."""
    member_edge: torch.Tensor
    member_unit: torch.Tensor
    """Which unit's sum each edge adds to (an edge shared by several units appears once each)."""


class _Row:
    def __init__(self):
        self.tokens, self.depth = [], []
        self.heads: dict[int, int] = {}  # node -> head index in this row
        self.edges: dict[tuple[int, int], int] = {}  # (head index, target) -> edge index
        self.members: list[tuple[int, int]] = []  # (edge index, unit)
        self.prev_key, self.prev_ids, self.prev_path = None, (), []


def _subtree_ends(depth: list[int]) -> list[int]:
    """Per node of a preorder: the index after its last descendant (the next node no deeper)."""
    end, open_ = [len(depth)] * len(depth), []
    for i, d in enumerate(depth):
        while open_ and depth[open_[-1]] >= d:
            end[open_.pop()] = i
        open_.append(i)
    return end


def _lcp(a, b, n: int) -> int:
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def plan(units, row_len: int, rows_per_pass: int) -> list[Pass]:
    """`units`: (share key, ids, scored flags); units share prefix nodes only with equal keys.

    A row takes at most `row_len` nodes (at least the longest unit's inputs); a pass at most
    `rows_per_pass` rows. Units with one token have nothing scored and appear nowhere.
    """
    order = sorted(
        (i for i, (_, ids, _) in enumerate(units) if len(ids) > 1),
        key=lambda i: (units[i][0], units[i][1]),
    )
    rows, row = [], _Row()
    for u in order:
        key, ids, scored = units[u]
        m = len(ids) - 1  # input positions: position t predicts token t+1
        same = row.prev_key == key
        # Sorted order: the previous unit of the row has the longest common prefix with this one.
        k = _lcp(ids, row.prev_ids, min(m, len(row.prev_ids) - 1)) if same else 0
        if row.tokens and len(row.tokens) + m - k > row_len:
            rows.append(row)
            row, k = _Row(), 0
        path = row.prev_path[:k]
        for t in range(k, m):
            path.append(len(row.tokens))
            row.tokens.append(ids[t])
            row.depth.append(t)
        for t in range(m):
            if scored[t + 1]:
                h = row.heads.setdefault(path[t], len(row.heads))
                e = row.edges.setdefault((h, ids[t + 1]), len(row.edges))
                row.members.append((e, u))
        row.prev_key, row.prev_ids, row.prev_path = key, ids, path
    if row.tokens:
        rows.append(row)
    # Rows of like length share a pass, so that little padding is left between rows.
    rows.sort(key=lambda r: -len(r.tokens))
    return [
        _assemble(rows[i : i + rows_per_pass], pad_id=0) for i in range(0, len(rows), rows_per_pass)
    ]


def _assemble(rows: list[_Row], pad_id: int) -> Pass:
    width = max(len(r.tokens) for r in rows)
    n = len(rows)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    positions = torch.zeros((n, width), dtype=torch.long)
    # Nodes are in preorder (units sorted, each new node a child of the unit's previous one), so
    # a node's subtree is the range [node, end): node i sees node j iff j <= i < end[j].
    # Padding sees itself only: a query row with nothing visible would give NaN.
    end = np.tile(np.arange(1, width + 1), (n, 1))
    head_row, head_col, edge_head, edge_target, member_edge, member_unit = [], [], [], [], [], []
    for r, row in enumerate(rows):
        L = len(row.tokens)
        ids[r, :L] = torch.tensor(row.tokens)
        positions[r, :L] = torch.tensor(row.depth)
        end[r, :L] = _subtree_ends(row.depth)
        h0, e0 = len(head_row), len(edge_head)
        nodes = sorted(row.heads, key=row.heads.get)
        head_row += [r] * len(nodes)
        head_col += nodes
        for h, target in row.edges:  # dict order is the edge index order
            edge_head.append(h0 + h)
            edge_target.append(target)
        for e, u in row.members:
            member_edge.append(e0 + e)
            member_unit.append(u)
    # numpy: torch's threads cost more than these small ops on a busy CPU.
    i = np.arange(width)
    visible = (i[None, :] <= i[:, None])[None] & (i[None, :, None] < end[:, None, :])
    t = lambda xs: torch.tensor(xs, dtype=torch.long)  # noqa: E731
    return Pass(
        ids,
        positions,
        torch.from_numpy(visible),
        t(head_row),
        t(head_col),
        t(edge_head),
        t(edge_target),
        t(member_edge),
        t(member_unit),
    )
