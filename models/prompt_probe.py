#!/usr/bin/env python3
# SPDX-License-Identifier: MPL-2.0
"""Does a benchmark model follow its prompts? Part 1 of train_synthetic.py on chosen scenes,
then an own-versus-other IoU check (issue 16, item 1).

  .venv-models/bin/python models/prompt_probe.py --backgrounds target/bench/train-backgrounds \\
      --bg grey --objects 2,2 --kinds 0 --steps 600          # two discs on grey
  .venv-models/bin/python models/prompt_probe.py --backgrounds ... --bg real --objects 1,4 \\
      --kinds 0,1,2 --stripes                                 # train_synthetic.py's scenes

Builds the same seeded random SAM 2.1-tiny at 512 as train_synthetic.py, calibrated the
same way, trains part 1 only (neck, high-resolution projections, prompt encoder, mask
decoder on the frozen trunk; --steps 0: the calibrated start) on scenes of one kind: a
grey or real background, N solid or striped shapes of the given kinds and radii. Then the
official SAM2ImagePredictor clicks once inside each shape of 12 new scenes of that kind
and of train_synthetic.py's own kind, takes the multimask output with the best predicted
IoU, and prints its IoU with the clicked shape ("own") and with each other shape of the
scene ("other"), and how many clicks lie inside their mask. A model that follows its
prompts has own far above other; one that segments every shape has them alike.

Measured so far (README, "The trained benchmark model"; 600 steps): two discs on grey placed
anywhere (the first example) 0.49 / 0.49; 2 small shapes of mixed kinds on grey 0.47 / 0.47.
Run S15's toy, two discs on grey placed by a script that was not kept, gave 0.71 / 0.11. --backgrounds: a folder of
video frames (bench.sh writes target/bench/train-backgrounds; any PNG/JPEG frames do).

Start options: --pe-scale multiplies the prompt encoder's positional frequencies; --align G
sets q_proj = k_proj = G x one orthonormal projection (biases zero) in the decoder attentions
that add positional encodings on both sides, so that at the start a click's token and the
image positions near it attend to each other; --feat-scale S scales the FPN neck's outputs
(its convs) so the positional encodings weigh more; --freeze a,b also keeps the parameters
whose names contain a or b frozen in part 1 (e.g. q_proj,k_proj or conv_s0,conv_s1).
--plain-start skips train_synthetic's calibration of the start (centred hypernetworks,
scaled-down high-resolution projections; the object-score bias stays).
--centre-neck sets the neck convs' biases so that they cancel the trunk outputs' mean over
the training scenes (most of a random trunk's output is one constant vector).
--grouping prints, per trunk level, how much of its output is one constant vector, a fixed
map of positions and image content, and whether the content groups a shape's positions
(cosine within a shape, between shapes, shape to background, each scene's mean removed).
Prompt options: --prompts boxes|clicks trains with one kind only (default: train_synthetic's
mix, a third boxes), and boxes are then also what the evaluation gives (its box centre
must lie inside the mask); --invisible leaves the shapes undrawn, so that only the prompt
says where the target is (can the decoder read a prompt's position and extent at all?);
--invisible-steps N trains the first N steps on such undrawn scenes, then the rest on drawn
ones (a curriculum: the prompt's geometry first, then the image).
--grad-norms N prints, every N steps, the gradient's norm per part of the model (before
train_synthetic's clipping): how much reaches the prompt encoder and the decoder's
transformer. Measured (S18, undrawn boxes as above, train_synthetic's loss at a constant
lr 1e-3, no warm-up): after ~100 steps the masks are empty and the transformer's and prompt
encoder's gradients have fallen ~1000-fold (the decoder's high-resolution projections get
most of what is left); at a constant 2e-4 the boxes are learned (training IoU 0.52-0.56
after 1,200 steps, rising). With this tool's schedule, two shapes of
mixed kinds on grey, 1,200 undrawn then 800 drawn steps (--invisible-steps 1200 --steps
2000 --lr 2e-4), give own 0.66 against other 0.08 where drawn-only training gives the union
(0.48 against 0.47). train_synthetic.py's part 1 now starts that way (PROMPT_LR).
Loss option: --best-of-3 trains with SAM's multimask loss (of a click's three masks only the
one with the lowest loss counts) instead of train_synthetic.py's mean over the three.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sam2_graphs as G  # noqa: E402
import train_synthetic as TS  # noqa: E402

SIZE = TS.TRAIN_SIZE
EVAL_SCENES = 12
GROUPING_SCENES = 16


def scene(rng, bgs, args):
    """One frame [1, S, S, 3] uint8 and the shapes' visible masks [O, 1, S, S]."""
    if args.bg == "grey":
        base = Image.new("RGB", (SIZE, SIZE), (128, 128, 128))
    else:
        bg = bgs[rng.integers(len(bgs))]
        w, h = bg.size
        side = int(min(w, h) * rng.uniform(0.6, 1.0))
        x0, y0 = rng.integers(0, w - side + 1), rng.integers(0, h - side + 1)
        base = bg.crop((x0, y0, x0 + side, y0 + side)).resize((SIZE, SIZE))
    n = int(rng.integers(args.objects[0], args.objects[1] + 1))
    im, masks = base.copy(), np.zeros((n, 1, SIZE, SIZE), bool)
    for k in range(n):
        r = rng.uniform(*args.radius) * SIZE
        rr = np.array([r, r * rng.uniform(0.5, 1.5)])
        c = rng.uniform(0.2, 0.8, 2) * SIZE
        kind = args.kinds[rng.integers(len(args.kinds))]
        m = Image.new("L", (SIZE, SIZE), 0)
        d = ImageDraw.Draw(m)
        box = [c[0] - rr[0], c[1] - rr[1], c[0] + rr[0], c[1] + rr[1]]
        if kind == 0:
            d.ellipse(box, fill=255)
        elif kind == 1:
            d.rectangle(box, fill=255)
        else:
            angles = np.sort(rng.uniform(0, 2 * math.pi, int(rng.integers(5, 9))))
            d.polygon([(c[0] + rr[0] * math.cos(a), c[1] + rr[1] * math.sin(a)) for a in angles], fill=255)
        tex = Image.new("RGB", (SIZE, SIZE), tuple(int(x) for x in rng.integers(0, 256, 3)))
        if args.stripes:
            td = ImageDraw.Draw(tex)
            step = max(4, int(rr[0] / 3))
            stripe = tuple(int(x) for x in rng.integers(0, 256, 3))
            for y in range(int(c[1] - rr[1]) - step, int(c[1] + rr[1]) + step, 2 * step):
                td.rectangle([0, y, SIZE, y + step // 2], fill=stripe)
        if not args.invisible:
            im.paste(tex, (0, 0), m.filter(ImageFilter.GaussianBlur(0.7)))
        mk = np.array(m) > 127
        masks[:k, 0] &= ~mk  # later shapes occlude earlier ones
        masks[k, 0] = mk
    return np.array(im)[None], masks


def align_decoder_attention(model, gain: float) -> None:
    """q_proj = k_proj = gain x one orthonormal projection in every decoder attention that
    adds positional encodings on both sides, so that at the start a click token attends to
    the image positions near the click and they to it."""
    t = model.sam_mask_decoder.transformer
    g = torch.Generator().manual_seed(1)
    for att in [m for layer in t.layers for m in (layer.cross_attn_token_to_image, layer.cross_attn_image_to_token)] + [
        t.final_attn_token_to_image
    ]:
        out_dim, in_dim = att.q_proj.weight.shape
        w, _ = torch.linalg.qr(torch.randn(in_dim, out_dim, generator=g))
        att.q_proj.weight.copy_(gain * w.T)
        att.k_proj.weight.copy_(gain * w.T)
        att.q_proj.bias.zero_()
        att.k_proj.bias.zero_()


@torch.no_grad()
def trunk_grouping(frames) -> None:
    """Per trunk level over frames [(trunk outputs, masks)]: energy shares of the constant
    vector (mean over scenes and positions), of the fixed positional map (mean over scenes)
    and of the rest; then, with each scene's mean removed, the mean cosine of feature pairs
    within one shape, between two shapes and between a shape and the background."""
    for level in range(len(frames[0][0])):
        X = torch.stack([trunk[level][0] for trunk, _ in frames])  # N, C, h, w
        energy = X.pow(2).sum()
        const = X.mean(dim=(0, 2, 3), keepdim=True).expand_as(X).pow(2).sum() / energy
        posmap = X.mean(dim=0, keepdim=True).expand_as(X).pow(2).sum() / energy
        same, other, bg = [], [], []
        for (trunk, masks), x in zip(frames, X):
            C, h, w = x.shape
            m = torch.nn.functional.interpolate(torch.from_numpy(masks).float(), size=(h, w), mode="area")[:, 0] > 0.5
            groups = [g.reshape(-1) for g in m if g.sum() >= 2]
            y = x.reshape(C, -1).T
            y = torch.nn.functional.normalize(y - y.mean(0, keepdim=True), dim=1)
            back = ~m.reshape(len(m), -1).any(0)
            same += [(y[g] @ y[g].T).mean().item() for g in groups]
            other += [(y[a] @ y[b].T).mean().item() for i, a in enumerate(groups) for b in groups[i + 1 :]]
            bg += [(y[g] @ y[back].T).mean().item() for g in groups if back.any()]
        print(f"trunk level {level} ({h}x{w}): energy constant {const:.3f}, fixed positional map "
              f"{posmap - const:.3f}, content {1 - posmap:.3f}; content cosine within a shape "
              f"{np.mean(same):.2f}, between shapes {np.mean(other):.2f}, shape-background {np.mean(bg):.2f}", flush=True)


@torch.no_grad()
def centre_neck(model, trunks) -> None:
    """Neck conv i reads trunk level n - i (1x1 convs): bias -= W . mean of that level."""
    convs = model.image_encoder.neck.convs
    n = len(convs) - 1
    for level in range(n + 1):
        mean = torch.stack([t[level].mean(dim=(0, 2, 3)) for t in trunks]).mean(0)
        conv = convs[n - level].conv
        conv.bias.sub_(conv.weight[:, :, 0, 0] @ mean)


def gradient_part(name: str) -> str:
    """A parameter's part for --grad-norms: the decoder's transformer per layer and
    attention, the rest by module."""
    parts = name.split(".")
    if name.startswith("sam_mask_decoder.transformer.layers."):
        return ".".join(parts[:5])
    return ".".join(parts[:2])


def gradient_report(model, every: int):
    """An after_backward hook for train_synthetic.train: every `every` steps, prints the
    gradient norm per part of the model (before clipping), largest first, with the parts'
    weight norms."""

    def report(step: int) -> None:
        if step % every:
            return
        grad, weight = {}, {}
        for name, p in model.named_parameters():
            if p.grad is not None:
                part = gradient_part(name)
                grad[part] = grad.get(part, 0.0) + p.grad.pow(2).sum().item()
                weight[part] = weight.get(part, 0.0) + p.detach().pow(2).sum().item()
        total = math.sqrt(sum(grad.values()))
        print(f"gradients at step {step}: total {total:.3g}", flush=True)
        for part in sorted(grad, key=lambda x: -grad[x]):
            print(f"    {part:64s} {math.sqrt(grad[part]):10.3g}  (weights {math.sqrt(weight[part]):.3g})")

    return report


class ForcedPrompt:
    """An rng for train_synthetic.prompts_for whose box-or-click draw always gives u
    (0: a box, 1: a click); every other draw comes from the real rng."""

    def __init__(self, rng, u: float):
        self.rng, self.u = rng, u

    def random(self):
        self.rng.random()
        return self.u

    def integers(self, *a, **k):
        return self.rng.integers(*a, **k)


def evaluate(model, make, seed: int, boxes: bool = False) -> str:
    """Own / other IoU, prompts inside and mask area, over EVAL_SCENES scenes from make(rng);
    one click per shape, or its box (boxes=True)."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    pred = SAM2ImagePredictor(model)
    pred._bb_feat_sizes = [(SIZE // 4, SIZE // 4), (SIZE // 8, SIZE // 8), (SIZE // 16, SIZE // 16)]
    rng = np.random.default_rng(seed)
    own, other, area, shape_area, inside, clicks = [], [], [], [], 0, 0

    def iou(a, b):
        return float((a & b).sum() / max(1, (a | b).sum()))

    for _ in range(EVAL_SCENES):
        pixels, masks = make(rng)
        pred.set_image(pixels[0])
        shown = [k for k in range(len(masks)) if masks[k, 0].sum() >= TS.MIN_PIXELS]
        for k in shown:
            ys, xs = np.nonzero(masks[k, 0])
            i = rng.integers(len(xs))
            if boxes:
                out, scores, _ = pred.predict(
                    box=np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]), multimask_output=False
                )
                py, px = (ys.min() + ys.max()) // 2, (xs.min() + xs.max()) // 2
            else:
                out, scores, _ = pred.predict(
                    point_coords=np.array([[xs[i] + 0.5, ys[i] + 0.5]]), point_labels=np.array([1]), multimask_output=True
                )
                py, px = ys[i], xs[i]
            m = out[int(np.argmax(scores))] > 0
            clicks += 1
            inside += bool(m[py, px])
            area.append(float(m.mean()))
            shape_area.append(float(masks[k, 0].mean()))
            own.append(iou(m, masks[k, 0]))
            other += [iou(m, masks[j, 0]) for j in shown if j != k]
    mean = lambda v: f"{np.mean(v):.3f}" if v else "n/a"  # noqa: E731
    what = "box centres" if boxes else "clicks"
    return (f"own IoU {mean(own)}  other {mean(other)}  {what} inside their mask {inside}/{clicks}  "
            f"mask area {mean(area)} of the frame (shapes {mean(shape_area)})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backgrounds", required=True, help="folder of video frames (PNG/JPEG)")
    ap.add_argument("--bg", choices=("grey", "real"), default="grey", help="background of the trained scenes")
    ap.add_argument("--objects", default="2,2", help="min,max shapes per scene")
    ap.add_argument("--kinds", default="0", help="shape kinds: 0 ellipse, 1 rectangle, 2 polygon")
    ap.add_argument("--radius", default="0.06,0.3", help="min,max radius as a share of the side")
    ap.add_argument("--stripes", action="store_true", help="two-colour striped shapes")
    ap.add_argument("--steps", type=int, default=600, help="part-1 steps (0: the calibrated start)")
    ap.add_argument("--frames", type=int, default=128, help="distinct training scenes")
    ap.add_argument("--lr", type=float, default=TS.PROMPT_LR)
    ap.add_argument("--pe-scale", type=float, default=1.0, help="prompt encoder positional frequencies x")
    ap.add_argument("--align", type=float, default=0.0,
                    help="decoder attention with PE on both sides: q and k projections set to one "
                         "orthonormal projection x this gain (0: random as built)")
    ap.add_argument("--feat-scale", type=float, default=1.0, help="FPN neck outputs x (its convs scaled)")
    ap.add_argument("--freeze", default="", help="comma-separated parameter-name substrings also kept frozen")
    ap.add_argument("--plain-start", action="store_true",
                    help="skip train_synthetic's calibration (centred hypernetworks, high-res gain); "
                         "the object-score bias stays")
    ap.add_argument("--centre-neck", action="store_true",
                    help="neck conv biases cancel the trunk outputs' mean over the training scenes")
    ap.add_argument("--grouping", action="store_true",
                    help="print the trunk features' constant / positional / content shares and grouping")
    ap.add_argument("--prompts", choices=("mixed", "boxes", "clicks"), default="mixed",
                    help="training prompts (mixed: train_synthetic's, a third boxes); boxes: evaluated with boxes")
    ap.add_argument("--invisible", action="store_true", help="shapes not drawn: only the prompt shows the target")
    ap.add_argument("--invisible-steps", type=int, default=0,
                    help="the first N steps on undrawn scenes (then drawn ones): --steps counts both")
    ap.add_argument("--best-of-3", action="store_true",
                    help="multimask loss: the lowest of the three masks' losses (SAM's), not their mean")
    ap.add_argument("--grad-norms", type=int, default=0, metavar="N",
                    help="every N steps, print the gradient norm per part of the model (0: never)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help="also write the checkpoint ({'model': state_dict})")
    args = ap.parse_args(argv)
    args.objects = [int(x) for x in args.objects.split(",")]
    args.kinds = [int(x) for x in args.kinds.split(",")]
    args.radius = [float(x) for x in args.radius.split(",")]
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    bgs = TS.load_backgrounds(args.backgrounds)

    model, _ = G.build_model("sam2.1_hiera_t", image_size=SIZE, seed=0)
    model.eval()
    with torch.no_grad():
        G.bias_object_scores(model, TS.TRAIN_OBJECT_SCORE_BIAS)
        if not args.plain_start:
            G.centre_hypernetworks(model)
            G.scale_high_res_features(model, TS.HIGH_RES_GAIN)
        model.sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix.mul_(args.pe_scale)
        if args.align:
            align_decoder_attention(model, args.align)
        for conv in model.image_encoder.neck.convs:
            conv.conv.weight.mul_(args.feat_scale)
            conv.conv.bias.mul_(args.feat_scale)
    if args.steps:
        rng, t0 = np.random.default_rng(0), time.time()
        frames = TS.through_trunk(model, args.frames, lambda: scene(rng, bgs, args))
        print(f"{args.frames} scenes through the trunk in {time.time() - t0:.0f} s", flush=True)
        if args.grouping:
            trunk_grouping(frames[:GROUPING_SCENES])
        if args.centre_neck:
            centre_neck(model, [trunk for trunk, _ in frames])

        undrawn = []
        if args.invisible_steps:
            hidden = argparse.Namespace(**{**vars(args), "invisible": True})
            undrawn = TS.through_trunk(model, args.frames, lambda: scene(rng, bgs, hidden))

        def still(step):
            pool = undrawn if step < args.invisible_steps else frames
            trunk, masks = pool[step % len(pool)]
            return (*TS.features_from_trunk(model, trunk), masks)

        extra = [x for x in args.freeze.split(",") if x]

        def frozen(name):
            return TS.frozen_for_prompts(name) or any(x in name for x in extra)

        if args.best_of_3:
            mean_loss = TS.mask_loss

            def best_loss(logits, target):
                return mean_loss(logits, target).min(dim=-1, keepdim=True).values  # [B, M] -> [B, 1]

            TS.mask_loss = best_loss  # track_loss looks it up at each call
        if args.prompts != "mixed":
            by_kind = TS.prompts_for
            u = 0.0 if args.prompts == "boxes" else 1.0
            TS.prompts_for = lambda rng, masks: by_kind(ForcedPrompt(rng, u), masks)
        report = gradient_report(model, args.grad_norms) if args.grad_norms else None
        TS.train(model, "prompts", args.steps, args.lr, frozen, still, after_backward=report)
    boxes = args.prompts == "boxes"
    print("these scenes:           " + evaluate(model, lambda r: scene(r, bgs, args), 777, boxes), flush=True)
    print("train_synthetic scenes: " + evaluate(model, lambda r: TS.make_clip(r, bgs, SIZE, frames=1), 777, boxes))
    if args.out:
        torch.save({"model": {k: v.detach().clone() for k, v in model.state_dict().items()}}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
