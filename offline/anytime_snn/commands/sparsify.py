"""Sparsity fine-tuning of a trained ANN (paper section 5.1), then pruning.

  anytime-snn sparsify runs/dense/model.keras --out runs/dense/sparse.keras --epochs 3

Fixes every BatchNormalization's gamma to 1 (keeping the network function), then fine-tunes with
L' = L_ANN + lambda_a L_a + lambda_w L_w: L_a (eq. 8) is the expected fraction of non-zero ReLU
outputs computed from the BN betas, L_w (eq. 9) the mean |w| weighted by the neurons each weight
serves; the default lambdas depend on the architecture (docs/sparsity.md). The BN moving statistics
are re-estimated on training images after fine-tuning. Afterwards every kernel weight with |w| < epsilon is set to zero. The data set, split and
augmentation come from the model's training record (MODEL.json).

Before and after, the JSON record (OUT.json) holds test accuracy, activation sparsity (zero ReLU
outputs on the test set, per layer and total), weight sparsity (zero weights, per layer and total),
and, from converting the model and simulating --snn-samples test images for --timesteps steps,
synaptic events per inference, P_l, P_p and an ANN-side estimate (active neurons x non-zero fan-out).
OUT.keras converts with `anytime-snn convert` like any trained model.
"""

from __future__ import annotations

import shlex
import sys

HELP = "fine-tune an ANN for activation and weight sparsity (L_a, L_w), prune, report sparsity and events"


def add_arguments(parser) -> None:
    parser.add_argument("model", help="trained Keras model (.keras) with its .json training record")
    parser.add_argument("--out", required=True, metavar="FILE.keras", help="where to save the sparse model")
    parser.add_argument("--lambda-a", type=float, default=None,
                        help="weight of the activation penalty L_a (default: 50 for a dense net, scaled by "
                        "sqrt(#betas / sum n_k) for others; see docs/sparsity.md)")
    parser.add_argument("--lambda-w", type=float, default=None,
                        help="weight of the weight penalty L_w (default: 1000 for a dense net, scaled by "
                        "sqrt(#weights / sum m_k) for others)")
    parser.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs (default 3; 0: only prune)")
    parser.add_argument("--epsilon", type=float, default=1e-4, help="prune kernel weights with |w| < epsilon "
                        "(default 1e-4)")
    parser.add_argument("--learning-rate", type=float, default=0.01,
                        help="initial SGD learning rate, cosine decay to 0 (default 0.01)")
    parser.add_argument("--batch-size", type=int, help="default: the training record's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow threads (default 2)")
    parser.add_argument("--dataset", help="default: the training record's")
    parser.add_argument("--data-path", help="location of CIFAR batches, an npz file or an image folder")
    parser.add_argument("--train-limit", type=int, help="use only the first N training examples")
    parser.add_argument("--test-limit", type=int, help="measure accuracy and sparsity on the first N test examples")
    parser.add_argument("--snn-samples", type=int, default=1000,
                        help="test images simulated as an SNN before and after (default 1000; 0: skip)")
    parser.add_argument("--timesteps", type=int, default=50, help="SNN simulation steps (default 50)")
    parser.add_argument("--calibration-samples", type=int, default=10000,
                        help="training images for the conversion's normalization (default 10000)")
    parser.add_argument("--normalization", choices=["layer", "channel"], default="layer",
                        help="conversion normalization for the SNN measurement (default layer)")
    parser.add_argument("--bn-samples", type=int, default=10000,
                        help="training images for re-estimating the BN statistics after fine-tuning (default "
                        "10000; 0: keep the moving averages)")
    parser.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")


def run(args) -> int:
    from ..train.finetune import finetune

    record = finetune(
        args.model, args.out,
        lambda_a=args.lambda_a, lambda_w=args.lambda_w, bn_samples=args.bn_samples,
        epochs=args.epochs, epsilon=args.epsilon, learning_rate=args.learning_rate, batch_size=args.batch_size,
        seed=args.seed, threads=args.threads, dataset=args.dataset, data_path=args.data_path,
        train_limit=args.train_limit, test_limit=args.test_limit, snn_samples=args.snn_samples,
        timesteps=args.timesteps, calibration_samples=args.calibration_samples, normalization=args.normalization,
        verbose=2 if args.quiet or not sys.stdout.isatty() else 1,
        command="anytime-snn " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        log=lambda msg: print(msg, flush=True))
    b, a = record["before"], record["after"]
    print(f"test accuracy {b['test_accuracy'] * 100:.2f} % -> {a['test_accuracy'] * 100:.2f} %; activation sparsity "
          f"{b['activation_sparsity']['total'] * 100:.1f} % -> {a['activation_sparsity']['total'] * 100:.1f} %; "
          f"weight sparsity {b['weight_sparsity']['total'] * 100:.1f} % -> {a['weight_sparsity']['total'] * 100:.1f} %")
    if "snn" in a:
        print(f"SNN synaptic events per inference {b['snn']['events_per_inference']:.4g} -> "
              f"{a['snn']['events_per_inference']:.4g}; P_p {b['snn']['P_p']:.4g} -> {a['snn']['P_p']:.4g}")
    print(f"saved {args.out} and its .json record")
    return 0
