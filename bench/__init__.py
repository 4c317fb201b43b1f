"""crnn's benchmark harness: crnn (C and NumPy backends) against PyTorch,
ONNX Runtime and a plain NumPy loop. Run `python bench/run.py --help`;
bench/README.md explains the rows, the contenders and the targets.
"""
