"""tinygan lab: the server's endpoints in-process, the command through a subprocess, and the
page in a real headless Chromium (driven through chromedriver's WebDriver HTTP API with
urllib: no new dependency). Without Chromium the browser test skips."""

import base64
import http.client
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tinygan.backend import cupy_usable
from tinygan.tools import lab as labmod

REPO = Path(__file__).resolve().parents[2]


# --- an in-process server ------------------------------------------------------------------
class Client:
    def __init__(self, server):
        self.server = server
        self.port = server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"

    def request(self, method, path, body=None, headers=None, raw=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        hdrs = {"Host": self.host}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for k, v in hdrs.items():
            conn.putheader(k, v)
        if data is not None and "Content-Length" not in hdrs:
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders()
        if data is not None:
            conn.send(data)
        r = conn.getresponse()
        payload = r.read()
        conn.close()
        ctype = r.getheader("Content-Type", "")
        return r.status, (json.loads(payload) if ctype.startswith("application/json")
                          else payload.decode())

    def get(self, path="/api/state", **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, {} if body is None else body, **kw)

    def state(self, both=False):
        status, s = self.get(f"/api/state?both={int(both)}")
        assert status == 200, s
        return s


@pytest.fixture
def client():
    server = labmod.serve("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield Client(server)
    server.close()
    assert not server.lab._thread.is_alive(), "the training loop outlived the server"


def wait_for(predicate, timeout=15.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# --- endpoints -------------------------------------------------------------------------------
def test_page_and_static_files(client):
    status, page = client.get("/")
    assert status == 200 and "/static/lab.js" in page and "<canvas" in page
    for name in ("lab.js", "lab.css"):
        status, text = client.get(f"/static/{name}")
        assert status == 200 and len(text) > 500
    for bad in ("/static/../lab.py", "/static/lab.py", "/etc/passwd", "/static/"):
        status, body = client.get(bad)
        assert status == 404 and "error" in body


def test_state_holds_every_view(client):
    s = client.state()
    assert s["step"] == 0 and s["playing"] is False and s["dim"] == 2
    samples = np.asarray(s["samples"])
    assert samples.shape == (labmod.N_VIEW, 2) and np.isfinite(samples).all()
    assert np.asarray(s["real"]).shape == (labmod.N_VIEW, 2)
    heat = np.asarray(s["heatmap"]["values"])
    assert heat.shape == (s["heatmap"]["n"] ** 2,) and (heat >= 0).all() and (heat <= 1).all()
    assert list(s["arrows"]) == ["nonsaturating"]
    assert np.asarray(s["arrows"]["nonsaturating"]).shape == samples.shape
    assert len(s["modes"]) == 8
    both = client.state(both=True)
    assert sorted(both["arrows"]) == ["minimax", "nonsaturating"]


def test_step_trains_and_records_gradient_norms(client):
    before = client.state()
    status, r = client.post("/api/step", {"steps": 20})
    assert status == 200 and r["step"] == 20
    after = client.state()
    assert after["step"] == 20
    moved = np.abs(np.asarray(after["samples"]) - np.asarray(before["samples"])).max()
    assert moved > 1e-3, "G's samples did not move after 20 steps"
    h = after["history"]
    assert h["step"][-1] == 20
    layer_keys = [k for k in h if k.startswith("grad_G.") or k.startswith("grad_D.")]
    assert len(layer_keys) == 6                   # 3 weight matrices in each network
    for key in layer_keys + ["grad_x", "grad_x_minimax", "grad_x_nonsaturating"]:
        assert h[key][-1] is not None and h[key][-1] > 0, key
    assert 0 <= h["saturated_fraction"][-1] <= 1
    assert h["grad_ratio"][-1] == pytest.approx(
        h["grad_x_minimax"][-1] / h["grad_x_nonsaturating"][-1], rel=1e-3)
    assert 0 <= h["modes_covered"][-1] <= 8


def test_start_and_pause(client):
    status, _ = client.post("/api/start")
    assert status == 200
    wait_for(lambda: client.state()["step"] >= 30, what="training to run")
    assert client.state()["playing"] is True
    client.post("/api/pause")
    a = client.state()["step"]                  # at most the step in flight comes after
    time.sleep(0.3)
    b = client.state()
    assert a <= b["step"] <= a + 1 and b["playing"] is False
    time.sleep(0.3)
    assert client.state()["step"] == b["step"]


def test_objective_arrows_side_by_side_differ_by_the_saturation_factor(client):
    client.post("/api/step", {"steps": 200})
    s = client.state(both=True)
    ns, mm = (np.asarray(s["arrows"][k]) for k in ("nonsaturating", "minimax"))
    d = np.asarray(s["d_samples"])
    # per sample: minimax dl/dl = -D, non-saturating -(1 - D), so a_mm = a_ns * D / (1 - D)
    ok = (np.linalg.norm(ns, axis=1) > 0.05) & (d > 0.05) & (d < 0.95)
    assert ok.sum() > 20
    expected = ns[ok] * (d[ok] / (1 - d[ok]))[:, None]
    assert np.abs(mm[ok] - expected).max() < 5e-3
    assert np.abs(mm - ns).max() > 1e-2


def test_settings_live_and_rebuilding(client):
    client.post("/api/step", {"steps": 5})
    status, r = client.post("/api/settings", {"objective": "minimax", "lr_g": 5e-4})
    assert status == 200 and r["settings"]["objective"] == "minimax"
    s = client.state()
    assert s["step"] == 5 and list(s["arrows"]) == ["minimax"]       # live: no reset
    assert client.server.lab.gan.g_opt.lr == 5e-4
    status, r = client.post("/api/settings", {"schedule": "alternating", "k": 3})
    assert status == 200
    client.post("/api/step", {"steps": 1})
    assert client.server.lab.gan.k == 3 and client.server.lab.context["d_in"].shape[0] == 128
    version = s["version"]
    status, r = client.post("/api/settings", {"optimizer": "sgd", "momentum": 0.7})
    assert status == 200
    s = client.state()
    assert s["step"] == 6 and type(client.server.lab.gan.g_opt).__name__ == "SGD"
    assert client.server.lab.gan.g_opt.momentum == 0.7
    status, r = client.post("/api/settings", {"hidden": 16})              # a new model
    s = client.state()
    assert status == 200 and s["step"] == 0 and s["version"] > version
    status, r = client.post("/api/reset", {"seed": 7})
    assert status == 200 and client.state()["settings"]["seed"] == 7


def test_one_dimensional_gaussian(client):
    status, _ = client.post("/api/settings", {"dataset": "gauss1d"})
    assert status == 200
    client.post("/api/step", {"steps": 3})
    s = client.state()
    assert s["dim"] == 1 and np.asarray(s["samples"]).shape == (labmod.N_VIEW, 1)
    assert len(s["heatmap"]["values"]) == s["heatmap"]["n"] and s["modes"] == []
    assert s["history"]["sample_std"][-1] > 0


@pytest.mark.parametrize("path, body, fragment", [
    ("/api/settings", {"lr_g": -1}, "lr_g"),
    ("/api/settings", {"lr_d": "fast"}, "lr_d"),
    ("/api/settings", {"k": 2.5}, "k (discriminator steps"),
    ("/api/settings", {"k": 3}, "alternating"),
    ("/api/settings", {"objective": "wasserstein"}, "objective"),
    ("/api/settings", {"hidden": 100000}, "at most"),
    ("/api/settings", {"d_keep": 1.5}, "d_keep"),
    ("/api/settings", {"learning_rate": 1}, "unknown setting"),
    ("/api/step", {"steps": "many"}, "steps"),
    ("/api/step", {"steps": 0}, "steps"),
    ("/api/reset", {"seed": -1}, "seed"),
    ("/api/start", {"now": True}, "takes no fields"),
])
def test_bad_values_are_one_line_errors(client, path, body, fragment):
    settings = client.state()["settings"]
    status, r = client.post(path, body)
    assert status == 400, r
    assert fragment in r["error"] and "\n" not in r["error"] and "Traceback" not in r["error"]
    assert client.state()["settings"] == settings            # nothing changed


def test_bad_requests(client):
    status, r = client.request("POST", "/api/settings", raw=b"{not json",
                               headers={"Content-Type": "application/json"})
    assert status == 400 and "not JSON" in r["error"]
    status, r = client.request("POST", "/api/settings", raw=b"[1, 2]",
                               headers={"Content-Type": "application/json"})
    assert status == 400 and "object" in r["error"]
    status, r = client.request("POST", "/api/settings", raw=b'{"k": 1}',
                               headers={"Content-Type": "text/plain"})
    assert status == 415
    status, r = client.post("/api/nothing")
    assert status == 404
    status, r = client.request("PUT", "/api/state")
    assert status == 405
    assert client.state()["step"] == 0                         # still serving


def test_host_and_origin_are_checked(client):
    port = client.port
    for host in (f"evil.example:{port}", f"127.0.0.1:{port + 1}", "127.0.0.1", ""):
        status, r = client.get(headers={"Host": host})
        assert status == 403 and "Host" in r["error"], host
    status, _ = client.get(headers={"Host": f"localhost:{port}"})
    assert status == 200
    for origin in ("http://evil.example", f"http://evil.example:{port}",
                   f"https://127.0.0.1:{port}", "null"):
        status, r = client.post("/api/start", headers={"Origin": origin})
        assert status == 403 and "Origin" in r["error"], origin
    assert client.state()["playing"] is False                  # the refused start did nothing
    status, _ = client.post("/api/pause", headers={"Origin": f"http://127.0.0.1:{port}"})
    assert status == 200


def test_request_bodies_are_bounded(client):
    # the length alone is refused: the server does not wait for (or read) the body
    status, r = client.request("POST", "/api/settings", raw=b"{}",
                               headers={"Content-Type": "application/json",
                                        "Content-Length": str(labmod.MAX_BODY + 1)})
    assert status == 413 and str(labmod.MAX_BODY) in r["error"]
    big = {"lr_g": 1e-3, "pad": "x" * (2 * labmod.MAX_BODY)}
    status, r = client.post("/api/settings", big)
    assert status == 413
    status, r = client.request("POST", "/api/settings", raw=b"{}",
                               headers={"Content-Type": "application/json",
                                        "Transfer-Encoding": "chunked"})
    assert status == 411
    assert client.state()["step"] == 0


def test_gradcheck_endpoint(client):
    client.post("/api/step", {"steps": 50})
    status, r = client.post("/api/gradcheck")
    assert status == 200 and r["passed"] is True and r["step"] == 50
    titles = [s["title"] for s in r["sections"]]
    assert titles == ["G", "D", "G through D, nonsaturating"]
    assert "worst: where, analytic, numerical" in r["text"]
    for sec in r["sections"]:
        for row in sec["rows"]:
            assert row["rel_error"] < 1e-6 and row["worst"] is not None
    assert "128 real rows" in r["sections"][2]["detail"]


def test_gradcheck_freezes_the_last_steps_dropout_masks(client):
    client.post("/api/settings", {"d_keep": 0.5, "schedule": "alternating", "k": 2,
                                  "objective": "minimax"})
    client.post("/api/step", {"steps": 10})
    lab = client.server.lab
    mask = lab.context["masks"][0]
    assert mask is not None and (mask == 0).any()              # a real mask was kept
    status, r = client.post("/api/gradcheck")
    assert status == 200 and r["passed"] is True, r["text"]
    assert "dropout masks of that step frozen" in r["sections"][1]["detail"]
    assert r["sections"][2]["title"] == "G through D, minimax"


def test_gradcheck_catches_a_wrong_backward(client, monkeypatch):
    """Bug injection: a LeakyReLU backward off by 10% must FAIL in the page's table."""
    from tinygan import layers
    client.post("/api/step", {"steps": 10})
    real_backward = layers.LeakyReLU.backward

    def wrong(self, dy, *a, **kw):
        dx = real_backward(self, dy, *a, **kw)
        return None if dx is None else dx * 1.1
    monkeypatch.setattr(layers.LeakyReLU, "backward", wrong)
    status, r = client.post("/api/gradcheck")
    assert status == 200 and r["passed"] is False
    failed = {s["title"] for s in r["sections"] if not s["passed"]}
    assert {"D", "G through D, nonsaturating"} <= failed and "FAIL" in r["text"]


def test_training_error_reaches_the_page(client, monkeypatch):
    """An exception in the training thread is an error line in the state, not a traceback."""
    def boom(self, real):
        raise RuntimeError("injected failure")
    monkeypatch.setattr(labmod.GAN, "train_step", boom)
    client.post("/api/start")
    s = wait_for(lambda: (lambda s: s if s["error"] else None)(client.state()),
                 what="the error to show")
    assert "injected failure" in s["error"] and s["playing"] is False


def test_validate_settings_uses_the_shared_checks():
    with pytest.raises(labmod.ConfigError, match="k > 1 needs schedule 'alternating'"):
        labmod.validate_settings({"k": 2})
    s = labmod.validate_settings({"schedule": "alternating", "k": 2, "lr_g": 1})
    assert s["k"] == 2 and s["lr_g"] == 1.0


# --- the command --------------------------------------------------------------------------------
def _start_command(*args, env=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    proc = subprocess.Popen([sys.executable, "-m", "tinygan", "lab", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    return proc, line


def test_command_serves_and_ctrl_c_stops_in_one_line_while_training():
    proc, line = _start_command("--seed", "3")
    try:
        assert line.startswith("tinygan lab: http://127.0.0.1:"), line
        url = line.split()[2]
        with urllib.request.urlopen(url + "api/state", timeout=20) as r:
            state = json.loads(r.read())
        assert state["settings"]["seed"] == 3
        start = urllib.request.Request(url + "api/start", data=b"{}", method="POST",
                                       headers={"Content-Type": "application/json"})
        urllib.request.urlopen(start, timeout=20).read()
        wait_for(lambda: json.loads(urllib.request.urlopen(url + "api/state", timeout=20)
                                    .read())["step"] > 0, what="training")
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert err.strip().splitlines() == ["tinygan lab: stopped"], err


def test_command_open_starts_the_browser_with_the_url(tmp_path):
    opened = tmp_path / "opened.txt"
    browser = (f"{sys.executable} -c \"import sys; open(sys.argv[1], 'w').write(sys.argv[2])\" "
               f"{opened} %s")
    proc, line = _start_command("--open", env={"BROWSER": browser})
    try:
        url = line.split()[2]
        wait_for(lambda: opened.exists() and opened.read_text(), what="the browser command")
        assert opened.read_text() == url
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    assert proc.returncode == 0


def test_command_warns_for_another_address_and_refuses_bad_flags():
    proc, line = _start_command("--host", "127.0.0.2")
    try:
        assert line.startswith("tinygan lab: http://127.0.0.2:"), line
    finally:
        proc.send_signal(signal.SIGTERM)                       # stops as Ctrl-C does
        _, err = proc.communicate(timeout=20)
    assert "warning: listening on 127.0.0.2" in err
    assert proc.returncode == 0 and err.strip().endswith("tinygan lab: stopped")
    r = subprocess.run([sys.executable, "-m", "tinygan", "lab", "--port", "70000"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--port" in r.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "tinygan", "lab", "--port", str(port)],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.startswith(f"tinygan lab: error: port {port} ")
    assert len(r.stderr.strip().splitlines()) == 1 and "in use" in r.stderr
    if not cupy_usable()[0]:                                  # no GPU: one line, exit 1
        r = subprocess.run([sys.executable, "-m", "tinygan", "lab", "--backend", "cupy"],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and r.stderr.startswith("tinygan lab: error:")
        assert len(r.stderr.strip().splitlines()) == 1


# --- a real browser --------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1400,1240", "--hide-scrollbars"]


class WebDriver:
    """The few WebDriver commands the test needs, over chromedriver's HTTP API."""

    def __init__(self, user_data_dir):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([CHROMEDRIVER, f"--port={port}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._ready, timeout=20, what="chromedriver")
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": CHROMIUM, "args": CHROME_FLAGS + [f"--user-data-dir={user_data_dir}"]}}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def _ready(self):
        try:
            return self.call("GET", "/status").get("ready")
        except OSError:
            return False

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())["value"]

    def cmd(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def js(self, script):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": []})

    def click(self, css):
        el = self.cmd("POST", "/element", {"using": "css selector", "value": css})
        self.cmd("POST", f"/element/{next(iter(el.values()))}/click", {})

    def close(self):
        try:
            self.cmd("DELETE", "")
        finally:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def _png_pixels(png):
    import matplotlib.image as mpimg
    return mpimg.imread(io.BytesIO(png), format="png")


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                    reason="no chromium/chromedriver (apt-get install chromium chromium-driver)")
def test_browser_play_pause_objective_screenshot(client, tmp_path):
    client.post("/api/settings", {"speed": 3000})
    driver = WebDriver(tempfile.mkdtemp(prefix="tinygan-chromium-", dir=tmp_path))

    def page_state():
        return driver.js("return window.lab.state")

    def text_of(element_id):
        return driver.js(f"return document.getElementById('{element_id}').textContent")

    def steady_state():
        """The page's state once two frames 0.3 s apart show the same step."""
        first = page_state()
        time.sleep(0.3)
        second = page_state()
        return second if second["step"] == first["step"] else None
    try:
        driver.cmd("POST", "/url", {"url": f"http://127.0.0.1:{client.port}/"})
        wait_for(lambda: driver.js("return window.lab && window.lab.frames >= 2"),
                 what="the page's first frames")
        before = page_state()
        assert before["step"] == 0 and not before["playing"]

        driver.click("#play")
        wait_for(lambda: page_state()["step"] >= 2500, timeout=30,
                 what="training to run from the page")
        driver.click("#pause")
        wait_for(lambda: not page_state()["playing"], what="pause")
        paused = wait_for(steady_state, what="a steady paused state")
        moved = np.abs(np.asarray(paused["samples"]) - np.asarray(before["samples"])).max()
        assert moved > 0.05, "the samples did not move"

        driver.click("select[data-setting=objective] option[value=minimax]")
        after = wait_for(lambda: (lambda s: s if "minimax" in s["arrows"] else None)(page_state()),
                         what="the objective to change")
        assert after["settings"]["objective"] == "minimax"
        assert after["step"] == paused["step"]                 # the same G and D ...
        old = np.asarray(paused["arrows"]["nonsaturating"])
        new = np.asarray(after["arrows"]["minimax"])
        assert np.abs(new - old).max() > 1e-2                   # ... other arrows
        assert "minimax" in text_of("field-caption")

        driver.click("#both")
        wait_for(lambda: driver.js("return !document.getElementById('field2-fig').hidden"),
                 what="the second panel")
        driver.click("#gradcheck")
        text = wait_for(lambda: (lambda t: t if "all pass" in t or "FAIL" in t else None)(
            text_of("gradcheck-out")), timeout=30, what="the gradient check table")
        assert "all pass" in text and "worst: where, analytic, numerical" in text
        # the field canvas really holds a picture: the heatmap's, dots' and arrows' colours
        distinct = driver.js("""
            const c = document.getElementById('field');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const seen = new Set();
            for (let i = 0; i < d.length; i += 4 * 7) seen.add(d[i] << 16 | d[i+1] << 8 | d[i+2]);
            return seen.size;""")
        assert distinct > 50
        assert driver.js("return window.lab.fps") > 1
        driver.js("window.scrollTo(0, 0)")
        png = base64.b64decode(driver.cmd("GET", "/screenshot"))
    finally:
        driver.close()
    pixels = _png_pixels(png)[..., :3]
    assert pixels.shape[0] > 600 and pixels.shape[1] > 1000
    assert pixels.std() > 0.1                                  # not blank
    assert len(np.unique((pixels[::4, ::4] * 255).astype(int).reshape(-1, 3), axis=0)) > 200
    (tmp_path / "lab.png").write_bytes(png)
    target = os.environ.get("TINYGAN_LAB_SCREENSHOT")          # docs/images/lab.png for the README
    if target:
        Path(target).write_bytes(png)


def test_frame_rate_measurement_runs():
    """python -m tinygan.tools.lab_fps (the README's frame-rate figure), briefly."""
    from tinygan.tools import lab_fps
    r = lab_fps.measure(seconds=1.0, wait_ms=20)
    assert r["requests_per_s"] > 1 and r["frames_per_s"] > 1 and r["steps_per_s"] > 10
    assert r["p95_ms"] >= r["mean_ms"] * 0.5 > 0


def _cupy_emulation():
    try:                                       # where the emulation lives after issue 22
        from tinygan.testing import cupy_emulation
    except ImportError:
        from tinygan.tools import cupy_emulation
    return cupy_emulation


def test_lab_on_cupy_syncs_per_record_not_per_step():
    """--backend cupy, on the CuPy emulation: the training steps make no host sync and no
    upload; the chart row costs the same two copies whatever the number of steps."""
    emu = _cupy_emulation()
    with emu.installed(14):
        lab = labmod.Lab("cupy", {"d_keep": 0.8})
        counts = []
        for n in (1, 15):
            with emu.counting() as c:
                lab.step(n)
            counts.append((len(c.syncs), len(c.h2d)))
        assert counts[0] == counts[1] and counts[0][1] == 0 and counts[0][0] <= 3, counts
        frame = lab.frame(both=True)
        assert frame["backend"] == "cupy" and frame["step"] == 16
        assert lab.gradcheck()["passed"]


def test_readme_section_links_resolve():
    """README "Watch it learn": the screenshot exists and every link into docs/gradients.md
    (and within the README) names a real heading."""
    import re
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Watch it learn"):]
    section = section[:section.index("\n## ", 1)]
    assert "tinygan lab" in section and (REPO / "docs/images/lab.png").is_file()

    def slugs(text):
        return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
                for h in re.findall(r"^#+ (.+)$", text, re.M)}
    gradients, own = slugs((REPO / "docs/gradients.md").read_text()), slugs(readme)
    links = re.findall(r"\]\(([^)\s]+)\)", section)
    assert sum(link.startswith("docs/gradients.md#") for link in links) >= 4
    for link in links:
        path, _, anchor = link.partition("#")
        if path.startswith("docs/gradients.md"):
            assert anchor in gradients, link
        elif not path:
            assert anchor in own, link
        else:
            assert (REPO / path).is_file(), link


def test_a_refused_post_body_is_not_read_as_the_next_request(client):
    """Keep-alive: after refusing a POST unread, the server closes the connection, so the
    body cannot be taken for a second request."""
    smuggled = b"POST /api/start HTTP/1.1\r\nHost: " + client.host.encode() + \
        b"\r\nContent-Length: 0\r\n\r\n"
    with socket.create_connection(("127.0.0.1", client.port), timeout=10) as s:
        s.sendall(b"POST /api/pause HTTP/1.1\r\nHost: evil.example\r\nContent-Length: "
                  + str(len(smuggled)).encode() + b"\r\n\r\n" + smuggled)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 403") and reply.count(b"HTTP/1.1") == 1
    time.sleep(0.1)
    assert client.state()["playing"] is False
