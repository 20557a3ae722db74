#pragma once
// SentenceEncoder: text -> sentence embeddings, as sentence-transformers' all-MiniLM-L6-v2 does
// it (WordPiece, BERT, mean pooling over the attention mask, L2 normalisation), and the Nexus
// domain embedding of a domain: the mean of its sample texts' sentence embeddings.
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "nexa/io/wordpiece.hpp"
#include "nexa/models/bert.hpp"
#include "nexa/models/sentence_embedding.hpp"

namespace nexa {

class SentenceEncoder {
 public:
  // From a checkpoint directory holding config.json, model.safetensors and vocab.txt.
  // max_length 256 is all-MiniLM-L6-v2's max_seq_length.
  static SentenceEncoder from_directory(const std::filesystem::path& dir, std::size_t max_length = 256) {
    SentenceEncoder e;
    e.tokenizer_ = WordPieceTokenizer::from_vocab_file(dir / "vocab.txt");
    nexa::Rng rng(0);  // every weight is overwritten by the load
    e.model_ = BertModel<float>(BertConfig::from_json(dir), rng);
    (void)load_bert(e.model_, dir);
    e.model_.set_training(false);
    e.max_length_ = max_length;
    return e;
  }

  [[nodiscard]] index_t dim() const { return model_.config().hidden; }
  [[nodiscard]] const WordPieceTokenizer& tokenizer() const { return tokenizer_; }
  [[nodiscard]] BertModel<float>& model() { return model_; }

  // [texts, dim], each row L2-normalised; `batch` texts per forward.
  [[nodiscard]] Tensor<float> encode(std::span<const std::string> texts, std::size_t batch = 32) {
    require(batch > 0, "SentenceEncoder", "batch must be positive");
    auto out = Tensor<float>::uninitialized({static_cast<index_t>(texts.size()), dim()});
    for (std::size_t begin = 0; begin < texts.size(); begin += batch) {
      const auto chunk = texts.subspan(begin, std::min(batch, texts.size() - begin));
      const BatchEncoding enc =
          tokenizer_.encode_batch(chunk, {.max_length = max_length_, .truncation = true, .padding = Padding::Longest});
      const auto hidden = model_.apply(enc.input_ids, enc.token_type_ids, enc.attention_mask).last_hidden_state;
      const Tensor<float> e = bert_sentence_embedding(hidden.cview(), enc.attention_mask.cview());
      std::copy_n(e.data(), e.numel(), out.data() + static_cast<index_t>(begin) * dim());
    }
    return out;
  }

  // The Nexus domain embedding: the mean of the texts' sentence embeddings, [dim].
  [[nodiscard]] Tensor<float> domain_embedding(std::span<const std::string> texts, std::size_t batch = 32) {
    require(!texts.empty(), "SentenceEncoder", "a domain embedding needs at least one text");
    const Tensor<float> e = encode(texts, batch);
    Tensor<float> mean({dim()});
    for (index_t r = 0; r < e.rows(); ++r)
      for (index_t c = 0; c < dim(); ++c) mean.data()[c] += e(r, c) / static_cast<float>(e.rows());
    return mean;
  }

 private:
  SentenceEncoder() = default;
  WordPieceTokenizer tokenizer_ = WordPieceTokenizer::from_vocab({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"});
  BertModel<float> model_;
  std::size_t max_length_ = 256;
};

}  // namespace nexa
