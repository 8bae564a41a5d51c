"""What many tests do: a small ablation record built in the test, its plans at a preset, and a run."""
from ablations import load
from benchmarks import train_step
from engine.config import CommandLine, settings
from engine.one_ablation import run_ablation
from engine.plans import plan_runs, prepare, selection_plans
from engine.spec import Ablation


def tiny(name="tiny", variants=None, claims=(), presets=None, max_runs=None, model=None, metrics=("mIoU",)):
    """An ablation record made in a test (not an ablation file: not checked, no default bands)."""
    variants = variants or [{"id": "base", "model": {"head": "conv1x1"}}, {"id": "k3", "model": {"head": "gcn", "k": 3}}]
    return Ablation(name=name, title=name, paper="", source="", metrics=tuple(metrics), variants=tuple(variants),
                    published={}, claims=tuple(claims), model=model or {"arch": "single_head"},
                    presets=presets if presets is not None else {"smoke": {"train": {"iterations": 6,
                                                                                      "checkpoint_every": 2}}},
                    max_runs=max_runs or {})


def record(spec):
    """An ablation record from a name, a record, or an ablation module."""
    if isinstance(spec, str):
        return load(spec)
    return load(spec.NAME) if hasattr(spec, "NAME") else spec


def settings_of(spec, preset="smoke", **cli):
    return settings(record(spec), preset, CommandLine(**cli))


def plans_of(spec, preset="smoke", lrs=None, crfs=None, **cli):
    """The plans of an ablation (name, module or record) at a preset, with command-line options."""
    spec = record(spec)
    return plan_runs(spec, settings_of(spec, preset, **cli), lrs, crfs)


def selection_of(spec, preset="smoke", **cli):
    spec = record(spec)
    return selection_plans(spec, settings_of(spec, preset, **cli))


def run(spec, out, preset="smoke", jobs=1, device="cpu", **cli):
    """Plan, check and run an ablation into `out`; the number of rows written."""
    spec = record(spec)
    prepared = prepare(spec, settings_of(spec, preset, **cli), str(out))
    return run_ablation(prepared, str(out), device, jobs, progress=False)


def ablation_file(name="tiny", **attrs):
    """A module as an ablation file would be (ablations/<name>.py), for load-time checks: the required
    names filled in, `attrs` (upper-case, as in a file) over them."""
    import os
    import types
    module = types.ModuleType(name)
    module.__file__ = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ablations",
                                   f"{name}.py")
    defaults = {"NAME": name, "TITLE": name, "PAPER": "", "SOURCE": "", "METRICS": ["mIoU"],
                "MODEL": {"arch": "single_head"}, "PUBLISHED": {}, "CLAIMS": [],
                "VARIANTS": [{"id": "base", "model": {"head": "conv1x1"}}, {"id": "k3", "model": {"head": "gcn", "k": 3}}]}
    for key, value in {**defaults, **attrs}.items():
        setattr(module, key, value)
    return module


# run_all's reference step in tests (conftest.py stubs benchmarks.train_step.reference_step_ms with it);
# real_reference_step_ms: the real one, taken before any stub
STUB_REFERENCE_MS = 134.2
real_reference_step_ms = train_step.reference_step_ms
