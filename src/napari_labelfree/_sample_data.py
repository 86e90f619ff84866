"""napari sample data (File > Open Sample > Label-free prediction): simulated fields of cells.

Both samples are generated on the fly by ``core.synth.simulate`` and cached for the session: no
data files ship with the package, since camera noise does not compress (the z-stack is 33 MB of
float32, the time-lapse 34 MB; about 5 and 20 MB even as 8-bit TIFF). Simulating takes 4-24 s on
a laptop CPU, so it runs on a worker thread while the GUI thread keeps handling events (napari's
sample contract is a function that returns the layers); the viewer stays responsive and says what
it is doing. The worker also imports the simulator and does what napari would do on the GUI
thread for its first layer (import xarray, load pint's units). What still holds the GUI thread
(``benchmarks/gui_latency.py --stalls``) is napari adding the seven layers, 0.1-0.3 s each (its
Qt layer controls, vispy visuals, slicing): napari adds the transmitted light and the six hidden
fluorescence layers follow one per event-loop turn, the window repainting in between. Each sample
opens the transmitted light (visible) and the true fluorescence of every structure (hidden,
additive blending, one colour per structure), all in um.
"""

from __future__ import annotations

import copy
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np

from ._reader import layer_axes
from .core.structures import TRANSMITTED_COLORMAP, colormap_for

if TYPE_CHECKING:
    from .core.synth import SimulatedImage

ZSTACK = {"shape": (32, 192, 192), "voxel_size": (0.29, 0.108, 0.108), "seed": 0}
# the paper's time-lapse was taken at another magnification (0.065 um/px) than its training data
TIMELAPSE = {
    "shape": (24, 160, 160),
    "voxel_size": (0.29, 0.065, 0.065),
    "seed": 3,
    "timepoints": 8,
    "cell_height": 5.5,  # a flatter colony edge so the whole cells fit in a 7 um stack
}

LayerData = tuple[np.ndarray, dict[str, Any], str]


_CACHE: dict[str, list[LayerData]] = {}
_RUNNING: dict[str, Any] = {}


def _simulate(kind: str) -> SimulatedImage:
    """Simulate one sample (run on the worker thread)."""
    from .core.synth import STRUCTURES, simulate

    params = ZSTACK if kind == "zstack" else TIMELAPSE
    return simulate(structures=STRUCTURES, **params)


def _prepare(kind: str) -> list[LayerData]:
    """The sample's layers, made on the worker thread with what napari will import for them.

    Everything that can wait is done here rather than on the GUI thread: the simulator's imports
    (scipy), the display limits, and what napari does the first time it makes a layer: import
    xarray (0.5-1 s) and load pint's unit definitions (~0.25 s), measured with
    ``benchmarks/gui_latency.py --stalls``.
    """
    warm_napari_first_layer()
    return _layers(_simulate(kind), "z-stack" if kind == "zstack" else "time-lapse")


def warm_napari_first_layer() -> None:
    """Import and load now (on a worker thread) what napari's first layer would on the GUI thread."""
    import importlib.util

    if importlib.util.find_spec("xarray") is not None:
        import xarray  # noqa: F401 (napari checks whether a layer's data is an xarray)
    if importlib.util.find_spec("pint") is not None:
        import pint

        pint.get_application_registry().pixel  # noqa: B018 (loads the unit definitions once)


def _simulated(kind: str) -> list[LayerData]:
    """The sample's layers, simulated once per session on a worker thread.

    With a Qt application running, the calling (GUI) thread handles events as they come until
    the worker is done, so the window repaints and stays usable; without one it simply waits.
    """
    if kind in _CACHE:
        return _CACHE[kind]
    future = _RUNNING.get(kind)
    if future is None:  # a second request while simulating waits for the same worker
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(1, thread_name_prefix=f"labelfree-sample-{kind}")
        future = _RUNNING[kind] = pool.submit(_prepare, kind)
        pool.shutdown(wait=False)
        _notify(f"Simulating the {kind} sample (a few seconds on a CPU)...")
    app = _qt_app()
    deferred = _CloseDeferred.install() if app is not None else None
    try:
        if app is not None:
            _handle_events_until_done(future)
        _CACHE[kind] = future.result()
    finally:
        _RUNNING.pop(kind, None)
        if deferred is not None:
            deferred.release()
    return _CACHE[kind]


def _handle_events_until_done(future: Any) -> None:
    """Run a nested Qt event loop until ``future`` is done.

    Events are handled as they come; a sleep between ``processEvents`` calls held every timer and
    repaint back by up to its length.
    """
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    poll = QTimer()
    poll.setInterval(10)
    poll.timeout.connect(lambda: future.done() and loop.quit())
    poll.start()
    try:
        if not future.done():
            loop.exec()
    finally:
        poll.stop()


class _CloseDeferred:
    """Holds back closing the viewer's window while a sample is simulated (issue 19).

    napari adds the sample's layers when this function returns; a window closed meanwhile (the
    events are processed above) makes that addition fail in napari's closed dims widget with a
    traceback. So a close asked for now hides the window at once and really closes it right after
    the layers are added.
    """

    def __init__(self, window: Any, napari_window: Any) -> None:
        from qtpy.QtCore import QEvent, QObject

        outer = self

        class Filter(QObject):
            def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 (Qt's name)
                if event.type() == QEvent.Type.Close and outer.window is not None:
                    outer.asked = True
                    obj.hide()
                    event.ignore()
                    return True
                return False

        self.window, self.asked = window, False
        self.napari_window = weakref.ref(napari_window)
        self.filter = Filter()
        window.installEventFilter(self.filter)

    @classmethod
    def install(cls) -> _CloseDeferred | None:
        try:
            from napari import current_viewer

            napari_window = current_viewer().window  # type: ignore[union-attr]
            window = getattr(napari_window, "_qt_window", None)
        except Exception:  # no viewer (a script calling the sample function): nothing to hold
            return None
        return cls(window, napari_window) if window is not None else None

    def release(self) -> None:
        window, self.window = self.window, None
        window.removeEventFilter(self.filter)
        napari_window = self.napari_window()
        # viewer.close() (a script) tears the viewer down itself and drops its Qt window: a
        # second close would stop its deleted threads again
        if self.asked and napari_window is not None and hasattr(napari_window, "_qt_window"):
            from qtpy.QtCore import QTimer

            QTimer.singleShot(0, window.close)  # after napari has added the layers


def _qt_app() -> Any:
    try:
        from qtpy.QtWidgets import QApplication
    except Exception:  # no Qt binding: nothing to keep responsive
        return None
    return QApplication.instance()


def _notify(message: str) -> None:
    try:
        from napari.utils.notifications import show_info
    except ImportError:
        return
    show_info(message)


def _layers(im: SimulatedImage, what: str) -> list[LayerData]:
    scale = tuple(im.voxel_size)
    timelapse = im.data.shape[0] > 1
    if timelapse:
        scale = (1.0, *scale)

    # um on the scale bar, and the sliders named t and z, as the reader's layers
    axes = layer_axes(timelapse, tuple(im.voxel_size))

    def volume(c: int) -> np.ndarray:
        return im.data[:, c] if timelapse else im.data[0, c]

    def limits(a: np.ndarray, lo: float, hi: float) -> list[float]:
        p0, p1 = np.percentile(a[::2, ::2, ::2] if a.ndim == 3 else a[:, ::2, ::4, ::4], [lo, hi])
        return [float(p0), float(max(p1, p0 + 1))]

    bf = volume(0)
    layers: list[LayerData] = [
        (
            bf,
            {
                "name": im.channel_names[0],
                "scale": scale,
                "colormap": TRANSMITTED_COLORMAP,
                "contrast_limits": limits(bf, 0.5, 99.5),
                "metadata": {"simulated": what, "voxel_size_um": im.voxel_size},
                **axes,
            },
            "image",
        )
    ]
    for c, name in enumerate(im.channel_names[1:], start=1):
        a = volume(c)
        layers.append(
            (
                a,
                {
                    "name": f"{name} (true)",
                    "scale": scale,
                    "colormap": colormap_for(name, TRANSMITTED_COLORMAP),
                    "blending": "additive",
                    "visible": False,
                    "contrast_limits": limits(a, 1.0, 99.8),
                    "metadata": {"simulated": what, "structure": name},
                    **axes,
                },
                "image",
            )
        )
    return layers


def _fresh(layers: list[LayerData]) -> list[LayerData]:
    """The cached layers with settings of their own (a sample opened twice shares no dict)."""
    return [(data, copy.deepcopy(kwargs), kind) for data, kwargs, kind in layers]


#: ms between two of the hidden layers added after the sample opened (the window repaints between)
SPREAD_MS = 10


def _spread(layers: list[LayerData]) -> list[LayerData]:
    """The first layer for napari to add now; the others added one per event-loop turn.

    Without a running viewer (a script with no Qt application) all of them are returned.
    """
    app = _qt_app()
    try:
        from napari import current_viewer

        viewer = current_viewer() if app is not None else None
    except ImportError:
        viewer = None
    if viewer is None or len(layers) < 2:
        return layers
    from napari.layers import Image
    from qtpy.QtCore import QTimer

    from ._widgets._layers import add_unselected

    ref, rest = weakref.ref(viewer), list(layers[1:])

    def add_next() -> None:
        v = ref()
        if v is None or not rest or not hasattr(v.window, "_qt_window"):
            return  # the viewer closed: nothing more to add
        data, kwargs, _ = rest.pop(0)
        add_unselected(v, Image(data, **kwargs))  # the visible layer stays the selected one
        if rest:
            QTimer.singleShot(SPREAD_MS, add_next)

    def first_added(*_: Any) -> None:
        # counted from the first layer's addition (napari's, after this returns): a timer started
        # now would be overdue by then and run in the same turn, one long stall for two layers
        v = ref()
        if v is not None:
            v.layers.events.inserted.disconnect(first_added)
            QTimer.singleShot(SPREAD_MS, add_next)

    viewer.layers.events.inserted.connect(first_added)
    return layers[:1]


def simulated_zstack() -> list[LayerData]:
    """Bright-field z-stack (32x192x192 at 0.29, 0.108, 0.108 um) and the six true fluorescences."""
    return _spread(_fresh(_simulated("zstack")))


def simulated_timelapse() -> list[LayerData]:
    """Bright-field time-lapse (8 frames of 24x160x160 at 0.29, 0.065, 0.065 um) with a division."""
    return _spread(_fresh(_simulated("timelapse")))
