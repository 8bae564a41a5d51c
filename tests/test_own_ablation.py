"""README's "Add your own ablation", followed as written in a copy of the repository: the head in a new
file, the ablation with a claim in another (its deviations in Markdown beside it), nothing else edited;
the README's smoke command (3 seeds, a --out of its own, here holding a copy of the committed results). The papers' headline is the committed
report's, and the user's claim is judged in its own part."""
import os
import re
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# not needed to run an ablation, or too big to copy (the weights are linked instead)
# probes/ is copied: the ablation files name their mechanisms' probes (probes/mechanisms.py)
LEFT_OUT = shutil.ignore_patterns(".git", "venv", ".venv", "__pycache__", "runs", "cache", "weights", "figures",
                                  "tests", "*.lock")


def walk_through():
    """(the head's file, the ablation's file, its deviations' Markdown, the smoke command) as the README
    gives them."""
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    part = text[text.index("## Add your own ablation"):text.index("## Tests")]
    head, ablation = re.findall(r"```python\n(.*?)```", part, re.S)
    (notes,) = re.findall(r"```markdown\n(.*?)```", part, re.S)
    (command,) = [line for block in re.findall(r"```bash\n(.*?)```", part, re.S) for line in block.splitlines()
                  if "--preset smoke" in line]
    return head, ablation, notes, command.split("#")[0].split()


def headline(report):
    """The papers' headline: the overview table through the Verdicts table and its notes."""
    return report[report.index("## Every assertion at a glance"):report.index("\n\nCounted: ")]


def test_the_readmes_own_ablation_in_two_new_files_is_judged_apart_from_the_papers(tmp_path):
    head, ablation, notes, command = walk_through()
    repo, out = tmp_path / "repo", tmp_path / "mine"
    shutil.copytree(REPO, repo, ignore=LEFT_OUT)
    os.symlink(os.path.join(REPO, "weights"), repo / "weights")
    shutil.copytree(os.path.join(REPO, "results"), out, ignore=LEFT_OUT)
    (repo / "segmodels" / "my_head.py").write_text(head)
    (repo / "ablations" / "my_head.py").write_text(ablation)
    (repo / "ablations" / "my_head.md").write_text(notes)
    assert command[:2] == ["python", "run_all.py"] and command[-2:] == ["--out", "/tmp/mine"]
    done = subprocess.run([sys.executable, *command[1:-1], str(out), "--no-progress"], cwd=repo,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "my_head: 6 new row(s)" in done.stdout  # 2 variants × 3 seeds
    report = (out / "report" / "REPORT.md").read_text()
    committed = open(os.path.join(REPO, "report", "REPORT.md"), encoding="utf-8").read()
    assert headline(report) == headline(committed)
    own = report[report.index("# Your own ablations"):]
    assert "my head beats the 1×1 conv" in own and "my head beats" not in report[:report.index("# Your own ablations")]
    verdict = re.search(r"\*\*my head beats the 1×1 conv\*\* \(.*?\) \| \*\*(\w+)\*\*", own)
    assert verdict and verdict[1] in ("reproduced", "contradicted", "absent", "inconclusive")
    assert "p(>)=" in own  # judged from the seeds: a statistic, not "not run yet"
    # its own deviation in the appendix, gcn_k's (which it includes) linked to where they are listed
    appendix = (out / "report" / "APPENDIX.md").read_text()
    mine = appendix[appendix.index("My head vs a 1×1 conv"):]
    assert "- My head's 3×3 conv keeps the 64 channels" in mine and "(from gcn_k.md" not in appendix
