"""What every lowering shares: the stages so far, their names, the data shipped, notes for explain()."""
from __future__ import annotations

from typing import Callable, Iterable

from ..runtime.plan import Plan, Stage
from ..tasks import shipped


class PlanBuilder:
    """Collects one plan's stages, shipped data, memory advice and explain() notes as lowering walks."""

    def __init__(self, settings: dict, explaining: bool = False):
        self.settings = settings
        self.explaining = explaining      # explain(): size shipped data without encoding it
        self.stages: list[Stage] = []
        self.data: dict[str, bytes] = {}
        self.advice: dict[str, str] = {}  # stage name -> how to make its tasks smaller
        self.notes: list[str] = []        # what explain() should add

    def name(self, kind: str) -> str:
        """The next stage's name, one scheme for every plan: ``{index}-{kind}``.

        A persisted bag's stage keeps the name it had in its own job (its keys
        are under it), so an index it took is skipped.
        """
        taken = {s.name for s in self.stages}
        i = len(self.stages)
        while f"{i}-{kind}" in taken:
            i += 1
        return f"{i}-{kind}"

    def add(self, stage: Stage, advice: str = "") -> str:
        self.stages.append(stage)
        if advice:
            self.advice[stage.name] = advice
        return stage.name

    def ship(self, name: str, pieces: Iterable, size: Callable[[object], int],
             encode: Callable[[object], bytes] | None = None, decode: str = "codec") -> shipped.Shipped:
        """Pack driver-held pieces into the plan's data object ``name``; the reader of piece i.

        While explaining, only ``size(piece)`` is taken: nothing is encoded.
        """
        if self.explaining:
            offsets = [0]
            for piece in pieces:
                offsets.append(offsets[-1] + size(piece))
        else:
            self.data[name], offsets = shipped.pack(pieces, **({"encode": encode} if encode else {}))
        return shipped.Shipped(name, offsets, decode)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def plan(self, outputs: list[str]) -> Plan:
        return Plan(self.stages, outputs, self.data)
