"""Pictures and the metrics log (host-side I/O; NumPy and matplotlib's Agg canvas only).

Every function takes host NumPy arrays (convert with ``backend.to_numpy`` first). Images are
floats in [0, 1] with 1 = ink, shown as the paper shows them: white digits on black. Each
``save_*`` function writes a PNG atomically (a temp file in the same directory, fsynced, then
``os.replace``), creates the parent directory if it is missing and returns the path as a
``pathlib.Path``. Bad shapes raise ``ConfigError``.

Colour: give ``shape=(3, h, w)`` (channel-major rows of 3*h*w values, as CIFAR-10 stores them)
to the grid savers. Such images are unbounded (globally contrast-normalised data and the
samples of a linear output), so each image is shown min-max scaled on its own, its three
channels together: its lowest value black, its highest white (``color_images``).

Pictures:
  image_grid                  (N, h*w) or (N, h, w) -> one 2-D array of tiles (pure NumPy)
  save_sample_grid            a grid of samples
  save_nearest_neighbour_grid the paper's Figure 2: each sample beside its nearest training
                              image, the neighbour framed in yellow
  save_interpolation_grid     the paper's Figure 3: one row per path through latent space
  save_loss_curves            D and G losses above, mean D(x) and D(G(z)) below

Metrics log (the training loop's ``metrics.csv``):
  append_history              append one dict as a CSV row, fsynced
  read_history                CSV or JSON lines -> list of dicts of floats

Matplotlib is used through ``Figure`` + ``FigureCanvasAgg`` (never pyplot), so nothing here
touches a display or pyplot's global state. Grids without a title are written pixel for pixel
(``matplotlib.image.imsave``); a title adds a band above, the grid still placed unresampled.
"""

import contextlib
import csv
import io
import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imsave
from matplotlib.ticker import MaxNLocator

from ..errors import ConfigError, DataError, check_int
from .files import atomic_write, fsync_path

FRAME_COLOR = (1.0, 0.8, 0.0)   # the neighbours' frame: a strong yellow, as in the paper's Fig. 2
_TITLE_PX = 30                  # height of the title band, in pixels
_DPI = 100


# ----------------------------------------------------------------------------- grids

def _host(array, name):
    """A host float32 array; ConfigError for device or non-numeric arrays."""
    try:
        a = np.asarray(array)
    except TypeError:   # cupy refuses implicit device-to-host conversion
        raise ConfigError(f"{name}: pass a host NumPy array (convert with backend.to_numpy), "
                          f"got {type(array).__name__}") from None
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype.kind not in "biuf":
        raise ConfigError(f"{name}: expected a numeric array, got dtype {a.dtype}")
    return a.astype(np.float32)


def _check_shape(shape):
    if (not isinstance(shape, (tuple, list)) or len(shape) != 2
            or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape)):
        raise ConfigError(f"shape must be (height, width) of positive ints, got {shape!r}")
    return int(shape[0]), int(shape[1])


def _as_images(images, shape, name="images"):
    """(N, h*w) or (N, h, w) -> (N, h, w) float32, NaN -> 0, clipped to [0, 1]."""
    h, w = _check_shape(shape)
    a = _host(images, name)
    if a.ndim == 2 and a.shape[1] == h * w:
        a = a.reshape(len(a), h, w)
    elif a.ndim != 3 or a.shape[1:] != (h, w):
        raise ConfigError(f"{name}: expected shape (N, {h * w}) or (N, {h}, {w}), got "
                          f"{a.shape}; for one image pass x[None], for another image size "
                          "pass shape=(height, width)")
    if len(a) == 0:
        raise ConfigError(f"{name}: no images to draw (N = 0)")
    return np.clip(np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def _tile(tiles, ncol, pad, fill):
    """Tiles (N, h, w, *C) -> (nrow*(h+pad)+pad, ncol*(w+pad)+pad, *C), nrow = ceil(N/ncol).

    Tile i goes to row i // ncol, column i % ncol, its top-left pixel at
    (pad + row*(h+pad), pad + col*(w+pad)); padding and unused cells hold ``fill``.
    """
    n, h, w = tiles.shape[:3]
    nrow = -(-n // ncol)
    out = np.empty((nrow * (h + pad) + pad, ncol * (w + pad) + pad) + tiles.shape[3:],
                   dtype=np.float32)
    out[...] = fill
    for i, tile in enumerate(tiles):
        r, c = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y:y + h, x:x + w] = tile
    return out


def image_grid(images, ncol=None, shape=(28, 28), pad=2, pad_value=1.0):
    """Tile images into one 2-D array, row by row.

    images: (N, h*w) or (N, h, w) floats in [0, 1] (uint8 is divided by 255); NaN becomes 0 and
    values are clipped to [0, 1]. ncol: tiles per row, default ceil(sqrt(N)); nrow = ceil(N/ncol).
    Returns float32 of shape (nrow*(h+pad)+pad, ncol*(w+pad)+pad): image i at row i // ncol,
    column i % ncol, its top-left pixel at (pad + row*(h+pad), pad + col*(w+pad)). Padding
    (around every tile, the outer border included) and unused cells hold ``pad_value``.
    """
    imgs = _as_images(images, shape)
    ncol = math.isqrt(len(imgs) - 1) + 1 if ncol is None else check_int("ncol", ncol)
    pad = check_int("pad", pad, minimum=0)
    if not 0.0 <= float(pad_value) <= 1.0:
        raise ConfigError(f"pad_value must be in [0, 1], got {pad_value!r}")
    return _tile(imgs, ncol, pad, float(pad_value))


def _check_png(path):
    if Path(path).suffix.lower() != ".png":
        raise ConfigError(f"{path}: these pictures are PNGs; give a path ending in .png")


def _save_rgb(rgb, path, title=None, scale=1):
    """Write an (H, W, 3) float image in [0, 1] as a PNG, each pixel a scale x scale block.

    Without a title the PNG is exactly (H*scale, W*scale) pixels. With one, a white band of
    _TITLE_PX pixels above holds the title (also the PNG's "Title" text chunk), and the
    figure is widened (image centred) when the title needs more room; the image is placed
    unresampled (``Figure.figimage``).
    """
    _check_png(path)
    scale = check_int("scale", scale)
    if scale > 1:
        rgb = rgb.repeat(scale, axis=0).repeat(scale, axis=1)
    height, width = rgb.shape[:2]
    if title is None:
        return atomic_write(path, lambda f: imsave(f, rgb, format="png"))
    title = str(title)
    fig_w = max(width, 8 * len(title) + 20)
    fig_h = height + _TITLE_PX
    fig = Figure(figsize=(fig_w / _DPI, fig_h / _DPI), dpi=_DPI, facecolor="white")
    FigureCanvasAgg(fig)
    fig.figimage(rgb, xo=(fig_w - width) // 2, yo=0, origin="upper")
    fig.text(0.5, 1.0 - _TITLE_PX / 2 / fig_h, title, ha="center", va="center", fontsize=11)
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=_DPI,
                                                    metadata={"Title": title}))


def _gray_to_rgb(gray):
    return np.repeat(gray[..., None], 3, axis=-1)


def _is_color(shape):
    return isinstance(shape, (tuple, list)) and len(shape) == 3


def color_images(images, shape=(3, 32, 32), name="images"):
    """(N, 3*h*w) channel-major or (N, 3, h, w) -> (N, h, w, 3) float32 in [0, 1].

    The display mapping: each image min-max scaled on its own over all three channels (its
    lowest value 0, its highest 1); a constant image is shown mid-grey, nan and inf as 0 first.
    """
    if (not _is_color(shape) or shape[0] != 3
            or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape)):
        raise ConfigError(f"colour shape must be (3, height, width) of positive ints, got {shape!r}")
    c, h, w = (int(v) for v in shape)
    a = _host(images, name)
    if a.ndim == 2 and a.shape[1] == c * h * w:
        a = a.reshape(len(a), c, h, w)
    elif a.ndim != 4 or a.shape[1:] != (c, h, w):
        raise ConfigError(f"{name}: expected shape (N, {c * h * w}) or (N, {c}, {h}, {w}), got {a.shape}")
    if len(a) == 0:
        raise ConfigError(f"{name}: no images to draw (N = 0)")
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0).transpose(0, 2, 3, 1)
    low = a.min(axis=(1, 2, 3), keepdims=True)
    span = a.max(axis=(1, 2, 3), keepdims=True) - low
    out = np.where(span > 0, (a - low) / np.where(span > 0, span, 1), 0.5)
    return out.astype(np.float32)


def _rgb_tiles(images, shape, name):
    """(N, h, w, 3) in [0, 1]: grey images as they are, colour ones through color_images."""
    if _is_color(shape):
        return color_images(images, shape, name)
    return _gray_to_rgb(_as_images(images, shape, name))


def save_sample_grid(images, path, ncol=None, title=None, shape=(28, 28), pad=2, scale=1):
    """Save (N, h*w) or (N, h, w) images in [0, 1] as a grid PNG, ink white on black.

    Tiles are laid out as ``image_grid`` lays them (white padding); without a title the PNG is
    exactly the grid's size times ``scale`` (an int: each pixel becomes a scale x scale block).
    Returns the path.
    """
    _check_png(path)
    if _is_color(shape):       # (3, h, w): colour, each image min-max scaled (color_images)
        tiles = color_images(images, shape)
        ncol = math.isqrt(len(tiles) - 1) + 1 if ncol is None else check_int("ncol", ncol)
        grid = _tile(tiles, ncol, check_int("pad", pad, minimum=0), 1.0)
        return _save_rgb(grid, path, title=title, scale=scale)
    grid = image_grid(images, ncol=ncol, shape=shape, pad=pad, pad_value=1.0)
    return _save_rgb(_gray_to_rgb(grid), path, title=title, scale=scale)


def save_nearest_neighbour_grid(samples, neighbours, path, ncol=None, title=None,
                                shape=(28, 28), pad=2, scale=2, frame_color=FRAME_COLOR):
    """The paper's Figure 2: each sample with its nearest training image beside it.

    samples, neighbours: (N, h*w) or (N, h, w) in [0, 1], row i of ``neighbours`` being the
    nearest training image of sample i. Each pair is a cell [sample | neighbour], the
    neighbour framed (1 pixel, ``frame_color``); ``ncol`` pairs per row, default
    ceil(sqrt(N)). ``scale`` (default 2) enlarges every pixel to a scale x scale block.
    Returns the path.
    """
    _check_png(path)
    s = _rgb_tiles(samples, shape, "samples")
    nb = _rgb_tiles(neighbours, shape, "neighbours")
    if len(s) != len(nb):
        raise ConfigError(f"samples and neighbours must pair up: {len(s)} samples, "
                          f"{len(nb)} neighbours")
    ncol = math.isqrt(len(s) - 1) + 1 if ncol is None else check_int("ncol", ncol)
    pad = check_int("pad", pad, minimum=0)
    color = np.asarray(frame_color, dtype=np.float32)
    if color.shape != (3,):
        raise ConfigError(f"frame_color must be an RGB triple, got {frame_color!r}")
    # Each image gets a 1-pixel border: white around the sample, the frame colour around the
    # neighbour; a pair is the two side by side, so a white line always separates them.
    s_rgb = np.pad(s, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=1.0)
    nb_rgb = np.pad(nb, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=0.0)
    nb_rgb[:, [0, -1], :] = color
    nb_rgb[:, :, [0, -1]] = color
    pairs = np.concatenate([s_rgb, nb_rgb], axis=2)            # (N, h+2, 2(w+2), 3)
    grid = _tile(pairs, ncol, 2 * pad, 1.0)                     # wider gaps between pairs
    return _save_rgb(grid, path, title=title, scale=scale)


def save_interpolation_grid(rows, path, title=None, shape=(28, 28), pad=2, scale=2):
    """The paper's Figure 3: rows (R, S, h*w) or (R, S, h, w) in [0, 1] -> R rows of S images,
    one row per path through latent space (e.g. G of linear blends of two z's).

    ``scale`` (default 2) enlarges every pixel to a scale x scale block. Returns the path.
    """
    _check_png(path)
    if _is_color(shape):       # (R, S, 3*h*w): colour rows, each image min-max scaled
        a = _host(rows, "rows")
        if a.ndim < 3 or 0 in a.shape[:2]:
            raise ConfigError(f"rows: expected shape (R, S, {int(np.prod(shape))}), got {a.shape}")
        tiles = color_images(a.reshape((-1,) + a.shape[2:]), shape, "rows")
        grid = _tile(tiles, a.shape[1], check_int("pad", pad, minimum=0), 1.0)
        return _save_rgb(grid, path, title=title, scale=scale)
    h, w = _check_shape(shape)
    a = _host(rows, "rows")
    if a.ndim not in (3, 4) or a.shape[2:] not in ((h * w,), (h, w)) or 0 in a.shape[:2]:
        raise ConfigError(f"rows: expected shape (R, S, {h * w}) or (R, S, {h}, {w}) with "
                          f"R, S >= 1, got {a.shape}")
    grid = image_grid(a.reshape((-1,) + a.shape[2:]), ncol=a.shape[1], shape=shape, pad=pad)
    return _save_rgb(_gray_to_rgb(grid), path, title=title, scale=scale)


# ----------------------------------------------------------------------------- curves

def _float(value, key):
    if value is None or value == "":
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"history[{key!r}]: {value!r} is not a number") from None


def _columns(history):
    """A list of dicts or a dict of lists -> dict of float64 arrays of one length n >= 1;
    a key a row lacks reads NaN there."""
    if isinstance(history, dict):
        cols = {k: [_float(v, k) for v in np.atleast_1d(np.asarray(vals, dtype=object))]
                for k, vals in history.items()}
        lengths = {len(v) for v in cols.values()}
        if len(lengths) > 1:
            raise ConfigError(f"history: columns of different lengths {sorted(lengths)}")
    else:
        rows = list(history)
        if not all(isinstance(r, dict) for r in rows):
            raise ConfigError("history: expected a list of dicts or a dict of lists")
        keys = list(dict.fromkeys(k for r in rows for k in r))
        cols = {k: [_float(r.get(k), k) for r in rows] for k in keys}
    cols = {k: np.asarray(v, dtype=np.float64) for k, v in cols.items()}
    if not cols or len(next(iter(cols.values()))) == 0:
        raise ConfigError("history is empty: nothing to plot")
    return cols


def save_loss_curves(history, path, title=None):
    """Two stacked panels against epoch (else step, else the row number; an axis with NaN or
    repeated values is passed over): the D and G losses
    (``d_loss``, ``g_loss``), and the mean D outputs (``d_real`` = D(x), ``d_fake`` = D(G(z)))
    with the equilibrium line at 1/2.

    history: a list of dicts (one per logged point) or a dict of lists; other keys (lr,
    momentum, seconds, ...) are ignored, missing values and NaN leave gaps, a single point is
    drawn as a marker. At least one of the four keys must be present. Returns the path.
    """
    _check_png(path)
    cols = _columns(history)
    if not {"d_loss", "g_loss", "d_real", "d_fake"} & cols.keys():
        raise ConfigError(f"history has none of d_loss, g_loss, d_real, d_fake "
                          f"(keys: {', '.join(cols) or 'none'})")
    n = len(next(iter(cols.values())))
    xlabel, x = "logged point", np.arange(n, dtype=np.float64)
    for key in ("step", "epoch"):   # epoch wins when it is complete and has no repeats
        if key in cols and np.isfinite(cols[key]).all() and len(np.unique(cols[key])) == n:
            xlabel, x = key, cols[key]
    style = {"marker": "o", "markersize": 3} if n <= 30 else {}

    fig = Figure(figsize=(8, 6.5), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    panels = [(top, "loss", [("d_loss", "D loss", "tab:blue"), ("g_loss", "G loss", "tab:orange")]),
              (bottom, "mean D output", [("d_real", "D(x), real", "tab:green"),
                                         ("d_fake", "D(G(z)), generated", "tab:red")])]
    for ax, ylabel, lines in panels:
        for key, label, color in lines:
            if key in cols:
                ax.plot(x, cols[key], label=label, color=color, linewidth=1.5, **style)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    bottom.axhline(0.5, color="gray", linestyle="--", linewidth=1, label="equilibrium 1/2")
    bottom.set_ylim(-0.03, 1.03)
    bottom.set_xlabel(xlabel)
    if n == 1:                            # one point: one tick, not a fractional scale
        bottom.set_xticks(x)
    elif np.array_equal(x, np.round(x)):  # whole epochs / steps: no fractional ticks
        bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (top, bottom):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=9)
    if title is not None:
        fig.suptitle(str(title))
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=_DPI))


# ----------------------------------------------------------------------------- metrics log

def _csv_line(values):
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


def _cell(value, key):
    """A number as CSV text that reads back exactly: ints as ints, floats by repr."""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return repr(_float(value, key))


def _fsync_dir(directory):
    with contextlib.suppress(OSError):   # some filesystems cannot open a directory
        fsync_path(directory, directory=True)


def append_history(path, row):
    """Append one dict of numbers to the CSV metrics log at ``path`` (created with a header
    row, from the row's keys, on the first write). Each row is flushed and fsynced, so a crash
    loses at most the row being written; a partial last line left by a crash is cut off (with a
    warning) before the next row goes in. A row whose keys differ from the header raises
    ConfigError (order does not matter: values follow the header). Returns the path.
    """
    path = Path(path)
    if not isinstance(row, dict) or not row:
        raise ConfigError(f"append_history: row must be a non-empty dict, got {row!r}")
    keys = [str(k) for k in row]
    values = {str(k): v for k, v in row.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    with open(path, "a+b") as f:
        f.seek(0)
        data = f.read()
        if data and not data.endswith(b"\n"):   # a crash cut the last line short
            cut = data.rfind(b"\n") + 1
            warnings.warn(f"{path}: dropping a partial last line ({len(data) - cut} bytes) "
                          "left by an interrupted write", stacklevel=2)
            f.truncate(cut)
            data = data[:cut]
        if data.lstrip().startswith(b"{"):
            raise ConfigError(f"{path} is a JSON-lines log; append_history writes CSV")
        if data:
            header = next(csv.reader([data.split(b"\n", 1)[0].decode("utf-8")]))
            if set(header) != set(keys) or len(header) != len(keys):
                added = [k for k in keys if k not in header]
                missing = [k for k in header if k not in keys]
                raise ConfigError(f"{path}: the columns changed (new: {added or 'none'}, "
                                  f"missing: {missing or 'none'}); write to a new file")
        else:
            header = keys
        line = _csv_line(header) if not data else ""
        line += _csv_line([_cell(values[k], k) for k in header])
        f.seek(0, os.SEEK_END)
        f.write(line.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())
    if created:
        _fsync_dir(path.parent)
    return path


def read_history(path):
    """Read a metrics log, CSV with a header row or JSON lines (one object per line), into a
    list of dicts of floats (empty cells, null and "nan" read NaN). A partial last line (no
    newline, cut short by a crash) is skipped with a warning; any other bad line raises
    DataError, a missing file DataError.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the metrics log ({type(exc).__name__}: "
                        f"{exc})") from None
    lines = text.splitlines()
    partial = bool(text) and not text.endswith("\n")
    jsonl = text.lstrip().startswith("{")
    rows = []
    header = None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            if jsonl:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError("not a JSON object")
                rows.append({k: _float(v, k) for k, v in obj.items()})
                continue
            cells = next(csv.reader([line]))
            if header is None:
                header = cells
                continue
            if len(cells) != len(header):
                raise ValueError(f"{len(cells)} cells under a header of {len(header)}")
            rows.append({k: _float(v, k) for k, v in zip(header, cells)})
        except (ValueError, ConfigError) as exc:
            if partial and number == len(lines):
                warnings.warn(f"{path}: skipping a partial last line {number} "
                              "(an interrupted write)", stacklevel=2)
                break
            raise DataError(f"{path}, line {number}: {exc}") from None
    return rows
