"""report/APPENDIX.md: what a reader checks rather than reads. Per table: its deviations from the paper
(each listed once: a later table links to the one that lists it; REPORT.md's page "What this data can and
cannot test" sums up the data's and the trunks'), the notes written beside its ablation file
(ablations/<name>.md: probe histories, how settings were chosen), the details its report sections leave
here, its exact facts at the paper's dimensions, and the settings and provenance of its rows. Each section
of REPORT.md links to its part here, under the same heading and anchor."""
import os

from engine import notes as ablation_notes
from report.overview import anchor, heading

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPENDIX = "APPENDIX.md"


def notes_path(spec):
    """ablations/<name>.md beside the ablation file (spec.path is relative to the repository)."""
    return ablation_notes.notes_path(os.path.join(REPO, spec.path)) if spec.path else ""


def read_notes(spec):
    """The Markdown notes beside the ablation file, or None: without their title (the appendix's heading
    names the table) and their deviations sections (the appendix lists those once, with the other
    tables'), their headings below the appendix's own ('## x' becomes '#### x')."""
    text = ablation_notes.notes_text(notes_path(spec)) if spec.path else None
    lines = text.strip().splitlines() if text else []
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join("##" + line if line.startswith("#") else line for line in lines).strip() or None


def appendix_link(spec, what="appendix"):
    return f"[{what}]({APPENDIX}#{anchor(spec)})"


def appendix_section(spec, deviations, facts, settings, details=()):
    """One table's part of the appendix (markdown): its deviations from the paper, its notes, the details
    its report sections left here, exact facts (or None) and settings."""
    parts = [heading(spec), f"[Back to the section](REPORT.md#{anchor(spec)})."]
    if deviations:
        parts += ["### Deviations from the paper", deviations]
    notes = read_notes(spec)
    if notes:
        parts += [f"### Notes: probe histories and choices (`{os.path.relpath(notes_path(spec), REPO)}`)", notes]
    parts += list(details)
    if facts:
        parts += ["### Exact facts (paper dimensions)", facts]
    parts += ["### Settings and provenance of the rows", settings]
    return "\n\n".join(parts)


def appendix(sections, results_dir):
    head = ["# Appendix: deviations, probe histories, exact facts and provenance",
            f"Generated with [REPORT.md](REPORT.md) from the CSVs in `{results_dir}/` and the ablation files "
            "(the notes: the Markdown file beside each); do not edit by hand."]
    return "\n\n".join(head + sections) + "\n"
