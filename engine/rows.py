"""Result rows: one CSV per ablation, read and written here and nowhere else; a run's result
(RunResult, with its Status) and the row it becomes, with its provenance (files.py: the git sha, device,
CPU model, time; the lock and the atomic write).

A row is one (plan, variant, seed, trained run, evaluation). Writes rewrite the whole file under a
lock and swap it in atomically, so no reader or crash ever sees a torn row. Reads check the file
and fail with one line naming it: a CSV cut mid-line, missing a column, with text in a metric or
empty is an error, never a silent "not run". Ids are read as strings (pandas would read
`012345678901` as an int and `1234e5678901` as inf).
"""
import csv
import io
import json
import math
import os
import platform
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

import pandas as pd

from files import cpu_model, device_name, file_lock, now_iso, write_text

ID_COLUMNS = ("ablation", "variant", "run_id", "eval_id", "plan_id", "git_sha", "status", "preset")
# every row has these (a row missing one was cut off or written by other code)
REQUIRED = ("ablation", "variant", "seed", "status", "run_id", "eval_id", "plan_id", "finished_at")
JSON_COLUMNS = ("data_config", "model_config", "train_config", "eval_config", "per_class_iou", "trimap")  # read as text: each a JSON value
NUMERIC = ("seed", "mIoU", "pixel_acc", "mean_acc", "boundary_acc", "internal_acc", "train_img_per_s",
           "infer_fps", "infer_ms", "wall_s", "params", "head_params", "threads", "reference_step_ms")


class Status(StrEnum):
    """A run's status as its row records it."""
    OK = "ok"
    DIVERGED = "failed: non-finite loss"
    CRF_UNAVAILABLE = "failed: CRF unavailable"


OK = Status.OK


class ResultsError(ValueError):
    """A results CSV that cannot be used as it is; the message names the file and what is wrong."""


class RowKey(NamedTuple):
    """What makes a row unique in its CSV: one plan's (variant, seed, trained run, evaluation)."""
    plan_id: str
    variant: str
    seed: int
    run_id: str
    eval_id: str


def row_key(row):
    """The RowKey of a CSV row (a dict)."""
    return RowKey(str(row["plan_id"]), str(row["variant"]), int(row["seed"]), str(row["run_id"]), str(row["eval_id"]))


@dataclass
class RunResult:
    """What one plan gave: its status (its evaluation's if that failed, else its training's) and error,
    the training's record (train.json: train_img_per_s, train_s, train_wall_s) and the evaluation's
    scores (eval-<id>.json, with the timing phase's merged in), and the device that ran it."""
    plan: object  # engine.plans.Plan
    status: Status
    train: dict = field(default_factory=dict)
    scores: dict = field(default_factory=dict)
    error: str | None = None
    device: str = "cpu"

    @property
    def ok(self):
        return self.status == OK


def read_rows(csv_path) -> pd.DataFrame:
    """The rows of one results CSV (an empty frame if the file does not exist), checked."""
    if not os.path.exists(csv_path):
        return pd.DataFrame()
    try:
        with open(csv_path, newline="") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise ResultsError(f"{csv_path}: not a readable CSV ({err})") from None
    if not text:
        raise ResultsError(f"{csv_path}: the file is empty (delete it to start afresh)")
    cut_off = "(a row cut off mid-line?); delete that line and rerun: the run is redone from its folder"
    # every line this module writes ends with a line end and has the header's number of fields; a
    # row cut within its last field would otherwise still parse (as a shorter id or time)
    if not text.endswith("\n"):
        raise ResultsError(f"{csv_path} line {text.count(chr(10)) + 1}: no line end {cut_off}")
    records = csv.reader(io.StringIO(text))
    header = next(records, [])
    for record in records:
        if record and len(record) != len(header):
            raise ResultsError(f"{csv_path} line {records.line_num}: {len(record)} fields, the header has "
                               f"{len(header)} {cut_off}")
    try:
        rows = pd.read_csv(io.StringIO(text), dtype={c: str for c in ID_COLUMNS + JSON_COLUMNS})
    except pd.errors.EmptyDataError:
        raise ResultsError(f"{csv_path}: the file is empty (delete it to start afresh)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise ResultsError(f"{csv_path}: not a readable CSV ({str(err).splitlines()[0]})") from None
    missing = [c for c in REQUIRED if c not in rows]
    if missing:
        raise ResultsError(f"{csv_path}: missing column(s) {', '.join(missing)} (not a results file of this "
                           "version, or damaged: delete it and rerun)")
    for column in REQUIRED:
        bad = rows.index[rows[column].isna()]
        if len(bad):
            raise ResultsError(f"{csv_path} line {bad[0] + 2}: no {column} {cut_off}")
    for column in [c for c in NUMERIC if c in rows]:
        values = pd.to_numeric(rows[column], errors="coerce")
        bad = rows.index[values.isna() & rows[column].notna()]
        if len(bad):
            raise ResultsError(f"{csv_path} line {bad[0] + 2}: {column} is {rows[column][bad[0]]!r}, not a number")
        rows[column] = values
    rows["seed"] = rows["seed"].astype(int)
    problem = rows_problem(rows)
    if problem:
        raise ResultsError(f"{csv_path} {problem}; restore the file, or delete that line and rerun (the run is "
                           "redone from its folder)")
    if pd.to_datetime(rows["finished_at"], errors="coerce", utc=True).isna().any():
        line = rows.index[pd.to_datetime(rows["finished_at"], errors="coerce", utc=True).isna()][0] + 2
        raise ResultsError(f"{csv_path} line {line}: finished_at is not a time (a row cut off mid-line?)")
    return rows


def rows_problem(rows, metrics=("mIoU",)):
    """What makes a row of a results table unusable, as 'line N: ...', or None: a status no run gives
    (a typo would count as a failed run), a JSON column that is not JSON, or a metric of a finished
    ("ok") row that is not a finite number (a mean, a test and a figure would take it)."""
    unknown = rows.index[~rows["status"].isin(list(Status))]
    if len(unknown):
        return f"line {unknown[0] + 2}: status {rows['status'][unknown[0]]!r} is not one of {', '.join(Status)}"
    for column in [c for c in JSON_COLUMNS if c in rows]:
        for index, text in rows[column].dropna().items():
            try:
                json.loads(text)
            except ValueError:
                return f"line {index + 2}: {column} is not JSON ({text[:40]!r})"
    ok = rows[rows["status"] == OK]
    for metric in [m for m in metrics if m in ok]:
        bad = ok.index[~pd.to_numeric(ok[metric], errors="coerce").apply(math.isfinite)]
        if len(bad):
            return f"line {bad[0] + 2}: {metric} is {rows[metric][bad[0]]} in a finished (\"ok\") row, not a finite number"
    return None


def numbers_problem(record, required=()):
    """Why a run's JSON record (train.json, eval or timing scores) cannot become a row, or None: it must
    be a dict, hold `required`, and each NUMERIC value it holds must be a number (the required ones finite)."""
    if not isinstance(record, dict):
        return f"not a JSON object but {type(record).__name__}"
    missing = [k for k in required if k not in record]
    if missing:
        return f"no {', '.join(missing)}"
    for key in [k for k in NUMERIC + ("train_s", "train_wall_s", "eval_wall_s") if k in record]:
        value = record[key]
        if type(value) not in (int, float) or (key in required and not math.isfinite(value)):
            return f"{key} is {json.dumps(value)}, not a {'finite ' if key in required else ''}number"
    return None


def train_record_problem(record):
    """Why a train.json cannot be used, or None."""
    if isinstance(record, dict) and record.get("status") not in list(Status):
        return f"status {json.dumps(record.get('status'))} is not one of {', '.join(Status)}"
    return numbers_problem(record)


def put_row(csv_path, row):
    """Add a row; a row with the same key replaces an earlier one only if that one failed (a rerun
    retries failed runs). Returns True if the file changed."""
    with file_lock(csv_path + ".lock"):
        table = read_rows(csv_path)
        if len(table):
            same = [row_key(r) == row_key(row) for r in table.to_dict("records")]
            if any(same):
                if (table.loc[same, "status"] == OK).any():
                    return False
                table = table.loc[[not s for s in same]]
        new = pd.DataFrame([row]).astype({c: str for c in ID_COLUMNS if c in row})
        table = pd.concat([table, new], ignore_index=True) if len(table) else new
        buf = io.StringIO()
        table.to_csv(buf, index=False)
        write_text(csv_path, buf.getvalue())
        return True


# --- a row and its provenance ---------------------------------------------------------------

def make_row(result, sha, started=None, reference_ms=None):
    """One CSV row of a RunResult: what was run (its whole configuration), what it scored, and where
    and with what it ran. started: when the run_all call that writes it began (its wall time);
    reference_ms: that call's reference step time (benchmarks/train_step.py), its machine's speed."""
    import numpy
    import scipy
    import torch
    import torchvision

    from engine.distributed import world
    from engine.reproducible import mkl_setting
    from segmodels.pretrained import weights_id
    plan, info, scores = result.plan, result.train, result.scores
    backbone = plan.model["backbone"]
    row = {
        "ablation": plan.ablation, "variant": plan.variant, "seed": plan.seed, "preset": plan.preset,
        "dataset": plan.data["name"], "image_size": plan.data.get("image_size", plan.data.get("crop_size")),
        "backbone": backbone["name"] + (str(backbone.get("depth", "")) if backbone["name"] == "resnet" else ""),
        "weights": weights_id(plan.model),  # what the backbone started from (a stand-in: its file's hash)
        "iterations": plan.train["iterations"], "batch_size": plan.train["batch_size"],
        "lr": plan.train["lr"], "threads": plan.train["threads"],
        "data_config": json.dumps({k: v for k, v in plan.data.items() if k != "root"}, sort_keys=True),
        "model_config": json.dumps(plan.model, sort_keys=True),
        "train_config": json.dumps(plan.train, sort_keys=True),
        "eval_config": json.dumps(plan.eval, sort_keys=True),
    }
    for key, value in scores.items():  # metrics, plus any a model reports (e.g. per-stage shares)
        row[key] = json.dumps(value) if isinstance(value, (list, dict)) else value  # per_class_iou, trimap
    row.update({
        "train_img_per_s": scores.get("train_img_per_s", info.get("train_img_per_s")),
        "wall_s": info.get("train_wall_s", 0) + scores.get("eval_wall_s", 0),
        "device": device_name(result.device), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_model": cpu_model(), "mkl_cbwr": mkl_setting(),
        # the machine's 1-min load average when the row was written: timings taken beside other
        # work (load above the core count) are slower than the same run alone
        "load_avg_1m": round(os.getloadavg()[0], 2), "cpu_count": os.cpu_count(),
        "host": platform.node(), "torch": torch.__version__, "torchvision": torchvision.__version__,
        # numpy's random streams (the embedded data) and scipy's tests (the verdicts) can move with a version
        "numpy": numpy.__version__, "scipy": scipy.__version__,
        "git_sha": sha, "world_size": world()[1], "seed_looks": json.dumps(list(plan.looks)), "plan_id": plan.plan_id,
        "run_id": plan.run_id, "eval_id": plan.eval_id, "status": str(result.status),
        "call_started_at": started, "reference_step_ms": reference_ms,
        "finished_at": now_iso(),
    })
    return row


