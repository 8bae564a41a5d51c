"""report/APPENDIX.md: what a reader checks rather than reads. Per table: the notes written beside its
ablation file (ablations/<name>.md: probe histories, how settings were chosen), its exact facts at the
paper's dimensions, and the settings and provenance of its rows. Each section of REPORT.md links to its
part here, under the same heading (so the same anchor)."""
import os

from report.overview import anchor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPENDIX = "APPENDIX.md"


def notes_path(spec):
    """ablations/<name>.md beside the ablation file (spec.path is relative to the repository)."""
    return os.path.join(REPO, os.path.splitext(spec.path)[0] + ".md") if spec.path else ""


def read_notes(spec):
    """The Markdown notes beside the ablation file, or None. Their headings are demoted below the
    appendix's own (a '#' heading becomes '####')."""
    path = notes_path(spec)
    if not path or not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        text = f.read().strip()
    return "\n".join("###" + line if line.startswith("#") else line for line in text.splitlines())


def appendix_link(spec, what="appendix"):
    return f"[{what}]({APPENDIX}#{anchor(spec)})"


def appendix_section(spec, facts, settings):
    """One table's part of the appendix: its notes, exact facts (markdown or None) and settings."""
    parts = [f"## {spec.title} (`{spec.name}`)", f"[Back to the section](REPORT.md#{anchor(spec)})."]
    notes = read_notes(spec)
    if notes:
        parts += [f"### Notes: probe histories and choices (`{os.path.relpath(notes_path(spec), REPO)}`)", notes]
    if facts:
        parts += ["### Exact facts (paper dimensions)", facts]
    parts += ["### Settings and provenance of the rows", settings]
    return "\n\n".join(parts)


def appendix(sections, results_dir):
    head = ["# Appendix: probe histories, exact facts and provenance",
            f"Generated with [REPORT.md](REPORT.md) from the CSVs in `{results_dir}/` and the ablation files "
            "(the notes: the Markdown file beside each); do not edit by hand."]
    return "\n\n".join(head + sections) + "\n"
