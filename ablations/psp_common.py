"""What the two PSPNet ablations (psp_pool, psp_aux) share: the paper, the presets (identical, so a
run both tables contain — the baseline with α = 0.4 — is trained once) and the deviations. (The
report section on why a local receptive field cannot solve the embedded dataset's context task is
report/psp.py; its measurements, upward_reach and band_distances, are in engine/measurements.py.)
"""
PAPER = "Zhao, Shi, Qi, Wang, Jia. Pyramid Scene Parsing Network. CVPR 2017, arXiv 1612.01105"

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
PRESETS = {
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

SCENES = (
        "Embedded generated scenes in scene-context mode (128 px; background + 4 shapes × 2 kinds of "
        "scene = 9 classes; the kind of scene is shown only by a red or blue band along the top edge, "
        "48 px above every object) instead of ADE20K (150 classes): absolute numbers are not comparable "
        "with the paper's; directions are.")
CONTEXT_ACC = (
        "context_acc (not in the paper): of the object pixels predicted as some object, the share "
        "given the right kind of scene, whatever the shape (chance = 50 %).")
PROBE = ("probes/pretraining.py (held-out mIoU: trained on the quick preset's training split less 300 images, "
         "scored on those 300, never the validation split; 4 seeds; same iterations, so the same wall time per run; "
         "chosen by seed sd and by mean held-out mIoU over the two variants, before any verdict at the new settings): ")
TRUNK = (
        "A 4-stage CNN (output stride 8; head 64 channels, auxiliary head 32) instead of an ImageNet ResNet-50: "
        "the module's widths scale with it (DR: 64 → 4 × 16).")
SCHEDULE = (  # psp_aux's
        "From scratch: SGD momentum 0.9, batch 16, poly lr from 0.05 (the same lr for all layers: nothing is "
        "pretrained), horizontal flip only (paper: lr 0.01, ×10 on new layers, scale/rotate/blur).")
STANDIN_SCHEDULE = (
        "SGD momentum 0.9, batch 16, poly lr from 0.004 on the pretrained trunk and × 12.5 (0.05) on the new layers, "
        "horizontal flip only (paper: lr 0.01, ×10 on new layers, scale/rotate/blur).")
# the probe of the protocol (probes/pretraining.py), in the order it was run
STANDIN = (
        "Fine-tuned from the trunk's colour-keeping stand-in (backbone weights 'fractal_colour': pretrained on the "
        "fractal classes with the attractor's coarse colour, 8 classes, as a second target at weight 0.5; "
        "engine/pretrain.py COLOUR_RECIPE; weights/README.md), where the GCN, cascade and DeepLab tables use the "
        "plain stand-in. Chosen by " + PROBE + "on psp_pool's B1236 + AVE against its baseline, from scratch (lr "
        "0.05): 82.75 ± 3.15 and 27.84 ± 1.73 (difference +54.91 ± 3.14, pair r 0.28); the plain stand-in at backbone "
        "lr 0.001 (new layers × 10): 57.01 ± 11.06 and 31.37 ± 0.68; at 0.004: 57.37 ± 23.28 and 32.73 ± 2.03; at "
        "0.004 × 12.5 (the new layers at the scratch rate): 71.14 ± 19.34 and 32.99 ± 2.07; every layer at 0.05: "
        "88.5, 88.4, 35.1, 88.9 and 33.03 ± 2.58. From the plain stand-in the pyramid learnt the scene context in "
        "some seeds only, at every rate. The hypothesis written then — the plain pretraining draws each fractal's "
        "colour at random, so its features need not keep colour, while this task's only scene cue is a band's "
        "colour — was tested by the colour target: at weight 1 (held-out class / colour accuracy 93.83 / 93.20 %), "
        "0.004 × 12.5: 81.63 ± 0.54 and 32.41 ± 1.95 (+49.22 ± 2.15), every seed's context accuracy ≥ 99.9 %; "
        "0.001 × 10: 68.19 ± 2.29 and 30.13 ± 0.48. Weight 1 left psp_depth's deeper trunks untrained on the "
        "classes (80.94 % at convs [1, 2, 6, 1], 22.34 % at [1, 2, 8, 2]; psp_aux's [1, 2, 8, 8]: 16.80 %) and "
        "weight 0.2 left the colour unlearnt at [1, 2, 8, 2] (11.48 %, chance 12.5 %); the rule, fixed before any "
        "fine-tuning at a new weight: every PSP ladder trunk ≥ 85 % on both targets. Weight 0.5 met it (class / "
        "colour: 98.59 / 92.27, 99.77 / 92.34, 98.75 / 93.28, 93.59 / 93.20 % from the shallowest rung to the "
        "deepest). At weight 0.5, 0.004 × 12.5: B1236 + AVE 82.39 ± 2.03 and baseline 32.90 ± 2.06 (+49.49 ± 3.98), "
        "every seed's context accuracy ≥ 98.7 %; psp_depth's deepest and shallowest rungs (ResNet269 vs ResNet50, "
        "single scale, the full module) 79.08 ± 0.31 and 71.98 ± 13.93 (the shallow rung's B1236 + AVE + DR, "
        "81.14, 51.58, 80.63, 74.55, missed much of the context in one seed: context accuracy 72.4 %; the others "
        "98.9, 98.1, 92.5), against 68.92 ± 14.94 and 79.49 ± 5.33 "
        "from scratch. By the rule (mean seed sd and mean held-out mIoU over the two variants) the stand-in "
        "wins both contrasts: 2.05 vs 2.44 and 57.6 vs 55.3; 7.1 vs 10.1 and 75.5 vs 74.2. It does not remove "
        "the spread: AVE pooling with DR still misses the context in some seeds (the band is 1/16 of the image, "
        "diluted by an average, picked out by a max). The full preset fine-tunes its wider trunks from their own "
        "colour stand-ins at the same rates (not probed at that size).")
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
