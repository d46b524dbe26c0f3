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
// Leaf values are summed per row in tree order, as scikit-learn does, so results are bit-identical.
// Large batches are split over std::threads by rows (setup.py builds this module without OpenMP);
// the GIL is released around every batch that is not tiny.

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

// Persistent worker threads shared by every Forest. Starting a std::thread costs 20-50 us here,
// as much as scoring 64 rows, and waking a sleeping thread on this VM costs about as much again,
// so workers are started once and spin for up to kSpinMicros after each batch before they sleep
// (back-to-back batches then start at once; an idle server burns no CPU). One batch uses the pool
// at a time; a concurrent caller that finds it busy scores its batch on its own thread instead
// of queueing behind the other. Recreated after fork (threads do not survive a fork).
constexpr int64_t kSpinMicros = 100;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

template <typename Ready>
bool spin_until(Ready ready) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (ready()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= until) return ready();
  }
}

class Pool {
 public:
  static Pool& instance(int workers) {
    static std::mutex guard;
    static Pool* pool = nullptr;  // intentionally leaked: joining at interpreter exit can deadlock
    std::lock_guard<std::mutex> lock(guard);
    if (pool == nullptr || pool->pid_ != getpid() || pool->size() < workers) {
      // The old pool (if any) is abandoned, not freed: after a fork its threads do not exist,
      // and a pool that is too small may still be running a batch.
      pool = new Pool(workers);
    }
    return *pool;
  }

  // Runs task(k) for k in [0, n_tasks): the caller runs task 0, workers the rest. Returns false
  // without running anything if another batch holds the pool; throws std::bad_alloc if a task
  // failed to allocate its scratch memory.
  bool run(int n_tasks, const std::function<void(int)>& task) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    task_ = &task;
    n_tasks_ = n_tasks;
    failed_.store(false, std::memory_order_relaxed);
    pending_.store(n_tasks - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(m_);  // so that a worker about to sleep cannot miss it
      generation_.fetch_add(1, std::memory_order_release);
    }
    work_.notify_all();
    bool ok = true;
    try {
      task(0);
    } catch (...) {
      ok = false;  // still wait: the workers write into the caller's output
    }
    auto finished = [this] { return pending_.load(std::memory_order_acquire) == 0; };
    if (!spin_until(finished)) {
      std::unique_lock<std::mutex> lock(m_);
      done_.wait(lock, finished);
    }
    if (!ok || failed_.load(std::memory_order_relaxed)) throw std::bad_alloc();
    return true;
  }

  int size() const { return static_cast<int>(threads_.size()); }

 private:
  explicit Pool(int workers) : pid_(getpid()) {
    for (int w = 0; w < workers; ++w) threads_.emplace_back([this, w] { loop(w + 1); });
    for (auto& t : threads_) t.detach();
  }

  void loop(int k) {
    uint64_t seen = 0;
    for (;;) {
      auto fresh = [&] { return generation_.load(std::memory_order_acquire) != seen; };
      if (!spin_until(fresh)) {
        std::unique_lock<std::mutex> lock(m_);
        work_.wait(lock, fresh);
      }
      seen = generation_.load(std::memory_order_acquire);
      if (k >= n_tasks_) continue;  // not needed for this batch
      try {
        (*task_)(k);
      } catch (...) {  // only std::bad_alloc from scratch buffers; reported by run()
        failed_.store(true, std::memory_order_relaxed);
      }
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(m_);
        done_.notify_one();
      }
    }
  }

  pid_t pid_;
  std::vector<std::thread> threads_;
  std::mutex busy_, m_;
  std::condition_variable work_, done_;
  // task_ and n_tasks_ are written before the release increment of generation_ and read after
  // an acquire load of it; run() does not return (so they do not change) until pending_ is 0.
  const std::function<void(int)>* task_ = nullptr;
  int n_tasks_ = 0;
  std::atomic<int> pending_{0};
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
    // Contiguous chunks of whole lockstep groups, one per thread.
    const int64_t groups = (n + kRowChains - 1) / kRowChains;
    const int threads = static_cast<int>(std::min<int64_t>(n_threads_, groups));
    if (threads <= 1 || n < parallel_min_rows_) {
      score_range(x, 0, n, out);
      return;
    }
    const std::function<void(int)> task = [&](int k) {
      const int64_t r0 = groups * k / threads * kRowChains;
      const int64_t r1 = std::min(n, groups * (k + 1) / threads * kRowChains);
      score_range(x, r0, r1, out);
    };
    if (!Pool::instance(threads - 1).run(threads, task)) score_range(x, 0, n, out);
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
    std::vector<double> buf(static_cast<size_t>(block_rows_ * w));
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
