"""Task placement: which worker runs a task, and why the others do not.

ECS places a task in two passes, and so do we:

1. **filter** — drop the workers that cannot take it: not ACTIVE (draining, lost), not enough
   free CPU units or memory, a host port already taken, a `memberOf(expression)` constraint
   that is false for the worker's attributes, or `distinctInstance` when the worker already runs
   a task of the same group (a service's tasks are one group; `task run` uses `family:NAME`);
2. **rank** — order the rest by the strategies, *in the order given*: `spread(FIELD)` prefers
   the worker whose value of FIELD (an attribute, or `instanceId`) has the fewest tasks of the
   group; `binpack(cpu|memory)` prefers the worker with the least of it left after placing;
   `random` draws. The first strategy decides, the next ones break its ties, and the order of
   the workers (w1, w2, ...) breaks the last tie, so a decision is reproducible.

A task that passes no filter stays PENDING with a reason that counts why each worker was
dropped. Everything here is pure (no clock, no I/O): the manager and the simulator
(`minirun sim`) share it, and `minirun explain` prints a `Decision`'s candidates.

The `memberOf` expressions are a subset of ECS's cluster query language:
`attribute:zone == a`, `attribute:zone in [a, b]`, `attribute:gpu exists`, `attribute:n >= 2`,
`attribute:type =~ big.*`, combined with `and`, `or`, `not` and parentheses.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

DEFAULT_STRATEGY = [{"type": "spread", "field": "instanceId"}]


class ExpressionError(ValueError):
    """A memberOf expression that does not parse."""


class PlacementError(ValueError):
    """A strategy or constraint that is not one we know (bad input from a user)."""


@dataclass
class WorkerView:
    """What placement needs to know about a worker (capacity in CPU units and MiB)."""

    id: str
    cpu: int
    memory: int
    attributes: dict[str, str] = field(default_factory=dict)
    status: str = "ACTIVE"
    reserved_cpu: int = 0
    reserved_memory: int = 0
    ports: set[int] = field(default_factory=set)
    groups: Counter = field(default_factory=Counter)    # group -> tasks of it on this worker

    @property
    def free_cpu(self) -> int:
        return self.cpu - self.reserved_cpu

    @property
    def free_memory(self) -> int:
        return self.memory - self.reserved_memory

    def add(self, req: TaskRequest) -> None:
        """Account for a task placed here (the caller places a batch one task at a time)."""
        self.reserved_cpu += req.cpu
        self.reserved_memory += req.memory
        self.ports.update(req.ports)
        self.groups[req.group] += 1

    def remove(self, req: TaskRequest) -> None:
        self.reserved_cpu -= req.cpu
        self.reserved_memory -= req.memory
        self.ports.difference_update(req.ports)
        self.groups[req.group] -= 1


@dataclass
class TaskRequest:
    cpu: int
    memory: int
    group: str
    ports: tuple[int, ...] = ()
    strategy: list[dict[str, str]] = field(default_factory=lambda: list(DEFAULT_STRATEGY))
    constraints: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Candidate:
    worker: str
    kept: bool
    why: str                      # the reason it was dropped, or what its score means
    score: tuple = ()


@dataclass
class Decision:
    worker: str | None
    reason: str                   # why this worker, or why none
    candidates: list[Candidate] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"worker": self.worker, "reason": self.reason,
                "candidates": [{"worker": c.worker, "kept": c.kept, "why": c.why,
                                "score": list(c.score)} for c in self.candidates]}


# -- strategies and constraints from text --------------------------------------------------
def parse_strategy(text: str) -> list[dict[str, str]]:
    """"spread(attribute:zone),binpack(memory)" -> ECS's placementStrategy list."""
    out = []
    for part in re.findall(r"[a-z]+(?:\([^)]*\))?", text.strip()):
        m = re.fullmatch(r"(random|spread|binpack)(?:\(([^)]*)\))?", part)
        if not m:
            raise PlacementError(f"placement strategy {part!r}: use random, spread(FIELD) or binpack(cpu|memory)")
        kind, arg = m.group(1), (m.group(2) or "").strip()
        out.append(check_strategy({"type": kind, "field": arg} if arg else {"type": kind}))
    if not out:
        raise PlacementError(f"placement strategy {text!r}: use random, spread(FIELD) or binpack(cpu|memory)")
    return out


def check_strategy(s: dict[str, str]) -> dict[str, str]:
    kind, fld = s.get("type"), s.get("field", "")
    if kind == "random":
        return {"type": "random"}
    if kind == "binpack" and fld in ("cpu", "memory"):
        return {"type": kind, "field": fld}
    if kind == "spread" and (fld == "instanceId" or fld.startswith("attribute:") and len(fld) > 10):
        return {"type": kind, "field": fld}
    if kind == "spread":
        raise PlacementError(f"spread({fld}): the field is instanceId or attribute:NAME")
    if kind == "binpack":
        raise PlacementError(f"binpack({fld}): the field is cpu or memory")
    raise PlacementError(f"placement strategy {kind!r}: use random, spread or binpack")


def parse_constraint(text: str) -> dict[str, str]:
    """"distinctInstance" or "memberOf(EXPR)" -> ECS's placementConstraint object."""
    text = text.strip()
    if text == "distinctInstance":
        return {"type": "distinctInstance"}
    m = re.fullmatch(r"memberOf\((.*)\)", text, re.S)
    if m:
        parse_expression(m.group(1))
        return {"type": "memberOf", "expression": m.group(1).strip()}
    raise PlacementError(f"placement constraint {text!r}: use distinctInstance or memberOf(EXPRESSION)")


# -- memberOf: a small expression language over attributes ---------------------------------
_TOKEN = re.compile(r"\s*(\(|\)|\[|\]|,|==|!=|>=|<=|>|<|=~|!~|&&|\|\||!|[^\s()\[\],=!<>&|~]+)")
_COMPARE = {"==", "!=", ">", ">=", "<", "<=", "=~", "!~", "in", "not_in", "equals", "not_equals"}


def parse_expression(text: Any):
    """Parse into a nested tuple tree; ExpressionError says what was expected and where."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("required: an expression such as attribute:zone == a")
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            if text[pos:].strip() == "":
                break
            raise ExpressionError(f"cannot read {text[pos:].strip()!r}")
        tokens.append(m.group(1))
        pos = m.end()
    parser = _Parser(tokens)
    tree = parser.expr()
    if parser.i != len(tokens):
        raise ExpressionError(f"unexpected {tokens[parser.i]!r} after a complete expression")
    return tree


class _Parser:
    def __init__(self, tokens: list[str]):
        self.t, self.i = tokens, 0

    def peek(self) -> str | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, what: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (what is not None and tok.lower() != what):
            raise ExpressionError(f"expected {what or 'more'} but found {tok or 'the end'}")
        self.i += 1
        return tok

    def expr(self):
        left = self.conj()
        while (self.peek() or "").lower() in ("or", "||"):
            self.i += 1
            left = ("or", left, self.conj())
        return left

    def conj(self):
        left = self.unary()
        while (self.peek() or "").lower() in ("and", "&&"):
            self.i += 1
            left = ("and", left, self.unary())
        return left

    def unary(self):
        tok = (self.peek() or "").lower()
        if tok in ("not", "!"):
            self.i += 1
            return ("not", self.unary())
        if tok == "(":
            self.i += 1
            inner = self.expr()
            self.take(")")
            return inner
        return self.term()

    def term(self):
        subject = self.take()
        if not subject.startswith("attribute:") or len(subject) <= 10:
            raise ExpressionError(f"expected attribute:NAME but found {subject!r}")
        name = subject[10:]
        op = (self.peek() or "").lower()
        if op == "exists":
            self.i += 1
            return ("exists", name)
        if op == "!" and self.i + 1 < len(self.t) and self.t[self.i + 1].lower() == "exists":
            self.i += 1
            op = "!exists"
        if op in ("!exists", "not_exists"):
            self.i += 1
            return ("not", ("exists", name))
        if op == "not" and self.i + 1 < len(self.t) and self.t[self.i + 1].lower() == "in":
            self.i += 2
            op = "not_in"
        elif op in _COMPARE:
            self.i += 1
        else:
            raise ExpressionError(f"expected an operator (==, !=, in, exists, ...) after {subject} "
                                  f"but found {self.peek() or 'the end'}")
        op = {"equals": "==", "not_equals": "!="}.get(op, op)
        if op in ("in", "not_in"):
            self.take("[")
            values = [self.take()]
            while self.peek() == ",":
                self.i += 1
                values.append(self.take())
            self.take("]")
            return (op, name, tuple(values))
        value = self.take()
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as e:
                raise ExpressionError(f"bad pattern {value!r}: {e}") from None
        return (op, name, value)


def evaluate(tree, attrs: dict[str, str]) -> bool:
    op = tree[0]
    if op == "and":
        return evaluate(tree[1], attrs) and evaluate(tree[2], attrs)
    if op == "or":
        return evaluate(tree[1], attrs) or evaluate(tree[2], attrs)
    if op == "not":
        return not evaluate(tree[1], attrs)
    name = tree[1]
    if op == "exists":
        return name in attrs
    have = attrs.get(name)
    if op == "in":
        return have in tree[2]
    if op == "not_in":
        return have not in tree[2]
    want = tree[2]
    if op == "==":
        return have == want
    if op == "!=":
        return have != want
    if have is None:
        return False
    if op == "=~":
        return re.fullmatch(want, have) is not None
    if op == "!~":
        return re.fullmatch(want, have) is None
    try:
        a, b = float(have), float(want)
    except ValueError:
        a, b = have, want                  # compare as text when either is not a number
    return {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op]


# -- the decision ------------------------------------------------------------------------------
_TREES: dict[str, Any] = {}


def _tree(expression: str):
    tree = _TREES.get(expression)
    if tree is None:
        tree = _TREES[expression] = parse_expression(expression)
    return tree


def place(req: TaskRequest, workers: list[WorkerView], rng: random.Random | None = None,
          explain: bool = False) -> Decision:
    """Choose a worker for one task. With `explain`, every worker is listed with why it was
    kept (its score) or dropped; without, only the winner (the simulator's fast path)."""
    rng = rng or random.Random(0)
    member = [(c["expression"], _tree(c["expression"])) for c in req.constraints if c["type"] == "memberOf"]
    distinct = any(c["type"] == "distinctInstance" for c in req.constraints)
    cpu, memory, group, ports = req.cpu, req.memory, req.group, set(req.ports)
    dropped: Counter = Counter()
    candidates: list[Candidate] = []
    kept: list[WorkerView] = []
    for w in workers:
        # the common case first, in one expression: this loop is the scheduler's hot path
        if (w.status == "ACTIVE" and w.cpu - w.reserved_cpu >= cpu
                and w.memory - w.reserved_memory >= memory
                and not (ports and ports & w.ports) and not (distinct and w.groups.get(group))
                and (not member or all(evaluate(tree, w.attributes) for _, tree in member))):
            kept.append(w)
            continue
        why, key = _dropped(w, req, ports, distinct, member)
        dropped[key] += 1
        if explain:
            candidates.append(Candidate(w.id, False, why))
    if not kept:
        if not workers:
            return Decision(None, "no workers in the cluster", candidates)
        parts = [f"{n} {key}" for key, n in sorted(dropped.items(), key=lambda kv: (-kv[1], kv[0]))]
        return Decision(None, f"no worker fits (cpu {req.cpu}, memory {req.memory} MiB): "
                        + ", ".join(parts), candidates)
    scores = _scores(req, kept, workers, rng)
    # ties go to the worker listed first (the manager lists them w1, w2, ...)
    best = min(zip(scores, range(len(kept)), strict=True))[1]
    if explain:
        order = sorted(range(len(kept)), key=lambda i: (scores[i], i))
        rank = {i: r for r, i in enumerate(order)}
        for i, w in enumerate(kept):
            candidates.append(Candidate(w.id, True, _describe(req.strategy, scores[i]) +
                                        (" (chosen)" if i == best else f" (rank {rank[i] + 1})"),
                                        scores[i]))
        candidates.sort(key=lambda c: (not c.kept, c.score if c.kept else (), c.worker))
    return Decision(kept[best].id, f"{_describe(req.strategy, scores[best])}; "
                    f"{len(kept)} of {len(workers)} workers fit", candidates)


def _dropped(w: WorkerView, req: TaskRequest, ports: set[int], distinct: bool,
             member: list) -> tuple[str, str]:
    """Why a worker was dropped: (the detail for explain, the key counted in the reason)."""
    if w.status != "ACTIVE":
        return w.status.lower(), w.status.lower()
    if w.cpu - w.reserved_cpu < req.cpu:
        return f"cpu: needs {req.cpu} units, {w.cpu - w.reserved_cpu} of {w.cpu} free", "not enough cpu"
    if w.memory - w.reserved_memory < req.memory:
        return (f"memory: needs {req.memory} MiB, {w.memory - w.reserved_memory} of {w.memory} free",
                "not enough memory")
    if ports & w.ports:
        return f"host port {sorted(ports & w.ports)[0]} already taken", "host port taken"
    if distinct and w.groups.get(req.group):
        return f"distinctInstance: already runs a task of {req.group}", "distinctInstance"
    for expression, tree in member:
        if not evaluate(tree, w.attributes):
            return f"memberOf({expression}) is false", "memberOf"
    raise AssertionError("a worker dropped for no reason")


def _scores(req: TaskRequest, kept: list[WorkerView], everyone: list[WorkerView],
            rng: random.Random) -> list[tuple]:
    """One tuple per kept worker, lower is better, one element per strategy."""
    columns = []
    for s in req.strategy:
        kind, fld = s["type"], s.get("field", "")
        if kind == "random":
            columns.append([rng.random() for _ in kept])
        elif kind == "binpack":
            if fld == "cpu":
                columns.append([w.cpu - w.reserved_cpu - req.cpu for w in kept])
            else:
                columns.append([w.memory - w.reserved_memory - req.memory for w in kept])
        elif fld == "instanceId":
            columns.append([w.groups.get(req.group, 0) for w in kept])
        else:
            # tasks of the group per value of the attribute, counted over every worker that
            # has the value (also the ones dropped now: they still hold tasks of the group)
            attr = fld[10:]
            per_value: Counter = Counter()
            for w in everyone:
                n = w.groups.get(req.group, 0)
                if n:
                    per_value[w.attributes.get(attr, "")] += n
            columns.append([per_value[w.attributes.get(attr, "")] for w in kept])
    return list(zip(*columns, strict=True)) if columns else [() for _ in kept]


def _describe(strategy: list[dict[str, str]], score: tuple) -> str:
    parts = []
    for s, value in zip(strategy, score, strict=True):
        kind, fld = s["type"], s.get("field", "")
        if kind == "random":
            parts.append(f"random {value:.3f}")
        elif kind == "binpack":
            parts.append(f"binpack({fld}): {value} {'units' if fld == 'cpu' else 'MiB'} left after")
        else:
            parts.append(f"spread({fld}): {value} of the group {'here' if fld == 'instanceId' else 'on its value'}")
    return ", ".join(parts) or "no strategy"
