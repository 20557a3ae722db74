#pragma once
// Nexus's merge of the shared (non-FFN) parameters when one more dense model is folded into an
// MoE: phi = (1 - lambda) * phi_moe + lambda * phi_new with lambda = 1 / (n + 1), n being the
// number of models already merged into phi_moe, so that phi stays the running mean.
#include <map>
#include <string>
#include <vector>

#include "nexa/core/param.hpp"

namespace nexa {

// Merges every parameter of `incoming` into the same-named parameter of `merged`. Both modules
// must have the same parameters (names and shapes); anything else raises nexa::Error listing it.
template <class Module>
void nexus_merge(Module& merged, Module& incoming, index_t models_merged) {
  require(models_merged >= 1, "nexus_merge", "models_merged must be at least 1, got ", models_merged);
  std::map<std::string, const void*> by_name;
  std::map<std::string, Shape> shapes;
  incoming.visit_params([&](const std::string& name, auto& p) {
    by_name[name] = &p;
    shapes[name] = p.value.shape();
  });
  std::vector<std::string> problems;
  std::size_t matched = 0;
  merged.visit_params([&](const std::string& name, auto& p) {
    const auto it = by_name.find(name);
    if (it == by_name.end()) {
      problems.push_back(name + " (missing from the incoming model)");
    } else if (!(shapes[name] == p.value.shape())) {
      problems.push_back(detail::concat(name, " (shape ", p.value.shape(), " vs ", shapes[name], ")"));
    } else {
      ++matched;
    }
  });
  if (matched != by_name.size()) problems.push_back("the incoming model has parameters the merged one lacks");
  if (!problems.empty()) {
    std::string list;
    for (const auto& p : problems) list += "\n  " + p;
    throw Error("nexus_merge: the two models' parameters do not match:" + list);
  }
  const double lambda = 1.0 / static_cast<double>(models_merged + 1);
  merged.visit_params([&](const std::string& name, auto& p) {
    using P = std::remove_reference_t<decltype(p)>;
    const auto& q = *static_cast<const P*>(by_name[name]);
    using V = typename decltype(p.value)::value_type;
    for (index_t i = 0; i < p.numel(); ++i) {
      p.value.data()[i] = static_cast<V>((1.0 - lambda) * static_cast<double>(p.value.data()[i]) +
                                         lambda * static_cast<double>(q.value.data()[i]));
    }
  });
}

}  // namespace nexa
