#pragma once
// nexus_checkpoint.hpp: the extended model's checkpoint directory.
//   config.json           {"format": "nexus-extend", "domains": [...], "lm": {sizes, "experts": E},
//                          "domain_dim": 384, "router": {score_scale, load_balance_coef, z_loss_coef},
//                          "vocab": "vocab.txt", "classifier_vocab": "classifier_vocab.txt",
//                          "model": "nexus.safetensors"}
//   vocab.txt             the LM vocabulary (the nexa-moe checkpoint's)
//   classifier_vocab.txt  MiniLM's WordPiece vocabulary, which vocab.txt's entries refer to
//   nexus.safetensors     the LM under T5/Switch names; each layer's router as
//                         decoder.block.<i>.layer.1.mlp.router.{domain_embeddings,
//                         projection.{gate,up,down}_proj.weight}
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "../common/files.hpp"
#include "../nexa_moe/checkpoint.hpp"
#include "nexa/io/json.hpp"
#include "nexus_model.hpp"

namespace nexus_extend {

inline constexpr const char* kCheckpointFormat = "nexus-extend";

struct NexusCheckpoint {
  std::filesystem::path dir;
  std::vector<std::string> domains;
  nexa_moe::LMConfig lm;
  index_t domain_dim = 0;
  RouterOptions router;

  // Writes config.json, the vocabularies (copied from the source nexa-moe checkpoint) and the
  // model's safetensors.
  static void save(const std::filesystem::path& dir, NexusLM& model, const std::vector<std::string>& domains,
                   index_t domain_dim, const RouterOptions& router, const std::filesystem::path& source) {
    nexa::require(static_cast<index_t>(domains.size()) == model.stack.blocks.front().ffn.num_experts(), "nexus-extend",
                  "one domain name per expert expected (", model.stack.blocks.front().ffn.num_experts(), "), got ",
                  domains.size());
    std::filesystem::create_directories(dir);
    nexa_moe::LMConfig lm = model.config();
    lm.experts = static_cast<index_t>(domains.size());
    std::string names;
    for (std::size_t i = 0; i < domains.size(); ++i) names += (i ? ", " : "") + nexa::json::quote(domains[i]);
    examples::write_file(
        dir / "config.json",
        nexa::detail::concat("{\"format\": \"", kCheckpointFormat, "\", \"domains\": [", names,
                             "], \"lm\": ", nexa_moe::lm_config_json(lm), ", \"domain_dim\": ", domain_dim,
                             ", \"router\": {\"score_scale\": ", router.score_scale, ", \"load_balance_coef\": ",
                             router.load_balance_coef, ", \"z_loss_coef\": ", router.z_loss_coef,
                             "}, \"vocab\": \"vocab.txt\", \"classifier_vocab\": \"classifier_vocab.txt\", "
                             "\"model\": \"nexus.safetensors\"}\n"),
        "nexus-extend");
    for (const char* file : {"vocab.txt", "classifier_vocab.txt"})
      examples::write_file(dir / file, examples::read_file(source / file, "nexus-extend"), "nexus-extend");
    nexa::save_safetensors(model, dir / "nexus.safetensors");
  }

  // Reads DIR/config.json; every problem is a nexa::Error naming the file and the field.
  [[nodiscard]] static NexusCheckpoint open(const std::filesystem::path& dir) {
    const std::filesystem::path path = dir / "config.json";
    const std::string context = nexa::detail::concat("checkpoint ", path.string());
    const nexa::json::Value v = nexa::json::parse(examples::read_file(path, "checkpoint"), context);
    const auto field = [&](const nexa::json::Value& obj, std::string_view key) -> const nexa::json::Value& {
      const nexa::json::Value* f = obj.find(key);
      nexa::require(f != nullptr, context, "missing field \"", key, "\"");
      return *f;
    };
    const auto integer = [&](const nexa::json::Value& obj, std::string_view key) {
      const nexa::json::Value& f = field(obj, key);
      nexa::require(f.is_int64() && f.as_int64() > 0, context, "\"", key, "\" must be a positive integer");
      return static_cast<index_t>(f.as_int64());
    };
    const auto number = [&](const nexa::json::Value& obj, std::string_view key) {
      const nexa::json::Value& f = field(obj, key);
      nexa::require(f.is_number(), context, "\"", key, "\" must be a number");
      return f.number;
    };
    const nexa::json::Value& format = field(v, "format");
    nexa::require(format.is_string() && format.string == kCheckpointFormat, context, "format expected \"",
                  kCheckpointFormat, "\" (a nexus-extend checkpoint)");
    NexusCheckpoint c;
    c.dir = dir;
    const nexa::json::Value& domains = field(v, "domains");
    nexa::require(domains.is_array() && !domains.array.empty(), context, "\"domains\" must be a non-empty array");
    for (const auto& d : domains.array) {
      nexa::require(d.is_string(), context, "\"domains\" must hold strings");
      c.domains.push_back(d.string);
    }
    const nexa::json::Value& lm = field(v, "lm");
    c.lm.vocab = integer(lm, "vocab");
    c.lm.d_model = integer(lm, "d_model");
    c.lm.heads = integer(lm, "heads");
    c.lm.layers = integer(lm, "layers");
    c.lm.d_ff = integer(lm, "d_ff");
    c.lm.experts = integer(lm, "experts");
    c.lm.relative_buckets = integer(lm, "relative_buckets");
    c.lm.relative_max_distance = integer(lm, "relative_max_distance");
    nexa::require(c.lm.experts == static_cast<index_t>(c.domains.size()), context, "\"lm\".\"experts\" (", c.lm.experts,
                  ") must equal the number of domains (", c.domains.size(), ")");
    c.domain_dim = integer(v, "domain_dim");
    const nexa::json::Value& router = field(v, "router");
    c.router.score_scale = number(router, "score_scale");
    c.router.load_balance_coef = number(router, "load_balance_coef");
    c.router.z_loss_coef = number(router, "z_loss_coef");
    return c;
  }

  // The model, from nexus.safetensors (every parameter, strictly), in eval mode.
  [[nodiscard]] NexusLM model() const {
    nexa::Rng rng(0);
    NexusLM m(lm, nexus_ffn(lm, domain_dim, router), rng);
    nexa::load_safetensors(m, dir / "nexus.safetensors");
    m.set_training(false);
    return m;
  }
};

}  // namespace nexus_extend
