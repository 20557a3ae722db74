#pragma once
// Saving and loading LoRA adapters alone, as peft's adapter_model.safetensors holds them:
// only the parameters named "...lora_A.weight" and "...lora_B.weight" (the frozen base is not
// written). peft prefixes its names with "base_model.model."; pass that as `prefix` to write
// (or read) a file under peft's exact names:
//   save_adapters(layer, "adapter_model.safetensors", "base_model.model");
//   load_adapters(layer, "adapter_model.safetensors", "base_model.model");
// Loading checks everything before writing anything (missing, mismatched and, when strict,
// unexpected tensors in one nexa::Error) and never touches the base. Load into unmerged
// adapters: a merged module keeps the old B A in its base weights until unmerge().
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include "nexa/io/safetensors.hpp"

namespace nexa {

// Whether a parameter name is a LoRA adapter's: its last two components are lora_A.weight or
// lora_B.weight.
inline bool is_lora_param(std::string_view name) {
  for (std::string_view suffix : {std::string_view("lora_A.weight"), std::string_view("lora_B.weight")}) {
    if (name.size() < suffix.size() || name.substr(name.size() - suffix.size()) != suffix) continue;
    if (name.size() == suffix.size() || name[name.size() - suffix.size() - 1] == '.') return true;
  }
  return false;
}

// A module seen through its adapter parameters only (what save/load_adapters visit).
template <class Module>
class AdapterParams {
 public:
  AdapterParams(Module& model, std::string prefix) : module_(&model), prefix_(std::move(prefix)) {}
  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    module_->visit_params(
        [&](const std::string& name, auto& p) {
          if (is_lora_param(name)) f(name, p);
        },
        prefix.empty() ? prefix_ : join_name(prefix_, prefix));
  }

 private:
  Module* module_;
  std::string prefix_;
};

// Writes the adapters of `module` (atomically; F32 by default).
template <class Module>
void save_adapters(Module& model, const std::filesystem::path& path, const std::string& prefix = "",
                   Dtype dtype = Dtype::F32, const SafetensorsMetadata& metadata = {}) {
  AdapterParams<Module> adapters(model, prefix);
  std::size_t count = 0;
  adapters.visit_params([&](const std::string&, auto&) { ++count; });
  require(count > 0, "LoRA", "save_adapters: the module has no lora_A/lora_B parameters");
  save_safetensors(adapters, path, dtype, metadata);
}

// Reads the adapters of `module` from `path`, converting dtypes; the base is left as it is.
template <class Module>
void load_adapters(Module& model, const std::filesystem::path& path, const std::string& prefix = "",
                   bool strict = true) {
  AdapterParams<Module> adapters(model, prefix);
  load_safetensors(adapters, path, strict);
}

}  // namespace nexa
