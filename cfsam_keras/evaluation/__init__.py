"""Detection metrics: COCO (pycocotools) and PASCAL VOC (devkit port).

- ``voc_map``: VOC07 11-point or VOC2010+ area mAP, devkit rules.
- ``coco_evaluate``: the 12 COCOeval numbers, original ids and coordinates.
- ``evaluate_detector``: runs a detector over an eval pipeline, both metrics.
- ``EvaluationCallback``: adds ``val_AP``, ``val_AP50``, ... to ``model.fit`` logs.
"""

from cfsam_keras.evaluation.coco_metric import COCO_METRIC_NAMES
from cfsam_keras.evaluation.coco_metric import build_coco_ground_truth
from cfsam_keras.evaluation.coco_metric import coco_evaluate
from cfsam_keras.evaluation.coco_metric import detections_to_coco
from cfsam_keras.evaluation.coco_metric import load_coco_ground_truth
from cfsam_keras.evaluation.detector_eval import collect_detections
from cfsam_keras.evaluation.detector_eval import evaluate_detector
from cfsam_keras.evaluation.evaluation_callback import EvaluationCallback
from cfsam_keras.evaluation.voc_metric import to_devkit_boxes
from cfsam_keras.evaluation.voc_metric import voc_ap
from cfsam_keras.evaluation.voc_metric import voc_map

__all__ = [
    "COCO_METRIC_NAMES",
    "EvaluationCallback",
    "build_coco_ground_truth",
    "coco_evaluate",
    "collect_detections",
    "detections_to_coco",
    "evaluate_detector",
    "load_coco_ground_truth",
    "to_devkit_boxes",
    "voc_ap",
    "voc_map",
]
