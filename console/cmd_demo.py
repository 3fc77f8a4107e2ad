"""`lifeboat demo [--drill [--dr]]`: start mainsim, open the demo console, stop mainsim on the way out.

``--drill --dr`` starts a second mainsim too, the broker's DR site (a standby following
main: dr.db, dr.log in the data dir), and plays the DR drill (console/tui/drill.py,
DRDrillDriver) with the console configured with both sites.

Why apart from console/demo.py: this is the command's lifecycle (flags, messages on
stderr, exit codes, signals) around the pieces; it is imported only when `demo` runs,
and it imports Textual only once the screen is about to open.

Exit codes: 0 (demo closed; drill flat and reconciled; DR drill: and both sites' databases
agree), 1 (drill did not end flat and reconciled, or an unexpected error), 2 (bad flags,
config or --dir; --dr without --drill), 5 (mainsim or the DR site did not start), 6 (drill:
something held for a supervisor's decision).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from console.exitcodes import ExitCode


def _say(text: str) -> None:
    print(f"lifeboat demo: {text}", file=sys.stderr, flush=True)


def run_demo(
    *,
    drill: bool,
    data_dir: Path | None,
    report_dir: Path | None,
    headless: bool = False,
    dr: bool = False,
    activity: float | None = None,
    pause_s: float | None = None,
    linger_s: float | None = None,
) -> int:
    from console import eventlog
    from console.demo import (
        DEFAULT_ACTIVITY,
        DemoBackend,
        DemoError,
        console_home,
        make_data_dir,
        use_private_keyring,
    )
    from console.shutdown import EndOnSignal
    from console.tui.config import ConfigError, load_config

    if dr and not drill:
        _say("--dr plays the DR drill: use it with --drill")
        return int(ExitCode.USAGE)
    try:
        data = make_data_dir(data_dir)
    except DemoError as exc:
        _say(str(exc))
        return int(ExitCode.USAGE)
    home = console_home(data)
    os.environ["LIFEBOAT_HOME"] = str(home)  # this process and anything it starts use the demo's store
    # its trust anchors (kept in the private keyring below) and their lock: beside the demo's home, never in
    # the user's own config dir
    os.environ["LIFEBOAT_CONFIG_DIR"] = str(data / "config")
    try:
        config = load_config(home=home)
    except ConfigError as exc:
        _say(str(exc))
        return int(ExitCode.USAGE)
    eventlog.setup(home / "logs")  # log lines go to the file, never over the screen
    use_private_keyring()
    # the drill runs without background orders, so "flat" at the end means what the drill did
    backend = DemoBackend(
        data, activity=(0.0 if drill else DEFAULT_ACTIVITY) if activity is None else activity
    )
    _say(f"starting mainsim on 127.0.0.1 (data dir {data}) ...")
    try:
        backend.start()
    except DemoError as exc:
        _say(str(exc))
        return int(ExitCode.UNAVAILABLE)
    _say(f"mainsim ready at {backend.url} (pid {backend.pid}); opening the console as dealer1")
    site = None
    if dr:  # the broker's DR site: a standby following main, its own database and log
        site = DemoBackend(
            data,
            activity=backend.activity,
            name="dr",
            extra_args=["--role", "standby", "--follow", backend.url],
        )
        _say("starting the DR site (mainsim standby following main) ...")
        try:
            site.start()
        except DemoError as exc:
            _say(str(exc))
            backend.stop()
            return int(ExitCode.UNAVAILABLE)
        _say(f"DR site ready at {site.url} (pid {site.pid})")
    # closing the terminal (SIGHUP) or kill (SIGTERM): mainsim stops at once, the screen is
    # asked to close, and the process ends within seconds whatever the screen does
    stops = [lambda: backend.stop(grace_s=2.0)]
    if site is not None:
        stops.append(lambda: site.stop(grace_s=2.0))
    ender = EndOnSignal(stop_now=stops, name="lifeboat demo").install()
    try:
        return _run_screen(
            backend,
            home,
            data,
            config,
            drill=drill,
            report_dir=report_dir or data,
            headless=headless,
            pause_s=pause_s,
            linger_s=linger_s,
            ender=ender,
            dr_site=site,
        )
    finally:
        code = backend.stop()
        if site is not None:
            dr_code = site.stop()
            _say(f"DR site stopped (exit {dr_code}): dr.db, dr.log in the data dir")
        _say(
            f"mainsim stopped (exit {code}). Data dir: {data} (mainsim.db, mainsim.log, home/ with the "
            f"console's store and logs); remove it when done."
        )


def _run_screen(
    backend,
    home: Path,
    data: Path,
    config,
    *,
    drill: bool,
    report_dir: Path,
    headless: bool,
    pause_s: float | None,
    linger_s: float | None,
    ender,
    dr_site=None,
) -> int:
    from console.demo import DEMO_USER, OutageSwitch
    from console.demo_report import DRDrillReport, DrillReport
    from console.service import Service
    from console.shutdown import tell_unsent
    from console.tui.drill import DemoApp, DRDrillDriver, DrillDriver

    service = Service(
        backend_url=backend.url,
        home=home,
        user=DEMO_USER,
        dr_url=dr_site.url if dr_site is not None else None,
    )
    driver: DrillDriver | None = None
    pause = (0.2 if headless else 1.5) if pause_s is None else pause_s
    linger = (0.0 if headless else 6.0) if linger_s is None else linger_s
    if drill and dr_site is not None:
        dr_report = DRDrillReport(
            backend_url=backend.url, dr_url=dr_site.url, data_dir=str(data), user=DEMO_USER
        )
        driver = DRDrillDriver(
            dr_report, report_dir, main=backend, dr=dr_site, pause_s=pause, linger_s=linger
        )
    elif drill:
        report = DrillReport(backend_url=backend.url, data_dir=str(data), user=DEMO_USER)
        driver = DrillDriver(report, report_dir, pause_s=pause, linger_s=linger)
    app = DemoApp(service, config, switch=OutageSwitch(backend.control_url), drill=driver)

    ender.request_exit = lambda code: app.call_from_thread(app.exit, return_code=code)
    ender.last.append(service.close)
    try:
        app.run(headless=headless)
        tell_unsent(service, name="lifeboat demo")  # what is not yet on main, and who sends it
    finally:
        service.close()
    if ender.signum is not None:
        _say(f"ended by {signal.Signals(ender.signum).name}: mainsim stopped, the screen closed")
    if driver is None:
        return int(app.return_code or 0)
    if not driver.finished:
        _say("the drill was stopped before its end; no report written")
        return int(app.return_code or ExitCode.UNEXPECTED) or int(ExitCode.UNEXPECTED)
    rep = driver.report
    passed = (
        "DR drill PASSED: flat on main, reconciled, both sites agree"
        if dr_site is not None
        else "drill PASSED: the book ended flat and reconciled"
    )
    _say(
        (passed if rep.ok else f"drill FAILED: {rep.failure or (rep._why() if dr_site is not None else '-')}")
        + f"; timings {rep.timings_s}"
    )
    if driver.paths is None:
        _say(driver.write_error or "the drill report was not written")
        return int(ExitCode.UNEXPECTED)
    jpath, mpath = driver.paths
    _say(f"drill report: {mpath} and {jpath}")
    return rep.exit_code
