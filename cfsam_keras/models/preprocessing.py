"""Input preprocessing layers that live inside the model.

The SSD300 model takes RGB images with values in [0, 255]; the preprocessing its weights
were trained with is a layer of the model (never a ``Lambda``), so a saved model carries
it, and a model converted from another framework takes the same input as every other.
"""

import keras
from keras import ops

# ImageNet channel means in BGR order, as keras.applications' "caffe" preprocessing uses.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)

#: mode -> (channel order the weights expect, scale, per-channel offset in that order):
#: ``y = channels(x) * scale + offset`` for RGB input ``x`` in [0, 255].
PREPROCESSING = {
    # keras.applications.VGG16 (the Caffe VGG16 of Simonyan and Zisserman): BGR - mean.
    "caffe": ("bgr", 1.0, tuple(-m for m in CAFFE_BGR_MEAN)),
    # ssd.pytorch (and its vgg16_reducedfc.pth): OpenCV's BGR minus (104, 117, 123).
    "ssd.pytorch": ("bgr", 1.0, (-104.0, -117.0, -123.0)),
    # torchvision's ssd300_vgg16: (x / 255 - mean) / std, mean (0.48235, 0.45882,
    # 0.40784), std 1 / 255, i.e. RGB minus 255 * mean.
    "torchvision": ("rgb", 1.0, (-0.48235 * 255.0, -0.45882 * 255.0, -0.40784 * 255.0)),
    # keras.applications' "tf" mode (MobileNetV2; our small_vgg): to [-1, 1].
    "tf": ("rgb", 1.0 / 127.5, (-1.0, -1.0, -1.0)),
}


@keras.saving.register_keras_serializable(package="cfsam_keras")
class InputPreprocessing(keras.layers.Layer):
    """RGB [0, 255] to what a backbone's weights expect, by name (``PREPROCESSING``).

    Args:
        mode: ``"caffe"`` (BGR minus the ImageNet mean, as
            ``keras.applications.vgg16.preprocess_input``), ``"ssd.pytorch"`` (BGR
            minus (104, 117, 123)), ``"torchvision"`` (RGB minus 255 x (0.48235,
            0.45882, 0.40784)) or ``"tf"`` (to [-1, 1]).

    Call arguments:
        images: float tensor ``[..., 3]``, RGB, values in [0, 255].

    Returns:
        Float tensor of the same shape, in the channel order and range of ``mode``.

    Example:
    >>> layer = InputPreprocessing("torchvision")
    >>> layer(np.full((1, 2, 2, 3), 128.0, "float32")).shape
    TensorShape([1, 2, 2, 3])
    """

    def __init__(self, mode="caffe", **kwargs):
        super().__init__(**kwargs)
        if mode not in PREPROCESSING:
            raise ValueError(
                f"preprocessing mode {mode!r} is unknown; expected one of {sorted(PREPROCESSING)}"
            )
        self.mode = mode

    def call(self, images):
        order, scale, offset = PREPROCESSING[self.mode]
        images = ops.cast(images, self.compute_dtype)
        if order == "bgr":
            images = ops.flip(images, axis=-1)
        if scale != 1.0:
            images = images * ops.cast(scale, self.compute_dtype)
        return images + ops.convert_to_tensor(offset, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="cfsam_keras")
class CaffePreprocessing(InputPreprocessing):
    """``InputPreprocessing("caffe")``, under the name models saved before 2026-12 use.

    Example:
    >>> CaffePreprocessing()(np.full((1, 2, 2, 3), 128.0, "float32")).shape
    TensorShape([1, 2, 2, 3])
    """

    def __init__(self, mode="caffe", **kwargs):
        if mode != "caffe":
            raise ValueError(f"CaffePreprocessing has mode 'caffe' only; got {mode!r}")
        super().__init__(mode="caffe", **kwargs)
