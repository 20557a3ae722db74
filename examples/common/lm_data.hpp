#pragma once
// lm_data.hpp: the data side of the NEXA-MOE demo trainer (issue 7): the GCIDE domain corpus
// read from its JSON lines, tokenised with the MiniLM WordPiece vocabulary, mapped onto a compact
// vocabulary built from the training split, laid out as language-model sequences and batched.
//
//   auto train = lm_data::read_split(corpus / "train.jsonl");          // Sample{headword, domain, text}
//   auto wp = nexa::WordPieceTokenizer::from_vocab_file(minilm / "vocab.txt");  // lower-cases (uncased)
//   auto vocab = lm_data::Vocab::build(wp, train, {.min_count = 2});
//   vocab.save(out / "vocab.txt");   // later: lm_data::Vocab::load(out / "vocab.txt", wp)
//   auto seqs = lm_data::make_sequences(vocab, train, {.max_len = 64, .with_tag = true});
//   lm_data::Batcher batcher(seqs, {.batch_size = 32, .seed = 1, .bucket = 8});
//   for (const auto& indices : batcher.epoch(e)) { lm_data::Batch b = batcher.batch(indices); ... }
//
// The rules:
// - Corpus lines: JSON objects with string fields "headword", "domain" (PHYS, BIO, MAT or MED:
//   Sample::domain 0, 1, 2, 3, the order of examples/data/domains.hpp) and "text"; other fields
//   ("tagged") are ignored: the tag is added by make_sequences, from the domain. Blank lines are
//   skipped. The first malformed line throws nexa::Error "lm_data: FILE:LINE: what" (the corpus is
//   a program's output, so a bad line means a broken file: the trainer stops rather than training
//   on part of it).
// - Vocabulary: compact ids. The specials come first, by these names: [PAD] 0, [UNK] 1, [BOS] 2,
//   [EOS] 3, [PHYS] 4, [BIO] 5, [MAT] 6, [MED] 7 (kTag + domain). Then every WordPiece id seen in
//   the training texts ("text", tokenised as BertTokenizer uncased does: lower-cased, accents
//   stripped, punctuation split, greedy longest-match WordPiece) at least min_count times, by
//   descending count, ties by ascending WordPiece id; max_size (0: no limit) caps the whole
//   vocabulary, specials included. WordPiece's own special tokens ([CLS], [SEP], [PAD], [UNK],
//   [MASK]) are never entries: a text's [UNK] piece and every piece outside the vocabulary map to
//   compact [UNK]. decode() joins tokens with spaces, glues "##" continuations to the token
//   before, and applies BertTokenizer's clean_up_tokenization_spaces (" ." -> "." etc.);
//   skip_special (default) drops [PAD], [BOS], [EOS] and the tags, never [UNK].
// - Vocabulary file: UTF-8, one token per line, line i = compact id i ("\n" line ends, a final
//   newline); the first 8 lines are the specials' names above in that order, the others WordPiece
//   tokens of the tokenizer given to load(). load() rejects a missing or misplaced special, an
//   empty line, a token that is not in the WordPiece vocabulary (or is one of its specials) and a
//   duplicate, naming the line.
// - Sequences: "[BOS] [TAG] tokens... [EOS]" with SequenceOptions::with_tag (training), else
//   "[BOS] tokens... [EOS]" (evaluation never sees the tag); longer than max_len: the text's
//   tokens are cut so that the sequence has max_len ids and still ends with [EOS]
//   (Sequence::truncated records it).
// - Batches: the next-token targets are target[b, t] = ids[b, t + 1] for t + 1 < length,
//   kIgnore = -100 (nexa::train::cross_entropy's default ignore_index) at [EOS] (nothing follows
//   it) and at padding, and, unless BatchOptions::loss_on_tag, at [BOS] of a tagged sequence (the
//   tag is given, not predicted). ids are padded with [PAD] to the longest sequence of the batch;
//   mask is 1 on the sequence, 0 on padding. All three are int32 [B, S].
// - Order: an epoch is a permutation of the sequences, Fisher-Yates driven by nexa's Philox
//   stream (seed, epoch): the draw for position i is bits(i) of RandomStream(seed, epoch), as a
//   64-bit number modulo i + 1 (the bias, below 2^-32, is ignored). shuffle = false keeps file
//   order. Bucketing (bucket = k > 1): the shuffled order is cut into chunks of k * batch_size
//   sequences, each chunk is sorted by length (stable) and cut into batches, and the batches of
//   the epoch are shuffled again (stream id 2^63 + epoch), so batches hold similar lengths and
//   padding shrinks, while the order of batches stays random. The last batch may be short
//   unless drop_last. The same (sequences, options, epoch) always give the same batches.
// Errors are nexa::Error starting "lm_data: "; nothing is printed.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../data/domains.hpp"
#include "files.hpp"
#include "nexa/core/error.hpp"
#include "nexa/core/rng.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/io/json.hpp"
#include "nexa/io/wordpiece.hpp"

namespace lm_data {

inline constexpr std::string_view kModule = "lm_data";

// ---------------------------------------------------------------------------------------------
// The corpus.

struct Sample {
  std::string headword;
  std::int32_t domain = 0;  // domains::Domain as an index: PHYS 0, BIO 1, MAT 2, MED 3
  std::string text;
};

// The samples of JSON-lines `data` (see the rules above); `source` names it in errors.
[[nodiscard]] inline std::vector<Sample> parse_split(std::string_view data, std::string_view source) {
  std::vector<Sample> out;
  examples::for_each_line(data, [&](std::string_view line, std::size_t line_no) {
    if (line.find_first_not_of(" \t") == std::string_view::npos) return;
    const std::string where = nexa::detail::concat(kModule, ": ", source, ":", line_no);
    const nexa::json::Value v = nexa::json::parse(line, where);  // "<where>: invalid JSON at byte ..."
    nexa::require(v.is_object(), where, "not a JSON object");
    const auto field = [&](std::string_view name) -> const std::string& {
      const nexa::json::Value* f = v.find(name);
      nexa::require(f != nullptr && f->is_string(), where, "no string field \"", name, "\"");
      return f->string;
    };
    Sample s;
    s.headword = field("headword");
    const std::string& domain = field("domain");
    bool known = false;
    for (const domains::Domain d : domains::kDomains) {
      if (domains::domain_name(d) == domain) {
        s.domain = static_cast<std::int32_t>(d);
        known = true;
      }
    }
    nexa::require(known, where, "unknown domain '", domain, "' (expected PHYS, BIO, MAT or MED)");
    s.text = field("text");
    out.push_back(std::move(s));
  });
  return out;
}

// The samples of a corpus file (DIR/train.jsonl, valid.jsonl, test.jsonl, med_*.jsonl).
[[nodiscard]] inline std::vector<Sample> read_split(const std::filesystem::path& path) {
  return parse_split(examples::read_file(path, kModule), path.string());
}

// ---------------------------------------------------------------------------------------------
// The compact vocabulary.

inline constexpr std::int32_t kPad = 0;
inline constexpr std::int32_t kUnk = 1;
inline constexpr std::int32_t kBos = 2;
inline constexpr std::int32_t kEos = 3;
inline constexpr std::int32_t kTag = 4;  // [PHYS] = kTag + 0, ..., [MED] = kTag + 3
inline constexpr std::int32_t kNumSpecials = kTag + static_cast<std::int32_t>(domains::kNumDomains);
inline constexpr std::int32_t kIgnore = -100;  // nexa::train::cross_entropy's default ignore_index

inline constexpr std::array<std::string_view, kNumSpecials> kSpecialNames = {"[PAD]",  "[UNK]", "[BOS]", "[EOS]",
                                                                             "[PHYS]", "[BIO]", "[MAT]", "[MED]"};

// The compact id of a domain's tag.
[[nodiscard]] inline std::int32_t tag_id(std::int32_t domain) {
  nexa::require(domain >= 0 && domain < static_cast<std::int32_t>(domains::kNumDomains), kModule, "domain ", domain,
                " is not in [0, ", domains::kNumDomains, ")");
  return kTag + domain;
}

struct VocabOptions {
  std::size_t min_count = 1;  // a WordPiece id seen fewer times in training maps to [UNK]
  std::size_t max_size = 0;   // the whole vocabulary, specials included, at most this; 0: no limit
};

class Vocab {
 public:
  // From the training split's texts (never its tags).
  [[nodiscard]] static Vocab build(nexa::WordPieceTokenizer wordpiece, std::span<const Sample> train,
                                   const VocabOptions& options = {}) {
    nexa::require(options.min_count >= 1, kModule, "min_count must be at least 1");
    nexa::require(options.max_size == 0 || options.max_size >= static_cast<std::size_t>(kNumSpecials), kModule,
                  "max_size ", options.max_size, " leaves no room for the ", kNumSpecials, " special tokens");
    std::vector<std::size_t> counts(wordpiece.vocab_size(), 0);
    for (const Sample& s : train) {
      for (const std::int32_t id : wordpiece.tokenize_ids(s.text)) ++counts[static_cast<std::size_t>(id)];
    }
    std::vector<std::int32_t> kept;
    for (std::size_t id = 0; id < counts.size(); ++id) {
      if (counts[id] >= options.min_count && !is_wordpiece_special(wordpiece, static_cast<std::int32_t>(id))) {
        kept.push_back(static_cast<std::int32_t>(id));
      }
    }
    std::stable_sort(kept.begin(), kept.end(), [&](std::int32_t a, std::int32_t b) {
      return counts[static_cast<std::size_t>(a)] > counts[static_cast<std::size_t>(b)];
    });
    if (options.max_size != 0 && kept.size() > options.max_size - static_cast<std::size_t>(kNumSpecials)) {
      kept.resize(options.max_size - static_cast<std::size_t>(kNumSpecials));
    }
    std::vector<std::size_t> kept_counts;
    kept_counts.reserve(kept.size());
    for (const std::int32_t id : kept) kept_counts.push_back(counts[static_cast<std::size_t>(id)]);
    return Vocab(std::move(wordpiece), std::move(kept), std::move(kept_counts));
  }

  // From a file written by save(); `wordpiece` must be the vocabulary it was built with.
  [[nodiscard]] static Vocab load(const std::filesystem::path& path, nexa::WordPieceTokenizer wordpiece) {
    const std::string data = examples::read_file(path, kModule);
    const std::string file = path.string();
    nexa::require(!data.empty(), kModule, file, ": empty vocabulary file");
    nexa::require(data.back() == '\n', kModule, file, ": the last line has no newline (truncated file?)");
    nexa::require(nexa::json::is_valid_utf8(data), kModule, file, ": not valid UTF-8");
    std::vector<std::int32_t> ids;
    std::vector<bool> seen(wordpiece.vocab_size(), false);
    std::size_t start = 0;
    std::size_t line_no = 0;
    while (start < data.size()) {
      const std::size_t end = data.find('\n', start);
      const std::string_view token = std::string_view(data).substr(start, end - start);
      start = end + 1;
      ++line_no;
      const std::string where = nexa::detail::concat(file, ":", line_no);
      nexa::require(!token.empty(), kModule, where, ": empty line");
      nexa::require(token.find('\r') == std::string_view::npos, kModule, where, ": carriage return in a token");
      if (line_no <= static_cast<std::size_t>(kNumSpecials)) {
        nexa::require(token == kSpecialNames[line_no - 1], kModule, where, ": expected the special token ",
                      kSpecialNames[line_no - 1], ", got '", token, "'");
        continue;
      }
      const std::optional<std::int32_t> id = wordpiece.token_to_id(token);
      nexa::require(id.has_value(), kModule, where, ": '", token, "' is not in the WordPiece vocabulary");
      nexa::require(!is_wordpiece_special(wordpiece, *id), kModule, where, ": '", token,
                    "' is a WordPiece special token, not a vocabulary entry");
      nexa::require(!seen[static_cast<std::size_t>(*id)], kModule, where, ": '", token, "' appears twice");
      seen[static_cast<std::size_t>(*id)] = true;
      ids.push_back(*id);
    }
    nexa::require(line_no >= static_cast<std::size_t>(kNumSpecials), kModule, file, ": ", line_no,
                  " lines, fewer than the ", kNumSpecials, " special tokens");
    return Vocab(std::move(wordpiece), std::move(ids), {});
  }

  // One token per line (see the rules above); the file is written whole, then renamed.
  void save(const std::filesystem::path& path) const {
    std::string data;
    for (std::int32_t id = 0; id < size(); ++id) {
      data += token(id);
      data += '\n';
    }
    examples::write_file(path, data, kModule);
  }

  [[nodiscard]] std::int32_t size() const { return static_cast<std::int32_t>(kNumSpecials + pieces_.size()); }
  [[nodiscard]] const nexa::WordPieceTokenizer& wordpiece() const { return wordpiece_; }

  // The token of a compact id: a special's name or a WordPiece token ("##" kept).
  [[nodiscard]] std::string_view token(std::int32_t id) const {
    check_id(id);
    if (id < kNumSpecials) return kSpecialNames[static_cast<std::size_t>(id)];
    return wordpiece_.id_to_token(pieces_[static_cast<std::size_t>(id - kNumSpecials)]);
  }
  // The compact id of a token (specials by name), or nullopt when it is not an entry.
  [[nodiscard]] std::optional<std::int32_t> id_of(std::string_view token) const {
    for (std::int32_t i = 0; i < kNumSpecials; ++i)
      if (kSpecialNames[static_cast<std::size_t>(i)] == token) return i;
    const std::optional<std::int32_t> wp = wordpiece_.token_to_id(token);
    if (!wp) return std::nullopt;
    const std::int32_t c = to_compact_[static_cast<std::size_t>(*wp)];
    return c == kUnk ? std::nullopt : std::optional<std::int32_t>(c);
  }
  // The WordPiece id of a compact id above the specials.
  [[nodiscard]] std::int32_t wordpiece_id(std::int32_t id) const {
    check_id(id);
    nexa::require(id >= kNumSpecials, kModule, "compact id ", id, " is a special token, not a WordPiece entry");
    return pieces_[static_cast<std::size_t>(id - kNumSpecials)];
  }
  // The training count of each entry above the specials, in id order (built vocabularies only;
  // empty after load()).
  [[nodiscard]] const std::vector<std::size_t>& counts() const { return counts_; }

  // The compact ids of a text, without [BOS], [EOS] or a tag.
  [[nodiscard]] std::vector<std::int32_t> encode(std::string_view text) const {
    std::vector<std::int32_t> ids = wordpiece_.tokenize_ids(text);
    for (std::int32_t& id : ids) id = to_compact_[static_cast<std::size_t>(id)];
    return ids;
  }

  [[nodiscard]] std::string decode(std::span<const std::int32_t> ids, bool skip_special = true) const {
    std::string text;
    for (const std::int32_t id : ids) {
      check_id(id);
      if (skip_special && id < kNumSpecials && id != kUnk) continue;
      const std::string_view t = token(id);
      if (id >= kNumSpecials && t.starts_with("##") && !text.empty()) {
        text += t.substr(2);
      } else {
        if (!text.empty()) text += ' ';
        text += t;
      }
    }
    return nexa::clean_up_tokenization(std::move(text));
  }
  [[nodiscard]] std::string decode(const std::vector<std::int32_t>& ids, bool skip_special = true) const {
    return decode(std::span<const std::int32_t>(ids), skip_special);
  }

 private:
  Vocab(nexa::WordPieceTokenizer wordpiece, std::vector<std::int32_t> pieces, std::vector<std::size_t> counts)
      : wordpiece_(std::move(wordpiece)), pieces_(std::move(pieces)), counts_(std::move(counts)) {
    nexa::require(pieces_.size() <= static_cast<std::size_t>(INT32_MAX - kNumSpecials), kModule,
                  "too many vocabulary entries");
    to_compact_.assign(wordpiece_.vocab_size(), kUnk);
    for (std::size_t i = 0; i < pieces_.size(); ++i) {
      to_compact_[static_cast<std::size_t>(pieces_[i])] = static_cast<std::int32_t>(kNumSpecials + i);
    }
  }

  [[nodiscard]] static bool is_wordpiece_special(const nexa::WordPieceTokenizer& wp, std::int32_t id) {
    return id == wp.cls_id() || id == wp.sep_id() || id == wp.pad_id() || id == wp.unk_id() || id == wp.mask_id();
  }

  void check_id(std::int32_t id) const {
    nexa::require(id >= 0 && id < size(), kModule, "compact id ", id, " is outside the vocabulary [0, ", size(), ")");
  }

  nexa::WordPieceTokenizer wordpiece_;
  std::vector<std::int32_t> pieces_;      // compact id kNumSpecials + i -> WordPiece id pieces_[i]
  std::vector<std::size_t> counts_;       // training counts of pieces_ (build() only)
  std::vector<std::int32_t> to_compact_;  // WordPiece id -> compact id ([UNK] when not an entry)
};

// ---------------------------------------------------------------------------------------------
// Sequences.

struct SequenceOptions {
  std::size_t max_len = 64;  // ids per sequence at most, [BOS], the tag and [EOS] included
  bool with_tag = false;     // "[BOS] [TAG] ..." (training) or "[BOS] ..." (evaluation)
};

struct Sequence {
  std::vector<std::int32_t> ids;  // [BOS] ([TAG]) tokens... [EOS]
  std::int32_t domain = 0;
  bool tagged = false;
  bool truncated = false;  // the text had more tokens than fit
};

// One sequence from a text's compact ids (Vocab::encode).
[[nodiscard]] inline Sequence make_sequence(std::span<const std::int32_t> tokens, std::int32_t domain,
                                            const SequenceOptions& options = {}) {
  const std::size_t frame = options.with_tag ? 3 : 2;
  nexa::require(options.max_len >= frame, kModule, "max_len ", options.max_len, " leaves no room: a sequence",
                options.with_tag ? " with its tag" : "", " needs ", frame, " ids besides its text");
  const std::int32_t tag = tag_id(domain);
  Sequence s;
  s.domain = domain;
  s.tagged = options.with_tag;
  const std::size_t room = options.max_len - frame;
  const std::size_t n = std::min(tokens.size(), room);
  s.truncated = tokens.size() > room;
  s.ids.reserve(n + frame);
  s.ids.push_back(kBos);
  if (options.with_tag) s.ids.push_back(tag);
  s.ids.insert(s.ids.end(), tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(n));
  s.ids.push_back(kEos);
  return s;
}

// The sequences of a split, in its order.
[[nodiscard]] inline std::vector<Sequence> make_sequences(const Vocab& vocab, std::span<const Sample> samples,
                                                          const SequenceOptions& options = {}) {
  std::vector<Sequence> out;
  out.reserve(samples.size());
  for (const Sample& s : samples) out.push_back(make_sequence(vocab.encode(s.text), s.domain, options));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Batches.

struct Batch {
  nexa::Tensor<std::int32_t> ids;      // [B, S], [PAD] after each sequence
  nexa::Tensor<std::int32_t> targets;  // [B, S], the next id, kIgnore where nothing is predicted
  nexa::Tensor<std::int32_t> mask;     // [B, S], 1 on the sequence, 0 on padding
  std::vector<std::int32_t> domains;   // [B]
  std::vector<std::int32_t> lengths;   // [B], ids per sequence (mask row sums)
  std::vector<std::size_t> indices;    // [B], the sequences' indices in the batcher's list
  std::size_t tokens = 0;              // sum of lengths (the non-padding positions)
  std::size_t target_tokens = 0;       // targets other than kIgnore
  [[nodiscard]] std::size_t size() const { return domains.size(); }
};

struct BatchOptions {
  std::size_t batch_size = 32;
  std::uint64_t seed = 0;
  bool shuffle = true;       // false: the sequences' order (evaluation)
  std::size_t bucket = 1;    // > 1: sort chunks of bucket * batch_size by length (see the rules)
  bool drop_last = false;    // drop a short last batch
  bool loss_on_tag = false;  // predict the tag from [BOS] (default: target ignored)
};

// The batch of `seqs[indices]`.
[[nodiscard]] inline Batch make_batch(std::span<const Sequence> seqs, std::span<const std::size_t> indices,
                                      bool loss_on_tag = false) {
  nexa::require(!indices.empty(), kModule, "a batch needs at least one sequence");
  std::size_t longest = 0;
  for (const std::size_t i : indices) {
    nexa::require(i < seqs.size(), kModule, "sequence index ", i, " is outside [0, ", seqs.size(), ")");
    nexa::require(seqs[i].ids.size() >= 2, kModule, "sequence ", i, " has fewer than 2 ids");
    longest = std::max(longest, seqs[i].ids.size());
  }
  const std::size_t b = indices.size();
  std::vector<std::int32_t> ids(b * longest, kPad), targets(b * longest, kIgnore), mask(b * longest, 0);
  Batch out;
  for (std::size_t r = 0; r < b; ++r) {
    const Sequence& s = seqs[indices[r]];
    const std::size_t n = s.ids.size();
    for (std::size_t t = 0; t < n; ++t) {
      ids[r * longest + t] = s.ids[t];
      mask[r * longest + t] = 1;
      if (t + 1 < n && !(t == 0 && s.tagged && !loss_on_tag)) {
        targets[r * longest + t] = s.ids[t + 1];
        ++out.target_tokens;
      }
    }
    out.domains.push_back(s.domain);
    out.lengths.push_back(static_cast<std::int32_t>(n));
    out.indices.push_back(indices[r]);
    out.tokens += n;
  }
  const nexa::Shape shape{static_cast<nexa::index_t>(b), static_cast<nexa::index_t>(longest)};
  out.ids = nexa::Tensor<std::int32_t>::from_host(shape, ids);
  out.targets = nexa::Tensor<std::int32_t>::from_host(shape, targets);
  out.mask = nexa::Tensor<std::int32_t>::from_host(shape, mask);
  return out;
}

// A deterministic permutation of [0, n): Fisher-Yates on RandomStream(seed, stream_id).
[[nodiscard]] inline std::vector<std::size_t> permutation(std::size_t n, std::uint64_t seed, std::uint64_t stream_id) {
  std::vector<std::size_t> p(n);
  std::iota(p.begin(), p.end(), std::size_t{0});
  const nexa::RandomStream rs(seed, stream_id);
  for (std::size_t i = n; i > 1; --i) {
    const auto bits = rs.bits(i - 1);
    const std::uint64_t r = (std::uint64_t{bits[0]} << 32) | bits[1];
    std::swap(p[i - 1], p[static_cast<std::size_t>(r % i)]);
  }
  return p;
}

class Batcher {
 public:
  Batcher(std::vector<Sequence> seqs, BatchOptions options) : seqs_(std::move(seqs)), options_(options) {
    nexa::require(options_.batch_size >= 1, kModule, "batch_size must be at least 1");
    nexa::require(options_.bucket >= 1, kModule, "bucket must be at least 1");
  }

  [[nodiscard]] const std::vector<Sequence>& sequences() const { return seqs_; }
  [[nodiscard]] const BatchOptions& options() const { return options_; }

  // The batches of epoch `epoch`, as index lists into sequences().
  [[nodiscard]] std::vector<std::vector<std::size_t>> epoch(std::uint64_t epoch) const {
    std::vector<std::size_t> order;
    if (options_.shuffle) {
      order = permutation(seqs_.size(), options_.seed, epoch);
    } else {
      order.resize(seqs_.size());
      std::iota(order.begin(), order.end(), std::size_t{0});
    }
    const std::size_t bs = options_.batch_size;
    if (options_.bucket > 1) {
      const std::size_t chunk = options_.bucket * bs;
      for (std::size_t c = 0; c < order.size(); c += chunk) {
        const auto first = order.begin() + static_cast<std::ptrdiff_t>(c);
        const auto last = order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), c + chunk));
        std::stable_sort(first, last,
                         [&](std::size_t a, std::size_t b) { return seqs_[a].ids.size() < seqs_[b].ids.size(); });
      }
    }
    std::vector<std::vector<std::size_t>> batches;
    for (std::size_t i = 0; i < order.size(); i += bs) {
      const std::size_t end = std::min(order.size(), i + bs);
      if (end - i < bs && options_.drop_last) break;
      batches.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(i),
                           order.begin() + static_cast<std::ptrdiff_t>(end));
    }
    if (options_.bucket > 1 && options_.shuffle) {
      const std::vector<std::size_t> p = permutation(batches.size(), options_.seed, (std::uint64_t{1} << 63) + epoch);
      std::vector<std::vector<std::size_t>> shuffled;
      shuffled.reserve(batches.size());
      for (const std::size_t i : p) shuffled.push_back(std::move(batches[i]));
      batches = std::move(shuffled);
    }
    return batches;
  }

  [[nodiscard]] Batch batch(std::span<const std::size_t> indices) const {
    return make_batch(seqs_, indices, options_.loss_on_tag);
  }

  // The number of batches per epoch.
  [[nodiscard]] std::size_t batches_per_epoch() const {
    const std::size_t bs = options_.batch_size;
    return options_.drop_last ? seqs_.size() / bs : (seqs_.size() + bs - 1) / bs;
  }

 private:
  std::vector<Sequence> seqs_;
  BatchOptions options_;
};

// ---------------------------------------------------------------------------------------------
// Statistics.

struct LengthStats {
  std::size_t count = 0;
  double mean = 0;
  std::size_t min = 0, median = 0, p95 = 0, max = 0;  // nearest rank: the ceil(q * n)-th smallest
};

[[nodiscard]] inline LengthStats length_stats(std::vector<std::size_t> lengths) {
  LengthStats s;
  s.count = lengths.size();
  if (lengths.empty()) return s;
  std::sort(lengths.begin(), lengths.end());
  const auto rank = [&](double q) {
    const auto k = static_cast<std::size_t>(std::ceil(q * static_cast<double>(lengths.size())));
    return lengths[std::max<std::size_t>(k, 1) - 1];
  };
  s.mean = static_cast<double>(std::accumulate(lengths.begin(), lengths.end(), std::size_t{0})) /
           static_cast<double>(lengths.size());
  s.min = lengths.front();
  s.max = lengths.back();
  s.median = rank(0.5);
  s.p95 = rank(0.95);
  return s;
}

}  // namespace lm_data
