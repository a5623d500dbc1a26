

def test_a_run_written_before_a_setting_existed_resumes_at_its_default(tmp_path):
    """A config.yaml without a newer setting (such as sampling.thinking) reads as that setting's default."""
    from ttscale.config import RunConfig
    from ttscale.data.results import config_difference

    here = RunConfig().to_dict()
    there = RunConfig().to_dict()
    del there["sampling"]["thinking"], there["prompt"]["chat_template_kwargs"], there["search"]["step_split"]
    assert config_difference(there, here) is None
    here["search"]["step_split"] = "paragraph"
    assert config_difference(there, here) == "search.step_split: 'delimiter' there, 'paragraph' now"
