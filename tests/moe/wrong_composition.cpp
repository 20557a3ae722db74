// Must NOT compile: router and expert are swapped. The test checks that the compiler names the
// unmet concept (nexa::Router) instead of failing deep inside the layer.
#include "nexa/moe.hpp"

int main() {
  nexa::Rng rng(1);
  nexa::MoELayer<nexa::T5FFN<nexa::Relu>, nexa::TopKRouter<2>> layer({.d_model = 4, .d_ff = 8, .num_experts = 2}, rng);
  (void)layer;
}
