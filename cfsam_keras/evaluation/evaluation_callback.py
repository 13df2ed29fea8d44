"""A ``model.fit`` callback that scores the detector on a validation set."""

import math
import os

import keras
import tensorflow as tf

from cfsam_keras.defaults import MAX_DETECTIONS
from cfsam_keras.defaults import NMS_IOU_THRESHOLD
from cfsam_keras.defaults import SCORE_THRESHOLD
from cfsam_keras.evaluation.detector_eval import evaluate_detector
from cfsam_keras.models import detector
from cfsam_keras.validation import positive_int

#: COCO numbers the callback logs (the AR ones are left to full evaluations).
LOGGED_COCO_METRICS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")
#: Log keys the callback adds, without the prefix.
LOGGED_KEYS = LOGGED_COCO_METRICS + ("voc_map", "voc_map_area")


def logged_metrics(results):
    """The `LOGGED_KEYS` of an ``evaluate_detector`` result, as floats."""
    values = {name: results["coco"][name] for name in LOGGED_COCO_METRICS}
    values["voc_map"] = results["voc_map"]
    values["voc_map_area"] = results["voc_map_area"]
    return {k: float(v) for k, v in values.items()}


class EvaluationCallback(keras.callbacks.Callback):
    """Adds COCO AP and VOC mAP of the model being trained to the epoch logs.

    Every ``every_n_epochs`` epochs it runs the detector over the validation
    set (outside the training graph) and adds ``val_AP``, ``val_AP50``,
    ``val_AP75``, ``val_AP_small``, ``val_AP_medium``, ``val_AP_large``,
    ``val_voc_map`` (VOC07 11-point) and ``val_voc_map_area`` (VOC2010+) to
    ``logs``; on the other epochs these keys hold NaN, so ``CSVLogger`` keeps
    fixed columns. Callbacks after it in the ``callbacks`` list see the keys:
    put it before ``CSVLogger``, ``ModelCheckpoint(monitor="val_AP50",
    mode="max")``, ``EarlyStopping`` and ``TensorBoard``.

    The detector is built once with ``cfsam_keras.models.detector`` around the
    training model and shares its weights, so each evaluation uses the current
    weights at no rebuilding cost.

    Args:
        model: the SSD model being trained, a detector built on it, or any
            callable returning the detector dict. None: the model ``fit`` is
            called on.
        val_data: a ``cfsam_keras.data`` source or an eval pipeline dataset.
        every_n_epochs: evaluate after epochs ``n, 2n, ...`` (and never
            more often).
        batch_size: batch size of the eval pipeline built from a source.
        score_threshold, iou_threshold, max_detections: passed to
            ``cfsam_keras.models.detector`` when the callback wraps a model.
        log_dir: if given, the numbers are also written as TensorBoard scalars
            to ``log_dir/evaluation``.
        prefix: prefix of the log keys.
        verbose: 1 prints one line per evaluation.
        **evaluate_kwargs: more arguments for ``evaluate_detector`` (e.g.
            ``max_images``, ``input_size``, ``coco_gt``).

    Attributes:
        last_results: ``evaluate_detector``'s dict of the latest evaluation.
        last_epoch: the (0-based) epoch after which ``fit`` ran that evaluation;
            None before any, or when the latest was a direct ``evaluate()`` call.

    Example:
    >>> model.fit(train_ds, epochs=12, callbacks=[
    ...     EvaluationCallback(val_data=cfsam_keras.data.coco(ann, images), every_n_epochs=2),
    ...     keras.callbacks.ModelCheckpoint("best.keras", monitor="val_AP50", mode="max",
    ...                                     save_best_only=True)])
    """

    def __init__(
        self,
        model=None,
        val_data=None,
        every_n_epochs=1,
        batch_size=8,
        score_threshold=SCORE_THRESHOLD,
        iou_threshold=NMS_IOU_THRESHOLD,
        max_detections=MAX_DETECTIONS,
        log_dir=None,
        prefix="val_",
        verbose=0,
        **evaluate_kwargs,
    ):
        super().__init__()
        if val_data is None:
            raise ValueError("val_data is required: a cfsam_keras.data source or eval dataset.")
        positive_int(every_n_epochs, "every_n_epochs")
        self._given = model
        self._detector = None
        self.val_data = val_data
        self.every_n_epochs = every_n_epochs
        self.batch_size = batch_size
        self.detector_kwargs = {
            "score_threshold": score_threshold,
            "iou_threshold": iou_threshold,
            "max_detections": max_detections,
        }
        self.log_dir = log_dir
        self.prefix = prefix
        self.verbose = verbose
        self.evaluate_kwargs = evaluate_kwargs
        self._writer = None
        self.last_results = None
        self.last_epoch = None

    def _build_detector(self):
        target = self._given if self._given is not None else self.model
        if target is None:
            raise ValueError("EvaluationCallback has no model: pass one or use it in fit().")
        if isinstance(target, keras.Model) and not isinstance(target.output, dict):
            return detector(target, **self.detector_kwargs)
        return target

    @property
    def detector(self):
        """The detector evaluated (built on first use, sharing the model's weights)."""
        if self._detector is None:
            self._detector = self._build_detector()
        return self._detector

    def evaluate(self):
        """Runs one evaluation now; returns ``evaluate_detector``'s dict."""
        kwargs = dict(self.evaluate_kwargs)
        kwargs.setdefault("batch_size", self.batch_size)
        self.last_results = evaluate_detector(self.detector, self.val_data, **kwargs)
        self.last_epoch = None
        return self.last_results

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if (epoch + 1) % self.every_n_epochs:
            logs.update({self.prefix + k: math.nan for k in LOGGED_KEYS})
            return
        values = logged_metrics(self.evaluate())
        self.last_epoch = epoch
        logs.update({self.prefix + k: float(v) for k, v in values.items()})
        if self.log_dir:
            self._write_scalars(values, epoch)
        if self.verbose:
            shown = " - ".join(f"{self.prefix}{k}: {v:.4f}" for k, v in values.items())
            print(f"Epoch {epoch + 1}: evaluation - {shown}")

    def _write_scalars(self, values, epoch):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "evaluation"))
        with self._writer.as_default():
            for name, value in values.items():
                tf.summary.scalar(name, value, step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
