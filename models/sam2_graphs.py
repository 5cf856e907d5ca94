"""Build SAM 2 / SAM 2.1 models from the official `sam2` package and wrap them into the
four ONNX graphs described in CONTRACT.md.

The wrappers re-use the official modules' weights and sub-modules; only the parts that do
not export (complex-number RoPE, Python-side memory assembly) are re-written here with the
same arithmetic. `check_against_official()` compares every wrapper with the official code
path on random inputs, so a mistake in a re-written part shows up at export time.

This file is our own; it depends on the published `sam2` package (Apache-2.0) at run time.
"""

from __future__ import annotations

import copy
import functools
import math
from importlib import resources

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from sam2.modeling.position_encoding import compute_axial_cis
from sam2.modeling.sam2_utils import get_1d_sine_pe

# Named configs shipped by the `sam2` package: name -> (folder, family)
NAMED_CONFIGS = {
    "sam2.1_hiera_t": ("sam2.1", "sam2.1"),
    "sam2.1_hiera_s": ("sam2.1", "sam2.1"),
    "sam2.1_hiera_b+": ("sam2.1", "sam2.1"),
    "sam2.1_hiera_l": ("sam2.1", "sam2.1"),
    "sam2_hiera_t": ("sam2", "sam2.0"),
    "sam2_hiera_s": ("sam2", "sam2.0"),
    "sam2_hiera_b+": ("sam2", "sam2.0"),
    "sam2_hiera_l": ("sam2", "sam2.0"),
}
MICRO_CONFIG = "micro"
MICRO_IMAGE_SIZE = 128

# EdgeTAM (Meta, CVPR 2025): SAM 2's video design with a RepViT-M1 image encoder (timm) and a
# spatial perceiver compressing each memory frame. Its code is the EdgeTAM repository's `sam2`
# package (PyPI `edgetam-dimos`), which replaces Meta's `sam2` in the Python environment:
# see models/requirements-edgetam.txt. name -> family
EDGETAM_CONFIGS = {"edgetam": "edgetam", "micro-edgetam": "micro-edgetam"}
# The micro EdgeTAM's RepViT (timm `repvit_m1` with these overrides): 4 stages, strides 4..32.
MICRO_EDGETAM_TRUNK = {"embed_dim": (8, 16, 32, 64), "depth": (1, 1, 2, 1)}


def is_edgetam_package() -> bool:
    """True when `import sam2` is EdgeTAM's package (it has the spatial perceiver)."""
    import importlib.util

    return importlib.util.find_spec("sam2.modeling.perceiver") is not None


def is_edgetam_config(name: str) -> bool:
    return name in EDGETAM_CONFIGS


def config_family(name: str) -> str:
    if name == MICRO_CONFIG:
        return "micro-sam2.1"
    if name in EDGETAM_CONFIGS:
        return EDGETAM_CONFIGS[name]
    return NAMED_CONFIGS[name][1]

# Large negative bias for padded memory slots (exp() of it is exactly 0 in fp32).
PAD_BIAS = -1e9

# Overrides the official `build_sam2_video_predictor` applies on top of the yaml
# (apply_postprocessing=True), plus our streaming choice for corrections.
PREDICTOR_OVERRIDES = {
    "dynamic_multimask_via_stability": True,
    "dynamic_multimask_stability_delta": 0.05,
    "dynamic_multimask_stability_thresh": 0.98,
    "binarize_mask_from_pts_for_mem_enc": True,
    "fill_hole_area": 8,
}


def _load_yaml(name: str):
    if name == MICRO_CONFIG:
        base = _load_yaml("sam2.1_hiera_t")
        return _micro(base)
    if name == "edgetam":
        return OmegaConf.load(str(resources.files("sam2") / "configs" / "edgetam.yaml"))
    if name == "micro-edgetam":
        return _micro_edgetam(_load_yaml("edgetam"))
    folder, _ = NAMED_CONFIGS[name]
    path = resources.files("sam2") / "configs" / folder / f"{name}.yaml"
    return OmegaConf.load(str(path))


def _micro_memory_attention(a, S):
    """The memory attention of both micro configs: 2 layers of width 32 over the
    S/16 grid, keys of the 8-channel memory."""
    a.d_model = 32
    a.num_layers = 2
    a.layer.d_model = 32
    a.layer.dim_feedforward = 64
    a.layer.self_attention.embedding_dim = 32
    a.layer.self_attention.feat_sizes = [S // 16, S // 16]
    a.layer.cross_attention.embedding_dim = 32
    a.layer.cross_attention.kv_in_dim = 8
    return a


def _micro(cfg):
    """A ~0.6 M parameter SAM 2.1 at 128x128 that keeps every structural feature
    (4 Hiera stages with windowed + global attention, FPN with high-res features,
    2 memory-attention layers with RoPE, 4 pointer tokens per object pointer)."""
    m = cfg.model
    S = MICRO_IMAGE_SIZE
    m.image_size = S
    t = m.image_encoder.trunk
    t.embed_dim = 8
    t.num_heads = 1
    t.stages = [1, 1, 2, 1]
    t.global_att_blocks = [3]
    t.window_spec = [8, 4, 4, 2]
    t.window_pos_embed_bkg_spatial_size = [4, 4]
    n = m.image_encoder.neck
    n.d_model = 32
    n.backbone_channel_list = [64, 32, 16, 8]
    n.position_encoding.num_pos_feats = 32
    a = _micro_memory_attention(m.memory_attention, S)
    a.layer.cross_attention.feat_sizes = [S // 16, S // 16]
    e = m.memory_encoder
    e.out_dim = 8
    e.in_dim = 32
    e.position_encoding.num_pos_feats = 8
    e.mask_downsampler.embed_dim = 32
    e.fuser.layer.dim = 32
    e.fuser.num_layers = 2
    return cfg


def _micro_edgetam(cfg):
    """A small EdgeTAM at 128x128 that keeps every structural feature: the RepViT trunk
    (MICRO_EDGETAM_TRUNK) + FPN, 2 memory-attention layers (RoPE self-attention,
    RoPEAttentionv2 cross-attention), the perceiver with both kinds of latents (8 global +
    4x4 2D: 24 memory tokens per frame, unlike the 64 of the 8x8 feature grid, and unlike
    each other, so that a mix-up of the two kinds shows), 4 pointer tokens per pointer."""
    m = cfg.model
    S = MICRO_IMAGE_SIZE
    m.image_size = S
    n = m.image_encoder.neck
    n.d_model = 32
    n.backbone_channel_list = list(reversed(MICRO_EDGETAM_TRUNK["embed_dim"]))
    n.position_encoding.num_pos_feats = 32
    a = _micro_memory_attention(m.memory_attention, S)
    a.layer.cross_attention.q_sizes = [S // 16, S // 16]
    a.layer.cross_attention.k_sizes = [4, 4]
    e = m.memory_encoder
    e.out_dim = 8
    e.position_encoding.num_pos_feats = 8
    e.fuser.layer.dim = 32
    e.fuser.num_layers = 2
    # the yaml leaves in_dim / mask_downsampler.embed_dim at their 256 defaults
    e.in_dim = 32
    e.mask_downsampler.embed_dim = 32
    p = m.spatial_perceiver
    p.dim = 8
    p.dim_head = 8
    p.num_latents = 8
    p.num_latents_2d = 16
    p.position_encoding.num_pos_feats = 8
    return cfg


def _instantiate(cfg, config: str):
    """hydra instantiate; EdgeTAM's TimmBackbone is built without asking timm for
    pretrained weights (a download): every trunk weight comes from the EdgeTAM checkpoint
    or the seeded randomisation anyway."""
    if not is_edgetam_config(config):
        return instantiate(cfg.model, _recursive_=True)
    import sam2.modeling.backbones.timm as timm_backbone

    orig = timm_backbone.create_model
    extra = MICRO_EDGETAM_TRUNK if config == "micro-edgetam" else {}

    def create_model(name, pretrained=False, **kwargs):
        return orig(name, pretrained=False, **kwargs, **extra)

    timm_backbone.create_model = create_model
    try:
        return instantiate(cfg.model, _recursive_=True)
    finally:
        timm_backbone.create_model = orig


# EdgeTAM's official perceiver and a batch of objects (reference runs only: make_golden.py,
# bench_official.py; our graphs write the windows with reshape, see spatial_perceiver).
PERCEIVER_VIEW = "self.latents_2d.unsqueeze(0).expand(B, -1, -1).view(-1, 1, C)"
PERCEIVER_PATCH = (
    "sam2.modeling.perceiver.PerceiverResampler.forward_2d: `self.latents_2d.unsqueeze(0)"
    ".expand(B, -1, -1).view(-1, 1, C)` -> `.reshape(-1, 1, C)` (numerically identical; "
    "`.view` of the expanded tensor fails for a batch of 2+ objects, which the predictor "
    "tracks in one batch)"
)


def patch_perceiver_for_batches():
    """EdgeTAM's forward_2d calls .view on an expanded tensor: it fails for a batch of
    2+ objects, which its own video predictor runs. The same function with .reshape
    (copies instead of failing; identical values)."""
    import inspect
    import textwrap

    from sam2.modeling import perceiver

    src = textwrap.dedent(inspect.getsource(perceiver.PerceiverResampler.forward_2d))
    if src.count(PERCEIVER_VIEW) != 1:
        raise RuntimeError("EdgeTAM's perceiver.py is not the expected version (forward_2d changed)")
    ns = {}
    exec(compile(src.replace(PERCEIVER_VIEW, PERCEIVER_VIEW.replace(".view(", ".reshape(")), perceiver.__file__, "exec"),
         perceiver.__dict__, ns)  # fmt: skip
    perceiver.PerceiverResampler.forward_2d = ns["forward_2d"]


def check_package_for(config: str) -> str | None:
    """Why the installed `sam2` package cannot build `config` (None: it can)."""
    if is_edgetam_config(config) and not is_edgetam_package():
        return (
            f"--config {config} needs EdgeTAM's `sam2` package (PyPI edgetam-dimos, see "
            "models/requirements-edgetam.txt), but `import sam2` is Meta's SAM 2 package"
        )
    if not is_edgetam_config(config) and is_edgetam_package():
        return (
            f"--config {config} needs Meta's `sam2` package (models/requirements.txt), but "
            "`import sam2` is EdgeTAM's package"
        )
    return None


def build_model(
    config: str,
    image_size: int | None = None,
    checkpoint: str | None = None,
    seed: int | None = None,
    add_all_frames_to_correct_as_cond: bool = True,
):
    """Instantiate the official SAM2VideoPredictor for `config` (CPU, eval mode)."""
    why = check_package_for(config)
    if why:
        raise RuntimeError(why)
    cfg = _load_yaml(config)
    m = cfg.model
    m._target_ = "sam2.sam2_video_predictor.SAM2VideoPredictor"
    if image_size is not None:
        m.image_size = image_size
        fs = [image_size // 16, image_size // 16]
        m.memory_attention.layer.self_attention.feat_sizes = fs
        if is_edgetam_config(config):
            # RoPEAttentionv2: queries on the feature grid, keys on the perceiver's 2D
            # latent grid (sqrt(num_latents_2d) a side, whatever the image size)
            m.memory_attention.layer.cross_attention.q_sizes = fs
        else:
            m.memory_attention.layer.cross_attention.feat_sizes = fs
    m.sam_mask_decoder_extra_args = {
        k: PREDICTOR_OVERRIDES[k]
        for k in (
            "dynamic_multimask_via_stability",
            "dynamic_multimask_stability_delta",
            "dynamic_multimask_stability_thresh",
        )
    }
    m.binarize_mask_from_pts_for_mem_enc = PREDICTOR_OVERRIDES["binarize_mask_from_pts_for_mem_enc"]
    m.fill_hole_area = PREDICTOR_OVERRIDES["fill_hole_area"]
    m.add_all_frames_to_correct_as_cond = add_all_frames_to_correct_as_cond
    OmegaConf.resolve(cfg)
    model = _instantiate(cfg, config)
    if checkpoint is not None:
        sd = torch.load(checkpoint, map_location="cpu", weights_only=True)
        sd = sd.get("model", sd)
        missing, unexpected = model.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise RuntimeError(
                f"checkpoint {checkpoint} does not match config {config}: "
                f"missing {missing[:5]}..., unexpected {unexpected[:5]}..."
            )
    elif seed is not None:
        randomize_weights(model, seed)
        if config in (MICRO_CONFIG, "micro-edgetam"):
            calibrate_for_golden(model, config)
    else:
        raise ValueError("give a checkpoint or a seed for random weights")
    model.eval()
    return model, cfg


def randomize_weights(model: torch.nn.Module, seed: int) -> None:
    """Seeded, independent random values for every parameter and buffer-like table.

    Plain init gives cloned layers identical weights and LayerScale 1e-6 turns the memory
    fuser into a no-op; both would hide mistakes, so every tensor gets its own draw with a
    scale that keeps activations O(1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "weight" and p.dim() >= 2:
                fan_in = p[0].numel() if p.dim() > 1 else 1
                if isinstance(_module_of(model, name), torch.nn.ConvTranspose2d):
                    fan_in = p.shape[0] * p[0, 0].numel()
                p.copy_(noise / math.sqrt(max(fan_in, 1)))
            elif leaf == "weight" or leaf == "gamma":
                # norm scales and LayerScale: around 1 (gamma around 0.5)
                centre = 0.5 if leaf == "gamma" else 1.0
                p.copy_(centre + 0.1 * noise)
            elif leaf == "bias":
                p.copy_(0.05 * noise)
            else:
                # learned embeddings and tables (no_mem_embed, maskmem_tpos_enc, ...)
                p.copy_(0.1 * noise)
        pe = model.sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
        pe.copy_(torch.randn(pe.shape, generator=gen))
    _calibrate_batchnorm(model, gen)


@torch.no_grad()
def _calibrate_batchnorm(model, gen) -> None:
    """Random weights through a BatchNorm network (EdgeTAM's RepViT trunk) with the
    default running statistics (mean 0, variance 1) grow the activations block after
    block (the stride-16 features reach ~1e2 in the micro model, far more at full size),
    and float noise grows with them. Set each BatchNorm's running statistics to those of
    one seeded random image, so that every BatchNorm output is O(1), as with trained
    weights. No-op for the Hiera models (no BatchNorm)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [(bn.momentum, bn.training) for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: one batch -> its own statistics
        bn.train()
    try:
        S = model.image_size
        model.image_encoder.trunk(torch.randn(1, 3, S, S, generator=gen))
    finally:
        for bn, (momentum, training) in zip(bns, saved):
            bn.momentum = momentum
            bn.train(training)


@torch.no_grad()
def calibrate_for_golden(model: torch.nn.Module, config: str = MICRO_CONFIG) -> None:
    """Rescale a few randomised tensors of the micro test model so that its golden
    fixture can catch mistakes (make_golden.py checks that it does). Plain random weights
    make every mask nearly full and every object converge to the same mask within a few
    frames; these scales make masks, objects and memories matter. Not used for other
    configs: sharper attention also amplifies float noise at full size."""
    k = GOLDEN_CALIBRATION[config]
    dec = model.sam_mask_decoder
    centre_hypernetworks(model)
    scale_high_res_features(model, k["high_res_gain"])
    # Memory must be able to carry an object's identity: with plain random scales the
    # cross-attention output is small next to the image features and all objects
    # converge to one mask within a few frames.
    # Sharper cross-attention (larger q/k) lets a memory's spatial layout matter.
    for layer in model.memory_attention.layers:
        xa = layer.cross_attn_image
        xa.out_proj.weight.mul_(k["xattn_gain"])
        xa.q_proj.weight.mul_(k["xattn_qk_gain"])
        xa.k_proj.weight.mul_(k["xattn_qk_gain"])
    head = dec.pred_obj_score_head
    last = head.layers[-1] if hasattr(head, "layers") else head
    last.weight.mul_(k["object_score_gain"])
    last.bias.fill_(k["object_score_bias"])


def centre_hypernetworks(model: torch.nn.Module) -> None:
    """Zero-sum hypernetwork outputs: a mask is sum_c h_c * u_c over the upscaled channels
    u_c (post-GELU, all with a positive mean); random h would make most masks nearly full
    or nearly empty. With sum_c h_c = 0 the logits are centred and their sign pattern
    depends on the prompt/memory-dependent token."""
    for mlp in model.sam_mask_decoder.output_hypernetworks_mlps:
        last = mlp.layers[-1]
        last.weight.sub_(last.weight.mean(dim=0, keepdim=True))
        last.bias.sub_(last.bias.mean())


def scale_high_res_features(model: torch.nn.Module, gain: float) -> None:
    """Random conv_s0/conv_s1 turn the FPN's channel means into large constant offsets of
    the upscaled mask features, which then decide every pixel alike; scaled down, the masks
    follow the (prompt- and memory-conditioned) stride-16 embedding."""
    dec = model.sam_mask_decoder
    for conv in (dec.conv_s0, dec.conv_s1):
        conv.weight.mul_(gain)
        conv.bias.mul_(gain)


# Calibration of the micro model's random weights (see calibrate_for_golden). The
# object-score gain/bias were chosen so that, with seed 0, objects are present on most frames
# of the golden scenario but a few object/frame pairs are judged absent, every score with a
# margin of >= 0.05 from 0 (make_golden.py checks this). Real checkpoints never use these.
# The micro EdgeTAM (its golden: make_golden.py --family edgetam) needs its own: with the
# micro SAM 2's values nearly every object/frame pair is judged absent, and its tracked masks
# are nearly full.
GOLDEN_CALIBRATION = {
    MICRO_CONFIG: {
        "high_res_gain": 0.1,
        "xattn_gain": 3.0,
        "xattn_qk_gain": 1.2,
        "object_score_gain": 30.0,
        "object_score_bias": -8.0,
    },
    "micro-edgetam": {
        "high_res_gain": 0.05,
        "xattn_gain": 5.0,
        "xattn_qk_gain": 1.2,
        "object_score_gain": 30.0,
        "object_score_bias": 14.0,
    },
}


@torch.no_grad()
def bias_object_scores(model: torch.nn.Module, bias: float) -> None:
    """Adds `bias` to the object-score logit (the last layer of pred_obj_score_head)."""
    head = model.sam_mask_decoder.pred_obj_score_head
    last = head.layers[-1] if hasattr(head, "layers") else head
    last.bias.add_(bias)


def _module_of(model, param_name):
    mod = model
    for part in param_name.split(".")[:-1]:
        mod = getattr(mod, part)
    return mod


# ---------------------------------------------------------------------------------------
# Model facts for the manifest
# ---------------------------------------------------------------------------------------


def model_facts(model) -> dict:
    S = model.image_size
    stride = model.backbone_stride
    C = model.hidden_dim
    Cm = model.mem_dim
    dec = model.sam_mask_decoder
    return {
        "image_size": S,
        "backbone_stride": stride,
        "feat_size": S // stride,
        "hidden_dim": C,
        "mem_dim": Cm,
        "ptr_tokens_per_obj_ptr": C // Cm,
        "high_res_channels": [C // 8, C // 4],
        "low_res_mask_size": S // 4,
        "num_mask_tokens": dec.num_mask_tokens,
        "memory_tokens": memory_tokens(model),
        **({"spatial_perceiver": perceiver_facts(model)} if _perceiver(model) is not None else {}),
    }


def _perceiver(model):
    return getattr(model, "spatial_perceiver", None)


def memory_tokens(model) -> int:
    """Tokens of one stored memory frame: H*W, or the perceiver's latents (EdgeTAM)."""
    p = _perceiver(model)
    if p is None:
        side = model.image_size // model.backbone_stride
        return side * side
    return max(p.num_latents, 0) + max(p.num_latents_2d, 0)


def perceiver_facts(model) -> dict:
    """EdgeTAM's memory layout (CONTRACT.md): per memory frame, `num_latents` global
    latents (no RoPE, zero position encoding) then `num_latents_2d` 2D latents on a
    `grid` x `grid` map (sine position encoding, RoPE in the cross-attention keys)."""
    p = _perceiver(model)
    n2 = max(p.num_latents_2d, 0)
    grid = math.isqrt(n2)
    side = model.image_size // model.backbone_stride
    if grid * grid != n2 or (n2 and side % grid):
        raise ValueError(f"num_latents_2d {n2} is not a square grid dividing the {side}x{side} feature map")
    return {
        "num_latents": max(p.num_latents, 0),
        "num_latents_2d": n2,
        "grid": grid,
        "depth": len(p.layers),
    }


def model_flags(model) -> dict:
    dec = model.sam_mask_decoder
    return {
        "num_maskmem": model.num_maskmem,
        "max_obj_ptrs_in_encoder": model.max_obj_ptrs_in_encoder,
        "max_cond_frames_in_attn": model.max_cond_frames_in_attn,
        "memory_temporal_stride_for_eval": model.memory_temporal_stride_for_eval,
        "directly_add_no_mem_embed": bool(model.directly_add_no_mem_embed),
        "use_high_res_features_in_sam": bool(model.use_high_res_features_in_sam),
        "use_obj_ptrs_in_encoder": bool(model.use_obj_ptrs_in_encoder),
        "add_tpos_enc_to_obj_ptrs": bool(model.add_tpos_enc_to_obj_ptrs),
        "proj_tpos_enc_in_obj_ptrs": bool(model.proj_tpos_enc_in_obj_ptrs),
        "use_signed_tpos_enc_to_obj_ptrs": bool(model.use_signed_tpos_enc_to_obj_ptrs),
        "only_obj_ptrs_in_the_past_for_eval": bool(model.only_obj_ptrs_in_the_past_for_eval),
        "pred_obj_scores": bool(model.pred_obj_scores),
        "fixed_no_obj_ptr": bool(model.fixed_no_obj_ptr),
        "soft_no_obj_ptr": bool(model.soft_no_obj_ptr),
        "no_obj_embed_spatial": model.no_obj_embed_spatial is not None,
        "multimask_output_in_sam": bool(model.multimask_output_in_sam),
        "multimask_output_for_tracking": bool(model.multimask_output_for_tracking),
        "multimask_min_pt_num": model.multimask_min_pt_num,
        "multimask_max_pt_num": model.multimask_max_pt_num,
        "use_multimask_token_for_obj_ptr": bool(model.use_multimask_token_for_obj_ptr),
        "use_mask_input_as_output_without_sam": bool(model.use_mask_input_as_output_without_sam),
        "binarize_mask_from_pts_for_mem_enc": bool(model.binarize_mask_from_pts_for_mem_enc),
        "non_overlap_masks_for_mem_enc": bool(model.non_overlap_masks_for_mem_enc),
        "iou_prediction_use_sigmoid": bool(model.iou_prediction_use_sigmoid),
        "sigmoid_scale_for_mem_enc": float(model.sigmoid_scale_for_mem_enc),
        "sigmoid_bias_for_mem_enc": float(model.sigmoid_bias_for_mem_enc),
        "dynamic_multimask_via_stability": bool(dec.dynamic_multimask_via_stability),
        "dynamic_multimask_stability_delta": float(dec.dynamic_multimask_stability_delta),
        "dynamic_multimask_stability_thresh": float(dec.dynamic_multimask_stability_thresh),
        "add_all_frames_to_correct_as_cond": bool(model.add_all_frames_to_correct_as_cond),
        "clear_non_cond_mem_around_input": bool(model.clear_non_cond_mem_around_input),
        "non_overlap_masks": bool(model.non_overlap_masks),
        "fill_hole_area": int(model.fill_hole_area),
    }


def host_constants(model) -> dict:
    """Learned tensors the host applies outside the graphs (see CONTRACT.md)."""
    out = {
        "no_mem_embed": model.no_mem_embed.detach().reshape(-1),
        "no_obj_ptr": model.no_obj_ptr.detach().reshape(-1),
        "mask_downsample.weight": model.mask_downsample.weight.detach().reshape(4, 4),
        "mask_downsample.bias": model.mask_downsample.bias.detach().reshape(-1),
    }
    return out


# ---------------------------------------------------------------------------------------
# Graph wrappers
# ---------------------------------------------------------------------------------------


# Query rows per block of the image encoder's global-attention layers (Hiera blocks
# with window size 0: at 1024 input they attend over all 64 x 64 tokens, and a full
# attention matrix is heads x 4096 x 4096 fp32 = 268 MB, plus as much for its softmax).
# 0: no chunking.
ENCODER_QUERY_CHUNK = 512


def _global_attention(attn, x, chunk):
    """hieradet.MultiScaleAttention.forward of a global block (no q pooling) with the
    attention done `chunk` query rows at a time (see _attend); same values."""
    B, H, W, _ = x.shape
    qkv = attn.qkv(x).reshape(B, H * W, 3, attn.num_heads, -1)
    q, k, v = (t.transpose(1, 2) for t in torch.unbind(qkv, 2))
    q = q * (1.0 / math.sqrt(q.shape[-1]))
    out = _attend(q, k, v, chunk)
    return attn.proj(out.transpose(1, 2).reshape(B, H, W, -1))


class ImageEncoderGraph(torch.nn.Module):
    """image [1,3,S,S] (normalised RGB) -> high-res features, stride-16 features + PE.

    The Hiera trunk's global-attention blocks attend in query chunks (ENCODER_QUERY_CHUNK)
    so that the graph never holds a full token x token attention matrix: the same values,
    a fraction of the peak memory. The model is left as it was after each call."""

    def __init__(self, model, query_chunk: int = ENCODER_QUERY_CHUNK):
        super().__init__()
        self.model = model
        self.query_chunk = query_chunk

    def forward(self, image):
        patched = [
            blk.attn
            for blk in getattr(self.model.image_encoder.trunk, "blocks", [])
            if self.query_chunk and blk.window_size == 0 and blk.attn.q_pool is None
        ]
        try:
            for attn in patched:
                attn.forward = functools.partial(_global_attention, attn, chunk=self.query_chunk)
            out = self.model.forward_image(image)
        finally:
            for attn in patched:
                del attn.forward
        fpn = out["backbone_fpn"]
        pos = out["vision_pos_enc"]
        return fpn[0], fpn[1], fpn[-1], pos[-1]


# ---- The image encoder re-laid-out for ONNX Runtime ------------------------------------
#
# The official Hiera trunk keeps its tokens as [B, H, W, C] and, in every windowed block,
# pads, partitions into windows, attends and un-partitions; its attention splits one qkv
# projection into heads with transposes, and the FPN neck permutes each stage to NCHW before
# its 1x1 convolutions. Exported as is, ONNX Runtime spent ~35% of the encoder outside the
# matmuls (transposes, splits, layout reorders) and ran k^T as an explicit element-wise
# transpose. HieraImageEncoderGraph computes the same function with a layout chosen for
# the matmuls:
#
# - tokens stay in *window order* ([nWy, nWx, ws, ws, C]) across blocks whose windows
#   tile the map without padding: LayerNorm, MLP and residuals are per token, global
#   attention is invariant to the token order, and a 2x2 max pool inside a window of ws
#   is the window of ws/2 of the next stage. Only blocks whose windows need padding use
#   the official pad/partition/unpartition path;
# - q, k and v are three matmuls (no split of a qkv tensor); k's bias is dropped (it adds
#   q.b_k to every score of a query row, which softmax ignores) and v's bias is folded
#   into the output projection's (softmax rows sum to one);
# - q k^T is com.microsoft FusedMatMul with transB (no k^T tensor); the global blocks use
#   com.microsoft MultiHeadAttention (ONNX Runtime's fused CPU/CUDA attention kernel: no
#   head transposes; ~5% faster encoder than MatMul/Softmax/MatMul in query chunks), or, in
#   the CPU speed mode export.py --int8-encoder-attention, int8 scores and values in query
#   chunks (_attend_int8_scores; ~12% faster int8 encoder, S21);
# - the leading blocks that only attend within the first stage's windows (hiera-tiny:
#   blocks 0-3) run band by band, ENCODER_CHUNK_ROWS rows of windows at a time, so that a
#   band's activations stay in the CPU caches (3-9% faster encoder, 750 -> 550 MiB peak);
# - the neck's 1x1 lateral convs are token matmuls written straight to NCHW (W X^T), the
#   nearest-neighbour top-down is a broadcast add, and at the two high-resolution levels
#   the lateral conv and the mask decoder's conv_s0/conv_s1 are one matmul (W_s W_l,
#   composed in float64).
#
# export.py checks it against the official forward_image (~1e-6 relative); configs it
# does not cover (see hiera_fast_path_unsupported) export through ImageEncoderGraph.


class _MultiHeadAttention(torch.autograd.Function):
    """softmax(q k^T / sqrt(d)) v per head; q [B, Lq, C], k/v [B, Lk, C] -> [B, Lq, C].
    Exports as com.microsoft::MultiHeadAttention."""

    @staticmethod
    def forward(ctx, q, k, v, heads: int):
        B, Lq, C = q.shape
        d = C // heads
        qh = q.reshape(B, Lq, heads, d).transpose(1, 2)
        kh = k.reshape(B, -1, heads, d).transpose(1, 2)
        vh = v.reshape(B, -1, heads, d).transpose(1, 2)
        out = F.scaled_dot_product_attention(qh, kh, vh)
        return out.transpose(1, 2).reshape(B, Lq, C)

    @staticmethod
    def symbolic(g, q, k, v, heads):
        out = g.op("com.microsoft::MultiHeadAttention", q, k, v, num_heads_i=heads)
        out.setType(q.type())
        return out


class _MatMulTransB(torch.autograd.Function):
    """alpha * a @ b^T without a b^T tensor: com.microsoft::FusedMatMul (transB=1)."""

    @staticmethod
    def forward(ctx, a, b, alpha: float):
        return torch.matmul(a * alpha if alpha != 1.0 else a, b.transpose(-1, -2))

    @staticmethod
    def symbolic(g, a, b, alpha):
        out = g.op("com.microsoft::FusedMatMul", a, b, alpha_f=alpha, transA_i=0, transB_i=1)
        sa, sb = a.type().varyingSizes(), b.type().varyingSizes()
        if sa is not None and sb is not None:
            out.setType(a.type().with_sizes(list(sa[:-1]) + [sb[-2]]))
        return out


# Token layouts: ws > 0: [H/ws, W/ws, ws, ws, C] (window order, no padding); 0: [H, W, C].
def _layout_hw(x, ws):
    return (x.shape[0] * ws, x.shape[1] * ws) if ws else (x.shape[0], x.shape[1])


def _relayout(x, src: int, dst: int):
    if src == dst:
        return x
    if src:
        nwy, nwx, _, _, C = x.shape
        x = x.permute(0, 2, 1, 3, 4).reshape(nwy * src, nwx * src, C)
    if dst:
        H, W, C = x.shape
        x = x.reshape(H // dst, dst, W // dst, dst, C).permute(0, 2, 1, 3, 4)
    return x


def _max_pool2(x, ws: int):
    """nn.MaxPool2d(2, 2) (floor) in a layout: (pooled, its layout)."""
    if ws:
        a, b, _, _, C = x.shape
        h = ws // 2
        return x.reshape(a, b, h, 2, h, 2, C).amax(dim=5).amax(dim=3), h
    H, W, C = x.shape
    x = x[: H // 2 * 2, : W // 2 * 2]
    return x.reshape(H // 2, 2, W // 2, 2, C).amax(dim=3).amax(dim=1), 0


def _linear(x, w_t, b=None):
    """x @ w_t (+ b); w_t is the transposed [in, out] weight."""
    y = torch.matmul(x, w_t)
    return y if b is None else y + b


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def hiera_fast_path_unsupported(model) -> str | None:
    """Why HieraImageEncoderGraph cannot express `model`'s image encoder (None: it can)."""
    enc = model.image_encoder
    trunk, neck = enc.trunk, enc.neck
    if not hasattr(trunk, "blocks") or not hasattr(trunk, "stage_ends"):
        return "the trunk is not a Hiera"
    if len(trunk.stage_ends) != 4 or len(neck.convs) != 4:
        return "not 4 stages / FPN levels"
    if getattr(enc, "scalp", 0) != 1:
        return "scalp != 1"
    if not model.use_high_res_features_in_sam:
        return "no high-resolution features"
    if neck.fuse_type != "sum" or neck.fpn_interp_model != "nearest":
        return "FPN fusion is not a nearest-neighbour sum"
    if sorted(neck.fpn_top_down_levels) != [2, 3]:
        return f"FPN top-down levels {neck.fpn_top_down_levels} (expected [2, 3])"
    for c in neck.convs:
        conv = c.conv
        if conv.kernel_size != (1, 1) or conv.stride != (1, 1) or conv.padding != (0, 0):
            return "an FPN lateral conv is not 1x1"
    for blk in trunk.blocks:
        act = blk.mlp.act
        if not isinstance(act, torch.nn.GELU) or act.approximate != "none":
            return "an MLP activation is not exact GELU"
        if len(blk.mlp.layers) != 2:
            return "an MLP is not two layers"
        if blk.pool is not None and (
            _pair(blk.pool.kernel_size) != (2, 2) or _pair(blk.pool.stride) != (2, 2) or blk.pool.ceil_mode
        ):
            return "q pooling is not a 2x2 max pool"
        ws = blk.window_size
        if ws and blk.pool is not None and ws % 2:
            return "an odd window with q pooling"
    return None


# Rows of first-stage windows per band of the window-local leading blocks (0: whole map).
ENCODER_CHUNK_ROWS = 4


class HieraImageEncoderGraph(torch.nn.Module):
    """image [1,3,S,S] (normalised RGB) -> high-res features, stride-16 features + PE:
    the official image encoder (Hiera + FPN + the mask decoder's conv_s0/conv_s1) in a
    layout suited to ONNX Runtime (see the comment above). The weights it needs are
    copied (transposed, merged) when it is built: build it right before exporting."""

    def __init__(self, model, chunk_rows: int = ENCODER_CHUNK_ROWS, int8_attention: int = 0):
        super().__init__()
        reason = hiera_fast_path_unsupported(model)
        if reason:
            raise ValueError(f"HieraImageEncoderGraph: {reason}")
        self.model = model
        self.chunk_rows = chunk_rows
        # 0, or the int8 levels of the global blocks' attention as int8 scores and values
        # (a CPU speed mode, export.py --int8-encoder-attention; see _global_attention)
        self.int8_attention = int8_attention
        trunk = model.image_encoder.trunk
        neck = model.image_encoder.neck
        with torch.no_grad():
            for i, blk in enumerate(trunk.blocks):
                attn = blk.attn
                c = blk.dim_out
                wq, wk, wv = attn.qkv.weight.double().split(c, 0)
                bq, _, bv = attn.qkv.bias.double().split(c, 0)
                wp, bp = attn.proj.weight.double(), attn.proj.bias.double()
                w = {
                    "wq": wq.t(),
                    "bq": bq,
                    "wk": wk.t(),
                    "wv": wv.t(),
                    "wp": wp.t(),
                    "bp": wp @ bv + bp,  # v's bias through the projection
                }
                for k, v in w.items():
                    self.register_buffer(f"blk{i}_{k}", v.float().contiguous(), persistent=False)
            n = len(neck.convs) - 1
            lateral = [neck.convs[n - level].conv for level in range(n + 1)]
            for level in range(n + 1):
                wl = lateral[level].weight[:, :, 0, 0].double()
                bl = lateral[level].bias.double()
                if level < 2:
                    conv_s = (model.sam_mask_decoder.conv_s0, model.sam_mask_decoder.conv_s1)[level]
                    ws_ = conv_s.weight[:, :, 0, 0].double()
                    wl, bl = ws_ @ wl, ws_ @ bl + conv_s.bias.double()
                self.register_buffer(f"neck{level}_w", wl.float().contiguous(), persistent=False)
                self.register_buffer(f"neck{level}_b", bl.float().reshape(-1, 1).contiguous(), persistent=False)

    def _window_local_blocks(self, side: int) -> int:
        """How many leading blocks attend only within the first block's windows (their
        windows, scaled by the pooling so far, are exactly those): they can run on any
        band of whole rows of those windows. side: the token map's side (0: not in
        window order)."""
        blocks = self.model.image_encoder.trunk.blocks
        ws0 = blocks[0].window_size
        if not side or not ws0:
            return 0
        n, scale = 0, 1
        for blk in blocks:
            ws = blk.window_size
            if ws == 0 or side % ws or ws * scale != ws0:
                break
            n += 1
            if blk.pool is not None:
                scale, side = scale * 2, side // 2
        return n

    def _w(self, i, name):
        return getattr(self, f"blk{i}_{name}")

    def _block(self, i, blk, x, ws_cur):
        """One MultiScaleBlock on x in layout ws_cur: (x, its new layout)."""
        ws = blk.window_size
        H, W = _layout_hw(x, ws_cur)
        padded = ws > 0 and (H % ws or W % ws)
        if ws > 0:
            target = 0 if padded else ws
        else:  # global attention: any order; q pooling needs the raster order
            target = ws_cur if blk.pool is None else 0
        x = _relayout(x, ws_cur, target)
        ws_cur = target
        c = blk.dim_out
        shortcut = x
        y = blk.norm1(x)
        if blk.dim != c:
            shortcut = blk.proj(y)
            if blk.pool is not None:
                shortcut, _ = _max_pool2(shortcut, ws_cur)
        if padded:  # the official path: pad, windows over the padded map
            Hp, Wp = H + (-H) % ws, W + (-W) % ws
            t = F.pad(y, (0, 0, 0, Wp - W, 0, Hp - H))
            t = t.reshape(Hp // ws, ws, Wp // ws, ws, -1).permute(0, 2, 1, 3, 4)
            grid = t.shape[:2]
            t = t.reshape(-1, ws * ws, t.shape[-1])
        elif ws > 0:
            grid = x.shape[:2]
            t = y.reshape(-1, ws * ws, y.shape[-1])
        else:
            t = y.reshape(1, H * W, y.shape[-1])
        q = _linear(t, self._w(i, "wq"), self._w(i, "bq"))
        k = _linear(t, self._w(i, "wk"))
        v = _linear(t, self._w(i, "wv"))
        if blk.pool is not None:
            if ws > 0:
                qq, wq_ = _max_pool2(q.reshape(grid[0], grid[1], ws, ws, c), ws)
                q = qq.reshape(-1, wq_ * wq_, c)
            else:
                qq, _ = _max_pool2(q.reshape(H, W, c), 0)
                q = qq.reshape(1, -1, c)
        heads = blk.attn.num_heads
        if ws == 0:
            o = self._global_attention(q, k, v, heads)
        else:
            o = self._window_attention(q, k, v, heads)
        o = _linear(o, self._w(i, "wp"), self._w(i, "bp"))
        if padded:
            wo = ws // 2 if blk.pool is not None else ws
            o = o.reshape(grid[0], grid[1], wo, wo, c).permute(0, 2, 1, 3, 4)
            o = o.reshape(grid[0] * wo, grid[1] * wo, c)[: shortcut.shape[0], : shortcut.shape[1]]
        else:
            o = o.reshape(shortcut.shape)
        if blk.pool is not None and ws_cur:
            ws_cur //= 2
        x = shortcut + o
        x = x + blk.mlp(blk.norm2(x))
        return x, ws_cur

    def _global_attention(self, q, k, v, heads):
        """Attention over the whole map: q [1, Lq, C], k/v [1, L, C] -> [1, Lq, C]. fp32:
        ONNX Runtime's fused MultiHeadAttention; with int8_attention, the scores and the
        values as int8 products (_attend_int8_scores with int8 values), in query chunks:
        at 1024 (hiera-tiny: 4,096 tokens, 4 heads of 96) 115 against 164 ms per block in
        isolation, the int8 encoder 1,239-1,257 against 1,423 ms (S21)."""
        if not self.int8_attention:
            return _MultiHeadAttention.apply(q, k, v, heads)
        _, lq, c = q.shape
        d = c // heads

        def split(t):
            return t.reshape(1, -1, heads, d).transpose(1, 2)

        o = _attend_int8_scores(
            split(q) * (1.0 / math.sqrt(d)), split(k), None, split(v), ATTENTION_QUERY_CHUNK,
            self.int8_attention, int8_values=True,
        )
        return o.transpose(1, 2).reshape(1, lq, c)

    @staticmethod
    def _window_attention(q, k, v, heads):
        """Attention within windows: q [nW, Lq, C], k/v [nW, L, C] -> [nW, Lq, C]."""
        nw, lq, c = q.shape
        d = c // heads
        if heads > 1:
            q = q.reshape(nw, lq, heads, d).transpose(1, 2)
            k = k.reshape(nw, -1, heads, d).transpose(1, 2)
            v = v.reshape(nw, -1, heads, d).transpose(1, 2)
        p = torch.softmax(_MatMulTransB.apply(q, k, 1.0 / math.sqrt(d)), dim=-1)
        o = torch.matmul(p, v)
        return o if heads == 1 else o.transpose(1, 2).reshape(nw, lq, c)

    def _lateral_nchw(self, level, feats):
        """The level's 1x1 lateral conv (merged with conv_s0/s1 at levels 0/1) -> NCHW."""
        x, ws = feats[level]
        x = _relayout(x, ws, 0)
        H, W, C = x.shape
        y = _MatMulTransB.apply(getattr(self, f"neck{level}_w"), x.reshape(H * W, C), 1.0)
        return (y + getattr(self, f"neck{level}_b")).reshape(1, -1, H, W)

    def forward(self, image):
        trunk = self.model.image_encoder.trunk
        neck = self.model.image_encoder.neck
        x = trunk.patch_embed.proj(image)  # [1, C, H, W]
        ws0 = trunk.blocks[0].window_size
        ws_cur = ws0 if ws0 and x.shape[2] % ws0 == 0 and x.shape[3] % ws0 == 0 else 0
        # the positional embedding is interpolated in the graph (from 14 x 14 + a window
        # tile, as the official): ONNX Runtime folds it at load time, the file stays small
        x = _relayout(x[0].permute(1, 2, 0) + trunk._get_pos_embed(x.shape[2:])[0], 0, ws_cur)
        feats = []
        blocks = list(trunk.blocks)
        first = 0
        local = self._window_local_blocks(x.shape[0] * ws_cur if ws_cur else 0)
        if self.chunk_rows and local and x.shape[0] > self.chunk_rows:
            # The leading blocks only mix tokens within the first stage's windows: run
            # them band by band (chunk_rows rows of windows), so that each band's
            # activations (MLP hidden layer included) stay in the CPU's caches.
            bands = []
            for r in range(0, x.shape[0], self.chunk_rows):
                xb, wsb, fb = x[r : r + self.chunk_rows], ws_cur, []
                for i in range(local):
                    xb, wsb = self._block(i, blocks[i], xb, wsb)
                    if i in trunk.stage_ends:
                        fb.append((xb, wsb))
                bands.append((xb, wsb, fb))
            x, ws_cur = torch.cat([b[0] for b in bands], dim=0), bands[0][1]
            for j, (_, ws_j) in enumerate(bands[0][2]):
                feats.append((torch.cat([b[2][j][0] for b in bands], dim=0), ws_j))
            first = local
        for i in range(first, len(blocks)):
            x, ws_cur = self._block(i, blocks[i], x, ws_cur)
            if i in trunk.stage_ends:
                feats.append((x, ws_cur))
        l3 = self._lateral_nchw(3, feats)
        l2 = self._lateral_nchw(2, feats)
        _, C, h3, w3 = l3.shape
        # level 2 + nearest 2x upsampling of level 3, as a broadcast add
        feat = (l2.reshape(1, C, h3, 2, w3, 2) + l3.reshape(1, C, h3, 1, w3, 1)).reshape(1, C, 2 * h3, 2 * w3)
        hr0 = self._lateral_nchw(0, feats)
        hr1 = self._lateral_nchw(1, feats)
        return hr0, hr1, feat, neck.position_encoding(feat).to(feat.dtype)


# ---- EdgeTAM's image encoder (RepViT trunk) for ONNX Runtime ------------------------------
#
# The official RepViT is its training form: every token mixer is three branches (a 3x3
# depthwise conv + BatchNorm, a 1x1 depthwise conv + BatchNorm, the identity) summed, and
# every conv has its own BatchNorm. ONNX Runtime folds a BatchNorm into the conv before it
# but not parallel branches: exported as is, the encoder ran ~130 extra small convs and
# adds. RepVitImageEncoderGraph exports timm's own re-parameterised form (each RepViT
# module's `fuse()`: one depthwise conv per token mixer, BatchNorms folded; on a copy, the
# model keeps its modules), and at the two high-resolution levels, which take no top-down
# features, the FPN's 1x1 lateral conv and the mask decoder's conv_s0/conv_s1 are one 1x1
# conv (W_s W_l, composed in float64), as in HieraImageEncoderGraph: at 1024 input the
# 256-channel 256 x 256 map between them was ~6% of the encoder. export.py checks the
# result against the official forward_image.


def _repvit_fused(trunk):
    """A copy of `trunk` with timm's RepViT modules re-parameterised (their `fuse()`)."""
    fused = copy.deepcopy(trunk).eval()

    def walk(net):
        for name, child in net.named_children():
            if type(child).__module__ == "timm.models.repvit" and callable(getattr(child, "fuse", None)):
                setattr(net, name, child.fuse())
            else:
                walk(child)

    with torch.no_grad():
        walk(fused)
    return fused


def repvit_fast_path_unsupported(model) -> str | None:
    """Why RepVitImageEncoderGraph cannot express `model`'s image encoder (None: it can)."""
    enc = model.image_encoder
    trunk, neck = enc.trunk, enc.neck
    body = getattr(trunk, "body", None)
    if body is None or not any(type(m).__module__ == "timm.models.repvit" for m in body.modules()):
        return "the trunk is not timm's RepViT"
    if len(neck.convs) != 4 or getattr(enc, "scalp", 0) != 1:
        return "not 4 FPN levels with scalp 1"
    if not model.use_high_res_features_in_sam:
        return "no high-resolution features"
    if any(level in neck.fpn_top_down_levels for level in (0, 1)):
        return "a high-resolution level takes top-down features"
    for c in neck.convs:
        conv = c.conv
        if conv.kernel_size != (1, 1) or conv.stride != (1, 1) or conv.padding != (0, 0) or conv.groups != 1:
            return "an FPN lateral conv is not a plain 1x1"
    return None


class RepVitImageEncoderGraph(torch.nn.Module):
    """EdgeTAM's image encoder (see the comment above): image [1,3,S,S] -> high-res
    features (after conv_s0/conv_s1), stride-16 features + PE."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.trunk = _repvit_fused(model.image_encoder.trunk)
        neck = model.image_encoder.neck
        n = len(neck.convs) - 1
        dec = model.sam_mask_decoder
        for level, conv_s in ((0, dec.conv_s0), (1, dec.conv_s1)):
            lat = neck.convs[n - level].conv
            with torch.no_grad():
                wl, bl = lat.weight[:, :, 0, 0].double(), lat.bias.double()
                ws_ = conv_s.weight[:, :, 0, 0].double()
                w, b = ws_ @ wl, ws_ @ bl + conv_s.bias.double()
            self.register_buffer(f"hr{level}_w", w.float()[:, :, None, None].contiguous(), persistent=False)
            self.register_buffer(f"hr{level}_b", b.float().contiguous(), persistent=False)

    def forward(self, image):
        neck = self.model.image_encoder.neck
        xs = self.trunk(image)
        n = len(neck.convs) - 1
        # the official top-down pass over the low-resolution levels (n .. 2)
        prev = None
        for i in range(n, 1, -1):
            lateral = neck.convs[n - i](xs[i])
            if i in neck.fpn_top_down_levels and prev is not None:
                top = F.interpolate(prev, scale_factor=2.0, mode=neck.fpn_interp_model,
                                    align_corners=None if neck.fpn_interp_model == "nearest" else False)  # fmt: skip
                prev = lateral + top
                if neck.fuse_type == "avg":
                    prev = prev / 2
            else:
                prev = lateral
        feat = prev  # level 2: the stride-16 features (level 3 is scalped)
        hr0 = F.conv2d(xs[0], self.hr0_w, self.hr0_b)
        hr1 = F.conv2d(xs[1], self.hr1_w, self.hr1_b)
        return hr0, hr1, feat, neck.position_encoding(feat).to(feat.dtype)


def image_encoder_graph(model):
    """The image encoder wrapper to export: HieraImageEncoderGraph or
    RepVitImageEncoderGraph where one applies, else the official structure
    (ImageEncoderGraph)."""
    if hiera_fast_path_unsupported(model) is None:
        return HieraImageEncoderGraph(model)
    if repvit_fast_path_unsupported(model) is None:
        return RepVitImageEncoderGraph(model)
    return ImageEncoderGraph(model)


def _rope_tables(model):
    """cos/sin of the axial RoPE for the stride-16 grid (shared by every layer)."""
    layer = model.memory_attention.layers[0]
    attn = layer.self_attn
    head_dim = attn.internal_dim // attn.num_heads
    side = model.image_size // model.backbone_stride
    cis = compute_axial_cis(dim=head_dim, end_x=side, end_y=side, theta=_rope_theta(attn))
    return cis.real.contiguous(), cis.imag.contiguous()


def _rope_v2_tables(model):
    """EdgeTAM's RoPEAttentionv2 (cross-attention): cos/sin for the queries (the feature
    grid) and for the memory keys (the perceiver's 2D latent grid), from the module's
    own complex tables (the same in every layer: checked)."""
    attn = model.memory_attention.layers[0].cross_attn_image
    side = model.image_size // model.backbone_stride
    q, k = attn.freqs_cis_q, attn.freqs_cis_k
    if q.shape[0] != side * side:
        raise ValueError(f"RoPEAttentionv2 q_sizes give {q.shape[0]} positions, the feature grid has {side * side}")
    for layer in model.memory_attention.layers:
        other = layer.cross_attn_image
        if not (torch.equal(other.freqs_cis_q, q) and torch.equal(other.freqs_cis_k, k)):
            raise ValueError("RoPEAttentionv2 tables differ between layers")
    return q.real.contiguous(), q.imag.contiguous(), k.real.contiguous(), k.imag.contiguous()


def _is_rope_v2(model) -> bool:
    return type(model.memory_attention.layers[0].cross_attn_image).__name__ == "RoPEAttentionv2"


def sine_pe(pe_module, side: int):
    """A PositionEmbeddingSine's constant encoding of a side x side map, [1, C, side, side]
    (the module only reads the shape of its input; works with both packages' versions)."""
    with torch.no_grad():
        return pe_module(torch.zeros(1, 1, side, side)).detach().clone()


def memory_pos(model):
    """The position encoding of one stored memory frame, token-major [Mt, Cm], as the
    official `_encode_new_memory` returns it (SAM 2: the memory encoder's sine encoding of
    the feature grid; EdgeTAM: zeros for the global latents, the perceiver's sine encoding
    of its 2D latent grid for the 2D latents). Constant: memory_attention holds it."""
    side = model.image_size // model.backbone_stride
    p = _perceiver(model)
    if p is None:
        return sine_pe(model.memory_encoder.position_encoding, side)[0].flatten(1).t().contiguous()
    f = perceiver_facts(model)
    parts = []
    if f["num_latents"]:
        parts.append(torch.zeros(f["num_latents"], model.mem_dim))
    if f["num_latents_2d"]:
        parts.append(sine_pe(p.position_encoding, f["grid"])[0].flatten(1).t())
    return torch.cat(parts, dim=0).contiguous()


def _rope_theta(attn):
    # the theta is bound into attn.compute_cis (a functools.partial)
    return attn.compute_cis.keywords["theta"]


def _apply_rope(x, cos, sin):
    """x: [..., L, D] with interleaved (re, im) pairs; cos/sin: [L, D/2] (broadcast)."""
    x2 = x.reshape(*x.shape[:-1], -1, 2)
    xr, xi = x2[..., 0], x2[..., 1]
    out_r = xr * cos - xi * sin
    out_i = xr * sin + xi * cos
    return torch.stack((out_r, out_i), dim=-1).flatten(-2)


def _chunked_attention(q, chunk, scores, v, weigh=None):
    """softmax(scores(q)) v, `chunk` query rows of q at a time (0: all at once); weigh:
    None, or a function (score rows) -> their softmax's product with the values, instead
    of the softmax and the fp32 matmul with v.

    Chunking bounds the attention matrix held at once (at 1024 with 7 memories a full one
    is 4096 x 28k fp32 = 470 MB per object) without changing any value: each query row's
    softmax only reads its own row."""
    if weigh is None:

        def weigh(s):
            return torch.matmul(torch.softmax(s, dim=-1), v)

    rows = q.shape[-2]
    if not chunk or chunk >= rows:
        return weigh(scores(q))
    parts = [weigh(scores(q[..., s : s + chunk, :])) for s in range(0, rows, chunk)]
    return torch.cat(parts, dim=-2)


def _attend(q, k, v, chunk):
    """softmax(q k^T) v over all keys, in query chunks (_chunked_attention)."""
    kt = k.transpose(-1, -2)
    return _chunked_attention(q, chunk, lambda qc: torch.matmul(qc, kt), v)


# ---- int8 attention scores (a speed mode: MemoryAttentionGraph(int8_scores=levels)) -----
#
# The memory attention's largest product is q k^T of the cross-attention (at 1024 with 7
# memories: 4,096 queries x 28,736 keys x 256 per layer, ~60% of its FLOPs); with fewer
# memories the self-attention's (4,096 x 4,096 x 256) weighs as much. In this mode, in both,
# keys are quantised once per layer to int8 (symmetric, per tensor), each query chunk to
# uint8 per call (ONNX DynamicQuantizeLinear), and the products run as MatMulInteger
# (int32 accumulation: the CPU's VNNI dot products; measured 1.8x the fp32 product on an
# AVX-512 VNNI AMD EPYC), scaled back to fp32 before the padding bias and the softmax. The
# keys use the 7-bit range [-64, 64] by default (KEY_LEVELS_7BIT): on an x86 CPU without
# VNNI (AVX2 only, or AVX-512 without VNNI: AMD Zen 1-3, Intel before Cascade Lake) ONNX
# Runtime's u8 x s8 kernel sums pairs of products in int16 (vpmaddubsw) and saturates once
# a pair exceeds 32,767; 255 * 64 * 2 = 32,640 never does, 255 * 127 * 2 does (measured on
# an AMD EPYC Zen 2: full-range operands give 99% of the products wrong, up to 13%). The
# torch forward computes the same integers (exact in float64); export.py's ONNX check
# holds the graph to it within INT8_SCORES_TOL (fp32 noise upstream can move a value
# across a rounding boundary); the cost against fp32 is measured on frames (bench.sh,
# tests/engine_parity.rs).


# The largest |key| level of the int8 scores: 64 (7 bits, exact on every x86 CPU, see
# above) or 127 (8 bits: exact only where ONNX Runtime has VNNI kernels).
KEY_LEVELS_7BIT = 64
KEY_LEVELS_8BIT = 127


class _QuantS8(torch.autograd.Function):
    """x -> (round(x / s) as int8, s) with s = max|x| / levels (ONNX QuantizeLinear)."""

    @staticmethod
    def forward(ctx, x, levels):
        scale = (x.abs().amax() / float(levels)).clamp_min(torch.finfo(torch.float32).tiny)
        return torch.clamp(torch.round(x / scale), -128, 127).to(torch.int8), scale

    @staticmethod
    def symbolic(g, x, levels):
        amax = g.op("ReduceMax", g.op("Abs", x), keepdims_i=0)
        scale = g.op("Div", amax, g.op("Constant", value_t=torch.tensor(float(levels))))
        scale = g.op("Max", scale, g.op("Constant", value_t=torch.tensor(torch.finfo(torch.float32).tiny)))
        zero = g.op("Constant", value_t=torch.tensor(0, dtype=torch.int8))
        q = g.op("QuantizeLinear", x, scale, zero)
        return q, scale


class _Int8Scores(torch.autograd.Function):
    """q [..., Lq, D] (fp32) times int8 keys kt [..., D, Lk] with scale k_scale: q is
    quantised to uint8 as ONNX DynamicQuantizeLinear does, the product is MatMulInteger's
    int32, the result q_scale * k_scale * acc."""

    @staticmethod
    def forward(ctx, q, kt, k_scale):
        lo = torch.clamp(q.amin(), max=0.0)
        hi = torch.clamp(q.amax(), min=0.0)
        qs = ((hi - lo) / 255.0).clamp_min(torch.finfo(torch.float32).tiny)
        qz = torch.clamp(torch.round(-lo / qs), 0, 255)
        qq = torch.clamp(torch.round(q / qs) + qz, 0, 255)
        acc = torch.matmul((qq - qz).double(), kt.double())
        return (acc.float() * (qs * k_scale)).to(torch.float32)

    @staticmethod
    def symbolic(g, q, kt, k_scale):
        qq, qs, qz = g.op("DynamicQuantizeLinear", q, outputs=3)
        acc = g.op("MatMulInteger", qq, kt, qz)
        f = g.op("Cast", acc, to_i=1)  # FLOAT
        out = g.op("Mul", f, g.op("Mul", qs, k_scale))
        out.setType(q.type().with_sizes(None))
        return out


def _attend_int8_scores(q, k, bias, v, chunk, levels, int8_values=False):
    """softmax(q k^T + bias) v with int8 scores (see above; keys in [-levels, levels]), in
    query chunks; bias [B, 1, 1, Lk] or None. int8_values: the product with v as int8
    products too (_Int8Values; values in [-levels, levels])."""
    kq, ks = _QuantS8.apply(k, levels)
    kt = kq.transpose(-1, -2)

    def scores(qc):
        out = _Int8Scores.apply(qc, kt, ks)
        return out if bias is None else out + bias

    weigh = None
    if int8_values:
        vq, vs = _QuantS8.apply(v, levels)
        # one more column of ones: the products' last column sums each row's weights
        vq1 = torch.cat([vq, torch.ones_like(vq[..., :1])], dim=-1)

        def weigh(s):
            return _Int8Values.apply(s, vq1, vs)

    return _chunked_attention(q, chunk, scores, v, weigh)


# ---- int8 attention values (a speed mode on top of the int8 scores) ---------------------
#
# With int8 scores, the memory attention's largest fp32 product left is the self-attention's
# softmax(.) v: 4,096 x 4,096 x 256 per layer at 1024, ~30% of the fast mode's memory
# attention at 1 object with 2 memory frames (run S21). With int8 values
# (MemoryAttentionGraph(int8_values=True), export.py --int8-attention-values) each row of
# softmax weights is taken divided by its largest weight, exp(s - max s) (in [0, 1], the
# largest exactly 1; the softmax's own normalisation is left out, the division below does
# it), and quantised to uint8 with the fixed scale 1/255; the values are quantised once
# per layer to int8
# (symmetric, per tensor, the keys' levels), with one more column of ones, so that
# MatMulInteger gives each row's integer products and, in that column, the sum of its
# quantised weights, by which the row is divided: the output is the values' average under
# the quantised weights (a weight below 1/510 of its row's largest counts as zero; the rows
# stay averages, so no weight mass is lost to scaling). The cross-attention keeps its fp32
# product: it runs on the memory's 64 channels (values projected after the attention, see
# _cross_attention), where the integer products did not pay for their passes over the
# weights (S21: 47 against 44 ms per layer at 2 memory frames).


class _Int8Values(torch.autograd.Function):
    """softmax(s) of score rows s [..., Lq, Lk] times int8 values vq1 [..., Lk, Dv + 1] (the
    last column ones) with scale v_scale -> [..., Lq, Dv]: u = exp(s - max(row)) quantised to
    uint8 as ONNX QuantizeLinear does with the scale 1/255, the products MatMulInteger's
    int32, the result (acc[:Dv] / acc[Dv]) * v_scale."""

    @staticmethod
    def forward(ctx, s, vq1, v_scale):
        u = torch.exp(s - s.amax(dim=-1, keepdim=True))
        pq = torch.clamp(torch.round(u / torch.tensor(1.0 / 255.0, dtype=torch.float32)), 0, 255)
        acc = torch.matmul(pq.double(), vq1.double()).float()
        return acc[..., :-1] / acc[..., -1:] * v_scale

    @staticmethod
    def symbolic(g, s, vq1, v_scale):
        def const(v, dtype=None):
            return g.op("Constant", value_t=torch.tensor(v, dtype=dtype))

        u = g.op("Exp", g.op("Sub", s, g.op("ReduceMax", s, axes_i=[-1], keepdims_i=1)))
        pq = g.op("QuantizeLinear", u, const(1.0 / 255.0, torch.float32), const(0, torch.uint8))
        acc = g.op("Cast", g.op("MatMulInteger", pq, vq1), to_i=1)  # FLOAT
        sums = g.op("Slice", acc, const([-1]), const([2**62]), const([-1]))
        rows = g.op("Slice", acc, const([0]), const([-1]), const([-1]))
        out = g.op("Mul", g.op("Div", rows, sums), v_scale)
        out.setType(s.type().with_sizes(None))
        return out


def _heads(mod, x):
    return mod._separate_heads(x, mod.num_heads)


def _self_attention(mod, x, cos, sin, chunk, int8_scores=0, int8_values=False):
    """The official RoPEAttention on x (queries = keys = values) with real arithmetic.
    The softmax scale is applied to q (1/16 at head dim 256: a power of two, exact).
    int8_scores: 0, or the key levels of int8 scores (see _attend_int8_scores);
    int8_values: with int8 scores, the values' product too (_Int8Values)."""
    q = _apply_rope(_heads(mod, mod.q_proj(x)), cos, sin)
    k = _apply_rope(_heads(mod, mod.k_proj(x)), cos, sin)
    v = _heads(mod, mod.v_proj(x))
    q = q * (1.0 / math.sqrt(q.shape[-1]))
    if int8_scores:
        out = _attend_int8_scores(q, k, None, v, chunk, int8_scores, int8_values)
    else:
        out = _attend(q, k, v, chunk)
    return mod.out_proj(mod._recombine_heads(out))


def _cross_attention(mod, x, keys_in, values_in, rope, rope_k_frames, key_bias, chunk, int8_scores=0):
    """The official cross-attention RoPEAttention (keys/values from memory, RoPE on the
    first `rope_k_frames` memory frames of keys) rewritten to do less work. `rope`:
    (q_cos, q_sin, k_cos, k_sin, tokens per memory frame, tokens without RoPE at the start
    of each frame). SAM 2: the keys of a frame are the queries' grid (the same tables, no
    prefix); EdgeTAM's RoPEAttentionv2: a frame is the perceiver's global latents (no RoPE)
    then its 2D latents (RoPE on their own grid), as `apply_rotary_enc_v2` does.

    - the additive key bias (padding) rides in the q.k product as one more dimension:
      [q, 1] . [k, bias] = q.k + bias, no pass over the attention matrix;
    - values are projected after the attention: softmax rows sum to one, so
      softmax(.) (M Wv^T + bv) = (softmax(.) M) Wv^T + bv. The product with the
      attention matrix then runs on the memory's Cm = 64 channels instead of the
      projected 256: a quarter of the largest matmul of the model.
    """
    q_cos, q_sin, k_cos, k_sin, rows, skip = rope
    q = _apply_rope(_heads(mod, mod.q_proj(x)), q_cos, q_sin)
    q = q * (1.0 / math.sqrt(q.shape[-1]))
    k = _heads(mod, mod.k_proj(keys_in))
    B, nh, n_k, d = k.shape
    n_sp = rope_k_frames * rows
    k_sp = k[:, :, :n_sp].reshape(B, nh, -1, rows, d)
    if skip:
        k_sp = torch.cat([k_sp[..., :skip, :], _apply_rope(k_sp[..., skip:, :], k_cos, k_sin)], dim=-2)
    else:
        k_sp = _apply_rope(k_sp, k_cos, k_sin)
    k_sp = k_sp.reshape(B, nh, -1, d)
    k = torch.cat([k_sp, k[:, :, n_sp:]], dim=2)
    if int8_scores:
        ctx = _attend_int8_scores(q, k, key_bias.reshape(B, 1, 1, n_k), values_in.unsqueeze(1), chunk, int8_scores)
    else:
        q = torch.cat([q, torch.ones_like(q[..., :1])], dim=-1)
        k = torch.cat([k, key_bias.reshape(B, 1, n_k, 1).expand(B, nh, n_k, 1)], dim=-1)
        ctx = _attend(q, k, values_in.unsqueeze(1), chunk)  # [B, nh, Lq, Cm]
    cm = values_in.shape[-1]
    w_v = mod.v_proj.weight.reshape(nh, d, cm).transpose(-1, -2)  # [nh, Cm, d]
    out = torch.matmul(ctx, w_v) + mod.v_proj.bias.reshape(nh, 1, d)
    return mod.out_proj(mod._recombine_heads(out))


# Query rows per attention block in the memory-attention graph (see _attend); 0: no
# chunking. 512 keeps one block of the 1024-input model at <= 60 MB per object.
ATTENTION_QUERY_CHUNK = 512


class MemoryAttentionGraph(torch.nn.Module):
    """Conditions the current frame's stride-16 features on each object's memory.

    Batched over B objects with per-object padding: memory slots and pointer slots whose
    `*_valid` entry is 0 get an additive -1e9 attention bias (exactly zero weight).
    int8_scores: 0 (fp32), or the attention scores as int8 products with keys in
    [-int8_scores, int8_scores] (a CPU speed mode, see _attend_int8_scores and
    KEY_LEVELS_7BIT; export.py --int8-attention-scores); int8_values (with int8 scores):
    the self-attention's product with the values as int8 products too (_Int8Values;
    export.py --int8-attention-values)."""

    def __init__(
        self, model, query_chunk: int = ATTENTION_QUERY_CHUNK, int8_scores: int = 0, int8_values: bool = False
    ):
        super().__init__()
        if int8_values and not int8_scores:
            raise ValueError("int8 attention values need int8 attention scores")
        self.model = model
        self.query_chunk = query_chunk
        self.int8_scores = int8_scores
        self.int8_values = int8_values
        ma = model.memory_attention
        for layer in ma.layers:
            assert not layer.pos_enc_at_attn, "pos_enc_at_attn=True is not supported"
        cos, sin = _rope_tables(model)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        # the memory's constant position encoding, [1, Mt, Cm]
        self.register_buffer("maskmem_pos", memory_pos(model).unsqueeze(0), persistent=False)
        self.mem_tokens = memory_tokens(model)
        if _is_rope_v2(model):  # EdgeTAM
            q_cos, q_sin, k_cos, k_sin = _rope_v2_tables(model)
            self.register_buffer("xq_cos", q_cos, persistent=False)
            self.register_buffer("xq_sin", q_sin, persistent=False)
            self.register_buffer("xk_cos", k_cos, persistent=False)
            self.register_buffer("xk_sin", k_sin, persistent=False)
            self.rope_skip = perceiver_facts(model)["num_latents"]
            if k_cos.shape[0] != self.mem_tokens - self.rope_skip:
                raise ValueError("RoPEAttentionv2 k_sizes do not match the perceiver's 2D latents")
        else:
            self.xq_cos = self.xk_cos = None
            self.rope_skip = 0

    def forward(
        self,
        vision_feat,  # [1, C, H, W]
        vision_pos,  # [1, C, H, W]
        memory,  # [B, Nm, Mt, Cm] (Mt = HW, or the perceiver's latents)
        memory_tpos_index,  # [B, Nm] int64: index into maskmem_tpos_enc
        memory_valid,  # [B, Nm] f32 1/0
        obj_ptrs,  # [B, P, C]
        obj_ptr_tpos,  # [B, P] f32: (signed) frame distance / (max_obj_ptrs - 1)
        obj_ptr_valid,  # [B, P] f32 1/0
    ):
        model = self.model
        ma = model.memory_attention
        C = model.hidden_dim
        Cm = model.mem_dim
        B = memory.shape[0]
        Nm = memory.shape[1]
        P = obj_ptrs.shape[1]
        H, W = vision_feat.shape[-2], vision_feat.shape[-1]
        Mt = self.mem_tokens
        k = C // Cm

        curr = vision_feat.flatten(2).transpose(1, 2)  # [1, HW, C]
        curr_pos = vision_pos.flatten(2).transpose(1, 2)
        out = curr
        if ma.pos_enc_at_input:
            out = out + 0.1 * curr_pos
        # `out` stays [1, HW, C] until the first cross-attention broadcasts it to the B
        # objects: the first self-attention is the same for all of them and runs once.

        # spatial memory: features + (constant sine PE + temporal encoding of the slot)
        mem = memory.reshape(B, Nm * Mt, Cm)
        tpos = model.maskmem_tpos_enc.reshape(-1, Cm)[memory_tpos_index]  # [B, Nm, Cm]
        mem_pos = (self.maskmem_pos.unsqueeze(0) + tpos.unsqueeze(2)).reshape(B, Nm * Mt, Cm)

        # object pointers: each C-vector split into k tokens of Cm
        ptr_tok = obj_ptrs.reshape(B, P * k, Cm)
        if model.add_tpos_enc_to_obj_ptrs:
            tpos_dim = C if model.proj_tpos_enc_in_obj_ptrs else Cm
            ptr_pos = get_1d_sine_pe(obj_ptr_tpos, dim=tpos_dim)
            ptr_pos = model.obj_ptr_tpos_proj(ptr_pos)  # [B, P, Cm]
        else:
            # no temporal encoding (SAM 2.0, EdgeTAM); obj_ptr_tpos stays a graph input
            # (the contract's) through a product with zero instead of being dropped
            ptr_pos = torch.zeros_like(obj_ptrs[..., :Cm]) + 0.0 * obj_ptr_tpos.unsqueeze(-1)
        ptr_pos = ptr_pos.unsqueeze(2).expand(B, P, k, Cm).reshape(B, P * k, Cm)

        mem_all = torch.cat([mem, ptr_tok], dim=1)
        pos_all = torch.cat([mem_pos, ptr_pos], dim=1)
        valid = torch.cat(
            [
                memory_valid.unsqueeze(2).expand(B, Nm, Mt).reshape(B, Nm * Mt),
                obj_ptr_valid.unsqueeze(2).expand(B, P, k).reshape(B, P * k),
            ],
            dim=1,
        )
        bias = (1.0 - valid) * PAD_BIAS  # [B, Nk]

        cos, sin = self.rope_cos, self.rope_sin
        if self.xq_cos is None:
            rope = (cos, sin, cos, sin, Mt, 0)
        else:
            rope = (self.xq_cos, self.xq_sin, self.xk_cos, self.xk_sin, Mt, self.rope_skip)
        chunk = self.query_chunk
        tgt = out
        for layer in ma.layers:
            t2 = layer.norm1(tgt)
            t2 = _self_attention(layer.self_attn, t2, cos, sin, chunk, self.int8_scores, self.int8_values)
            tgt = tgt + t2
            t2 = layer.norm2(tgt)
            q = t2 + curr_pos if layer.pos_enc_at_cross_attn_queries else t2
            kk = mem_all + pos_all if layer.pos_enc_at_cross_attn_keys else mem_all
            t2 = _cross_attention(layer.cross_attn_image, q, kk, mem_all, rope, Nm, bias, chunk, self.int8_scores)
            tgt = tgt + t2
            t2 = layer.norm3(tgt)
            t2 = layer.linear2(layer.activation(layer.linear1(t2)))
            tgt = tgt + t2
        tgt = ma.norm(tgt)
        return tgt.transpose(1, 2).reshape(B, C, H, W)


class MaskDecoderGraph(torch.nn.Module):
    """Prompt encoder + mask decoder + object-pointer MLP, batched over objects. Keeps all
    4 mask tokens (0 = single-mask, 1..3 = multimask) so the host applies the official
    selection rules; pointers are NOT blended with no_obj_ptr (the host does it)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        pe = model.sam_prompt_encoder
        self.register_buffer("image_pe", pe.get_dense_pe().detach().clone(), persistent=False)

    def forward(
        self,
        image_embed,  # [B, C, H, W]  memory-conditioned features
        high_res_feat_0,  # [1, C/8, 4H, 4W]
        high_res_feat_1,  # [1, C/4, 2H, 2W]
        point_coords,  # [B, N, 2] in model-input pixels (0..S)
        point_labels,  # [B, N] int32: 1 pos, 0 neg, 2/3 box corners, -1 padding
        mask_input,  # [B, 1, 4H, 4W] low-res mask logits prompt
        has_mask_input,  # [B] f32 1/0
    ):
        model = self.model
        pe = model.sam_prompt_encoder
        B = image_embed.shape[0]
        labels = point_labels.to(torch.float32)
        sparse = self._embed_points(point_coords, labels)
        has = has_mask_input.reshape(B, 1, 1, 1)
        no_mask = pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
        dense = has * pe._embed_masks(mask_input) + (1.0 - has) * no_mask
        masks, iou_pred, mask_tokens, obj_score = model.sam_mask_decoder.predict_masks(
            image_embeddings=image_embed,
            image_pe=self.image_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            repeat_image=False,
            high_res_features=[high_res_feat_0, high_res_feat_1],
        )
        obj_ptr = model.obj_ptr_proj(mask_tokens)
        return masks, iou_pred, obj_ptr, obj_score

    def _embed_points(self, points, labels):
        """PromptEncoder._embed_points(pad=True) without in-place slice writes."""
        pe = self.model.sam_prompt_encoder
        B = points.shape[0]
        points = points + 0.5
        points = torch.cat([points, torch.zeros(B, 1, 2, dtype=points.dtype)], dim=1)
        labels = torch.cat([labels, -torch.ones(B, 1, dtype=labels.dtype)], dim=1)
        h, w = pe.input_image_size
        scale = torch.tensor([float(w), float(h)])
        emb = pe.pe_layer._pe_encoding(points / scale)
        lab = labels.unsqueeze(-1)
        emb = torch.where(lab == -1, torch.zeros_like(emb) + pe.not_a_point_embed.weight, emb)
        for i in range(pe.num_point_embeddings):
            emb = torch.where(lab == i, emb + pe.point_embeddings[i].weight, emb)
        return emb


# The memory encoder's LayerNorm2d (a LayerNorm over the channels of an NCHW map) exports
# as ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add over the strided channel axis:
# ONNX Runtime fuses that chain into its LayerNormalization kernel only over the last
# axis. Here it is written channels-last (F.layer_norm: the same biased variance, eps under
# the square root): in the fuser's CXBlocks the permute the official block does after the
# norm moves before it; in the mask downsampler the norm sits between two permutes.


def _layer_norm_2d(ln, x_nhwc):
    return F.layer_norm(x_nhwc, (ln.weight.shape[0],), ln.weight, ln.bias, ln.eps)


def _is_layer_norm_2d(m) -> bool:
    return type(m).__name__ == "LayerNorm2d"


def _mask_downsampler(ds, x):
    """MaskDownSampler.forward with channels-last LayerNorms."""
    for m in ds.encoder:
        if _is_layer_norm_2d(m):
            x = _layer_norm_2d(m, x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        else:
            x = m(x)
    return x


def _fuser(fuser, x):
    """Fuser.forward with each CXBlock's norm after its permute to channels-last."""
    x = fuser.proj(x)
    for blk in fuser.layers:
        if type(blk).__name__ != "CXBlock" or not _is_layer_norm_2d(blk.norm):
            x = blk(x)
            continue
        y = _layer_norm_2d(blk.norm, blk.dwconv(x).permute(0, 2, 3, 1))
        y = blk.pwconv2(blk.act(blk.pwconv1(y)))
        if blk.gamma is not None:
            y = blk.gamma * y
        x = x + blk.drop_path(y.permute(0, 3, 1, 2))
    return x


class MemoryEncoderGraph(torch.nn.Module):
    """Encodes the chosen low-res mask of each object into a memory (token-major)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        if _perceiver(model) is not None:
            # the perceiver's global latents attend to the memory with the memory
            # encoder's (constant) sine encoding added to keys and values
            side = model.image_size // model.backbone_stride
            pe = sine_pe(model.memory_encoder.position_encoding, side)
            self.register_buffer("perceiver_pos", pe.flatten(2).transpose(1, 2).contiguous(), persistent=False)
            perceiver_facts(model)  # checks the 2D grid

    def forward(
        self,
        vision_feat,  # [1, C, H, W] raw stride-16 features of the frame
        masks,  # [B, 1, 4H, 4W] chosen low-res mask logits (after the no-object fill)
        is_mask_from_pts,  # [B] f32 1/0: binarise (user-interacted frame) instead of sigmoid
        object_score_logits,  # [B, 1]
    ):
        model = self.model
        me = model.memory_encoder
        B = masks.shape[0]
        S = model.image_size
        hi = F.interpolate(masks, size=(S, S), mode="bilinear", align_corners=False)
        if model.binarize_mask_from_pts_for_mem_enc:
            flag = is_mask_from_pts.reshape(B, 1, 1, 1) > 0.5
            m = torch.where(flag, (hi > 0).to(hi.dtype), torch.sigmoid(hi))
        else:
            m = torch.sigmoid(hi)
        if model.sigmoid_scale_for_mem_enc != 1.0:
            m = m * model.sigmoid_scale_for_mem_enc
        if model.sigmoid_bias_for_mem_enc != 0.0:
            m = m + model.sigmoid_bias_for_mem_enc
        x = _mask_downsampler(me.mask_downsampler, m)
        x = me.pix_feat_proj(vision_feat) + x
        x = _fuser(me.fuser, x)
        x = me.out_proj(x)
        if model.no_obj_embed_spatial is not None:
            appearing = (object_score_logits > 0).to(x.dtype)
            x = x + (1 - appearing[..., None, None]) * model.no_obj_embed_spatial[..., None, None]
        else:
            # SAM 2.0, EdgeTAM: the score does not enter the memory; it stays a graph
            # input (the contract's) through a product with zero instead of being dropped
            x = x + 0.0 * object_score_logits[..., None, None]
        # the memory's position encoding is constant: memory_attention holds it
        if _perceiver(self.model) is not None:
            return spatial_perceiver(_perceiver(self.model), x, self.perceiver_pos)
        return x.flatten(2).transpose(1, 2)


def spatial_perceiver(p, x, pos):
    """EdgeTAM's PerceiverResampler.forward on the memory x [B, Cm, H, W] with the memory
    encoder's sine encoding pos [1, HW, Cm]: [B, num_latents + num_latents_2d, Cm], the
    global latents first. The official layers, with the 2D windows written with reshape
    (the official `.view` of an expanded tensor fails for B >= 2). As in the official
    forward_1d, the global latents use `pos` whatever `pos_enc_at_key_value` says (the
    memory encoder always passes it); the 2D latents attend without it."""
    B, C, H, W = x.shape
    tokens = x.permute(0, 2, 3, 1)  # [B, H, W, C]
    out = []
    if p.num_latents > 0:
        lat = p.latents.unsqueeze(0).expand(B, -1, -1)
        xs = tokens.reshape(B, H * W, C)
        ps = pos.expand(B, -1, -1)
        for layer in p.layers:
            lat = layer(lat, xs, ps)
        out.append(p.norm(lat))
    if p.num_latents_2d > 0:
        n = math.isqrt(p.num_latents_2d)
        ws = H // n
        lat = p.latents_2d.unsqueeze(0).expand(B, -1, -1).reshape(-1, 1, C)
        win = tokens.reshape(B, n, ws, n, ws, C).permute(0, 1, 3, 2, 4, 5).reshape(B * n * n, ws * ws, C)
        for layer in p.layers:
            lat = layer(lat, win)
        out.append(p.norm(lat.reshape(B, n * n, C)))
    return torch.cat(out, dim=1)


# ---------------------------------------------------------------------------------------
# Graph descriptions (names, dtypes, symbolic shapes) -- mirrored in CONTRACT.md
# ---------------------------------------------------------------------------------------


def graph_specs(f: dict) -> dict:
    """Inputs/outputs of each graph; ints are fixed sizes from the manifest, strings are
    symbolic dimensions: B objects, N points, Nm memory slots, P pointer slots."""
    S, C, Cm = f["image_size"], f["hidden_dim"], f["mem_dim"]
    H = f["feat_size"]
    HW = f["memory_tokens"]  # tokens per memory frame: H*H, or the perceiver's (EdgeTAM)
    c0, c1 = f["high_res_channels"]
    L = f["low_res_mask_size"]
    T = f["num_mask_tokens"]
    return {
        "image_encoder": {
            "inputs": [("image", "float32", [1, 3, S, S])],
            "outputs": [
                ("high_res_feat_0", "float32", [1, c0, 4 * H, 4 * H]),
                ("high_res_feat_1", "float32", [1, c1, 2 * H, 2 * H]),
                ("vision_feat", "float32", [1, C, H, H]),
                ("vision_pos", "float32", [1, C, H, H]),
            ],
        },
        "memory_attention": {
            "inputs": [
                ("vision_feat", "float32", [1, C, H, H]),
                ("vision_pos", "float32", [1, C, H, H]),
                ("memory", "float32", ["B", "Nm", HW, Cm]),
                ("memory_tpos_index", "int64", ["B", "Nm"]),
                ("memory_valid", "float32", ["B", "Nm"]),
                ("obj_ptrs", "float32", ["B", "P", C]),
                ("obj_ptr_tpos", "float32", ["B", "P"]),
                ("obj_ptr_valid", "float32", ["B", "P"]),
            ],
            "outputs": [("pix_feat_with_mem", "float32", ["B", C, H, H])],
        },
        "mask_decoder": {
            "inputs": [
                ("image_embed", "float32", ["B", C, H, H]),
                ("high_res_feat_0", "float32", [1, c0, 4 * H, 4 * H]),
                ("high_res_feat_1", "float32", [1, c1, 2 * H, 2 * H]),
                ("point_coords", "float32", ["B", "N", 2]),
                ("point_labels", "int32", ["B", "N"]),
                ("mask_input", "float32", ["B", 1, L, L]),
                ("has_mask_input", "float32", ["B"]),
            ],
            "outputs": [
                ("masks", "float32", ["B", T, L, L]),
                ("iou_pred", "float32", ["B", T]),
                ("obj_ptr", "float32", ["B", T, C]),
                ("object_score_logits", "float32", ["B", 1]),
            ],
        },
        "memory_encoder": {
            "inputs": [
                ("vision_feat", "float32", [1, C, H, H]),
                ("masks", "float32", ["B", 1, L, L]),
                ("is_mask_from_pts", "float32", ["B"]),
                ("object_score_logits", "float32", ["B", 1]),
            ],
            "outputs": [("maskmem_features", "float32", ["B", HW, Cm])],
        },
    }


WRAPPERS = {
    "image_encoder": image_encoder_graph,
    "memory_attention": MemoryAttentionGraph,
    "mask_decoder": MaskDecoderGraph,
    "memory_encoder": MemoryEncoderGraph,
}


def example_inputs(spec: dict, seed: int, sizes: dict | None = None) -> dict:
    """Random inputs for a graph spec; symbolic dims take values from `sizes`."""
    sizes = {"B": 2, "N": 3, "Nm": 3, "P": 5, **(sizes or {})}
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, dtype, shape in spec["inputs"]:
        shp = [sizes[d] if isinstance(d, str) else d for d in shape]
        if name == "memory_tpos_index":
            out[name] = torch.randint(0, 7, shp, generator=gen, dtype=torch.int64)
        elif name == "point_labels":
            out[name] = torch.randint(-1, 4, shp, generator=gen, dtype=torch.int32)
        elif name.endswith("_valid"):
            v = (torch.rand(shp, generator=gen) > 0.3).to(torch.float32)
            v[..., 0] = 1.0  # at least one valid slot per object
            out[name] = v
        elif name in ("has_mask_input", "is_mask_from_pts"):
            out[name] = (torch.arange(shp[0]) % 2).to(torch.float32)
        elif name == "point_coords":
            out[name] = torch.rand(shp, generator=gen) * sizes.get("S", 1024)
        elif name == "obj_ptr_tpos":
            out[name] = (torch.randint(-15, 16, shp, generator=gen) / 15.0).to(torch.float32)
        elif name in ("masks", "mask_input"):
            out[name] = torch.randn(shp, generator=gen) * 8.0
        elif name == "object_score_logits":
            out[name] = torch.tensor([[2.0], [-3.0]] * (shp[0] // 2) + [[1.0]] * (shp[0] % 2))
        else:
            out[name] = torch.randn(shp, generator=gen)
    return out


def clone_model(model):
    return copy.deepcopy(model)
