"""Input preprocessing layers that live inside the model.

The SSD300 model takes RGB images with values in [0, 255]; each backbone then applies the
preprocessing its ImageNet weights were trained with, as a layer (never a ``Lambda``), so a
saved model carries it.
"""

import keras
from keras import ops

# ImageNet channel means in BGR order, as keras.applications' "caffe" preprocessing uses.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="cfsam_keras")
class CaffePreprocessing(keras.layers.Layer):
    """RGB [0, 255] to BGR minus the ImageNet mean ("caffe" mode).

    Does what ``keras.applications.vgg16.preprocess_input`` does, inside the graph.

    Call arguments:
        images: float tensor ``[..., 3]``, RGB, values in [0, 255].

    Returns:
        Float tensor of the same shape, BGR channels with the ImageNet mean removed.

    Example:
    >>> layer = CaffePreprocessing()
    >>> layer(np.full((1, 2, 2, 3), 128.0, "float32")).shape
    TensorShape([1, 2, 2, 3])
    """

    def call(self, images):
        images = ops.cast(images, self.compute_dtype)
        bgr = ops.flip(images, axis=-1)
        return bgr - ops.convert_to_tensor(CAFFE_BGR_MEAN, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


def mobilenet_preprocessing(name="preprocessing"):
    """RGB [0, 255] to [-1, 1], as ``keras.applications.mobilenet_v2.preprocess_input``."""
    return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name=name)
