"""Which images take part in GAD and on which side each stands: a pair of classes, one class against the rest, or two
groups of classes (our reading of Mazini Rodrigues, Boutry & Najman 2024, arXiv 2401.14434; see PAPERS.md).

Every strategy has two sides, ``a`` and ``b``, each a set of classes. An image takes part when its label is on a side;
the distancing pushes the logits of the two sides apart for it (``interpgrad.gad.distancing``):

- ``Pair(k, l)``: side a = {k}, side b = {l} (the paper's case: two classes);
- ``OneVsAll(k)``: side a = {k}, side b = every other class of the model;
- ``Split(group_a, group_b)``: two disjoint groups (classes in neither group take no part and keep their logits).

Classes are given by name or by index; ``resolved(class_names)`` checks them against the model (a ConfigError names the
valid ones) and returns the same strategy with indices.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import torch

from ..errors import ConfigError

__all__ = ["OneVsAll", "Pair", "STRATEGIES", "Split", "Strategy", "parse_strategy", "strategy_from_dict"]

ClassSpec = int | str


def _class_index(value: ClassSpec, class_names: Sequence[str]) -> int:
    """The index of a class given by name or index (a name first: checkpoints without names call classes "0", "1")."""
    if isinstance(value, str) and value.strip() in class_names:
        return list(class_names).index(value.strip())
    try:
        index = int(value)
    except (TypeError, ValueError):
        index = -1
    if isinstance(value, bool) or not 0 <= index < len(class_names) or (isinstance(value, float) and value != index):
        listed = ", ".join(f"{name} ({i})" for i, name in enumerate(class_names[:20]))
        more = f", ... ({len(class_names)} classes, indices 0-{len(class_names) - 1})" if len(class_names) > 20 else ""
        raise ConfigError(f"class {value!r} is not in the model; its classes are {listed}{more}")
    return index


def _distinct(indices: Sequence[int], class_names: Sequence[str], what: str) -> tuple[int, ...]:
    repeated = sorted({index for index in indices if list(indices).count(index) > 1})
    if repeated:
        raise ConfigError(f"{what} names {class_names[repeated[0]]} twice; the two sides must not share a class")
    return tuple(indices)


@dataclass(frozen=True)
class Strategy(ABC):
    """The common interface: ``kind``, ``side_a`` / ``side_b`` (class indices, once ``resolved``), ``classes`` (both
    sides), ``sides(labels)`` and ``describe``."""

    kind: ClassVar[str]

    @property
    @abstractmethod
    def side_a(self) -> tuple[int, ...]:
        """The classes of side a."""

    @property
    @abstractmethod
    def side_b(self) -> tuple[int, ...]:
        """The classes of side b."""

    @abstractmethod
    def resolved(self, class_names: Sequence[str]) -> "Strategy":
        """The same strategy with class indices, checked against the model's ``class_names`` (ConfigError)."""

    def _check_resolved(self) -> None:
        if not all(isinstance(c, int) for c in (*self.side_a, *self.side_b)):
            raise ValueError(f"{self!r} names classes by name: call resolved(class_names) first")

    @property
    def classes(self) -> tuple[int, ...]:
        """Every class that takes part, side a first."""
        return (*self.side_a, *self.side_b)

    def sides(self, labels: torch.Tensor) -> torch.Tensor:
        """The side of each image from its label: 0 (side a), 1 (side b) or -1 (takes no part), LongTensor [N]."""
        self._check_resolved()
        labels = torch.as_tensor(labels, dtype=torch.long)
        sides = torch.full_like(labels, -1)
        sides[torch.isin(labels, torch.tensor(self.side_a, dtype=torch.long, device=labels.device))] = 0
        sides[torch.isin(labels, torch.tensor(self.side_b, dtype=torch.long, device=labels.device))] = 1
        return sides

    def describe(self, class_names: Sequence[str] | None = None) -> str:
        """``circle vs square``, ``circle vs rest``, ``circle+square vs star+heart``."""
        def name(index: int | str) -> str:
            return str(class_names[index]) if class_names is not None and isinstance(index, int) else str(index)

        b = "rest" if self.kind == "one_vs_all" else "+".join(name(c) for c in self.side_b)
        return f"{'+'.join(name(c) for c in self.side_a)} vs {b}"

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """As JSON (``strategy_from_dict`` reads it back)."""


@dataclass(frozen=True)
class Pair(Strategy):
    """Class ``k`` (side a) against class ``l`` (side b): only their images take part."""

    k: ClassSpec
    l: ClassSpec  # noqa: E741  (the paper's names)

    kind = "pair"

    @property
    def side_a(self) -> tuple[int, ...]:
        return (self.k,)  # type: ignore[return-value]

    @property
    def side_b(self) -> tuple[int, ...]:
        return (self.l,)  # type: ignore[return-value]

    def resolved(self, class_names: Sequence[str]) -> "Pair":
        k, l = (_class_index(self.k, class_names), _class_index(self.l, class_names))  # noqa: E741
        _distinct([k, l], class_names, "the pair")
        return Pair(k, l)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "k": self.k, "l": self.l}


@dataclass(frozen=True)
class OneVsAll(Strategy):
    """Class ``k`` (side a) against every other class of the model (side b): every image takes part."""

    k: ClassSpec
    num_classes: int | None = None  # known once resolved

    kind = "one_vs_all"

    @property
    def side_a(self) -> tuple[int, ...]:
        return (self.k,)  # type: ignore[return-value]

    @property
    def side_b(self) -> tuple[int, ...]:
        if self.num_classes is None:
            raise ValueError(f"{self!r}: call resolved(class_names) first")
        return tuple(c for c in range(self.num_classes) if c != self.k)

    def resolved(self, class_names: Sequence[str]) -> "OneVsAll":
        if len(class_names) < 2:
            raise ConfigError("one-vs-all needs a model with at least two classes")
        return OneVsAll(_class_index(self.k, class_names), len(class_names))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "k": self.k, "num_classes": self.num_classes}


@dataclass(frozen=True)
class Split(Strategy):
    """Two disjoint groups of classes, ``group_a`` (side a) and ``group_b`` (side b); the images of both take part."""

    group_a: tuple[ClassSpec, ...]
    group_b: tuple[ClassSpec, ...]

    kind = "split"

    def __post_init__(self) -> None:
        object.__setattr__(self, "group_a", tuple(self.group_a))
        object.__setattr__(self, "group_b", tuple(self.group_b))
        if not self.group_a or not self.group_b:
            raise ConfigError("a split needs at least one class in each group")

    @property
    def side_a(self) -> tuple[int, ...]:
        return self.group_a  # type: ignore[return-value]

    @property
    def side_b(self) -> tuple[int, ...]:
        return self.group_b  # type: ignore[return-value]

    def resolved(self, class_names: Sequence[str]) -> "Split":
        a = [_class_index(c, class_names) for c in self.group_a]
        b = [_class_index(c, class_names) for c in self.group_b]
        _distinct(a + b, class_names, "the split")
        return Split(tuple(a), tuple(b))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "group_a": list(self.group_a), "group_b": list(self.group_b)}


STRATEGIES = {"pair": Pair, "one_vs_all": OneVsAll, "split": Split}


def strategy_from_dict(data: Mapping[str, Any]) -> Strategy:
    """The strategy ``to_dict`` wrote (a ConfigError for anything else)."""
    kind = data.get("kind") if isinstance(data, Mapping) else None
    try:
        if kind == "pair":
            return Pair(data["k"], data["l"])
        if kind == "one_vs_all":
            return OneVsAll(data["k"], data.get("num_classes"))
        if kind == "split":
            return Split(tuple(data["group_a"]), tuple(data["group_b"]))
    except (KeyError, TypeError):
        pass
    raise ConfigError(f"not a GAD strategy: {data!r}")


def _names(text: str) -> list[ClassSpec]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_strategy(classes: str | None = None, one_vs_all: str | None = None, split: str | None = None) -> Strategy:
    """The strategy of exactly one of ``classes="K,L"``, ``one_vs_all="K"``, ``split="A,B/C,D"`` (names or indices,
    as typed on the command line), not yet resolved against a model."""
    given = [name for name, value in (("classes", classes), ("one_vs_all", one_vs_all), ("split", split)) if value]
    if len(given) != 1:
        raise ConfigError("choose one strategy: --classes K,L or --one-vs-all K or --split A,B/C,D")
    if classes:
        names = _names(classes)
        if len(names) != 2:
            raise ConfigError(f"--classes takes two classes K,L, got {classes!r}")
        return Pair(*names)
    if one_vs_all:
        names = _names(one_vs_all)
        if len(names) != 1:
            raise ConfigError(f"--one-vs-all takes one class, got {one_vs_all!r}")
        return OneVsAll(names[0])
    groups = str(split).split("/")
    if len(groups) != 2 or not _names(groups[0]) or not _names(groups[1]):
        raise ConfigError(f"--split takes two groups of classes A,B/C,D, got {split!r}")
    return Split(tuple(_names(groups[0])), tuple(_names(groups[1])))
