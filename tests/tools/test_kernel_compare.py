"""benchmarks/kernel_compare.py on two small kernel tables with known sums: the kinds a kernel name falls in
(our kernels, cuDNN's and cuBLAS's, PyTorch's), the per-step division by each table's step count, and the
totals. Run by ctest (kernel_compare_py); exits non-zero on a mismatch."""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "..", "..", "benchmarks", "kernel_compare.py")
sys.path.insert(0, os.path.dirname(TOOL))
import kernel_compare  # noqa: E402

CASES = {
    "void nabla::cuda::(anonymous namespace)::bn_apply_packed<__nv_bfloat16, true, int>(...)": "batch norm",
    "void cudnn::bn_bw_1C11_kernel_new<float, float, float2, 128, true, 1>(...)": "batch norm",
    "sm90_xmma_dgrad_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize128x128x64": "conv dgrad",
    "sm90_xmma_wgrad_indexed_implicit_gemm_f32f32_tf32f32_f32_nhwckrsc_nhwc": "conv wgrad",
    "sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc": "conv fprop",
    "void cudnn::engines_precompiled::nchwToNhwcKernel<float, float, float, false, true>(...)": "conv fprop",
    "nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_TNT": "GEMM",
    "void nabla::cuda::(anonymous namespace)::max_pool_backward_cl_packed<__nv_bfloat16, int>(...)": "pooling",
    "void nabla::cuda::(anonymous namespace)::multi_tensor_step<float, SgdOp, SgdConsts<float>, true>(...)":
        "optimizer",
    "void at::native::vectorized_elementwise_kernel<8, at::native::launch_clamp_scalar(...)::{lambda()#1}>": "element-wise",
    "void nabla::cuda::(anonymous namespace)::binary_packed<float>(nabla::ops::BinaryOp, ...)": "element-wise",
    "Memset (Device)": "memset / memcpy",
    "some_unknown_kernel": "other",
}


def main():
    bad = [(n, kernel_compare.kind(n), k) for n, k in CASES.items() if kernel_compare.kind(n) != k]
    for n, got, want in bad:
        print(f"kind({n!r}) = {got!r}, expected {want!r}")
    with tempfile.TemporaryDirectory() as d:
        a, b = os.path.join(d, "a.tsv"), os.path.join(d, "b.tsv")
        with open(a, "w") as f:  # 10 steps: batch norm 3 + 1 ms, conv fprop 2 ms, other 0.5 ms a step
            f.write("# steps 10\n30000000\t530\tbn_apply_packed<float, true, int>\n"
                    "10000000\t530\tbn_finalize<float, false>\n20000000\t100\tsm90_xmma_fprop_x\n"
                    "5000000\t10\tmystery\n")
        with open(b, "w") as f:  # 5 steps: batch norm 2 ms, conv fprop 3 ms a step
            f.write("# steps 5\n10000000\t265\tbatch_norm_collect_statistics\n15000000\t50\tsm90_xmma_fprop_y\n")
        out = subprocess.run([sys.executable, TOOL, a, b], capture_output=True, text=True, check=True).stdout
    want_rows = ["| batch norm | 4.00 | 106 | 2.00 | 53 | +2.00 |", "| conv fprop | 2.00 | 10 | 3.00 | 10 | -1.00 |",
                 "| other | 0.50 | 1 | 0.00 | 0 | +0.50 |", "| **all kernels** | **6.50** | 117 | **5.00** | 63 | +1.50 |"]
    missing = [r for r in want_rows if r not in out]
    for r in missing:
        print(f"missing row: {r}")
    if bad or missing:
        print(out)
        return 1
    print(f"kernel_compare: {len(CASES)} kinds and {len(want_rows)} table rows as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
