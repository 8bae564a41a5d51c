"""train.compile (run_all.py --compile): the training step goes through torch.compile, while
checkpoints and model.pt hold the plain module's state dict, so resume and evaluation are the same
as without it. One small model (dropout included, so the RNG states matter), in this process:
compiling is the slow part, and the graphs compiled for the first run serve the others."""
import os

import pytest
import torch

import engine.trainer as train_mod
import run_all
from ablations import gcn_k
from helpers import plans_of
from data import build_dataset
from segmodels import build_model

SEED = 1
DATA = {"name": "synthetic", "image_size": 32, "n_train": 8, "n_val": 4}
TRAIN = {"iterations": 4, "batch_size": 2, "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4, "poly_power": 0.9,
         "head_lr_mult": 1.0, "workers": 0, "checkpoint_every": 2, "compile": True}
MODEL = {"arch": "pspnet", "backbone": {"name": "small", "widths": [8, 8, 8], "strides": [2, 2, 2], "convs": [1, 1, 1]},
         "bins": [1, 2], "head_width": 8, "dropout": 0.1, "aux_weight": 0.4, "aux_width": 8}


class Interrupted(Exception):
    pass


def train_run(run_dir, cfg=TRAIN):
    data = build_dataset(DATA, "train")
    train_mod.seed_everything(SEED)
    model = build_model(MODEL, data.num_classes)
    train_mod.train(model, data, cfg, SEED, str(run_dir), progress=False)
    return torch.load(run_dir / "model.pt", weights_only=True)


# every run really trains compiled: past 2 compiled versions of a frame (the first call, then
# dynamic floats) dynamo would fall back to eager; here that is an error. torch's own config.patch,
# not monkeypatch: pytest 9.2's monkeypatch deletes these config attributes on undo (every later
# compile then fails with "torch._dynamo.config.recompile_limit does not exist").
@torch._dynamo.config.patch(recompile_limit=2, fail_on_recompile_limit_hit=True)
def test_compiled_training_resumes_bit_identically_with_plain_state_dicts(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    reference = train_run(tmp_path / "reference")
    real_save = train_mod.atomic_save

    def save_then_stop(obj, path):
        real_save(obj, path)
        if os.path.basename(path) == "ckpt.pt" and obj["iteration"] == 2:
            raise Interrupted

    monkeypatch.setattr(train_mod, "atomic_save", save_then_stop)
    with pytest.raises(Interrupted):
        train_run(tmp_path / "resumed")
    ckpt = torch.load(tmp_path / "resumed" / "ckpt.pt", weights_only=False)
    assert not any(k.startswith("_orig_mod.") for k in ckpt["model"])
    monkeypatch.setattr(train_mod, "atomic_save", real_save)
    resumed = train_run(tmp_path / "resumed")
    assert not any(k.startswith("_orig_mod.") for k in reference)
    assert reference.keys() == resumed.keys()
    assert [k for k in reference if not torch.equal(reference[k], resumed[k])] == []
    build_model(MODEL, build_dataset(DATA, "val").num_classes).load_state_dict(reference)  # loads as evaluation does


def test_compile_failure_is_one_clear_line(tmp_path):
    import torch._inductor.config as inductor_config
    torch._dynamo.reset()  # nothing compiled before may be reused
    with inductor_config.patch({"cpp.cxx": (None, "/nonexistent/c++"), "force_disable_caches": True}), \
            pytest.raises(RuntimeError) as err:
        train_run(tmp_path / "run")
    torch._dynamo.reset()
    message = str(err.value)
    assert message.startswith("train.compile: torch.compile cannot compile") and "C++ compiler" in message
    assert "\n" not in message
    assert "without --compile" in message


def test_compile_flag_sets_the_train_key_and_changes_run_ids(monkeypatch):
    plain, compiled = plans_of(gcn_k), plans_of(gcn_k, compile=True)
    assert all(p.train["compile"] is True for p in compiled)
    assert all("compile" not in p.train for p in plain)
    assert {p.run_id for p in plain}.isdisjoint(p.run_id for p in compiled)
    assert run_all.parse_args(["--ablation", "gcn_k", "--compile"]).compile
    assert not run_all.parse_args(["--ablation", "gcn_k"]).compile
