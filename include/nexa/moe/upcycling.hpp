#pragma once
// Building MoEs from dense models, by parameter name (visit_params, Hugging Face names):
//   sparse_upcycle(dense_ffn, moe)        every expert = a copy of one dense FFN; the router keeps
//                                         its fresh initialisation. With k > 1 and renormalised
//                                         weights the layer equals the dense FFN for any router.
//   branch_train_mix(ffns, moe)           expert i = the FFN of dense model i (Branch-Train-Mix);
//   branch_train_mix_model(models, moe_model) the same for whole models: every FFN
//                                         "<p>.DenseReluDense.*" of model i becomes
//                                         "<p>.mlp.experts.expert_<i>.*", the routers stay fresh,
//                                         every other parameter is the mean over the models;
//   average_params(models, out)           Branch-Train-Merge: the mean of everything (in
//                                         shared_expert_init.hpp, where the shared expert's
//                                         initialisations use it too);
//   nexus_upcycle(seed_ffn, domain_ffns, embeddings, moe) and nexus_upcycle_model(seed,
//                                         domains, embeddings, moe_model): Nexus (Gritsch et al.
//                                         2024): the seed model's FFN becomes the shared expert,
//                                         domain model i's FFN expert i, the router's domain
//                                         embeddings are set from `embeddings` [n, domain_dim]
//                                         (its projection stays fresh), and every other parameter
//                                         is the mean over the seed and the domain models (the
//                                         running mean nexus_merge computes).
//   load_params_by_name(model, path, prefix) reads a module (e.g. one dense FFN) out of a
//                                         checkpoint whose names are "<prefix>.<name>".
// Mismatched names or shapes raise one nexa::Error that lists them, before anything is written.
#include <cctype>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "nexa/core/error.hpp"
#include "nexa/core/param.hpp"
#include "nexa/io/safetensors.hpp"
#include "nexa/moe/shared_expert_init.hpp"

namespace nexa {

// Reads every parameter of `module` from tensors named join_name(prefix, name), converting the
// file's float dtype; other tensors in the file are ignored. All names, shapes and dtypes are
// checked before any parameter is written.
template <class Module>
void load_params_by_name(Module& model, SafetensorsReader& reader, const std::string& prefix = "") {
  std::vector<std::string> problems;
  model.visit_params([&](const std::string& name, auto& p) {
    const std::string full = join_name(prefix, name);
    if (!reader.contains(full)) {
      problems.push_back(detail::concat("missing \"", full, "\""));
      return;
    }
    const TensorInfo& info = reader.info(full);
    if (!(info.shape == p.value.shape()))
      problems.push_back(detail::concat("\"", full, "\" shape expected ", p.value.shape(), ", got ", info.shape));
    if (!is_float_dtype(info.dtype))
      problems.push_back(detail::concat("\"", full, "\" has dtype ", info.dtype, ", not a floating-point one"));
  });
  if (!problems.empty()) {
    std::string list;
    for (const auto& s : problems) list += "\n  " + s;
    throw Error(detail::concat("load_params_by_name: ", reader.path().string(), ":", list));
  }
  model.visit_params([&](const std::string& name, auto& p) {
    static_assert(std::same_as<detail::param_device_t<decltype(p)>, cpu>, "load_params_by_name: CPU parameters only");
    reader.read_into(join_name(prefix, name), p.value.view());
  });
}

template <class Module>
void load_params_by_name(Module& model, const std::filesystem::path& path, const std::string& prefix = "") {
  SafetensorsReader reader(path);
  load_params_by_name(model, reader, prefix);
}

// Every routed expert = a copy of `dense` (same parameter names, e.g. T5FFN's wi/wo). The router
// and a shared expert, if any, are left as they are.
template <class Dense, class Layer>
void sparse_upcycle(Dense& dense, Layer& moe) {
  for (auto& expert : moe.experts) copy_params(dense, expert);
}

// Expert i = a copy of ffns[i] (Branch-Train-Mix at one layer); the router is left as it is.
template <class Dense, class Layer>
void branch_train_mix(const std::vector<Dense*>& ffns, Layer& moe) {
  require(static_cast<index_t>(ffns.size()) == moe.num_experts(), "branch_train_mix", "needs one FFN per expert (",
          moe.num_experts(), "), got ", ffns.size());
  for (std::size_t i = 0; i < ffns.size(); ++i) {
    require(ffns[i] != nullptr, "branch_train_mix", "FFN ", i, " is null");
    copy_params(*ffns[i], moe.experts[i]);
  }
}

// Nexus at one layer: shared expert = seed, expert i = domain_ffns[i], router domain embeddings
// = embeddings [n, domain_dim] (NexusRouter::set_domain_embeddings).
template <class Dense, class Layer, class Embeddings>
void nexus_upcycle(Dense& seed, const std::vector<Dense*>& domain_ffns, const Embeddings& embeddings, Layer& moe) {
  static_assert(Layer::has_shared, "nexus_upcycle: the MoE layer needs a shared expert for the seed model's FFN");
  branch_train_mix(domain_ffns, moe);
  copy_params(seed, moe.shared.expert);
  moe.router.set_domain_embeddings(read_view(embeddings));
}

// Names of the dense FFN and of the MoE layer in the two models' parameter names.
struct FfnNames {
  std::string dense = "DenseReluDense";  // T5: "<p>.layer.1.DenseReluDense.wi.weight"
  std::string moe = "mlp";               // Switch: "<p>.layer.1.mlp.experts.expert_0.wi.weight"
};

namespace detail {
// Where a parameter of an MoE model sits relative to its MoE layers.
struct MoeParamName {
  enum Kind { Other, Expert, Router, Shared } kind = Other;
  index_t expert = -1;
  std::string dense_name;  // for Expert and Shared: the dense model's name of the same FFN weight
  std::string rest;        // what follows "router." / "shared_expert." / "expert_<i>."
};

inline MoeParamName classify_moe_param(const std::string& name, const FfnNames& names) {
  const std::string key = names.moe + ".";
  for (std::size_t pos = name.find(key); pos != std::string::npos; pos = name.find(key, pos + 1)) {
    if (pos != 0 && name[pos - 1] != '.') continue;
    const std::string prefix = name.substr(0, pos);
    const std::string after = name.substr(pos + key.size());
    MoeParamName out;
    const std::string experts = "experts.expert_";
    if (after.rfind(experts, 0) == 0) {
      std::size_t i = experts.size();
      index_t e = 0;
      bool digits = false;
      while (i < after.size() && std::isdigit(static_cast<unsigned char>(after[i]))) {
        e = e * 10 + (after[i] - '0');
        ++i;
        digits = true;
      }
      if (!digits || i >= after.size() || after[i] != '.') continue;
      out.kind = MoeParamName::Expert;
      out.expert = e;
      out.rest = after.substr(i + 1);
    } else if (after.rfind("router.", 0) == 0) {
      out.kind = MoeParamName::Router;
      out.rest = after.substr(7);
    } else if (after.rfind("shared_expert.", 0) == 0) {
      out.kind = MoeParamName::Shared;
      out.rest = after.substr(14);
    } else {
      continue;
    }
    out.dense_name = prefix + names.dense + "." + out.rest;
    return out;
  }
  return {};
}

using SourceRefs = std::vector<std::pair<std::size_t, std::string>>;

template <class Model>
[[nodiscard]] std::vector<std::map<std::string, ParamSource>> source_maps(const std::vector<Model*>& models,
                                                                          std::string_view context) {
  std::vector<std::map<std::string, ParamSource>> maps;
  for (std::size_t i = 0; i < models.size(); ++i) {
    require(models[i] != nullptr, context, "model ", i, " is null");
    maps.push_back(param_sources(*models[i]));
  }
  return maps;
}

inline SourceRefs all_sources(std::size_t n, const std::string& name) {
  SourceRefs refs;
  for (std::size_t i = 0; i < n; ++i) refs.emplace_back(i, name);
  return refs;
}
}  // namespace detail

// Branch-Train-Mix for whole models (see the top of this file). Experts beyond the number of
// models are an error; a shared expert, if any, is left as it is.
template <class DenseModel, class MoEModel>
void branch_train_mix_model(const std::vector<DenseModel*>& models, MoEModel& out, const FfnNames& names = {}) {
  require(!models.empty(), "branch_train_mix_model", "needs at least one dense model");
  const auto maps = detail::source_maps(models, "branch_train_mix_model");
  detail::fill_by_name(
      out, maps,
      [&](const std::string& name) -> detail::SourceRefs {
        const auto c = detail::classify_moe_param(name, names);
        switch (c.kind) {
          case detail::MoeParamName::Expert:
            require(c.expert < static_cast<index_t>(models.size()), "branch_train_mix_model", "\"", name,
                    "\" is expert ", c.expert, " but only ", models.size(), " dense models were given");
            return {{static_cast<std::size_t>(c.expert), c.dense_name}};
          case detail::MoeParamName::Router:
          case detail::MoeParamName::Shared:
            return {};
          default:
            return detail::all_sources(models.size(), name);
        }
      },
      "branch_train_mix_model");
}

// Nexus for whole models (see the top of this file). Every MoE layer gets the same domain
// embeddings (its router's "domain_embeddings" parameter), one row per domain model.
template <class DenseModel, class MoEModel, class Embeddings>
void nexus_upcycle_model(DenseModel& seed, const std::vector<DenseModel*>& domains, const Embeddings& embeddings,
                         MoEModel& out, const FfnNames& names = {}) {
  require(!domains.empty(), "nexus_upcycle_model", "needs at least one domain model");
  std::vector<DenseModel*> models{&seed};
  models.insert(models.end(), domains.begin(), domains.end());
  const auto maps = detail::source_maps(models, "nexus_upcycle_model");
  const auto emb = read_view(embeddings);
  std::size_t routers = 0;
  out.visit_params([&](const std::string& name, auto& p) {
    const auto c = detail::classify_moe_param(name, names);
    if (c.kind != detail::MoeParamName::Router || c.rest != "domain_embeddings") return;
    require(p.value.shape() == emb.shape(), "nexus_upcycle_model", "\"", name, "\" shape ", p.value.shape(),
            ", embeddings have ", emb.shape());
    ++routers;
  });
  require(routers > 0, "nexus_upcycle_model", "the MoE model has no router with domain embeddings (\"", names.moe,
          ".router.domain_embeddings\")");
  detail::fill_by_name(
      out, maps,
      [&](const std::string& name) -> detail::SourceRefs {
        const auto c = detail::classify_moe_param(name, names);
        switch (c.kind) {
          case detail::MoeParamName::Expert:
            require(c.expert < static_cast<index_t>(domains.size()), "nexus_upcycle_model", "\"", name, "\" is expert ",
                    c.expert, " but only ", domains.size(), " domain models were given");
            return {{static_cast<std::size_t>(c.expert) + 1, c.dense_name}};
          case detail::MoeParamName::Shared:
            if (c.rest == "scale") return {};
            return {{0, c.dense_name}};
          case detail::MoeParamName::Router:
            return {};
          default:
            return detail::all_sources(models.size(), name);
        }
      },
      "nexus_upcycle_model");
  out.visit_params([&](const std::string& name, auto& p) {
    const auto c = detail::classify_moe_param(name, names);
    if (c.kind != detail::MoeParamName::Router || c.rest != "domain_embeddings") return;
    using V = typename std::remove_cvref_t<decltype(p.value)>::value_type;
    for (index_t i = 0; i < emb.numel(); ++i) p.value.data()[i] = static_cast<V>(emb.data()[i]);
  });
}

}  // namespace nexa
