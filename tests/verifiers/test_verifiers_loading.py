"""Checkpoints load through the real code path (cfg.model = a saved directory); missing ones fail clearly."""

from __future__ import annotations

import pytest
import torch

from ttscale.config import VerifierConfig
from ttscale.errors import ModelLoadError
from ttscale.verifiers import build_verifier


def _saved(tmp_path, model, tok):
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    return str(tmp_path)


def _same_as_in_memory(name, path, in_memory, sample):
    loaded = build_verifier(VerifierConfig(name=name, model=path, device="cpu", dtype="float32"))
    assert loaded.n_params == in_memory.n_params
    assert loaded.score(*sample) == [pytest.approx(row, abs=1e-5) for row in in_memory.score(*sample)]


def test_rlhflow_loads_a_saved_llama(tmp_path, llama3_prm, sample):
    from ttscale.verifiers.rlhflow import RLHFlowPRM

    model, tok = llama3_prm
    _same_as_in_memory("rlhflow", _saved(tmp_path, model, tok), RLHFlowPRM(model=model, tokenizer=tok), sample)


def test_math_shepherd_loads_a_saved_mistral(tmp_path, mistral_prm, sample):
    from ttscale.verifiers.math_shepherd import MathShepherdPRM

    model, tok = mistral_prm
    path = _saved(tmp_path, model, tok)
    _same_as_in_memory("math_shepherd", path, MathShepherdPRM(model=model, tokenizer=tok), sample)


def test_qwen_prm_loads_a_saved_token_classifier(tmp_path, qwen_token_classifier, sample):
    from ttscale.verifiers.qwen_prm import QwenPRM

    model, tok = qwen_token_classifier
    path = _saved(tmp_path, model, tok)
    _same_as_in_memory("qwen_prm", path, QwenPRM(model=model, tokenizer=tok), sample)


def test_skywork_loads_base_and_v_head_from_one_checkpoint(tmp_path, qwen_value_model, sample):
    """Like the released checkpoints: `v_head.summary.*` stored next to the base weights."""
    from safetensors.torch import load_file, save_file

    from ttscale.verifiers.skywork import SkyworkPRM

    model, tok, head = qwen_value_model
    path = _saved(tmp_path, model, tok)
    weights = load_file(tmp_path / "model.safetensors")
    weights.update({f"v_head.{k}": v.clone() for k, v in head.state_dict().items()})
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    in_memory = SkyworkPRM(model=model, tokenizer=tok, v_head=head)
    loaded = build_verifier(VerifierConfig(name="skywork", model=path, device="cpu", dtype="float32"))
    assert loaded.n_params == sum(p.numel() for p in model.model.parameters()) + 33  # no lm_head loaded
    assert loaded.score(*sample) == [pytest.approx(r, abs=1e-5) for r in in_memory.score(*sample)]


def test_skywork_without_a_value_head_is_refused(tmp_path, qwen_value_model):
    model, tok, _ = qwen_value_model
    path = _saved(tmp_path, model, tok)
    with pytest.raises(ModelLoadError, match="no value head"):
        build_verifier(VerifierConfig(name="skywork", model=path, device="cpu"))


def test_auto_dtype_follows_the_cpu_class(tmp_path, llama3_prm, sample, native_bf16):
    model, tok = llama3_prm
    path = _saved(tmp_path, model, tok)
    verifier = build_verifier(VerifierConfig(name="rlhflow", model=path, device="cpu", dtype="auto"))
    assert verifier.model.dtype == (torch.bfloat16 if native_bf16 else torch.float32)
    reference = build_verifier(VerifierConfig(name="rlhflow", model=path, device="cpu", dtype="float32")).score(*sample)
    # bf16 weights keep ~3 significant digits; on this fixture's wide random logits that moves a step
    # probability by up to ~0.05 (measured), so fp32's 1e-6 would fail on CI machines with native bf16
    tolerance = 0.1 if native_bf16 else 1e-6
    assert verifier.score(*sample) == [pytest.approx(r, abs=tolerance) for r in reference]


def test_dtype_is_configurable(tmp_path, llama3_prm, sample):
    model, tok = llama3_prm
    path = _saved(tmp_path, model, tok)
    verifier = build_verifier(VerifierConfig(name="rlhflow", model=path, device="cpu", dtype="bfloat16"))
    assert verifier.model.dtype == torch.bfloat16
    scores = verifier.score(*sample)
    assert all(0.0 <= x <= 1.0 for row in scores for x in row)


@pytest.mark.parametrize("name", ["rlhflow", "math_shepherd", "qwen_prm", "skywork", "lm_judge"])
def test_a_missing_local_model_gives_a_clear_error(tmp_path, name):
    with pytest.raises(ModelLoadError, match="does not exist"):
        build_verifier(VerifierConfig(name=name, model=str(tmp_path / "no-such-prm"), device="cpu"))


def test_a_missing_hub_model_gives_a_clear_error(monkeypatch):
    import huggingface_hub.constants

    # offline: the same error path as a failed download, without ~45 s of connection retries
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError, match="no-such-org/no-such-prm"):
        build_verifier(VerifierConfig(name="rlhflow", model="no-such-org/no-such-prm", device="cpu"))


def test_model_without_tokenizer_is_refused(llama3_prm):
    from ttscale.errors import ConfigError
    from ttscale.verifiers.rlhflow import RLHFlowPRM

    with pytest.raises(ConfigError, match="both model= and tokenizer="):
        RLHFlowPRM(model=llama3_prm[0])


def test_lm_judge_refuses_a_model_without_chat_template(smol_judge):
    from transformers import AutoTokenizer

    from ttscale.errors import ConfigError
    from ttscale.verifiers.lm_judge import LMJudge

    model, tok = smol_judge
    plain = AutoTokenizer.from_pretrained(tok.name_or_path)
    plain.chat_template = None
    with pytest.raises(ConfigError, match="needs a chat model"):
        LMJudge(model=model, tokenizer=plain)


def test_qwen_prm_runs_a_models_own_code_only_when_trusted(tmp_path):
    """qwen_prm runs a checkpoint's own Python code only when verifier.trust_remote_code is set."""
    import json

    # A checkpoint naming the remote-code architecture, whose auto_map points at code nobody may run.
    (tmp_path / "config.json").write_text(json.dumps({
        "architectures": ["Qwen2ForProcessRewardModel"], "model_type": "qwen2",
        "auto_map": {"AutoModel": "modeling_evil.Qwen2ForProcessRewardModel"},
    }))
    (tmp_path / "modeling_evil.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').write('yes')\n")
    with pytest.raises(ModelLoadError, match=r"Qwen2ForProcessRewardModel\) needs the Python code .* "
                                            r"set verifier.trust_remote_code=true"):
        build_verifier(VerifierConfig(name="qwen_prm", model=str(tmp_path), device="cpu"))
    assert not (tmp_path / "ran").exists()
