#pragma once
// MasterWeights: fp32 master copies of a model's 16-bit (bfloat16 / half) parameters, for mixed
// precision training. The optimizer runs on the masters, so small updates accumulate in fp32
// instead of being rounded away in 16 bits:
//   nexa::train::MasterWeights<D> masters(model);      // copies the 16-bit values up to fp32
//   nexa::train::AdamW optimizer(masters, config);     // optimises the masters (and fp32 params)
//   ... forward / backward in the model (16-bit gradients) ...
//   masters.gradients_to_master();                     // master.grad = float(model grad)
//   optimizer.step();
//   masters.weights_to_model();                        // model value = 16-bit(master), nearest even
// fp32 parameters of the model are not copied: visit_params hands out the model's own, so one
// optimizer covers everything. Frozen 16-bit parameters are left out. The model must outlive the
// MasterWeights and not move. Casts run through ops::cast, on any device.
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "nexa/core/half.hpp"
#include "nexa/core/param.hpp"
#include "nexa/ops/elementwise.hpp"

namespace nexa::train {

template <class D = cpu>
class MasterWeights {
 public:
  template <class Model>
  explicit MasterWeights(Model& model) {
    model.visit_params([&](const std::string& name, auto& p) { add(name, p); });
  }
  MasterWeights(const MasterWeights&) = delete;
  MasterWeights& operator=(const MasterWeights&) = delete;

  // The fp32 parameters the optimizer should update, under the model's names.
  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    for (auto& e : entries_) f(join_name(prefix, e.name), *e.target);
  }

  // Every trainable 16-bit gradient, widened into its master's gradient (exact).
  void gradients_to_master() {
    for (auto& e : entries_)
      if (e.gradients_in) e.gradients_in();
  }
  // Every 16-bit value, rounded from its master (to nearest, ties to even).
  void weights_to_model() {
    for (auto& e : entries_)
      if (e.values_out) e.values_out();
  }
  // Number of 16-bit parameters with a master copy.
  [[nodiscard]] std::size_t num_masters() const {
    std::size_t n = 0;
    for (const auto& e : entries_) n += e.owned ? 1 : 0;
    return n;
  }

 private:
  struct Entry {
    std::string name;
    Param<float, D>* target = nullptr;       // the master, or the model's own fp32 parameter
    std::unique_ptr<Param<float, D>> owned;  // the master of a 16-bit parameter
    std::function<void()> gradients_in, values_out;
  };

  template <class T>
  void add(const std::string& name, Param<T, D>& p) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, bfloat16> || std::is_same_v<T, half>,
                  "MasterWeights: parameters must be float, bfloat16 or half");
    Entry e;
    e.name = name;
    if constexpr (std::is_same_v<T, float>) {
      e.target = &p;
    } else {
      if (!p.trainable) return;
      e.owned = std::make_unique<Param<float, D>>(ops::cast_to<float>(p.value.cview()));
      Param<float, D>* master = e.owned.get();
      e.target = master;
      // A parameter frozen later keeps its value and has no gradient to bring in.
      e.gradients_in = [master, &p] {
        if (p.trainable) ops::cast(p.grad.cview(), master->grad.view());
      };
      e.values_out = [master, &p] {
        if (p.trainable) ops::cast(master->value.cview(), p.value.view());
      };
    }
    entries_.push_back(std::move(e));
  }

  std::vector<Entry> entries_;
};

}  // namespace nexa::train
