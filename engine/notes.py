"""The Markdown notes beside an ablation file (ablations/<name>.md): its deviations from the paper and the
rest (probe histories, how settings were chosen).

Prose lives here rather than in the ablation file, so the file reads as data. The deviations are the
sections headed `## Deviations: <key>` (key: synthetic, real, or a dataset), one bullet a deviation:

    ## Deviations: synthetic

    - Embedded generated scenes instead of VOC 2012: ...
    - (from gcn_k.md: synthetic)
    - (from lc_threshold.md: synthetic 1-3, 6)

A bullet `(from <file>.md: <key>[ <items>])` stands for that section's deviations (of a Markdown file in
the same folder, this one included), all of them or the items numbered (from 1, ranges a-b): a deviation
shared by several tables is written once, and the report, which lists each deviation once, finds it
identical. A bullet may run over indented lines (joined with a space). Everything outside these sections
is the notes the report's appendix prints. A malformed section is one line naming the file and line.
"""
import os
import re

DEVIATION_KEYS = ("synthetic", "real", "voc", "ade20k", "cityscapes")
HEADING = re.compile(r"^## Deviations\b(.*)$")
INCLUDE = re.compile(r"^\(from (?P<file>[\w-]+\.md): (?P<key>\w+)(?: (?P<items>\d+(?:-\d+)?(?:, \d+(?:-\d+)?)*))?\)$")


def notes_path(ablation_file):
    """ablations/<name>.md beside ablations/<name>.py."""
    return os.path.splitext(ablation_file)[0] + ".md"


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


def is_section_end(line):
    """A heading of level 1 or 2 ends a section (### and below belong to it)."""
    return line.startswith("# ") or line.startswith("## ")


def notes_text(path):
    """The file's text less its deviations sections (what the report's appendix prints); None: no file."""
    if not os.path.isfile(path):
        return None
    kept, inside = [], False
    for line in read_lines(path):
        if is_section_end(line):
            inside = bool(HEADING.match(line))
        if not inside:
            kept.append(line)
    return "\n".join(kept)


def deviation_sections(path, shown):
    """{key: [(line number, bullet text)]} of the file's `## Deviations: <key>` sections, as written
    (includes unresolved). shown: the file's name in messages."""
    sections, current = {}, None

    def fail(number, what):
        raise ValueError(f"{shown} line {number}: {what}")

    for number, line in enumerate(read_lines(path), 1):
        if is_section_end(line):
            current = None
            heading = HEADING.match(line)
            if not heading:
                continue
            key = heading[1].removeprefix(":").strip()
            if key not in DEVIATION_KEYS:
                fail(number, f"'{line}': write '## Deviations: <key>', key one of {', '.join(DEVIATION_KEYS)}")
            if key in sections:
                fail(number, f"a second '## Deviations: {key}' section")
            current = sections[key] = []
        elif current is None or not line.strip():
            continue
        elif line.startswith("- "):
            current.append((number, line[2:].strip()))
        elif line.startswith("  ") and current:  # a bullet's next line
            current[-1] = (current[-1][0], current[-1][1] + " " + line.strip())
        else:
            fail(number, f"not a bullet ('- ' and the deviation): {line[:60]!r}")
    for key, bullets in sections.items():
        if not bullets:
            raise ValueError(f"{shown}: '## Deviations: {key}' lists no deviation (a bullet each)")
    return sections


def read_deviations(path, shown):
    """{key: [deviation text]} of the Markdown file at path ({} if there is none), its `(from …)` bullets
    resolved; ValueError, one line naming the file and line, for a malformed section or a bullet that names
    a file, section or item that does not exist."""
    if not os.path.isfile(path):
        return {}
    folder, shown_folder = os.path.dirname(path), os.path.dirname(shown)
    parsed = {}

    def sections_of(file):
        if file not in parsed:
            parsed[file] = deviation_sections(os.path.join(folder, file), os.path.join(shown_folder, file))
        return parsed[file]

    def resolve(file, key, seen):
        deviations = []
        for number, text in sections_of(file)[key]:
            where = f"{os.path.join(shown_folder, file)} line {number}"
            if not text.startswith("(from "):
                deviations.append(text)
                continue
            include = INCLUDE.match(text)
            if not include:
                raise ValueError(f"{where}: {text!r}: write '(from <name>.md: <key>)' or '(from <name>.md: <key> "
                                 "1-3, 6)'")
            other, other_key = include["file"], include["key"]
            if not os.path.isfile(os.path.join(folder, other)):
                raise ValueError(f"{where}: {text!r}: no file {os.path.join(shown_folder, other)}")
            if other_key not in sections_of(other):
                raise ValueError(f"{where}: {text!r}: {other} has no '## Deviations: {other_key}' section")
            if (other, other_key) in seen:
                raise ValueError(f"{where}: {text!r}: includes itself")
            included = resolve(other, other_key, seen | {(other, other_key)})
            deviations += included if not include["items"] else pick(included, include["items"], where, text)
        return deviations

    me = os.path.basename(path)
    return {key: resolve(me, key, {(me, key)}) for key in sections_of(me)}


def pick(deviations, items, where, text):
    """The deviations numbered in items ('1-3, 6', from 1)."""
    numbers = []
    for part in items.split(", "):
        first, _, last = part.partition("-")
        numbers += range(int(first), int(last or first) + 1)
    if not numbers or min(numbers) < 1 or max(numbers) > len(deviations):
        raise ValueError(f"{where}: {text!r}: items must lie in 1-{len(deviations)}")
    return [deviations[n - 1] for n in numbers]
