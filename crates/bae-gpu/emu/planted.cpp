// Planted bugs: tiny kernels with one classic mistake each, next to the fixed kernel, to show
// that the emulator catches that class of bug (tests/emulated.rs asserts which runs fail).
//   planted CASE bug|fixed   exit 0: output right and the emulator saw nothing wrong
//   race      : reads a neighbour's shared slot with no __syncthreads after the writes
//               (the TSan build reports a data race; poison usually shows it without TSan)
//   warprace  : the same inside a warp, "synchronised" by a __ballot_sync instead of __syncwarp
//               (shuffles and ballots order no memory: TSan reports it)
//   nowait    : cp.async, then reads the destination without cp.async.wait_group
//   waitgroup : wait_group 1 (the newest group may still be in flight), then reads that group
//   stale     : only block 0 fills the shared table the other blocks read (without the poison
//               at every block start, the statics would still hold block 0's values)
#include "cuda_emu.h"
#include <cstdio>
#include <cstring>
#include <vector>

#define NT 64  // threads per block

extern "C" __global__ void planted_race(const float* in, float* out, int fixed) {
    __shared__ float s[NT];
    const int t = threadIdx.x;
    s[t] = in[t];
    if (fixed) __syncthreads();
    out[t] = s[(t + 1) % NT];
}

extern "C" __global__ void planted_warprace(const float* in, float* out, int fixed) {
    __shared__ float s[NT];
    const int t = threadIdx.x;
    s[t] = in[t];
    if (fixed) __syncwarp();
    else (void)__ballot_sync(0xffffffffu, 1);
    out[t] = s[t ^ 1];
}

extern "C" __global__ void planted_nowait(const float* in, float* out, int fixed) {
    __shared__ __align__(16) float s[4 * NT];
    const int t = threadIdx.x;
    cp_async16(&s[4 * t], in + 4 * t, 16);
    cp_async_commit();
    if (fixed) cp_async_wait<0>();
    __syncthreads();
    const int u = (t + 1) % NT;
    for (int i = 0; i < 4; ++i) out[4 * t + i] = s[4 * u + i];
}

// out = in + in2, in (group 0) read after wait_group 1; in2 (group 1) only after wait_group 0
extern "C" __global__ void planted_waitgroup(const float* in, const float* in2, float* out,
                                             int fixed) {
    __shared__ __align__(16) float a[4 * NT];
    __shared__ __align__(16) float b[4 * NT];
    const int t = threadIdx.x, u = (t + 1) % NT;
    cp_async16(&a[4 * t], in + 4 * t, 16);
    cp_async_commit();
    cp_async16(&b[4 * t], in2 + 4 * t, 16);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    float x[4];
    for (int i = 0; i < 4; ++i) x[i] = a[4 * u + i];
    if (fixed) {
        cp_async_wait<0>();
        __syncthreads();
    }
    for (int i = 0; i < 4; ++i) out[4 * t + i] = x[i] + b[4 * u + i];
    cp_async_wait<0>();
}

extern "C" __global__ void planted_stale(const float* in, float* out, int fixed) {
    __shared__ float s[NT];
    const int t = threadIdx.x;
    if (fixed || blockIdx.x == 0) s[t] = in[t];
    __syncthreads();
    out[blockIdx.x * NT + t] = s[(t + 1) % NT];
}

int main(int argc, char** argv) {
    if (argc != 3 || (std::strcmp(argv[2], "bug") && std::strcmp(argv[2], "fixed"))) {
        std::fprintf(stderr, "usage: planted race|warprace|nowait|waitgroup|stale bug|fixed\n");
        return 2;
    }
    const char* c = argv[1];
    const int fixed = std::strcmp(argv[2], "fixed") == 0;
    emu_seed(1);
    std::vector<float> in(4 * NT), in2(4 * NT), out(4 * NT, -1.f), want(4 * NT, -1.f);
    for (int i = 0; i < 4 * NT; ++i) in[i] = 1.f + i, in2[i] = 1000.f + i;
    const dim3 one{1, 1, 1}, block{NT, 1, 1};
    if (!std::strcmp(c, "race")) {
        emu_launch(one, block, [&] { planted_race(in.data(), out.data(), fixed); });
        for (int t = 0; t < NT; ++t) want[t] = in[(t + 1) % NT];
    } else if (!std::strcmp(c, "warprace")) {
        emu_launch(one, block, [&] { planted_warprace(in.data(), out.data(), fixed); });
        for (int t = 0; t < NT; ++t) want[t] = in[t ^ 1];
    } else if (!std::strcmp(c, "nowait")) {
        emu_launch(one, block, [&] { planted_nowait(in.data(), out.data(), fixed); });
        for (int i = 0; i < 4 * NT; ++i) want[i] = in[(i + 4) % (4 * NT)];
    } else if (!std::strcmp(c, "waitgroup")) {
        emu_launch(one, block, [&] { planted_waitgroup(in.data(), in2.data(), out.data(), fixed); });
        for (int i = 0; i < 4 * NT; ++i) want[i] = in[(i + 4) % (4 * NT)] + in2[(i + 4) % (4 * NT)];
    } else if (!std::strcmp(c, "stale")) {
        emu_launch({2, 1, 1}, block, [&] { planted_stale(in.data(), out.data(), fixed); });
        for (int i = 0; i < 2 * NT; ++i) want[i] = in[(i + 1) % NT];
    } else {
        std::fprintf(stderr, "planted: unknown case %s\n", c);
        return 2;
    }
    int bad = 0;
    for (int i = 0; i < 4 * NT; ++i)
        if (std::memcmp(&out[i], &want[i], 4) && bad++ < 3)
            std::printf("FAIL planted %s %s: out[%d] = %g, want %g\n", c, argv[2], i, out[i], want[i]);
    if (emu_errors()) std::printf("FAIL planted %s %s: %d emulator errors\n", c, argv[2], emu_errors());
    if (!bad && !emu_errors()) std::printf("PASS planted %s %s\n", c, argv[2]);
    return bad || emu_errors();
}
