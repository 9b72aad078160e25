"""Measure an ANN: a Keras model's test accuracy, activation and weight sparsity (what sparsity fine-tuning
reports before and after, paper 5.1), and a converted bundle's ANN function: its accuracy (the a_max of the
metrics) and its ANN-side synaptic events."""

from __future__ import annotations

import numpy as np

from ..keras_layers import WEIGHTED, is_plain_relu, layer_class


def evaluate_accuracy(model, ds, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` on a :class:`~anytime_snn.data.Dataset` (pixels scaled to [0, 1])."""
    probs = model.predict(ds.pixels01(), batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(probs, axis=-1) == ds.labels))


def bundle_ann_accuracy(bundle, x: np.ndarray, labels: np.ndarray, batch_size: int = 500) -> float:
    """Accuracy of the bundle's ANN function (conversion keeps it) on these network inputs."""
    from ..convert.normalize import ann_forward

    pred = [ann_forward(bundle.layers, x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)]
    return float((np.concatenate(pred) == labels).mean())


def weight_sparsity(model) -> dict:
    """Fraction of exactly-zero kernel weights per weighted layer and in total."""
    layers, zeros, size = {}, 0, 0
    for layer in model.layers:
        if layer_class(layer) in WEIGHTED:
            k = layer.kernel.numpy()
            z = int(k.size - np.count_nonzero(k))
            layers[layer.name] = z / k.size
            zeros, size = zeros + z, size + k.size
    return {"layers": layers, "total": zeros / size if size else 0.0, "weights": size}


def activation_sparsity(model, x: np.ndarray, batch_size: int = 500) -> dict:
    """Fraction of zero ReLU outputs on ``x`` (model inputs) per ReLU layer and in total."""
    import keras

    relus = [layer for layer in model.layers if is_plain_relu(layer)]
    if not relus:
        return {"layers": {}, "total": 0.0}
    probe = keras.Model(model.inputs[0], [layer.output for layer in relus])
    zeros = np.zeros(len(relus), np.int64)
    sizes = np.zeros(len(relus), np.int64)
    for start in range(0, len(x), batch_size):
        outs = probe(x[start:start + batch_size], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for j, o in enumerate(outs):
            o = np.asarray(o)
            zeros[j] += o.size - np.count_nonzero(o)
            sizes[j] += o.size
    return {"layers": {layer.name: float(z / s) for layer, z, s in zip(relus, zeros, sizes)},
            "total": float(zeros.sum() / sizes.sum())}


def ann_synaptic_ops(bundle_layers, x: np.ndarray, batch_size: int = 250) -> dict:
    """ANN-side event estimate per sample: sum over neurons of [activation != 0] x non-zero fan-out.

    ``bundle_layers``: the converted (unnormalized is fine: scales do not change zeros) layers;
    ``x``: network inputs. Returns the mean per sample of the hidden-layer count ("hidden", what one
    timestep of an SNN would cost if every active neuron spiked once) and of the input count ("input").
    Zero padding and max pooling add no synapses of their own (a pooled activation counts at the next
    layer's synapses); a residual join counts its source's non-zero skip weights, as the simulators do.
    """
    from ..convert.normalize import ann_walk
    from ..sim import ops

    hidden = inputs = 0.0
    for start in range(0, len(x), batch_size):
        first = True
        for layer, h, residual, out in ann_walk(list(bundle_layers), x[start:start + batch_size]):
            fan = ops.fanout(layer, tuple(h.shape[1:])).reshape(-1).astype(np.float64)
            count = float(((h.reshape(len(h), -1) != 0) @ fan).sum())
            if residual is not None:
                skip_fan = ops.skip_fanout(layer, tuple(out.shape[1:])).astype(np.float64)
                count += float(((residual.reshape(len(h), -1) != 0) @ skip_fan).sum())
            if first:
                inputs += count
            else:
                hidden += count
            first = False
    return {"hidden": hidden / len(x), "input": inputs / len(x)}
