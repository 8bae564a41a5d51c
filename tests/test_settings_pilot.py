"""The settings pilot's own part (probes/settings_pilot.py): the rule's order. Its measurements are the
wired probes' (tests/test_mechanism_probes.py)."""
from probes import settings_pilot
from probes.settings_pilot import UNFINISHED, first_passing


def test_the_rule_takes_the_first_passing_candidate_in_order(capsys):
    seen = []

    def measure(passing):
        def probe(name, options, cfg):
            seen.append(name)
            if name == "(a)" and passing == "refuse (a)":
                raise ValueError("radius too large")
            return None if passing == "stop" else name in passing
        return probe

    assert first_passing("overfitting", {"n_train": 2000}, measure(("(a)", "(b)"))) == "(a)"
    assert seen == [settings_pilot.TODAY, "(a)"]  # (b) never measured once (a) passes
    assert first_passing("overfitting", {}, measure((settings_pilot.TODAY,))) == settings_pilot.TODAY
    assert first_passing("overfitting", {}, measure(())) is None  # none passes: not testable
    seen.clear()
    assert first_passing("overfitting", {}, measure("refuse (a)")) is None
    assert seen == [settings_pilot.TODAY, "(a)", "(b)"] and "refused by the generator" in capsys.readouterr().out
    assert first_passing("overfitting", {}, measure("stop")) == UNFINISHED  # never skipped to a later one
