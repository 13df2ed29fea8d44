"""CFSAM: the Cross-Layer Feature Self-Attention Module."""

import keras
from keras import ops

from cfsam_keras.layers.batch_normalization import BatchNormalization
from cfsam_keras.layers.multi_level import MultiLevelLayer
from cfsam_keras.layers.spatial import sine_position_encoding
from cfsam_keras.layers.transformer import CrossLevelEncoderLayer

POSITIONS = ("sine", "learned", None)
FUSIONS = ("residual", "concat")


def _positive_int(value, name, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive int; received {value!r}.")
    return value


@keras.saving.register_keras_serializable(package="cfsam_keras")
class CFSAM(MultiLevelLayer):
    """Cross-Layer Feature Self-Attention Module (arXiv 2510.14726).

    Takes a list of n >= 1 feature maps `F_i` of shape `[B, H_i, W_i, C_i]`
    (for SSD300, its six source maps) and returns a list of maps with exactly
    the input shapes and dtypes, in which every location has attended to every
    location of every level. Three parts:

    1. **Local feature extractor**, per level: 3x3 conv (`local_channels`
       wide) + BatchNorm + ReLU, then a 1x1 conv to the common width
       `embed_dim`.
    2. **Global modelling unit**: every level is flattened to `H_i * W_i`
       tokens and the levels are concatenated into one sequence; a position
       encoding and a learned per-level embedding are added, and `num_layers`
       pre-norm Transformer encoder layers (multi-head self-attention over the
       whole sequence, then a GELU MLP) run on it, followed by a final
       LayerNorm. Attention therefore crosses levels.
    3. **Fusion**: the sequence is split back per level, reshaped to
       `H_i x W_i` and brought back to `C_i` channels by a 1x1 conv, then
       fused with `F_i`.

    With `fusion="residual"` the output is `F_i + s_i * G_i` with a learnable
    scalar `s_i` per level initialised to zero, so a freshly built module is
    the identity and cannot hurt a pretrained detector.

    Args:
        embed_dim: int, common token width C of the global part (default 256).
        num_heads: int, attention heads; must divide `embed_dim`.
        num_layers: int >= 1, number of Transformer encoder layers.
        mlp_ratio: float > 0, MLP hidden width as a multiple of `embed_dim`.
        dropout: float in [0, 1), dropout on attention weights and on the
            encoder's residual branches.
        local_channels: int or None, width of the local 3x3 conv; defaults to
            `embed_dim`.
        kv_pool_size: int or None. If set to `s`, keys and values of every
            level larger than `s x s` are average-pooled (adaptive pooling) to
            `s x s` while queries keep full resolution, which cuts the
            attention cost from O(N^2) to O(N * n * s^2) for N tokens.
        position: `"sine"` (2-D sinusoidal, computed at call time so spatial
            sizes may be unknown until then; needs `embed_dim % 4 == 0`),
            `"learned"` (one learned embedding per token; needs static spatial
            sizes at build time) or `None` (only the per-level embedding).
        fusion: `"residual"` (zero-initialised per-level scale, see above) or
            `"concat"` (concatenate `F_i` with the projected global features
            and project back to `C_i` with a 1x1 conv).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        features: list of n tensors `[B, H_i, W_i, C_i]`. The number of levels
            and their channels must stay those the layer was built with.
        training: bool, training mode for BatchNorm and dropout.

    Returns:
        list of n tensors with the shapes and dtypes of `features`.

    Example:
    >>> import numpy as np
    >>> maps = [np.ones((2, 8, 8, 16), "float32"), np.ones((2, 4, 4, 32), "float32")]
    >>> outputs = CFSAM(embed_dim=32, num_heads=4)(maps)
    >>> [tuple(o.shape) for o in outputs]
    [(2, 8, 8, 16), (2, 4, 4, 32)]
    """

    def __init__(
        self,
        embed_dim=256,
        num_heads=8,
        num_layers=1,
        mlp_ratio=4.0,
        dropout=0.0,
        local_channels=None,
        kv_pool_size=None,
        position="sine",
        fusion="residual",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.embed_dim = _positive_int(embed_dim, "embed_dim")
        self.num_heads = _positive_int(num_heads, "num_heads")
        if embed_dim % num_heads:
            raise ValueError(
                f"`embed_dim` ({embed_dim}) must be divisible by `num_heads` ({num_heads})."
            )
        self.num_layers = _positive_int(num_layers, "num_layers")
        if not mlp_ratio > 0:
            raise ValueError(f"`mlp_ratio` must be > 0; received {mlp_ratio!r}.")
        self.mlp_ratio = float(mlp_ratio)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1); received {dropout!r}.")
        self.dropout = float(dropout)
        self.local_channels = _positive_int(local_channels, "local_channels", allow_none=True)
        self.kv_pool_size = _positive_int(kv_pool_size, "kv_pool_size", allow_none=True)
        if position not in POSITIONS:
            raise ValueError(f"`position` must be one of {POSITIONS}; received {position!r}.")
        if position == "sine" and embed_dim % 4:
            raise ValueError(
                "`position='sine'` needs `embed_dim` divisible by 4; received "
                f"embed_dim={embed_dim}."
            )
        self.position = position
        if fusion not in FUSIONS:
            raise ValueError(f"`fusion` must be one of {FUSIONS}; received {fusion!r}.")
        self.fusion = fusion

        policy = self.dtype_policy
        self.encoder_layers = [
            CrossLevelEncoderLayer(
                self.embed_dim,
                self.num_heads,
                mlp_ratio=self.mlp_ratio,
                dropout=self.dropout,
                kv_pool_size=self.kv_pool_size,
                dtype=policy,
                name=f"encoder_layer_{i}",
            )
            for i in range(self.num_layers)
        ]
        self.final_norm = keras.layers.LayerNormalization(
            epsilon=1e-6, dtype=policy, name="final_norm"
        )

    def build_levels(self, shapes):
        policy = self.dtype_policy
        width = self.local_channels or self.embed_dim
        if self.position == "learned":
            for i, shape in enumerate(shapes):
                if shape[1] is None or shape[2] is None:
                    raise ValueError(
                        f"CFSAM '{self.name}': `position='learned'` needs "
                        f"static spatial sizes; level {i} has shape {shape}. "
                        "Use position='sine' for sizes known only at call time."
                    )
        self.local_convs, self.local_norms, self.local_projections = [], [], []
        self.fusion_projections, self.fusion_convs = [], []
        self.position_embeddings = []
        for i, shape in enumerate(shapes):
            channels = int(shape[-1])
            map_shape = (None, shape[1], shape[2], channels)
            conv = keras.layers.Conv2D(
                width,
                3,
                padding="same",
                use_bias=False,
                dtype=policy,
                name=f"local_conv_{i}",
            )
            conv.build(map_shape)
            norm = BatchNormalization(dtype=policy, name=f"local_norm_{i}")
            norm.build(map_shape[:3] + (width,))
            projection = keras.layers.Conv2D(
                self.embed_dim, 1, dtype=policy, name=f"local_projection_{i}"
            )
            projection.build(map_shape[:3] + (width,))
            fusion_projection = keras.layers.Conv2D(
                channels, 1, dtype=policy, name=f"fusion_projection_{i}"
            )
            fusion_projection.build(map_shape[:3] + (self.embed_dim,))
            self.local_convs.append(conv)
            self.local_norms.append(norm)
            self.local_projections.append(projection)
            self.fusion_projections.append(fusion_projection)
            if self.fusion == "concat":
                fusion_conv = keras.layers.Conv2D(
                    channels, 1, dtype=policy, name=f"fusion_conv_{i}"
                )
                fusion_conv.build(map_shape[:3] + (2 * channels,))
                self.fusion_convs.append(fusion_conv)
            if self.position == "learned":
                self.position_embeddings.append(
                    self.add_weight(
                        shape=(int(shape[1]) * int(shape[2]), self.embed_dim),
                        initializer=keras.initializers.TruncatedNormal(stddev=0.02),
                        name=f"position_embedding_{i}",
                    )
                )
        self.level_embedding = self.add_weight(
            shape=(len(shapes), self.embed_dim),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="level_embedding",
        )
        if self.fusion == "residual":
            self.fusion_scale = self.add_weight(
                shape=(len(shapes),), initializer="zeros", name="fusion_scale"
            )
        for layer in self.encoder_layers:
            layer.build((None, None, self.embed_dim))
        self.final_norm.build((None, None, self.embed_dim))

    def _check_learned_sizes(self, features):
        for i, x in enumerate(features):
            expected = self.position_embeddings[i].shape[0]
            height, width = x.shape[1], x.shape[2]
            if height is not None and width is not None and height * width != expected:
                raise ValueError(
                    f"CFSAM '{self.name}' with position='learned' was built for "
                    f"{expected} positions on level {i}; received a "
                    f"{height}x{width} map."
                )

    def call(self, features, training=None):
        if self.position == "learned":
            self._check_learned_sizes(features)
        compute_dtype = self.compute_dtype
        level_embedding = ops.cast(self.level_embedding, compute_dtype)
        spatial_shapes, tokens = [], []
        for i, x in enumerate(features):
            shape = ops.shape(x)
            height, width = shape[1], shape[2]
            spatial_shapes.append((height, width))
            local = self.local_convs[i](self._to_compute(x))
            local = ops.relu(self.local_norms[i](local, training=training))
            local = self.local_projections[i](local)
            level_tokens = ops.reshape(local, (-1, height * width, self.embed_dim))
            level_tokens = level_tokens + level_embedding[i]
            if self.position == "sine":
                encoding = sine_position_encoding(height, width, self.embed_dim)
                level_tokens = level_tokens + ops.cast(encoding, compute_dtype)
            elif self.position == "learned":
                level_tokens = level_tokens + ops.cast(self.position_embeddings[i], compute_dtype)
            tokens.append(level_tokens)
        sequence = ops.concatenate(tokens, axis=1) if len(tokens) > 1 else tokens[0]
        for layer in self.encoder_layers:
            sequence = layer(sequence, spatial_shapes=spatial_shapes, training=training)
        sequence = self.final_norm(sequence)

        outputs = []
        start = 0
        for i, (x, (height, width)) in enumerate(zip(features, spatial_shapes)):
            count = height * width
            level = sequence[:, start : start + count, :]
            start = start + count
            level = ops.reshape(level, (-1, height, width, self.embed_dim))
            level = self.fusion_projections[i](level)
            if self.fusion == "residual":
                scale = ops.cast(self.fusion_scale[i], level.dtype)
                # Added in the input's dtype: a zero scale returns x exactly.
                fused = x + ops.cast(scale * level, x.dtype)
            else:
                merged = ops.concatenate([self._to_compute(x), level], axis=-1)
                fused = ops.cast(self.fusion_convs[i](merged), x.dtype)
            outputs.append(fused)
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "embed_dim": self.embed_dim,
                "num_heads": self.num_heads,
                "num_layers": self.num_layers,
                "mlp_ratio": self.mlp_ratio,
                "dropout": self.dropout,
                "local_channels": self.local_channels,
                "kv_pool_size": self.kv_pool_size,
                "position": self.position,
                "fusion": self.fusion,
            }
        )
        return config
