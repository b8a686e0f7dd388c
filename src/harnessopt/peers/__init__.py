"""Peers: other optimizers run on harnessopt's own machinery, for head-to-head experiments.

`gepa_adapter` lets GEPA (the `[peers]` extra) optimize the prompt text of a seed harness, with
every metric call a rollout of harnessopt's Evaluator (same task model, sandbox, cache and rollout
accounting) and every reflection a call of the meta model through harnessopt's gateway;
`gepa_run` runs it into an ordinary run directory that reports read like an optimize run's.
"""
