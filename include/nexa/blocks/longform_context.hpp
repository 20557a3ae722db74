#pragma once
// LongformContextManager: NEXA-Ultramax's context manager for documents longer than the model's
// window. It splits a sequence into overlapping chunks of `window` tokens, starting every `stride`
// tokens (the last chunk aligned to the end, so every chunk is full length when the document is
// at least a window long), runs the encoder on each, and reassembles per-token outputs: each
// token is taken from the chunk where it is farthest from a cut edge (a chunk edge that is not
// the document's own start or end). With overlap = window - stride, every token is then at least
// about overlap / 2 tokens from a cut, so an encoder whose receptive field reaches at most that
// far (local attention: layers * window_local / 2) gives exactly its unchunked output.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <utility>
#include <vector>

#include "nexa/core/tensor.hpp"

namespace nexa {

// Which chunk each token comes from.
struct ChunkPlan {
  index_t length = 0;                // tokens in the document
  std::vector<index_t> starts;       // first token of each chunk
  std::vector<index_t> lengths;      // tokens in each chunk
  std::vector<std::int32_t> source;  // [length]: the chunk whose output token t takes

  [[nodiscard]] index_t chunks() const { return static_cast<index_t>(starts.size()); }
};

class LongformContextManager {
 public:
  struct Config {
    index_t window = 8192;  // tokens per chunk: the model's window
    index_t stride = 6144;  // distance between chunk starts; window - stride tokens overlap
  };

  LongformContextManager() = default;
  explicit LongformContextManager(const Config& config) : config_(config) {
    require(config.window > 0, "LongformContextManager", "window must be positive, got ", config.window);
    require(0 < config.stride && config.stride <= config.window, "LongformContextManager",
            "stride must be in [1, window = ", config.window, "], got ", config.stride);
  }

  [[nodiscard]] const Config& config() const { return config_; }

  [[nodiscard]] ChunkPlan plan(index_t length) const {
    require(length > 0, "LongformContextManager", "document length must be positive, got ", length);
    ChunkPlan p;
    p.length = length;
    const index_t window = std::min(config_.window, length);
    for (index_t start = 0;; start += config_.stride) {
      const index_t aligned = std::min(start, length - window);
      if (p.starts.empty() || aligned > p.starts.back()) {
        p.starts.push_back(aligned);
        p.lengths.push_back(window);
      }
      if (aligned + window >= length) break;
    }
    // Distance to the nearest cut edge; ties go to the earlier chunk.
    constexpr index_t uncut = std::numeric_limits<index_t>::max();
    p.source.assign(static_cast<std::size_t>(length), 0);
    std::vector<index_t> best(static_cast<std::size_t>(length), -1);
    for (index_t c = 0; c < p.chunks(); ++c) {
      const index_t begin = p.starts[static_cast<std::size_t>(c)], end = begin + p.lengths[static_cast<std::size_t>(c)];
      for (index_t t = begin; t < end; ++t) {
        const index_t left = begin == 0 ? uncut : t - begin;
        const index_t right = end == length ? uncut : end - 1 - t;
        const index_t margin = std::min(left, right);
        if (margin > best[static_cast<std::size_t>(t)]) {
          best[static_cast<std::size_t>(t)] = margin;
          p.source[static_cast<std::size_t>(t)] = static_cast<std::int32_t>(c);
        }
      }
    }
    return p;
  }

  // Runs `encode` on each chunk of x (chunked along axis 0: [S, ...], e.g. token ids [S] or
  // embeddings [S, d]) and returns the reassembled [S, d_out]. encode(view [len, ...]) must
  // return a Tensor<Out> [len, d_out]. on_chunk(i, n), when given, is called after each chunk
  // (progress reporting belongs to the caller).
  template <class U, class Encode>
  [[nodiscard]] auto run(TensorView<const U, cpu> x, Encode&& encode,
                         const std::function<void(index_t, index_t)>& on_chunk = {}) const {
    require(x.rank() >= 1, "LongformContextManager", "input must have a sequence axis, got shape ", x.shape());
    const ChunkPlan p = plan(x.dim(0));
    using Out = std::decay_t<decltype(encode(x.slice_rows(0, 1)))>;
    Out y;
    for (index_t c = 0; c < p.chunks(); ++c) {
      const index_t begin = p.starts[static_cast<std::size_t>(c)], len = p.lengths[static_cast<std::size_t>(c)];
      const Out part = encode(x.slice_rows(begin, begin + len));
      require(part.rank() == 2 && part.dim(0) == len, "LongformContextManager", "encode must return [", len,
              ", d_out] for a chunk of ", len, " tokens, got ", part.shape());
      if (c == 0) y = Out::uninitialized({p.length, part.dim(1)});
      require(part.dim(1) == y.dim(1), "LongformContextManager", "encode returned ", part.dim(1),
              " features for chunk ", c, ", expected ", y.dim(1), " as for chunk 0");
      const index_t d = y.dim(1);
      for (index_t t = begin; t < begin + len; ++t)
        if (p.source[static_cast<std::size_t>(t)] == c) std::copy_n(part.data() + (t - begin) * d, d, y.data() + t * d);
      if (on_chunk) on_chunk(c, p.chunks());
    }
    return y;
  }

 private:
  Config config_;
};

}  // namespace nexa
