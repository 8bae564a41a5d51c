"""Effective receptive field (Luo et al., NeurIPS 2016) of trained segmentation runs: how much each
input pixel moves the score of one output pixel, |∂ score / ∂ input|, averaged over validation
images. GCN's Fig. 3 argues with the *valid* receptive field; this measures it on the trained
models of a table instead of asserting it.

The score is the logit, at the centre output pixel, of the class the model predicts there. In eval
mode (BatchNorm on running statistics) images do not interact, so one backward pass of the summed
centre scores of a batch gives every image's own gradient.
"""
import math
import os

import torch

from ablations.runs import load_trained_run
from report.build import md_table, plt  # build sets the Agg backend first

MASS_FRACTIONS = (0.5, 0.9)


def effective_receptive_field(model, images, batch_size=16):
    """[H, W] map: mean over `images` [N,3,H,W] of |∂ s / ∂ x| summed over input channels, where
    s is the centre output pixel's logit of its predicted class."""
    model.eval()
    total = torch.zeros(images.shape[-2:], dtype=torch.float64)
    device = next(model.parameters()).device
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device).requires_grad_(True)
        logits = model(x)
        centre = logits[:, :, logits.shape[-2] // 2, logits.shape[-1] // 2]  # [B, classes]
        score = centre.gather(1, centre.argmax(1, keepdim=True)).sum()
        (grad,) = torch.autograd.grad(score, x)
        total += grad.abs().sum(1).sum(0).double().cpu()
    return total / len(images)


def mass_radius(erf, fraction):
    """Radius (px) of the smallest disc around the centre pixel that holds `fraction` of the map's
    total gradient mass: one number for how far the model looks."""
    h, w = erf.shape
    yy, xx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    dist = (yy.double() ** 2 + xx.double() ** 2).sqrt().flatten()
    order = dist.argsort()
    mass = erf.flatten()[order].cumsum(0)
    if mass[-1] <= 0:
        return math.nan
    return dist[order][int((mass >= fraction * mass[-1]).nonzero()[0])].item()


def variant_erf(rows, variant, results_dir, n_images, device):
    """(mean ERF over the variant's trained seeds, seeds used, seeds whose model files are missing)."""
    ok = rows[(rows["variant"] == variant) & (rows["status"] == "ok")].drop_duplicates("run_id")
    maps, used, missing = [], [], []
    for _, row in ok.sort_values("seed").iterrows():
        loaded = load_trained_run(results_dir, row["run_id"])
        if loaded is None:
            missing.append(int(row["seed"]))
            continue
        model, val_set = loaded
        model.to(device)
        first = val_set[0][0]
        # only images of the first one's size (real val sets may vary): the maps must line up
        images = [img for img in (val_set[i][0] for i in range(min(n_images, len(val_set))))
                  if img.shape == first.shape]
        maps.append(effective_receptive_field(model, torch.stack(images)))
        used.append(int(row["seed"]))
    return (torch.stack(maps).mean(0) if maps else None), used, missing


def erf_section(rows, results_dir, fig_dir, rel_fig, name, variants, labels, n_images=64):
    """Markdown (figure + table) comparing the effective receptive fields of `variants` (ids in
    rows; `labels` their captions). Variants whose trained models are not on disk are skipped
    with a note, so the report builds from the CSV alone."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    found, notes = [], []
    for vid, label in zip(variants, labels):
        erf, used, missing = variant_erf(rows, vid, results_dir, n_images, device)
        if missing:
            notes.append(f"{label}: model files of seed(s) {missing} not found under {results_dir}/runs/")
        if erf is None:
            notes.append(f"{label}: no trained model on disk, left out")
        else:
            found.append((label, erf, used))
    parts = ["### Effective receptive field (beyond the paper)",
             f"Mean |∂ score / ∂ input| of the centre output pixel's predicted-class logit over the first "
             f"{n_images} validation images, averaged over the trained seeds, summed over colour channels; "
             "each panel is scaled to its own maximum. The radii are those of the smallest disc around "
             "the centre that holds 50 % / 90 % of the gradient mass."]
    if found:
        fig, axes = plt.subplots(1, len(found), figsize=(3.2 * len(found), 3.4), squeeze=False)
        for ax, (label, erf, _) in zip(axes[0], found):
            ax.imshow((erf / erf.max()).numpy(), cmap="magma", vmin=0, vmax=1)
            h, w = erf.shape
            for fraction, style in zip(MASS_FRACTIONS, ("-", "--")):
                radius = mass_radius(erf, fraction)
                ax.add_patch(plt.Circle((w // 2, h // 2), radius, fill=False, color="cyan", ls=style, lw=0.8))
            ax.set_title(label, fontsize=9)
            ax.axis("off")
        fig.suptitle("effective receptive field of the centre pixel (circles: 50 % / 90 % of the mass)", fontsize=9)
        fig.tight_layout()
        fig.savefig(os.path.join(fig_dir, f"{name}_erf.png"), dpi=100)
        plt.close(fig)
        parts.append(f"![{name} effective receptive field]({rel_fig}/{name}_erf.png)")
        header = ["model", "seeds"] + [f"{int(100 * f)} % mass radius (px)" for f in MASS_FRACTIONS]
        body = [[label, ", ".join(map(str, used))] + [f"{mass_radius(erf, f):.1f}" for f in MASS_FRACTIONS]
                for label, erf, used in found]
        parts.append(md_table(header, body))
    if notes:
        parts.append("\n".join(f"- {n}" for n in notes))
    return "\n\n".join(parts)
