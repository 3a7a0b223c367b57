"""Screenshots of PlantAI in the tools people use, taken in headless Chromium by Selenium.

``labelstudio_task_screenshot`` logs in to Label Studio (1.23) as a user, opens one task in the
labelling view of the Data Manager, waits until the sheet, the prediction regions and the chosen
classes are rendered, and saves a PNG of the 1400 x 1000 viewport.

Label Studio lays the image out to the viewport's height (``calc(100vh - 194px)``) and puts the
classification controls (phenology and other traits) below it. With ``show_choices`` the main
panel is scrolled until the lowest checked choice is in view, so the picture shows the bottom of
the sheet (where the detector's boxes are: barcode, label, colour chart) and the predicted class.

``python docs/screenshots.py --help``: shoot a task of a running Label Studio, or (``--demo``,
what ``make screenshots`` runs) start a private Label Studio and PlantAI backend first.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")  # Debian's chromium and chromium-driver (make system-deps)
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1400, 1000)
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
DEMO_OUTPUT = REPO_ROOT / "docs" / "images" / "labelstudio-preannotations.png"

# Label Studio 1.23.2's frontend (LSF) class names: the regions list and the classification controls.
REGION_ITEM = ".lsf-outliner-item"
REGION_TITLE = ".lsf-outliner-item__title"
CHECKED_CHOICE = ".lsf-choice__checkbox.ant-checkbox-wrapper-checked"
_HOTKEY = re.compile(r"\s*\[[^\]]*\]\s*$")  # "flowering[d]": the hotkey hint after a choice's value

# True once the task's sheet is decoded and drawn: the <img> LSF loads, and Konva's stage over it.
_IMAGE_READY_JS = """
const img = document.querySelector('.lsf-image img');
const stage = document.querySelector('.konvajs-content canvas');
return !!(img && img.complete && img.naturalWidth > 0 && stage && stage.width > 0);
"""
# Scrolls the panel that holds the element until the element sits at the bottom of what the panel shows
# and is not under Label Studio's bottom bar (scrollIntoView would leave it there).
_SHOW_AT_BOTTOM_JS = """
const element = arguments[0];
let panel = element.parentElement;
while (panel && !(panel.scrollHeight > panel.clientHeight && /auto|scroll/.test(getComputedStyle(panel).overflowY))) {
  panel = panel.parentElement;
}
const bar = document.querySelector('.lsf-bottombar');  // drawn over the panel's last pixels
if (panel) {
  const bottom = Math.min(panel.getBoundingClientRect().bottom, bar ? bar.getBoundingClientRect().top : Infinity);
  panel.scrollTop += element.getBoundingClientRect().bottom - bottom + 12;
}
"""
# Resolves after two animation frames: whatever the last state change drew is on screen.
_TWO_FRAMES_JS = (
    "const done = arguments[arguments.length - 1]; requestAnimationFrame(() => requestAnimationFrame(done));"
)


class ScreenshotError(RuntimeError):
    """The page did not reach the state to photograph; the message says which state."""


@dataclass(frozen=True)
class TaskScreenshot:
    """What was photographed, read from the page's DOM at the moment of the screenshot."""

    path: Path
    regions: int  # region rows in Label Studio's regions list (one per box, polygon or mask)
    region_labels: tuple[str, ...]  # their labels, in list order
    choices: tuple[str, ...]  # checked classification choices (e.g. the phenology)
    image_size: tuple[int, int]  # natural size of the sheet the page loaded
    size: tuple[int, int]  # the PNG's size in pixels
    seconds: float


def chromium_options(user_data_dir: Path, window: tuple[int, int] = WINDOW) -> Any:
    """Options for headless Debian chromium with a private profile."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", f"--window-size={window[0]},{window[1]}"):
        options.add_argument(flag)
    return options


@contextmanager
def chromium_driver(window: tuple[int, int] = WINDOW) -> Iterator[Any]:
    """A Selenium driver on headless chromium whose viewport is exactly ``window``; quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            raise ScreenshotError(f"{path} not found: `make system-deps` installs chromium and chromium-driver")
    with tempfile.TemporaryDirectory(prefix="plantai-chromium-") as profile:
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=chromium_options(Path(profile), window))
        try:
            # --window-size sizes the window, not the page: pin the viewport so the PNG is window-sized.
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": window[0], "height": window[1], "deviceScaleFactor": 1, "mobile": False},
            )
            yield driver
        finally:
            driver.quit()


def _wait(driver: Any, condition: Callable[[Any], Any], timeout: float, what: str) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.25).until(condition)
    except TimeoutException:
        raise ScreenshotError(f"waited {timeout:.0f} s for {what} at {driver.current_url}") from None


def login(driver: Any, url: str, email: str, password: str, timeout: float = 30) -> None:
    """Sign in through Label Studio's /user/login form (a session cookie, as a person would)."""
    from selenium.webdriver.common.by import By

    driver.get(f"{url.rstrip('/')}/user/login/")
    form = _wait(driver, lambda d: d.find_element(By.ID, "login-form"), timeout, "the login form")
    form.find_element(By.NAME, "email").send_keys(email)
    form.find_element(By.NAME, "password").send_keys(password)
    form.submit()
    _wait(
        driver,
        lambda d: "/user/login" not in d.current_url or d.find_elements(By.CSS_SELECTOR, ".error"),
        timeout,
        "login",
    )
    if "/user/login" in driver.current_url:
        errors = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".error") if e.text]
        raise ScreenshotError(f"Label Studio refused the login of {email}: {'; '.join(errors) or 'no reason shown'}")


def _settled_regions(min_regions: int) -> Callable[[Any], tuple[int] | None]:
    """A wait condition: (the region count,) once it is at least ``min_regions`` and unchanged for 1 s."""
    seen: dict[str, float] = {}

    def condition(driver: Any) -> tuple[int] | None:
        from selenium.webdriver.common.by import By

        count = len(driver.find_elements(By.CSS_SELECTOR, REGION_ITEM))
        now = time.monotonic()
        if count < min_regions or count != seen.get("count"):
            seen.update(count=count, since=now)
            return None
        return (count,) if now - seen["since"] >= 1.0 else None  # a tuple: WebDriverWait wants a truthy value

    return condition


def labelstudio_task_screenshot(
    url: str,
    email: str,
    password: str,
    project_id: int,
    task_id: int,
    out_png: Path | str,
    *,
    min_regions: int = 1,
    min_choices: int = 0,
    show_choices: bool = True,
    window: tuple[int, int] = WINDOW,
    timeout: float = 90,
) -> TaskScreenshot:
    """Photograph task ``task_id`` of project ``project_id`` in Label Studio's labelling view.

    Logs in as ``email``, opens ``/projects/<id>/data?task=<id>``, waits until the sheet is drawn,
    at least ``min_regions`` regions are listed (and the count is steady) and at least
    ``min_choices`` choices are checked, then saves ``out_png`` (the ``window`` viewport).
    Predictions show as regions when the project pre-annotates from them (``connect_backend``).
    """
    from selenium.webdriver.common.by import By

    start = time.perf_counter()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    with chromium_driver(window) as driver:
        login(driver, url, email, password, timeout)
        driver.get(f"{url.rstrip('/')}/projects/{project_id}/data?task={task_id}")
        _wait(driver, lambda d: d.execute_script(_IMAGE_READY_JS), timeout, f"task {task_id}'s image")
        [regions] = _wait(driver, _settled_regions(min_regions), timeout, f"at least {min_regions} regions")
        [choices] = _wait(
            driver,
            lambda d: (
                [found] if len(found := d.find_elements(By.CSS_SELECTOR, CHECKED_CHOICE)) >= min_choices else None
            ),
            timeout,
            f"at least {min_choices} checked choices",
        )
        if show_choices and choices:
            driver.execute_script(_SHOW_AT_BOTTOM_JS, choices[-1])
        driver.set_script_timeout(timeout)
        driver.execute_async_script(_TWO_FRAMES_JS)
        labels = tuple(e.text.strip() for e in driver.find_elements(By.CSS_SELECTOR, REGION_TITLE))
        chosen = tuple(_HOTKEY.sub("", e.text.strip()) for e in choices)
        natural = driver.execute_script(
            "const i = document.querySelector('.lsf-image img'); return [i.naturalWidth, i.naturalHeight];"
        )
        if not driver.save_screenshot(str(out)):
            raise ScreenshotError(f"chromium could not write {out}")
    from PIL import Image

    with Image.open(out) as png:
        size = png.size
    return TaskScreenshot(
        out, int(regions), labels, chosen, (int(natural[0]), int(natural[1])), size, time.perf_counter() - start
    )


# --- make screenshots: a private Label Studio and backend, as the integration tests build them ---

DEMO_MODELS = {
    "nonvegetal-detector": ("detect-nonvegetal", "detect"),
    "plant-segmenter": ("segment-plant", "segment"),
    "phenology-classifier": ("phenology", "classify"),
}


@dataclass(frozen=True)
class DemoProject:
    url: str
    email: str
    password: str
    project: int
    task: int


@contextmanager
def demo_project(root: Path, seed_index: int = 0) -> Iterator[DemoProject]:
    """Label Studio + ``plantai serve`` over the tests' tiny trained models, one pre-annotated sheet."""
    os.environ.update(
        {
            "HOME": str(root / "home"),
            "XDG_CONFIG_HOME": str(root / "home" / ".config"),
            "XDG_CACHE_HOME": str(root / "home" / ".cache"),
            "MPLCONFIGDIR": str(root / "home" / ".config" / "matplotlib"),
            "PLANTAI_HOME": str(root / "plantai-home"),
        }
    )
    from catalog.ultralytics_offline import configure_offline_ultralytics

    configure_offline_ultralytics(root / "ultralytics")

    from catalog.registry import Catalog
    from connectors.label_config import review_config
    from connectors.labelstudio_client import label_studio_client
    from herbarium.synth import generate_sheet
    from local_services.backend import LocalBackend
    from local_services.labelstudio import LABEL_STUDIO_VERSION, LabelStudioServer, LocalLabelStudio
    from ml_backends.connect import connect_backend, predict_all_tasks
    from training.synthetic_yolo import trained_models_in

    trained = trained_models_in(REPO_ROOT / ".cache" / "test-models")  # the tests' cache: built once for both
    server = LabelStudioServer(data_dir=root / "label-studio", document_root=root / "ls-files")
    template = REPO_ROOT / ".cache" / f"label-studio-template-{LABEL_STUDIO_VERSION}"
    with ExitStack() as stack:
        label_studio = stack.enter_context(LocalLabelStudio(server, template))
        home = root / "backend-home"
        catalog = Catalog.open(home=home)
        for name, (task, weights) in DEMO_MODELS.items():
            catalog.register(name, task=task, weights=getattr(trained, weights), promote=True)
        backend = LocalBackend(
            root,
            home=home,
            document_root=server.document_root,
            label_studio_url=label_studio.url,
            api_key=label_studio.token,
        )
        stack.enter_context(backend)
        backend_url = backend.url
        folder = server.document_root / "sheets"
        folder.mkdir(parents=True, exist_ok=True)
        seed = trained.val_seeds[seed_index]
        generate_sheet(seed, trained.width, trained.height).image.save(folder / f"sheet-{seed}.jpg", quality=92)
        client: Any = label_studio_client(label_studio.url, label_studio.token)
        project: Any = client.projects.create(title="PlantAI pre-annotation", label_config=review_config())
        storage = client.import_storage.local.create(
            project=project.id, path=str(folder), regex_filter=r".*\.jpg", use_blob_urls=True
        )
        client.import_storage.local.sync(id=storage.id)
        connect_backend(client, project.id, backend_url, extra_params={"conf": 0.05})
        predict_all_tasks(client, project.id)
        [task] = list(client.tasks.list(project=project.id))
        task_id: Any = task.id
        account = server.account
        yield DemoProject(label_studio.url, account.email, account.password, int(project.id), int(task_id))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Screenshot a Label Studio task with its PlantAI pre-annotations (headless chromium).",
    )
    parser.add_argument("--demo", action="store_true", help="start a private Label Studio and PlantAI backend first")
    parser.add_argument("--url", help="Label Studio URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--email", help="Label Studio user (default: the local admin of local_services/labelstudio)")
    parser.add_argument("--password", help="that user's password (default: the local admin's)")
    parser.add_argument("--project", type=int, help="project id")
    parser.add_argument("--task", type=int, help="task id")
    parser.add_argument("--out", type=Path, default=DEMO_OUTPUT, help=f"PNG to write (default: {DEMO_OUTPUT})")
    parser.add_argument("--min-regions", type=int, default=1, help="wait for at least this many regions")
    args = parser.parse_args(argv)

    from local_services.labelstudio import LabelStudioAccount

    admin = LabelStudioAccount()
    with ExitStack() as stack:
        if args.demo:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="plantai-screenshots-")))
            demo = stack.enter_context(demo_project(root))
            url, email, password, project, task = demo.url, demo.email, demo.password, demo.project, demo.task
        else:
            if not (args.url and args.project and args.task):
                parser.error("give --url, --project and --task, or --demo")
            url, project, task = args.url, args.project, args.task
            email, password = args.email or admin.email, args.password or admin.password
        shot = labelstudio_task_screenshot(url, email, password, project, task, args.out, min_regions=args.min_regions)
    print(
        f"{shot.path}: {shot.size[0]}x{shot.size[1]} px, {shot.regions} regions "
        f"({', '.join(shot.region_labels)}), choices: {', '.join(shot.choices) or 'none'}, {shot.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
