// MasterWeights on the CPU: bf16/fp16 parameters trained through fp32 masters equal an fp32 model
// trained with the same gradients, the 16-bit values being the masters rounded to nearest even.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "nexa/core/half.hpp"
#include "nexa/train/adamw.hpp"
#include "nexa/train/master_weights.hpp"

using nexa::bfloat16;
using nexa::half;
using nexa::Param;
using nexa::Tensor;

namespace master_weights_test {
namespace {

// A module with a bf16 weight, an fp16 gate, an fp32 bias and a frozen bf16 table.
struct Mixed {
  Param<bfloat16> weight;
  Param<half> gate;
  Param<float> bias;
  Param<bfloat16> frozen;

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    f(nexa::join_name(prefix, "weight"), weight);
    f(nexa::join_name(prefix, "gate"), gate);
    f(nexa::join_name(prefix, "bias"), bias);
    f(nexa::join_name(prefix, "frozen"), frozen);
  }
};

// The same parameters in fp32.
struct Reference {
  Param<float> weight, gate, bias;

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    f(nexa::join_name(prefix, "weight"), weight);
    f(nexa::join_name(prefix, "gate"), gate);
    f(nexa::join_name(prefix, "bias"), bias);
  }
};

template <class T>
Tensor<T> rounded(const std::vector<float>& v) {
  std::vector<T> out;
  for (const float x : v) out.push_back(T(x));
  return Tensor<T>::from_host({static_cast<nexa::index_t>(v.size())}, out);
}

template <class T>
std::vector<float> widened(const Tensor<T>& t) {
  std::vector<float> out;
  for (const T x : t.to_host()) out.push_back(static_cast<float>(x));
  return out;
}

}  // namespace

TEST_CASE("MasterWeights trains 16-bit parameters exactly as fp32 ones, rounding only the copies") {
  const std::vector<float> w{0.5f, -1.25f, 3.0f}, g{1.0f, 0.25f}, b{0.125f};
  Mixed model{Param<bfloat16>(rounded<bfloat16>(w)), Param<half>(rounded<half>(g)),
              Param<float>(Tensor<float>::from_host({1}, b)), Param<bfloat16>(rounded<bfloat16>({2.0f}), false)};
  Reference ref{Param<float>(Tensor<float>::from_host({3}, w)), Param<float>(Tensor<float>::from_host({2}, g)),
                Param<float>(Tensor<float>::from_host({1}, b))};
  nexa::train::MasterWeights masters(model);
  CHECK(masters.num_masters() == 2);
  const nexa::train::AdamWConfig config{.lr = 1e-3, .weight_decay = 0.01};
  nexa::train::AdamW optimizer(masters, config);
  nexa::train::AdamW ref_optimizer(ref, config);
  CHECK(optimizer.param_names() == std::vector<std::string>{"weight", "gate", "bias"});

  for (int step = 0; step < 20; ++step) {
    // Gradients representable in both 16-bit formats, so both models see the same values.
    const std::vector<float> gw{0.5f * static_cast<float>(step % 3) - 0.5f, 0.25f, -2.0f}, gg{0.75f, -0.125f},
        gb{0.0625f};
    model.weight.grad = rounded<bfloat16>(gw);
    model.gate.grad = rounded<half>(gg);
    model.bias.grad = Tensor<float>::from_host({1}, gb);
    ref.weight.grad = Tensor<float>::from_host({3}, gw);
    ref.gate.grad = Tensor<float>::from_host({2}, gg);
    ref.bias.grad = Tensor<float>::from_host({1}, gb);
    masters.gradients_to_master();
    optimizer.step();
    masters.weights_to_model();
    ref_optimizer.step();
  }
  // The masters are the fp32 model bit for bit; the 16-bit values are its rounding.
  std::vector<std::vector<float>> master_values;
  masters.visit_params([&](const std::string&, Param<float>& p) { master_values.push_back(p.value.to_host()); });
  REQUIRE(master_values.size() == 3);
  CHECK(master_values[0] == ref.weight.value.to_host());
  CHECK(master_values[1] == ref.gate.value.to_host());
  CHECK(model.bias.value.to_host() == ref.bias.value.to_host());
  CHECK(widened(model.weight.value) == widened(rounded<bfloat16>(ref.weight.value.to_host())));
  CHECK(widened(model.gate.value) == widened(rounded<half>(ref.gate.value.to_host())));
  CHECK(widened(model.frozen.value) == std::vector<float>{2.0f});
  // 20 steps of about lr moved the fp32 weight by ~0.02, which bf16 (8 bits) cannot hold at 3.0:
  // the master kept what the 16-bit copy rounds away.
  CHECK(master_values[0][2] != widened(model.weight.value)[2]);
}

}  // namespace master_weights_test
