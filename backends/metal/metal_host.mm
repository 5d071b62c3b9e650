/* The Metal host of a pockengine model (Objective-C++, ARC): replays the compiler's launch
   schedule (schedule.h) on the default MTLDevice. Device memory is two MTLBuffers in shared
   storage (unified memory on Apple silicon): P, the parameter blob, and A, the arena with
   the inputs, outputs, constants and scratch at the offsets the compiler planned. One call of
   a function is one command buffer with one serial compute encoder: for each launch, its
   pipeline, its buffers bound at their byte offsets, its scalar block (setBytes), its
   threadgroup memory lengths, dispatchThreadgroups. Inputs are copied into A before the
   commit and outputs out of A after waitUntilCompleted; P stays on the device between steps.
   Included by model.mm after model.h and schedule.h. */
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>
#include <stdio.h>
#include <string.h>

static struct {
    id<MTLDevice> dev;
    id<MTLCommandQueue> queue;
    id<MTLComputePipelineState> pso[PK_N_KERNELS > 0 ? PK_N_KERNELS : 1];
    id<MTLBuffer> P, A;
    int open, failed;
    char error[1024];
} pk;

static int pk_fail(const char *what, NSError *err) {
    if (!pk.failed)
        snprintf(pk.error, sizeof pk.error, "metal: %s%s%s", what, err ? ": " : "",
                 err ? [[err localizedDescription] UTF8String] : "");
    pk.failed = 1;
    return -1;
}

/* model.metallib next to the executable, or $POCK_METALLIB */
static NSURL *pk_library_url(void) {
    const char *env = getenv("POCK_METALLIB");
    if (env) return [NSURL fileURLWithPath:[NSString stringWithUTF8String:env]];
    NSString *exe = [[NSBundle mainBundle] executablePath];
    return [NSURL fileURLWithPath:[[exe stringByDeletingLastPathComponent] stringByAppendingPathComponent:@"model.metallib"]];
}

extern "C" int pock_device_open(void) {
    if (pk.open) return 0;
    if (pk.failed) return -1;
    @autoreleasepool {
        pk.dev = MTLCreateSystemDefaultDevice();
        if (!pk.dev) return pk_fail("no Metal device", nil);
        NSError *err = nil;
        id<MTLLibrary> lib = [pk.dev newLibraryWithURL:pk_library_url() error:&err];
        if (!lib) return pk_fail("loading model.metallib", err);
        for (int k = 0; k < PK_N_KERNELS; k++) {
            id<MTLFunction> fn = [lib newFunctionWithName:[NSString stringWithUTF8String:pk_kernel_names[k]]];
            if (!fn) return pk_fail("a kernel is missing from model.metallib", nil);
            pk.pso[k] = [pk.dev newComputePipelineStateWithFunction:fn error:&err];
            if (!pk.pso[k]) return pk_fail("newComputePipelineStateWithFunction", err);
            /* the SIMD-group GEMM's 8 SIMD-groups of 32 cover its 256 threads */
            if (pk_kernel_infos[k].simdgroup && pk.pso[k].threadExecutionWidth != 32)
                return pk_fail("a SIMD-group matrix kernel needs a SIMD width of 32", nil);
        }
        for (int i = 0; i < PK_N_LAUNCHES; i++) {
            const pk_launch *l = &pk_launches[i];
            if ((NSUInteger)l->local[0] * l->local[1] * l->local[2] > pk.pso[l->fn].maxTotalThreadsPerThreadgroup)
                return pk_fail("a launch asks for more threads per threadgroup than its pipeline allows", nil);
        }
        pk.queue = [pk.dev newCommandQueue];
        pk.P = [pk.dev newBufferWithLength:(NSUInteger)PK_PARAMS_BYTES options:MTLResourceStorageModeShared];
        pk.A = [pk.dev newBufferWithLength:(NSUInteger)PK_DEVICE_BYTES options:MTLResourceStorageModeShared];
        if (!pk.queue || !pk.P || !pk.A) return pk_fail("allocating the parameter and arena buffers", nil);
        memcpy((unsigned char *)[pk.A contents] + PK_IMAGE_OFFSET, pk_image, (size_t)PK_IMAGE_BYTES);
    }
    pk.open = 1;
    return 0;
}

extern "C" int pock_device_write_params(const unsigned char *P) {
    if (pock_device_open()) return -1;
    memcpy([pk.P contents], P, (size_t)PK_PARAMS_BYTES);
    return 0;
}

extern "C" int pock_device_read_params(unsigned char *P) {
    if (pock_device_open()) return -1;
    memcpy(P, [pk.P contents], (size_t)PK_PARAMS_BYTES);
    return 0;
}

extern "C" const char *pock_device_error(void) { return pk.failed ? pk.error : NULL; }

extern "C" void pock_device_close(void) {
    if (!pk.open) return;
    for (int k = 0; k < PK_N_KERNELS; k++) pk.pso[k] = nil;
    pk.P = pk.A = nil;
    pk.queue = nil;
    pk.dev = nil;
    pk.open = 0;
}

static void pk_run(int f, const unsigned char *P, void *const *in, void *const *out) {
    if (!pk.open && (pock_device_open() || pock_device_write_params(P))) return;
    if (pk.failed) return;
    const pk_function *fn = &pk_functions[f];
    unsigned char *A = (unsigned char *)[pk.A contents];
    for (int i = 0; i < fn->nin; i++) {
        const pk_copy *c = &pk_copies[fn->first_in + i];
        memcpy(A + c->offset, in[i], (size_t)c->bytes);
    }
    @autoreleasepool {
        id<MTLCommandBuffer> cb = [pk.queue commandBuffer];
        id<MTLComputeCommandEncoder> enc = [cb computeCommandEncoderWithDispatchType:MTLDispatchTypeSerial];
        for (int i = fn->first_launch; i < fn->first_launch + fn->nlaunch; i++) {
            const pk_launch *l = &pk_launches[i];
            const pk_kernel_info *ki = &pk_kernel_infos[l->fn];
            [enc setComputePipelineState:pk.pso[l->fn]];
            for (int j = 0; j < l->nbind; j++) {
                const pk_binding *g = &pk_bindings[l->first_binding + j];
                [enc setBuffer:(g->buf == 0 ? pk.P : pk.A) offset:(NSUInteger)g->offset atIndex:(NSUInteger)j];
            }
            if (l->scalar_bytes)
                [enc setBytes:pk_scalars + l->scalar_offset length:(NSUInteger)l->scalar_bytes atIndex:(NSUInteger)l->nbind];
            for (int t = 0; t < ki->ntg; t++) [enc setThreadgroupMemoryLength:ki->tg[t] atIndex:(NSUInteger)t];
            [enc dispatchThreadgroups:MTLSizeMake(l->groups[0], l->groups[1], l->groups[2])
                threadsPerThreadgroup:MTLSizeMake(l->local[0], l->local[1], l->local[2])];
        }
        [enc endEncoding];
        [cb commit];
        [cb waitUntilCompleted];
        if (cb.status != MTLCommandBufferStatusCompleted) {
            pk_fail("the step's command buffer failed", cb.error);
            return;
        }
    }
    for (int i = 0; i < fn->nout; i++) {
        const pk_copy *c = &pk_copies[fn->first_out + i];
        memcpy(out[i], A + c->offset, (size_t)c->bytes);
    }
}
