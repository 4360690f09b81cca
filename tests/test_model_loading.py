"""Loading SpTransformer checkpoints: formats, provenance, names, and clear failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from sptx_pipeline.cli import main
from sptx_pipeline.models import describe_model, load_model
from sptx_pipeline.models.loading import CheckpointError, load_sptransformer
from sptx_pipeline.models.random_checkpoint import TINY_CONFIG, write_random_checkpoint
from sptx_pipeline.models.sptransformer import OFFICIAL_TISSUES
from sptx_pipeline.provenance import sha256_file
from tests.model_fixtures import TINY, mm_model, n_flanked, random_tokens, to_original_state_dict

TINY_HEADS = dict(flank=60, num_attention_heads=4, num_local_attention_heads=1)


@pytest.fixture(scope="module")
def tiny_mm():
    return mm_model(TINY, seed=1)


@pytest.fixture
def tiny_dir(tiny_mm, tmp_path):
    tiny_mm.save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt"


def edit_weights(directory, edit):
    path = directory / "model.safetensors"
    state = load_file(str(path))
    edit(state)
    save_file(state, str(path))


def test_directory_loads_with_provenance_and_official_names(tiny_dir, tiny_mm):
    model = load_model(str(tiny_dir))
    assert not model.training
    assert model.flank == 60 and model.max_seq_len == 64 and model.default_chunk_size == 1000
    # multimolecule writes placeholder tissue names; we report the official ones
    assert json.loads((tiny_dir / "config.json").read_text())["tissue_names"][0] == "tissue_0"
    assert model.channels == ("no_splice", "acceptor", "donor", *OFFICIAL_TISSUES)
    assert model.provenance == {
        "source": str(tiny_dir),
        "sha256": sha256_file(tiny_dir / "model.safetensors"),
    }
    info = describe_model(str(tiny_dir))
    assert info == {"flank": 60, "channels": list(model.channels), "default_chunk_size": 1000}


def test_custom_tissue_names_are_kept(tiny_dir):
    config = json.loads((tiny_dir / "config.json").read_text())
    config["tissue_names"] = [f"t{i}" for i in range(15)]
    (tiny_dir / "config.json").write_text(json.dumps(config))
    assert load_model(str(tiny_dir)).channels[3:] == tuple(config["tissue_names"])


def test_model_prefixed_keys_load_to_the_same_outputs(tiny_dir, tiny_mm):
    edit_weights(tiny_dir, lambda s: s.update({f"model.{k}": s.pop(k) for k in list(s)}))
    model = load_model(str(tiny_dir))
    x = random_tokens(2, 30)
    with torch.inference_mode():
        assert (model(n_flanked(x, 60)) - tiny_mm(x).logits).abs().max() <= 1e-4


def test_tiny_original_checkpoint_with_overrides(tiny_mm, tiny_dir, tmp_path):
    path = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": to_original_state_dict(tiny_mm)}, path)
    model = load_sptransformer(path, **TINY_HEADS)
    reference = load_model(str(tiny_dir)).state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())
    assert model.provenance["sha256"] == sha256_file(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("encoder.layer_norm.weight"), "missing keys encoder.layer_norm.weight"),
        (lambda s: s.update(extra=torch.zeros(1)), "unexpected keys extra"),
        (lambda s: s.update({"prediction.usage.bias": torch.zeros(3)}), "wrong shapes"),
        (lambda s: s["encoder.layer_norm.bias"].__setitem__(0, float("nan")), "non-finite"),
    ],
)
def test_bad_weights_fail_clearly(tiny_dir, edit, message):
    edit_weights(tiny_dir, edit)
    with pytest.raises(CheckpointError, match=message):
        load_model(str(tiny_dir))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_type": "spliceai"}, "not an SpTransformer"),
        ({"max_seq_len": 65}, "divisible by bucket_size"),
        ({"hidden_act": "gelu"}, "unsupported hidden_act"),
    ],
)
def test_bad_config_fails_clearly(tiny_dir, change, message):
    config = json.loads((tiny_dir / "config.json").read_text())
    (tiny_dir / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(CheckpointError, match=message):
        load_model(str(tiny_dir))


def test_missing_and_unreadable_sources(tmp_path, tiny_mm):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_model(str(tmp_path / "empty"))
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="readable original checkpoint"):
        load_model(str(tmp_path / "junk.ckpt"))
    state = to_original_state_dict(tiny_mm)
    state["attn.something_new"] = torch.zeros(1)
    torch.save(state, tmp_path / "extra.ckpt")
    with pytest.raises(CheckpointError, match="unexpected keys attn.something_new"):
        load_sptransformer(tmp_path / "extra.ckpt", **TINY_HEADS)


def test_offline_hub_id_names_the_id_and_the_way_out(tmp_path):
    code = (
        "from sptx_pipeline.models import load_model\nload_model('multimolecule/sptransformer')\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "CheckpointError" in result.stderr
    assert "'multimolecule/sptransformer'" in result.stderr
    assert "pass that directory as the model" in result.stderr
    message = result.stderr.splitlines()[-1]
    assert "`hf download multimolecule/sptransformer`" in message
    assert "huggingface-cli" not in message  # current huggingface_hub no longer installs it
    assert "model=spliceai" in message and "sptx random-checkpoint" in message


def test_a_mistyped_local_path_is_not_asked_of_the_hub(tmp_path, monkeypatch):
    (tmp_path / "checkpoints" / "random").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for load in (load_model, describe_model):
        with pytest.raises(FileNotFoundError) as err:
            load("checkpoints/randm")
        message = str(err.value)
        assert "'checkpoints/randm' does not exist: no such local path" in message
        assert "checkpoints/ holds random" in message and "Hugging Face hub (" not in message


def test_non_finite_inference_raises(tiny_dir):
    model = load_model(str(tiny_dir))
    with torch.no_grad():
        model.prediction.usage.bias[0] = float("inf")  # e.g. a value corrupted after loading
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        model(random_tokens(1, 150))


def test_bad_tokens_and_short_windows_raise(tiny_dir):
    model = load_model(str(tiny_dir))
    with pytest.raises(ValueError, match="0..4"):
        model(torch.full((1, 130), 5))
    with pytest.raises(ValueError, match="leaves no target"):
        model(torch.zeros(1, 120, dtype=torch.long))
    with pytest.raises(ValueError, match="precision"):
        load_model(str(tiny_dir), precision="float64")


def test_cpu_float16_choice_keeps_float32_numbers(tiny_dir):
    """float16 applies on CUDA only (bfloat16 computes on CPUs: tests/test_precision.py)."""
    x = random_tokens(1, 150)
    with torch.inference_mode():
        ref = load_model(str(tiny_dir))(x)
        assert torch.equal(load_model(str(tiny_dir), precision="float16")(x), ref)


def test_random_checkpoint_loads_in_multimolecule_with_the_same_outputs(tmp_path):
    from multimolecule import SpTransformerModel

    directory = write_random_checkpoint(tmp_path / "rand", seed=4, **TINY_CONFIG)
    ours = load_model(str(directory))
    mm, info = SpTransformerModel.from_pretrained(directory, output_loading_info=True)
    assert not any(info.values()), info  # nothing missing, unexpected or mismatched
    mm.eval()
    bn = mm.feature_encoders[0].resblocks[3].norm1
    assert bn.running_var.std() > 0.1 and bn.running_mean.abs().max() > 0.1
    assert mm.encoder.position_embeddings.weights[0].abs().max() > 0.1
    x = random_tokens(2, 100)
    window = random_tokens(2, 100 + 2 * TINY_CONFIG["flank"], seed=3)
    from tests.model_fixtures import mm_real_flank_logits

    with torch.inference_mode():
        ref = mm(x).logits
        assert ref.abs().max() > 0.1
        assert (ours(n_flanked(x, 200)) - ref).abs().max() <= 1e-4
        assert (ours(window) - mm_real_flank_logits(mm, window)).abs().max() <= 1e-4


def test_random_checkpoint_cli_and_model_info(tmp_path, capsys):
    assert main(["random-checkpoint", str(tmp_path / "r"), "--tiny"]) == 0
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert "RANDOM WEIGHTS" in config["description"] and config["context"] == 200
    capsys.readouterr()
    assert main(["model-info", "--model", str(tmp_path / "r")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["flank"] == 200 and info["default_chunk_size"] == 1000
    assert len(info["channels"]) == 18
    assert main(["model-info", "--model", "spliceai"]) == 0
    assert json.loads(capsys.readouterr().out)["flank"] == 5000
