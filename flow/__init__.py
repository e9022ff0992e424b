"""hlsflow: QKeras quantization-aware training -> hls4ml HLS C++ projects -> verified fixed-point hardware."""

__version__ = "0.1.0"
