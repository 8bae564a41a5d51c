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
# upwards: less than the 48 px gap between the context band and the objects of the one-band scenes
# (data/synthetic.py); on issue 37's 2×2 grid (CONTEXT_GRID) the gap is 26 px or more, so a local head sees
# some objects' bands (the context section of the report measures how many).
SMALL_OS8 = {"name": "small", "widths": [24, 32, 64, 64], "strides": [2, 2, 2, 1], "convs": [1, 2, 2, 1]}

# The quick preset fine-tunes the trunk from its colour-keeping stand-in (weights "fractal_colour":
# engine/tools/pretrain.py COLOUR_RECIPE), the backbone at lr 0.004 and the new layers at × 12.5 (= 0.05, the
# scratch rate): probes/pretraining.py (psp_common.md) found the context task learnt unreliably from the
# plain stand-in at every rate, and reliably from this one. psp_aux stays from scratch (FROM_SCRATCH): its
# mechanism (the auxiliary loss speeding up a deep trunk's training) is gone from a stand-in (psp_aux.md).
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
