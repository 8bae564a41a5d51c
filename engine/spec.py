"""An ablation file, loaded and checked: the typed record (Ablation) the engine and the report read.

An ablation file (ablations/<name>.py) is data: the paper and table, its variants (dicts: an id, a
label, model/train/eval settings), the published numbers, the claims (engine/claims.py objects),
presets and the report sections it wants; its deviations from the paper are Markdown beside it
(ablations/<name>.md, read by engine/notes.py). Loading it checks every name it uses — a
claim's variants and metric, the published numbers' variants and metrics, the variants' keys,
analyses and presets, duplicate ids, bands, run budgets — and a mistake is one line naming the file and
the key (ValueError), at `--list` already; its report sections are the report's to check (report/build.py
check_sections, which run_all.py calls as it loads the file).
"""
import os
from dataclasses import dataclass, field

from engine.claims import Assertion, Claim, Mechanism, Rule
from engine.notes import notes_path, read_deviations
from engine.presets import PRESETS

# Every metric a row can carry that a claim, a table or a column may name: evaluate.py's scores
# (boundary/internal accuracy; context/shape accuracy where the dataset groups its classes; the CRF's
# time), the timing phase's (inference ms and images/s, per-stage ms of the cascade, training img/s),
# the cascade's per-stage shares, and the parameter counts.
KNOWN_METRICS = ("mIoU", "pixel_acc", "mean_acc", "boundary_acc", "internal_acc", "context_acc", "shape_acc",
                 "infer_fps", "infer_ms", "infer_fps_median", "crf_ms", "train_img_per_s", "params", "head_params",
                 "stage1_pct", "stage2_pct", "stage3_pct", "stage1_ms", "stage2_ms", "stage3_ms")
# The suite's equivalence bands: ±2 mIoU points, ±1 point of a per-pixel accuracy, used where a table has no
# seed noise to scale by yet (fewer than 2 seeds a variant); otherwise a claim's band is BAND_SEED_SDS × the
# table's seed noise (engine/design.py claim_band), and a claim's own band wins over all. A claim whose difference
# is shown to lie inside its band is 'absent'. Metrics without a band here (speeds, shares) are never 'absent'.
DEFAULT_BANDS = {"mIoU": 2.0, "pixel_acc": 1.0, "mean_acc": 1.0, "boundary_acc": 1.0, "internal_acc": 1.0,
                 "context_acc": 1.0, "shape_acc": 1.0}
VARIANT_KEYS = ("id", "label", "x", "series", "data", "model", "train", "eval", "presets", "preset_overrides", "analyses",
                "tune_lr", "tune_crf", "crf_from", "init_from")
REQUIRED = ("NAME", "TITLE", "PAPER", "SOURCE", "METRICS", "VARIANTS", "PUBLISHED", "CLAIMS")


@dataclass(frozen=True)
class Ablation:
    """One ablation file, checked, with its defaults filled in (attribute = the file's name in lower case)."""
    name: str
    title: str
    paper: str  # None: an ablation of your own, not a paper's (reported apart, never in the papers' headline)
    source: str
    metrics: tuple
    variants: tuple  # dicts, as the file writes them (keys: VARIANT_KEYS)
    published: dict  # {variant id: {metric: number}}
    claims: tuple  # engine.claims.Claim: every comparison the design judges
    assertions: tuple = ()  # engine.claims.Assertion: the paper's statements, each over some of `claims`
    model: dict = field(default_factory=dict)  # laid over the preset's model config for every variant
    report_columns: tuple = ()
    x_label: str = "variant"
    bands: dict = field(default_factory=dict)  # DEFAULT_BANDS with the file's BANDS over them
    report_sections: dict = field(default_factory=dict)  # {report section (report/common.py SECTIONS): its arguments}
    max_runs: dict = field(default_factory=dict)  # {preset: the sequential design's run budget}
    presets: dict = field(default_factory=dict)  # {preset: settings laid over the suite's preset}
    deviations: dict = field(default_factory=dict)  # {"synthetic" | "real" | dataset: [text]}, from the .md file
    exact_facts: object = None  # a function → [fact dict] (engine.claims.fact_holds), or None
    path: str = ""

    @property
    def own(self):
        return self.paper is None

    def variant(self, variant_id):
        return next(v for v in self.variants if v["id"] == variant_id)

    @property
    def variant_ids(self):
        return [v["id"] for v in self.variants]


def from_module(module):
    """The checked Ablation of an ablation module; ValueError naming the file and the key otherwise."""
    path = os.path.relpath(module.__file__, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def fail(key, what):
        raise ValueError(f"{path}: {key}: {what}")

    for key in REQUIRED:
        if not hasattr(module, key):
            fail(key, "missing (every ablation file defines " + ", ".join(REQUIRED) + ")")
    name = module.NAME
    if name != os.path.splitext(os.path.basename(module.__file__))[0]:
        fail("NAME", f"{name!r} is not the file's name")
    ids = [v.get("id") for v in module.VARIANTS]
    for i, variant in enumerate(module.VARIANTS):
        check_variant(variant, i, ids, fail)
    known = set(ids)
    tuned = [v["id"] for v in module.VARIANTS if v.get("tune_crf")]
    for i, variant in enumerate(module.VARIANTS):
        base = module.VARIANTS[ids.index(variant["init_from"])] if variant.get("init_from") in ids else None
        if "init_from" in variant and (base is None or base is variant or "init_from" in base):
            fail(f"VARIANTS[{i}] ({variant['id']!r})", f"init_from {variant['init_from']!r} must name another "
                                                      "variant, itself trained from scratch (not init_from)")
        if "crf_from" in variant and variant["crf_from"] not in tuned:
            fail(f"VARIANTS[{i}] ({variant['id']!r})", f"crf_from {variant['crf_from']!r} is not a variant with "
                                                      f"tune_crf (those: {', '.join(tuned) or 'none'})")

    def check_ids(key, names):
        unknown = [n for n in names if n not in known]
        if unknown:
            fail(key, f"unknown variant id(s) {', '.join(map(repr, unknown))}; variants: {', '.join(ids)}")

    def check_metrics(key, names):
        unknown = [m for m in names if m not in KNOWN_METRICS]
        if unknown:
            fail(key, f"unknown metric(s) {', '.join(map(repr, unknown))}; known: {', '.join(KNOWN_METRICS)}")

    check_metrics("METRICS", module.METRICS)
    check_metrics("REPORT_COLUMNS", getattr(module, "REPORT_COLUMNS", ()))
    check_ids("PUBLISHED", module.PUBLISHED)
    for vid, numbers in module.PUBLISHED.items():
        check_metrics(f"PUBLISHED[{vid!r}]", numbers)
    for i, claim in enumerate(module.CLAIMS):
        if not isinstance(claim, Claim):
            fail(f"CLAIMS[{i}]", f"not a claim object (engine.claims: Greater, Increasing, Best, Ratio, Close): "
                                 f"{type(claim).__name__}")
        check_ids(f"CLAIMS[{i}]", claim.variants())
        check_metrics(f"CLAIMS[{i}]", [claim.metric] + ([claim.minus] if claim.minus else []))
        if claim.band is not None and not claim.band > 0:
            fail(f"CLAIMS[{i}]", f"band must be > 0, got {claim.band!r}")
    assertions = check_assertions(module, fail)
    bands = getattr(module, "BANDS", {})
    check_metrics("BANDS", bands)
    for metric, band in bands.items():
        if not (isinstance(band, (int, float)) and band > 0):
            fail(f"BANDS[{metric!r}]", f"must be a number > 0, got {band!r}")
    sections = getattr(module, "REPORT_SECTIONS", {})  # their names: report/build.py check_sections
    for key in ("MAX_RUNS", "PRESETS"):
        unknown = sorted(set(getattr(module, key, {})) - set(PRESETS))
        if unknown:
            fail(key, f"unknown preset(s) {unknown}; presets: {', '.join(PRESETS)}")
    for preset, budget in getattr(module, "MAX_RUNS", {}).items():
        if not (isinstance(budget, int) and budget >= 1):
            fail(f"MAX_RUNS[{preset!r}]", f"must be a whole number >= 1, got {budget!r}")
    if hasattr(module, "DEVIATIONS"):  # prose lives beside the file, which stays data
        fail("DEVIATIONS", f"write them in {notes_path(path)}, a '## Deviations: synthetic' (or real, or the "
                           "dataset's name) section, one bullet a deviation")
    return Ablation(
        name=name, title=module.TITLE, paper=module.PAPER, source=module.SOURCE, metrics=tuple(module.METRICS),
        variants=tuple(module.VARIANTS), published=dict(module.PUBLISHED), claims=tuple(module.CLAIMS),
        assertions=assertions,
        model=dict(getattr(module, "MODEL", {})), report_columns=tuple(getattr(module, "REPORT_COLUMNS", ())),
        x_label=getattr(module, "X_LABEL", "variant"), bands={**DEFAULT_BANDS, **bands}, report_sections=dict(sections),
        max_runs=dict(getattr(module, "MAX_RUNS", {})), presets=dict(getattr(module, "PRESETS", {})),
        deviations=read_deviations(notes_path(module.__file__), notes_path(path)), exact_facts=getattr(module, "exact_facts", None),
        path=path)


def check_assertions(module, fail):
    """The file's ASSERTIONS, each over claims of its CLAIMS (the same objects), no claim in two; a claim in
    none is an assertion of its own (its text, the file's WHERE or TITLE, rule 'one'), in CLAIMS' order."""
    declared, where = list(getattr(module, "ASSERTIONS", ())), getattr(module, "WHERE", module.TITLE)
    owner = {}
    for i, assertion in enumerate(declared):
        if not isinstance(assertion, Assertion):
            fail(f"ASSERTIONS[{i}]", f"not an engine.claims.Assertion: {type(assertion).__name__}")
        for mechanism in assertion.mechanisms:
            if not (isinstance(mechanism, Mechanism) and callable(mechanism.probe) and isinstance(mechanism.args, dict)):
                fail(f"ASSERTIONS[{i}]", "its mechanisms must be engine.claims.Mechanism(text, probe callable, "
                                         f"args dict), got {mechanism!r}"[:200])
        for claim in assertion.claims:
            index = next((k for k, c in enumerate(module.CLAIMS) if c is claim), None)
            if index is None:
                fail(f"ASSERTIONS[{i}]", f"its claim {claim.text[:60]!r} is not one of CLAIMS")
            if index in owner:
                fail(f"ASSERTIONS[{i}]", f"CLAIMS[{index}] is already in ASSERTIONS[{owner[index]}]")
            owner[index] = i
    own = {k: Assertion(c.text, where, (c,), rule=Rule.ONE) for k, c in enumerate(module.CLAIMS) if k not in owner}
    # in the order of their first claim
    first = {i: min(k for k, o in owner.items() if o == i) for i in range(len(declared)) if declared[i].claims}
    order = sorted([(k, a) for k, a in own.items()] + [(first[i], declared[i]) for i in first], key=lambda p: p[0])
    return tuple(a for _, a in order)


def check_variant(variant, i, ids, fail):
    """A variant's keys, id, presets, analyses and selection settings."""
    from engine.analysis import ANALYSES
    key = f"VARIANTS[{i}]" + (f" ({variant['id']!r})" if "id" in variant else "")
    unknown = sorted(set(variant) - set(VARIANT_KEYS))
    if unknown:
        fail(key, f"unknown key(s) {unknown}; valid: {', '.join(VARIANT_KEYS)}")
    if not isinstance(variant.get("id"), str) or not variant["id"]:
        fail(key, "needs an 'id' (a non-empty string)")
    if variant["id"] in ids[:i]:
        fail(key, f"duplicate variant id {variant['id']!r}")
    for k in ("presets", "preset_overrides"):
        unknown = sorted(set(variant.get(k, ())) - set(PRESETS))
        if unknown:
            fail(f"{key}[{k!r}]", f"unknown preset(s) {unknown}; presets: {', '.join(PRESETS)}")
    unknown = sorted(set(variant.get("analyses", ())) - set(ANALYSES))
    if unknown:
        fail(f"{key}['analyses']", f"unknown analysis(es) {unknown}; known: {', '.join(ANALYSES)}")
    if variant.get("tune_lr") and variant.get("tune_crf"):  # the CRF grid would be scored at an lr not yet chosen
        fail(key, "tune_lr and tune_crf cannot be combined; fix the lr of a variant whose CRF is tuned")
