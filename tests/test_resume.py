"""Exact resume for every architecture and schedule, across real processes; and the cascade trains
bit-identically in two processes (same seed, same machine).

Three child processes run this file as a script: 'reference' trains every model uninterrupted;
'interrupted' trains every model until its checkpoint at iteration STOP_AT is written, stops that
training there and ends with os._exit (no cleanup, like a killed process); 'resumed' (a fresh
process: nothing in memory carried over) finishes every interrupted run from its checkpoint, and
trains the 'cascade' model once more from scratch beside the reference (the two-process twin).
One process per role, not per model, keeps the whole test within seconds.
"""
import json
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 3
STOP_AT = 4
KILLED = 3  # exit status of the interrupted child
DATA = {"name": "synthetic", "image_size": 64, "n_train": 16, "n_val": 8}
TRAIN = {"iterations": 6, "batch_size": 4, "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4, "poly_power": 0.9,
         "head_lr_mult": 1.0, "workers": 0, "checkpoint_every": 2, "channels_last": True}  # as the CPU presets
SMALL = {"name": "small", "widths": [8, 16, 16], "strides": [2, 2, 2], "convs": [1, 1, 1]}
TRUNK = {"name": "small", "widths": [8, 8, 16], "units": [1, 1, 1], "dilations": [1, 2, 4]}
# train_rho 0.35 (5 classes): many pixels leave stage 1 even this early, so the region path trains
CASCADE = {"arch": "layer_cascade", "backbone": TRUNK, "head_width": 8, "dropout": 0.5, "train_rho": 0.35}
MODELS = {
    "single_head_gcn3": {"arch": "single_head", "backbone": SMALL, "head": "gcn", "k": 3},
    "gcn_fig2": {"arch": "gcn_fig2", "backbone": SMALL, "k": 3},
    "pspnet_aux_dropout": {"arch": "pspnet", "backbone": SMALL, "bins": [1, 2], "head_width": 16, "dropout": 0.1,
                           "aux_weight": 0.4, "aux_width": 8},
    "deeplab_v1_dropout": {"arch": "deeplab_v1", "backbone": {"name": "vgg", "widths": [8, 8, 16, 16],
                                                              "convs": [1, 1, 1, 1], "batch_norm": True},
                           "fc6_kernel": 3, "fc6_dilation": 2, "fc_channels": 16, "dropout": 0.5},
    "lc_deep_dropout": {**CASCADE, "schedule": "deep"},
    "lc_cascade": {**CASCADE, "schedule": "cascade", "cascade_start": 0.5},
    "lc_model_cascade": {**CASCADE, "schedule": "model_cascade"},
}
TWIN = "lc_cascade"
EVAL = {"batch_size": 8, "boundary_band": 0.875, "rho": 0.28}  # about half the pixels leave at stage 1
TIMING_KEYS = ("infer_fps", "stage1_ms", "stage2_ms", "stage3_ms")


class Interrupted(Exception):
    pass


def child(role, root):
    import engine.trainer as train_mod
    from engine.evaluate import evaluate
    from data import build_dataset
    from segmodels import build_model

    torch.set_num_threads(1)  # as run_all --jobs 2 on two cores
    if role == "interrupted":
        real_save = train_mod.atomic_save

        def save_then_stop(obj, path):
            real_save(obj, path)
            if os.path.basename(path) == "ckpt.pt" and obj["iteration"] == STOP_AT:
                raise Interrupted

        train_mod.atomic_save = save_then_stop
    train_set, val_set = build_dataset(DATA, "train"), build_dataset(DATA, "val")

    def run(name, folder):
        train_mod.seed_everything(SEED)  # as runs.run_group: seed, build, train
        model = build_model(MODELS[name], train_set.num_classes)
        run_dir = os.path.join(root, folder, name)
        train_mod.train(model, train_set, TRAIN, SEED, run_dir, progress=False)
        if name == TWIN:
            with open(os.path.join(run_dir, "eval.json"), "w") as f:
                json.dump(evaluate(model, val_set, EVAL), f)

    for name in MODELS:
        try:
            run(name, "reference" if role == "reference" else "resumed")
        except Interrupted:
            pass
    if role == "interrupted":
        os._exit(KILLED)
    if role == "resumed":
        run(TWIN, "twin")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    env = {**os.environ, "PYTHONPATH": ROOT, "SEGABL_CACHE": os.environ.get("SEGABL_CACHE", str(root / "cache"))}
    codes = {}
    for role in ("reference", "interrupted", "resumed"):
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), role, str(root)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        codes[role] = proc.returncode
        assert proc.returncode == (KILLED if role == "interrupted" else 0), proc.stderr[-3000:]
        if role == "interrupted":  # every run stopped after its checkpoint at STOP_AT, unfinished
            for name in MODELS:
                run_dir = root / "resumed" / name
                assert torch.load(run_dir / "ckpt.pt", weights_only=False)["iteration"] == STOP_AT
                assert not (run_dir / "model.pt").exists()
    return root


def weights(root, folder, name):
    return torch.load(root / folder / name / "model.pt", weights_only=True)


def assert_bit_identical(a, b):
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"differ: {differ}"


@pytest.mark.parametrize("name", list(MODELS))
def test_resume_in_a_fresh_process_is_bit_identical(runs, name):
    assert not (runs / "resumed" / name / "ckpt.pt").exists()
    assert_bit_identical(weights(runs, "reference", name), weights(runs, "resumed", name))


def test_cascade_trains_bit_identically_in_two_processes(runs):
    assert_bit_identical(weights(runs, "reference", TWIN), weights(runs, "twin", TWIN))
    # the region path really ran: in training (share of stage 2 at the last iteration) and in eval
    last = json.loads((runs / "twin" / TWIN / "log.jsonl").read_text().splitlines()[-1])
    assert 0 < last["share2"] < 100
    ref, twin = (json.loads((runs / folder / TWIN / "eval.json").read_text()) for folder in ("reference", "twin"))
    assert 0 < ref["stage1_pct"] < 100
    scores = lambda r: json.dumps({k: v for k, v in r.items() if k not in TIMING_KEYS}, sort_keys=True)  # NaN-safe
    assert scores(ref) == scores(twin)


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2])
