"""The engine's side programs, apart from its core (plans → runs → rows → verdicts): the pretraining of
the CPU backbones' stand-ins (`python -m engine.tools.pretrain`), the paper-shape dry run
(`run_all.py --preset paper --dry-run`) and the cluster launcher (`run_all.py --launcher`). They use the
core; the core calls none of them but the launcher, and that only when one is chosen.
"""
