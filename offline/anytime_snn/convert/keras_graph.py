"""Keras model -> bundle layers (before normalization).

Walks a Sequential model, or a functional model that is a chain with identity shortcuts joined by
``Add`` (ResNet-style), and builds bundle layers:

* ``Dense`` / ``Conv2D`` / ``DepthwiseConv2D`` (depth multiplier 1) become weighted layers; a missing
  bias becomes zeros; a fused ``relu`` activation is accepted;
* ``BatchNormalization`` right after one of them is folded into its kernel and bias (exactly);
* ``ReLU`` / ``Activation('relu')`` mark the preceding weighted layer as rectified (spiking neurons
  only represent non-negative rates, so every hidden weighted layer must be rectified);
* ``AveragePooling2D`` and ``GlobalAveragePooling2D`` become depthwise convolutions with kernel
  1/area, so they can carry per-channel scales (paper 5.2);
* ``Flatten`` is kept; ``Dropout`` (and other inference-time identities) is dropped;
* ``ZeroPadding2D`` becomes ``zero_pad2d`` (on the input image, or after a ReLU, so padded zeros are
  zero activations); ``MaxPooling2D`` / ``GlobalMaxPooling2D`` become the spiking ``max_pool2d``
  (after a ReLU layer; the layer feeding it keeps one scale per layer in normalization);
* ``Add`` of a weighted branch (Dense/Conv2D/DepthwiseConv2D, optional BatchNormalization, no
  activation yet) and an identity shortcut from an earlier rectified tensor of the same shape makes
  that weighted layer a residual join (``skip`` = the shortcut's layer, ``skip_weights`` = ones); the
  ReLU after the ``Add`` rectifies the join. Other branches (projection shortcuts, Concatenate,
  shared layers) are refused;
* a leading ``Rescaling`` becomes the bundle's input mean/std;
* the last weighted layer (linear or softmax) becomes the accumulate-only output layer.

Anything else raises :class:`ConfigError` naming the layer and what to use instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..model.layers import Layer

_IDENTITY = {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
             "GaussianNoise", "AlphaDropout", "ActivityRegularization", "InputLayer"}
_REPLACEMENTS = {
    "LeakyReLU": "ReLU (spiking neurons cannot represent negative activations)",
    "PReLU": "ReLU", "ELU": "ReLU",
    "Concatenate": "a chain of layers, or Add with an identity shortcut",
    "Subtract": "Add with an identity shortcut", "Average": "Add with an identity shortcut",
    "Multiply": "Add with an identity shortcut",
    "MaxPooling1D": "MaxPooling2D", "MaxPooling3D": "MaxPooling2D",
    "LayerNormalization": "BatchNormalization (which folds into the preceding layer)",
    "Conv1D": "Conv2D", "Conv2DTranspose": "Conv2D with strides", "SeparableConv2D":
        "DepthwiseConv2D followed by a 1x1 Conv2D (each with BatchNormalization and ReLU)",
}


@dataclass
class ParsedModel:
    """Layers ready for normalization, the input preprocessing and what was done to get there."""

    layers: list[Layer]
    input_shape: tuple[int, ...]
    mean: float = 0.0
    std: float = 1.0
    rectified: list[bool] = field(default_factory=list)  # per layer: output passes through ReLU (or is flatten)
    notes: list[str] = field(default_factory=list)


def _class(layer) -> str:
    return type(layer).__name__


def _activation_name(layer) -> str:
    act = getattr(layer, "activation", None)
    if act is None:
        return "linear"
    name = getattr(act, "__name__", None) or str(act)
    return name


def _graph(model) -> tuple[list, list[list[str]], set[str]]:
    """(layers without InputLayer, each one's input layer names, the names that mean the network input)."""
    import keras

    if isinstance(model, keras.Sequential):
        layers = list(model.layers)
        return layers, [["<input>"]] + [[l.name] for l in layers[:-1]], {"<input>"}
    inputs = {layer.name for layer in model.layers if _class(layer) == "InputLayer"}
    layers = [layer for layer in model.layers if _class(layer) != "InputLayer"]
    parents = []
    for layer in layers:
        nodes = getattr(layer, "_inbound_nodes", [])
        if len(nodes) != 1:
            raise ConfigError(f"layer {layer.name!r} ({_class(layer)}) is called {len(nodes)} times; shared layers "
                              "cannot be converted (use one layer per call)")
        parents.append([t._keras_history.operation.name for t in nodes[0].input_tensors])
    return layers, parents, inputs


def parse_keras(model, *, input_mean: float | None = None, input_std: float | None = None) -> ParsedModel:
    """Translate ``model`` into bundle layers (see the module docstring for the rules)."""
    in_shape = tuple(int(d) for d in model.input_shape[1:])
    if len(in_shape) not in (1, 3):
        raise ConfigError(f"model input must be (features,) or (H, W, C), got {in_shape}")
    parsed = ParsedModel(layers=[], input_shape=in_shape)
    shape = in_shape
    layers, parents, input_names = _graph(model)
    # Which bundle layer (-1: the network input) and which version of it every Keras tensor is: a
    # BatchNormalization fold, a ReLU or a residual join changes what a bundle layer computes, so a
    # tensor taken before that (a branch) no longer matches it and is refused.
    tensor_of: dict[str, tuple[int, int]] = {name: (-1, 0) for name in input_names}
    versions: list[int] = []

    def tip() -> tuple[int, int]:
        return (len(parsed.layers) - 1, versions[-1] if versions else 0)

    def touch() -> None:  # the tip layer now computes something else
        versions[-1] += 1
    last_weighted = max((i for i, layer in enumerate(layers)
                         if _class(layer) in ("Dense", "Conv2D", "DepthwiseConv2D")), default=None)
    if last_weighted is None:
        raise ConfigError("the model has no Dense/Conv2D layer to convert")
    pending_bn_target: Layer | None = None
    names: set[str] = set()
    finished = False  # after the output layer only identities, flatten and softmax may follow

    def unique(name: str) -> str:
        base, k = name.replace("/", "_") or "layer", 1
        while name in names:
            k += 1
            name = f"{base}_{k}"
        names.add(name)
        return name

    for i, k_layer in enumerate(layers):
        cls = _class(k_layer)
        where = f"layer {k_layer.name!r} ({cls})"
        out_shape = tuple(int(d) for d in k_layer.output.shape[1:]) if hasattr(k_layer, "output") else shape
        sources = [tensor_of.get(p) for p in parents[i]]
        if any(src is None for src in sources):
            raise ConfigError(f"{where}: an input of this layer comes from a layer that was not converted")
        n_before = len(parsed.layers)
        if cls == "Add":
            _join(parsed, sources, tip(), versions, where, k_layer)
            touch()
            pending_bn_target = None
            tensor_of[k_layer.name] = tip()
            shape = out_shape
            continue
        if len(sources) != 1 or sources[0] != tip():
            raise ConfigError(f"{where} takes its input from a branch of the model; only a single chain with identity "
                              "shortcuts joined by Add (after the branch's last Dense/Conv2D/BatchNormalization) can "
                              "be converted")
        tensor_of[k_layer.name] = tip()  # identities and preprocessing; updated below if the layer changes the tip
        if cls in _IDENTITY:
            parsed.notes.append(f"removed {k_layer.name} ({cls}: identity at inference)")
            continue
        if cls == "Rescaling":
            if parsed.layers:
                raise ConfigError(f"{where}: Rescaling is only supported as the first layer (input preprocessing)")
            scale, offset = np.asarray(k_layer.scale, np.float64), np.asarray(k_layer.offset, np.float64)
            if scale.size != 1 or offset.size != 1 or float(scale) <= 0:
                raise ConfigError(f"{where}: only a positive scalar scale and scalar offset are supported")
            parsed.std = 1.0 / float(scale)
            parsed.mean = -float(offset) / float(scale)
            parsed.notes.append(f"{k_layer.name}: input = (pixel - {parsed.mean:g}) / {parsed.std:g}")
            continue
        if finished and cls not in ("Softmax", "Flatten", "Activation"):
            raise ConfigError(f"{where} follows the output layer; only Softmax may follow the last weighted layer")
        if cls in ("Dense", "Conv2D", "DepthwiseConv2D"):
            layer = _weighted(k_layer, cls, shape, unique)
            parsed.layers.append(layer)
            act = _activation_name(k_layer)
            if i == last_weighted:
                if act not in ("linear", "softmax"):
                    raise ConfigError(f"{where}: the output layer must be linear or softmax, got activation {act!r}")
                layer.output = True
                finished = True
                parsed.rectified.append(False)
            elif act == "relu":
                parsed.rectified.append(True)
            elif act == "linear":
                parsed.rectified.append(False)
            else:
                raise ConfigError(f"{where}: activation {act!r} cannot be converted; use 'relu' (fused or a "
                                  "ReLU layer)")
            pending_bn_target = layer if act == "linear" and not layer.output else None
            if layer.output:
                pending_bn_target = layer
        elif cls == "BatchNormalization":
            if pending_bn_target is None or parsed.layers[-1] is not pending_bn_target:
                raise ConfigError(f"{where}: BatchNormalization must directly follow a Dense/Conv2D/DepthwiseConv2D "
                                  "layer without activation, so it can be folded into it")
            fold_batchnorm(pending_bn_target, k_layer)
            parsed.notes.append(f"folded {k_layer.name} into {pending_bn_target.name}")
            pending_bn_target = None
        elif cls == "ReLU" or (cls == "Activation" and _activation_name(k_layer) == "relu"):
            if cls == "ReLU":
                slope = float(getattr(k_layer, "negative_slope", 0.0) or 0.0)
                thr = float(getattr(k_layer, "threshold", 0.0) or 0.0)
                mx = getattr(k_layer, "max_value", None)
                if slope != 0 or thr != 0 or mx is not None:
                    raise ConfigError(f"{where}: only a plain ReLU converts (got max_value={mx}, "
                                      f"negative_slope={slope}, threshold={thr}); use keras.layers.ReLU()")
            if not parsed.layers or not parsed.layers[-1].weighted:
                raise ConfigError(f"{where}: ReLU must follow a weighted layer (or an Add that joins one)")
            parsed.rectified[-1] = True
            pending_bn_target = None
        elif cls == "Activation" and _activation_name(k_layer) == "linear":
            continue
        elif cls == "Softmax" or (cls == "Activation" and _activation_name(k_layer) == "softmax"):
            if not finished:
                raise ConfigError(f"{where}: softmax is only supported at the end of the model")
        elif cls in ("AveragePooling2D", "GlobalAveragePooling2D"):
            if not parsed.layers or not parsed.rectified[-1] or parsed.layers[-1].kind == "flatten":
                raise ConfigError(f"{where}: average pooling must follow a rectified (ReLU) layer so its output "
                                  "stays a non-negative firing rate")
            layer = _avg_pool(k_layer, cls, shape, unique)
            parsed.layers.append(layer)
            parsed.rectified.append(True)  # the mean of non-negative rates is non-negative
            parsed.notes.append(f"{k_layer.name}: average pooling -> depthwise convolution with kernel 1/area")
            if cls == "GlobalAveragePooling2D" and not getattr(k_layer, "keepdims", False):
                parsed.layers.append(Layer(name=unique(f"{k_layer.name}_flatten"), kind="flatten"))
                parsed.rectified.append(True)
            pending_bn_target = None
        elif cls == "ZeroPadding2D":
            spiking = any(layer.weighted for layer in parsed.layers)
            if spiking and not parsed.rectified[-1]:
                raise ConfigError(f"{where}: zero padding must be applied to the input image or after a ReLU, where "
                                  "a padded zero is a zero activation")
            if getattr(k_layer, "data_format", "channels_last") != "channels_last" or len(shape) != 3:
                raise ConfigError(f"{where}: only channels_last (H, W, C) inputs are supported")
            pad = tuple(tuple(int(v) for v in p) for p in k_layer.padding)
            parsed.layers.append(Layer(name=unique(k_layer.name), kind="zero_pad2d", pad=pad))
            parsed.rectified.append(spiking)
            pending_bn_target = None
        elif cls in ("MaxPooling2D", "GlobalMaxPooling2D"):
            if not any(layer.weighted for layer in parsed.layers) or not parsed.rectified[-1]:
                raise ConfigError(f"{where}: max pooling must follow a rectified (ReLU) layer, whose spikes it pools; "
                                  "on the input image use AveragePooling2D or a strided convolution")
            if getattr(k_layer, "data_format", "channels_last") != "channels_last" or len(shape) != 3:
                raise ConfigError(f"{where}: only channels_last (H, W, C) inputs are supported")
            if cls == "GlobalMaxPooling2D":
                pool, strides, padding = shape[:2], (1, 1), "valid"
            else:
                pool = tuple(int(v) for v in k_layer.pool_size)
                strides, padding = tuple(int(v) for v in (k_layer.strides or pool)), k_layer.padding
            parsed.layers.append(Layer(name=unique(k_layer.name), kind="max_pool2d", pool_size=tuple(pool),
                                       strides=strides, padding=padding))
            parsed.rectified.append(True)
            parsed.notes.append(f"{k_layer.name}: spiking max pool (a unit spikes when the largest spike count in "
                                "its window grows)")
            if cls == "GlobalMaxPooling2D" and not getattr(k_layer, "keepdims", False):
                parsed.layers.append(Layer(name=unique(f"{k_layer.name}_flatten"), kind="flatten"))
                parsed.rectified.append(True)
            pending_bn_target = None
        elif cls == "Flatten":
            if len(shape) != 1:
                parsed.layers.append(Layer(name=unique(k_layer.name), kind="flatten"))
                parsed.rectified.append(parsed.rectified[-1] if parsed.rectified else True)
        else:
            instead = _REPLACEMENTS.get(cls, "Dense, Conv2D, DepthwiseConv2D, BatchNormalization, ReLU, "
                                             "AveragePooling2D, GlobalAveragePooling2D, Flatten, Dropout or Softmax")
            raise ConfigError(f"{where} cannot be converted to a spiking network; use {instead}")
        if len(parsed.layers) > n_before:
            versions.extend([0] * (len(parsed.layers) - n_before))
        elif cls in ("BatchNormalization", "ReLU", "Activation") and parsed.layers:
            touch()
        tensor_of[k_layer.name] = tip()
        shape = out_shape
    for layer, rect in zip(parsed.layers, parsed.rectified):
        if layer.weighted and not layer.output and not rect:
            raise ConfigError(f"layer {layer.name!r} has no ReLU after it; every hidden layer needs a ReLU because "
                              "spiking neurons only represent non-negative activations")
    if input_mean is not None:
        parsed.mean = float(input_mean)
    if input_std is not None:
        parsed.std = float(input_std)
    return parsed


def _join(parsed: ParsedModel, sources: list[tuple[int, int]], tip: tuple[int, int], versions: list[int], where: str,
          k_layer) -> None:
    """Make the tip (a linear weighted layer) a residual join with the identity shortcut in ``sources``."""
    from ..model.layers import chain_shapes, spiking_origin

    if len(sources) != 2:
        raise ConfigError(f"{where}: only an Add of two tensors (a weighted branch and an identity shortcut) converts")
    if sources.count(tip) != 1:
        raise ConfigError(f"{where}: one input of Add must be the branch just built (its last Dense/Conv2D, with "
                          "optional BatchNormalization and no activation), the other an earlier tensor")
    other = sources[1] if sources[0] == tip else sources[0]
    layers = parsed.layers
    join = layers[tip[0]] if tip[0] >= 0 else None
    if join is None or not join.weighted or parsed.rectified[tip[0]] or join.output or join.skip is not None:
        raise ConfigError(f"{where}: the branch joined by Add must end in a Dense/Conv2D/DepthwiseConv2D (optionally "
                          "with BatchNormalization) without activation; put the ReLU after the Add")
    src = other[0]
    if src < 0 or spiking_origin(layers, src) is None:
        raise ConfigError(f"{where}: the shortcut carries the network input (analog values, not spikes); start the "
                          "shortcut after the first ReLU layer")
    if not parsed.rectified[src] or other[1] != versions[src]:
        raise ConfigError(f"{where}: the shortcut comes from {layers[src].name!r} before its "
                          "BatchNormalization or ReLU; take it after the ReLU (spiking neurons only carry rectified "
                          "activations)")
    shapes = chain_shapes(parsed.input_shape, layers)
    if shapes[src] != shapes[tip[0]]:
        raise ConfigError(f"{where}: the shortcut has shape {shapes[src]} and the branch {shapes[tip[0]]}; only "
                          "identity shortcuts convert (no projection Conv2D on the shortcut)")
    join.skip = layers[src].name
    join.skip_weights = np.ones(join.bias.shape[0])
    parsed.notes.append(f"{k_layer.name}: residual join into {join.name} from {layers[src].name}")


def _weighted(k_layer, cls: str, in_shape: tuple[int, ...], unique) -> Layer:
    where = f"layer {k_layer.name!r} ({cls})"
    weights = [np.asarray(w, np.float64) for w in k_layer.get_weights()]
    kernel = weights[0]
    bias = weights[1] if getattr(k_layer, "use_bias", False) else None
    if cls == "Dense":
        if len(in_shape) != 1:
            raise ConfigError(f"{where} receives a {len(in_shape)}-D input {in_shape}; add a Flatten layer "
                              "(Dense on images applies per pixel, which is not supported)")
        kind, strides, padding = "dense", (1, 1), "valid"
    else:
        if getattr(k_layer, "data_format", "channels_last") != "channels_last":
            raise ConfigError(f"{where}: only channels_last is supported")
        if tuple(getattr(k_layer, "dilation_rate", (1, 1))) != (1, 1):
            raise ConfigError(f"{where}: dilated convolutions are not supported; use dilation_rate=1")
        if cls == "Conv2D" and getattr(k_layer, "groups", 1) != 1:
            raise ConfigError(f"{where}: grouped convolutions are not supported; use groups=1")
        if cls == "DepthwiseConv2D" and kernel.shape[3] != 1:
            raise ConfigError(f"{where}: depth_multiplier {kernel.shape[3]} is not supported; use 1 (followed by a "
                              "1x1 Conv2D to change the channel count)")
        kind = "conv2d" if cls == "Conv2D" else "depthwise_conv2d"
        strides, padding = tuple(int(s) for s in k_layer.strides), k_layer.padding
        if padding not in ("same", "valid"):
            raise ConfigError(f"{where}: padding {padding!r} is not supported; use 'same' or 'valid'")
    channels = kernel.shape[-1] if kind != "depthwise_conv2d" else kernel.shape[2]
    if bias is None:
        bias = np.zeros(channels)
    return Layer(name=unique(k_layer.name), kind=kind, weights=kernel, bias=bias.reshape(-1), strides=strides,
                 padding=padding)


def _avg_pool(k_layer, cls: str, in_shape: tuple[int, ...], unique) -> Layer:
    where = f"layer {k_layer.name!r} ({cls})"
    if len(in_shape) != 3:
        raise ConfigError(f"{where} needs an (H, W, C) input, got {in_shape}")
    h, w, c = in_shape
    if cls == "GlobalAveragePooling2D":
        (ph, pw), strides, padding = (h, w), (1, 1), "valid"
    else:
        ph, pw = (int(v) for v in k_layer.pool_size)
        strides = tuple(int(s) for s in (k_layer.strides or (ph, pw)))
        padding = k_layer.padding
        if padding == "same":
            # TF's 'same' average pooling divides by the number of *valid* pixels at the borders, which a
            # convolution with kernel 1/area does not; it is equal only when no padding is needed.
            needs_pad = any(((-(-n // s)) - 1) * s + k - n > 0 for n, k, s in ((h, ph, strides[0]), (w, pw, strides[1])))
            if needs_pad:
                raise ConfigError(f"{where}: padding='same' with border padding averages over fewer pixels at the "
                                  "edges; use padding='valid' or sizes that divide evenly")
    kernel = np.full((ph, pw, c, 1), 1.0 / (ph * pw))
    return Layer(name=unique(k_layer.name), kind="depthwise_conv2d", weights=kernel, bias=np.zeros(c),
                 strides=strides, padding=padding)


def fold_batchnorm(layer: Layer, bn) -> None:
    """Fold a Keras BatchNormalization (inference mode) into ``layer``'s kernel and bias, in place.

    y = gamma * (z - mean) / sqrt(var + eps) + beta with z = W x + b gives W' = W * g and
    b' = (b - mean) * g + beta, with g = gamma / sqrt(var + eps) per output channel.
    """
    axis = bn.axis if isinstance(bn.axis, int) else (bn.axis[0] if len(bn.axis) == 1 else None)
    rank = len(bn.input.shape) if hasattr(bn, "input") else None
    if axis is None or (axis != -1 and rank is not None and axis != rank - 1):
        raise ConfigError(f"layer {bn.name!r} (BatchNormalization): only normalization over the last (channel) axis "
                          f"can be folded, got axis={bn.axis}")
    channels = layer.bias.shape[0]
    gamma = np.asarray(bn.gamma, np.float64) if bn.scale else np.ones(channels)
    beta = np.asarray(bn.beta, np.float64) if bn.center else np.zeros(channels)
    mean = np.asarray(bn.moving_mean, np.float64)
    var = np.asarray(bn.moving_variance, np.float64)
    g = gamma / np.sqrt(var + bn.epsilon)
    if layer.kind == "depthwise_conv2d":
        layer.weights = layer.weights * g[None, None, :, None]
    else:
        layer.weights = layer.weights * g  # output channels are the last axis of dense and conv2d kernels
    layer.bias = (layer.bias - mean) * g + beta
