// The thread team a step runs on: work-stealing phases (StealTeam), static split with barriers
// (OmpTeam), phase counting (CountTeam) and run_parallel, which picks the backend.
//
// Internal to kernels/cpp/llm_step.cpp, the one translation unit that includes it: everything is
// in an anonymous namespace (internal linkage, as when it was all one file), so nothing here is
// an interface for other code, and inlining and code generation are those of the single file.

#pragma once

#include "common.h"

namespace {

// ----------------------------------------------------------------------------------------------
// Parallel execution. A step is an SPMD program: every participating thread runs the same code,
// a sequence of phases; phase() runs the phase's work items and returns when all of them are done
// (the only synchronisation). Both backends (kernels.llm_step.set_backend) use OpenMP's threads,
// which are PyTorch's too (same libgomp), so the sampling ops between steps and the steps share
// one set of threads instead of oversubscribing the 2 cores:
//
//  * steal (default): StealTeam. Each thread takes the items of its own contiguous share of a
//    phase first, then steals from the others' shares. A phase waits for its items, never for a
//    thread: a thread that the OS has descheduled (another process busy on the other core) loses
//    its share instead of holding up ~150 barriers per token, and one that comes late runs through
//    the finished phases without work; only the end of the step (the region's end) waits for it.
//  * static: OmpTeam, a static split and a barrier per phase. Measured on the shared 2-core VM
//    with another process busy on the cores: decode 2-20 tok/s, where steal kept 57-62 (quiet:
//    ~175 and ~215); each barrier can wait a scheduler time slice for a descheduled thread.
//    A pool of helper threads of our own (as kernels/cpp/tree_ensemble.cpp has) was tried too:
//    no better under contention, and ~20% slower at batched decode when PyTorch's OpenMP threads,
//    spinning after a sampling op, competed with the helper.
//
// Before its first item of a phase a thread runs the phase's `prologue` (with few rows, each
// thread quantizes the normed rows into its own buffer instead of a phase + wait of its own).

enum class Split { kContiguous, kInterleaved };  // OmpTeam's static split (StealTeam: contiguous shares)

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// One atomic per cache line. A phase has one Slot per thread of the team (the thread's share of
// the items: the count taken from its front and from its back, packed in 32 + 32 bits) and one
// counting finished items.
struct alignas(64) Slot {
  std::atomic<uint64_t> v{0};
};

struct StealTeam {
  int tid;
  int nslots;      // planned team size: items are pre-split into nslots contiguous shares
  Slot* counters;  // n_phases * (nslots + 1)
  int64_t n_phases;
  int64_t phase_idx = 0;

  // Thread s owns items [n s / nslots, n (s + 1) / nslots) and takes them from the front, so
  // that, as with a static split, each thread streams its own contiguous part of a weight matrix
  // (interleaved claims cost ~25% of decode speed: the prefetchers see broken streams). A thread
  // that runs out takes the others' items from their backs: a thread that is late or descheduled
  // loses its share instead of holding up the phase.
  static int64_t take(Slot& slot, int64_t lo, int64_t hi, bool front) {
    uint64_t cur = slot.v.load(std::memory_order_relaxed);
    for (;;) {
      const int64_t f = static_cast<int64_t>(cur & 0xFFFFFFFFu), b = static_cast<int64_t>(cur >> 32);
      if (lo + f >= hi - b) return -1;
      const uint64_t next = front ? cur + 1 : cur + (uint64_t{1} << 32);
      if (slot.v.compare_exchange_weak(cur, next, std::memory_order_relaxed)) return front ? lo + f : hi - b - 1;
    }
  }

  template <class F, class P>
  void phase(int64_t n, F&& fn, P&& prologue, Split = Split::kContiguous) {
    if (phase_idx >= n_phases) std::abort();  // the plan's phase count is a programming error
    Slot* c = counters + phase_idx++ * (nslots + 1);
    if (n <= 0) return;
    int64_t mine = 0;
    for (int k = 0; k < nslots; ++k) {
      const int s = (tid + k) % nslots;
      const int64_t lo = n * s / nslots, hi = n * (s + 1) / nslots;
      for (int64_t i; (i = take(c[s], lo, hi, k == 0)) >= 0;) {
        if (mine++ == 0) prologue();
        fn(i);
      }
    }
    std::atomic<uint64_t>& done = c[nslots].v;
    if (mine) done.fetch_add(static_cast<uint64_t>(mine), std::memory_order_acq_rel);
    for (int spins = 0; done.load(std::memory_order_acquire) < static_cast<uint64_t>(n); ++spins) {
      cpu_relax();
      if ((spins & 255) == 255) sched_yield();  // let a descheduled peer run on this CPU
    }
  }
  template <class F>
  void phase(int64_t n, F&& fn, Split split = Split::kContiguous) {
    phase(n, std::forward<F>(fn), [] {}, split);
  }
};

struct OmpTeam {
  int tid, nth;

  template <class F, class P>
  void phase(int64_t n, F&& fn, P&& prologue, Split split = Split::kContiguous) {
    if (n > 0) {
      if (split == Split::kContiguous) {
        const int64_t i0 = n * tid / nth, i1 = n * (tid + 1) / nth;
        if (i0 < i1) prologue();
        for (int64_t i = i0; i < i1; ++i) fn(i);
      } else {
        if (tid < n) prologue();
        for (int64_t i = tid; i < n; i += nth) fn(i);
      }
    }
#pragma omp barrier
  }
  template <class F>
  void phase(int64_t n, F&& fn, Split split = Split::kContiguous) {
    phase(n, std::forward<F>(fn), [] {}, split);
  }
};

// Counts a program's phases (run once before a StealTeam run; nothing is executed).
struct CountTeam {
  int tid = -1;
  int64_t n_phases = 0;
  template <class F, class P>
  void phase(int64_t, F&&, P&&, Split = Split::kContiguous) {
    ++n_phases;
  }
  template <class F>
  void phase(int64_t, F&&, Split = Split::kContiguous) {
    ++n_phases;
  }
};

enum class Backend { kSteal, kStatic };
const char* const kBackendNames[] = {"steal", "static"};
std::atomic<int> g_backend{static_cast<int>(Backend::kSteal)};

// Runs program(team) with nt threads on the selected backend.
template <class Prog>
void run_parallel(int nt, Prog&& program) {
  const auto backend = static_cast<Backend>(g_backend.load());
  if (backend == Backend::kStatic) {
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
    {
      OmpTeam team{omp_get_thread_num(), omp_get_num_threads()};
      program(team);
    }
#else
    (void)nt;
    OmpTeam team{0, 1};  // built without OpenMP: one thread
    program(team);
#endif
    return;
  }
  // kSteal: StealTeam phases on OpenMP's threads. No barrier per phase; the region's end still
  // waits for every thread, but a late one only runs through finished phases.
  CountTeam counter;
  program(counter);
  thread_local std::vector<Slot> counters;
  const int64_t need = counter.n_phases * (nt + 1);
  if (static_cast<int64_t>(counters.size()) < need) counters = std::vector<Slot>(static_cast<size_t>(need));
  for (int64_t i = 0; i < need; ++i) counters[i].v.store(0, std::memory_order_relaxed);
  Slot* const slots = counters.data();  // the caller's (thread_local): not the workers' own
  const int64_t n_phases = counter.n_phases;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
  {
    StealTeam team{omp_get_thread_num(), omp_get_num_threads(), slots, n_phases};
    program(team);
  }
#else
  StealTeam team{0, 1, slots, n_phases};
  program(team);
#endif
}

}  // namespace
