"""A digit classifier built from tinygan's own layers, to score generated images
(``tinygan.tools.metrics.sample_quality``).

    x (N, 784) -> Linear 512 + ReLU -> Dropout -> Linear 512 + ReLU -> Dropout
               -> Linear 10 -> logits

trained on the softmax cross-entropy of its logits with tinygan's Adam. Its last hidden layer
(the second ReLU's output, 512 features) is what the Frechet distance compares.

Softmax cross-entropy on logits l (N, C) with integer labels y (N,):

    log softmax(l)_ic = l_ic - m_i - log sum_c' exp(l_ic' - m_i),   m_i = max_c l_ic   (stable)
    L = -(1/N) sum_i log softmax(l)_{i, y_i}
    dL/dl = (softmax(l) - onehot(y)) / N

Like every compute module this one imports neither numpy nor cupy: arrays come from the
backend. ``load_classifier`` reads a checkpoint written by ``examples/train_classifier.py``
through ``tinygan.tools.checkpoint`` (imported inside it).
"""

import math

from ..backend import array_module, default_backend
from ..errors import ConfigError, TrainingDiverged, check_int
from ..layers import Dropout, Linear, ReLU
from ..fast import Adam, Sequential     # the fast path: flat buffers, fused updates

__all__ = ["log_softmax", "softmax", "softmax_cross_entropy", "Classifier", "fit",
           "load_classifier"]


def log_softmax(logits):
    """log softmax along the last axis, stable: l - max - log sum exp(l - max)."""
    xp = array_module(logits)
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - xp.log(xp.exp(z).sum(axis=-1, keepdims=True))


def softmax(logits):
    """softmax along the last axis, exp(log_softmax(l)) (never overflows)."""
    return array_module(logits).exp(log_softmax(logits))


def _labels(labels, n, n_classes, xp, check_range=True):
    y = xp.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise ConfigError(f"labels must have shape ({n},) to match the logits, "
                          f"got {tuple(y.shape)}")
    if y.dtype.kind not in "iu":
        raise ConfigError(f"labels must be integers, got dtype {y.dtype}")
    if check_range and n and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ConfigError(f"labels must lie in 0..{n_classes - 1}, "
                          f"got {int(y.min())}..{int(y.max())}")
    return y


def softmax_cross_entropy(logits, labels, check_labels=True):
    """Mean cross-entropy of softmax(logits) against integer labels: returns (L, dL/dlogits).

    logits (N, C); labels (N,) ints in 0..C-1 (``check_labels=False`` skips the range check,
    which reads two numbers back from the device: the training loop checks once up front).
    L = -(1/N) sum_i log softmax(l)_{i, y_i}   (a 0-d array; no host synchronisation)
    dL/dl = (softmax(l) - onehot(y)) / N
    """
    if not hasattr(logits, "ndim") or logits.ndim != 2 or logits.shape[0] == 0:
        raise ConfigError(f"logits must be a non-empty (N, C) array, got "
                          f"{getattr(logits, 'shape', type(logits).__name__)}")
    xp = array_module(logits)
    n, c = logits.shape
    y = _labels(labels, n, c, xp, check_labels)
    rows = xp.arange(n)
    logp = log_softmax(logits)
    loss = -logp[rows, y].mean()
    grad = xp.exp(logp)
    grad[rows, y] -= 1.0            # one (row, label) pair per row: no repeated indices
    grad *= 1.0 / n
    return loss, grad


class Classifier:
    """An MLP classifier: ``in_dim`` -> hidden ReLU layers (each followed by dropout that
    keeps units with probability ``keep_prob`` at train time) -> ``n_classes`` logits.

    Attributes: ``net`` (the Sequential), ``backend``, ``config`` (the constructor's
    arguments, JSON-able, to rebuild it: ``Classifier(**config, backend=...)``).
    """

    def __init__(self, in_dim=784, hidden=(512, 512), n_classes=10, keep_prob=0.8,
                 backend=None):
        be = backend or default_backend()
        hidden = tuple(int(h) for h in hidden)
        if not hidden:
            raise ConfigError("the classifier needs at least one hidden layer (hidden_features)")
        if isinstance(keep_prob, bool) or not 0 < keep_prob <= 1:
            raise ConfigError(f"keep_prob must be in (0, 1], got {keep_prob!r}")
        layers, sizes = [], (int(in_dim),) + hidden
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            layers += [Linear(n_in, n_out, init="glorot", backend=be), ReLU(backend=be),
                       Dropout(keep_prob, backend=be)]
        layers.append(Linear(sizes[-1], int(n_classes), init="glorot", backend=be))
        self.net = Sequential(layers, backend=be)
        self.backend = be
        self.config = {"in_dim": int(in_dim), "hidden": list(hidden),
                       "n_classes": int(n_classes), "keep_prob": float(keep_prob)}
        # the last hidden layer's activations: the output of the last ReLU
        self._hidden_end = len(layers) - 2          # index of the last Dropout (exclusive end)

    @property
    def n_classes(self):
        return self.config["n_classes"]

    def forward(self, x):
        """Logits (N, C) in the network's current mode (train: dropout on)."""
        return self.net.forward(x)

    def _eval_batches(self, x, batch_size, fn):
        x = self._as_input(x)
        out = []
        with self.net.evaluating():
            for i in range(0, x.shape[0], check_int("batch_size", batch_size)):
                out.append(fn(x[i:i + batch_size]))
        return self.backend.xp.concatenate(out) if len(out) > 1 else out[0]

    def logits(self, x, batch_size=1000):
        """Logits (N, C) with dropout off, ``batch_size`` rows at a time."""
        return self._eval_batches(x, batch_size, self.net.forward)

    def predict_proba(self, x, batch_size=1000):
        """Class probabilities softmax(logits) (N, C), dropout off."""
        return softmax(self.logits(x, batch_size))

    def predict(self, x, batch_size=1000):
        """Arg-max classes (N,), dropout off."""
        return self.logits(x, batch_size).argmax(axis=1)

    def hidden_features(self, x, batch_size=1000):
        """The last hidden layer's activations (N, hidden[-1]) (after its ReLU, dropout off)."""
        def features(xb):
            for layer in self.net.layers[:self._hidden_end]:
                xb = layer.forward(xb)
            return xb
        return self._eval_batches(x, batch_size, features)

    def accuracy(self, x, labels, batch_size=1000):
        """Fraction of ``x`` classified as ``labels`` (a Python float)."""
        y = self.backend.xp.asarray(labels)
        return float((self.predict(x, batch_size) == y).mean())

    def train_step(self, x, labels, optimizer):
        """One step on a batch: forward (dropout on), loss, backward, optimizer.step().
        Returns the loss (a 0-d backend array)."""
        self.net.train()
        loss, dlogits = softmax_cross_entropy(self.net.forward(x), labels,
                                              check_labels=False)
        self.net.backward(dlogits, input_grad=False)
        optimizer.step()
        return loss

    def state(self):
        """{name: backend array} of the parameters (views: copy before keeping)."""
        return self.net.state()

    def load_state(self, arrays):
        self.net.load_state(arrays)

    def _as_input(self, x):
        x = self.backend.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.config["in_dim"] or x.shape[0] == 0:
            raise ConfigError(f"expected a non-empty (N, {self.config['in_dim']}) array, got "
                              f"shape {tuple(x.shape)}")
        return x

    def __repr__(self):
        return f"Classifier({self.config})\n{self.net!r}"


def fit(classifier, images, labels, epochs=15, batch_size=100, lr=1e-3, lr_decay=1.0,
        optimizer=None, callback=None, stop=None):
    """Train ``classifier`` with Adam(lr, beta1 = 0.9, beta2 = 0.999) on host or backend
    ``images`` (N, in_dim) and integer ``labels`` (N,), shuffled each epoch with the backend's
    rng; the learning rate is multiplied by ``lr_decay`` after each epoch. The last partial
    batch of an epoch is dropped. ``callback(epoch, mean_loss)`` (if given) runs after each
    epoch; the mean loss is a Python float (one host copy per epoch). Returns the list of
    mean losses per epoch. ``stop()`` (if given) is asked before every step: True ends the
    training there, the unfinished epoch left out of the history (and never passed to
    ``callback``: the last callback saw the last finished epoch).
    """
    be = classifier.backend
    x = classifier._as_input(images)
    y = be.xp.asarray(labels)
    _labels(y, x.shape[0], classifier.n_classes, be.xp)
    check_int("epochs", epochs)
    check_int("batch_size", batch_size)
    if isinstance(lr_decay, bool) or not isinstance(lr_decay, (int, float)) \
            or not 0 < lr_decay <= 1:
        raise ConfigError(f"lr_decay must be in (0, 1], got {lr_decay!r}")
    if batch_size > x.shape[0]:
        raise ConfigError(f"batch_size {batch_size} is larger than the {x.shape[0]} "
                          "training images")
    if optimizer is None:
        optimizer = Adam(classifier.net, lr=lr,
                         beta1=0.9, beta2=0.999)
    history = []
    n = x.shape[0]
    for epoch in range(1, epochs + 1):
        order = be.xp.asarray(be.permutation(n))
        total = be.zeros(())
        steps = n // batch_size                 # drop the last partial batch
        for s in range(steps):
            if stop is not None and stop():
                return history                  # the unfinished epoch is dropped
            idx = order[s * batch_size:(s + 1) * batch_size]
            total += classifier.train_step(x[idx], y[idx], optimizer)
        mean = float(total) / steps
        if not math.isfinite(mean):
            raise TrainingDiverged(f"the classifier's loss became {mean} in epoch {epoch}: "
                                   "lower the learning rate")
        history.append(mean)
        if lr_decay != 1.0:
            optimizer.lr *= lr_decay
        if callback is not None:
            callback(epoch, mean)
    return history


def load_classifier(path, backend=None):
    """Rebuild a Classifier from a checkpoint written by ``examples/train_classifier.py``
    (arrays "net/<name>", meta["architecture"] = Classifier.config): its run directory or any
    form of its checkpoint path. Returns (classifier, meta)."""
    from .checkpoint import checkpoint_path, load_checkpoint
    from .schema import validate_classifier
    from ..errors import CheckpointError
    path = checkpoint_path(path, hint="give train_classifier.py's --out directory (or its "
                                      "checkpoint)")
    arrays, meta = load_checkpoint(path, validate=validate_classifier)
    arch = meta.get("architecture")
    if not isinstance(arch, dict):
        raise CheckpointError(f"{path}: no 'architecture' in the meta: not a classifier checkpoint")
    try:
        clf = Classifier(**arch, backend=backend)
    except (TypeError, ConfigError) as exc:
        raise CheckpointError(f"{path}: bad architecture {arch!r} ({exc})") from None
    params = {k[4:]: v for k, v in arrays.items() if k.startswith("net/")}
    try:
        clf.load_state(params)
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    clf.net.eval()
    return clf, meta
