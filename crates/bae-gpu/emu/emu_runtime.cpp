// Fiber runtime of cuda_emu.h: one fiber per CUDA thread of the running block, a FIFO of ready
// fibers, counting barriers. A fiber runs until it waits at a barrier or exits; then the next
// ready fiber runs; when none is ready the block is over (or deadlocked: fatal).
//
// ThreadSanitizer: each fiber is a TSan fiber, switched with no_sync (a switch is not a
// synchronisation on a GPU). Every phase of __syncthreads / __syncwarp is announced as release
// (on arrival) + acquire (on leaving) of a per-phase address; block start and end likewise order
// the host thread and the fibers. Warp exchanges pass their words through this file only. This file is compiled without -fsanitize=thread (run.sh passes -DEMU_TSAN=1
// instead): the scheduler's state is touched by every fiber, and uninstrumented it adds no
// happens-before and no reports of its own, so TSan sees the CUDA program's ordering only.
#include "cuda_emu.h"
#include <sys/mman.h>

#ifdef EMU_TSAN
#include <sanitizer/tsan_interface.h>
static void tsan_release(void* p) { __tsan_release(p); }
static void tsan_acquire(void* p) { __tsan_acquire(p); }
static void tsan_switch(void* fiber) { __tsan_switch_to_fiber(fiber, __tsan_switch_to_fiber_no_sync); }
#else
static void tsan_release(void*) {}
static void tsan_acquire(void*) {}
static void tsan_switch(void*) {}
#endif

dim3 threadIdx, emu_block_idx, blockDim, gridDim;
// bounds of all __shared__ variables of the binary (linker-made; weak: a binary may have none)
extern char __start_emu_shared[] __attribute__((weak));
extern char __stop_emu_shared[] __attribute__((weak));

// ---- context switch ----
#if defined(__x86_64__) && !defined(EMU_UCONTEXT)
// saves the callee-saved registers, MXCSR and the x87 control word on the old stack, stores its
// stack pointer, loads the new one and restores the same from there
asm(R"(
    .pushsection .text
    .globl emu_swap_context
    .type emu_swap_context, @function
emu_swap_context:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_swap_context, .-emu_swap_context
    .popsection
)");
extern "C" void emu_swap_context(void** save_sp, void* load_sp);
struct Ctx { void* sp; };
static void ctx_init(Ctx& c, char* stack, size_t size, void (*entry)()) {
  void** sp = (void**)(((uintptr_t)stack + size) & ~(uintptr_t)15);
  *--sp = nullptr;         // entry starts as if called: rsp % 16 == 8
  *--sp = (void*)entry;    // the `ret` of emu_swap_context goes here
  for (int i = 0; i < 6; ++i) *--sp = nullptr;
  const uint32_t csr[2] = {0x1f80, 0x037f};  // default MXCSR and x87 control word
  --sp;
  std::memcpy(sp, csr, 8);
  c.sp = sp;
}
static void ctx_swap(Ctx& from, Ctx& to) { emu_swap_context(&from.sp, to.sp); }
#else
#include <ucontext.h>
struct Ctx { ucontext_t uc; };
static void ctx_init(Ctx& c, char* stack, size_t size, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
static void ctx_swap(Ctx& from, Ctx& to) { swapcontext(&from.uc, &to.uc); }
#endif

namespace {
constexpr size_t kStack = 256 << 10;
struct Fiber {
  Ctx ctx;
  char* stack;
  void* tsan;
  unsigned id;
  bool done;
  EmuCpAsync cp;
};
struct Bar {
  int expected, arrived, nwait;
  unsigned phase;
  int* wait;       // ids of the waiting fibers
  char sync[2];    // TSan addresses of even / odd phases
};

Fiber** fib;                  // fib[t]: CUDA thread t of the running block; reused across blocks
unsigned fib_cap;
Bar block_bar;
Bar* warp_bar;
uint64_t (*slots)[2][32][8];  // per warp, by exchange parity
// Ready fibers, bucketed by warp (each fiber at most once). Per block the pick is either a random
// ready fiber or, with strict priority among warps (random order), a random lane of the first
// warp that has one: that warp runs ahead as far as it can, so it reads before the other warps
// write and overwrites before they read.
int (*bucket)[32];            // per warp
int* bucket_n;
unsigned ready_mask;          // bit r: the warp of rank r has ready fibers
int rank_of[32], warp_of[32];
bool by_priority;
Fiber* cur;                   // null: the host thread
Ctx host_ctx;
void* host_tsan;
unsigned done_count;
std::function<void()> job;
uint64_t rng = 0x9e3779b97f4a7c15ull;
int error_count;
char block_start, block_end;  // TSan addresses

uint64_t next_rand() {  // splitmix64
  uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
unsigned rand_below(unsigned n) { return (unsigned)(((next_rand() >> 32) * n) >> 32); }
void switch_to(Fiber* next) {
  if (next == cur) return;  // the waiter that opened a barrier may be first out again
  Ctx& from = cur ? cur->ctx : host_ctx;
  cur = next;
  if (next) {
    threadIdx = {next->id, 0, 0};
    tsan_switch(next->tsan);
    ctx_swap(from, next->ctx);
  } else {
    tsan_switch(host_tsan);
    ctx_swap(from, host_ctx);
  }
}
// suspend the current context; run the next ready fiber, or the host when none is ready
void run_next() {
  Fiber* next = nullptr;
  if (ready_mask) {
    unsigned m = ready_mask;
    if (!by_priority)
      for (int k = (int)rand_below((unsigned)__builtin_popcount(m)); k > 0; --k) m &= m - 1;
    const int r = __builtin_ctz(m), w = warp_of[r];
    const int i = (int)rand_below((unsigned)bucket_n[w]);
    next = fib[bucket[w][i]];
    bucket[w][i] = bucket[w][--bucket_n[w]];
    if (!bucket_n[w]) ready_mask &= ~(1u << r);
  }
  switch_to(next);
}
void make_ready(int id) {
  const int w = id >> 5;
  bucket[w][bucket_n[w]++] = id;
  ready_mask |= 1u << rank_of[w];
}

void bar_reset(Bar& b, int expected) {
  b.expected = expected;
  b.arrived = b.nwait = 0;
}
void bar_open(Bar& b) {  // phase complete: everyone waiting becomes ready
  for (int i = 0; i < b.nwait; ++i) make_ready(b.wait[i]);
  b.arrived = b.nwait = 0;
  ++b.phase;
}
// Two alternating addresses: a fiber that leaves phase k early and arrives at phase k+1 must
// not hand its newer writes to fibers that have not yet left phase k.
void bar_wait(Bar& b, bool announce) {
  char* s = &b.sync[b.phase & 1];
  if (announce) tsan_release(s);
  b.wait[b.nwait++] = (int)cur->id;  // the last arriver waits too: it need not leave first
  if (++b.arrived == b.expected) bar_open(b);
  run_next();
  if (announce) tsan_acquire(s);
}
// An exited thread no longer counts (bar.sync counts exited threads as arrived). It releases
// nothing: reading its writes after a barrier it never reached is reported as a race.
void bar_drop(Bar& b) {
  --b.expected;
  if (b.arrived > 0 && b.arrived == b.expected) bar_open(b);
}

[[noreturn]] void fiber_exit() {
  Fiber* f = cur;
  if (f->cp.n && error_count++ < 3)  // the count says how many more
    std::fprintf(stderr, "emu: block (%u,%u) thread %u exited with %d cp.async never waited for\n",
                 emu_block_idx.x, emu_block_idx.y, f->id, f->cp.n);
  f->done = true;
  ++done_count;
  bar_drop(block_bar);
  bar_drop(warp_bar[f->id >> 5]);
  tsan_release(&block_end);
  run_next();  // never resumed: the next block starts this fiber afresh
  __builtin_unreachable();
}
void fiber_main() {
  tsan_acquire(&block_start);
  job();
  fiber_exit();
}

void ensure_fibers(unsigned nt) {
  if (!host_tsan) {
#ifdef EMU_TSAN
    host_tsan = __tsan_get_current_fiber();
#else
    host_tsan = &host_ctx;
#endif
  }
  if (nt <= fib_cap) return;
  Fiber** nf = new Fiber*[nt];
  for (unsigned t = 0; t < fib_cap; ++t) nf[t] = fib[t];
  for (unsigned t = fib_cap; t < nt; ++t) {
    Fiber* f = new Fiber();
    f->id = t;
    // a PROT_NONE page below the stack turns an overflow into a segfault
    void* m = mmap(nullptr, kStack + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) { std::perror("emu: mmap"); std::abort(); }
    mprotect(m, 4096, PROT_NONE);
    f->stack = (char*)m + 4096;
#ifdef EMU_TSAN
    f->tsan = __tsan_create_fiber(0);
    static char names[1024][16];
    if (t < 1024) {
      std::snprintf(names[t], 16, "cuda thread %u", t);
      __tsan_set_fiber_name(f->tsan, names[t]);
    }
#endif
    nf[t] = f;
  }
  delete[] fib;
  fib = nf;
  const unsigned nw = (nt + 31) / 32, ow = (fib_cap + 31) / 32;
  if (nw > ow) {
    for (unsigned w = 0; w < ow; ++w) delete[] warp_bar[w].wait;
    delete[] warp_bar;
    delete[] slots;
    delete[] bucket;
    delete[] bucket_n;
    bucket = new int[nw][32];
    bucket_n = new int[nw];
    warp_bar = new Bar[nw]();
    for (unsigned w = 0; w < nw; ++w) warp_bar[w].wait = new int[32];
    slots = new uint64_t[nw][2][32][8];
  }
  delete[] block_bar.wait;
  block_bar.wait = new int[nt];
  fib_cap = nt;
}

void run_block(unsigned bx, unsigned by, unsigned nt) {
  emu_block_idx = {bx, by, 0};
  if (__start_emu_shared) std::memset(__start_emu_shared, 0xff, __stop_emu_shared - __start_emu_shared);
  bar_reset(block_bar, (int)nt);
  for (unsigned w = 0; w < (nt + 31) / 32; ++w) bar_reset(warp_bar[w], (int)std::min(32u, nt - 32 * w));
  const int nw = (int)(nt + 31) / 32;
  for (int w = 0; w < nw; ++w) warp_of[w] = w;
  for (int w = nw - 1; w > 0; --w) std::swap(warp_of[w], warp_of[rand_below((unsigned)w + 1)]);
  for (int r = 0; r < nw; ++r) rank_of[warp_of[r]] = r, bucket_n[warp_of[r]] = 0;
  by_priority = next_rand() & 1;
  ready_mask = 0;
  for (unsigned t = 0; t < nt; ++t) {
    Fiber* f = fib[t];
    f->done = false;
    f->cp.n = 0;
    f->cp.committed = 0;
    ctx_init(f->ctx, f->stack, kStack, fiber_main);
    make_ready((int)t);
  }
  done_count = 0;
  tsan_release(&block_start);
  run_next();
  if (done_count != nt) {
    std::fprintf(stderr,
                 "emu: deadlock in block (%u,%u): %u of %u threads never finished (%d wait at "
                 "__syncthreads; the rest at a warp intrinsic)\n",
                 bx, by, nt - done_count, nt, block_bar.nwait);
    std::abort();
  }
  tsan_acquire(&block_end);
}
}  // namespace

void emu_launch(dim3 grid, dim3 block, std::function<void()> fn) {
  const unsigned nt = block.x * block.y * block.z;
  if (nt == 0 || nt > 1024 || block.y != 1 || block.z != 1) {
    std::fprintf(stderr, "emu: unsupported block (%u,%u,%u)\n", block.x, block.y, block.z);
    std::abort();
  }
  ensure_fibers(nt);
  job = std::move(fn);
  gridDim = grid;
  blockDim = block;
  for (unsigned by = 0; by < grid.y; ++by)
    for (unsigned bx = 0; bx < grid.x; ++bx) run_block(bx, by, nt);
  job = nullptr;
}
void emu_seed(uint64_t seed) { rng = seed; }
int emu_errors() { return error_count; }
void __syncthreads() { bar_wait(block_bar, true); }
void __syncwarp(unsigned) { bar_wait(warp_bar[threadIdx.x >> 5], true); }
// Slots alternate by phase: a lane is at most one exchange ahead of the slowest reader, and the
// caller reads them before its next exchange. They are written here only (uninstrumented), so
// TSan sees reads alone on them and no ordering comes from them.
const uint64_t (*emu_warp_exchange(const uint64_t* mine, int count))[8] {
  const unsigned w = threadIdx.x >> 5, lane = threadIdx.x & 31;
  Bar& b = warp_bar[w];
  uint64_t (*s)[8] = slots[w][b.phase & 1];
  for (int i = 0; i < count; ++i) s[lane][i] = mine[i];
  bar_wait(b, false);
  return s;
}
EmuCpAsync& emu_cp_async() { return cur->cp; }
