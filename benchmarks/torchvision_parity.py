"""Our `from_torchvision` against a real torchvision ``ssd300_vgg16``: a one-off check.

Needs torch and torchvision, which this project does not install, so it runs in two
steps, each in its own Python (they may be the same one if it has both):

    # 1. in a Python with torch + torchvision: a seeded model, an image, its outputs
    python benchmarks/torchvision_parity.py torch --out /tmp/parity
    # 2. in this project's Python: convert, compare raw outputs, boxes and detections
    python benchmarks/torchvision_parity.py keras --out /tmp/parity

The torchvision model has random weights (``weights=None``), its class head rescaled so
that its scores spread as a trained detector's (logits of standard deviation 2, the
background favoured). Step 2 prints the largest differences of the raw outputs and the
default boxes, and how many of torchvision's 200 detections ours reproduce: once with
our post-processing (which clips boxes after NMS) and once with torchvision's order
(clip, then NMS) applied to our raw outputs.
"""

import argparse
import os
import sys

import numpy as np


def torch_side(out):
    import torch  # noqa: PLC0415 (not a dependency of the project)
    import torchvision  # noqa: PLC0415

    torch.manual_seed(0)
    model = torchvision.models.detection.ssd300_vgg16(weights=None, weights_backbone=None)
    model.eval()
    image = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    x = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
    with torch.no_grad():
        images, _ = model.transform([x])
        features = list(model.backbone(images.tensors).values())
        std = float(model.head(features)["cls_logits"].std())
        for conv in model.head.classification_head.module_list:
            conv.weight.mul_(2.0 / std)
            conv.bias.mul_(2.0 / std)
            conv.bias.view(-1, 91)[:, 0] += 5.0
        head = model.head(features)
        detections = model([x])[0]
    np.savez(
        os.path.join(out, "state.npz"), **{k: v.numpy() for k, v in model.state_dict().items()}
    )
    np.savez(
        os.path.join(out, "outputs.npz"),
        image=image,
        bbox_regression=head["bbox_regression"].numpy()[0],
        cls_logits=head["cls_logits"].numpy()[0],
        anchors=model.anchor_generator(images, features)[0].numpy(),
        **{k: v.numpy() for k, v in detections.items()},
    )
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}: wrote {out}")


def _matched(reference, boxes, scores, classes):
    """How many reference detections have a same-class, same-score (1e-4) box of IoU >= 0.999."""
    a, b = reference["boxes"][:, None], boxes[None]
    overlap = np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2])
    inter = np.prod(np.clip(overlap, 0, None), -1)
    area = lambda x: np.prod(x[..., 2:] - x[..., :2], -1)  # noqa: E731
    iou = inter / (area(a) + area(b) - inter)
    same = (reference["labels"][:, None] == classes[None]) & (
        np.abs(reference["scores"][:, None] - scores[None]) < 1e-4
    )
    return int((np.where(same, iou, 0).max(1) >= 0.999).sum())


def _clip_then_nms(raw, anchors, size=300):
    """torchvision's postprocess_detections on our raw outputs (decode, clip, NMS)."""
    import tensorflow as tf  # noqa: PLC0415

    a = anchors.astype(np.float64) * size
    raw = raw.astype(np.float64)
    limit = np.log(1000.0 / 16)
    w = a[:, 2] * np.exp(np.minimum(raw[:, 2] * 0.2, limit))
    h = a[:, 3] * np.exp(np.minimum(raw[:, 3] * 0.2, limit))
    cx, cy = a[:, 0] + raw[:, 0] * 0.1 * a[:, 2], a[:, 1] + raw[:, 1] * 0.1 * a[:, 3]
    boxes = np.clip(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1), 0, size)
    logits = raw[:, 4:]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    kept = []
    for c in range(1, p.shape[1]):
        keep = np.where(p[:, c] > 0.01)[0]
        keep = keep[np.argsort(-p[keep, c])][:400]
        yxyx = boxes[keep][:, [1, 0, 3, 2]].astype(np.float32)
        chosen = tf.image.non_max_suppression(yxyx, p[keep, c].astype(np.float32), 400, 0.45)
        kept += [(p[i, c], c, boxes[i]) for i in keep[chosen.numpy()]]
    kept.sort(key=lambda t: -t[0])
    kept = kept[:200]
    scores, classes, boxes = (np.array(column) for column in zip(*kept))
    return boxes, scores, classes


def keras_side(out):
    import cfsam_keras  # noqa: F401, PLC0415 (registers the layers)
    from cfsam_keras.models import detector  # noqa: PLC0415
    from cfsam_keras.models import from_torchvision  # noqa: PLC0415
    from cfsam_keras.models import model_default_boxes  # noqa: PLC0415

    reference = dict(np.load(os.path.join(out, "outputs.npz")))
    model = from_torchvision(os.path.join(out, "state.npz"), unused_slots="keep")
    image = reference["image"][None].astype(np.float32)
    raw = np.asarray(model(image))[0]
    for name, ours, theirs in (
        ("box offsets", raw[:, :4], reference["bbox_regression"]),
        ("class logits", raw[:, 4:], reference["cls_logits"]),
    ):
        print(f"raw {name}: max |ours - torchvision| / max |torchvision| = "
              f"{np.abs(ours - theirs).max() / np.abs(theirs).max():.1e}")  # fmt: skip
    anchors = model_default_boxes(model)
    centres, sizes = anchors[:, :2], anchors[:, 2:]
    xyxy = np.concatenate([centres - sizes / 2, centres + sizes / 2], 1)
    print(f"default boxes: max |diff| = {np.abs(xyxy - reference['anchors'] / 300).max():.1e}")
    found = detector(model).predict_on_batch(image)
    n = int(found["num_detections"][0])
    ours = (
        np.asarray(found["boxes"][0, :n]) * 300,
        np.asarray(found["scores"][0, :n]),
        np.asarray(found["classes"][0, :n]) + 1,
    )
    total = len(reference["boxes"])
    print(f"detections, our post-processing (clip after NMS): {_matched(reference, *ours)} "
          f"of torchvision's {total} reproduced")  # fmt: skip
    theirs = _clip_then_nms(raw, anchors)
    print(f"detections, torchvision's order (clip, then NMS) on our raw outputs: "
          f"{_matched(reference, *theirs)} of {total}")  # fmt: skip


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("side", choices=("torch", "keras"), help="which step to run")
    p.add_argument("--out", required=True, help="folder the torch step writes, the keras reads")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    (torch_side if args.side == "torch" else keras_side)(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
