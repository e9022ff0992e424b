"""Physical figures of the RTL without vendor tools: Yosys resource counts, ECP5 synthesis and place-and-route, OSU 0.18 um cells with OpenSTA, switching activity, calibration."""
