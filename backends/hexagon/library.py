"""The Hexagon kernel library: the portable C kernels (backends/c/kernels) with the tiles
their plain-C path uses (4×4 GEMM micro-kernel; no AVX2 or NEON here). v67's HVX has no
float arithmetic, so no fp32 kernel is replaced; HVX moves bytes in the runtime's
memcpy/memset. The int8 kernels that HVX does compute (vrmpy, v67) take their rows here:
`self.add(Kernel("conv2d", "hvx_conv2d_i8", "pk_hvx_conv2d_i8", (...), variant="i8"))`
with their sources in a kernels/ folder beside this file (KernelLibrary.source_path)."""

from __future__ import annotations

from ..c.library import KERNEL_DIR, KERNELS, CKernelLibrary


class HexagonLibrary(CKernelLibrary):
    name = "hexagon"

    def __init__(self):
        super().__init__(KERNEL_DIR, KERNELS, tiles=((4, 4),))
