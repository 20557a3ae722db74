#pragma once
// Data parallelism over a Communicator (NoComm, MpiComm with CPU parameters; NcclComm with GPU
// parameters: the parameters live on the communicator's device): every rank holds a whole replica of
// the module and runs forward and backward on its own share of the batch; then
//   GradientSync::average_gradients()   replaces every trainable gradient by its mean over ranks,
// so that an AdamW step on each rank moves every replica identically. broadcast_parameters makes
// the replicas start identical. (nexa/dist/sharded_adamw.hpp does the same training step while
// keeping only 1/size of AdamW's moments per rank.)
//
// Buckets: the trainable gradients, in visit_params order, are copied into buckets of at most
// `bucket_bytes` (25 MiB by default, as torch's DistributedDataParallel) per scalar type, and each
// bucket is summed with one all_reduce_sum and divided by size(): few large messages instead of
// one per tensor, and staging memory bounded by one bucket. A tensor larger than a bucket is
// split across buckets.
//
// No overlap with backward: DDP starts a bucket's all-reduce from a gradient hook while backward
// still runs. nexa's modules have no per-parameter hooks, and the Communicator collectives are
// blocking (MpiComm calls blocking MPI collectives), so a reduction could not run concurrently
// with backward anyway: average_gradients runs after backward, and its time adds to the step's.
//
// Reproducibility: MpiComm sums in rank order, so every rank gets the same bits, and with the
// same bucket size the same bits on every run. Compared with one process running the whole batch,
// the gradients differ by rounding only (the per-rank partial sums are added in another order).
//
// The checks that the ranks hold the same parameters (names, shapes, scalar types) and settings
// (bucket_bytes) run at construction through one all_gather, and the settings' range checks run
// after it, so a mismatch or a bad value raises nexa::Error on every rank instead of deadlocking
// or mixing unrelated tensors. A parameter frozen or resized after construction is
// caught only locally (nexa::Error on the ranks that changed it, while the others wait in the
// next collective): freeze parameters before constructing, identically on every rank.
#include <algorithm>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "nexa/core/error.hpp"
#include "nexa/core/param.hpp"
#include "nexa/dist/communicator.hpp"
#include "nexa/dist/host_collectives.hpp"
#include "nexa/ops/elementwise.hpp"

namespace nexa::dist {

inline constexpr std::size_t default_bucket_bytes = std::size_t{25} << 20;

namespace dp_detail {

// The parameters of one scalar type, in visit order, as one virtual flat vector.
template <class T, class D>
struct FlatParams {
  std::vector<std::string> names;
  std::vector<Param<T, D>*> params;
  std::vector<index_t> offsets{0};  // params[i] covers [offsets[i], offsets[i + 1])

  [[nodiscard]] index_t total() const { return offsets.back(); }
};

template <class D>
struct ModuleParams {
  FlatParams<float, D> f32;
  FlatParams<double, D> f64;
};

enum class Select { trainable, all };

template <class D, class Module>
ModuleParams<D> collect_params(Module& model, Select select) {
  ModuleParams<D> out;
  model.visit_params([&](const std::string& name, auto& p) {
    using P = std::remove_cvref_t<decltype(p)>;
    using T = typename std::remove_cvref_t<decltype(p.value)>::value_type;
    static_assert(std::same_as<P, Param<T, D>>,
                  "nexa::dist: the parameters must live on the communicator's device (CPU for NoComm and MpiComm, "
                  "GPU for NcclComm)");
    static_assert(std::same_as<T, float> || std::same_as<T, double>, "nexa::dist: parameters must be float or double");
    if (select == Select::trainable && !p.trainable) return;
    FlatParams<T, D>* group = nullptr;
    if constexpr (std::same_as<T, float>) {
      group = &out.f32;
    } else {
      group = &out.f64;
    }
    group->names.push_back(name);
    group->params.push_back(&p);
    group->offsets.push_back(group->offsets.back() + p.value.numel());
  });
  return out;
}

// FNV-1a over the names, shapes and scalar sizes: equal on two ranks when they hold the same
// parameters (a collision would need deliberately crafted names).
inline void fnv1a(std::uint64_t& h, const void* data, std::size_t n) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ bytes[i]) * 1099511628211ull;
}

template <class T, class D>
void hash_group(std::uint64_t& h, const FlatParams<T, D>& group) {
  const std::uint64_t scalar = sizeof(T);
  fnv1a(h, &scalar, sizeof scalar);
  for (std::size_t i = 0; i < group.params.size(); ++i) {
    fnv1a(h, group.names[i].data(), group.names[i].size());
    const char separator = '\0';
    fnv1a(h, &separator, 1);
    const Shape& shape = group.params[i]->value.shape();
    for (index_t a = 0; a < shape.rank(); ++a) {
      const std::int64_t d = shape[a];
      fnv1a(h, &d, sizeof d);
    }
  }
}

// What ranks compare: tensor and element counts per scalar type, and the hash (int64s as two int32s).
inline constexpr int layout_words = 10;

inline void put_int64(std::int32_t* words, std::int64_t value) {
  const auto bits = static_cast<std::uint64_t>(value);
  words[0] = static_cast<std::int32_t>(static_cast<std::uint32_t>(bits >> 32));
  words[1] = static_cast<std::int32_t>(static_cast<std::uint32_t>(bits & 0xffffffffu));
}

inline std::int64_t get_int64(const std::int32_t* words) {
  const std::uint64_t hi = static_cast<std::uint32_t>(words[0]), lo = static_cast<std::uint32_t>(words[1]);
  return static_cast<std::int64_t>((hi << 32) | lo);
}

template <class D>
std::vector<std::int32_t> layout_of(const ModuleParams<D>& p) {
  std::uint64_t h = 14695981039346656037ull;
  hash_group(h, p.f32);
  hash_group(h, p.f64);
  std::vector<std::int32_t> words(layout_words);
  put_int64(&words[0], static_cast<std::int64_t>(p.f32.params.size()));
  put_int64(&words[2], p.f32.total());
  put_int64(&words[4], static_cast<std::int64_t>(p.f64.params.size()));
  put_int64(&words[6], p.f64.total());
  put_int64(&words[8], static_cast<std::int64_t>(h));
  return words;
}

// A setting every rank must pass equal (a bucket size, a learning rate): compared bitwise.
struct Setting {
  std::string_view name;
  std::int64_t bits = 0;
  bool is_double = false;  // bits holds a double's (for the message)

  static Setting of(std::string_view name, std::int64_t value) { return {name, value, false}; }
  static Setting of(std::string_view name, double value) { return {name, std::bit_cast<std::int64_t>(value), true}; }
};

// Raises nexa::Error on every rank unless every rank holds the same parameters and settings as
// rank 0. Everything compared travels in one all_gather, so every rank takes the same decision;
// checks of the settings' values belong after this call (they then agree too).
template <Communicator Comm>
void require_same_params(Comm& comm, const ModuleParams<typename Comm::device>& params, std::string_view who,
                         std::string_view what, std::span<const Setting> settings = {}) {
  std::vector<std::int32_t> mine = layout_of(params);
  for (const Setting& s : settings) {
    mine.resize(mine.size() + 2);
    put_int64(&mine[mine.size() - 2], s.bits);
  }
  const auto words = static_cast<index_t>(mine.size());
  std::vector<std::int32_t> all(mine.size() * static_cast<std::size_t>(comm.size()));
  host_all_gather(comm, mine.data(), words, all.data());
  auto describe = [&](int r) {
    const std::int32_t* w = all.data() + words * r;
    return nexa::detail::concat(get_int64(w), " float tensors (", get_int64(w + 2), " elements) and ", get_int64(w + 4),
                                " double tensors (", get_int64(w + 6), " elements)");
  };
  auto value = [&](int r, std::size_t k) {
    const std::int64_t bits = get_int64(all.data() + words * r + layout_words + 2 * static_cast<index_t>(k));
    return settings[k].is_double ? nexa::detail::concat(std::bit_cast<double>(bits)) : nexa::detail::concat(bits);
  };
  for (int r = 1; r < comm.size(); ++r) {
    const auto theirs = all.begin() + words * r;
    if (!std::equal(all.begin(), all.begin() + layout_words, theirs)) {
      const bool same_counts = std::equal(all.begin(), all.begin() + 8, theirs);
      throw Error(nexa::detail::concat(who, ": every rank must hold the same ", what,
                                       "parameters (names, shapes, scalar types): expected ", describe(0),
                                       " as on rank 0, got ", describe(r), " on rank ", r,
                                       same_counts ? " with other names or shapes" : ""));
    }
    for (std::size_t k = 0; k < settings.size(); ++k) {
      const auto at = static_cast<index_t>(layout_words + 2 * k);
      if (std::equal(all.begin() + at, all.begin() + at + 2, theirs + at)) continue;
      throw Error(nexa::detail::concat(who, ": every rank must use the same ", settings[k].name, ": expected ",
                                       value(0, k), " as on rank 0, got ", value(r, k), " on rank ", r));
    }
  }
}

// Calls f(i, lo, n) for each piece of the group's flat elements [begin, end), in flat order: the
// piece is params[i]'s elements [lo, lo + n).
template <class T, class D, class F>
void for_each_segment(const FlatParams<T, D>& group, index_t begin, index_t end, F&& f) {
  if (begin >= end) return;
  auto it = std::upper_bound(group.offsets.begin(), group.offsets.end(), begin);
  for (auto i = static_cast<std::size_t>(it - group.offsets.begin()) - 1; begin < end; ++i) {
    const index_t lo = begin - group.offsets[i];
    const index_t hi = std::min(end, group.offsets[i + 1]) - group.offsets[i];
    if (hi > lo) f(i, lo, hi - lo);
    begin += hi - lo;
  }
}

template <class T, class D>
void require_gradient(const FlatParams<T, D>& group, std::size_t i, std::string_view who) {
  const Param<T, D>& p = *group.params[i];
  require(p.trainable && p.grad.shape() == p.value.shape(), who, "parameter ", group.names[i],
          " was frozen or resized after construction (value ", p.value.shape(), ", grad ", p.grad.shape(),
          "): construct a new one");
}

}  // namespace dp_detail

// Averages the trainable gradients of a module over the ranks of `comm`, one all-reduce per
// bucket. Collects the parameters once, at construction (the module must outlive it and not
// move); every rank must construct it with the same parameters and the same bucket size
// (checked on every rank alike: nexa::Error).
template <Communicator Comm>
class GradientSync {
  using D = typename Comm::device;

 public:
  template <class Module>
  GradientSync(Module& model, Comm& comm, std::size_t bucket_bytes = default_bucket_bytes)
      : comm_(&comm),
        params_(dp_detail::collect_params<D>(model, dp_detail::Select::trainable)),
        bucket_bytes_(bucket_bytes) {
    const dp_detail::Setting settings[] = {
        dp_detail::Setting::of("bucket_bytes", static_cast<std::int64_t>(bucket_bytes))};
    dp_detail::require_same_params(comm, params_, "GradientSync", "trainable ", settings);
    require(bucket_bytes >= sizeof(double), "GradientSync", "bucket_bytes must hold at least one element (",
            sizeof(double), " bytes), got ", bucket_bytes);
  }

  // gradient <- (sum over ranks of gradient) / size(), for every trainable parameter.
  void average_gradients() {
    average(params_.f32);
    average(params_.f64);
  }

  [[nodiscard]] std::size_t bucket_bytes() const { return bucket_bytes_; }
  // All-reduce calls per average_gradients().
  [[nodiscard]] index_t num_buckets() const { return buckets(params_.f32) + buckets(params_.f64); }
  [[nodiscard]] index_t num_elements() const { return params_.f32.total() + params_.f64.total(); }

 private:
  template <class T>
  [[nodiscard]] index_t capacity() const {
    return static_cast<index_t>(bucket_bytes_ / sizeof(T));
  }
  template <class T>
  [[nodiscard]] index_t buckets(const dp_detail::FlatParams<T, D>& group) const {
    return (group.total() + capacity<T>() - 1) / capacity<T>();
  }

  template <class T>
  void average(const dp_detail::FlatParams<T, D>& group) {
    for (std::size_t i = 0; i < group.params.size(); ++i) dp_detail::require_gradient(group, i, "GradientSync");
    const index_t total = group.total();
    auto bucket = Tensor<T, D>::uninitialized({std::min(total, capacity<T>())});
    const T ranks = static_cast<T>(comm_->size());
    for (index_t begin = 0; begin < total; begin += capacity<T>()) {
      const index_t end = std::min(total, begin + capacity<T>());
      T* out = bucket.data();
      dp_detail::for_each_segment(group, begin, end, [&](std::size_t i, index_t lo, index_t n) {
        ElementwiseKernel<D>::copy(n, group.params[i]->grad.data() + lo, out);
        out += n;
      });
      comm_->all_reduce_sum(bucket.data(), bucket.data(), end - begin);
      const T* in = bucket.data();
      dp_detail::for_each_segment(group, begin, end, [&](std::size_t i, index_t lo, index_t n) {
        T* g = group.params[i]->grad.data() + lo;
        if constexpr (std::same_as<D, cpu>) {
          for (index_t j = 0; j < n; ++j) g[j] = in[j] / ranks;
        } else {  // x * (1 / size): x / size exactly when size is a power of two
          ElementwiseKernel<D>::copy(n, in, g);
          ElementwiseKernel<D>::scale(n, T(1) / ranks, g);
        }
        in += n;
      });
    }
  }

  Comm* comm_;
  dp_detail::ModuleParams<D> params_;
  std::size_t bucket_bytes_;
};

// Copies every parameter of `root`'s replica (trainable and frozen) into the other ranks'
// replicas, one broadcast per tensor, after checking that all ranks hold the same parameters.
template <class Module, Communicator Comm>
void broadcast_parameters(Module& model, Comm& comm, int root = 0) {
  using D = typename Comm::device;
  const dp_detail::ModuleParams<D> params = dp_detail::collect_params<D>(model, dp_detail::Select::all);
  const dp_detail::Setting settings[] = {dp_detail::Setting::of("root", std::int64_t{root})};
  dp_detail::require_same_params(comm, params, "broadcast_parameters", "", settings);
  require(root >= 0 && root < comm.size(), "broadcast_parameters", "root must be in [0, ", comm.size(), "), got ",
          root);
  for (Param<float, D>* p : params.f32.params) comm.broadcast(p->value.data(), p->value.numel(), root);
  for (Param<double, D>* p : params.f64.params) comm.broadcast(p->value.data(), p->value.numel(), root);
}

}  // namespace nexa::dist
