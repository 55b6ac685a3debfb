#!/usr/bin/env python3
"""Train libvqgan's small default model: a scaled-down S-FLCKR Net2NetTransformer.

    /usr/bin/python3 tools/train.py --out build/train

trains, on ../shared/data/sflckr (20 landscape photos + 182-label segmentation
maps; 4 photos held out, see HELD_OUT), the reference's three parts as PyTorch
modules whose architecture and state_dict names are those of the reference
implementation (CompVis taming-transformers):

  1. first stage  taming.models.vqgan.VQModel (Encoder/Decoder of
     taming/modules/diffusionmodules/model.py + VectorQuantizer), f=16,
     trained with L1 + codebook/commitment + PatchGAN hinge loss with the
     reference's adaptive weight, plus a substitute perceptual term
     (see perceptual_substitute);
  2. condition    taming.models.vqgan.VQSegmentationModel (182-channel one-hot
     in and out), f=16: encoder zero-residual-initialised with a k-means
     codebook, decoder trained to reconstruct the one-hot map with the
     reference's BCELossWithQuant + softmax cross-entropy (see
     train_cond_stage for why the encoder is not trained);
  3. transformer  taming.modules.transformer.mingpt.GPT on (w*w condition tokens
     ++ w*w image tokens) windows, cross-entropy on the image tokens exactly as
     Net2NetTransformer.forward/shared_step does.
  4. (--dec-steps) the first stage's decoder refitted for fidelity (MSE +
     L1, optionally the perceptual substitute; no GAN) with the encoder and
     codebook frozen, so the tokens of stages 2-3 stay valid (refit_decoder).

and writes OUT/config.yaml + OUT/model.ckpt in the reference's layout
(Lightning-style checkpoint), which tools/convert.py converts like any
released model.  Everything is seeded; the schedule is step-based, so the
same command reproduces the same model (up to CPU floating-point
non-determinism in threaded kernels).

Data: the S-FLCKR photos (HELD_OUT never seen by any stage) for all three
stages; the photos of --extra-data (default ../shared/data/coco: COCO-Stuff
photos whose maps are in the same label space, 255 = unlabelled) for the
first stage only, which needs no labels.  --factor 8 builds both stages with
four levels (f=8) instead of five (f=16).

A long run can be stopped and continued: stages 1, 3 and 4 write
OUT/stage1.partial.pt / stage3.partial.pt / stage4.partial.pt every
--ckpt-every steps (weights, optimiser state and every generator's state),
finished stages OUT/stage1.pt, stage2.pt, stage3.pt, each with the schedule it
was made by; rerun the same command with --resume and it takes up where it
stopped, with the same steps (and only the refit runs again when only the
--dec-* options changed).

`--verify` only checks the modules against the golden vectors of the
reference (../shared/golden) and exits.
"""
import argparse
import math
import os
import sys
import time

# OpenMP threads that spin while waiting collapse to a crawl when other jobs
# share the cores (measured here: ~10x slower per step); wait passively.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_DATA = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "sflckr"))
if not os.path.isdir(DEFAULT_DATA):
    DEFAULT_DATA = "/work/shared/data/sflckr"
DEFAULT_COCO = os.path.join(os.path.dirname(DEFAULT_DATA), "coco")
DEFAULT_GOLDEN = os.path.normpath(os.path.join(ROOT, "..", "shared", "golden"))
if not os.path.isdir(DEFAULT_GOLDEN):
    DEFAULT_GOLDEN = "/work/shared/golden"

# Photos never seen in training (all three stages); eval_quality.py uses them.
HELD_OUT = [
    "black_forest_44974691685_8e7372e2b1_b",   # mountain, sky, tree, hill
    "canada_256743165_9f130ba95b_b",           # river, sky, tree, mountain
    "carribean_14351041152_ef77484a1f_b",      # sea, sand, sky, rock
    "ireland_15570753471_74db396d14_b",        # grass, clouds, mountain, hill, tree
]

N_LABELS = 182
UNLABELLED = 255
WINDOW = 16  # transformer window (tokens per side): block_size = 2*w*w

# ----------------------------------------------------------------------------
# Model configuration (the S-FLCKR family, scaled down).  The released S-FLCKR
# model: ch 128, ch_mult [1,1,2,2,4], 2 res blocks, attention at 16, z/embed
# 256, 1024 codes, GPT 24x1024 with block 512.
FIRST_STAGE = dict(
    embed_dim=32, n_embed=256,
    ddconfig=dict(double_z=False, z_channels=64, resolution=256, in_channels=3, out_ch=3,
                  ch=32, ch_mult=[1, 1, 2, 2, 4], num_res_blocks=1,
                  attn_resolutions=[16], dropout=0.0))
COND_STAGE = dict(
    embed_dim=32, n_embed=128, n_labels=N_LABELS,
    ddconfig=dict(double_z=False, z_channels=64, resolution=256, in_channels=N_LABELS,
                  out_ch=N_LABELS, ch=32, ch_mult=[1, 1, 2, 2, 4], num_res_blocks=1,
                  attn_resolutions=[16], dropout=0.0))
TRANSFORMER = dict(vocab_size=max(FIRST_STAGE["n_embed"], COND_STAGE["n_embed"]),
                   block_size=2 * WINDOW * WINDOW, n_layer=4, n_head=4, n_embd=128)

# Downsampling factor of both stages (pixels per token side); --factor sets it.
FACTOR = 16
CH_MULT = {16: [1, 1, 2, 2, 4], 8: [1, 2, 2, 4]}


def set_factor(f):
    """Both stages at f=16 (five levels, as the released S-FLCKR model) or f=8
    (four levels, as the released f=8 models); attention at the lowest level."""
    global FACTOR
    for st in (FIRST_STAGE, COND_STAGE):
        st["ddconfig"]["ch_mult"] = list(CH_MULT[f])
        st["ddconfig"]["attn_resolutions"] = [st["ddconfig"]["resolution"] // f]
    FACTOR = f


def factor_of(ddconfig):
    return 2 ** (len(ddconfig["ch_mult"]) - 1)


# ============================================================================
# taming/modules/diffusionmodules/model.py
# ============================================================================
def nonlinearity(x):
    return x * torch.sigmoid(x)  # swish


def Normalize(in_channels):
    return nn.GroupNorm(num_groups=32, num_channels=in_channels, eps=1e-6, affine=True)


class Upsample(nn.Module):
    def __init__(self, in_channels, with_conv=True):
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv = nn.Conv2d(in_channels, in_channels, 3, 1, 1)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if self.with_conv:
            x = self.conv(x)
        return x


class Downsample(nn.Module):
    def __init__(self, in_channels, with_conv=True):
        super().__init__()
        self.with_conv = with_conv
        if with_conv:  # no asymmetric padding in torch conv, must do it ourselves
            self.conv = nn.Conv2d(in_channels, in_channels, 3, 2, 0)

    def forward(self, x):
        if self.with_conv:
            x = F.pad(x, (0, 1, 0, 1), mode="constant", value=0)
            return self.conv(x)
        return F.avg_pool2d(x, 2, 2)


class ResnetBlock(nn.Module):
    def __init__(self, *, in_channels, out_channels=None, conv_shortcut=False, dropout=0.0,
                 temb_channels=0):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels, self.out_channels = in_channels, out_channels
        self.use_conv_shortcut = conv_shortcut
        self.norm1 = Normalize(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        if temb_channels > 0:
            self.temb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = Normalize(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        if in_channels != out_channels:
            if conv_shortcut:
                self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
            else:
                self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1, 1, 0)

    def forward(self, x, temb=None):
        h = self.conv1(nonlinearity(self.norm1(x)))
        h = self.conv2(self.dropout(nonlinearity(self.norm2(h))))
        if self.in_channels != self.out_channels:
            x = self.conv_shortcut(x) if self.use_conv_shortcut else self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.norm = Normalize(in_channels)
        self.q = nn.Conv2d(in_channels, in_channels, 1)
        self.k = nn.Conv2d(in_channels, in_channels, 1)
        self.v = nn.Conv2d(in_channels, in_channels, 1)
        self.proj_out = nn.Conv2d(in_channels, in_channels, 1)

    def forward(self, x):
        h_ = self.norm(x)
        q, k, v = self.q(h_), self.k(h_), self.v(h_)
        b, c, h, w = q.shape
        q = q.reshape(b, c, h * w).permute(0, 2, 1)            # b,hw,c
        k = k.reshape(b, c, h * w)                              # b,c,hw
        w_ = torch.bmm(q, k) * (int(c) ** (-0.5))               # b,hw(q),hw(k)
        w_ = F.softmax(w_, dim=2)
        v = v.reshape(b, c, h * w)
        h_ = torch.bmm(v, w_.permute(0, 2, 1)).reshape(b, c, h, w)
        return x + self.proj_out(h_)


class Encoder(nn.Module):
    def __init__(self, *, ch, out_ch, ch_mult=(1, 2, 4, 8), num_res_blocks, attn_resolutions,
                 dropout=0.0, resamp_with_conv=True, in_channels, resolution, z_channels,
                 double_z=True, **ignore_kwargs):
        super().__init__()
        self.ch, self.temb_ch = ch, 0
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        self.conv_in = nn.Conv2d(in_channels, ch, 3, 1, 1)
        curr_res = resolution
        in_ch_mult = (1,) + tuple(ch_mult)
        self.down = nn.ModuleList()
        for i_level in range(self.num_resolutions):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_in, block_out = ch * in_ch_mult[i_level], ch * ch_mult[i_level]
            for _ in range(num_res_blocks):
                block.append(ResnetBlock(in_channels=block_in, out_channels=block_out,
                                         dropout=dropout))
                block_in = block_out
                if curr_res in attn_resolutions:
                    attn.append(AttnBlock(block_in))
            down = nn.Module()
            down.block, down.attn = block, attn
            if i_level != self.num_resolutions - 1:
                down.downsample = Downsample(block_in, resamp_with_conv)
                curr_res = curr_res // 2
            self.down.append(down)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(in_channels=block_in, out_channels=block_in, dropout=dropout)
        self.mid.attn_1 = AttnBlock(block_in)
        self.mid.block_2 = ResnetBlock(in_channels=block_in, out_channels=block_in, dropout=dropout)
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, 2 * z_channels if double_z else z_channels, 3, 1, 1)

    def forward(self, x):
        return self.body(self.conv_in(x))

    def body(self, h):
        """everything after conv_in"""
        for i_level in range(self.num_resolutions):
            for i_block in range(self.num_res_blocks):
                h = self.down[i_level].block[i_block](h)
                if len(self.down[i_level].attn) > 0:
                    h = self.down[i_level].attn[i_block](h)
            if i_level != self.num_resolutions - 1:
                h = self.down[i_level].downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(nonlinearity(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, *, ch, out_ch, ch_mult=(1, 2, 4, 8), num_res_blocks, attn_resolutions,
                 dropout=0.0, resamp_with_conv=True, in_channels, resolution, z_channels,
                 give_pre_end=False, **ignorekwargs):
        super().__init__()
        self.ch, self.temb_ch = ch, 0
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        self.give_pre_end = give_pre_end
        block_in = ch * ch_mult[self.num_resolutions - 1]
        curr_res = resolution // 2 ** (self.num_resolutions - 1)
        self.conv_in = nn.Conv2d(z_channels, block_in, 3, 1, 1)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(in_channels=block_in, out_channels=block_in, dropout=dropout)
        self.mid.attn_1 = AttnBlock(block_in)
        self.mid.block_2 = ResnetBlock(in_channels=block_in, out_channels=block_in, dropout=dropout)
        self.up = nn.ModuleList()
        for i_level in reversed(range(self.num_resolutions)):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_out = ch * ch_mult[i_level]
            for _ in range(num_res_blocks + 1):
                block.append(ResnetBlock(in_channels=block_in, out_channels=block_out,
                                         dropout=dropout))
                block_in = block_out
                if curr_res in attn_resolutions:
                    attn.append(AttnBlock(block_in))
            up = nn.Module()
            up.block, up.attn = block, attn
            if i_level != 0:
                up.upsample = Upsample(block_in, resamp_with_conv)
                curr_res = curr_res * 2
            self.up.insert(0, up)
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, out_ch, 3, 1, 1)

    def forward(self, z):
        h = self.conv_in(z)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        for i_level in reversed(range(self.num_resolutions)):
            for i_block in range(self.num_res_blocks + 1):
                h = self.up[i_level].block[i_block](h)
                if len(self.up[i_level].attn) > 0:
                    h = self.up[i_level].attn[i_block](h)
            if i_level != 0:
                h = self.up[i_level].upsample(h)
        if self.give_pre_end:
            return h
        return self.conv_out(nonlinearity(self.norm_out(h)))


# ============================================================================
# taming/modules/vqvae/quantize.py : VectorQuantizer (the original one)
# ============================================================================
class VectorQuantizer(nn.Module):
    def __init__(self, n_e, e_dim, beta=0.25):
        super().__init__()
        self.n_e, self.e_dim, self.beta = n_e, e_dim, beta
        self.embedding = nn.Embedding(n_e, e_dim)
        self.embedding.weight.data.uniform_(-1.0 / n_e, 1.0 / n_e)

    def forward(self, z):
        z = z.permute(0, 2, 3, 1).contiguous()
        zf = z.view(-1, self.e_dim)
        e = self.embedding.weight
        d = (zf ** 2).sum(dim=1, keepdim=True) + (e ** 2).sum(dim=1) - 2 * zf @ e.t()
        idx = torch.argmin(d, dim=1)
        z_q = e[idx].view(z.shape)
        # the reference's loss, beta placement included
        loss = torch.mean((z_q.detach() - z) ** 2) + self.beta * torch.mean((z_q - z.detach()) ** 2)
        z_q = z + (z_q - z).detach()  # straight-through
        return z_q.permute(0, 3, 1, 2).contiguous(), loss, (zf.detach(), idx)


# ============================================================================
# taming/models/vqgan.py : VQModel, VQSegmentationModel
# ============================================================================
class VQModel(nn.Module):
    def __init__(self, ddconfig, n_embed, embed_dim, **ignore):
        super().__init__()
        self.encoder = Encoder(**ddconfig)
        self.decoder = Decoder(**ddconfig)
        self.quantize = VectorQuantizer(n_embed, embed_dim, beta=0.25)
        self.quant_conv = nn.Conv2d(ddconfig["z_channels"], embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, ddconfig["z_channels"], 1)

    def encode_h(self, x):
        return self.quant_conv(self.encoder(x))

    def encode(self, x):
        return self.quantize(self.encode_h(x))

    def decode(self, quant):
        return self.decoder(self.post_quant_conv(quant))

    def decode_code(self, idx):  # idx: (B,H,W) long
        q = self.quantize.embedding.weight[idx].permute(0, 3, 1, 2).contiguous()
        return self.decode(q)

    def forward(self, x):
        quant, qloss, info = self.encode(x)
        return self.decode(quant), qloss, info


class VQSegmentationModel(VQModel):
    def __init__(self, n_labels, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("colorize", torch.randn(3, n_labels, 1, 1))

    def conv_in_labels(self, seg):
        """encoder.conv_in applied to one_hot(seg), computed as a gather: a 3x3
        convolution of a one-hot map is, per output pixel, the sum over the 9
        taps of the weight column of the label found there (zero padding = a
        zero column).  Same result as the dense 182-channel convolution up to
        float summation order, at a fraction of the cost."""
        conv = self.encoder.conv_in
        wt = conv.weight                                   # (Cout, L, 3, 3)
        L = wt.shape[1]
        E = torch.cat((wt.permute(2, 3, 1, 0), wt.new_zeros(3, 3, 1, wt.shape[0])), 2)
        sp = F.pad(seg.long(), (1, 1, 1, 1), value=L)      # (B, H+2, W+2)
        H, W = seg.shape[-2:]
        out = conv.bias
        for ky in range(3):
            for kx in range(3):
                out = out + F.embedding(sp[:, ky:ky + H, kx:kx + W], E[ky, kx])
        return out.permute(0, 3, 1, 2).contiguous()

    def encode_labels(self, seg):
        """encode(one_hot(seg)) without materialising the one-hot map"""
        return self.quantize(self.quant_conv(self.encoder.body(self.conv_in_labels(seg))))

    def forward_labels(self, seg):
        quant, qloss, info = self.encode_labels(seg)
        return self.decode(quant), qloss, info


def one_hot(seg, n=N_LABELS):
    """np.eye(n)[seg] as the reference's sflckr dataset does, as a (B,n,H,W) float tensor."""
    return F.one_hot(seg.long(), n).permute(0, 3, 1, 2).float().contiguous()


# ============================================================================
# taming/modules/transformer/mingpt.py
# ============================================================================
class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, block_size, attn_pdrop, resid_pdrop, n_unmasked=0):
        super().__init__()
        assert n_embd % n_head == 0
        self.key = nn.Linear(n_embd, n_embd)
        self.query = nn.Linear(n_embd, n_embd)
        self.value = nn.Linear(n_embd, n_embd)
        self.attn_drop = nn.Dropout(attn_pdrop)
        self.resid_drop = nn.Dropout(resid_pdrop)
        self.proj = nn.Linear(n_embd, n_embd)
        mask = torch.tril(torch.ones(block_size, block_size))
        if n_unmasked > 0:
            mask[:n_unmasked, :n_unmasked] = 1
        self.register_buffer("mask", mask.view(1, 1, block_size, block_size))
        self.n_head = n_head

    def forward(self, x):
        B, T, C = x.size()
        nh = self.n_head
        k = self.key(x).view(B, T, nh, C // nh).transpose(1, 2)
        q = self.query(x).view(B, T, nh, C // nh).transpose(1, 2)
        v = self.value(x).view(B, T, nh, C // nh).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf"))
        att = self.attn_drop(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.proj(y))


class Block(nn.Module):
    def __init__(self, n_embd, n_head, block_size, pdrop, n_unmasked=0):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.ln2 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size, pdrop, pdrop, n_unmasked)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(),
                                 nn.Linear(4 * n_embd, n_embd), nn.Dropout(pdrop))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab_size, block_size, n_layer=12, n_head=8, n_embd=256,
                 embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0, n_unmasked=0):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab_size, n_embd)
        self.pos_emb = nn.Parameter(torch.zeros(1, block_size, n_embd))
        self.drop = nn.Dropout(embd_pdrop)
        self.blocks = nn.Sequential(*[Block(n_embd, n_head, block_size, resid_pdrop, n_unmasked)
                                      for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.block_size = block_size
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)

    def forward(self, idx):
        t = idx.shape[1]
        assert t <= self.block_size, "Cannot forward, model block size is exhausted."
        x = self.drop(self.tok_emb(idx) + self.pos_emb[:, :t, :])
        return self.head(self.ln_f(self.blocks(x)))


# ============================================================================
# losses (taming/modules/losses/vqperceptual.py, segmentation.py, discriminator)
# ============================================================================
class NLayerDiscriminator(nn.Module):
    """PatchGAN discriminator as in pix2pix / taming (BatchNorm, no actnorm)."""

    def __init__(self, input_nc=3, ndf=64, n_layers=3):
        super().__init__()
        kw, padw = 4, 1
        seq = [nn.Conv2d(input_nc, ndf, kw, 2, padw), nn.LeakyReLU(0.2, True)]
        nf_mult = 1
        for n in range(1, n_layers):
            nf_prev, nf_mult = nf_mult, min(2 ** n, 8)
            seq += [nn.Conv2d(ndf * nf_prev, ndf * nf_mult, kw, 2, padw, bias=False),
                    nn.BatchNorm2d(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
        nf_prev, nf_mult = nf_mult, min(2 ** n_layers, 8)
        seq += [nn.Conv2d(ndf * nf_prev, ndf * nf_mult, kw, 1, padw, bias=False),
                nn.BatchNorm2d(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
        seq += [nn.Conv2d(ndf * nf_mult, 1, kw, 1, padw)]
        self.main = nn.Sequential(*seq)
        for m in self.modules():  # taming.modules.discriminator.model.weights_init
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight.data, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight.data, 1.0, 0.02)
                nn.init.constant_(m.bias.data, 0)

    def forward(self, x):
        return self.main(x)


def _gauss_blur(x):
    # separable [1,4,6,4,1]/16 binomial blur, reflect-padded
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=x.dtype) / 16.0
    c = x.shape[1]
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, 5).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, 5, 1).repeat(c, 1, 1, 1), groups=c)


def _ssim(x, y):
    # x,y in [0,1]; local statistics with the binomial window
    C1, C2 = 0.01 ** 2, 0.03 ** 2
    mx, my = _gauss_blur(x), _gauss_blur(y)
    sxx = _gauss_blur(x * x) - mx * mx
    syy = _gauss_blur(y * y) - my * my
    sxy = _gauss_blur(x * y) - mx * my
    s = ((2 * mx * my + C1) * (2 * sxy + C2)) / ((mx * mx + my * my + C1) * (sxx + syy + C2))
    return s.mean()


def perceptual_substitute(x, xr, levels=3):
    """Stand-in for the reference's LPIPS(VGG16) term, for which no pretrained
    weights exist here.  What LPIPS contributes to VQGAN training is a penalty
    on *structural* differences (edges, local contrast, texture) that plain L1
    barely sees -- L1 alone is minimised by blurry, low-contrast decodes.  Two
    classical, weight-free measures of exactly that, over a 3-level Gaussian
    pyramid (so coarse structure counts as well as pixel-level edges):
      * L1 between image gradients (finite differences): penalises missing or
        displaced edges and smoothed-out texture;
      * 1 - SSIM (luminance/contrast/structure of local windows): penalises
        loss of local contrast and structure, the perceptual failure of blur.
    Both are differentiable, cheap on a CPU, and (unlike LPIPS) cannot be
    gamed by adversarial high-frequency patterns.  The PatchGAN term supplies
    the remaining realism pressure, as in the reference."""
    x = (x + 1) * 0.5
    xr = (xr + 1) * 0.5
    loss = 0.0
    for lvl in range(levels):
        gx = (x[..., :, 1:] - x[..., :, :-1]) - (xr[..., :, 1:] - xr[..., :, :-1])
        gy = (x[..., 1:, :] - x[..., :-1, :]) - (xr[..., 1:, :] - xr[..., :-1, :])
        loss = loss + gx.abs().mean() + gy.abs().mean() + (1.0 - _ssim(x, xr)) * 0.5
        if lvl + 1 < levels:
            x = F.avg_pool2d(_gauss_blur(x), 2)
            xr = F.avg_pool2d(_gauss_blur(xr), 2)
    return loss / levels


def hinge_d_loss(logits_real, logits_fake):
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def adaptive_weight(nll_loss, g_loss, last_layer, disc_weight):
    # VQLPIPSWithDiscriminator.calculate_adaptive_weight
    nll_grads = torch.autograd.grad(nll_loss, last_layer, retain_graph=True)[0]
    g_grads = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    d_weight = torch.norm(nll_grads) / (torch.norm(g_grads) + 1e-4)
    return torch.clamp(d_weight, 0.0, 1e4).detach() * disc_weight


# ============================================================================
# data
# ============================================================================
def extra_photos(args):
    """(folder, name) pairs of the --extra-data photos (first stage only)."""
    out = []
    for d in args.extra_data:
        out += [(d, f[:-4]) for f in sorted(os.listdir(os.path.join(d, "images"))) if f.endswith(".jpg")]
    return out


def list_photos(data):
    names = sorted(f[:-4] for f in os.listdir(os.path.join(data, "images")) if f.endswith(".jpg"))
    for h in HELD_OUT:
        assert h in names, h
    return [n for n in names if n not in HELD_OUT], list(HELD_OUT)


def load_photo(data, name):
    from PIL import Image
    img = Image.open(os.path.join(data, "images", name + ".jpg")).convert("RGB")
    seg = Image.open(os.path.join(data, "segmentations", name + ".png"))
    assert seg.mode in ("L", "P"), seg.mode
    if seg.size != img.size:
        seg = seg.resize(img.size, Image.NEAREST)
    return img, seg


def rescale(img, seg, s):
    from PIL import Image
    w, h = img.size
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    return img.resize((nw, nh), Image.BICUBIC), seg.resize((nw, nh), Image.NEAREST)


def to_tensors(img, seg):
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)
    s = torch.from_numpy(np.asarray(seg, dtype=np.int64))
    # 255 = unlabelled (COCO-Stuff maps); only the first stage reads such photos
    assert bool(((s < N_LABELS) | (s == UNLABELLED)).all())
    return x.contiguous(), s


class CropSampler:
    """Random crops, flips and scales of the training photos.  A pyramid of
    each photo (and its label map, nearest-neighbour) is built once at
    SCALES; a sample picks a photo, a scale, a flip and a crop position."""
    SCALES = [0.3, 0.375, 0.45, 0.55, 0.65, 0.8]

    def __init__(self, data, names, seed):
        """names: photo names in data, or (folder, name) pairs (extra data)."""
        self.pyr = []
        for n in names:
            img, seg = load_photo(*((data, n) if isinstance(n, str) else n))
            levels = []
            for s in self.SCALES:
                levels.append(to_tensors(*rescale(img, seg, s)))
            self.pyr.append(levels)
        self.rng = np.random.RandomState(seed)

    def sample(self, batch, size):
        xs, ss = [], []
        for _ in range(batch):
            p = self.pyr[self.rng.randint(len(self.pyr))]
            order = self.rng.permutation(len(p))
            for li in order:  # a scale at which the crop fits
                x, s = p[li]
                if x.shape[1] >= size and x.shape[2] >= size:
                    break
            y0 = self.rng.randint(x.shape[1] - size + 1)
            x0 = self.rng.randint(x.shape[2] - size + 1)
            xc, sc = x[:, y0:y0 + size, x0:x0 + size], s[y0:y0 + size, x0:x0 + size]
            if self.rng.rand() < 0.5:
                xc, sc = xc.flip(-1), sc.flip(-1)
            xs.append(xc)
            ss.append(sc)
        return torch.stack(xs), torch.stack(ss)


# ============================================================================
# logging
# ============================================================================
class Log:
    def __init__(self, path):
        self.f = open(path, "a")
        self.t0 = time.time()

    def __call__(self, *a):
        msg = "[%7.1fs] " % (time.time() - self.t0) + " ".join(str(x) for x in a)
        print(msg, flush=True)
        self.f.write(msg + "\n")
        self.f.flush()


def lr_at(step, total, base, warmup):
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def set_lr(opt, lr):
    for g in opt.param_groups:
        g["lr"] = lr


class Resume:
    """Periodic checkpoints of one stage's loop: everything its next step
    depends on (weights, optimiser moments, every random generator's state),
    written atomically to OUT/NAME.partial.pt every --ckpt-every steps.  With
    --resume a rerun continues from there and takes the same steps the
    uninterrupted run would have taken.  `sig` (the stage's schedule and
    seeds) must match, so a checkpoint of another schedule is never mixed in.
    `objs` names what is saved and restored: modules and optimisers
    (state_dict), generators (get_state), tensors (copied in place)."""

    def __init__(self, args, name, sig, log, objs):
        self.path = os.path.join(args.out, name + ".partial.pt")
        self.every, self.enabled, self.sig, self.log = args.ckpt_every, args.resume, sig, log
        self.stop_after = args.stop_after
        self.objs = objs

    @staticmethod
    def _get(o):
        if isinstance(o, torch.Tensor):
            return o.clone()
        return o.state_dict() if hasattr(o, "state_dict") else o.get_state()

    @staticmethod
    def _set(o, v):
        if isinstance(o, torch.Tensor):
            o.copy_(v)
        elif hasattr(o, "load_state_dict"):
            o.load_state_dict(v)
        else:
            o.set_state(v)

    def load(self):
        """Restore the objects from the last checkpoint; the step to continue at."""
        if not (self.enabled and os.path.exists(self.path)):
            return 0
        st = torch.load(self.path)
        if st["sig"] != self.sig:
            raise SystemExit("%s was written by another schedule (%s); remove it or drop --resume"
                             % (self.path, st["sig"]))
        self.log("resuming from %s at step %d" % (self.path, st["step"]))
        for k, o in self.objs.items():
            self._set(o, st[k])
        torch.set_rng_state(st["torch_rng"])
        return st["step"]

    def maybe_save(self, step, total):
        stop = self.stop_after and step + 1 == self.stop_after
        if not stop and (self.every <= 0 or (step + 1) % self.every or step + 1 >= total):
            return
        st = {k: self._get(o) for k, o in self.objs.items()}
        st.update(sig=self.sig, step=step + 1, torch_rng=torch.get_rng_state())
        tmp = self.path + ".tmp"
        torch.save(st, tmp)
        os.replace(tmp, self.path)
        if stop:
            self.log("stopping after step %d as asked (--stop-after); continue with --resume" % (step + 1))
            sys.exit(3)

    def done(self):
        if os.path.exists(self.path):
            os.remove(self.path)


def stage_sig(args, prefixes, skip=()):
    keys = sorted(k for k in vars(args) if k.startswith(prefixes) and k not in skip)
    return dict({k: getattr(args, k) for k in keys}, seed=args.seed, factor=FACTOR,
                extra=list(args.extra_data), n_embed=FIRST_STAGE["n_embed"])


# ============================================================================
# stage 1: first-stage VQGAN
# ============================================================================
def restart_dead_codes(vq, usage, zf, rng_t):
    """Re-seed codes unused since the last check with random encoder outputs
    (k-means style restart; a training aid only, the module is unchanged)."""
    dead = (usage == 0).nonzero().flatten()
    if len(dead) == 0:
        return 0
    pick = torch.randint(0, zf.shape[0], (len(dead),), generator=rng_t)
    with torch.no_grad():
        vq.embedding.weight.data[dead] = zf[pick] + 0.01 * zf.std() * torch.randn(
            len(dead), zf.shape[1], generator=rng_t)
    return len(dead)


def fs_end(args):
    """The step the first stage ends at: --fs-stop truncates the schedule of
    --fs-steps (learning rate, late crops and GAN start stay those of the
    whole schedule)."""
    return min(args.fs_stop, args.fs_steps) if args.fs_stop > 0 else args.fs_steps


def train_first_stage(args, data, train_names, val_names, log):
    torch.manual_seed(args.seed + 1)
    model = VQModel(**FIRST_STAGE)
    disc = NLayerDiscriminator(3, ndf=args.disc_ndf, n_layers=3)
    sampler = CropSampler(data, train_names + extra_photos(args), args.seed + 1)
    rng_t = torch.Generator().manual_seed(args.seed + 11)
    opt_ae = torch.optim.Adam(model.parameters(), lr=args.fs_lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(disc.parameters(), lr=args.fs_lr, betas=(0.5, 0.9))
    steps = args.fs_steps
    end = fs_end(args)
    disc_start = int(steps * args.disc_start)
    n_e = FIRST_STAGE["n_embed"]
    usage = torch.zeros(n_e)
    # fixed validation crops from held-out photos
    vsampler = CropSampler(data, val_names, args.seed + 100)
    vx, _ = vsampler.sample(8, 128)
    log("first stage: %.2fM params, %d steps%s, batch %d, crop %d (%d from step %d), disc from step %d" % (
        sum(p.numel() for p in model.parameters()) / 1e6, steps,
        " (ending at step %d)" % end if end < steps else "", args.fs_batch, args.fs_crop,
        args.fs_crop_late, int(args.fs_late * steps), disc_start))
    last = model.decoder.conv_out.weight
    # --fs-stop does not change the steps before it: its partial checkpoints
    # are those of the whole schedule
    res = Resume(args, "stage1", stage_sig(args, ("fs_", "disc_", "perceptual", "codebook"), skip=("fs_stop",)), log,
                 dict(model=model, disc=disc, opt_ae=opt_ae, opt_d=opt_d, usage=usage,
                      sampler_rng=sampler.rng, rng_t=rng_t))
    start = res.load()
    t0, acc = time.time(), {}
    model.train()
    for step in range(start, end):
        lr = lr_at(step, steps, args.fs_lr, 100)
        set_lr(opt_ae, lr)
        set_lr(opt_d, lr)
        crop = args.fs_crop if step < args.fs_late * steps else args.fs_crop_late
        x, _ = sampler.sample(args.fs_batch, crop)
        xrec, qloss, (zf, idx) = model(x)
        usage += torch.bincount(idx, minlength=n_e).float()
        rec = (x - xrec).abs().mean()
        p_loss = perceptual_substitute(x, xrec)
        nll = rec + args.perceptual_weight * p_loss
        loss = nll + args.codebook_weight * qloss
        gan_on = step >= disc_start
        if gan_on:
            logits_fake = disc(xrec)
            g_loss = -logits_fake.mean()
            d_weight = adaptive_weight(nll, g_loss, last, args.disc_weight)
            loss = loss + d_weight * g_loss
        opt_ae.zero_grad(set_to_none=True)
        loss.backward()
        opt_ae.step()
        if gan_on:
            logits_real = disc(x.detach())
            logits_fake = disc(xrec.detach())
            d_loss = hinge_d_loss(logits_real, logits_fake)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            for k, v in (("g", g_loss), ("dw", d_weight), ("d", d_loss),
                         ("lr_real", logits_real.mean()), ("lr_fake", logits_fake.mean())):
                acc[k] = acc.get(k, 0.0) + float(v)
        for k, v in (("rec", rec), ("perc", p_loss), ("q", qloss)):
            acc[k] = acc.get(k, 0.0) + float(v)
        acc["n"] = acc.get("n", 0) + 1
        # dead-code restarts during the first 60% of training only
        if (step + 1) % 50 == 0 and step < 0.6 * steps:
            nd = restart_dead_codes(model.quantize, usage, zf.detach(), rng_t)
            if nd:
                acc["restarted"] = acc.get("restarted", 0) + nd
            usage.zero_()
        if (step + 1) % args.log_every == 0 or step == end - 1:
            n = acc.pop("n")
            msg = " ".join("%s %.4f" % (k, v / n) for k, v in sorted(acc.items()) if k != "restarted")
            model.eval()
            with torch.no_grad():
                vr, _, (_, vidx) = model(vx)
                vpsnr = psnr(vx, vr)
                vused = len(torch.unique(vidx))
            model.train()
            el = time.time() - t0
            done = step + 1 - start
            log("fs step %d/%d lr %.2e %s | restarted %d | val psnr %.2f codes-in-val %d | %.2fs/step, eta %.0fs"
                % (step + 1, steps, lr, msg, acc.get("restarted", 0), vpsnr, vused,
                   el / done, el / done * (end - step - 1)))
            acc = {}
        res.maybe_save(step, end)
    res.done()
    model.eval()
    return model, disc


def psnr(x, y):
    a = ((x.clamp(-1, 1) + 1) * 127.5).round()
    b = ((y.clamp(-1, 1) + 1) * 127.5).round()
    mse = ((a - b) ** 2).mean().item()
    return 10 * math.log10(255.0 ** 2 / max(mse, 1e-10))


def refit_decoder(args, first, data, train_names, val_names, log):
    """Stage 4: the first stage's decoder (and post_quant_conv) refitted for
    fidelity, with the encoder and codebook frozen, so every token -- and the
    condition stage and transformer trained on them -- stays valid.  The loss
    is MSE + --dec-l1 * L1 + --dec-perceptual * perceptual_substitute; no GAN.
    The GAN-trained decoder trades pixel fidelity for texture: measured on the
    f=8 run, 300 steps of this refit took held-out reconstruction from 19.5 dB
    to 22.6 dB (samples/models/README.md)."""
    torch.manual_seed(args.seed + 4)
    sampler = CropSampler(data, train_names + extra_photos(args), args.seed + 4)
    vsampler = CropSampler(data, val_names, args.seed + 100)
    vx, _ = vsampler.sample(8, 128)
    for p in first.parameters():
        p.requires_grad_(False)
    params = list(first.decoder.parameters()) + list(first.post_quant_conv.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=args.dec_lr, betas=(0.5, 0.9))
    steps = args.dec_steps
    log("decoder refit: %.2fM params, %d steps, batch %d, crop %d, loss mse + %g l1 + %g perceptual" % (
        sum(p.numel() for p in params) / 1e6, steps, args.fs_batch, args.dec_crop, args.dec_l1,
        args.dec_perceptual))
    res = Resume(args, "stage4", stage_sig(args, ("fs_", "disc_", "perceptual", "codebook", "dec_"),
                                           skip=("fs_stop",)) | {"fs_end": fs_end(args)}, log,
                 dict(decoder=first.decoder, post_quant_conv=first.post_quant_conv, opt=opt,
                      sampler_rng=sampler.rng))
    start = res.load()
    t0, acc, n = time.time(), 0.0, 0
    first.eval()  # the encoder's statistics and the codebook stay as trained
    for step in range(start, steps):
        # cosine from dec_lr to a tenth of it, no warm-up: the decoder is trained
        set_lr(opt, args.dec_lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps))))
        x, _ = sampler.sample(args.fs_batch, args.dec_crop)
        with torch.no_grad():
            quant, _, _ = first.encode(x)
        xrec = first.decode(quant)
        loss = ((x - xrec) ** 2).mean() + args.dec_l1 * (x - xrec).abs().mean()
        if args.dec_perceptual:
            loss = loss + args.dec_perceptual * perceptual_substitute(x, xrec)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        acc += float(loss)
        n += 1
        if (step + 1) % args.log_every == 0 or step == steps - 1:
            with torch.no_grad():
                vpsnr = psnr(vx, first(vx)[0])
            el = time.time() - t0
            done = step + 1 - start
            log("dec step %d/%d loss %.4f | val psnr %.2f | %.2fs/step, eta %.0fs" % (
                step + 1, steps, acc / n, vpsnr, el / done, el / done * (steps - step - 1)))
            acc, n = 0.0, 0
        res.maybe_save(step, steps)
    res.done()
    for p in first.parameters():
        p.requires_grad_(True)
    first.eval()
    return first


# ============================================================================
# stage 2: segmentation condition stage
# ============================================================================
def skip_init(model):
    """Zero-initialise the last conv of every residual branch (ResnetBlock.conv2,
    AttnBlock.proj_out), so that at the start every block is the identity and
    the encoder is conv_in -> downsampling convs -> norm_out -> conv_out.
    Needed for the one-hot input: with ch=32, GroupNorm(32) is a per-channel
    instance norm, and on piecewise-constant label maps a normalised branch
    sees almost only region borders -- with the default init the branches
    swamp the label identity carried by the residual stream (measured: a
    fresh encoder's tokens name the majority label of their 16x16 patch 24%
    of the time; 75% with this init), and the reconstruction loss then gives
    almost no signal in a schedule of a few hundred steps.  Architecture and
    state_dict are unchanged."""
    for m in model.modules():
        if isinstance(m, ResnetBlock):
            nn.init.zeros_(m.conv2.weight)
            nn.init.zeros_(m.conv2.bias)
        elif isinstance(m, AttnBlock):
            nn.init.zeros_(m.proj_out.weight)
            nn.init.zeros_(m.proj_out.bias)


def label_maps(data, names, scale=0.4):
    out = []
    for n in names:
        img, seg = rescale(*load_photo(data, n), scale)
        sg = torch.from_numpy(np.asarray(seg, dtype=np.int64))
        out.append(sg[:sg.shape[0] // FACTOR * FACTOR, :sg.shape[1] // FACTOR * FACTOR])
    return out


@torch.no_grad()
def token_purity(model, train_maps, val_maps):
    """How well a condition token names the majority label of its 16x16 patch:
    a token -> label table is read off the training maps (whole photos, as
    the engine encodes them) and applied to the held-out maps."""
    def pairs(maps):
        res = []
        for g in maps:
            H, W = g.shape
            t = model.encode_labels(g[None])[2][1]
            f = FACTOR
            maj = torch.mode(g.view(H // f, f, W // f, f).permute(0, 2, 1, 3)
                             .reshape(-1, f * f), -1).values
            res += list(zip(t.tolist(), maj.tolist()))
        return res
    tab = {}
    for t, l in pairs(train_maps):
        tab.setdefault(t, {}).setdefault(l, 0)
        tab[t][l] += 1
    best = {t: max(d, key=d.get) for t, d in tab.items()}
    tr = pairs(train_maps)
    va = pairs(val_maps)
    return (np.mean([best[t] == l for t, l in tr]), np.mean([best.get(t, -1) == l for t, l in va]),
            len(tab))


def train_cond_stage(args, data, train_names, val_names, log):
    torch.manual_seed(args.seed + 2)
    model = VQSegmentationModel(**COND_STAGE)
    skip_init(model)
    sampler = CropSampler(data, train_names, args.seed + 2)
    vsampler = CropSampler(data, val_names, args.seed + 200)
    _, vs = vsampler.sample(8, 128)
    tmaps, vmaps = label_maps(data, train_names), label_maps(data, val_names)
    with torch.no_grad():
        # decoder output bias = log label prior (the logits start at the prior)
        cnt = sum(np.bincount(lv[0][1].numpy().ravel(), minlength=N_LABELS) for lv in sampler.pyr)
        model.decoder.conv_out.bias.copy_(torch.from_numpy(np.log(cnt / cnt.sum() + 1e-5)).float())
        # codebook initialised by k-means (10 Lloyd iterations) on the encoder
        # outputs of the whole training maps
        h0 = torch.cat([model.quant_conv(model.encoder.body(model.conv_in_labels(g[None])))
                        .permute(0, 2, 3, 1).reshape(-1, COND_STAGE["embed_dim"]) for g in tmaps])
        n_e = COND_STAGE["n_embed"]
        cb = h0[torch.randperm(h0.shape[0])[:n_e]].clone()
        for _ in range(10):
            a = torch.cdist(h0, cb).argmin(1)
            for k in range(n_e):
                if (a == k).any():
                    cb[k] = h0[a == k].mean(0)
        model.quantize.embedding.weight.copy_(cb)
    log("cond stage at init: token purity train %.3f held-out %.3f (%d codes)" % token_purity(
        model, tmaps, vmaps))
    # Only the decoder side (post_quant_conv + decoder) is trained: training the
    # encoder and codebook jointly with the reference's loss for the few
    # hundred steps affordable here collapsed the codebook (seen: 128 -> ~25
    # codes, token purity 0.73 -> 0.38 in 100 steps), i.e. it destroyed the
    # very information the transformer needs.  The encoder therefore stays a
    # fixed feature extractor (skip_init, default random weights) and its
    # codebook the k-means clustering of its outputs on the training maps.
    for m in (model.encoder, model.quant_conv, model.quantize):
        for p_ in m.parameters():
            p_.requires_grad_(False)
    opt = torch.optim.Adam(list(model.post_quant_conv.parameters()) + list(model.decoder.parameters()),
                           lr=args.cs_lr, betas=(0.5, 0.9))
    steps = args.cs_steps
    n_e = COND_STAGE["n_embed"]
    usage = torch.zeros(n_e)
    log("cond stage: %.2fM params, %d steps, batch %d, crop %d" % (
        sum(p.numel() for p in model.parameters()) / 1e6, steps, args.cs_batch, args.cs_crop))
    t0, acc = time.time(), {}
    model.train()
    for step in range(steps):
        lr = lr_at(step, steps, args.cs_lr, 50)
        set_lr(opt, lr)
        _, s = sampler.sample(args.cs_batch, args.cs_crop)
        x = one_hot(s)
        xrec, qloss, (zf, idx) = model.forward_labels(s)
        usage += torch.bincount(idx, minlength=n_e).float()
        # taming.modules.losses.segmentation.BCELossWithQuant (codebook_weight 1)
        # is BCE-with-logits averaged over all 182 channels: the one positive
        # channel per pixel carries 1/182 of the weight, and in a schedule of a
        # few hundred steps the decoder settles on "every label absent" (seen
        # here: BCE falls to 0.05 while pixel accuracy stays ~15%, val ~1%, and
        # the encoder uses ~15 codes).  The softmax cross-entropy over the same
        # logits trains the same outputs with full weight on the true label, so
        # it is added to the reference's terms.
        bce = F.binary_cross_entropy_with_logits(xrec, x)
        ce = F.cross_entropy(xrec, s)
        loss = ce + bce  # (+ qloss, which has no gradient with the encoder fixed)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        acc["bce"] = acc.get("bce", 0.0) + float(bce)
        acc["ce"] = acc.get("ce", 0.0) + float(ce)
        acc["q"] = acc.get("q", 0.0) + float(qloss)
        acc["pixacc"] = acc.get("pixacc", 0.0) + float((xrec.argmax(1) == s).float().mean())
        acc["n"] = acc.get("n", 0) + 1
        # (no dead-code restarts here: the k-means codebook already covers the
        # label layouts, and random re-seeding was seen to cost token purity)
        if (step + 1) % args.log_every == 0 or step == steps - 1:
            n = acc.pop("n")
            model.eval()
            with torch.no_grad():
                vr, _, (_, vidx) = model.forward_labels(vs)
                vacc = float((vr.argmax(1) == vs).float().mean())
            model.train()
            el = time.time() - t0
            log("cs step %d/%d lr %.2e ce %.4f bce %.5f q %.4f pixacc %.4f | restarted %d | val pixacc %.4f codes %d | %.2fs/step, eta %.0fs"
                % (step + 1, steps, lr, acc["ce"] / n, acc["bce"] / n, acc["q"] / n, acc["pixacc"] / n,
                   acc.get("restarted", 0), vacc, len(torch.unique(vidx)),
                   el / (step + 1), el / (step + 1) * (steps - step - 1)))
            acc = {}
        if (step + 1) % 100 == 0 or step == steps - 1:
            model.eval()
            log("cs step %d: token purity train %.3f held-out %.3f (%d codes)" % (
                (step + 1,) + token_purity(model, tmaps, vmaps)))
            model.train()
    model.eval()
    return model


# ============================================================================
# stage 3: transformer
# ============================================================================
TOKEN_SCALES = [0.375, 0.45, 0.55, 0.65]


@torch.no_grad()
def tokenize(first, cond, data, names, scales, offsets, log, flips=(False, True),
             min_side=None):
    """Encode whole photos (as the engine encodes whole frames) into aligned
    (cond grid, image grid) pairs at several scales, flips and pixel shifts."""
    f = FACTOR
    if min_side is None:
        min_side = f * WINDOW + f
    out = []
    for n in names:
        img0, seg0 = load_photo(data, n)
        for s in scales:
            s = max(s, min_side / min(img0.size))
            img, seg = rescale(img0, seg0, s)
            x, sg = to_tensors(img, seg)
            for flip in flips:
                xf, sf = (x.flip(-1), sg.flip(-1)) if flip else (x, sg)
                for oy, ox in offsets:
                    H = (xf.shape[1] - oy) // f * f
                    W = (xf.shape[2] - ox) // f * f
                    xc = xf[:, oy:oy + H, ox:ox + W][None]
                    sc = sf[oy:oy + H, ox:ox + W][None]
                    _, _, (_, zi) = first.encode(xc)
                    _, _, (_, ci) = cond.encode_labels(sc)
                    if H // f >= WINDOW and W // f >= WINDOW:
                        out.append((ci.view(H // f, W // f), zi.view(H // f, W // f)))
    log("tokenized %d grids from %d photos" % (len(out), len(names)))
    return out


def sample_windows(grids, batch, rng, w=WINDOW):
    cs, zs = [], []
    for _ in range(batch):
        c, z = grids[rng.randint(len(grids))]
        i = rng.randint(c.shape[0] - w + 1)
        j = rng.randint(c.shape[1] - w + 1)
        cs.append(c[i:i + w, j:j + w].reshape(-1))
        zs.append(z[i:i + w, j:j + w].reshape(-1))
    return torch.stack(cs), torch.stack(zs)


def net2net_loss(gpt, c_idx, z_idx):
    # Net2NetTransformer.forward + shared_step (pkeep = 1)
    cz = torch.cat((c_idx, z_idx), dim=1)
    logits = gpt(cz[:, :-1])
    logits = logits[:, c_idx.shape[1] - 1:]
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), z_idx.reshape(-1))


def train_transformer(args, first, cond, data, train_names, val_names, log):
    torch.manual_seed(args.seed + 3)
    t0 = time.time()
    grids = tokenize(first, cond, data, train_names, TOKEN_SCALES, [(0, 0), (8, 8)], log)
    vgrids = tokenize(first, cond, data, val_names, [0.5], [(0, 0)], log, flips=(False,))
    log("tokenizing took %.0fs" % (time.time() - t0))
    rng = np.random.RandomState(args.seed + 3)
    vrng = np.random.RandomState(args.seed + 300)
    vc, vz = sample_windows(vgrids, 16, vrng)
    gpt = GPT(**TRANSFORMER, embd_pdrop=0.1, resid_pdrop=0.1, attn_pdrop=0.1)
    # Net2NetTransformer.configure_optimizers: AdamW, decay on Linear weights only
    decay, no_decay = [], []
    for mn, m in gpt.named_modules():
        for pn, p in m.named_parameters(recurse=False):
            (decay if pn == "weight" and isinstance(m, nn.Linear) else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.tf_lr, betas=(0.9, 0.95))
    steps = args.tf_steps
    log("transformer: %.2fM params, %d steps, batch %d, block %d" % (
        sum(p.numel() for p in gpt.parameters()) / 1e6, steps, args.tf_batch,
        TRANSFORMER["block_size"]))
    res = Resume(args, "stage3", stage_sig(args, ("tf_", "fs_", "cs_")), log,
                 dict(gpt=gpt, opt=opt, rng=rng))
    start = res.load()
    t0, acc, n = time.time(), 0.0, 0
    gpt.train()
    for step in range(start, steps):
        lr = lr_at(step, steps, args.tf_lr, 100)
        set_lr(opt, lr)
        c, z = sample_windows(grids, args.tf_batch, rng)
        loss = net2net_loss(gpt, c, z)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gpt.parameters(), 1.0)
        opt.step()
        acc += float(loss)
        n += 1
        if (step + 1) % args.log_every == 0 or step == steps - 1:
            gpt.eval()
            with torch.no_grad():
                vl = float(net2net_loss(gpt, vc, vz))
            gpt.train()
            el = time.time() - t0
            done = step + 1 - start
            log("tf step %d/%d lr %.2e loss %.4f | val loss %.4f | %.2fs/step, eta %.0fs" % (
                step + 1, steps, lr, acc / n, vl, el / done, el / done * (steps - step - 1)))
            acc, n = 0.0, 0
        res.maybe_save(step, steps)
    res.done()
    gpt.eval()
    return gpt


# ============================================================================
# output in the reference's layout
# ============================================================================
def make_config():
    def stage(target, p, extra=None):
        params = {"embed_dim": p["embed_dim"], "n_embed": p["n_embed"]}
        if extra:
            params.update(extra)
        params["ddconfig"] = dict(p["ddconfig"])
        params["lossconfig"] = {"target": "taming.modules.losses.DummyLoss"}
        return {"target": target, "params": params}

    return {"model": {
        "base_learning_rate": 4.5e-06,
        "target": "taming.models.cond_transformer.Net2NetTransformer",
        "params": {
            "cond_stage_key": "segmentation",
            "transformer_config": {"target": "taming.modules.transformer.mingpt.GPT",
                                   "params": dict(TRANSFORMER)},
            "first_stage_config": stage("taming.models.vqgan.VQModel", FIRST_STAGE),
            "cond_stage_config": stage("taming.models.vqgan.VQSegmentationModel", COND_STAGE,
                                       {"image_key": "segmentation", "n_labels": N_LABELS}),
        }}}


def write_yaml(path, cfg):
    import yaml
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, default_flow_style=False, sort_keys=False)


def save_lightning(path, state_dict, epoch, global_step):
    torch.save({"epoch": epoch, "global_step": global_step,
                "pytorch-lightning_version": "1.0.8",
                "state_dict": {k: v.detach().clone().contiguous() for k, v in state_dict.items()}},
               path)


def build_models():
    first = VQModel(**FIRST_STAGE)
    cond = VQSegmentationModel(**COND_STAGE)
    gpt = GPT(**TRANSFORMER)
    return first, cond, gpt


def load_trained(outdir):
    """Load OUT/model.ckpt back into (first, cond, gpt) torch modules (eval mode)."""
    ck = torch.load(os.path.join(outdir, "model.ckpt"), map_location="cpu")
    sd = ck["state_dict"]
    import yaml
    with open(os.path.join(outdir, "config.yaml")) as f:
        cfg = yaml.safe_load(f)
    set_factor(factor_of(cfg["model"]["params"]["first_stage_config"]["params"]["ddconfig"]))
    first, cond, gpt = build_models()
    for prefix, m in (("first_stage_model.", first), ("cond_stage_model.", cond),
                      ("transformer.", gpt)):
        sub = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        m.load_state_dict(sub, strict=True)
        m.eval()
    return first, cond, gpt


# ============================================================================
# verification against the reference's golden vectors
# ============================================================================
def verify_golden(golden, log):
    import yaml

    def cfg(case):
        return yaml.safe_load(open(os.path.join(golden, case, "config.yaml")))["model"]["params"]

    def sd(case):
        return torch.load(os.path.join(golden, case, "model.ckpt"), map_location="cpu")["state_dict"]

    ok = True

    def check(name, got, ref, tol=1e-4):
        nonlocal ok
        err = float(np.abs(got - ref).max())
        good = err <= tol
        ok &= good
        log("verify %-28s max|diff| %.3g %s" % (name, err, "ok" if good else "FAIL"))

    with torch.no_grad():
        p = cfg("vqgan")
        m = VQModel(**p)
        s = {k: v for k, v in sd("vqgan").items() if not k.startswith("loss.")}
        m.load_state_dict(s, strict=True)
        m.eval()
        x = torch.from_numpy(np.load(os.path.join(golden, "vqgan", "x.npy")))
        h = m.encode_h(x)
        check("vqgan h", h.numpy(), np.load(os.path.join(golden, "vqgan", "h.npy")))
        zq, _, (_, idx) = m.quantize(h)
        ref_idx = np.load(os.path.join(golden, "vqgan", "indices.npy"))
        check("vqgan indices", idx.numpy().reshape(ref_idx.shape), ref_idx, 0)
        check("vqgan zq", zq.numpy(), np.load(os.path.join(golden, "vqgan", "zq.npy")))
        check("vqgan dec", m.decode(zq).numpy(), np.load(os.path.join(golden, "vqgan", "dec.npy")))

        p = cfg("segmentation")
        m = VQSegmentationModel(**p)
        m.load_state_dict({k: v for k, v in sd("segmentation").items()
                           if not k.startswith("loss.")}, strict=True)
        m.eval()
        lab = torch.from_numpy(np.load(os.path.join(golden, "segmentation", "labels.npy")))
        lab = lab.reshape(1, *lab.shape[-2:])
        h = m.encode_h(one_hot(lab, p["n_labels"]))
        check("segmentation h", h.numpy(), np.load(os.path.join(golden, "segmentation", "h.npy")))
        _, _, (_, idx) = m.quantize(h)
        ref_idx = np.load(os.path.join(golden, "segmentation", "indices.npy"))
        check("segmentation indices", idx.numpy().reshape(ref_idx.shape), ref_idx, 0)
        h2 = m.quant_conv(m.encoder.body(m.conv_in_labels(lab)))
        check("segmentation h (gather conv_in)", h2.numpy(),
              np.load(os.path.join(golden, "segmentation", "h.npy")))

        p = cfg("gpt") if "vocab_size" in cfg("gpt") else None
        if p is None:
            p = yaml.safe_load(open(os.path.join(golden, "gpt", "config.yaml")))["model"]["params"]
        g = GPT(**p)
        g.load_state_dict(sd("gpt") if "tok_emb.weight" in sd("gpt") else
                          {k[len("transformer."):]: v for k, v in sd("gpt").items()}, strict=True)
        g.eval()
        idx = torch.from_numpy(np.load(os.path.join(golden, "gpt", "idx.npy"))).long()
        check("gpt logits", g(idx).numpy(), np.load(os.path.join(golden, "gpt", "logits.npy")))

        # full conditional pipeline: names of the Net2NetTransformer checkpoint
        p = cfg("conditional")
        full = sd("conditional")
        first = VQModel(**p["first_stage_config"]["params"])
        cond = VQSegmentationModel(**p["cond_stage_config"]["params"])
        g = GPT(**p["transformer_config"]["params"])
        for prefix, mm in (("first_stage_model.", first), ("cond_stage_model.", cond),
                           ("transformer.", g)):
            mm.load_state_dict({k[len(prefix):]: v for k, v in full.items()
                                if k.startswith(prefix)}, strict=True)
            mm.eval()
        assert set(full) == set(net2net_state_dict(first, cond, g)), "state_dict names differ"
        lab = torch.from_numpy(np.load(os.path.join(golden, "conditional", "labels.npy")))
        lab = lab.reshape(1, *lab.shape[-2:])
        _, _, (_, ci) = cond.encode(one_hot(lab, p["cond_stage_config"]["params"]["n_labels"]))
        ref_c = np.load(os.path.join(golden, "conditional", "cond_indices.npy"))
        check("conditional cond_indices", ci.numpy().reshape(ref_c.shape), ref_c, 0)
        w = int(round(math.sqrt(p["transformer_config"]["params"]["block_size"] // 2)))
        zi = sliding_sample(g, ci.view(ref_c.shape[-2:]), w, p["transformer_config"]["params"]["vocab_size"],
                            greedy=True)
        ref_z = np.load(os.path.join(golden, "conditional", "indices.npy"))
        check("conditional indices", zi.numpy().reshape(ref_z.shape), ref_z, 0)
        img = first.decode_code(zi[None])
        check("conditional image", img.numpy(), np.load(os.path.join(golden, "conditional", "image.npy")))
    return ok


def net2net_state_dict(first, cond, gpt):
    sd = {}
    for prefix, m in (("first_stage_model.", first), ("cond_stage_model.", cond),
                      ("transformer.", gpt)):
        for k, v in m.state_dict().items():
            sd[prefix + k] = v
    return sd


@torch.no_grad()
def sliding_sample(gpt, c_grid, w, vocab, greedy=True, top_k=None, temperature=1.0,
                   generator=None, log=None):
    """The reference's sliding-window sampling (golden/README.md): raster order
    over the H x W image-token grid; for (i,j) a w x w window of condition
    tokens followed by the window's image tokens (minus the last) is fed and
    the logits for window position (li,lj) give token (i,j).  Positions not yet
    sampled hold the condition's codes (the causal mask hides them)."""
    H, W = c_grid.shape
    assert H >= w and W >= w, "grid smaller than the transformer window"
    z = c_grid.clone().long()
    hw = w // 2
    t0 = time.time()
    for i in range(H):
        li = i if i <= hw else (w - (H - i) if H - i < hw else hw)
        for j in range(W):
            lj = j if j <= hw else (w - (W - j) if W - j < hw else hw)
            i0, j0 = i - li, j - lj
            cp = c_grid[i0:i0 + w, j0:j0 + w].reshape(1, -1)
            zp = z[i0:i0 + w, j0:j0 + w].reshape(1, -1)
            seq = torch.cat((cp, zp), 1)[:, :-1]
            logits = gpt(seq)[0, cp.shape[1] - 1:]      # predictions for the w*w image tokens
            lg = logits[li * w + lj] / temperature
            if greedy:
                z[i, j] = int(lg.argmax())
            else:
                if top_k:
                    v, _ = torch.topk(lg, top_k)
                    lg = lg.masked_fill(lg < v[-1], float("-inf"))
                pr = F.softmax(lg, -1)
                z[i, j] = int(torch.multinomial(pr, 1, generator=generator))
        if log and (i + 1) % 4 == 0:
            log("  sampled row %d/%d (%.0fs)" % (i + 1, H, time.time() - t0))
    return z


# ============================================================================
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "train"))
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--golden", default=DEFAULT_GOLDEN)
    ap.add_argument("--seed", type=int, default=23)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--verify", action="store_true", help="only check modules against golden vectors")
    ap.add_argument("--resume", "--reuse-stages", action="store_true",
                    help="continue an interrupted run of the same schedule: reuse OUT/stage1.pt, "
                         "stage2.pt, stage3.pt when finished, continue from OUT/stage*.partial.pt otherwise")
    ap.add_argument("--ckpt-every", type=int, default=100,
                    help="steps between the resumable checkpoints of stages 1, 3 and 4 (0: none)")
    ap.add_argument("--stop-after", type=int, default=0,
                    help="stop after this step of stage 1, 3 or 4 with a checkpoint (to test --resume)")
    ap.add_argument("--factor", type=int, default=16, choices=sorted(CH_MULT),
                    help="downsampling factor of both stages (pixels per token side)")
    ap.add_argument("--extra-data", nargs="*", default=[DEFAULT_COCO] if os.path.isdir(DEFAULT_COCO) else [],
                    help="more photo folders (images/, segmentations/) for the first stage only")
    ap.add_argument("--log-every", type=int, default=50)
    # first stage
    ap.add_argument("--fs-steps", type=int, default=1200)
    ap.add_argument("--fs-stop", type=int, default=0,
                    help="end the first stage after this step of the --fs-steps schedule (which is "
                         "otherwise unchanged: learning rate, late crops, GAN start); 0 = at its end")
    ap.add_argument("--fs-batch", type=int, default=8)
    ap.add_argument("--fs-crop", type=int, default=96)
    ap.add_argument("--fs-crop-late", type=int, default=128)
    ap.add_argument("--fs-late", type=float, default=0.65, help="fraction of fs-steps after which crops are fs-crop-late")
    ap.add_argument("--fs-lr", type=float, default=3e-4)
    ap.add_argument("--disc-start", type=float, default=0.5, help="fraction of fs-steps before the GAN term starts")
    ap.add_argument("--disc-weight", type=float, default=0.8)
    ap.add_argument("--disc-ndf", type=int, default=32)
    ap.add_argument("--perceptual-weight", type=float, default=1.0)
    ap.add_argument("--codebook-weight", type=float, default=1.0)
    # cond stage
    ap.add_argument("--cs-steps", type=int, default=200)
    ap.add_argument("--cs-batch", type=int, default=8)
    ap.add_argument("--cs-crop", type=int, default=96)
    ap.add_argument("--cs-lr", type=float, default=3e-4)
    # transformer
    ap.add_argument("--tf-steps", type=int, default=800)
    ap.add_argument("--tf-batch", type=int, default=8)
    ap.add_argument("--tf-lr", type=float, default=5e-4)
    # decoder refit (stage 4; tokens unchanged)
    ap.add_argument("--dec-steps", type=int, default=0,
                    help="refit the first stage's decoder for fidelity this many steps after the "
                         "transformer (encoder, codebook and tokens frozen; 0 = no refit)")
    ap.add_argument("--dec-lr", type=float, default=1e-4)
    ap.add_argument("--dec-crop", type=int, default=96)
    ap.add_argument("--dec-l1", type=float, default=0.5, help="weight of L1 beside MSE in the refit")
    ap.add_argument("--dec-perceptual", type=float, default=0.0,
                    help="weight of the perceptual substitute in the refit")
    args = ap.parse_args()
    set_factor(args.factor)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    log = Log(os.path.join(args.out, "train.log"))
    log("=== tools/train.py", " ".join(sys.argv[1:]), "| torch", torch.__version__,
        "| threads", torch.get_num_threads())

    if not verify_golden(args.golden, log):
        log("golden verification FAILED")
        sys.exit(1)
    log("golden verification passed: modules reproduce the reference")
    if args.verify:
        return

    train_names, val_names = list_photos(args.data)
    log("train photos (%d): %s" % (len(train_names), ", ".join(train_names)))
    log("held-out photos (%d): %s" % (len(val_names), ", ".join(val_names)))
    T0 = time.time()

    p1 = os.path.join(args.out, "stage1.pt")
    p2 = os.path.join(args.out, "stage2.pt")
    sig1 = stage_sig(args, ("fs_", "disc_", "perceptual", "codebook"))
    sig2 = stage_sig(args, ("fs_", "disc_", "perceptual", "codebook", "cs_"))
    if args.resume and os.path.exists(p1) and torch.load(p1).get("sig") == sig1:
        first = VQModel(**FIRST_STAGE)
        st = torch.load(p1)
        first.load_state_dict(st["model"])
        disc_sd = st["disc"]
        first.eval()
        log("reused", p1)
    else:
        first, disc = train_first_stage(args, args.data, train_names, val_names, log)
        disc_sd = disc.state_dict()
        torch.save({"model": first.state_dict(), "disc": disc_sd, "sig": sig1}, p1)
    t1 = time.time()
    log("first stage done in %.0fs" % (t1 - T0))

    def reuse_or_train(path, sig, build, train):
        """A finished stage: its checkpoint when --resume finds one of this
        schedule (sig), else trained now and saved there."""
        saved = torch.load(path) if args.resume and os.path.exists(path) else None
        if saved is not None and saved.get("sig") == sig:
            module = build()
            module.load_state_dict(saved["model"])
            module.eval()
            log("reused", path)
            return module
        module = train()
        torch.save({"model": module.state_dict(), "sig": sig}, path)
        return module

    cond = reuse_or_train(p2, sig2, lambda: VQSegmentationModel(**COND_STAGE),
                          lambda: train_cond_stage(args, args.data, train_names, val_names, log))
    t2 = time.time()
    log("cond stage done in %.0fs" % (t2 - t1))

    p3 = os.path.join(args.out, "stage3.pt")
    sig3 = stage_sig(args, ("fs_", "disc_", "perceptual", "codebook", "cs_", "tf_"))
    gpt = reuse_or_train(p3, sig3, lambda: GPT(**TRANSFORMER),
                         lambda: train_transformer(args, first, cond, args.data, train_names, val_names, log))
    t3 = time.time()
    log("transformer done in %.0fs" % (t3 - t2))

    # the decoder refit changes no token, so it comes last and the stages
    # before it are reused when only its schedule changes
    if args.dec_steps > 0:
        refit_decoder(args, first, args.data, train_names, val_names, log)
        log("decoder refit done in %.0fs" % (time.time() - t3))

    # ---- the reference's layout
    write_yaml(os.path.join(args.out, "config.yaml"), make_config())
    sd = net2net_state_dict(first, cond, gpt)
    save_lightning(os.path.join(args.out, "model.ckpt"), sd, epoch=0, global_step=args.tf_steps)
    # the first stage alone, as a released VQGAN checkpoint (loss.* included)
    fdir = os.path.join(args.out, "first_stage")
    os.makedirs(fdir, exist_ok=True)
    fcfg = make_config()["model"]["params"]["first_stage_config"]
    write_yaml(os.path.join(fdir, "config.yaml"), {"model": fcfg})
    fsd = dict(first.state_dict())
    fsd.update({"loss.discriminator." + k: v for k, v in disc_sd.items()})
    save_lightning(os.path.join(fdir, "model.ckpt"), fsd, epoch=0, global_step=fs_end(args))
    # round trip: the written checkpoint loads back into the reference modules
    load_trained(args.out)
    log("wrote %s/config.yaml, %s/model.ckpt (%d tensors); total %.0fs (%.1f min)" % (
        args.out, args.out, len(sd), time.time() - T0, (time.time() - T0) / 60))


if __name__ == "__main__":
    main()
