/* host.cu: the CUDA host runtime of a pockengine data-parallel program. model.cu defines
   the kernels, the launch schedule (pk_launches, pk_args, pk_copies, pk_functions), the
   cuBLAS calls that replace GEMM launches (pk_blas) and the constant image, then includes
   this file.

   Device memory: one cudaMalloc for the parameters (P) and one for everything else (A: the
   arena, the functions' inputs and outputs, constants, scratch, cuBLAS's workspace). Inputs
   and outputs go through one pinned host buffer with async copies. The first call of a
   function captures the whole step (copies in, every launch and cuBLAS call, copies out) as
   a CUDA graph on one stream; every call replays it: one launch, one wait.

   PK_CUBLAS=1 (the Makefile's default when cuBLAS is found) runs GEMMs through cuBLAS in
   pointer mode device, so (alpha, beta) pairs computed on the device (SGD momentum) need no
   host round trip; POCK_CUDA_GEMM=own at run time uses the own tiled GEMM instead. TF32 is
   off unless built with PK_ALLOW_TF32 (the target's allow_tf32=True). */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef PK_CUBLAS
#define PK_CUBLAS 0
#endif
#if PK_CUBLAS
#include <cublas_v2.h>
#endif

#define PK_BLAS_WORKSPACE (32LL << 20)

static struct {
    int open, failed, own_gemm;
    char error[1024];
    unsigned char *P, *A, *pinned;
    cudaStream_t stream;
    cudaGraphExec_t exec[PK_N_FUNCTIONS];
    int captured[PK_N_FUNCTIONS];
    long long pinned_at[PK_N_COPIES + 1];
    void *argv[PK_N_ARGS + 1];
    union { void *p; long l; float f; } values[PK_N_ARGS + 1];
#if PK_CUBLAS
    cublasHandle_t blas;
#endif
} pk;

static int pk_fail(const char *what, const char *detail) {
    if (!pk.failed) {
        snprintf(pk.error, sizeof pk.error, "CUDA: %s: %s", what, detail);
        fprintf(stderr, "pockengine: %s\n", pk.error);
    }
    pk.failed = 1;
    return -1;
}

#define PK_CHECK(call, what) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) return pk_fail(what, cudaGetErrorString(e_)); } while (0)

static unsigned char *pk_base(int buf) { return buf == 0 ? pk.P : pk.A; }

extern "C" int pock_device_open(void) {
    if (pk.open) return 0;
    if (pk.failed) return -1;
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) return pk_fail("no CUDA device", "cudaGetDeviceCount found none");
    const char *gemm = getenv("POCK_CUDA_GEMM");
    pk.own_gemm = !PK_CUBLAS || (gemm && !strcmp(gemm, "own"));
    PK_CHECK(cudaMalloc((void **)&pk.P, (size_t)PK_PARAMS_BYTES), "cudaMalloc (parameters)");
    PK_CHECK(cudaMalloc((void **)&pk.A, (size_t)(PK_DEVICE_BYTES + PK_BLAS_WORKSPACE)), "cudaMalloc (arena)");
    PK_CHECK(cudaStreamCreateWithFlags(&pk.stream, cudaStreamNonBlocking), "cudaStreamCreate");
    long long pinned = 0;
    for (int i = 0; i < PK_N_COPIES; i++) { pk.pinned_at[i] = pinned; pinned += (pk_copies[i].bytes + 63) / 64 * 64; }
    PK_CHECK(cudaMallocHost((void **)&pk.pinned, (size_t)(pinned > 0 ? pinned : 64)), "cudaMallocHost");
    PK_CHECK(cudaMemcpy(pk.A + PK_IMAGE_OFFSET, pk_image, (size_t)PK_IMAGE_BYTES, cudaMemcpyHostToDevice), "writing the constants");
    for (int i = 0; i < PK_N_ARGS; i++) {
        const pk_arg *a = &pk_args[i];
        if (a->kind == 0) pk.values[i].p = pk_base(a->buf) + a->value;
        else if (a->kind == 1) pk.values[i].l = (long)a->value;
        else pk.values[i].f = a->f;
        pk.argv[i] = &pk.values[i];
    }
#if PK_CUBLAS
    if (!pk.own_gemm) {
        if (cublasCreate(&pk.blas) != CUBLAS_STATUS_SUCCESS) return pk_fail("cublasCreate", "failed");
        cublasSetStream(pk.blas, pk.stream);
        cublasSetPointerMode(pk.blas, CUBLAS_POINTER_MODE_DEVICE);
        cublasSetWorkspace(pk.blas, pk.A + PK_DEVICE_BYTES, (size_t)PK_BLAS_WORKSPACE);
#ifdef PK_ALLOW_TF32
        cublasSetMathMode(pk.blas, CUBLAS_TF32_TENSOR_OP_MATH);
#else
        cublasSetMathMode(pk.blas, CUBLAS_PEDANTIC_MATH);
#endif
    }
#endif
    pk.open = 1;
    return 0;
}

extern "C" int pock_device_write_params(const unsigned char *P) {
    if (pock_device_open()) return -1;
    PK_CHECK(cudaMemcpy(pk.P, P, (size_t)PK_PARAMS_BYTES, cudaMemcpyHostToDevice), "writing the parameters");
    return 0;
}

extern "C" int pock_device_read_params(unsigned char *P) {
    if (pock_device_open()) return -1;
    PK_CHECK(cudaStreamSynchronize(pk.stream), "cudaStreamSynchronize");
    PK_CHECK(cudaMemcpy(P, pk.P, (size_t)PK_PARAMS_BYTES, cudaMemcpyDeviceToHost), "reading the parameters");
    return 0;
}

extern "C" const char *pock_device_error(void) { return pk.failed ? pk.error : NULL; }

extern "C" void pock_device_close(void) {
    if (!pk.open) return;
    for (int f = 0; f < PK_N_FUNCTIONS; f++)
        if (pk.captured[f]) cudaGraphExecDestroy(pk.exec[f]);
#if PK_CUBLAS
    if (!pk.own_gemm) cublasDestroy(pk.blas);
#endif
    cudaStreamDestroy(pk.stream);
    cudaFreeHost(pk.pinned);
    cudaFree(pk.P);
    cudaFree(pk.A);
    memset(&pk, 0, sizeof pk);
}

#if PK_CUBLAS
static int pk_blas_run(int first, int count) {
    for (int i = first; i < first + count; i++) {
        const pk_blas_call *b = &pk_blas[i];
        const float *A = (const float *)(pk_base(b->abuf) + b->aoff), *B = (const float *)(pk_base(b->bbuf) + b->boff);
        float *C = (float *)(pk_base(b->cbuf) + b->coff);
        const float *alpha = (const float *)(pk_base(b->alphabuf) + b->alphaoff);
        const float *beta = (const float *)(pk_base(b->betabuf) + b->betaoff);
        cublasOperation_t ta = b->transa ? CUBLAS_OP_T : CUBLAS_OP_N, tb = b->transb ? CUBLAS_OP_T : CUBLAS_OP_N;
        cublasStatus_t st = b->batch == 1
            ? cublasSgemm(pk.blas, ta, tb, b->m, b->n, b->k, alpha, A, b->lda, B, b->ldb, beta, C, b->ldc)
            : cublasSgemmStridedBatched(pk.blas, ta, tb, b->m, b->n, b->k, alpha, A, b->lda, b->sa, B, b->ldb, b->sb,
                                        beta, C, b->ldc, b->sc, b->batch);
        if (st != CUBLAS_STATUS_SUCCESS) return pk_fail("cuBLAS SGEMM", "failed");
    }
    return 0;
}
#endif

static int pk_capture(int f) {
    const pk_function *fn = &pk_functions[f];
    cudaGraph_t graph;
    PK_CHECK(cudaStreamBeginCapture(pk.stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    for (int i = 0; i < fn->nin; i++) {
        const pk_copy *c = &pk_copies[fn->first_in + i];
        cudaMemcpyAsync(pk.A + c->offset, pk.pinned + pk.pinned_at[fn->first_in + i], (size_t)c->bytes,
                        cudaMemcpyHostToDevice, pk.stream);
    }
    for (int i = fn->first_launch; i < fn->first_launch + fn->nlaunch; i++) {
        const pk_launch *l = &pk_launches[i];
#if PK_CUBLAS
        if (l->blas >= 0 && !pk.own_gemm) {
            if (pk_blas_run(l->blas, l->nblas)) { cudaStreamEndCapture(pk.stream, &graph); return -1; }
            continue;
        }
#endif
        dim3 grid((unsigned)l->groups[0], (unsigned)l->groups[1], (unsigned)l->groups[2]);
        dim3 block((unsigned)l->local[0], (unsigned)l->local[1], (unsigned)l->local[2]);
        cudaError_t e = cudaLaunchKernel(pk_kernel_fns[l->kernel], grid, block, &pk.argv[l->first_arg], 0, pk.stream);
        if (e != cudaSuccess) {
            cudaStreamEndCapture(pk.stream, &graph);
            return pk_fail(pk_kernel_names[l->kernel], cudaGetErrorString(e));
        }
    }
    for (int i = 0; i < fn->nout; i++) {
        const pk_copy *c = &pk_copies[fn->first_out + i];
        cudaMemcpyAsync(pk.pinned + pk.pinned_at[fn->first_out + i], pk.A + c->offset, (size_t)c->bytes,
                        cudaMemcpyDeviceToHost, pk.stream);
    }
    PK_CHECK(cudaStreamEndCapture(pk.stream, &graph), "capturing the step");
    PK_CHECK(cudaGraphInstantiate(&pk.exec[f], graph, 0), "cudaGraphInstantiate");
    cudaGraphDestroy(graph);
    pk.captured[f] = 1;
    return 0;
}

/* One call of function f: opens the device on first use (parameters from P). */
static void pk_run(int f, const unsigned char *P, void *const *in, void *const *out) {
    if (!pk.open && (pock_device_open() || pock_device_write_params(P))) return;
    if (pk.failed || (!pk.captured[f] && pk_capture(f))) return;
    const pk_function *fn = &pk_functions[f];
    for (int i = 0; i < fn->nin; i++)
        memcpy(pk.pinned + pk.pinned_at[fn->first_in + i], in[i], (size_t)pk_copies[fn->first_in + i].bytes);
    cudaError_t e = cudaGraphLaunch(pk.exec[f], pk.stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(pk.stream);
    if (e != cudaSuccess) { pk_fail("running the step", cudaGetErrorString(e)); return; }
    for (int i = 0; i < fn->nout; i++)
        memcpy(out[i], pk.pinned + pk.pinned_at[fn->first_out + i], (size_t)pk_copies[fn->first_out + i].bytes);
}
