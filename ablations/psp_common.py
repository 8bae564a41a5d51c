"""What the PSPNet ablations share: the paper, the presets (psp_pool, psp_depth, psp_chain build on PRESETS,
so a run two of them contain is trained once; psp_aux on ONE_BAND_PRESETS) and the deviations. (The
report section on why a local receptive field cannot solve the embedded dataset's context task is
report/psp.py; its measurements, upward_reach and band_distances, are in engine/measurements.py.)
"""
PAPER = "Zhao, Shi, Qi, Wang, Jia. Pyramid Scene Parsing Network. CVPR 2017, arXiv 1612.01105"

# Issue 37's rule (data/MECHANISMS.md, settings pilot): a 2×2 grid of sub-regions, each with one of 4 kinds
# of scene, so sub-region context that global pooling mixes is there for psp_pool's pyramid to keep; taken
# at the quick preset by every table sharing psp_pool's runs (psp_depth, psp_chain), not by psp_aux (its
# deeper trunk from scratch shares none, and its mechanism was not piloted: it keeps ONE_BAND_PRESETS)
CONTEXT_GRID = {"context_grid": 2, "contexts": 4, "radius": [0.08, 0.14]}

# Four stages, the last at stride 1 (output stride 8), so the auxiliary head sits on s3 and the
# main head on s4. With the 3×3 head conv and the ×8 upsampling, an output pixel sees at most 46 px
# upwards: less than the 48 px gap between the context band and the objects (data/synthetic.py).
SMALL_OS8 = {"name": "small", "widths": [24, 32, 64, 64], "strides": [2, 2, 2, 1], "convs": [1, 2, 2, 1]}

# The quick preset fine-tunes the trunk from its colour-keeping stand-in (weights "fractal_colour":
# engine/pretrain.py COLOUR_RECIPE), the backbone at lr 0.004 and the new layers at × 12.5 (= 0.05, the
# scratch rate): probes/pretraining.py (DEVIATIONS) found the context task learnt unreliably from the
# plain stand-in at every rate, and reliably from this one. psp_aux stays from scratch (FROM_SCRATCH): its
# mechanism (the auxiliary loss speeding up a deep trunk's training) is gone from a stand-in (its DEVIATIONS).
# The full preset does the same with its wider trunks' colour stand-ins (its rates not probed: the quick's).
FROM_SCRATCH = {"lr": 0.05, "head_lr_mult": 1.0}
FROM_STANDIN = {"lr": 0.004, "head_lr_mult": 12.5}
# every table tests as the authors' test codes do (hszhao/PSPNet's caffe_process.m, hszhao/semseg): the
# mirrored image's softmax averaged with the plain one's, at a single scale too (segmodels/pspnet.py)
MIRRORED = {"flip": True}
ONE_BAND_PRESETS = {
    "smoke": {"data": {"context": True}, "eval": MIRRORED,
              "model": {"backbone": SMALL_OS8, "head_width": 16, "aux_width": 8}},
    "quick": {"data": {"context": True, "image_size": 128, "n_train": 2000, "n_val": 300},
              "model": {"backbone": {**SMALL_OS8, "weights": "fractal_colour"}, "head_width": 64, "aux_width": 32},
              "train": {"iterations": 400, "batch_size": 16, **FROM_STANDIN}, "eval": MIRRORED},
    "full": {"data": {"context": True, "image_size": 128, "n_train": 10000, "n_val": 1000},
             "train": FROM_STANDIN, "eval": MIRRORED,
             "model": {"backbone": {**SMALL_OS8, "widths": [32, 64, 128, 128], "weights": "fractal_colour"},
                       "head_width": 128,
                       "aux_width": 64}},
    # the paper: ADE20K, dilated ResNet-50 (ImageNet), crop 473, random resize 0.5-2, rotation ±10°,
    # Gaussian blur, mirror; poly lr 0.01 (×10 on the new layers), momentum 0.9, wd 1e-4, batch 16,
    # 150K iterations; head 512 and auxiliary head 256 channels. BatchNorm trained (the paper: synchronised
    # BN over its GPUs, batch 16; engine/distributed.py under torchrun), not frozen.
    "paper": {"data": {"name": "ade20k", "crop_size": 473, "scale": [0.5, 2.0], "rotate": 10.0, "blur": True,
                       "flip": True},
              # deep_stem: the released ResNet-50/101's 3×3 stem (64-64-128); its ImageNet weights are the
              # authors', which a user gives with --weights (segmodels/backbones.py ResNetBackbone says which)
              "model": {"backbone": {"name": "resnet", "depth": 50, "output_stride": 8, "weights": "imagenet",
                                     "deep_stem": True},
                        "head_width": 512, "aux_width": 256, "freeze_bn": False},
              "train": {"iterations": 150000, "batch_size": 16, "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4,
                        "poly_power": 0.9, "head_lr_mult": 10.0},
              # the authors' test protocol (semseg's ADE20K settings): long side 512·s, 473-px windows slid over it
              "eval": {"batch_size": 1, **MIRRORED, "base_size": 512, "crop": 473}},
}
_QUICK = ONE_BAND_PRESETS["quick"]
PRESETS = {**ONE_BAND_PRESETS, "quick": {**_QUICK, "data": {**_QUICK["data"], **CONTEXT_GRID}}}

SCENES = (
        "Generated context scenes (9 classes, 128 px; the kind of scene shown only by a colour band 48 px above "
        "every object) instead of ADE20K (150 classes).")
CONTEXT_ACC = (
        "context_acc (not in the paper): of the object pixels predicted as some object, the share "
        "given the right kind of scene, whatever the shape (chance = 50 %).")
TRUNK = (
        "A 4-stage CNN (output stride 8; head 64 channels, auxiliary head 32) instead of an ImageNet ResNet-50: "
        "the module's widths scale with it (DR: 64 → 4 × 16).")
SCHEDULE = (  # psp_aux's
        "From scratch: SGD momentum 0.9, batch 16, poly lr from 0.05 (the same lr for all layers: nothing is "
        "pretrained), horizontal flip only (paper: lr 0.01, ×10 on new layers, scale/rotate/blur).")
STANDIN_SCHEDULE = (
        "SGD momentum 0.9, batch 16, poly lr from 0.004 on the pretrained trunk and × 12.5 (0.05) on the new layers, "
        "horizontal flip only (paper: lr 0.01, ×10 on new layers, scale/rotate/blur).")
STANDIN = (
        "Fine-tuned from a colour-keeping stand-in (fractal classes plus the attractor's coarse colour as a second "
        "target, weight 0.5; weights 'fractal_colour'), not the plain one the other papers' tables use: from the "
        "plain stand-in the pyramid learnt the scene context in some seeds only. Chosen by probes on held-out "
        "training images (ablations/psp_pool.md).")
# What follows the authors' released code (hszhao/PSPNet, hszhao/semseg), and what still does not
RELEASED = [
    "As released: every row is tested mirrored (the flipped image's softmax averaged with the plain one's), at a "
    "single scale too, as both released test codes do; so Table 3's and Table 4's multi-scale gain is that of the "
    "scales alone (before this, the single-scale rows were unmirrored and the gain included the mirror's). The "
    "timed inference (infer_fps) is of the mirrored pair.",
    "As released: B1's one level is projected (1×1 conv + BN + ReLU) to the input's width (2048 → 2048 at paper "
    "size; semseg's PPM reduces to 2048 / the number of levels); before this the B1 rows concatenated the raw "
    "pooled map, unprojected.",
    "As released (paper preset): ResNet-50 and -101 have the released prototxts' deep stem, three 3×3 convs "
    "64-64-128 (conv1_1 … conv1_3) where torchvision's have one 7×7 (trunk weights 23,578,304 and 42,518,208, as "
    "counted from hszhao/PSPNet's pspnet50_ADE20K_473 and pspnet101_VOC2012_473 prototxts). Their ImageNet weights "
    "are the authors' (hszhao/semseg's initmodel/resnet50_v2.pth, resnet101_v2.pth), given with --weights: "
    "torchvision has none of this stem. ResNet-152 and -269 keep the 7×7 stem (no released ResNet-152 was found; "
    "ResNet-269's released weights count matches the 7×7 stem).",
    "As released (paper preset): each scale resizes the image's long side to 512·s and slides 473-px windows over it "
    "(stride 316, each pixel's probabilities averaged over its windows), as semseg's test. The CPU presets test the "
    "whole 128-px image, resized by s: they train on whole images, so at s ≤ 1 one window is the whole image anyway, "
    "and at s > 1 windows below the embedded scenes' only context cue (a band along the top edge) would not see it, "
    "testing the cue's absence rather than the scale.",
    "Still different from the release (paper preset): each bottleneck that halves the resolution strides in its 3×3 "
    "conv, as torchvision's and hszhao/semseg's PyTorch ResNets; the Caffe prototxts stride its first 1×1 (conv3_1_"
    "1x1_reduce, stride 2). Weights and shapes are the same; what the strided layer sees is not.",
    "Still different from the release: the scores are upsampled to the image with align_corners=False (semseg's "
    "PSPNet: True), in training and at test.",
]
DEVIATIONS = {
    "synthetic": [
        SCENES, TRUNK, STANDIN_SCHEDULE, STANDIN,
        CONTEXT_ACC,
    ] + RELEASED,
    "real": [
        "One process, plain BatchNorm (the paper uses synchronised BN over its GPUs with batch 16).",
    ] + RELEASED,
}
