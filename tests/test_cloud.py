"""The same optimize run with a cloud model string. Skipped unless an API key is present."""

import os

import pytest

from harnessopt.budget import Budget
from harnessopt.optimizer import OptimizeConfig, optimize

CLOUD = [
    ("OPENAI_API_KEY", "openai/gpt-4o-mini"),
    ("ANTHROPIC_API_KEY", "anthropic/claude-3-5-haiku-latest"),
]


@pytest.mark.parametrize("env, model", CLOUD)
def test_optimize_with_a_cloud_meta_model(repo, tmp_path, env, model):
    if not os.environ.get(env):
        pytest.skip(f"{env} not set: the cloud path runs only with a key")
    config = OptimizeConfig(
        harness=str(repo / "harnesses/home_intents_naive.py"), benchmark="home_intents",
        meta_model=model, budget=Budget(iterations=1, rollouts=40, meta_usd=0.05, meta_steps_per_iteration=4),
        search_limit=8, test_limit=8, out=str(tmp_path),
    )
    result = optimize(config)
    assert result.spend.meta.calls >= 1 and result.spend.meta.cost_usd <= 0.05
    assert result.champion_search >= result.seed_search
