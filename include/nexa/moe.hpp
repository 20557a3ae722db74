#pragma once
// nexa: the umbrella header. #include <nexa/moe.hpp> and compose
//   nexa::MoELayer<nexa::TopKRouter<2>, nexa::T5FFN<nexa::Relu>, nexa::SharedExpert<...>, nexa::cpu>.
#include "nexa/core/error.hpp"
#include "nexa/core/param.hpp"
#include "nexa/core/rng.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/moe/concepts.hpp"
#include "nexa/moe/config.hpp"
#include "nexa/moe/moe_layer.hpp"
#include "nexa/moe/shared_expert.hpp"
#include "nexa/moe/t5_ffn.hpp"
#include "nexa/moe/topk_router.hpp"
#include "nexa/nn/activation.hpp"
#include "nexa/nn/dropout.hpp"
#include "nexa/nn/linear.hpp"
#include "nexa/ops/gemm.hpp"
#include "nexa/ops/routing.hpp"
