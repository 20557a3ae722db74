#pragma once
// Embedding: a lookup table, y[..., :] = weight[id, :]. weight is [num_embeddings, embedding_dim]
// as in PyTorch's nn.Embedding and Hugging Face checkpoints ("weight"), initialised N(0, init_std)
// (PyTorch's default is N(0, 1)). Token ids are int32 of any shape; the output appends one axis.
// The backward is deterministic: gradient rows are gathered per vocabulary row in token order and
// rows are split across threads, so no two threads touch the same row and the sum order never
// depends on the thread count. Both run through LayoutKernel<D> (gather, scatter_add), so the
// CUDA backward makes the CPU's additions in the CPU's order, bit for bit.
#include <concepts>
#include <cstdint>
#include <string>
#include <vector>

#include "nexa/core/param.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/ops/layout.hpp"

namespace nexa {

template <class T = float, class D = cpu>
class Embedding {
 public:
  struct Config {
    index_t num_embeddings = 0;  // vocabulary size
    index_t embedding_dim = 0;
    double init_std = 1.0;
  };
  struct Cache {
    Tensor<std::int32_t, D> ids;  // the input ids, any shape
  };
  template <class T2, class D2>
  using rebind = Embedding<T2, D2>;

  Param<T, D> weight;  // [num_embeddings, embedding_dim]

  Embedding() = default;
  Embedding(const Config& config, Rng& rng) : config_(config) {
    require(config.num_embeddings > 0 && config.embedding_dim > 0, "Embedding",
            "num_embeddings and embedding_dim must be positive, got ", config.num_embeddings, " and ",
            config.embedding_dim);
    require(config.init_std >= 0, "Embedding", "init_std must be non-negative, got ", config.init_std);
    weight = Param<T, D>(Tensor<T, D>::randn({config.num_embeddings, config.embedding_dim}, rng, config.init_std));
  }

  [[nodiscard]] const Config& config() const { return config_; }

  // ids: [...] -> [..., embedding_dim]. An rvalue ids tensor is kept without a copy.
  [[nodiscard]] Tensor<T, D> forward(TensorView<const std::int32_t, D> ids, Cache& cache) const {
    check_ids(ids);
    cache.ids = clone(ids);
    return gather(ids);
  }
  [[nodiscard]] Tensor<T, D> forward(Tensor<std::int32_t, D>&& ids, Cache& cache) const {
    check_ids(ids.cview());
    cache.ids = std::move(ids);
    return gather(cache.ids.cview());
  }
  // Forward without keeping anything (inference).
  [[nodiscard]] Tensor<T, D> apply(TensorView<const std::int32_t, D> ids) const {
    check_ids(ids);
    return gather(ids);
  }

  // Accumulates dW when trainable. The input is integer ids, so there is no dx.
  void backward(TensorView<const T, D> dy, Cache& cache) {
    const TensorView<const std::int32_t, D> ids = cache.ids.cview();
    require_shape(dy, output_shape(ids.shape()), "Embedding", "dy");
    if (!weight.trainable) return;
    const index_t n = ids.numel(), dim = config_.embedding_dim, vocab = config_.num_embeddings;
    // A stable counting sort of the token positions by id (on the host), then one task per used
    // row adding its tokens in order: the same additions on every device, no atomics.
    const std::vector<std::int32_t> host = ids_on_host(ids);
    const Segments seg = segments_by_key(std::same_as<D, cpu> ? ids.data() : host.data(), n, vocab);
    ops::scatter_add_segments<T, D>(seg, dim, dy.data(), Strides{dim, 1}, weight.grad.data(), Strides{dim, 1});
  }

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "weight"), weight);
  }

 private:
  [[nodiscard]] Shape output_shape(const Shape& ids) const {
    std::vector<index_t> dims = ids.dims();
    dims.push_back(config_.embedding_dim);
    return Shape(std::move(dims));
  }

  void check_ids(TensorView<const std::int32_t, D> ids) const {
    require(config_.num_embeddings > 0, "Embedding", "module is not constructed");
    const index_t vocab = config_.num_embeddings;
    const std::vector<std::int32_t> host = ids_on_host(ids);
    const std::int32_t* values = std::same_as<D, cpu> ? ids.data() : host.data();
    for (index_t t = 0; t < ids.numel(); ++t) {
      const index_t id = values[t];
      require(0 <= id && id < vocab, "Embedding", "token id ", id, " at position ", t,
              " is out of range for vocab size ", vocab);
    }
  }

  // Device ids copied to the host for the range check and the backward's sort (O(tokens)); empty
  // on the CPU, which reads them in place.
  [[nodiscard]] static std::vector<std::int32_t> ids_on_host(TensorView<const std::int32_t, D> ids) {
    std::vector<std::int32_t> host;
    if constexpr (!std::same_as<D, cpu>) {
      host.resize(static_cast<std::size_t>(ids.numel()));
      detail::Transfer<D>::to_host(host.data(), ids.data(), host.size());
    }
    return host;
  }

  [[nodiscard]] Tensor<T, D> gather(TensorView<const std::int32_t, D> ids) const {
    auto y = Tensor<T, D>::uninitialized(output_shape(ids.shape()));
    const index_t n = ids.numel(), dim = config_.embedding_dim;
    LayoutKernel<D>::gather(n, dim, ids.data(), weight.value.data(), Strides{dim, 1}, y.data(), Strides{dim, 1});
    return y;
  }

  Config config_;
};

}  // namespace nexa
