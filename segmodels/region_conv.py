"""Region convolution: convolutions, residual units and stage heads evaluated only at a region's
positions, for the Deep Layer Cascade (segmodels/cascade.py), whose later stages skip the pixels an
earlier stage has decided.

A later stage computes only at its region's positions (the pixels still undecided, at the feature
resolution). On the region path its convolutions never run densely: the k×k input window of every
active position is gathered (with the halo the kernel needs, read from the zero-padded map) into one
matrix [N, k·k·C] and multiplied with the weight [k·k·C, C_out] — work and memory scale with the
number N of active positions. A conv layer inside a unit gives its output at the region
and 0 elsewhere (the next conv reads those zeros in its halo); a residual unit gives
h(I) = relu(I + F(I)) inside the region and I outside (I ≥ 0 after the ReLU of the previous unit,
so relu(I) = I there). A unit that changes the channel count (ResNet's projection) gives 0 outside.
A full region takes the ordinary dense path (same values, nothing to skip); an empty one does nothing.
The product runs as a 1×1 convolution (rows_times_weight) so that on a CPU it goes to oneDNN, the
library every dense model of the suite runs on, not to MKL's GEMM (torch's matmul): MKL picks its
kernels by CPU vendor and model, oneDNN by instruction set only, so a cascade gives the same
numbers wherever a dense model does (same torch, same CPU capability). It is as fast as the
matmul at the cascade's shapes. Cost: gathering k·k windows moves k·k times the map's bytes, so
above some share of active positions the dense convolution is faster: on this CPU (64 channels,
benchmarks/region_conv.py) a conv breaks even near 45 % and a residual unit near 60 %. So a region
holding more than DENSE_ABOVE of its map is "dense": its units and heads run as the ordinary
convolutions of the whole NCHW map, each layer's output zeroed outside the region (`masked_unit`,
`masked_head`; BatchNorm still takes the region's statistics) — the region path's values up to
float rounding, at the dense path's cost plus a few masks. The region path thus never loses much to
dense. On a GPU the region path is one index_select and one cuDNN 1×1 convolution per conv (its
break-even not yet measured there; the CPU's is used).

Layout on the region path: one zero-padded channels-last map flattened to [B·(H+2p)·(W+2p), C]
("flat map"); a region holds the flat indices of its active positions and their tap indices.
Intermediate activations inside a unit or head are "rows" [N, C] (zero outside the region).
"""
import torch
import torch.nn.functional as F

# Share of active positions above which a region is computed densely with masks (see the module
# docstring): a little below the conv's CPU break-even, so the dispatch never picks the slower path.
DENSE_ABOVE = 0.4


class Region:
    """The active positions of a mask [B, H, W] on a flat map padded by `pad` on every side.
    dense_above: the share of active positions above which the region is computed densely with
    masks (`dense`; 1 or more: never)."""

    def __init__(self, mask, pad, dense_above=DENSE_ABOVE):
        if mask.dim() != 3 or mask.dtype != torch.bool:
            raise ValueError(f"region mask must be a bool tensor [B, H, W], got {mask.dtype} {tuple(mask.shape)}")
        self.mask, self.pad, self.dense_above = mask, pad, dense_above
        self.B, self.H, self.W = mask.shape
        self.Hp, self.Wp = self.H + 2 * pad, self.W + 2 * pad
        b, y, x = mask.nonzero(as_tuple=True)
        self.flat = (b * self.H + y) * self.W + x  # index into an unpadded [B·H·W] map
        self.pos = (b * self.Hp + y + pad) * self.Wp + x + pad  # index into the flat padded map
        self.n = len(self.pos)
        self.dense = self.n > dense_above * mask.numel()
        self._taps, self._row_taps, self._lut = {}, {}, None

    @property
    def numel(self):
        return self.B * self.Hp * self.Wp

    def subregion(self, keep):
        """The region of the rows where `keep` [N] is true (same padding and map)."""
        mask = torch.zeros_like(self.mask).view(-1)
        mask[self.flat[keep]] = True
        return Region(mask.view_as(self.mask), self.pad, self.dense_above)

    def taps(self, k, dilation):
        """[N, k·k] flat indices of each active position's k×k window (row-major, as conv weights)."""
        key = (k, dilation)
        if key not in self._taps:
            r = k // 2
            if r * dilation > self.pad:
                raise ValueError(f"a {k}×{k} conv at dilation {dilation} needs padding "
                                 f"{r * dilation}, the region map has {self.pad}")
            d = torch.arange(-r, r + 1, device=self.pos.device) * dilation
            offsets = (d[:, None] * self.Wp + d[None, :]).reshape(-1)
            self._taps[key] = self.pos[:, None] + offsets[None, :]
        return self._taps[key]

    def row_taps(self, k, dilation):
        """Like taps, but as row indices into rows [N, C] extended by one zero row (index N):
        a window position outside the region reads that zero row."""
        key = (k, dilation)
        if key not in self._row_taps:
            if self._lut is None:
                self._lut = torch.full((self.numel,), self.n, dtype=torch.long, device=self.pos.device)
                self._lut[self.pos] = torch.arange(self.n, device=self.pos.device)
            self._row_taps[key] = self._lut[self.taps(k, dilation)]
        return self._row_taps[key]


def check_region_conv(conv):
    k, d = conv.kernel_size[0], conv.dilation[0]
    if (conv.kernel_size[1] != k or conv.dilation[1] != d or conv.stride != (1, 1) or conv.groups != 1
            or conv.padding != (d * (k // 2),) * 2 or k % 2 == 0):
        raise ValueError(f"region convolution needs a square odd 'same' conv with stride 1 and groups 1, got {conv}")


def region_conv(conv, region, flat=None, rows=None):
    """`conv` evaluated at the region's active positions only: [N, C_out].
    Input: a flat padded map [numel, C] (defined everywhere) or rows [N, C] (zero outside)."""
    check_region_conv(conv)
    k, d = conv.kernel_size[0], conv.dilation[0]
    if region.n == 0:
        return conv.weight.new_zeros(0, conv.out_channels)
    weight = conv.weight.permute(0, 2, 3, 1).reshape(conv.out_channels, -1)  # [C_out, k·k·C_in]
    # index_select, not advanced indexing: several times faster on CPU for row gathers
    if k == 1:
        cols = rows if rows is not None else flat.index_select(0, region.pos)
    elif rows is not None:
        padded = torch.cat([rows, rows.new_zeros(1, rows.shape[1])])
        cols = padded.index_select(0, region.row_taps(k, d).view(-1)).view(region.n, -1)
    else:
        cols = flat.index_select(0, region.taps(k, d).view(-1)).view(region.n, -1)  # [N, k·k·C_in]
    out = rows_times_weight(cols, weight)
    return out + conv.bias if conv.bias is not None else out


def rows_times_weight(cols, weight):
    """cols [N, K] @ weight.t() [K, C] as a 1×1 convolution over a channels-last view of cols,
    batched by 16 (padding N with zero rows): torch sends a 1×1 convolution of a batch under 16 on
    one thread to MKL's GEMM, and 16 or more to oneDNN (see the module docstring for why)."""
    n, k = cols.shape
    pad = -n % 16
    if pad:
        cols = torch.cat([cols, cols.new_zeros(pad, k)])
    x = cols.view(16, (n + pad) // 16, 1, k).permute(0, 3, 1, 2)  # [16, K, N/16, 1], channels last
    out = F.conv2d(x, weight.view(*weight.shape, 1, 1))
    return out.permute(0, 2, 3, 1).reshape(n + pad, -1)[:n]


def region_bn(bn, rows):
    """BatchNorm over the region's rows (batch statistics of the region when training)."""
    training = bn.training and rows.shape[0] > 1  # one row has no variance: use the running stats
    if training and bn.track_running_stats:
        bn.num_batches_tracked.add_(1)
    momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
    return F.batch_norm(rows, bn.running_mean, bn.running_var, bn.weight, bn.bias, training, momentum, bn.eps)


def unit_parts(block):
    """(convs [(conv, bn)], projection (conv, bn) or None) of a residual unit: ours or
    torchvision's BasicBlock/Bottleneck. ReLU follows every conv but the last; the sum is ReLU'd."""
    if hasattr(block, "conv3"):
        convs = [(block.conv1, block.bn1), (block.conv2, block.bn2), (block.conv3, block.bn3)]
    else:
        convs = [(block.conv1, block.bn1), (block.conv2, block.bn2)]
    down = getattr(block, "downsample", None)
    return convs, (tuple(down) if down is not None else None)


def region_unit(block, flat, region):
    """One residual unit on the region: returns the new flat map (I outside the region, or 0 outside
    when the unit projects to another channel count)."""
    convs, proj = unit_parts(block)
    if region.n == 0:
        return flat if proj is None else flat.new_zeros(region.numel, proj[0].out_channels)
    rows = None
    for i, (conv, bn) in enumerate(convs):
        rows = region_bn(bn, region_conv(conv, region, flat=flat if i == 0 else None, rows=rows))
        if i < len(convs) - 1:
            rows = F.relu(rows)
    if proj is None:
        out = F.relu(flat.index_select(0, region.pos) + rows)
        return flat.index_copy_(0, region.pos, out)  # in place: autograd keeps only indices of `flat`
    conv, bn = proj
    out = F.relu(region_bn(bn, region_conv(conv, region, flat=flat)) + rows)
    return flat.new_zeros(region.numel, out.shape[1]).index_copy_(0, region.pos, out)


def masked_bn(bn, x, region):
    """BatchNorm of an NCHW map as region_bn gives it at the region's positions: in training with
    the region's batch statistics (the map is 0 outside the region then), else bn in eval form."""
    if bn.training and region.n > 1:
        rows = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]).index_select(0, region.flat)
        return from_rows(region_bn(bn, rows), region)
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


def masked_unit(block, x, region):
    """region_unit computed densely on an NCHW map (for a dense region): each conv's output is
    zeroed outside the region, so the next conv reads the zeros the region path reads."""
    convs, proj = unit_parts(block)
    m = region.mask[:, None]
    h = x
    for i, (conv, bn) in enumerate(convs):
        h = masked_bn(bn, conv(h), region)
        if i < len(convs) - 1:
            h = F.relu_(h.mul_(m))  # in place: neither BatchNorm's backward nor the mask's needs h
    if proj is None:
        return torch.where(m, F.relu_(h.add_(x)), x)
    return torch.where(m, F.relu_(h.add_(masked_bn(proj[1], proj[0](x), region))), 0.0)


def masked_head(head, x, region):
    """region_head computed densely on an NCHW map (for a dense region): logits [N, K] at the region."""
    m = region.mask[:, None]
    h = F.relu_(masked_bn(head.bn1, head.conv1(x), region).mul_(m))
    h = F.relu_(masked_bn(head.bn2, head.conv2(h), region).mul_(m))
    logits = head.classifier(head.dropout(h))
    return logits.permute(0, 2, 3, 1).reshape(-1, logits.shape[1]).index_select(0, region.flat)


def region_head(head, flat, region):
    """A stage head (two conv-BN-ReLU layers, dropout, classifier) on the region: logits [N, K]."""
    rows = F.relu(region_bn(head.bn1, region_conv(head.conv1, region, flat=flat)))
    rows = F.relu(region_bn(head.bn2, region_conv(head.conv2, region, rows=rows)))
    return region_conv(head.classifier, region, rows=head.dropout(rows))


def to_flat(x, pad):
    """NCHW map → flat zero-padded channels-last map [B·(H+2p)·(W+2p), C]: always a new tensor
    (residual units write into it in place)."""
    flat = F.pad(x, (pad,) * 4).permute(0, 2, 3, 1).reshape(-1, x.shape[1])
    return flat if pad else flat.clone()


def from_rows(rows, region):
    """Rows [N, C] → NCHW map with the rows at the region and zeros elsewhere."""
    base = rows.new_zeros(region.B * region.H * region.W, rows.shape[1])
    return base.index_copy(0, region.flat, rows).view(region.B, region.H, region.W, -1).permute(0, 3, 1, 2)


def unflatten(flat, region, channels):
    """Flat padded map → NCHW map (the padding cut off)."""
    p = region.pad
    m = flat.view(region.B, region.Hp, region.Wp, channels)
    return m[:, p:p + region.H, p:p + region.W].permute(0, 3, 1, 2)


def region_conv2d(conv, x, mask, dense_above=DENSE_ABOVE):
    """Region convolution with a dense interface (tests, benchmark): conv(x) at mask, 0 elsewhere.
    Only the active positions are computed, unless more than dense_above of them are active."""
    region = Region(mask, conv.dilation[0] * (conv.kernel_size[0] // 2), dense_above)
    if region.dense:
        check_region_conv(conv)
        return conv(x).mul_(mask[:, None])
    return from_rows(region_conv(conv, region, flat=to_flat(x, region.pad)), region)


def region_residual(block, x, mask, dense_above=DENSE_ABOVE):
    """A residual unit on a region with a dense interface: h(I) inside the mask, I outside."""
    convs, proj = unit_parts(block)
    pad = max(c.dilation[0] * (c.kernel_size[0] // 2) for c, _ in convs)
    region = Region(mask, pad, dense_above)
    if region.dense:
        return masked_unit(block, x, region)
    flat = region_unit(block, to_flat(x, pad), region)
    return unflatten(flat, region, flat.shape[1])
