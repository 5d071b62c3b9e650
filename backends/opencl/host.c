/* host.c: the OpenCL host runtime of a pockengine data-parallel program. model.c defines
   the device program (pk_prelude and one pk_sources[] entry per kernel, each built as a
   program of its own, so a driver's program cache shares kernels between models), the launch schedule (pk_launches, pk_args, pk_copies,
   pk_functions) and the constant image, then includes this file.

   Device memory is two buffers: P (parameters and optimizer state) and A (the arena, the
   functions' inputs and outputs, constants, scratch). Opening builds the program once and
   makes one cl_kernel per launch with its arguments set, so a step is: write the inputs,
   enqueue every launch back to back on one in-order queue, read the outputs, one wait.

   POCK_OPENCL_PLATFORM / POCK_OPENCL_DEVICE (indices) pick the device; the first device of
   the first platform that has one by default. Errors leave a message for
   pock_device_error() (and stderr) and make later steps do nothing. */
#define CL_TARGET_OPENCL_VERSION 120
#ifdef __APPLE__
#include <OpenCL/opencl.h>
#else
#include <CL/cl.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
    int open, failed;
    char error[1024];
    cl_context ctx;
    cl_command_queue queue;
    cl_program programs[PK_N_KERNELS + 1];
    cl_kernel kernels[PK_N_LAUNCHES + 1];
    cl_mem P, A;
} pk;

static int pk_fail(const char *what, cl_int err) {
    if (!pk.failed) {
        snprintf(pk.error, sizeof pk.error, "OpenCL: %s (error %d)", what, (int)err);
        fprintf(stderr, "pockengine: %s\n", pk.error);
    }
    pk.failed = 1;
    return -1;
}

static int pk_env_index(const char *name) {
    const char *v = getenv(name);
    return v ? atoi(v) : -1;
}

static cl_device_id pk_pick_device(void) {
    cl_platform_id platforms[16];
    cl_uint np = 0;
    cl_int err = clGetPlatformIDs(16, platforms, &np);
    if (err != CL_SUCCESS || np == 0) { pk_fail("no OpenCL platform (is an ICD such as pocl-opencl-icd installed?)", err); return NULL; }
    int want_p = pk_env_index("POCK_OPENCL_PLATFORM"), want_d = pk_env_index("POCK_OPENCL_DEVICE");
    for (cl_uint p = 0; p < np; p++) {
        if (want_p >= 0 && (cl_uint)want_p != p) continue;
        cl_device_id devs[16];
        cl_uint nd = 0;
        if (clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, 16, devs, &nd) != CL_SUCCESS || nd == 0) continue;
        if (want_d >= 0) {
            if ((cl_uint)want_d < nd) return devs[want_d];
            continue;
        }
        return devs[0];
    }
    pk_fail("no OpenCL device (POCK_OPENCL_PLATFORM / POCK_OPENCL_DEVICE out of range?)", CL_DEVICE_NOT_FOUND);
    return NULL;
}

int pock_device_open(void) {
    cl_int err;
    if (pk.open) return 0;
    if (pk.failed) return -1;
    cl_device_id dev = pk_pick_device();
    if (!dev) return -1;
    size_t max_group = 0;
    clGetDeviceInfo(dev, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof max_group, &max_group, NULL);
    for (int i = 0; i < PK_N_LAUNCHES; i++) {
        const pk_launch *l = &pk_launches[i];
        if (l->local[0] * l->local[1] * l->local[2] > max_group)
            return pk_fail("a launch asks for more work-items per group than the device allows", CL_INVALID_WORK_GROUP_SIZE);
    }
    pk.ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
    if (err != CL_SUCCESS) return pk_fail("clCreateContext", err);
    pk.queue = clCreateCommandQueue(pk.ctx, dev, 0, &err);
    if (err != CL_SUCCESS) return pk_fail("clCreateCommandQueue", err);
    pk.P = clCreateBuffer(pk.ctx, CL_MEM_READ_WRITE, (size_t)PK_PARAMS_BYTES, NULL, &err);
    if (err != CL_SUCCESS) return pk_fail("clCreateBuffer (parameters)", err);
    pk.A = clCreateBuffer(pk.ctx, CL_MEM_READ_WRITE, (size_t)PK_DEVICE_BYTES, NULL, &err);
    if (err != CL_SUCCESS) return pk_fail("clCreateBuffer (arena)", err);
    for (int k = 0; k < PK_N_KERNELS; k++) {
        const char *src[2] = {pk_prelude, pk_sources[k]};
        pk.programs[k] = clCreateProgramWithSource(pk.ctx, 2, src, NULL, &err);
        if (err != CL_SUCCESS) return pk_fail("clCreateProgramWithSource", err);
        err = clBuildProgram(pk.programs[k], 1, &dev, "-cl-std=CL1.2", NULL, NULL);
        if (err != CL_SUCCESS) {
            static char log[16384];
            size_t n = 0;
            clGetProgramBuildInfo(pk.programs[k], dev, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, &n);
            log[n < sizeof log ? n : sizeof log - 1] = 0;
            fprintf(stderr, "%s: %s\n", pk_kernel_names[k], log);
            return pk_fail("clBuildProgram failed (build log on stderr)", err);
        }
    }
    for (int i = 0; i < PK_N_LAUNCHES; i++) {
        const pk_launch *l = &pk_launches[i];
        pk.kernels[i] = clCreateKernel(pk.programs[l->kernel], pk_kernel_names[l->kernel], &err);
        if (err != CL_SUCCESS) return pk_fail("clCreateKernel", err);
        cl_uint slot = 0;
        for (int a = 0; a < l->nargs; a++) {
            const pk_arg *g = &pk_args[l->first_arg + a];
            if (g->kind == 0) {
                cl_mem m = g->buf == 0 ? pk.P : pk.A;
                cl_long off = (cl_long)(g->value / g->size);  /* the kernel counts elements of its type */
                err = clSetKernelArg(pk.kernels[i], slot++, sizeof m, &m);
                if (err == CL_SUCCESS) err = clSetKernelArg(pk.kernels[i], slot++, sizeof off, &off);
            } else if (g->kind == 1) {
                cl_long v = (cl_long)g->value;
                err = clSetKernelArg(pk.kernels[i], slot++, sizeof v, &v);
            } else {
                cl_float v = g->f;
                err = clSetKernelArg(pk.kernels[i], slot++, sizeof v, &v);
            }
            if (err != CL_SUCCESS) return pk_fail("clSetKernelArg", err);
        }
    }
    err = clEnqueueWriteBuffer(pk.queue, pk.A, CL_TRUE, (size_t)PK_IMAGE_OFFSET, (size_t)PK_IMAGE_BYTES, pk_image, 0,
                               NULL, NULL);
    if (err != CL_SUCCESS) return pk_fail("writing the constants", err);
    pk.open = 1;
    return 0;
}

int pock_device_write_params(const unsigned char *P) {
    if (pock_device_open()) return -1;
    cl_int err = clEnqueueWriteBuffer(pk.queue, pk.P, CL_TRUE, 0, (size_t)PK_PARAMS_BYTES, P, 0, NULL, NULL);
    return err == CL_SUCCESS ? 0 : pk_fail("writing the parameters", err);
}

int pock_device_read_params(unsigned char *P) {
    if (pock_device_open()) return -1;
    cl_int err = clEnqueueReadBuffer(pk.queue, pk.P, CL_TRUE, 0, (size_t)PK_PARAMS_BYTES, P, 0, NULL, NULL);
    return err == CL_SUCCESS ? 0 : pk_fail("reading the parameters", err);
}

const char *pock_device_error(void) { return pk.failed ? pk.error : NULL; }

void pock_device_close(void) {
    if (!pk.open) return;
    for (int i = 0; i < PK_N_LAUNCHES; i++)
        if (pk.kernels[i]) clReleaseKernel(pk.kernels[i]);
    for (int k = 0; k < PK_N_KERNELS; k++)
        if (pk.programs[k]) clReleaseProgram(pk.programs[k]);
    clReleaseMemObject(pk.P);
    clReleaseMemObject(pk.A);
    clReleaseCommandQueue(pk.queue);
    clReleaseContext(pk.ctx);
    memset(&pk, 0, sizeof pk);
}

/* One call of function f: opens the device on first use (parameters from P). */
static void pk_run(int f, const unsigned char *P, void *const *in, void *const *out) {
    if (!pk.open) {
        if (pock_device_open() || pock_device_write_params(P)) return;
    }
    if (pk.failed) return;
    const pk_function *fn = &pk_functions[f];
    cl_int err = CL_SUCCESS;
    for (int i = 0; i < fn->nin && err == CL_SUCCESS; i++) {
        const pk_copy *c = &pk_copies[fn->first_in + i];
        err = clEnqueueWriteBuffer(pk.queue, pk.A, CL_FALSE, (size_t)c->offset, (size_t)c->bytes, in[i], 0, NULL, NULL);
    }
    if (err != CL_SUCCESS) { pk_fail("writing the inputs", err); return; }
    for (int i = fn->first_launch; i < fn->first_launch + fn->nlaunch; i++) {
        const pk_launch *l = &pk_launches[i];
        size_t global[3], local[3];
        for (int d = 0; d < 3; d++) { global[d] = l->groups[d] * l->local[d]; local[d] = l->local[d]; }
        err = clEnqueueNDRangeKernel(pk.queue, pk.kernels[i], 3, NULL, global, local, 0, NULL, NULL);
        if (err != CL_SUCCESS) { pk_fail("clEnqueueNDRangeKernel", err); return; }
    }
    for (int i = 0; i < fn->nout && err == CL_SUCCESS; i++) {
        const pk_copy *c = &pk_copies[fn->first_out + i];
        err = clEnqueueReadBuffer(pk.queue, pk.A, CL_FALSE, (size_t)c->offset, (size_t)c->bytes, out[i], 0, NULL, NULL);
    }
    if (err != CL_SUCCESS) { pk_fail("reading the outputs", err); return; }
    err = clFinish(pk.queue);
    if (err != CL_SUCCESS) pk_fail("clFinish", err);
}
