import json

import pytest

from ttscale.backends.fake import FakeGenerator
from ttscale.data.results import read_results
from ttscale.errors import ConfigError, RunDirError
from ttscale.runner import run
from ttscale.shards import merge, parse_shard, shard_dir
from ttscale.verifiers.fake import FakeVerifier


def _answers(run_dir):
    return {r.id: (r.selected, [c.text for c in r.completions]) for r in read_results(run_dir)}


@pytest.mark.parametrize("strategy", ["best_of_n", "beam_search"])
def test_sharded_and_merged_equals_unsharded(fake_cfg, tmp_path, strategy):
    over = ["dataset.limit=9", f"search.strategy={strategy}", "verifier.name=fake", "search.problems_per_batch=2"]
    whole = fake_cfg(*over, f"output.dir={tmp_path / 'whole'}")
    run(whole, generator=FakeGenerator(), verifier=FakeVerifier(), progress=False)
    sharded = fake_cfg(*over, f"output.dir={tmp_path / 'sharded'}")
    for i in range(3):
        run(sharded, generator=FakeGenerator(), verifier=FakeVerifier(), progress=False, shard=(i, 3))
    n_rows, metrics = merge([shard_dir(tmp_path / "sharded", i, 3) for i in (2, 0, 1)], tmp_path / "merged")
    assert n_rows == 9 and metrics["n_problems"] == 9
    assert _answers(tmp_path / "merged") == _answers(tmp_path / "whole")
    order = [json.loads(line)["id"] for line in (tmp_path / "merged" / "completions.jsonl").open()]
    assert sorted(order) == sorted(_answers(tmp_path / "whole"))


def test_merge_refuses_gaps_duplicates_and_mismatches(fake_cfg, tmp_path):
    cfg = fake_cfg("dataset.limit=6", f"output.dir={tmp_path / 's'}")
    for i in range(2):
        run(cfg, generator=FakeGenerator(), progress=False, shard=(i, 2))
    with pytest.raises(RunDirError, match="needs each of 0..1 exactly once"):
        merge([shard_dir(tmp_path / "s", 0, 2)], tmp_path / "m")
    other = fake_cfg("dataset.limit=6", "search.n=2", f"output.dir={tmp_path / 'o'}")
    run(other, generator=FakeGenerator(), progress=False, shard=(1, 2))
    with pytest.raises(RunDirError, match="different config"):
        merge([shard_dir(tmp_path / "s", 0, 2), shard_dir(tmp_path / "o", 1, 2)], tmp_path / "m")
    # a shard that crashed half way is refused until resumed
    path = shard_dir(tmp_path / "s", 1, 2) / "completions.jsonl"
    path.write_text(path.read_text().splitlines(keepends=True)[0])
    with pytest.raises(RunDirError, match="unfinished"):
        merge([shard_dir(tmp_path / "s", i, 2) for i in range(2)], tmp_path / "m")
    with pytest.raises(RunDirError, match="not a shard directory"):
        merge([tmp_path], tmp_path / "m")


@pytest.mark.parametrize("text", ["3/3", "a/b", "1", "-1/2"])
def test_bad_shard_spec(text):
    with pytest.raises(ConfigError, match="accepted: i/K"):
        parse_shard(text)


@pytest.mark.slow
def test_ray_runs_two_local_shard_workers_with_smollm2(tmp_path):
    """Two Ray tasks on local CPUs, SmolLM2, results merged into one run dir."""
    pytest.importorskip("ray")
    from ttscale.distributed import run_on_ray
    from ttscale.recipe import load_config

    cfg = load_config(
        None,
        ["prompt.mode=completion", "search.step_delimiter=\\n", "dataset.limit=4", "dataset.levels=[1]",
         "search.n=2", "search.problems_per_batch=1", "sampling.max_new_tokens=24", f"output.dir={tmp_path / 'ray'}",
         "model.max_batch_size=4"],
    )
    n_rows, metrics = run_on_ray(cfg, ".", 2)
    assert n_rows == 4 and metrics["n_problems"] == 4
    assert {r.id for r in read_results(tmp_path / "ray")} == {r.id for s in range(2) for r in read_results(shard_dir(tmp_path / "ray", s, 2))}
    assert all(len(r.completions) == 2 for r in read_results(tmp_path / "ray"))


def test_merge_output_is_refused_like_run_unless_same_config_or_overwrite(fake_cfg, tmp_path):
    """merge --output overwrites nothing it should not: another run, a non-run folder, one of its own shards."""
    cfg = fake_cfg("dataset.limit=6", f"output.dir={tmp_path / 's'}")
    shards = [shard_dir(tmp_path / "s", i, 2) for i in range(2)]
    for i in range(2):
        run(cfg, generator=FakeGenerator(), progress=False, shard=(i, 2))
    before = shards[1].joinpath("completions.jsonl").read_text()
    for inside in (shards[1], shards[1] / "merged"):
        with pytest.raises(RunDirError, match="inside the input shard"):
            merge(shards, inside, overwrite=True)
    assert shards[1].joinpath("completions.jsonl").read_text() == before
    other = fake_cfg("dataset.limit=6", "search.n=2", f"output.dir={tmp_path / 'other'}")
    run(other, generator=FakeGenerator(), progress=False)
    with pytest.raises(RunDirError, match=r"different config \(search\.n: 2 there, 4 now\)"):
        merge(shards, tmp_path / "other")
    assert merge(shards, tmp_path / "other", overwrite=True)[0] == 6
    assert merge(shards, tmp_path / "other")[0] == 6  # now the same config: merging again is allowed
    assert merge(shards, tmp_path / "s")[0] == 6  # the shards' parent (as `run --ray` merges)
    assert len(read_results(tmp_path / "s")) == 6
