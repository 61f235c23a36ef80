"""tinygan.tools.plot: exact grid layout, PNGs that read back, the metrics log round trip."""

import math
import os

import numpy as np
import pytest
from matplotlib.image import imread

from tinygan.errors import ConfigError, DataError
from tinygan.tools.plot import (append_history, image_grid, read_history, save_interpolation_grid,
                          save_loss_curves, save_nearest_neighbour_grid, save_sample_grid)


def no_temp_files(directory):
    return not [p for p in os.listdir(directory) if p.endswith(".tmp") or p.startswith(".")]


def history(n=5):
    return [{"epoch": i + 1, "step": 100 * (i + 1), "d_loss": 0.7 - 0.01 * i,
             "g_loss": 0.8 + 0.02 * i, "d_real": 0.6, "d_fake": 0.4, "lr": 0.1} for i in range(n)]


# ----------------------------------------------------------------------------- image_grid

def test_image_grid_layout_exact():
    imgs = np.stack([np.full((2, 3), v, dtype=np.float32) for v in (0.1, 0.2, 0.3)])
    g = image_grid(imgs, ncol=2, shape=(2, 3), pad=1, pad_value=0.9)
    assert g.shape == (2 * (2 + 1) + 1, 2 * (3 + 1) + 1) and g.dtype == np.float32
    expected = np.full((7, 9), 0.9, dtype=np.float32)
    expected[1:3, 1:4] = 0.1     # tile 0: row 0, col 0
    expected[1:3, 5:8] = 0.2     # tile 1: row 0, col 1
    expected[4:6, 1:4] = 0.3     # tile 2: row 1, col 0; row 1 col 1 is unused -> pad_value
    np.testing.assert_array_equal(g, expected)


def test_image_grid_flat_input_default_ncol_and_pixel_order():
    imgs = np.arange(5 * 4, dtype=np.float32).reshape(5, 4) / 100    # 5 images of 2x2, flat
    g = image_grid(imgs, shape=(2, 2), pad=0)
    assert g.shape == (2 * 2, 3 * 2)                                   # ncol = ceil(sqrt(5)) = 3
    np.testing.assert_array_equal(g[0:2, 2:4], imgs[1].reshape(2, 2))  # row-major within a tile
    np.testing.assert_array_equal(g[2:4, 2:4], imgs[4].reshape(2, 2))
    np.testing.assert_array_equal(g[2:4, 4:6], np.ones((2, 2)))        # unused cell


def test_image_grid_clips_and_cleans():
    imgs = np.array([[[-0.5, 1.5], [np.nan, 0.25]]])
    g = image_grid(imgs, shape=(2, 2), pad=1, pad_value=0.0)
    np.testing.assert_array_equal(g[1:3, 1:3], [[0.0, 1.0], [0.0, 0.25]])
    u8 = image_grid(np.array([[[0, 255]]], dtype=np.uint8), shape=(1, 2), pad=0)
    np.testing.assert_array_equal(u8, [[0.0, 1.0]])


@pytest.mark.parametrize("bad", [np.zeros((3, 783)), np.zeros(784), np.zeros((2, 28, 27)),
                                 np.zeros((0, 784)), np.array([["a"] * 784])])
def test_image_grid_bad_shapes(bad):
    with pytest.raises(ConfigError):
        image_grid(bad)


@pytest.mark.parametrize("kw", [{"ncol": 0}, {"pad": -1}, {"pad_value": 2.0},
                                {"shape": (28,)}, {"ncol": 2.5}])
def test_image_grid_bad_options(kw):
    with pytest.raises(ConfigError):
        image_grid(np.zeros((4, 784)), **kw)


# ----------------------------------------------------------------------------- PNGs

def test_sample_grid_png_pixel_exact(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.random((6, 784), dtype=np.float32)
    out = tmp_path / "new" / "dir" / "samples.png"
    got = save_sample_grid(imgs, out, ncol=3)
    assert got == out and out.is_file()
    png = imread(out)
    grid = image_grid(imgs, ncol=3)
    assert png.shape[:2] == grid.shape == (2 * 30 + 2, 3 * 30 + 2)
    # ink is white: the PNG's grey level is the pixel value (8-bit), background pad is white
    np.testing.assert_allclose(png[..., 0], grid, atol=1 / 255 + 1e-6)
    np.testing.assert_array_equal(png[..., 0], png[..., 1])
    assert no_temp_files(out.parent)


def test_sample_grid_scale_and_title(tmp_path):
    imgs = np.zeros((4, 784), dtype=np.float32)
    png = imread(save_sample_grid(imgs, tmp_path / "big.png", scale=3))
    assert png.shape[:2] == (3 * 62, 3 * 62)
    titled = imread(save_sample_grid(imgs, tmp_path / "t.png", title="epoch 7"))
    assert titled.shape[0] > 62 and titled.shape[1] >= 62
    assert no_temp_files(tmp_path)


def test_nearest_neighbour_and_interpolation_pngs(tmp_path):
    rng = np.random.default_rng(1)
    s, nb = rng.random((5, 784)), rng.random((5, 28, 28))
    png = imread(save_nearest_neighbour_grid(s, nb, tmp_path / "nn.png", ncol=2, scale=1))
    # a pair is (28+2) x 2(28+2); 2 pairs per row, 3 rows, gaps of 2*pad = 4
    assert png.shape[:2] == (3 * (30 + 4) + 4, 2 * (60 + 4) + 4)
    assert np.allclose(png[4, 4 + 30, :3], (1.0, 0.8, 0.0), atol=1 / 255)  # frame corner
    rows = rng.random((3, 7, 784))
    png = imread(save_interpolation_grid(rows, tmp_path / "interp.png", scale=1))
    assert png.shape[:2] == (3 * 30 + 2, 7 * 30 + 2)
    imread(save_interpolation_grid(rows, tmp_path / "interp_t.png", title="z1 -> z2"))
    assert no_temp_files(tmp_path)


def test_png_functions_reject_bad_input(tmp_path):
    with pytest.raises(ConfigError):
        save_nearest_neighbour_grid(np.zeros((4, 784)), np.zeros((3, 784)), tmp_path / "a.png")
    with pytest.raises(ConfigError):
        save_interpolation_grid(np.zeros((4, 784)), tmp_path / "b.png")
    with pytest.raises(ConfigError):
        save_sample_grid(np.zeros((4, 784)), tmp_path / "c.jpg")
    with pytest.raises(ConfigError):
        save_sample_grid(np.zeros((4, 784)), tmp_path / "d.png", scale=0)
    assert os.listdir(tmp_path) == []


def test_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    import tinygan.tools.plot as plot

    def broken(f, *args, **kwargs):
        f.write(b"half a png")
        raise OSError("disk full")

    monkeypatch.setattr(plot, "imsave", broken)
    with pytest.raises(OSError):
        save_sample_grid(np.zeros((4, 784)), tmp_path / "x.png")
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- loss curves

def test_loss_curves_list_of_dicts(tmp_path):
    png = imread(save_loss_curves(history(), tmp_path / "curves.png", title="mnist"))
    assert png.ndim == 3 and png.shape[0] > 100
    assert no_temp_files(tmp_path)


def test_loss_curves_nan_single_point_dict_of_lists(tmp_path):
    rows = history(4)
    rows[2]["g_loss"] = math.nan
    del rows[1]["d_fake"]                      # a missing key reads NaN
    save_loss_curves(rows, tmp_path / "nan.png")
    save_loss_curves(history(1), tmp_path / "one.png")
    save_loss_curves({"step": [1, 2], "d_loss": [0.7, float("nan")]}, tmp_path / "cols.png")
    save_loss_curves({"d_real": [math.nan], "d_fake": [math.nan]}, tmp_path / "allnan.png")
    assert sorted(os.listdir(tmp_path)) == ["allnan.png", "cols.png", "nan.png", "one.png"]


@pytest.mark.parametrize("bad", [[], {"epoch": [1, 2]}, {"d_loss": [1, 2], "g_loss": [1]},
                                 [{"d_loss": "high"}], [1, 2]])
def test_loss_curves_bad_history(tmp_path, bad):
    with pytest.raises(ConfigError):
        save_loss_curves(bad, tmp_path / "bad.png")


# ----------------------------------------------------------------------------- metrics log

def test_history_csv_round_trip(tmp_path):
    path = tmp_path / "run" / "metrics.csv"
    rows = history(3)
    rows[1]["d_loss"] = math.nan
    rows[2]["g_loss"] = np.float32(0.1)                 # numpy scalars are fine
    rows[2] = dict(reversed(list(rows[2].items())))     # key order does not matter
    for r in rows:
        append_history(path, r)
    text = path.read_text()
    assert text.splitlines()[0] == "epoch,step,d_loss,g_loss,d_real,d_fake,lr"
    assert text.splitlines()[1].startswith("1,100,0.7,0.8,")
    back = read_history(path)
    assert len(back) == 3 and all(isinstance(v, float) for r in back for v in r.values())
    assert back[0] == {k: float(v) for k, v in rows[0].items()}
    assert math.isnan(back[1]["d_loss"]) and back[1]["g_loss"] == rows[1]["g_loss"]
    assert back[2]["g_loss"] == float(np.float32(0.1))
    save_loss_curves(back, tmp_path / "curves.png")     # what the training loop does
    assert no_temp_files(path.parent)


def test_history_column_change_raises(tmp_path):
    path = tmp_path / "metrics.csv"
    append_history(path, {"epoch": 1, "d_loss": 0.5})
    with pytest.raises(ConfigError, match="parzen"):
        append_history(path, {"epoch": 2, "d_loss": 0.4, "parzen": 200.0})
    with pytest.raises(ConfigError, match="d_loss"):
        append_history(path, {"epoch": 2})
    with pytest.raises(ConfigError):
        append_history(path, {"epoch": "two", "d_loss": 0.4})
    assert len(read_history(path)) == 1


def test_history_partial_last_line(tmp_path):
    path = tmp_path / "metrics.csv"
    append_history(path, {"epoch": 1, "d_loss": 0.5})
    with open(path, "a") as f:
        f.write("2")                                    # a crash mid-row: one cell, no newline
    with pytest.warns(UserWarning, match="partial"):
        assert read_history(path) == [{"epoch": 1.0, "d_loss": 0.5}]
    with pytest.warns(UserWarning, match="partial"):
        append_history(path, {"epoch": 2, "d_loss": 0.25})
    assert read_history(path) == [{"epoch": 1.0, "d_loss": 0.5}, {"epoch": 2.0, "d_loss": 0.25}]


def test_read_history_jsonl_and_errors(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"step": 1, "d_loss": 0.5, "parzen": null}\n\n{"step": 2, "d_loss": 0.4}\n')
    back = read_history(path)
    assert back[1] == {"step": 2.0, "d_loss": 0.4} and math.isnan(back[0]["parzen"])
    with pytest.raises(ConfigError):
        append_history(path, {"step": 3, "d_loss": 0.3})
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n1,2,3\n4,5\n")
    with pytest.raises(DataError, match="line 3"):
        read_history(bad)
    with pytest.raises(DataError):
        read_history(tmp_path / "missing.csv")
