"""Drawing detections on an image, with ``keras.visualization``."""

import keras
import numpy as np

from cfsam_keras import BOX_FORMAT


def draw_detections(image, detections, class_names, min_score=0.0, scale=1, color=(255, 32, 32)):
    """An image with its detections drawn: boxes, class names and scores.

    Args:
        image: uint8 ``[H, W, 3]`` RGB.
        detections: dict with ``boxes`` ``[N, 4]`` (rel_xyxy), ``scores`` ``[N]`` and
            ``classes`` ``[N]`` (0-based), as the predictors return them.
        class_names: names of the classes, index = class.
        min_score: detections scoring less are not drawn.
        scale: int >= 1; the image is enlarged this many times (nearest neighbour)
            before drawing, so that labels stay readable on small images.
        color: RGB colour of the boxes.

    Returns:
        uint8 ``[scale * H, scale * W, 3]`` RGB: the image with the detections drawn.

    Example:
    >>> picture = draw_detections(image, predictor.predict(image), predictor.class_names)
    """
    image = np.asarray(image, np.uint8)
    if scale > 1:
        image = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
    keep = np.asarray(detections["scores"]) >= min_score
    if not keep.any():
        return image
    size = min(image.shape[:2])
    drawn = keras.visualization.draw_bounding_boxes(
        image[None],
        {
            "boxes": np.asarray(detections["boxes"], np.float32)[keep][None],
            "labels": np.asarray(detections["classes"])[keep][None],
            "confidences": np.asarray(detections["scores"])[keep][None],
        },
        bounding_box_format=BOX_FORMAT,
        class_mapping=dict(enumerate(class_names)),
        color=color,
        line_thickness=max(1, size // 200),
        font_scale=max(0.35, size / 800),
    )
    return np.asarray(drawn[0]).astype(np.uint8)
