"""Replay faults against real posecli processes and check what a user may rely on.

Cases (issue 8): Ctrl-C once, twice at several delays, and SIGTERM during
``posecli video`` (coco and jsonl) and ``posecli batch``; SIGKILL during
``batch --format jsonl`` followed by a rerun; a full disk (a small tmpfs, root
only: skipped otherwise) under each output (coco, jsonl, render, manifest); a
consumer that closes stdout early (``--out - | head -c 100``), with and without
PYTHONUNBUFFERED=1.

Every try is checked against the invariants:

* the exit code is the documented one: 130 after an interrupt, non-zero on a full
  disk, 141 or 1 for a broken pipe; never 0 on a failure;
* stderr has at most one line (runs are ``-q``), no "Traceback", no abort;
* no temporary file (``.NAME.*.part``) is left beside an output;
* every output file present parses and is complete or marked incomplete;
  after an interrupt the frames the message counts are all there.

Usage::

    python tools/fault_injection.py            # every case, several tries each
    python tools/fault_injection.py --quick    # one try of a few cases (about a minute)
    python tools/fault_injection.py --only video-coco --tries 5

It prints one row per case (case, tries, clean) and the totals "cases tried /
clean"; the exit status is 0 only when every case tried was clean. ``--keep``
keeps the work folder (outputs and stderr of every try) for a look.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

POSECLI = [sys.executable, "-m", "posecli"]
MODEL = ["--weights", "demo", "--net-height", "96", "-q"]
# How long a run may take before the tool gives up on it (seconds).
RUN_TIMEOUT_S = 300
# Gaps between a first and a second signal, in seconds (issue 8: 40 ms, 0.06-0.3 s).
GAPS = (0.005, 0.04, 0.06, 0.15, 0.3)
QUICK_GAPS = (0.04, 0.15)


@dataclass
class Outcome:
    """One try: the problems found (none means clean)."""

    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)


@dataclass
class Case:
    """A fault to replay: ``run(work, outcome)`` makes one try in the empty folder ``work``."""

    name: str
    run: Callable[[Path, Outcome], None]
    quick: bool = False
    needs_root: bool = False


# ----------------------------------------------------------------------------- helpers


def start(args: list[str], **kwargs) -> subprocess.Popen:
    """A posecli process with stdout and stderr captured (bytes)."""
    return subprocess.Popen([*POSECLI, *args], stdout=kwargs.pop("stdout", subprocess.PIPE),
                            stderr=subprocess.PIPE, **kwargs)


def finish(process: subprocess.Popen, work: Path) -> tuple[int, str]:
    """Wait for the process; (exit status, stderr), stderr also saved in ``work``."""
    try:
        _, err = process.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        err += b"\n(fault_injection: killed after the time limit)"
    text = err.decode(errors="replace")
    (work / "stderr.txt").write_text(text)
    return process.returncode, text


def wait_for_progress(process: subprocess.Popen, folder: Path, pattern: str) -> bool:
    """Until a file matching ``pattern`` in ``folder`` (recursively) is not empty: work
    is being written. False if the process ended first."""
    while process.poll() is None:
        for path in folder.rglob(pattern):
            try:
                if path.stat().st_size > 0:
                    return True
            except FileNotFoundError:
                continue
        time.sleep(0.01)
    return False


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, all threads) a process has used; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_cpu(process: subprocess.Popen, seconds: float) -> bool:
    """Until the process has used ``seconds`` of CPU time. False if it ended first."""
    while process.poll() is None:
        used = cpu_seconds(process.pid)
        if used is not None and used >= seconds:
            return True
        time.sleep(0.01)
    return False


def calibrate(work: Path) -> float:
    """CPU seconds a video run uses before its first frame is written (imports, model
    load, first batch): a JSON-lines run shows it; a COCO run writes nothing until
    the end, so it is interrupted once it has used this much and a second more."""
    work.mkdir(parents=True, exist_ok=True)
    out = work / "calibrate.jsonl"
    process = start(["video", str(CLIP), "--out", str(out), "--format", "jsonl", *MODEL])
    wait_for_progress(process, work, f".{out.name}.*")
    used = cpu_seconds(process.pid) or 0.0
    process.kill()
    process.communicate()
    shutil.rmtree(work, ignore_errors=True)
    return used


def check_stderr(outcome: Outcome, err: str) -> None:
    """At most one line, no traceback, no abort."""
    outcome.check("Traceback" not in err, "traceback on stderr")
    outcome.check("terminate called" not in err, "C++ abort on stderr")
    lines = [line for line in err.strip().splitlines() if line.strip()]
    outcome.check(len(lines) <= 1, f"{len(lines)} lines on stderr: {lines[:3]}")


def temp_files(*folders: Path) -> list[Path]:
    """Hidden temporary files posecli writes beside outputs (``.NAME.*.part``)."""
    found = []
    for folder in folders:
        if folder.is_dir():
            found += [p for p in folder.rglob(".*") if ".part" in p.name or p.name.endswith(".tmp")]
    return found


def check_no_temp(outcome: Outcome, *folders: Path) -> None:
    left = temp_files(*folders)
    outcome.check(not left, f"temp files left: {[p.name for p in left][:3]}")


def jsonl_state(path: Path) -> tuple[list[dict], dict | None]:
    """(frame records, the completion record or None) of a JSON-lines output; raises
    ValueError when a line does not parse."""
    frames, marker = [], None
    for line in path.read_bytes().splitlines():
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{path.name}: a line does not parse ({exc})") from None
        if isinstance(record, dict) and "frame_index" in record:
            frames.append(record)
        else:
            marker = record
    return frames, marker


def completion(marker: dict | None) -> bool | None:
    """What a completion record says: True, False, or None when there is none."""
    if not isinstance(marker, dict):
        return None
    value = marker.get("complete", (marker.get("info") or {}).get("complete"))
    return value if isinstance(value, bool) else None


def output_state(path: Path) -> tuple[str, int | None]:
    """("complete" | "incomplete" | "unmarked" | "broken: why", frames) of an output.
    A document says it in ``info.complete``; a JSON-lines file is complete only when
    its trailer line says so."""
    try:
        if path.suffix == ".jsonl":
            # Complete: the trailer line {"complete": true, "frames": N, ...} closes it;
            # without it (an interrupted run) it is incomplete.
            frames, marker = jsonl_state(path)
            if completion(marker) is True:
                if isinstance(marker.get("frames"), int) and marker["frames"] != len(frames):
                    return f"broken: trailer counts {marker['frames']}, {len(frames)} lines", None
                return "complete", len(frames)
            return "incomplete", len(frames)
        if path.suffix == ".json":
            document = orjson.loads(path.read_bytes())
            info = document.get("info", {}) if isinstance(document, dict) else {}
            if "images" in document:
                frames = len(document["images"])
            elif isinstance(document.get("frames"), list):
                frames = len(document["frames"])
            else:
                frames = None
            state = {True: "complete", False: "incomplete"}.get(info.get("complete"), "unmarked")
            return state, frames
        if path.suffix == ".mp4":
            import av

            with av.open(str(path)) as container:
                frames = sum(1 for _ in container.decode(video=0))
            return "complete", frames
    except Exception as exc:  # noqa: BLE001 - any failure to read it is the finding
        return f"broken: {type(exc).__name__}: {exc}", None
    return "unmarked", None


def written_count(err: str) -> int | None:
    """N from "interrupted: N frames written to ..."."""
    found = re.search(r"interrupted: (\d+) frames written to", err)
    return int(found.group(1)) if found else None


# ----------------------------------------------------------------------------- cases


def interrupt_video(fmt: str, signals: tuple[int, ...], gap: float) -> Callable:
    """``posecli video`` interrupted by ``signals`` (the first once frames are being
    processed, each next one ``gap`` seconds later)."""

    def run(work: Path, outcome: Outcome) -> None:
        out = work / ("o.jsonl" if fmt == "jsonl" else "o.json")
        process = start(["video", str(CLIP), "--out", str(out), "--format", fmt, *MODEL])
        started = (wait_for_progress(process, work, f".{out.name}.*") if fmt == "jsonl"
                   else wait_for_cpu(process, FIRST_FRAME_CPU_S + 1.0))
        outcome.check(started, "the run ended before it could be interrupted")
        send_signals(process, signals, gap)
        code, err = finish(process, work)
        outcome.check(code == 130, f"exit {code}, not 130")
        check_stderr(outcome, err)
        check_no_temp(outcome, work)
        written = written_count(err)
        outcome.check(written is not None and written > 0,
                      f"finished frames not kept: {err.strip()[:120]!r}")
        if written is not None:
            outcome.check(out.exists(), "the message counts frames but there is no output")
            if out.exists():
                state, frames = output_state(out)
                outcome.check(state == "incomplete", f"output is {state}, not marked incomplete")
                outcome.check(frames == written, f"output holds {frames} frames, "
                                                 f"the message says {written}")

    return run


def send_signals(process: subprocess.Popen, signals: tuple[int, ...], gap: float) -> None:
    """Send ``signals`` to ``process``, each next one ``gap`` seconds after the last."""
    for index, signum in enumerate(signals):
        if index:
            time.sleep(gap)
        process.send_signal(signum)


def interrupt_batch(fmt: str, signals: tuple[int, ...], gap: float) -> Callable:
    """``posecli batch`` over three clips, interrupted while the second is processed."""

    def run(work: Path, outcome: Outcome) -> None:
        out_dir = work / "out"
        suffix = "jsonl" if fmt == "jsonl" else "json"
        process = start(["batch", *map(str, BATCH_CLIPS), "-d", str(out_dir), "--format", fmt,
                         *MODEL])
        started = wait_for_progress(process, out_dir, f"clip_000.{suffix}")
        outcome.check(started, "the run ended before it could be interrupted")
        time.sleep(0.5)
        send_signals(process, signals, gap)
        code, err = finish(process, work)
        outcome.check(code == 130, f"exit {code}, not 130")
        check_stderr(outcome, err)
        check_no_temp(outcome, out_dir)
        outputs = sorted(out_dir.rglob(f"clip_*.{suffix}"))
        outcome.check(bool(outputs), "the output finished before the interrupt was lost")
        for output in outputs:
            state, _ = output_state(output)
            outcome.check(state == "complete", f"{output.name} is {state}")
        manifest = out_dir / "manifest.json"
        outcome.check(manifest.exists(), "no manifest after the interrupt")
        if manifest.exists():
            try:
                orjson.loads(manifest.read_bytes())
            except orjson.JSONDecodeError:
                outcome.check(False, "the manifest does not parse")

    return run


def kill_batch_then_rerun(work: Path, outcome: Outcome) -> None:
    """SIGKILL during ``batch --format jsonl``, then the same batch again: the rerun
    must finish every output and leave no temp file (the killed run's included)."""
    out_dir = work / "out"
    args = ["batch", *map(str, BATCH_CLIPS), "-d", str(out_dir), "--format", "jsonl", *MODEL]
    process = start(args)
    started = wait_for_progress(process, out_dir, ".clip_001.jsonl.*")
    outcome.check(started, "the run ended before it could be killed")
    process.kill()
    finish(process, work)
    code, err = finish(start([*args, "--skip-existing"]), work)
    outcome.check(code == 0, f"rerun exit {code}: {err.strip()[:120]!r}")
    check_stderr(outcome, err)
    check_no_temp(outcome, out_dir)
    for clip in BATCH_CLIPS:
        output = out_dir / f"{clip.stem}.jsonl"
        state, _ = output_state(output) if output.exists() else ("missing", None)
        outcome.check(state == "complete", f"after the rerun {output.name} is {state}")


def broken_pipe(fmt: str, unbuffered: bool) -> Callable:
    """``posecli video --out - | head -c 100`` for JSON lines (written as frames are
    done); for a COCO document (written at the end, and smaller than a pipe's buffer)
    a consumer that is gone before it comes: ``| head -c 0``."""

    def run(work: Path, outcome: Outcome) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"} if unbuffered else None
        process = start(["video", str(CLIP), "--out", "-", "--format", fmt, *MODEL], env=env)
        size = 100 if fmt == "jsonl" else 0
        head = subprocess.run(["head", "-c", str(size)], stdin=process.stdout,
                              capture_output=True, timeout=RUN_TIMEOUT_S)
        process.stdout.close()
        code, err = finish(process, work)
        outcome.check(len(head.stdout) == size, f"head read {len(head.stdout)} bytes")
        outcome.check(code in (141, 1), f"exit {code}, not 141 or 1")
        check_stderr(outcome, err)
        if code == 1:
            outcome.check(err.strip() != "", "exit 1 with no message")

    return run


def disk_full(target: str) -> Callable:
    """An output on a full tmpfs: one line, non-zero exit, no temp file, nothing
    partial marked complete."""

    def run(work: Path, outcome: Outcome) -> None:
        full, fine = work / "full", work / "fine"
        full.mkdir()
        fine.mkdir()
        mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(full)],
                               capture_output=True, text=True)
        if mount.returncode:
            raise Skip(f"cannot mount a tmpfs: {mount.stderr.strip()}")
        try:
            # 32 KB left: the output fills it part-way through (a manifest is smaller:
            # not one byte is left for it); "render-end": room for all but the last
            # 2 KB of the MP4, so it fails while being finished (its index is written
            # last), after the JSON output was finished.
            room = {"manifest": 0, "render-end": render_size(work) - 2048}.get(target,
                                                                              32 * 1024)
            try:
                with open(full / "filler", "wb") as filler:
                    filler.write(b"\0" * (4 * 1024 * 1024 - room))
            except OSError:
                pass
            if target == "manifest":
                args = ["batch", str(BATCH_CLIPS[0]), "-d", str(fine),
                        "--manifest", str(full / "manifest.json"), *MODEL]
            elif target in ("render", "render-end"):
                args = ["video", str(CLIP), "--out", str(fine / "o.json"),
                        "--render", str(full / "r.mp4"), *MODEL]
            else:
                name = "o.jsonl" if target == "jsonl" else "o.json"
                args = ["video", str(CLIP), "--out", str(full / name), "--format", target,
                        *MODEL]
            code, err = finish(start(args), work)
            outcome.check(code not in (0, 130), f"exit {code} on a full disk")
            check_stderr(outcome, err)
            outcome.check(err.strip() != "", "no message on a full disk")
            check_no_temp(outcome, full, fine)
            for output in [*full.glob("*.json*"), *full.glob("*.mp4"), *fine.rglob("*.json*")]:
                if output.name == "manifest.json" and output.parent == fine:
                    continue
                state, _ = output_state(output)
                outcome.check(state != "complete" or target == "manifest",
                              f"{output.name} left marked complete though the run failed")
                outcome.check(not state.startswith("broken") and state != "unmarked",
                              f"{output.name} is {state}")
        finally:
            subprocess.run(["umount", str(full)], capture_output=True)

    return run


def render_size(work: Path) -> int:
    """Bytes of the render of ``CLIP`` (made once in ``work``, then removed)."""
    folder = work / "measure"
    folder.mkdir()
    subprocess.run([*POSECLI, "video", str(CLIP), "--out", str(folder / "o.json"),
                    "--render", str(folder / "r.mp4"), *MODEL], check=True,
                   capture_output=True, timeout=RUN_TIMEOUT_S)
    size = (folder / "r.mp4").stat().st_size
    shutil.rmtree(folder)
    return size


class Skip(Exception):
    """A case that cannot run here (says why)."""


def all_cases() -> list[Case]:
    """Every case; ``quick`` ones form ``--quick``."""
    sigint, sigterm = signal.SIGINT, signal.SIGTERM
    cases = []
    for fmt in ("coco", "jsonl"):
        cases.append(Case(f"video-{fmt} SIGINT", interrupt_video(fmt, (sigint,), 0), True))
        cases.append(Case(f"video-{fmt} SIGTERM", interrupt_video(fmt, (sigterm,), 0)))
        for gap in GAPS:
            cases.append(Case(f"video-{fmt} SIGINT x2 {gap * 1000:.0f}ms",
                              interrupt_video(fmt, (sigint, sigint), gap), gap in QUICK_GAPS))
        cases.append(Case(f"video-{fmt} SIGTERM+SIGINT 60ms",
                          interrupt_video(fmt, (sigterm, sigint), 0.06)))
    for fmt in ("coco", "jsonl"):
        cases.append(Case(f"batch-{fmt} SIGINT", interrupt_batch(fmt, (sigint,), 0), True))
        cases.append(Case(f"batch-{fmt} SIGINT x2 60ms",
                          interrupt_batch(fmt, (sigint, sigint), 0.06), True))
        cases.append(Case(f"batch-{fmt} SIGTERM", interrupt_batch(fmt, (sigterm,), 0)))
    cases.append(Case("batch-jsonl SIGKILL + rerun", kill_batch_then_rerun, True))
    for target in ("coco", "jsonl", "render", "render-end", "manifest"):
        cases.append(Case(f"disk-full {target}", disk_full(target), True, needs_root=True))
    for fmt in ("jsonl", "coco"):
        for unbuffered in (False, True):
            label = " PYTHONUNBUFFERED=1" if unbuffered else ""
            cases.append(Case(f"broken-pipe {fmt}{label}", broken_pipe(fmt, unbuffered), True))
    return cases


# ----------------------------------------------------------------------------- main

CLIP: Path
BATCH_CLIPS: list[Path]
FIRST_FRAME_CPU_S = 0.0  # set by calibrate()


def make_clips(folder: Path) -> None:
    """Synthetic clips of moving figures (``posecli synth``): one for video runs, three
    for batches. 300 frames, so that a run interrupted by CPU time (see
    :func:`calibrate`) is still processing frames then, however fast the parse."""
    global CLIP, BATCH_CLIPS
    subprocess.run([*POSECLI, "synth", str(folder), "--images", "1", "--videos", "3",
                    "--video-frames", "300", "-q"], check=True)
    BATCH_CLIPS = sorted((folder / "videos").glob("clip_*.mp4"))
    CLIP = BATCH_CLIPS[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one try of the quick cases")
    parser.add_argument("--tries", type=int, default=3, help="tries of each case (default 3)")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="only cases whose name contains TEXT (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--clip", type=Path, metavar="VIDEO",
                        help="the video of the video cases (default: a synthetic 300-frame "
                             "clip; a longer one, e.g. vtest.avi, makes finishing slower)")
    args = parser.parse_args(argv)
    tries = 1 if args.quick else args.tries
    cases = [case for case in all_cases()
             if (case.quick or not args.quick)
             and (not args.only or any(text in case.name for text in args.only))]
    root = Path(tempfile.mkdtemp(prefix="posecli-faults-"))
    try:
        return run_cases(cases, tries, root, args)
    finally:
        if args.keep:
            print(f"work folder kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def run_cases(cases: list[Case], tries: int, root: Path, args: argparse.Namespace) -> int:
    """Run ``cases`` in ``root``; print the table and totals; 0 when all were clean."""
    make_clips(root / "clips")
    if args.clip is not None:
        global CLIP
        CLIP = args.clip.resolve()
    global FIRST_FRAME_CPU_S
    FIRST_FRAME_CPU_S = calibrate(root / "calibrate")
    is_root = os.geteuid() == 0
    rows, tried, clean = [], 0, 0
    for case in cases:
        if case.needs_root and not is_root:
            rows.append((case.name, 0, "skipped: needs root for a tmpfs"))
            continue
        clean_tries, notes, ran = 0, [], 0
        for attempt in range(tries):
            work = root / f"{len(rows):02d}-{attempt}"
            work.mkdir()
            outcome = Outcome()
            try:
                case.run(work, outcome)
            except Skip as exc:
                notes.append(f"skipped: {exc}")
                break
            ran += 1
            clean_tries += not outcome.problems
            notes += [p for p in outcome.problems if p not in notes]
        if ran == 0:
            rows.append((case.name, 0, notes[0] if notes else "skipped"))
            continue
        tried += 1
        clean += clean_tries == ran
        rows.append((case.name, ran, f"{clean_tries}/{ran}" + (f"  {'; '.join(notes)}"
                                                                   if notes else "")))
        print(f"{case.name:<34} {ran:>5}  {rows[-1][2]}", flush=True)
    print()
    print(f"{'case':<34} {'tries':>5}  clean")
    for name, ran, result in rows:
        print(f"{name:<34} {ran:>5}  {result}")
    print(f"\ncases tried / clean: {tried} / {clean}")
    return 0 if tried == clean else 1


if __name__ == "__main__":
    sys.exit(main())
