"""hls4ml: configs, the ModelGraph, the HLS project and its C simulation, the project record, vendor synthesis."""
