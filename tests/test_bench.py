"""The bench command's output is well-formed (its figures are measured, never asserted)."""

from __future__ import annotations

import json
import math

from test_cli import run_cli

from lab_helpers.bench import BenchSizes, measure


def test_bench_quick_json_is_well_formed() -> None:
    result = run_cli("bench", "--quick", "--json", "--rounds", "1")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)  # stdout holds the JSON alone; progress went to stderr
    assert "round 1/1" in result.stderr
    assert set(figures["pki_ms"]) == {"ec", "rsa", "ed25519"}
    lab = figures["servers"]["lab"]
    for kind in ("keep_alive_rps", "new_connection_rps", "full_handshakes_per_s", "resumed_handshakes_per_s"):
        assert lab[kind] > 0 and math.isfinite(lab[kind]), kind
    assert figures["ratios"]["lab_resumed_over_full"] > 0
    assert figures["sizes"]["rounds"] == 1
    assert figures["pki_process_ms"]["lab"] > 0


def test_bench_table_names_every_figure() -> None:
    result = run_cli("bench", "--quick", "--rounds", "1")
    assert result.returncode == 0, result.stderr
    for label in (
        "keep-alive requests/s",
        "new-connection requests/s",
        "full handshakes/s",
        "resumed handshakes/s",
        "Ed25519",
    ):
        assert label in result.stdout


def test_bench_refuses_zero_rounds() -> None:
    result = run_cli("bench", "--rounds", "0")
    assert result.returncode == 2 and "at least 1" in result.stderr


def test_measure_counts_calls_and_returns_a_rate() -> None:
    calls = []
    rate = measure(lambda: calls.append(1), count=50)
    assert len(calls) == 51 and rate > 0  # one warm-up call, then the counted ones


def test_quick_runs_are_small() -> None:
    quick, full = BenchSizes.for_run(rounds=5, quick=True), BenchSizes.for_run(rounds=5, quick=False)
    assert quick.rounds == 3 and quick.keep_alive < full.keep_alive and quick.handshakes < full.handshakes
