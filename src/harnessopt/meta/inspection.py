"""The workbench's read-only actions: what the meta-agent can look at (per feedback mode).

Overview, failures, paged traces, trace search, harness code, diffs, and the failure digest of a
candidate. None of them spends budget or changes the run. A mixin of `Workbench`, which holds the
state they read (candidates, search tasks, the store and the feedback view).
"""

from __future__ import annotations

import difflib

from harnessopt.meta import actions as A
from harnessopt.meta.digest import Digest, build_digest
from harnessopt.records import RolloutTrace


class ActionError(ValueError):
    """An impossible action (unknown candidate or task, bad edit, no budget): an error observation."""


class InspectionActions:
    async def _do_overview(self, a: A.Overview) -> str:
        lines = [f"champion: {self.state.champion}"
                 + (f" (search score {self.candidates[self.state.champion].full_eval.score:.3f})"
                    if self.candidates[self.state.champion].full_eval else "")]
        lines.append(f"noise floor (seed rerun): {self.state.noise_floor:.3f}")
        lines.append("candidates:")
        for c in self.candidates.values():
            score = f"{c.full_eval.score:.3f}" if c.full_eval else "not fully evaluated"
            flags = f" [{'; '.join(c.meta.findings)[:120]}]" if c.meta.findings else ""
            lines.append(f"  {c.id} parent={c.meta.parent or '-'} search={score}{flags} :: {c.meta.hypothesis[:100]}")
        ledger = self.store.ledger()[-12:]
        lines.append("recent evaluations (kind candidate tasks x trials -> score):")
        lines += [f"  {r.kind} {r.candidate} {r.n_tasks}x{r.trials} -> {r.score:.4f} {r.status}"
                  for r in ledger if r.split == "search"]
        lines.append(f"search split: {len(self.search_tasks)} tasks, e.g. {', '.join(list(self.search_ids)[:5])}")
        return "\n".join(lines)

    def _search_rollouts(self, cid: str | None = None) -> list[RolloutTrace]:
        ids = [cid] if cid else list(self.candidates)
        out = []
        for i in ids:
            out += [t for t in self.store.rollouts(i) if t.split == "search" and t.task_id in self.search_ids]
        return out

    async def _do_list_failures(self, a: A.ListFailures) -> str:
        c = self.candidate(a.candidate)
        return self.view.failures(self._search_rollouts(c.id))

    async def _do_read_trace(self, a: A.ReadTrace) -> str:
        c = self.candidate(a.candidate)
        self._check_task(a.task_id)
        match = [t for t in self._search_rollouts(c.id) if t.task_id == a.task_id and t.trial == a.trial]
        if not match:
            raise ActionError(f"no rollout of {c.id} on {a.task_id} trial {a.trial}; spot_check it first")
        pages = self.view.trace_pages(match[0])
        if a.page > len(pages):
            raise ActionError(f"page {a.page} does not exist; the trace has {len(pages)} page(s)")
        return f"[page {a.page}/{len(pages)}]\n{pages[a.page - 1]}"

    async def _do_search_traces(self, a: A.SearchTraces) -> str:
        if a.candidate:
            self.candidate(a.candidate)
        return self.view.search(self._search_rollouts(a.candidate), a.pattern)

    async def _do_read_harness(self, a: A.ReadHarness) -> str:
        c = self.candidate(a.candidate)
        return f"# {c.id} (parent {c.meta.parent or '-'}): {c.meta.hypothesis}\n{c.source}"

    async def _do_diff(self, a: A.Diff) -> str:
        x, y = self.candidate(a.a), self.candidate(a.b)
        diff = "".join(difflib.unified_diff(x.source.splitlines(keepends=True), y.source.splitlines(keepends=True),
                                            fromfile=x.id, tofile=y.id))
        return diff or "no difference"

    def digest_of(self, cid: str) -> Digest:
        """Failure clusters of a candidate's search rollouts (its evaluation trials; not the seed's
        noise rerun, which repeats the same tasks)."""
        traces = [t for t in self._search_rollouts(cid) if t.trial < self.trials]
        return build_digest(traces, candidate=cid, labels=self.benchmark.labels,
                            task_shape=self.benchmark.spec.task_shape)
