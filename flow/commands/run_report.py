"""Run reports: ``report.json`` (machine-readable) and ``report.md`` (for people), plus graph figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def graph_weight_stats(graph: Any) -> dict[str, Any]:
    """Weight bits and sparsity read from the hls4ml graph (the types the hardware uses).

    ``quantized_bits`` sums width x count over every weight and bias; ``zero_weights`` counts
    weights that are exactly zero after quantization (pruned or rounded to zero).
    """
    total_bits = n_weights = n_zero = 0
    layers = []
    for layer in graph.get_layers():
        for w in layer.get_weights():
            width = int(w.type.precision.width)
            size = int(w.data.size)
            zeros = int(np.sum(np.asarray(w.data) == 0))
            total_bits += width * size
            n_weights += size
            n_zero += zeros
            layers.append({"layer": layer.name, "variable": w.name, "type": str(w.type.precision),
                           "count": size, "zeros": zeros})
    return {"quantized_bits": total_bits, "weights": n_weights, "zero_weights": n_zero,
            "sparsity": n_zero / n_weights if n_weights else 0.0, "variables": layers}


def graph_types(graph: Any) -> list[dict[str, str]]:
    """Each layer's output type as hls4ml will synthesize it."""
    return [{"layer": layer.name, "class": layer.class_name,
             "result": str(layer.get_output_variable().type.precision)} for layer in graph.get_layers()]


def write_reports(out_dir: Path, report: dict[str, Any]) -> None:
    """Write ``report.json`` and ``report.md`` into ``out_dir``."""
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    (out_dir / "report.md").write_text(render_markdown(report))


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f} %"


def _pending(r: dict[str, Any]) -> bool:
    return (r.get("csim") or {}).get("status") == "pending"


def _comparison_line(what: str, c: dict[str, Any]) -> str:
    """One comparison record (:func:`flow.hls.compare.compare_outputs`) as a sentence; a pending or skipped one says so."""
    if "pending" in c:
        return f"{what}: **pending**: {c['pending']}."
    if "skipped" in c:
        return f"{what}: not run ({c['skipped']})."
    return (f"{what}: **{c['equal_outputs']} of {c['outputs']}** outputs equal (exact fraction "
            f"{c['exact_fraction']:.6f}), max |difference| {c['max_abs_diff']:.3g}, compared at `{c['compared_at']}`"
            + (f" ({c['checked_by']})" if "checked_by" in c else "") + ".")


def _csim_build_line(c: dict[str, Any]) -> str:
    """report.json's ``csim`` section (:meth:`flow.hls.csim_build.CsimBuild.record`) as a sentence."""
    budget = "no time limit" if c.get("timeout_seconds") is None else f"budget {c['timeout_seconds']:g} s"
    peak = f", compiler peak {c['peak_rss_mib']} MiB" if c.get("peak_rss_mib") else ""
    line = f"C simulation build: g++ {c['opt_level']}, {c['compile_seconds']:.1f} s ({budget}{peak}): {c['status']}"
    if c.get("complete_with"):
        line += f"; complete the check with `{c['complete_with']}`"
    if c.get("checked_by"):
        line += f"; {c['checked_by']}"
    return line + "."


def _emulator_line(cmp: dict[str, Any] | None) -> str:
    if not cmp:
        return ""
    if "skipped" in cmp:
        return f"Emulator: not run ({cmp['skipped']})."
    if "pending" in cmp:
        return f"Numpy emulator vs C simulation: **pending**: {cmp['pending']}."
    over = {k: v for k, v in cmp.get("overflows", {}).items() if v}
    return (f"Numpy emulator vs C simulation: **{cmp['equal_outputs']} of {cmp['outputs']}** outputs equal "
            f"(differing: {cmp['outputs'] - cmp['equal_outputs']}). Values that wrapped or saturated per layer: "
            + (", ".join(f"{k} {v}" for k, v in over.items()) if over else "none") + ".")


def _rtl_lines(rtl: dict[str, Any] | None) -> list[str]:
    """Report section for the vendor-free RTL: latency, II, lint, Yosys, simulations vs emulator and float."""
    if not rtl:
        return []
    g = rtl["generation"]
    lines = ["## RTL (vendor-free, da4ml)", "",
             f"Top `{g['top']}` in `{g['rtl']}`: latency **{g['latency_cycles']} cycles**, initiation interval "
             f"**{g['initiation_interval']}**, `verilator --lint-only -Wall` "
             f"{'clean' if g.get('lint_clean') else '**not clean**'}.", ""]
    t = g.get("timing") or {}
    if t.get("cutoff_from", "").startswith("clock_period") and "predicted_stage_ns" in t:
        lines += [f"Pipeline cut for the clock period {t['clock_period_ns']:g} ns on {t['target']}: da4ml cutoff "
                  f"{g.get('latency_cutoff')} ({g.get('pipeline_stages')} stages); predicted stage delay "
                  f"{t['predicted_stage_ns']:g} ns from the shipped calibration, which "
                  + ("meets the period" if t.get("predicted_meets") else "**does not meet the period** (the deepest "
                     "cut da4ml makes)")
                  + ". Measured figures: `hlsflow rtl PROJECT --fpga ecp5-85k --asic osu018`.", ""]
    y = g.get("yosys")
    if y:
        x = y["xilinx"]
        lines += [f"Yosys estimate ({y['tool']}): `synth_xilinx` **{x['LUT']:,} LUT**, {x['FF']:,} FF, {x['DSP']} DSP, "
                  f"{x['CARRY']:,} CARRY; generic `synth`: {y['generic_total']:,} cells.", ""]
    lines += physical_lines(rtl.get("physical"))
    sims = rtl.get("simulation") or {}
    if sims:
        lines += ["| simulator | samples (test data + random) | outputs differing from emulator (samples / bits) | "
                  "latency measured | samples/s | argmax agreement vs float: test data / all | "
                  "max / mean abs error vs float (test data) | argmax agreement vs QKeras (all) |",
                  "|---|---|---|---|---|---|---|---|"]
        for s in sims.values():
            d, n, refs = s["rtl_vs_emulator"], s["samples"], s["rtl_vs_reference"]
            fl = refs.get("float") or next(iter(refs.values()))
            fl_test = fl.get("test_data", fl)
            qk = refs.get("qkeras") or refs.get("model") or {}
            lines.append(f"| {s['simulator']['version']} | {n['total']:,} ({n['test_data']:,} + "
                         f"{n['random_full_range']:,}) | {d['mismatching_samples']} / {d['differing_bits']} | "
                         f"{s['latency_cycles']['measured']} | {s['simulator']['samples_per_second']:,.0f} | "
                         f"{_pct(fl_test.get('argmax_agreement'))} / {_pct(fl.get('argmax_agreement'))} | "
                         f"{fl_test['max_abs_diff']:.3g} / {fl_test['mean_abs_diff']:.3g} | "
                         f"{_pct(qk.get('argmax_agreement'))} |")
        lines += ["", "Stimulus: random valid gaps, random back-pressure and a reset in mid-stream; every output bit "
                  "is compared with the bit-exact emulator. The random inputs cover every code of the input type, "
                  "far from the data the float model learned, hence its lower agreement there.", ""]
    return lines


def physical_lines(phys: dict[str, Any] | None) -> list[str]:
    """Markdown lines for ``rtl/physical.json``: FPGA Fmax/slack/utilisation, ASIC area/timing/power/energy."""
    if not phys:
        return []
    period = phys["clock_period_ns"]
    lines = [f"Physical figures at the clock period **{period:g} ns** ({1000 / period:g} MHz), latency "
             f"{phys['latency_cycles']} cycles = **{phys['latency_ns']:g} ns**, {phys.get('pipeline_stages')} pipeline "
             f"stages (da4ml cutoff {phys.get('latency_cutoff')}) (`rtl/physical.json`):", ""]
    f = phys.get("fpga")
    if f:
        verdict = "met" if f["met"] else "**not met**"
        lines += [f"- FPGA {f['device']} ({f['part']}, {f['tools']['nextpnr']}): Fmax **{f['fmax_mhz']:g} MHz** "
                  f"({f['fmax_stage']}), target {f['clock_target_mhz']:g} MHz {verdict}, slack {f['slack_ns']:g} ns; "
                  f"{f['luts']:,} LUT4, {f['ffs']:,} FF, {f['ccu2c']:,} CCU2C, {f['dp16kd']} DP16KD, "
                  f"{f['mult18x18d']} MULT18X18D."]
    a = phys.get("asic")
    if a:
        lines += [f"- ASIC {a['description']}: area **{a['area_um2']:,.0f} um^2** ({a['cells']:,} cells), critical path "
                  f"**{a['critical_path_ns']:g} ns** (min period {a['min_period_ns']:g} ns, WNS {a['wns_ns']:g} ns, "
                  f"TNS {a['tns_ns']:g} ns); power **{a['power_mw']:g} mW** (dynamic {a['dynamic_power_mw']:g}, "
                  f"leakage {a['leakage_power_mw']:g}) with the switching activity of {a['activity']['samples']} test "
                  f"samples ({a['activity']['gate_level_vs_emulator']} in the gate-level simulation); "
                  f"**{a['energy_nj_per_inference']:g} nJ per inference** ({a['energy_formula']}). "
                  f"{a['tools']['opensta']}, {a['delay_model']}."]
    tc = phys.get("timing_closure")
    if tc:
        lines += [f"- Timing-driven pipelining: {tc['statement']}."]
    return lines + [""]


def _neuron_lines(n: dict[str, Any] | None) -> list[str]:
    """Report section for neuron pruning: widths before/after per layer and round, the cut, accuracy, the plot."""
    if not n:
        return []
    rule = (f"units whose activity is below **{n['threshold']:g}**" if n.get("threshold") is not None
            else f"the least active **{n['fraction']:g}** of each layer's units in {n['rounds_asked']} round(s)")
    lines = ["## Neuron pruning", "",
             f"Removed {rule}, then fine-tuned {n['finetune_epochs']} epoch(s) per round. Activity: the fraction of "
             f"the values the next layer reads from a unit (after its activation and any pooling; for convolutions over "
             f"every output position) that are non-zero, on the {n['measured_on']['samples']:,} training samples. The "
             "spec's layer list gives the widths before pruning; `qkeras_model.h5` is the pruned model "
             "(`qkeras_model_unpruned.h5` the one before).", "",
             "| layer | before | after | activity read at the output of |", "|---|---|---|---|",
             *[f"| {x['layer']} | {x['before']} {x['kind']} | {x['after']} {x['kind']} | `{at}` |"
               for x, at in zip(n["layers"], (y["measured_at"] for y in n["rounds"][0]["layers"]))], "",
             "| round | layer | before → after | removed (original index) | activity of removed / kept units | "
             "test accuracy: before → after the cut → after fine-tuning |", "|---|---|---|---|---|---|"]
    for rnd in n["rounds"]:
        for x in rnd["layers"]:
            removed = ", ".join(str(i) for i in x["removed"]) or "none"
            top = "-" if x["max_removed_activity"] is None else f"≤ {x['max_removed_activity']:.4f}"
            lines.append(f"| {rnd['round']} | {x['layer']} | {x['before']} → {x['after']} | {removed} | "
                         f"{top} / ≥ {x['min_kept_activity']:.4f} | {_pct(rnd['accuracy_before'])} → "
                         f"{_pct(rnd['accuracy_after_cut'])} → {_pct(rnd['accuracy_after_finetune'])} |")
    return lines + ["", "![per-unit activity and the cut](neuron_activity.png)", ""]


def render_markdown(r: dict[str, Any]) -> str:
    acc, size, times = r["accuracy"], r["size"], r["seconds"]
    lines = [
        f"# hlsflow report: {r['name']}",
        "",
        f"Spec: `{r['spec']}` · backend {r['hardware']['backend']} · part {r['hardware']['part']} · "
        f"clock {r['hardware']['clock_period']} ns · {r['hardware']['io_type']} · "
        f"strategy {r['hardware']['strategy']} · reuse factor {r['hardware']['reuse_factor']}",
        "",
        "## Accuracy on the test split",
        "",
        "| model | accuracy |",
        "|---|---|",
        f"| float baseline | {_pct(acc['float'])} |",
        f"| QKeras (QAT) | {_pct(acc['qkeras'])} |",
        f"| hls4ml C simulation | {'pending' if _pending(r) else _pct(acc['csim'])} |",
        f"| numpy emulator (bit-exact) | {_pct(acc.get('emulator'))} |",
        "",
        "## Bit-exactness",
        "",
        _comparison_line("C simulation vs QKeras", r["csim_vs_qkeras"]),
        "",
        _emulator_line(r.get("emulator_vs_csim")),
        *(["", _comparison_line("Numpy emulator vs QKeras", r["emulator_vs_qkeras"])] if "emulator_vs_qkeras" in r
          else []),
        *(["", _csim_build_line(r["csim"])] if r.get("csim") else []),
        "",
        f"Inputs are quantized to **`{r['input']['type']}`** before every stage "
        f"({r['input']['changed_by_quantization']} input values changed by quantization, "
        f"{r['input']['out_of_range']} outside the type's range).",
        "",
        "## Size",
        "",
        f"- float: {size['float_bits']:,} bits ({size['parameters']:,} parameters x 32)",
        f"- quantized: {size['quantized_bits']:,} bits ({size['float_bits'] / max(1, size['quantized_bits']):.1f}x smaller)",
        f"- sparsity: {_pct(size['sparsity'])} of weights are zero"
        + (f" (pruning target {_pct(r['pruning']['sparsity'])})" if (r.get("pruning") or {}).get("sparsity") else ""),
        "",
        *_neuron_lines(r.get("neuron_pruning")),
        "## Layer types (from the hls4ml graph)",
        "",
        "| layer | class | result type |",
        "|---|---|---|",
        *[f"| {t['layer']} | {t['class']} | `{t['result']}` |" for t in r["types"]],
        "",
        *_rtl_lines(r.get("rtl")),
        "## Time per stage",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {stage} | {sec:.1f} |" for stage, sec in times.items()],
        "",
        f"HLS project: `{r['hls_project']}` (open `build_prj.tcl` with the vendor tool, or run `hlsflow synth`).",
        "",
    ]
    return "\n".join(lines)
