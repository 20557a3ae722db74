#pragma once
// T5's bucketed relative position bias (Hugging Face transformers, models/t5/modeling_t5.py:
// T5Attention._relative_position_bucket and compute_bias).
//
// The offset j - i of key j from query i is mapped to one of num_buckets buckets (exact buckets
// for small offsets, logarithmically wider ones up to max_distance, one bucket beyond it; the sign
// gets half of the buckets when bidirectional, and positive offsets all share bucket 0 when not,
// as in T5's causal decoder), and each bucket holds one learned bias per head:
//
//   bias[h, j - i] = weight[bucket(j - i), h]          weight: [num_buckets, heads]
//
// RelativePositionBias::forward(S) returns that bias by offset, [heads, 2S - 1] with bias[h, j - i]
// at [h, (j - i) + S - 1]: the layout Attention takes as its position_bias (O(S), never S x S).
//
// Sharing: T5 computes the bias in the first layer of a stack and passes it to every layer of that
// stack. Do the same with one instance: call forward once, hand its output to every layer, sum the
// layers' d(position_bias) [heads, 2S - 1] and call backward once with that sum. The parameter is
// named "relative_attention_bias.weight" under the first layer's attention prefix, e.g.
// "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight".
//
// The bucket table is computed on the host (O(S)); the lookup and the backward run through
// LayoutKernel<D> (gather; scatter_add, one task per (bucket, head) in offset order).
#include <cmath>
#include <concepts>
#include <cstdint>
#include <string>
#include <vector>

#include "nexa/core/param.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/ops/layout.hpp"

namespace nexa {

namespace detail {

// Checks the bucketing parameters: T5 halves num_buckets when bidirectional, then uses half of
// what remains (max_exact) as exact buckets; the log buckets need max_distance > max_exact.
inline void check_relative_buckets(bool bidirectional, index_t num_buckets, index_t max_distance) {
  const index_t minimum = bidirectional ? 4 : 2;
  require(num_buckets >= minimum, "RelativePositionBias", "num_buckets expected >= ", minimum,
          bidirectional ? " (bidirectional)" : " (causal)", ", got ", num_buckets);
  const index_t max_exact = (bidirectional ? num_buckets / 2 : num_buckets) / 2;
  require(max_distance > max_exact, "RelativePositionBias", "max_distance expected > ", max_exact,
          " (half of the buckets per direction), got ", max_distance);
}

// The bucket of a relative position, parameters already checked.
inline index_t relative_position_bucket_unchecked(index_t relative_position, bool bidirectional, index_t num_buckets,
                                                  index_t max_distance) {
  index_t bucket = 0;
  std::uint64_t magnitude = 0;  // |relative_position| (bidirectional) or max(-relative_position, 0)
  if (bidirectional) {
    num_buckets /= 2;
    if (relative_position > 0) bucket += num_buckets;
    magnitude = relative_position < 0 ? 0 - static_cast<std::uint64_t>(relative_position)
                                      : static_cast<std::uint64_t>(relative_position);
  } else {
    magnitude = relative_position < 0 ? 0 - static_cast<std::uint64_t>(relative_position) : 0;
  }
  const index_t max_exact = num_buckets / 2;
  if (magnitude < static_cast<std::uint64_t>(max_exact)) return bucket + static_cast<index_t>(magnitude);
  // Every step below rounds monotonically, so the value at max_distance (num_buckets - max_exact
  // up to rounding) truncates to at least num_buckets - max_exact - 1, and so does the value at
  // every larger magnitude: after T5's clamp all of them are in bucket num_buckets - 1. Returning
  // that directly gives the same buckets and cannot overflow.
  if (magnitude >= static_cast<std::uint64_t>(max_distance)) return bucket + num_buckets - 1;
  // As torch computes it: in float32 (float64 gives other buckets for some configurations),
  // dividing by the float32 rounding of the Python float log(max_distance / max_exact), then
  // .to(torch.long) truncating toward zero. The log is the correctly rounded float32 log (the
  // double log rounded to float): torch's vectorised logf is off by an ulp on rare inputs, none of
  // which changed a bucket in the fixture's configurations (tests/fixtures/t5).
  const float ratio = static_cast<float>(magnitude) / static_cast<float>(max_exact);
  const auto log_ratio = static_cast<float>(std::log(static_cast<double>(ratio)));
  const auto log_span =
      static_cast<float>(std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)));
  const float scaled = log_ratio / log_span * static_cast<float>(num_buckets - max_exact);
  const index_t large = max_exact + static_cast<index_t>(scaled);
  return bucket + (large < num_buckets - 1 ? large : num_buckets - 1);
}

}  // namespace detail

// T5Attention._relative_position_bucket for one relative position (memory - query position):
// the same integer torch returns. Buckets lie in [0, num_buckets) (bidirectional: [0, 2 *
// (num_buckets / 2))).
[[nodiscard]] inline index_t relative_position_bucket(index_t relative_position, bool bidirectional = true,
                                                      index_t num_buckets = 32, index_t max_distance = 128) {
  detail::check_relative_buckets(bidirectional, num_buckets, max_distance);
  return detail::relative_position_bucket_unchecked(relative_position, bidirectional, num_buckets, max_distance);
}

template <class T = float, class D = cpu>
class RelativePositionBias {
 public:
  struct Config {
    index_t heads = 0;           // T5: num_heads
    index_t num_buckets = 32;    // T5: relative_attention_num_buckets
    index_t max_distance = 128;  // T5: relative_attention_max_distance
    bool bidirectional = true;   // encoder: true; decoder self-attention (causal): false
    // Init: init_std > 0 gives N(0, init_std); 0 gives T5's _init_weights,
    // N(0, init_factor * d_model^-0.5), which then needs d_model.
    double init_std = 0.0;
    index_t d_model = 0;       // T5: d_model (only read when init_std is 0)
    double init_factor = 1.0;  // T5: initializer_factor
  };
  template <class T2, class D2>
  using rebind = RelativePositionBias<T2, D2>;

  Param<T, D> weight;  // [num_buckets, heads], "relative_attention_bias.weight"

  RelativePositionBias() = default;
  RelativePositionBias(const Config& config, Rng& rng) : config_(config) {
    require(config.heads > 0, "RelativePositionBias", "heads expected > 0, got ", config.heads);
    detail::check_relative_buckets(config.bidirectional, config.num_buckets, config.max_distance);
    require(config.init_std >= 0, "RelativePositionBias", "init_std expected >= 0, got ", config.init_std);
    double stddev = config.init_std;
    if (stddev == 0) {
      require(config.d_model > 0, "RelativePositionBias", "d_model expected > 0 for T5's init (init_std = 0), got ",
              config.d_model);
      require(config.init_factor >= 0, "RelativePositionBias", "init_factor expected >= 0, got ", config.init_factor);
      stddev = config.init_factor / std::sqrt(static_cast<double>(config.d_model));
    }
    weight = Param<T, D>(Tensor<T, D>::randn({config.num_buckets, config.heads}, rng, stddev));
  }

  [[nodiscard]] const Config& config() const { return config_; }

  // The bucket of each offset j - i = o, o in [-(S - 1), S - 1], at o + S - 1.
  [[nodiscard]] std::vector<index_t> buckets(index_t seq_len) const {
    check_constructed();
    require(seq_len >= 1, "RelativePositionBias", "seq_len expected >= 1, got ", seq_len);
    std::vector<index_t> out(static_cast<std::size_t>(2 * seq_len - 1));
    for (index_t o = -(seq_len - 1); o <= seq_len - 1; ++o)
      out[static_cast<std::size_t>(o + seq_len - 1)] = detail::relative_position_bucket_unchecked(
          o, config_.bidirectional, config_.num_buckets, config_.max_distance);
    return out;
  }

  // [heads, 2S - 1]: bias[h, o + S - 1] = weight[bucket(o), h]. Keeps nothing: backward needs only
  // the shape of its gradient.
  [[nodiscard]] Tensor<T, D> forward(index_t seq_len) const {
    const std::vector<index_t> bucket = buckets(seq_len);
    const index_t heads = config_.heads, n = 2 * seq_len - 1;
    auto bias = Tensor<T, D>::uninitialized({heads, n});
    // The bucket table is built on the host (O(S)); the lookup runs on D.
    const auto table = Tensor<index_t, D>::from_host({n}, bucket);
    LayoutKernel<D>::gather(n, heads, table.data(), weight.value.data(), Strides{heads, 1}, bias.data(), Strides{1, n});
    return bias;
  }

  // d_bias: [heads, 2S - 1], the gradient of the loss with respect to forward(S)'s output (summed
  // over every layer that used it). Accumulates weight.grad[b, h] += sum of d_bias[h, o + S - 1]
  // over the offsets o in bucket b, in increasing o (one task per (bucket, head): the order never
  // depends on the thread count or the device), when trainable.
  void backward(TensorView<const T, D> d_bias) {
    check_constructed();
    const index_t heads = config_.heads;
    require(d_bias.rank() == 2 && d_bias.dim(0) == heads && d_bias.dim(1) >= 1 && d_bias.dim(1) % 2 == 1,
            "RelativePositionBias", "d_bias shape expected [", heads, ", 2 * seq_len - 1], got ", d_bias.shape());
    if (!weight.trainable) return;
    const index_t n = d_bias.dim(1);
    const std::vector<index_t> bucket = buckets((n + 1) / 2);
    // One task per (bucket, head) adds its offsets in increasing order, on every device.
    const Segments seg = segments_by_key(bucket.data(), n, config_.num_buckets);
    ops::scatter_add_segments<T, D>(seg, heads, d_bias.data(), Strides{1, n}, weight.grad.data(), Strides{heads, 1});
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "relative_attention_bias.weight"), weight);
  }

 private:
  void check_constructed() const { require(config_.heads > 0, "RelativePositionBias", "module is not constructed"); }

  Config config_;
};

}  // namespace nexa
