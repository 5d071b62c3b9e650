"""The data-parallel kernel generator shared by the OpenCL, CUDA and Metal targets: each
kernel described once (language.py: KernelDef and the Language base), the grid mapping
(grid.py), the map kernels (maps.py), the library kernels (kernels.py, gemm.py, library.py),
the launch schedule (schedule.py), the generated host (host.py) and the Device (device.py).
The spellings live beside it: backends/opencl/, backends/cuda/, backends/metal/."""
