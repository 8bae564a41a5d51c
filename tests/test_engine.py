"""The engine: run ids, resume after an interruption, failed runs, CSV rows."""
import os

import pandas as pd
import pytest
import torch

import engine.trainer as train_mod
from engine.rows import put_row, read_rows
from engine.trainer import ResumableBatches, poly_lr
from helpers import plans_of, run, settings_of, tiny as tiny_spec


def test_poly_lr_is_a_pure_function_of_the_iteration():
    assert poly_lr(0.1, 0, 100) == 0.1
    assert poly_lr(0.1, 50, 100) == pytest.approx(0.1 * 0.5 ** 0.9)
    assert poly_lr(0.1, 100, 100) == 0


def test_batches_do_not_depend_on_where_a_run_started():
    whole = list(ResumableBatches(10, 4, seed=3, start=0, stop=6))
    tail = list(ResumableBatches(10, 4, seed=3, start=4, stop=6))
    assert whole[4:] == tail
    # each epoch covers every image once
    positions = [i for batch in whole for i, _ in batch][:10]
    assert sorted(positions) == list(range(10))


def test_same_config_and_seed_share_a_run_id():
    a, b = plans_of(tiny_spec("a")), plans_of(tiny_spec("b"))
    assert [p.run_id for p in a] == [p.run_id for p in b]
    assert len({p.run_id for p in a}) == len(a)


def test_resume_after_interruption_is_exact_and_writes_one_row(tmp_path, monkeypatch):
    spec = tiny_spec(variants=[{"id": "k3", "model": {"head": "gcn", "k": 3}}])
    # reference: an uninterrupted run
    run(spec, tmp_path / "ref")
    # interrupted at iteration 4 (a checkpoint was written after iteration 4 finished) ...
    real_poly_lr = train_mod.poly_lr

    def killed_at_4(base, it, *args):
        if it == 4:
            raise KeyboardInterrupt
        return real_poly_lr(base, it, *args)

    monkeypatch.setattr(train_mod, "poly_lr", killed_at_4)
    out = tmp_path / "res"
    with pytest.raises(KeyboardInterrupt):
        run(spec, out)
    assert not (out / "tiny.csv").exists()  # no row for an unfinished run
    (run_dir,) = (out / "runs").iterdir()
    assert torch.load(run_dir / "ckpt.pt", weights_only=False)["iteration"] == 4
    # ... then resumed
    monkeypatch.setattr(train_mod, "poly_lr", real_poly_lr)
    assert run(spec, out) == 1
    ref = torch.load(tmp_path / "ref" / "runs" / run_dir.name / "model.pt", weights_only=True)
    got = torch.load(run_dir / "model.pt", weights_only=True)
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert not (run_dir / "ckpt.pt").exists()
    # a rerun finds everything done: no new row, no doubled row
    assert run(spec, out) == 0
    rows = pd.read_csv(out / "tiny.csv")
    assert len(rows) == 1 and rows["status"].tolist() == ["ok"]
    a, b = pd.read_csv(tmp_path / "ref" / "tiny.csv"), rows
    assert a["mIoU"].tolist() == b["mIoU"].tolist()


def test_a_shared_run_is_trained_once(tmp_path, monkeypatch):
    run(tiny_spec("first"), tmp_path)
    monkeypatch.setattr(train_mod, "train", lambda *a, **k: pytest.fail("trained a shared run again"))
    import engine.one_run as run_mod
    monkeypatch.setattr(run_mod, "train", lambda *a, **k: pytest.fail("trained a shared run again"))
    assert run(tiny_spec("second"), tmp_path) == 2
    a, b = pd.read_csv(tmp_path / "first.csv"), pd.read_csv(tmp_path / "second.csv")
    assert a["mIoU"].tolist() == b["mIoU"].tolist()


def test_non_finite_loss_fails_that_run_and_the_suite_goes_on(tmp_path, monkeypatch):
    from segmodels.gcn import SingleHeadNet
    real_loss = SingleHeadNet.training_loss

    def nan_for_the_1x1_head(model, images, labels, progress=0.0):
        loss, parts = real_loss(model, images, labels, progress)
        is_1x1 = isinstance(model.head, torch.nn.Conv2d) and model.head.kernel_size == (1, 1)
        return (loss * float("nan") if is_1x1 else loss), parts

    monkeypatch.setattr(SingleHeadNet, "training_loss", nan_for_the_1x1_head)
    run(tiny_spec(), tmp_path)
    rows = pd.read_csv(tmp_path / "tiny.csv").set_index("variant")
    assert rows.loc["base", "status"] == "failed: non-finite loss"
    assert pd.isna(rows.loc["base", "mIoU"])
    assert rows.loc["k3", "status"] == "ok" and rows.loc["k3", "mIoU"] >= 0


def test_put_row_skips_duplicates_replaces_failed_rows_and_adds_new_columns(tmp_path):
    path = str(tmp_path / "t.csv")
    row = {"ablation": "t", "variant": "a", "seed": 0, "plan_id": "p1", "run_id": "012345678901",
           "eval_id": "1234e5678901", "status": "ok", "mIoU": 1.0, "finished_at": "2026-11-23T00:00:00+00:00"}
    assert put_row(path, row)
    assert not put_row(path, dict(row))
    assert put_row(path, {**row, "run_id": "r2", "stage1_pct": 30.0})
    assert put_row(path, {**row, "run_id": "r3", "status": "failed: non-finite loss", "mIoU": None})
    assert put_row(path, {**row, "run_id": "r3", "mIoU": 2.0})  # a retried run replaces its failed row
    table = read_rows(path)
    assert len(table) == 3 and "stage1_pct" in table and set(table["status"]) == {"ok"}
    # ids stay strings: pandas alone would read these as an int and as inf
    assert table["run_id"].tolist()[0] == "012345678901" and table["eval_id"].tolist()[0] == "1234e5678901"
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_bad_preset_values_are_clear_errors():
    spec = tiny_spec()
    with pytest.raises(ValueError, match="choose one of"):
        settings_of(spec, "huge")
    with pytest.raises(ValueError, match="--seeds"):
        settings_of(spec, "smoke", seeds=0)


@pytest.mark.parametrize("where,override,message", [
    ("train", {"lrr": 0.1}, "unknown train option"),
    ("model", {"kernel": 3}, r"unknown option model.kernel for arch 'single_head' \(build_head\); valid: freeze_bn"),
    ("eval", {"rho": 0.9}, r"SingleHeadNet: unknown evaluation options \['rho'\]"),
])
def test_unknown_config_keys_are_errors_before_training(tmp_path, where, override, message):
    # (a variant's own unknown keys are refused when its ablation file is loaded: test_ablation_files.py)
    spec = tiny_spec(variants=[{"id": "base", "model": {"head": "conv1x1"}, where: override}])
    with pytest.raises(ValueError, match=message):
        run(spec, tmp_path)
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # no run folder was made


def test_evaluation_options_are_checked_against_the_model():
    from engine.evaluate import evaluate
    from segmodels import build_model
    net = build_model({"arch": "single_head", "backbone": {"name": "small", "widths": [8, 8, 8]}, "head": "conv1x1"}, 3)
    with pytest.raises(ValueError, match=r"unknown evaluation options \['rho'\]; valid: none"):
        evaluate(net, None, {"batch_size": 2, "boundary_band": 1.0, "rho": 0.9})
    x = torch.randn(2, 3, 32, 32)
    logits, stats = net.predict(x)
    assert logits.shape == (2, 3, 32, 32) and stats == {} and torch.equal(net(x), logits)


def test_numbers_do_not_depend_on_jobs(tmp_path):
    """The thread count is the run's (train.threads), not cpu_count // jobs: a run trains to the same
    weights whether it trains alone (in this process) or beside another worker."""
    spec = tiny_spec()
    for jobs in (1, 2):
        run(spec, tmp_path / f"jobs{jobs}", jobs=jobs)
    one, two = (read_rows(tmp_path / f"jobs{j}" / "tiny.csv").sort_values("variant") for j in (1, 2))
    assert one["run_id"].tolist() == two["run_id"].tolist() and (one["threads"] == 1).all()
    for run_id in one["run_id"]:
        a, b = (torch.load(tmp_path / f"jobs{j}" / "runs" / run_id / "model.pt", weights_only=True) for j in (1, 2))
        assert all(torch.equal(a[k], b[k]) for k in a), run_id


def test_amp_bf16_runs_the_forward_pass_in_bfloat16_and_is_part_of_the_run_id(tmp_path):
    spec = tiny_spec()
    plain = {p.variant: p for p in plans_of(spec)}
    amp = {p.variant: p for p in plans_of(spec, amp="bf16", channels_last=True)}
    assert amp["k3"].train["amp"] == "bf16" and amp["k3"].run_id != plain["k3"].run_id
    with pytest.raises(ValueError, match="--amp must be one of bf16"):
        settings_of(spec, "smoke", amp="fp8")
    from data import build_dataset
    from segmodels import build_model
    data = build_dataset(amp["k3"].data, "train")
    model = build_model(amp["k3"].model, data.num_classes)
    seen = []
    model.head.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    train_mod.train(model, data, amp["k3"].train, 0, str(tmp_path), progress=False)
    assert seen and set(seen) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the weights stay fp32


def test_the_model_names_its_backbone_and_new_layers_and_loss_parts_stay_tensors():
    """The ×head_lr_mult groups come from the model (SegModel.parameter_groups), not from a name
    prefix; a step's loss parts are tensors (read when logged, not synchronised every step)."""
    from engine.step import make_optimizer, train_step
    from segmodels import build_model
    small = {"name": "small", "widths": [8, 8, 8, 8], "strides": [2, 2, 2, 1], "convs": [1, 1, 1, 1]}
    model = build_model({"arch": "pspnet", "backbone": small, "head_width": 8, "aux_width": 4, "aux_weight": 0.4}, 3)
    cfg = {"lr": 0.1, "head_lr_mult": 10.0, "momentum": 0.9, "weight_decay": 0.0}
    opt = make_optimizer(model, cfg)
    backbone, new = opt.param_groups
    assert {id(p) for p in backbone["params"]} == {id(p) for p in model.backbone.parameters()}
    assert {id(p) for p in new["params"]} == {id(p) for m in (model.ppm, model.head, model.aux) for p in m.parameters()}
    assert (backbone["lr_mult"], new["lr_mult"]) == (1.0, 10.0)
    images, labels = torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    loss, parts = train_step(model, opt, images, labels, cfg, "cpu")
    assert set(parts) == {"main_loss", "aux_loss"}
    assert all(isinstance(v, torch.Tensor) and not v.requires_grad for v in parts.values())
    assert float(loss) == pytest.approx(float(parts["main_loss"]) + 0.4 * float(parts["aux_loss"]), rel=1e-6)


def test_a_finished_row_without_its_dataset_and_network_analyses_gets_them_without_training(tmp_path, monkeypatch):
    """Analyses of the dataset and of the untrained network (engine/analysis.py "data", "model") need no
    run folder: a rerun computes the ones a finished row lacks, and trains nothing."""
    spec = tiny_spec(variants=[{"id": "k3", "model": {"head": "gcn", "k": 3}}])
    run(spec, tmp_path)
    (preview,) = [p for p in (tmp_path / "analysis").iterdir() if p.name.endswith("-preview.npz")]
    preview.unlink()
    import shutil
    shutil.rmtree(tmp_path / "runs")
    import engine.one_run as run_mod
    monkeypatch.setattr(run_mod, "train", lambda *a, **k: pytest.fail("trained a finished run"))
    assert run(spec, tmp_path) == 0 and preview.exists()


def test_the_optimiser_updates_all_parameters_at_once_with_the_floats_of_one_at_a_time():
    """make_optimizer's SGD(foreach=True): the same weights after steps as the per-parameter loop."""
    from engine.step import make_optimizer, train_step
    from segmodels import build_model
    small = {"name": "small", "widths": [8, 8, 8, 8], "strides": [2, 2, 2, 1], "convs": [1, 1, 1, 1]}
    cfg = {"lr": 0.1, "head_lr_mult": 10.0, "momentum": 0.9, "weight_decay": 1e-4}
    models = []
    for foreach in (True, False):
        torch.manual_seed(0)
        model = build_model({"arch": "pspnet", "backbone": small, "head_width": 8, "aux_width": 4}, 3)
        opt = make_optimizer(model, cfg)
        assert opt.defaults["foreach"] is True
        for group in opt.param_groups:
            group["foreach"] = foreach
        gen = torch.Generator().manual_seed(1)
        for _ in range(3):
            train_step(model, opt, torch.randn(2, 3, 32, 32, generator=gen), torch.randint(0, 3, (2, 32, 32), generator=gen),
                       cfg, "cpu")
        models.append(model)
    for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values()):
        assert torch.equal(a, b)
