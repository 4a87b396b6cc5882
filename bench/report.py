"""Write the results: ``bench/results.md`` (tables) and ``docs/bench.png`` (plot)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .latency import LatencyRow
from .memory import MemoryRow
from .overhead import OverheadRow
from .pgmulti import PgMultiRow
from .startup import ImportProfile, StartupRow
from .stores import StoreRow
from .throughput import ThroughputRow

__all__ = ["Results", "Target", "targets", "write_markdown", "write_plot"]

IMPORT_TARGET_MS = 150.0
OVERHEAD_TARGET = 1.05  # per-call wall time, paygate (memory store) / raw httpx
SQLITE_TARGET_US = 500.0  # what the SQLite store may add to a charge


@dataclass
class Results:
    """Everything one run measured."""

    command: str
    quick: bool
    sandbox_mode: str
    machine: dict[str, str]
    commit: str
    started: str
    load_start: str
    load_end: str = ""
    duration_s: float = 0.0
    overhead: list[OverheadRow] = field(default_factory=list)
    throughput: list[ThroughputRow] = field(default_factory=list)
    stores: list[StoreRow] = field(default_factory=list)
    startup: list[StartupRow] = field(default_factory=list)
    imports: ImportProfile | None = None
    memory: list[MemoryRow] = field(default_factory=list)
    latency: list[LatencyRow] = field(default_factory=list)
    latency_setup: str = ""
    pg_multi: list[PgMultiRow] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """One target of issue 10 and how this run did."""

    name: str
    measured: str
    met: bool | None  # None: not measured in this run


def _us(x: float) -> str:
    return f"{x:,.0f}"


def targets(r: Results) -> list[Target]:
    """Judge the run against the targets."""
    out: list[Target] = []
    mem = [row for row in r.overhead if row.store == "memory"]
    if mem:
        worst = max(mem, key=lambda row: row.ratio)
        out.append(
            Target(
                f"per-call overhead ≤ {OVERHEAD_TARGET:.2f}× raw httpx, every provider operation "
                "(memory store)",
                f"worst {worst.ratio:.2f}× ({worst.provider} {worst.operation}); "
                + ", ".join(f"{row.provider} {row.operation} {row.ratio:.2f}×" for row in mem),
                all(row.ratio <= OVERHEAD_TARGET for row in mem),
            )
        )
    else:
        out.append(Target(f"per-call overhead ≤ {OVERHEAD_TARGET:.2f}× raw httpx", "—", None))
    added = _sqlite_added(r)
    if added:
        charges = {k: v for k, v in added.items() if k[1] == "charge"} or added
        worst_key = max(charges, key=lambda k: charges[k])
        out.append(
            Target(
                f"the SQLite store adds ≤ {SQLITE_TARGET_US / 1000:.1f} ms per charge",
                f"worst +{charges[worst_key]:,.0f} µs ({worst_key[0]} {worst_key[1]}); "
                + ", ".join(f"{p} {o} +{v:,.0f} µs" for (p, o), v in charges.items()),
                all(v <= SQLITE_TARGET_US for v in charges.values()),
            )
        )
    else:
        out.append(Target("the SQLite store adds ≤ 0.5 ms per charge", "—", None))
    out += latency_targets(r)
    ratios = _throughput_ratios(r, 16)
    if ratios:
        vs_raw = {p: [v[k] for k in ("raw", "raw+lanes") if k in v] for p, v in ratios.items()}
        out.append(
            Target(
                "AsyncGateway at concurrency 16 ≥ 0.9× raw httpx async",
                "; ".join(
                    f"{p} {v['raw']:.2f}× (one shared client)"
                    + (
                        f", {v['raw+lanes']:.2f}× (client per connection)"
                        if "raw+lanes" in v
                        else ""
                    )
                    for p, v in ratios.items()
                    if "raw" in v
                ),
                all(min(v) >= 0.9 for v in vs_raw.values() if v),
            )
        )
        sdk = {p: v["sdk"] for p, v in ratios.items() if "sdk" in v}
        out.append(
            Target(
                "AsyncGateway at concurrency 16 ≥ 3× the official SDK (threads)",
                ", ".join(f"{p} {v:.1f}×" for p, v in sdk.items()) or "—",
                all(v >= 3 for v in sdk.values()) if sdk else None,
            )
        )
    else:
        out.append(Target("AsyncGateway at concurrency 16 ≥ 0.9× raw httpx async", "—", None))
        out.append(Target("AsyncGateway at concurrency 16 ≥ 3× the official SDK", "—", None))
    rows = {row.name: row for row in r.startup}
    imp = rows.get("import paygate")
    detail = "—"
    if imp is not None:
        detail = f"{imp.cost.median:,.0f} ms"
        whole, floor = rows.get("the whole API"), rows.get("pydantic (yardstick)")
        if whole is not None and floor is not None:
            detail += (
                f" (the models and gateways load on first use: the whole API "
                f"{whole.cost.median:,.0f} ms, of which pydantic's `BaseModel` alone "
                f"{floor.cost.median:,.0f} ms)"
            )
    out.append(
        Target(
            f"`import paygate` < {IMPORT_TARGET_MS:.0f} ms",
            detail,
            (imp.cost.median < IMPORT_TARGET_MS) if imp else None,
        )
    )
    return out


def _sqlite_added(r: Results) -> dict[tuple[str, str], float]:
    # Median of the per-round differences: both gateways ran in every round.
    return {
        (row.provider, row.operation): row.added.median
        for row in r.overhead
        if row.store == "sqlite" and row.added is not None
    }


def _throughput_ratios(r: Results, concurrency: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    rows = [row for row in r.throughput if row.concurrency == concurrency]
    for provider in dict.fromkeys(row.provider for row in rows):
        mine = {row.contender: row.rate.median for row in rows if row.provider == provider}
        pg = mine.get("paygate")
        if not pg:
            continue
        ratios: dict[str, float] = {}
        if mine.get("raw"):
            ratios["raw"] = pg / mine["raw"]
        if mine.get("raw+lanes"):
            ratios["raw+lanes"] = pg / mine["raw+lanes"]
        sdks = [v for k, v in mine.items() if not k.startswith(("paygate", "raw"))]
        if sdks and max(sdks) > 0:
            ratios["sdk"] = pg / max(sdks)
        out[provider] = ratios
    return out


def _mark(met: bool | None) -> str:
    return {True: "met", False: "**not met**", None: "not measured"}[met]


def write_markdown(r: Results, path: Path) -> None:
    """Render ``r`` as Markdown."""
    lines: list[str] = []
    add = lines.append
    add("# paygate benchmarks")
    add("")
    add(
        "Generated by `bench/` — do not edit by hand. Reproduce with "
        f"`{r.command}` (about {r.duration_s / 60:.0f} min"
        + (", quick mode: few samples, smoke only" if r.quick else "")
        + "); `--quick` for a smoke run."
    )
    add("")
    add("## Machine")
    add("")
    for key, value in r.machine.items():
        add(f"- **{key}**: {value}")
    add(f"- **Run**: {r.started}, commit {r.commit}, {r.duration_s:,.0f} s")
    add(f"- **Load average** (1/5/15 min): {r.load_start} at the start, {r.load_end} at the end")
    add(
        "- **Sandbox**: `paygate.sandbox.running()`, started once, "
        + (
            "in a child process, so the emulators do not share the client's GIL (client and "
            "server each have a core of their own only when the machine is otherwise idle)."
            if r.sandbox_mode == "process"
            else "in a thread of the benchmark process (sharing its GIL)."
        )
    )
    add("")
    add("## Targets")
    add("")
    add("| target | this run | |")
    add("|---|---|---|")
    for t in targets(r):
        add(f"| {t.name} | {t.measured} | {_mark(t.met)} |")
    add("")
    if r.overhead:
        add("## Per-call overhead: `Gateway` against raw httpx")
        add("")
        add(
            "Wall time per call in µs, median (p10–p90), over interleaved rounds; overhead is "
            "the median of per-round differences (p25–p75). Raw httpx sends the same requests on "
            "a bare keep-alive client with the same settings and decodes the JSON answer."
        )
        add("")
        add(
            "| provider | operation | HTTP calls | store | raw httpx µs | paygate µs "
            "| overhead µs | ratio |"
        )
        add("|---|---|---:|---|---:|---:|---:|---:|")
        for row in r.overhead:
            o = row.overhead
            add(
                f"| {row.provider} | {row.operation} | {row.calls} | {row.store} "
                f"| {row.raw.spread()} | {row.gateway.spread()} "
                f"| {o.median:,.0f} ({o.p25:,.0f}–{o.p75:,.0f}) | {row.ratio:.2f}× |"
            )
        add("")
        cpu_rows = [row for row in r.overhead if row.cpu_raw is not None]
        if cpu_rows:
            add(
                "Client CPU time per call (µs, median), the part of the wall time spent in this "
                "process; it moves less than wall time when the machine is busy:"
            )
            add("")
            add(
                "| provider | operation | store | raw httpx CPU µs | paygate CPU µs "
                "| difference µs | ratio |"
            )
            add("|---|---|---|---:|---:|---:|---:|")
            for row in cpu_rows:
                assert row.cpu_raw is not None
                assert row.cpu_gateway is not None
                add(
                    f"| {row.provider} | {row.operation} | {row.store} "
                    f"| {_us(row.cpu_raw.median)} | {_us(row.cpu_gateway.median)} "
                    f"| {_us(row.cpu_gateway.median - row.cpu_raw.median)} "
                    f"| {row.cpu_gateway.median / row.cpu_raw.median:.2f}× |"
                )
            add("")
        added_rows = [row for row in r.overhead if row.added is not None]
        if added_rows:
            add(
                "What the SQLite store adds over the memory store, per call: median of the "
                "per-round differences (p25–p75), wall and client CPU, µs:"
            )
            add("")
            add("| provider | operation | wall µs | CPU µs |")
            add("|---|---|---:|---:|")
            for row in added_rows:
                assert row.added is not None
                cpu_added = row.added_cpu
                add(
                    f"| {row.provider} | {row.operation} "
                    f"| {row.added.median:,.0f} ({row.added.p25:,.0f}–{row.added.p75:,.0f}) "
                    f"| {cpu_added.median if cpu_added else float('nan'):,.0f} |"
                )
            add("")
    if r.throughput:
        add("## Throughput: `AsyncGateway` against raw httpx async and the official SDKs")
        add("")
        add(
            "Charges per second, median window (slowest–fastest). paygate and raw httpx run on "
            "one event loop; each SDK runs in a thread pool as large as the concurrency. "
            "Under each rate: CPU busy of the client process / of the sandbox process (1.00 = "
            "one core). A sandbox near 1.00 is the bottleneck: no client can go faster there."
        )
        add("")
        concs = sorted({row.concurrency for row in r.throughput})
        add(
            "| provider | client | HTTP calls / charge | "
            + " | ".join(f"c={c}" for c in concs)
            + " |"
        )
        add("|---|---|---:|" + "---:|" * len(concs))
        keyed: dict[tuple[str, str], dict[int, ThroughputRow]] = {}
        for row in r.throughput:
            keyed.setdefault((row.provider, row.contender), {})[row.concurrency] = row
        for (provider, contender), by_c in keyed.items():
            calls = next(iter(by_c.values())).calls
            cells = []
            for c in concs:
                row = by_c.get(c)
                if row is None:
                    cells.append("—")
                else:
                    err = f", {row.errors} errors" if row.errors else ""
                    cpu = ""
                    if row.client_busy is not None:
                        server = "–" if row.server_busy is None else f"{row.server_busy:.2f}"
                        cpu = f"<br>cpu {row.client_busy:.2f} / {server}"
                    cells.append(
                        f"{row.rate.median:,.0f} ({min(row.windows):,.0f}–{max(row.windows):,.0f})"
                        f"{err}{cpu}"
                    )
            name = {
                "paygate": "paygate AsyncGateway (memory)",
                "paygate+sqlite": "paygate AsyncGateway (SQLite)",
                "raw": "raw httpx async (one shared client)",
                "raw+lanes": "raw httpx async (client per connection)",
            }.get(contender, f"official SDK `{contender}`")
            add(f"| {provider} | {name} | {calls} | " + " | ".join(cells) + " |")
        add("")
    write_latency_markdown(r, add)
    if r.stores:
        add("## Idempotency stores")
        add("")
        add(
            "`begin` + `complete` per cycle (what each charge does); latency µs per measured "
            "call, median (p10–p90); throughput in store decisions per second."
        )
        add("")
        add("| store | workload | latency µs | decisions/s | outcomes |")
        add("|---|---|---:|---:|---|")
        for row in r.stores:
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(row.outcomes.items()))
            add(
                f"| {row.store} | {row.workload} | {row.latency.spread()} "
                f"| {row.throughput:,.0f} | {outcomes} |"
            )
        add("")
    if r.startup:
        add("## Start-up")
        add("")
        add(
            "Fresh interpreter each run; ms above a bare `python -c pass` of the same venv, "
            "median (p10–p90)."
        )
        add("")
        add("| command | ms above bare start | total ms |")
        add("|---|---:|---:|")
        for row in r.startup:
            add(f"| `{row.command}` | {row.cost.spread(1)} | {row.total.spread(1)} |")
        add("")
        if r.imports is not None:
            add(
                "`-X importtime` of `from paygate import Gateway, Money` "
                f"({r.imports.total:,.0f} ms in total, the profiler's own cost included); "
                "heaviest third-party packages (cumulative ms): "
                + ", ".join(f"{n} {v:,.0f}" for n, v in r.imports.heavy)
                + "."
            )
            add("")
    if r.memory:
        add("## Memory per 10,000 charges")
        add("")
        add(
            "`AsyncGateway` runs charges 16 at a time against the fake provider; after each "
            "batch (and a collection) the live Python memory blocks and the resident set size "
            "are read. Growth is the least-squares slope over the batches."
        )
        add("")
        add(
            "| store | charges | live blocks: start → end | blocks / charge "
            "| RSS: start → end | RSS / charge | peak RSS |"
        )
        add("|---|---:|---:|---:|---:|---:|---:|")
        for m in r.memory:
            first, last = m.checkpoints[0], m.checkpoints[-1]
            rss = (
                f"{first[2] / 2**20:,.1f} → {last[2] / 2**20:,.1f} MiB"
                if first[2] is not None and last[2] is not None
                else "—"
            )
            peak = f"{m.peak_rss / 2**20:,.1f} MiB" if m.peak_rss else "—"
            add(
                f"| {m.store} | {m.charges:,} | {first[1]:,} → {last[1]:,} "
                f"| {m.per_charge:,.1f} | {rss} | {m.rss_per_charge:,.0f} B | {peak} |"
            )
        add("")
    if r.skipped:
        add("## Not measured")
        add("")
        for name, why in r.skipped.items():
            add(f"- {name}: {why}")
        add("")
    path.write_text("\n".join(lines))


def write_plot(r: Results, path: Path) -> bool:
    """Draw the summary figure; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(3, 2, figsize=(13, 13))
    _plot_latency_rates(axes[0][0], r)
    _plot_latency_cpu(axes[0][1], r)
    _plot_latency(axes[1][0], r)
    _plot_throughput_bars(axes[1][1], r)
    _plot_throughput_lines(axes[2][0], r)
    _plot_stores(axes[2][1], r)
    targets_text = "\n".join(
        f"{'MET' if t.met else 'NOT MET' if t.met is False else '—'}: {t.name}" for t in targets(r)
    )
    fig.text(0.01, 0.003, targets_text, fontsize=6, va="bottom")
    fig.suptitle(
        f"paygate benchmarks ({r.machine.get('CPU', '')}; load {r.load_start})", fontsize=10
    )
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _bars(ax: Any, groups: list[str], series: dict[str, list[tuple[float, float, float]]]) -> None:
    n = max(1, len(series))
    width = 0.8 / n
    for i, (label, values) in enumerate(series.items()):
        xs = [g + (i - (n - 1) / 2) * width for g in range(len(groups))]
        med = [v[0] for v in values]
        lo = [max(0.0, v[0] - v[1]) for v in values]
        hi = [max(0.0, v[2] - v[0]) for v in values]
        ax.bar(xs, med, width, yerr=[lo, hi], capsize=2, label=label)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=8)
    ax.legend(fontsize=8)


def _plot_latency(ax: Any, r: Results) -> None:
    rows = [row for row in r.overhead if row.operation == "charge"]
    providers = list(dict.fromkeys(row.provider for row in rows))
    series: dict[str, list[tuple[float, float, float]]] = {"raw httpx": []}
    for store in ("memory", "sqlite"):
        series[f"paygate ({store})"] = []
    for p in providers:
        mine = {row.store: row for row in rows if row.provider == p}
        first = next(iter(mine.values()))
        series["raw httpx"].append((first.raw.median, first.raw.p10, first.raw.p90))
        for store in ("memory", "sqlite"):
            row = mine.get(store)
            series[f"paygate ({store})"].append(
                (row.gateway.median, row.gateway.p10, row.gateway.p90) if row else (0, 0, 0)
            )
    _bars(ax, providers, series)
    ax.set_title("Gateway.charge latency (µs, median, p10–p90)", fontsize=10)


def _plot_throughput_bars(ax: Any, r: Results) -> None:
    rows = [row for row in r.throughput if row.concurrency == 16]
    providers = list(dict.fromkeys(row.provider for row in rows))
    series: dict[str, list[tuple[float, float, float]]] = {
        "paygate async": [],
        "raw httpx async, shared client": [],
        "raw httpx async, client per connection": [],
        "official SDK (threads)": [],
    }
    for p in providers:
        mine = {row.contender: row for row in rows if row.provider == p}
        for label, key in (
            ("paygate async", "paygate"),
            ("raw httpx async, shared client", "raw"),
            ("raw httpx async, client per connection", "raw+lanes"),
        ):
            row = mine.get(key)
            series[label].append(_window_spread(row))
        sdk = [row for k, row in mine.items() if not k.startswith(("paygate", "raw"))]
        series["official SDK (threads)"].append(_window_spread(sdk[0] if sdk else None))
    _bars(ax, providers, series)
    ax.set_title("Charges per second at concurrency 16", fontsize=10)


def _window_spread(row: ThroughputRow | None) -> tuple[float, float, float]:
    if row is None:
        return (0.0, 0.0, 0.0)
    return (row.rate.median, min(row.windows), max(row.windows))


def _plot_throughput_lines(ax: Any, r: Results) -> None:
    providers = list(dict.fromkeys(row.provider for row in r.throughput))
    provider = "payjp" if "payjp" in providers else (providers[0] if providers else None)
    if provider is None:
        return
    labels = {
        "paygate": "paygate AsyncGateway",
        "paygate+sqlite": "paygate AsyncGateway (SQLite)",
        "raw": "raw httpx async, shared client",
        "raw+lanes": "raw httpx async, client per connection",
    }
    for contender in dict.fromkeys(
        row.contender for row in r.throughput if row.provider == provider
    ):
        rows = sorted(
            (
                row
                for row in r.throughput
                if row.provider == provider and row.contender == contender
            ),
            key=lambda row: row.concurrency,
        )
        if contender.startswith("paygate"):
            style = "-"
        elif contender.startswith("raw"):
            style = ":"
        else:
            style = "--"
        ax.errorbar(
            [row.concurrency for row in rows],
            [row.rate.median for row in rows],
            yerr=[
                [row.rate.median - min(row.windows) for row in rows],
                [max(row.windows) - row.rate.median for row in rows],
            ],
            fmt=style,
            marker="o",
            capsize=2,
            label=labels.get(contender, f"official SDK ({contender}, threads)"),
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrency")
    ax.set_ylabel("charges / s")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    ax.set_title(f"{provider}: charges per second by concurrency", fontsize=10)


def _plot_stores(ax: Any, r: Results) -> None:
    workloads = list(dict.fromkeys(row.workload for row in r.stores))
    series: dict[str, list[tuple[float, float, float]]] = {}
    for store in dict.fromkeys(row.store for row in r.stores):
        mine = {row.workload: row for row in r.stores if row.store == store}
        series[store] = [
            (mine[w].latency.median, mine[w].latency.p10, mine[w].latency.p90)
            if w in mine
            else (0, 0, 0)
            for w in workloads
        ]
    _bars(ax, workloads, series)
    ax.set_yscale("log")
    ax.set_title("Idempotency store latency (µs, log scale)", fontsize=10)


# --------------------------------------------------------------------------- latency-bound


def _sdk(contender: str) -> bool:
    return not contender.startswith(("paygate", "raw"))


def latency_targets(r: Results) -> list[Target]:
    """The targets of the latency-bound benchmark (TLS, provider latency, c up to 1,024)."""
    rows = r.latency
    if not rows:
        return [
            Target("AsyncGateway at c=1,024 ≥ 90% of min(c/latency, client CPU)", "—", None),
            Target("client CPU per charge ≤ 1.10× raw httpx and ≤ ½ the best SDK", "—", None),
            Target("peak RSS at c=1,024 ≤ ¼ of the best official SDK's", "—", None),
        ]
    out: list[Target] = []
    top = max(row.concurrency for row in rows)
    by = {(row.provider, row.contender, row.concurrency): row for row in rows}
    providers = list(dict.fromkeys(row.provider for row in rows))
    # 1. Throughput at the top concurrency, and handshakes.
    parts: list[str] = []
    met: list[bool] = []
    for p in providers:
        for contender in ("paygate", "paygate+sqlite", "paygate+postgres"):
            row = by.get((p, contender, top))
            if row is None:
                continue
            bound = min(row.latency_bound, row.cpu_bound)
            share = row.rate / bound
            hs_ok = row.handshakes_per_1000 <= max(row.held, 0)
            if contender == "paygate":
                met.append(share >= 0.9 and hs_ok)
            parts.append(
                f"{p} {contender} {row.rate:,.0f}/s = {share:.0%} of {bound:,.0f}/s "
                f"({'latency' if row.latency_bound <= row.cpu_bound else 'CPU'}-bound; "
                f"{row.handshakes_per_1000:.1f} handshakes/1,000 charges, {row.held} held)"
            )
    out.append(
        Target(
            f"AsyncGateway at c={top:,} ≥ 90% of min(c/latency, what the client's CPU allows), "
            "handshakes per 1,000 charges ≤ connections held",
            "; ".join(parts) or "—",
            all(met) if met else None,
        )
    )
    # 2. CPU per charge.
    parts = []
    met = []
    for p in providers:
        for c in sorted({row.concurrency for row in rows if row.provider == p}):
            pg = by.get((p, "paygate", c))
            if pg is None:
                continue
            raws = [by[(p, k, c)].cpu_us for k in ("raw", "raw+lanes") if (p, k, c) in by]
            sdks = [
                row.cpu_us
                for row in rows
                if row.provider == p and row.concurrency == c and _sdk(row.contender)
            ]
            bits = []
            if raws:
                ratio = pg.cpu_us / min(raws)
                met.append(ratio <= 1.10)
                bits.append(f"{ratio:.2f}× raw")
            if sdks:
                ratio = pg.cpu_us / min(sdks)
                met.append(ratio <= 0.5)
                bits.append(f"{ratio:.2f}× SDK")
            parts.append(f"{p} c={c}: {pg.cpu_us:,.0f} µs, " + ", ".join(bits))
    out.append(
        Target(
            "client CPU per charge ≤ 1.10× raw httpx (the cheaper of its two ways) and "
            "≤ 0.5× the best official SDK",
            "; ".join(parts) or "—",
            all(met) if met else None,
        )
    )
    # 3. RSS at the top concurrency.
    parts = []
    met = []
    for p in providers:
        pg = by.get((p, "paygate", top))
        sdks = [
            row
            for row in rows
            if row.provider == p and row.concurrency == top and _sdk(row.contender)
        ]
        if pg is None or not sdks:
            continue
        best = min(sdks, key=lambda row: row.rss_mb)
        ratio = pg.rss_mb / best.rss_mb
        met.append(ratio <= 0.25)
        grown = pg.rss_mb - pg.rss_base_mb
        sdk_grown = best.rss_mb - best.rss_base_mb
        parts.append(
            f"{p} {pg.rss_mb:,.0f} MiB vs {best.rss_mb:,.0f} MiB = {ratio:.2f}× "
            f"(above the set-up process: {grown:,.0f} vs {sdk_grown:,.0f} MiB = "
            f"{grown / sdk_grown if sdk_grown > 0 else float('nan'):.2f}×)"
        )
    out.append(
        Target(
            f"peak RSS at c={top:,} ≤ ¼ of the best official SDK's",
            "; ".join(parts) or "—",
            all(met) if met else None,
        )
    )
    return out


_LAT_NAMES = {
    "paygate": "paygate AsyncGateway (memory)",
    "paygate+sqlite": "paygate AsyncGateway (SQLite)",
    "paygate+postgres": "paygate AsyncGateway (PostgreSQL)",
    "paygate+keepall": "experiment: AsyncGateway, driver keeping every lane (memory)",
    "paygate+fix": "experiment: AsyncGateway, lanes kept while requests queue (memory)",
    "paygate+again": "AsyncGateway (memory), second sample",
    "raw": "raw httpx async (one shared client)",
    "raw+lanes": "raw httpx async (client per connection)",
}


def _cpu_cell(row: Any) -> str:
    """CPU µs per charge, with every repeat's figure when the cell ran more than once."""
    samples = getattr(row, "cpu_samples", ())
    if len(samples) < 2:
        return f"{row.cpu_us:,.0f}"
    return f"{row.cpu_us:,.0f} ({', '.join(f'{x:,.0f}' for x in sorted(samples))})"


def write_latency_markdown(r: Results, add: Any) -> None:
    """The latency-bound tables (called by `write_markdown`)."""
    if r.latency:
        add("## Latency-bound: TLS, provider latency, up to 1,024 in flight")
        add("")
        add(r.latency_setup)
        add("")
        add(
            "Each row is one fresh process; paygate's and raw httpx's cells run three times "
            "and the row is the one with the median CPU per charge (the three figures in "
            "brackets). *bound*: the lesser of concurrency / (calls × "
            "latency) and one core / CPU per charge. *CPU*: user + system time of the client "
            "process per charge (all threads). *handshakes*: new TLS connections the server "
            "accepted during the window, per 1,000 charges; *held*: connections open at its "
            "end. *busy*: client / server CPU over wall time (1.00 = one core)."
        )
        add("")
        add(
            "| provider | client | calls | c | charges/s | bound | CPU µs / charge "
            "| peak RSS MiB (set-up) | handshakes / 1,000 | held | p50 ms | busy | errors |"
        )
        add("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
        for row in sorted(r.latency, key=lambda x: (x.provider, x.concurrency)):
            bound = min(row.latency_bound, row.cpu_bound)
            server = "–" if row.server_busy is None else f"{row.server_busy:.2f}"
            add(
                f"| {row.provider} | {_LAT_NAMES.get(row.contender, f'SDK `{row.contender}`')} "
                f"| {row.calls} | {row.concurrency:,} | {row.rate:,.0f} | {bound:,.0f} "
                f"| {_cpu_cell(row)} | {row.rss_mb:,.0f} ({row.rss_base_mb:,.0f}) "
                f"| {row.handshakes_per_1000:,.1f} "
                f"| {row.held:,} | {row.p50_ms:,.0f} | {row.client_busy:.2f} / {server} "
                f"| {row.errors} |"
            )
        add("")
    if r.pg_multi:
        add("## PostgreSQL store: four processes on one database")
        add("")
        add(
            "Four processes, four threads each, one schema; `begin` + `complete` per fresh "
            "key, or every thread of every process walking the same keys (16 contenders per "
            "key). *double starts*: keys more than one contender was told to start (a double "
            "charge; must be 0)."
        )
        add("")
        add(
            "| workload | processes × threads | decisions | decisions/s | p50 µs | p90 µs "
            "| outcomes | double starts |"
        )
        add("|---|---|---:|---:|---:|---:|---|---:|")
        for m in r.pg_multi:
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(m.outcomes.items()))
            add(
                f"| {m.workload} | {m.processes} × {m.threads} | {m.decisions:,} "
                f"| {m.rate:,.0f} | {m.p50_us:,.0f} | {m.p90_us:,.0f} | {outcomes} "
                f"| {m.double_starts} |"
            )
        add("")


def _plot_latency_rates(ax: Any, r: Results) -> None:
    provider = "payjp" if any(row.provider == "payjp" for row in r.latency) else None
    if provider is None:
        ax.set_axis_off()
        return
    for contender in dict.fromkeys(row.contender for row in r.latency if row.provider == provider):
        rows = sorted(
            (row for row in r.latency if row.provider == provider and row.contender == contender),
            key=lambda row: row.concurrency,
        )
        style = (
            "-" if contender.startswith("paygate") else ":" if contender.startswith("raw") else "--"
        )
        ax.plot(
            [row.concurrency for row in rows],
            [row.rate for row in rows],
            style,
            marker="o",
            label=_LAT_NAMES.get(contender, f"official SDK ({contender}, threads)"),
        )
    concs = sorted({row.concurrency for row in r.latency})
    lat = r.latency[0].latency_ms / 1000
    ax.plot(concs, [c / lat for c in concs], color="grey", lw=0.8, label="c / latency")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("concurrency (in flight)")
    ax.set_ylabel("charges / s")
    ax.legend(fontsize=6)
    ax.set_title(f"{provider} over TLS, {r.latency[0].latency_ms:.0f} ms latency", fontsize=10)


def _plot_latency_cpu(ax: Any, r: Results) -> None:
    top = max((row.concurrency for row in r.latency), default=0)
    rows = [row for row in r.latency if row.concurrency == top]
    if not rows:
        ax.set_axis_off()
        return
    providers = list(dict.fromkeys(row.provider for row in rows))
    series: dict[str, list[tuple[float, float, float]]] = {}
    for label, pick in (
        ("paygate async", lambda row: row.contender == "paygate"),
        ("raw httpx async (cheaper way)", lambda row: row.contender.startswith("raw")),
        ("official SDK (threads)", lambda row: _sdk(row.contender)),
    ):
        values = []
        for p in providers:
            mine = [row.cpu_us for row in rows if row.provider == p and pick(row)]
            v = min(mine) if mine else 0.0
            values.append((v, v, v))
        series[label] = values
    _bars(ax, providers, series)
    ax.set_title(f"Client CPU per charge at c={top:,} (µs)", fontsize=10)
