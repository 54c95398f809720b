"""The command line runs, writes its JSON, and refuses ``--plot`` without matplotlib before running anything."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest

from pipecat_responses_ws.harness import campaign, speech
from pipecat_responses_ws.harness.__main__ import main
from pipecat_responses_ws.harness.report import read_json
from pipecat_responses_ws.harness.speech import espeak_missing


@pytest.mark.slow
async def test_main_writes_a_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.json"
    # main() runs its own event loop, so it must run outside this test's loop.
    # --verbose leaves loguru's handlers alone for the rest of the test session.
    argv = ["--service", "ours", "--runs", "1", "--seed", "3", "--json", str(out), "--verbose"]
    code = await asyncio.to_thread(main, argv)
    assert code == 0
    printed = capsys.readouterr()
    assert "barge-in penalty ms p95" in printed.out and "ours/ignore" in printed.out
    assert "error frame(s)" not in printed.out  # no errors, no list
    data = json.loads(out.read_text())
    assert data["summary"]["ours/ignore"]["runs"] == 1
    assert data["summary"]["ours/ignore"]["errors"] == [] and data["runs"][0]["errors"] == []


def test_plot_without_matplotlib_stops_before_any_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed

    def no_runs(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a run started although --plot could not work")

    monkeypatch.setattr(campaign, "run_scenario", no_runs)
    started = time.monotonic()
    code = main(["--runs", "200", "--plot", str(tmp_path / "o.png"), "--verbose"])
    assert code == 2 and time.monotonic() - started < 1
    err = capsys.readouterr().err
    assert 'pip install "matplotlib>=3.8"' in err and "pipecat-responses-ws[" not in err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.slow
async def test_plot_is_written_where_matplotlib_is_installed(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason='the plot extra is not installed (pip install -e ".[plot]")')
    argv = ["--service", "ours", "--runs", "1", "--seed", "3", "--plot", str(tmp_path / "o.png"), "--verbose"]
    assert await asyncio.to_thread(main, argv) == 0
    assert (tmp_path / "o.png").exists()


@pytest.mark.parametrize("service", ["nonsense", "no_such_module:factory", "json:no_such_factory"])
def test_a_service_that_cannot_be_resolved_stops_before_any_run(
    service: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_runs(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a run started although the service cannot be built")

    monkeypatch.setattr(campaign, "run_scenario", no_runs)
    assert main(["--service", service, "--runs", "1"]) == 2
    assert f"--service {service!r} cannot be used" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(espeak_missing() is not None, reason=str(espeak_missing()))
async def test_audio_run_prints_the_ear_figures_and_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, record = tmp_path / "out.json", tmp_path / "rec"
    argv = ["--audio", "--service", "ours", "--runs", "1", "--seed", "2", "--json", str(out), "--record", str(record)]
    code = await asyncio.to_thread(main, [*argv, "--verbose"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "overrun (caller onset → bot silent) ms p95" in printed and "voice-to-voice after a barge-in" in printed
    document = json.loads(out.read_text())
    assert document["campaign"]["audio"] is True
    events = json.loads((record / "events.json").read_text())
    (run,) = events["runs"]
    assert (record / run["wav"]).stat().st_size > 16_000 * 4  # more than a second of stereo audio
    _, results = read_json(out)  # every barge-in comes back from the JSON, as --merge needs
    assert [b.overrun for b in results[0].heard] == [b["overrun_ms"] / 1000 for b in run["barge_ins"]]


def test_audio_options_that_cannot_work_stop_before_any_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--record", "somewhere"])
    assert stopped.value.code == 2 and "--record" in capsys.readouterr().err
    monkeypatch.setattr(speech.shutil, "which", lambda _name: None)  # as if espeak-ng were not installed
    assert main(["--audio"]) == 2
    assert "apt-get install espeak-ng" in capsys.readouterr().err
