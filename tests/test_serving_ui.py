"""The upload page of `kubeface serve`, driven in headless Chromium with Playwright.

The server is a real `kubeface serve` child process on 127.0.0.1 with a model trained from the
demo photos. The browser is Debian's chromium package (never a downloaded one). Every request
the browser makes is checked: anything outside the server's origin (or outside the path prefix
in the prefix test) is aborted and fails the test, so the page provably loads nothing from
the internet. Each value the page shows is compared with the response the API returns for the
same file, fetched with httpx.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from kubeface.catalog import split_model_uri
from kubeface.errors import ConfigurationError
from kubeface.serving import ui
from kubeface.serving.local import start_server
from kubeface.serving.settings import ServingSettings

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
APT_TIMEOUT_S = 600
MAX_BODY_BYTES = 2 * 1024 * 1024
PHOTO = "Colin_Powell/Colin_Powell_0038.jpg"
PERSON = "Colin_Powell"
GROUP_PHOTO = "awkward/group/jasmcaus_group_2.jpg"
# Where test_group_photo_screenshot also saves its screenshot (the README's docs/ui.png).
SCREENSHOT_ENV = "KUBEFACE_UI_SCREENSHOT"
# KServe's path-based ingress serves a predictor under /serving/NAMESPACE/NAME/ and strips the prefix.
PREFIX = "/serving/kubeface/faces"
WAIT_MS = 120_000


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium, installed with apt-get when missing and this process is root."""
    pytest.importorskip("playwright.sync_api", reason="Playwright is missing: pip install -e '.[test]'")
    output = ""
    if not CHROMIUM.exists() and os.geteuid() == 0 and shutil.which("apt-get"):
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        # The package lists may be missing or stale, so the install is retried once after an update.
        for commands in ([["apt-get", "install", "-y", "chromium"]],
                         [["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]]):
            for command in commands:
                try:
                    done = subprocess.run(command, check=False, timeout=APT_TIMEOUT_S, capture_output=True,
                                          text=True, env=environment)
                    output = (done.stdout + done.stderr)[-500:]
                except subprocess.TimeoutExpired:
                    output = f"{' '.join(command)} timed out after {APT_TIMEOUT_S} s"
            if CHROMIUM.exists():
                break
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing and could not be installed ({output or 'not root'}); install it "
                    "with: apt-get update && apt-get install -y chromium")
    return CHROMIUM


@pytest.fixture(scope="module")
def server(trained_model, tmp_path_factory):
    running = start_server(trained_model, extra_args=["--no-grpc", "--max-body-bytes", str(MAX_BODY_BYTES)],
                           log_dir=tmp_path_factory.mktemp("serve"))
    try:
        running.wait(f"/v2/models/{running.name}/ready")
        yield running
    finally:
        exit_code = running.stop()
    assert exit_code == 0, running.log()[-4000:]


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=120) as session:
        yield session


@pytest.fixture(scope="module")
def browser_context(chromium, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(chromium), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


class RequestGuard:
    """Serve the page's requests inside allowed_prefix, and abort and record any other request.

    With a strip_prefix, a request under it goes to target with the prefix removed, as
    KServe's ingress does.
    """

    def __init__(self, target: str, allowed_prefix: str, strip_prefix: str = ""):
        self.target = target
        self.allowed_prefix = allowed_prefix
        self.strip_prefix = strip_prefix
        self.served: list[str] = []
        self.blocked: list[str] = []

    def __call__(self, route):
        url = route.request.url
        if not url.startswith(self.allowed_prefix):
            self.blocked.append(url)
            route.abort()
            return
        self.served.append(url)
        if not self.strip_prefix:
            route.continue_()
            return
        parts = urlsplit(url)
        path = parts.path.removeprefix(self.strip_prefix) or "/"
        forwarded = self.target + path + (f"?{parts.query}" if parts.query else "")
        route.fulfill(response=route.fetch(url=forwarded))


@pytest.fixture
def page(browser_context, server):
    guard = RequestGuard(server.url, server.url + "/")
    tab = browser_context.new_page()
    tab.route("**/*", guard)
    tab.guard = guard
    yield tab
    tab.close()
    assert guard.blocked == []


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


# Waits use Playwright's locators: wait_for_function evaluates strings with eval, which the page's
# Content-Security-Policy blocks, and the tests keep that policy in force.
def open_page(tab, url: str) -> None:
    tab.goto(url)
    expect(tab.locator("#model-state")).to_have_text("ready", timeout=WAIT_MS)


def upload(tab, name: str, data: bytes, mime_type: str = "image/jpeg"):
    """Choose one file in the page and return its result section once the response is shown."""
    count = tab.locator("section.photo").count()
    tab.set_input_files("#files", files=[{"name": name, "mimeType": mime_type, "buffer": data}])
    section = tab.locator("section.photo").first
    expect(tab.locator("section.photo")).to_have_count(count + 1, timeout=WAIT_MS)
    section.locator(".result, .error").wait_for(timeout=WAIT_MS)
    return section


def predict(client, server, data: bytes) -> httpx.Response:
    return client.post(f"/v1/models/{server.name}:predict", params={"annotate": "true"}, content=data,
                       headers={"Content-Type": "application/octet-stream"})


def image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def check_faces(section, prediction: dict) -> None:
    """Assert the page's face table shows exactly the faces of the API's prediction."""
    rows = section.locator("tr.face")
    assert rows.count() == len(prediction["faces"])
    for index, face in enumerate(prediction["faces"]):
        row = rows.nth(index)
        assert row.locator("td.name").inner_text() == (face["label"] or "unknown")
        assert row.locator("td.probability").inner_text() == f"{face['probability']:.3f}"
        assert row.locator("td.distance").inner_text() == f"{face['distance']:.3f}"
        x1, y1, x2, y2 = face["box"]
        assert row.locator("td.box").inner_text() == f"{round(x1)}, {round(y1)}\n{round(x2)}, {round(y2)}"
        crop_width = row.locator("canvas.crop").evaluate("canvas => canvas.width")
        crop_height = row.locator("canvas.crop").evaluate("canvas => canvas.height")
        assert crop_width == pytest.approx(crop_height * (x2 - x1) / (y2 - y1), abs=2)


def test_page_names_demo_photo(page, server, client, trained_model, demo_root):
    data = (demo_root / "test" / PHOTO).read_bytes()
    expected = predict(client, server, data).json()
    open_page(page, server.url + "/")

    section = upload(page, "Colin_Powell_0038.jpg", data)

    assert page.locator("#model-name").inner_text() == server.name
    assert page.locator("#model-version").inner_text() == split_model_uri(trained_model)[2]
    assert section.locator(".error").count() == 0
    assert expected["predictions"][0]["faces"][0]["label"] == PERSON
    assert section.locator("td.name").first.inner_text() == PERSON
    check_faces(section, expected["predictions"][0])
    image = section.locator("img.annotated")
    assert image.evaluate("img => img.complete")
    assert image.evaluate("img => img.naturalWidth") == image_size(data)[0]
    assert image.evaluate("img => img.naturalHeight") == image_size(data)[1]
    timings = section.locator(".timings").inner_text()
    for stage in ("decode", "detect", "embed + classify", "annotate", "round trip"):
        assert stage in timings


def test_page_shows_error_for_non_image(page, server, client):
    data = b"name,probability\nColin_Powell,0.74\n"
    response = predict(client, server, data)
    assert response.status_code == 400
    open_page(page, server.url + "/")

    section = upload(page, "faces.csv", data, mime_type="text/csv")

    assert section.locator(".error").inner_text() == f"HTTP 400: {response.json()['error']}"
    assert section.locator("img").count() == 0


def test_page_shows_error_for_large_file(page, server, client):
    data = os.urandom(MAX_BODY_BYTES + 1)
    response = predict(client, server, data)
    assert response.status_code == 413
    open_page(page, server.url + "/")

    section = upload(page, "large.jpg", data)

    assert section.locator(".error").inner_text() == f"HTTP 413: {response.json()['error']}"


def test_page_shows_dropped_photos_in_order(page, server, client, demo_root):
    photos = {person: sorted((demo_root / "test" / person).glob("*.jpg"))[0] for person in ("Tony_Blair", PERSON)}
    open_page(page, server.url + "/")
    files = [{"name": path.name, "type": "image/jpeg", "b64": base64.b64encode(path.read_bytes()).decode()}
             for path in photos.values()]

    page.locator("#drop").evaluate(
        """(zone, files) => {
            const transfer = new DataTransfer();
            for (const file of files) {
                const bytes = Uint8Array.from(atob(file.b64), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], file.name, { type: file.type }));
            }
            zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }""",
        files,
    )
    expect(page.locator("section.photo .result")).to_have_count(2, timeout=WAIT_MS)

    sections = page.locator("section.photo")
    for position, (person, path) in enumerate(photos.items()):
        expected = predict(client, server, path.read_bytes()).json()["predictions"][0]
        assert sections.nth(position).locator("h2").inner_text() == path.name
        assert expected["faces"][0]["label"] == person
        check_faces(sections.nth(position), expected)


def test_page_works_under_path_prefix(browser_context, server, client, demo_root):
    data = (demo_root / "test" / PHOTO).read_bytes()
    expected = predict(client, server, data).json()
    # The guard serves the prefix on a port where no server listens, so a request outside it cannot succeed.
    origin = "http://127.0.0.1:9"
    guard = RequestGuard(server.url, f"{origin}{PREFIX}/", strip_prefix=PREFIX)
    tab = browser_context.new_page()
    tab.route("**/*", guard)
    try:
        open_page(tab, f"{origin}{PREFIX}/")
        section = upload(tab, "Colin_Powell_0038.jpg", data)
        assert section.locator("td.name").first.inner_text() == PERSON
        check_faces(section, expected["predictions"][0])
    finally:
        tab.close()
    assert guard.blocked == []
    paths = {urlsplit(url).path for url in guard.served}
    assert f"{PREFIX}/" in paths
    assert f"{PREFIX}/ui/models" in paths
    assert f"{PREFIX}/v1/models/{server.name}:predict" in paths


def test_page_urls_are_relative():
    page = ui.read_page().decode("utf-8")
    assert "://" not in page
    assert url_attributes(page) == []
    api_paths = re.findall(r"""apiUrl\(\s*[`"']([^`"']*)""", page)
    predict_path = "v1/models/${encodeURIComponent(state.name)}:predict?${query}"
    assert sorted(set(api_paths)) == ["ui/models", predict_path]


def url_attributes(page: str) -> list[tuple[str, str, str]]:
    """Return (tag, attribute, value) of every HTML attribute in page that names a URL."""
    found = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            for name, value in attrs:
                if name in ("src", "href", "action", "srcset", "poster", "data"):
                    found.append((tag, name, value))

    Collector().feed(page)
    return found


def test_page_headers_block_other_origins(client):
    response = client.get("/")
    policy = response.headers["content-security-policy"]
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.content == ui.read_page()
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy


def test_ui_models_lists_version(client, server, trained_model, demo_root):
    people = [folder for folder in (demo_root / "dataset").iterdir() if folder.is_dir()]
    models = client.get("/ui/models").json()["models"]
    assert [model["name"] for model in models] == [server.name]
    assert models[0]["ready"] is True
    assert models[0]["version"] == split_model_uri(trained_model)[2]
    assert models[0]["people"] == len(people)


@pytest.mark.parametrize("switch", ["--no-ui", "KUBEFACE_SERVE_UI=0"])
def test_ui_switch_turns_page_off(trained_model, tmp_path, switch):
    if switch.startswith("--"):
        running = start_server(trained_model, extra_args=["--no-grpc", switch], log_dir=tmp_path)
    else:
        name, value = switch.split("=")
        running = start_server(trained_model, extra_args=["--no-grpc"], env={name: value}, log_dir=tmp_path)
    try:
        # Stopped only once ready: a server stopped while OpenVINO still compiles aborts on exit.
        running.wait(f"/v2/models/{running.name}/ready")
        index = httpx.get(running.url + "/", timeout=30)
        models = httpx.get(running.url + "/ui/models", timeout=30)
    finally:
        assert running.stop() == 0, running.log()[-4000:]
    # kserve's own GET / is a liveness check.
    assert index.status_code == 200
    assert index.json() == {"status": "alive"}
    assert models.status_code == 404


@pytest.mark.parametrize(("text", "expected"), [("0", False), ("off", False), ("False", False), ("1", True),
                                                ("yes", True)])
def test_ui_setting_from_env(text, expected):
    assert ServingSettings.from_env({"KUBEFACE_SERVE_UI": text}).ui is expected


def test_ui_setting_rejects_other_words():
    with pytest.raises(ConfigurationError, match="KUBEFACE_SERVE_UI='maybe' is not a truth value"):
        ServingSettings.from_env({"KUBEFACE_SERVE_UI": "maybe"})


def test_group_photo_screenshot(page, server, client, shared_data, tmp_path):
    data = (shared_data / GROUP_PHOTO).read_bytes()
    expected = predict(client, server, data).json()["predictions"][0]
    assert len(expected["faces"]) >= 3
    open_page(page, server.url + "/")

    section = upload(page, Path(GROUP_PHOTO).name, data)

    check_faces(section, expected)
    assert section.locator("img.annotated").evaluate("img => img.naturalWidth") == image_size(data)[0]
    target = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "ui.png")
    page.screenshot(path=str(target), full_page=True)
    assert image_size(target.read_bytes())[0] == 1280
