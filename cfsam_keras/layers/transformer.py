"""The pre-norm Transformer encoder layer used by CFSAM's global part."""

import keras
from keras import ops

from cfsam_keras.layers.spatial import adaptive_average_pool


@keras.saving.register_keras_serializable(package="cfsam_keras")
class CrossLevelEncoderLayer(keras.layers.Layer):
    """Pre-norm Transformer encoder layer over a multi-level token sequence.

    `x = x + Dropout(Attention(LN(x)))`, then `x = x + Dropout(MLP(LN(x)))`,
    with a GELU MLP. Multi-head self-attention is written out here rather than
    taken from `keras.layers.MultiHeadAttention` so that the softmax always
    runs in float32 (mixed precision) and so that keys and values can come
    from pooled levels.

    Args:
        embed_dim: int, token width.
        num_heads: int, number of attention heads; must divide `embed_dim`.
        mlp_ratio: float, MLP hidden width as a multiple of `embed_dim`.
        dropout: float in [0, 1), dropout on attention weights and on both
            residual branches.
        kv_pool_size: int or None. If set, keys and values of every level are
            adaptive-average-pooled to at most `kv_pool_size x kv_pool_size`
            tokens while queries keep full resolution. Averaging commutes with
            the linear key/value projections, so the normalised tokens are
            pooled before projecting.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        tokens: tensor `[B, N, embed_dim]`, the levels' tokens concatenated in
            row-major order.
        spatial_shapes: list of `(H_i, W_i)` (ints or scalar tensors) with
            `sum(H_i * W_i) == N`; needed only when `kv_pool_size` is set.
        training: bool, enables dropout.

    Returns:
        tensor `[B, N, embed_dim]`.
    """

    def __init__(
        self,
        embed_dim,
        num_heads,
        mlp_ratio=4.0,
        dropout=0.0,
        kv_pool_size=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if embed_dim % num_heads:
            raise ValueError(
                f"`embed_dim` ({embed_dim}) must be divisible by `num_heads` ({num_heads})."
            )
        self.embed_dim = int(embed_dim)
        self.num_heads = int(num_heads)
        self.mlp_ratio = float(mlp_ratio)
        self.dropout = float(dropout)
        self.kv_pool_size = None if kv_pool_size is None else int(kv_pool_size)
        self.head_dim = self.embed_dim // self.num_heads
        hidden = max(1, int(round(self.embed_dim * self.mlp_ratio)))
        policy = self.dtype_policy
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=1e-6, dtype=policy, name="attention_norm"
        )
        self.query_dense = keras.layers.Dense(self.embed_dim, dtype=policy, name="query")
        self.key_value_dense = keras.layers.Dense(
            2 * self.embed_dim, dtype=policy, name="key_value"
        )
        self.output_dense = keras.layers.Dense(
            self.embed_dim, dtype=policy, name="attention_output"
        )
        self.mlp_norm = keras.layers.LayerNormalization(epsilon=1e-6, dtype=policy, name="mlp_norm")
        self.mlp_hidden = keras.layers.Dense(
            hidden, activation="gelu", dtype=policy, name="mlp_hidden"
        )
        self.mlp_output = keras.layers.Dense(self.embed_dim, dtype=policy, name="mlp_output")
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=policy)

    def build(self, input_shape):
        token_shape = (None, None, self.embed_dim)
        hidden_shape = (None, None, self.mlp_hidden.units)
        self.attention_norm.build(token_shape)
        self.query_dense.build(token_shape)
        self.key_value_dense.build(token_shape)
        self.output_dense.build(token_shape)
        self.mlp_norm.build(token_shape)
        self.mlp_hidden.build(token_shape)
        self.mlp_output.build(hidden_shape)
        self.built = True

    def _pool_tokens(self, tokens, spatial_shapes):
        pooled = []
        start = 0
        for height, width in spatial_shapes:
            count = height * width
            level = tokens[:, start : start + count, :]
            start = start + count
            level = ops.reshape(level, (-1, height, width, self.embed_dim))
            level = adaptive_average_pool(level, self.kv_pool_size)
            pooled.append(ops.reshape(level, (ops.shape(level)[0], -1, self.embed_dim)))
        return ops.concatenate(pooled, axis=1) if len(pooled) > 1 else pooled[0]

    def _split_heads(self, x):
        x = ops.reshape(x, (ops.shape(x)[0], -1, self.num_heads, self.head_dim))
        return ops.transpose(x, (0, 2, 1, 3))  # [B, heads, N, head_dim]

    def call(self, tokens, spatial_shapes=None, training=None):
        normed = self.attention_norm(tokens)
        if self.kv_pool_size is not None:
            if spatial_shapes is None:
                raise ValueError("`spatial_shapes` is required when `kv_pool_size` is set.")
            kv_source = self._pool_tokens(normed, spatial_shapes)
        else:
            kv_source = normed
        query = self._split_heads(self.query_dense(normed))
        key, value = ops.split(self.key_value_dense(kv_source), 2, axis=-1)
        key = self._split_heads(key)
        value = self._split_heads(value)

        query = query * ops.cast(self.head_dim**-0.5, query.dtype)
        scores = ops.matmul(query, ops.transpose(key, (0, 1, 3, 2)))
        weights = ops.softmax(ops.cast(scores, "float32"), axis=-1)
        weights = self.dropout_layer(ops.cast(weights, value.dtype), training=training)
        context = ops.matmul(weights, value)  # [B, heads, N, head_dim]
        context = ops.transpose(context, (0, 2, 1, 3))
        context = ops.reshape(context, (ops.shape(context)[0], -1, self.embed_dim))
        x = tokens + self.dropout_layer(self.output_dense(context), training=training)
        hidden = self.mlp_hidden(self.mlp_norm(x))
        hidden = self.dropout_layer(hidden, training=training)
        return x + self.dropout_layer(self.mlp_output(hidden), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "embed_dim": self.embed_dim,
                "num_heads": self.num_heads,
                "mlp_ratio": self.mlp_ratio,
                "dropout": self.dropout,
                "kv_pool_size": self.kv_pool_size,
            }
        )
        return config
