// Tree-ensemble scoring kernel (pybind11, C++17): the "cpp" implementation of kernels.tree_ensemble.
//
// Why it looks like this (measured on the 2-core AMD EPYC development machine, shuttle data,
// 100 trees): a tree walk is a chain of dependent loads, so one walk at a time leaves the core
// waiting on memory and on mispredicted branches. The kernel therefore
//   * walks several trees (small batches) or several rows (large batches) in lockstep, so the
//     independent chains overlap in the pipeline;
//   * never branches on the data: the packed layout (kernels/tree_ensemble.py: pack_forest) puts the
//     right child at left + 1 and makes leaves loop to themselves, so a step is
//     `i = left[i] + (x[feat[i]] > thr[i])` and a walk can run a fixed number of steps;
//   * folds NaN routing into that single comparison: every row is widened once to 2*n_features
//     doubles, the first half with NaN -> +inf (NaN goes right), the second with NaN -> -inf (NaN
//     goes left), and a node whose NaN goes left reads feature + n_features. Infinite inputs become
//     +-kInfInput and thresholds beyond float32 range are remapped at packing time so the order of
//     every float32 value against every threshold is unchanged.
// Measured effect of the three: ~1 ns per node step on one core, 3-5x fewer than a plain loop.
// Leaf values are summed per row in tree order, as scikit-learn does, so results are bit-identical.
// Batches above a work threshold are shared with a small persistent thread pool (setup.py builds
// this module without OpenMP; see Pool for why it shares work instead of splitting it); the GIL
// is released around every batch that is not tiny.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sched.h>
#include <unistd.h>

namespace py = pybind11;

namespace {

// Must match _INF_INPUT in kernels/tree_ensemble.py: +-inf inputs are mapped here, beyond every
// float32 value and every remapped threshold except a +inf one (which pack_forest maps to this).
constexpr double kInfInput = 1e200;
// Rows per lockstep group in the large-batch path and trees per group in the small-batch path.
constexpr int kRowChains = 16;
constexpr int kTreeChains = 8;
// Below this many rows the small-batch (row-outer) path wins; measured crossover is ~8-16 rows.
constexpr int64_t kSmallBatch = 8;
// Rows per block in the large-batch path: the widened block stays in L1/L2 while all trees run.
constexpr int64_t kBlockBytes = 64 * 1024;
// Rows at or below which the GIL is kept: releasing and retaking it costs more than the work.
constexpr int64_t kKeepGilRows = 4;

struct Node {
  double thr;    // remapped threshold; +inf on leaves
  int32_t feat;  // index into the widened row (feature + n_features when NaN goes left)
  int32_t left;  // left child; right child is left + 1; leaves point to themselves
};
static_assert(sizeof(Node) == 16, "Node must match NODE_DTYPE (16 bytes)");

inline void widen_row(const float* x, int nf, double* out) {
  for (int j = 0; j < nf; ++j) {
    double v = static_cast<double>(x[j]);
    if (std::isnan(v)) {
      out[j] = INFINITY;
      out[nf + j] = -INFINITY;
    } else {
      if (std::isinf(v)) v = v > 0 ? kInfInput : -kInfInput;
      out[j] = v;
      out[nf + j] = v;
    }
  }
}

inline int32_t step(const Node* nodes, int32_t i, const double* x) {
  const Node& n = nodes[i];
  return n.left + static_cast<int32_t>(x[n.feat] > n.thr);
}

// Persistent helper threads shared by every Forest, with work sharing instead of a fixed split.
// Why, from measurements on the 2-core VM:
//  * starting a std::thread costs 20-50 us (as much as scoring 64 rows), so helpers start once;
//  * Linux tends to wake a sleeping helper on the waker's CPU, where it cannot run while the
//    caller scores, and it is not migrated while it keeps running there ("cache hot"). With a
//    fixed split the caller then waited ~200 us for the helper's half of a 64-row batch. So a
//    batch is cut into chunks that the caller and any running helper claim from an atomic
//    counter (the caller never waits for a helper that has not started), and a helper that
//    finds itself on the caller's CPU moves itself off it with sched_setaffinity.
// Helpers spin politely (pause, sched_yield) for kSpinMicros after a batch so back-to-back
// batches find them awake, then sleep, so an idle server burns no CPU. One batch uses the pool
// at a time; a concurrent caller that finds it busy scores on its own thread. Recreated after
// fork, since threads do not survive one.
constexpr int64_t kSpinMicros = 50;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Polls ready() for up to `micros`, yielding the CPU between short bursts of polling.
template <typename Ready>
bool spin_until(Ready ready, int64_t micros) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(micros);
  for (;;) {
    for (int i = 0; i < 32; ++i) {
      if (ready()) return true;
      cpu_relax();
    }
    if (micros >= 0 && std::chrono::steady_clock::now() >= until) return ready();
    sched_yield();
  }
}

class Pool {
 public:
  static Pool& instance(int helpers) {
    static std::mutex guard;
    static Pool* pool = nullptr;  // intentionally leaked: joining at interpreter exit can deadlock
    std::lock_guard<std::mutex> lock(guard);
    if (pool == nullptr || pool->pid_ != getpid() || pool->size() < helpers) {
      // The old pool (if any) is abandoned, not freed: after a fork its threads do not exist,
      // and a pool that is too small may still be running a batch.
      pool = new Pool(helpers);
    }
    return *pool;
  }

  // Runs body(c) for every c in [0, n_chunks) on the caller and on any helper that is awake.
  // Returns false without running anything if another batch holds the pool. Throws
  // std::bad_alloc if a chunk failed to allocate its scratch memory.
  bool run(int64_t n_chunks, const std::function<void(int64_t)>& body) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    body_ = &body;
    n_chunks_ = n_chunks;
    next_.store(0);
    failed_.store(false);
    caller_cpu_.store(current_cpu());
    open_.store(true);  // publishes body_, n_chunks_ and next_ to helpers that see it
    {
      std::lock_guard<std::mutex> lock(m_);  // so that a helper about to sleep cannot miss it
      generation_.fetch_add(1);
    }
    work_.notify_all();
    claim();
    open_.store(false);
    // Helpers that joined are running a chunk (or about to find none): wait for them, since
    // they write into the caller's output and read its input.
    spin_until([this] { return active_.load() == 0; }, -1);
    body_ = nullptr;
    if (failed_.load()) throw std::bad_alloc();
    return true;
  }

  int size() const { return static_cast<int>(threads_.size()); }

 private:
  explicit Pool(int helpers) : pid_(getpid()) {
#ifdef __linux__
    CPU_ZERO(&allowed_);
    if (sched_getaffinity(0, sizeof(allowed_), &allowed_) != 0) CPU_ZERO(&allowed_);
#endif
    for (int w = 0; w < helpers; ++w) threads_.emplace_back([this] { loop(); });
    for (auto& t : threads_) t.detach();
  }

  void claim() {
    for (int64_t c = next_.fetch_add(1); c < n_chunks_; c = next_.fetch_add(1)) {
      try {
        (*body_)(c);
      } catch (...) {  // only std::bad_alloc from scratch buffers; reported by run()
        failed_.store(true);
      }
    }
  }

  void loop() {
    uint64_t seen = 0;
    for (;;) {
      auto fresh = [&] { return generation_.load() != seen; };
      if (!spin_until(fresh, kSpinMicros)) {
        std::unique_lock<std::mutex> lock(m_);
        work_.wait(lock, fresh);
      }
      seen = generation_.load();
      // Dekker-style handshake with run(): either this helper sees open_ == false and leaves,
      // or run() sees active_ > 0 and waits for it (all accesses are sequentially consistent).
      active_.fetch_add(1);
      if (open_.load()) {
        leave_cpu(caller_cpu_.load());
        claim();
      }
      active_.fetch_sub(1);
    }
  }

  // Moves this helper off `cpu` if it runs there and another allowed CPU exists (Linux only;
  // elsewhere work sharing alone keeps the caller from waiting).
  void leave_cpu(int cpu) {
#ifdef __linux__
    if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getcpu() != cpu) return;
    cpu_set_t set = allowed_;
    CPU_CLR(cpu, &set);
    if (CPU_COUNT(&set) > 0) sched_setaffinity(0, sizeof(set), &set);  // 0: this thread
#else
    (void)cpu;
#endif
  }

  static int current_cpu() {
#ifdef __linux__
    return sched_getcpu();
#else
    return -1;
#endif
  }

  pid_t pid_;
#ifdef __linux__
  cpu_set_t allowed_;
#endif
  std::vector<std::thread> threads_;
  std::mutex busy_, m_;
  std::condition_variable work_;
  const std::function<void(int64_t)>* body_ = nullptr;
  int64_t n_chunks_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int> active_{0};
  std::atomic<int> caller_cpu_{-1};
  std::atomic<bool> open_{false};
  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> generation_{0};
};

class Forest {
 public:
  Forest(py::array_t<double, py::array::c_style | py::array::forcecast> thr,
         py::array_t<int32_t, py::array::c_style | py::array::forcecast> feat,
         py::array_t<int32_t, py::array::c_style | py::array::forcecast> left,
         py::array_t<double, py::array::c_style | py::array::forcecast> values,
         py::array_t<int32_t, py::array::c_style | py::array::forcecast> roots,
         py::array_t<int32_t, py::array::c_style | py::array::forcecast> depths, int n_features, int kind_code,
         double denominator, int n_threads, int64_t parallel_min_rows)
      : nf_(n_features),
        kind_(kind_code),
        denominator_(denominator),
        n_threads_(std::max(1, n_threads)),
        parallel_min_rows_(parallel_min_rows) {
    const py::ssize_t n = thr.size();
    if (feat.size() != n || left.size() != n || values.size() != n)
      throw std::invalid_argument("node arrays differ in length");
    if (roots.size() != depths.size() || roots.size() < 1)
      throw std::invalid_argument("roots and depths must be non-empty and of equal length");
    if (nf_ < 1) throw std::invalid_argument("n_features must be positive");
    if (kind_ != 0 && kind_ != 1) throw std::invalid_argument("kind_code must be 0 or 1");
    nodes_.resize(n);
    for (py::ssize_t i = 0; i < n; ++i) {
      Node node{thr.data()[i], feat.data()[i], left.data()[i]};
      // Defensive: pack_forest guarantees these, but a bad index here would read out of bounds.
      const bool leaf = node.left == i;
      const bool ok = leaf ? node.thr == INFINITY : node.left > i && node.left + 1 < n;
      if (!ok || node.feat < 0 || node.feat >= 2 * nf_)
        throw std::invalid_argument("packed node " + std::to_string(i) + " is out of range");
      nodes_[i] = node;
    }
    values_.assign(values.data(), values.data() + n);
    roots_.assign(roots.data(), roots.data() + roots.size());
    depths_.assign(depths.data(), depths.data() + depths.size());
    for (size_t t = 0; t < roots_.size(); ++t)
      if (roots_[t] < 0 || roots_[t] >= n || depths_[t] < 0)
        throw std::invalid_argument("root or depth of tree " + std::to_string(t) + " is out of range");
    block_rows_ = std::clamp<int64_t>(kBlockBytes / (16 * static_cast<int64_t>(nf_)), kRowChains, 512);
    block_rows_ -= block_rows_ % kRowChains;
  }

  // Scores a C-contiguous float32 batch of shape (n, n_features): float64 [n].
  py::array_t<double> score(py::array X) const {
    auto arr = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(X);
    if (!arr) throw std::invalid_argument("X must be convertible to a float32 array");
    if (arr.ndim() != 2) throw std::invalid_argument("X must be 2-D (rows, features)");
    if (arr.shape(1) != nf_)
      throw std::invalid_argument("X has " + std::to_string(arr.shape(1)) + " features, the forest expects " +
                                  std::to_string(nf_));
    const int64_t n = arr.shape(0);
    py::array_t<double> out(n);
    const float* x = arr.data();
    double* o = out.mutable_data();
    if (n <= kKeepGilRows) {
      run(x, n, o);
    } else {
      py::gil_scoped_release release;
      run(x, n, o);
    }
    return out;
  }

  int n_threads() const { return n_threads_; }
  int64_t parallel_min_rows() const { return parallel_min_rows_; }

 private:
  void run(const float* x, int64_t n, double* out) const {
    const int64_t groups = (n + kRowChains - 1) / kRowChains;
    if (n_threads_ <= 1 || groups < 2 || n < parallel_min_rows_) {
      score_range(x, 0, n, out);
      return;
    }
    // About four chunks per thread for balance, whole lockstep groups, at most one block each.
    const int64_t per = std::clamp<int64_t>((groups + 4 * n_threads_ - 1) / (4 * n_threads_), 1,
                                            block_rows_ / kRowChains);
    const int64_t chunk = per * kRowChains;
    const int64_t n_chunks = (n + chunk - 1) / chunk;
    const std::function<void(int64_t)> body = [&](int64_t c) {
      score_range(x, c * chunk, std::min(n, (c + 1) * chunk), out);
    };
    if (!Pool::instance(n_threads_ - 1).run(n_chunks, body)) score_range(x, 0, n, out);
  }

  void score_range(const float* x, int64_t r0, int64_t r1, double* out) const {
    if (r1 - r0 < kSmallBatch)
      score_rows_small(x, r0, r1, out);
    else
      score_rows_large(x, r0, r1, out);
    finish(out + r0, r1 - r0);
  }

  // Kernel output: random forest -> mean; isolation forest -> -(sum / denominator), the exponent
  // that kernels/tree_ensemble.py raises 2 to with numpy (bit-identical to scikit-learn).
  void finish(double* out, int64_t n) const {
    if (kind_ == 1) {
      for (int64_t i = 0; i < n; ++i) out[i] = out[i] / denominator_;
    } else if (denominator_ != 0.0) {
      for (int64_t i = 0; i < n; ++i) out[i] = out[i] / -denominator_;
    } else {
      for (int64_t i = 0; i < n; ++i) out[i] = -1.0;  // scikit-learn's value when both are zero
    }
  }

  // Row by row; kTreeChains trees walk in lockstep, stopping when none of them moves.
  void score_rows_small(const float* x, int64_t r0, int64_t r1, double* out) const {
    const Node* nodes = nodes_.data();
    const int n_trees = static_cast<int>(roots_.size());
    std::vector<double> row(2 * static_cast<size_t>(nf_));
    for (int64_t r = r0; r < r1; ++r) {
      widen_row(x + r * nf_, nf_, row.data());
      const double* xr = row.data();
      double acc = 0.0;
      for (int t0 = 0; t0 < n_trees; t0 += kTreeChains) {
        const int nt = std::min(kTreeChains, n_trees - t0);
        int32_t idx[kTreeChains];
        int depth = 0;
        for (int g = 0; g < kTreeChains; ++g) {
          const int t = t0 + std::min(g, nt - 1);  // pad with the last tree; its copies are ignored
          idx[g] = roots_[t];
          depth = std::max(depth, depths_[t]);
        }
        for (int s = 0; s < depth; ++s) {
          int32_t moved = 0;
          for (int g = 0; g < kTreeChains; ++g) {
            const int32_t j = step(nodes, idx[g], xr);
            moved |= j ^ idx[g];
            idx[g] = j;
          }
          if (!moved) break;
        }
        for (int g = 0; g < nt; ++g) acc += values_[idx[g]];
      }
      out[r] = acc;
    }
  }

  // Tree-outer over blocks of rows; kRowChains rows walk one tree in lockstep for its full depth.
  void score_rows_large(const float* x, int64_t r0, int64_t r1, double* out) const {
    const Node* nodes = nodes_.data();
    const double* values = values_.data();
    const int n_trees = static_cast<int>(roots_.size());
    const int64_t w = 2 * static_cast<int64_t>(nf_);
    std::vector<double> buf(static_cast<size_t>(std::min(block_rows_, r1 - r0) * w));
    for (int64_t b0 = r0; b0 < r1; b0 += block_rows_) {
      const int64_t b1 = std::min(r1, b0 + block_rows_);
      for (int64_t r = b0; r < b1; ++r) {
        widen_row(x + r * nf_, nf_, &buf[(r - b0) * w]);
        out[r] = 0.0;
      }
      for (int t = 0; t < n_trees; ++t) {
        const int32_t root = roots_[t];
        const int depth = depths_[t];
        for (int64_t c0 = b0; c0 < b1; c0 += kRowChains) {
          const int nr = static_cast<int>(std::min<int64_t>(kRowChains, b1 - c0));
          int32_t idx[kRowChains];
          const double* xs[kRowChains];
          for (int c = 0; c < kRowChains; ++c) {
            idx[c] = root;
            xs[c] = &buf[(c0 - b0 + std::min(c, nr - 1)) * w];  // pad with the last row
          }
          for (int s = 0; s < depth; ++s)
            for (int c = 0; c < kRowChains; ++c) idx[c] = step(nodes, idx[c], xs[c]);
          for (int c = 0; c < nr; ++c) out[c0 + c] += values[idx[c]];
        }
      }
    }
  }

  std::vector<Node> nodes_;
  std::vector<double> values_;
  std::vector<int32_t> roots_;
  std::vector<int32_t> depths_;
  int nf_;
  int kind_;
  double denominator_;
  int n_threads_;
  int64_t parallel_min_rows_;
  int64_t block_rows_ = kRowChains;
};

}  // namespace

PYBIND11_MODULE(_tree_ensemble, m) {
  m.doc() = "Packed tree-ensemble scoring (see kernels/tree_ensemble.py for the layout contract).";
  py::class_<Forest>(m, "Forest")
      .def(py::init<py::array_t<double, py::array::c_style | py::array::forcecast>,
                    py::array_t<int32_t, py::array::c_style | py::array::forcecast>,
                    py::array_t<int32_t, py::array::c_style | py::array::forcecast>,
                    py::array_t<double, py::array::c_style | py::array::forcecast>,
                    py::array_t<int32_t, py::array::c_style | py::array::forcecast>,
                    py::array_t<int32_t, py::array::c_style | py::array::forcecast>, int, int, double, int,
                    int64_t>(),
           py::arg("thr"), py::arg("feat"), py::arg("left"), py::arg("values"), py::arg("roots"),
           py::arg("depths"), py::arg("n_features"), py::arg("kind_code"), py::arg("denominator"),
           py::arg("n_threads"), py::arg("parallel_min_rows"))
      .def("score", &Forest::score, py::arg("X"),
           "Score a (n, n_features) batch; float64 [n] (IF: -sum/denominator, RF: mean).")
      .def_property_readonly("n_threads", &Forest::n_threads)
      .def_property_readonly("parallel_min_rows", &Forest::parallel_min_rows);
}
