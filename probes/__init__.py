"""Probes of the mechanisms behind settings of the embedded tasks: each one chose a setting (a
difficulty mode, a trunk depth) by whether the mechanism shows, before any claim was judged at it;
the notes beside the ablation files (ablations/<name>.md) give their numbers."""
