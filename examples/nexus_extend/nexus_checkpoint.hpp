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
    examples::write_file(
        dir / "config.json",
        nexa::detail::concat("{\"format\": \"", kCheckpointFormat, "\", \"domains\": [",
                             nexa_moe::domains_json(domains), "], \"lm\": ", nexa_moe::lm_config_json(lm),
                             ", \"domain_dim\": ", domain_dim, ", \"router\": {\"score_scale\": ", router.score_scale,
                             ", \"load_balance_coef\": ", router.load_balance_coef,
                             ", \"z_loss_coef\": ", router.z_loss_coef,
                             "}, \"vocab\": \"vocab.txt\", \"classifier_vocab\": \"classifier_vocab.txt\", "
                             "\"model\": \"nexus.safetensors\"}\n"),
        "nexus-extend");
    for (const char* file : {"vocab.txt", "classifier_vocab.txt"})
      examples::write_file(dir / file, examples::read_file(source / file, "nexus-extend"), "nexus-extend");
    nexa::save_safetensors(model, dir / "nexus.safetensors");
  }

  // Reads DIR/config.json; every problem is a nexa::Error naming the file and the field.
  [[nodiscard]] static NexusCheckpoint open(const std::filesystem::path& dir) {
    const nexa_moe::ConfigJson config = nexa_moe::ConfigJson::read(dir);
    config.require_format(kCheckpointFormat, "a nexus-extend checkpoint");
    NexusCheckpoint c;
    c.dir = dir;
    c.domains = config.domains();
    c.lm = config.lm();
    nexa::require(c.lm.experts == static_cast<index_t>(c.domains.size()), config.context, "\"lm\".\"experts\" (",
                  c.lm.experts, ") must equal the number of domains (", c.domains.size(), ")");
    c.domain_dim = config.positive_integer(config.root, "domain_dim");
    const nexa::json::Value& router = config.field(config.root, "router");
    c.router.score_scale = config.number(router, "score_scale");
    c.router.load_balance_coef = config.number(router, "load_balance_coef");
    c.router.z_loss_coef = config.number(router, "z_loss_coef");
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
