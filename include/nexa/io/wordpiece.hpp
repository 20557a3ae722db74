#pragma once
// WordPieceTokenizer: BERT's tokenizer, matching Hugging Face's slow (Python) BertTokenizer
// (transformers' BasicTokenizer + WordpieceTokenizer, BertTokenizerLegacy since transformers 5)
// token for token:
//   1. special tokens ([CLS], [SEP], [PAD], [UNK], [MASK]) are cut out of the text first and kept
//      whole, as HF does for its added special tokens;
//   2. each remaining piece is cleaned (code point 0, U+FFFD and category C* dropped, whitespace
//      -> ' '), CJK ideographs are surrounded by spaces, the piece is NFC-normalised and split on
//      whitespace (Python's str.split(): also U+2028/U+2029);
//   3. each word is lower-cased (Python's str.lower(), final sigma included), NFD-normalised with
//      its Mn marks dropped (strip_accents), then split so that every punctuation character
//      (ASCII symbols and category P*) stands alone;
//   4. WordPiece: greedy longest match first, "##" continuations, [UNK] for a word longer than
//      max_input_chars_per_word code points or with a piece not in the vocabulary.
// encode() adds [CLS] A [SEP] (B [SEP]), truncates with HF's "longest_first" strategy and pads;
// encode_batch() returns [B, L] int32 tensors. Unicode data comes from unicode_tables.hpp
// (generated from Python's unicodedata). Errors are nexa::Error; nothing is printed.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "nexa/core/error.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/io/file.hpp"
#include "nexa/io/unicode_tables.hpp"
#include "nexa/io/utf8.hpp"

namespace nexa {

// ---------------------------------------------------------------------------------------------
// Unicode helpers (Python semantics), usable on their own.
namespace unicode {

namespace detail {
template <class Entry>
[[nodiscard]] constexpr bool in_ranges(std::span<const Entry> table, char32_t c) {
  const auto it =
      std::upper_bound(table.begin(), table.end(), c, [](char32_t v, const Entry& r) { return v < r.first; });
  return it != table.begin() && c <= std::prev(it)->last;
}
inline constexpr char32_t hangul_s_base = 0xAC00, hangul_l_base = 0x1100, hangul_v_base = 0x1161,
                          hangul_t_base = 0x11A7;
inline constexpr char32_t hangul_l_count = 19, hangul_v_count = 21, hangul_t_count = 28,
                          hangul_n_count = hangul_v_count * hangul_t_count,
                          hangul_s_count = hangul_l_count * hangul_n_count;
}  // namespace detail

// General categories as unicodedata.category() reports them.
[[nodiscard]] inline bool is_category_c(char32_t c) { return detail::in_ranges<tables::Range>(tables::category_c, c); }
[[nodiscard]] inline bool is_category_zs(char32_t c) {
  return detail::in_ranges<tables::Range>(tables::category_zs, c);
}
[[nodiscard]] inline bool is_category_mn(char32_t c) {
  return detail::in_ranges<tables::Range>(tables::category_mn, c);
}
[[nodiscard]] inline bool is_category_p(char32_t c) { return detail::in_ranges<tables::Range>(tables::category_p, c); }
// str.isspace().
[[nodiscard]] inline bool is_python_space(char32_t c) {
  return detail::in_ranges<tables::Range>(tables::python_space, c);
}
// Canonical combining class (unicodedata.combining()).
[[nodiscard]] inline int combining_class(char32_t c) {
  const std::span<const tables::CccRange> t(tables::combining_class);
  const auto it = std::upper_bound(t.begin(), t.end(), c, [](char32_t v, const auto& r) { return v < r.first; });
  return it != t.begin() && c <= std::prev(it)->last ? std::prev(it)->ccc : 0;
}

// Appends the full canonical decomposition of c (recursive, Hangul included), not yet reordered.
inline void append_decomposition(char32_t c, std::u32string& out) {
  using namespace detail;
  if (c >= hangul_s_base && c < hangul_s_base + hangul_s_count) {
    const char32_t s = c - hangul_s_base;
    out += hangul_l_base + s / hangul_n_count;
    out += hangul_v_base + (s % hangul_n_count) / hangul_t_count;
    if (s % hangul_t_count) out += hangul_t_base + s % hangul_t_count;
    return;
  }
  const std::span<const tables::Decomposition> t(tables::decompositions);
  const auto it = std::lower_bound(t.begin(), t.end(), c, [](const auto& d, char32_t v) { return d.cp < v; });
  if (it == t.end() || it->cp != c) {
    out += c;
    return;
  }
  append_decomposition(it->first, out);
  if (it->second) append_decomposition(it->second, out);
}

// unicodedata.normalize("NFD", s): full canonical decomposition, then canonical ordering.
[[nodiscard]] inline std::u32string nfd(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (const char32_t c : s) append_decomposition(c, out);
  // Canonical ordering: a stable sort by combining class within each run of non-starters.
  for (std::size_t i = 0; i < out.size();) {
    if (combining_class(out[i]) == 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < out.size() && combining_class(out[j]) != 0) ++j;
    if (j - i > 1) {
      std::stable_sort(out.begin() + static_cast<std::ptrdiff_t>(i), out.begin() + static_cast<std::ptrdiff_t>(j),
                       [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    }
    i = j;
  }
  return out;
}

// The primary composite of (a, b), or 0.
[[nodiscard]] inline char32_t compose_pair(char32_t a, char32_t b) {
  using namespace detail;
  if (a >= hangul_l_base && a < hangul_l_base + hangul_l_count && b >= hangul_v_base &&
      b < hangul_v_base + hangul_v_count) {
    return hangul_s_base + ((a - hangul_l_base) * hangul_v_count + (b - hangul_v_base)) * hangul_t_count;
  }
  if (a >= hangul_s_base && a < hangul_s_base + hangul_s_count && (a - hangul_s_base) % hangul_t_count == 0 &&
      b > hangul_t_base && b < hangul_t_base + hangul_t_count) {
    return a + (b - hangul_t_base);
  }
  const std::span<const std::uint16_t> t(tables::composites);
  const auto key = [](std::uint16_t i) {
    const auto& d = tables::decompositions[i];
    return std::pair<char32_t, char32_t>(d.first, d.second);
  };
  const std::pair<char32_t, char32_t> want(a, b);
  const auto it =
      std::lower_bound(t.begin(), t.end(), want, [&](std::uint16_t i, const auto& w) { return key(i) < w; });
  return it != t.end() && key(*it) == want ? tables::decompositions[*it].cp : 0;
}

// unicodedata.normalize("NFC", s): NFD, then canonical composition.
[[nodiscard]] inline std::u32string nfc(std::u32string_view s) {
  std::u32string d = nfd(s);
  std::u32string out;
  out.reserve(d.size());
  std::size_t starter = std::u32string::npos;
  int last_ccc = 0;
  for (const char32_t c : d) {
    const int ccc = combining_class(c);
    if (starter != std::u32string::npos && (starter + 1 == out.size() || last_ccc < ccc)) {
      if (const char32_t composite = compose_pair(out[starter], c)) {
        out[starter] = composite;
        continue;
      }
    }
    if (ccc == 0) starter = out.size();
    last_ccc = ccc;
    out += c;
  }
  return out;
}

// Appends Python's lower-case mapping of one code point (final sigma aside).
inline void append_lower(char32_t c, std::u32string& out) {
  for (const auto& m : tables::lower_multi) {
    if (m.cp == c) {
      for (const char32_t x : m.to)
        if (x) out += x;
      return;
    }
  }
  const std::span<const tables::LowerRun> t(tables::lower_runs);
  const auto it = std::upper_bound(t.begin(), t.end(), c, [](char32_t v, const auto& r) { return v < r.first; });
  if (it != t.begin()) {
    const auto& r = *std::prev(it);
    if (c <= r.last && (c - r.first) % r.step == 0) {
      out += static_cast<char32_t>(static_cast<std::int64_t>(c) + r.delta);
      return;
    }
  }
  out += c;
}

// str.lower(): the full lower-case mapping, with U+03A3 becoming final sigma (U+03C2) after a
// cased letter and not before one (Case_Ignorable characters skipped on both sides).
[[nodiscard]] inline std::u32string python_lower(std::u32string_view s) {
  const auto ignorable = [](char32_t c) { return detail::in_ranges<tables::Range>(tables::case_ignorable, c); };
  const auto cased = [](char32_t c) { return detail::in_ranges<tables::Range>(tables::cased, c); };
  std::u32string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != U'\u03A3') {
      append_lower(s[i], out);
      continue;
    }
    std::size_t j = i;
    while (j > 0 && ignorable(s[j - 1])) --j;
    bool final_sigma = j > 0 && cased(s[j - 1]);
    if (final_sigma) {
      std::size_t k = i + 1;
      while (k < s.size() && ignorable(s[k])) ++k;
      final_sigma = k == s.size() || !cased(s[k]);
    }
    out += final_sigma ? U'\u03C2' : U'\u03C3';
  }
  return out;
}

// Strict UTF-8 decoding (no overlong forms, surrogates or values above U+10FFFF); an error names
// the byte offset of the bad sequence and starts with `context`.
[[nodiscard]] inline std::u32string decode_utf8(std::string_view s, std::string_view context = "utf8") {
  std::u32string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += static_cast<char32_t>(c);
      ++i;
      continue;
    }
    std::size_t len = 0;
    char32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07u;
    }
    bool ok = len != 0 && s.size() - i >= len;
    for (std::size_t k = 1; ok && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      ok = (cc & 0xC0) == 0x80;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    constexpr char32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    ok = ok && cp >= min_for_len[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    if (!ok) throw Error(nexa::detail::concat(context, ": invalid UTF-8 at byte ", i));
    out += cp;
    i += len;
  }
  return out;
}

[[nodiscard]] inline std::string encode_utf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char32_t c : s) append_utf8(c, out);
  return out;
}

}  // namespace unicode

// ---------------------------------------------------------------------------------------------

struct WordPieceOptions {
  bool lower_case = true;
  // Strip accents (NFD, then drop Mn); unset: the same as lower_case, as in the original BERT.
  std::optional<bool> strip_accents = std::nullopt;
  bool tokenize_chinese_chars = true;
  std::size_t max_input_chars_per_word = 100;
  std::string unk_token = "[UNK]";
  std::string sep_token = "[SEP]";
  std::string pad_token = "[PAD]";
  std::string cls_token = "[CLS]";
  std::string mask_token = "[MASK]";
};

// Longest: to the longest sequence of the batch (nothing for a single encode()); MaxLength: to
// EncodeOptions::max_length; None: no padding (encode_batch then needs equal lengths).
enum class Padding { None, Longest, MaxLength };

struct EncodeOptions {
  std::size_t max_length = 512;  // the checkpoints' model_max_length
  bool truncation = true;        // HF "longest_first" down to max_length
  Padding padding = Padding::Longest;
};

// `s` with every occurrence of `from` replaced by `to`, left to right.
[[nodiscard]] inline std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  std::size_t pos = 0;
  for (std::size_t hit; (hit = s.find(from, pos)) != std::string_view::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out += to;
  }
  out.append(s, pos);
  return out;
}

// Hugging Face's clean_up_tokenization, the last step of BertTokenizer.decode: " ." -> "." etc.
[[nodiscard]] inline std::string clean_up_tokenization(std::string text) {
  constexpr std::pair<std::string_view, std::string_view> rules[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : rules) text = replace_all(text, from, to);
  return text;
}

struct DecodeOptions {
  bool skip_special_tokens = false;
  bool clean_up_tokenization_spaces = true;  // BertTokenizer's default
};

struct Encoding {
  std::vector<std::int32_t> input_ids;
  std::vector<std::int32_t> token_type_ids;
  std::vector<std::int32_t> attention_mask;
};

// [B, L] each, padded rows have attention 0, token type 0 and the [PAD] id.
struct BatchEncoding {
  Tensor<std::int32_t> input_ids;
  Tensor<std::int32_t> token_type_ids;
  Tensor<std::int32_t> attention_mask;
};

class WordPieceTokenizer {
 public:
  // One token per line (id = line index; "\n", "\r\n" and "\r" end lines, as Python's text mode).
  [[nodiscard]] static WordPieceTokenizer from_vocab_file(const std::filesystem::path& path,
                                                          WordPieceOptions options = {}) {
    const std::string context = nexa::detail::io_context("WordPieceTokenizer", path);
    nexa::detail::InputFile file(path, context);
    std::string bytes(static_cast<std::size_t>(file.size()), '\0');
    file.read(0, bytes.data(), bytes.size(), "the vocabulary");
    (void)unicode::decode_utf8(bytes, context);
    std::vector<std::string> tokens;
    std::size_t start = 0;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      if (bytes[i] != '\n' && bytes[i] != '\r') continue;
      tokens.emplace_back(bytes, start, i - start);
      if (bytes[i] == '\r' && i + 1 < bytes.size() && bytes[i + 1] == '\n') ++i;
      start = i + 1;
    }
    if (start < bytes.size()) tokens.emplace_back(bytes, start, bytes.size() - start);
    return WordPieceTokenizer(std::move(tokens), std::move(options), context);
  }

  // From tokens in id order.
  [[nodiscard]] static WordPieceTokenizer from_vocab(std::vector<std::string> tokens, WordPieceOptions options = {}) {
    return WordPieceTokenizer(std::move(tokens), std::move(options), "WordPieceTokenizer");
  }

  [[nodiscard]] const WordPieceOptions& options() const { return options_; }
  [[nodiscard]] std::size_t vocab_size() const { return vocab_.size(); }
  [[nodiscard]] std::int32_t cls_id() const { return special_ids_[0]; }
  [[nodiscard]] std::int32_t sep_id() const { return special_ids_[1]; }
  [[nodiscard]] std::int32_t pad_id() const { return special_ids_[2]; }
  [[nodiscard]] std::int32_t unk_id() const { return special_ids_[3]; }
  [[nodiscard]] std::int32_t mask_id() const { return special_ids_[4]; }

  // The id of a vocabulary entry (the last line holding it), or nullopt.
  [[nodiscard]] std::optional<std::int32_t> token_to_id(std::string_view token) const {
    const auto it = ids_.find(std::string(token));
    if (it == ids_.end()) return std::nullopt;
    return it->second;
  }
  [[nodiscard]] const std::string& id_to_token(std::int32_t id) const {
    require(id >= 0 && static_cast<std::size_t>(id) < vocab_.size(), "WordPieceTokenizer", "id ", id,
            " is outside the vocabulary [0, ", vocab_.size(), ")");
    return vocab_[static_cast<std::size_t>(id)];
  }

  // Words after basic tokenization (cleaning, lower-casing, accent stripping, punctuation
  // splitting), before WordPiece.
  [[nodiscard]] std::vector<std::string> basic_tokenize(std::string_view text) const {
    std::vector<std::string> words;
    for_each_word(text, [&](std::u32string_view word, bool) { words.push_back(unicode::encode_utf8(word)); });
    return words;
  }

  // WordPiece tokens, as BertTokenizer.tokenize().
  [[nodiscard]] std::vector<std::string> tokenize(std::string_view text) const {
    std::vector<std::string> tokens;
    for_each_piece(text, [&](std::int32_t id) { tokens.push_back(vocab_[static_cast<std::size_t>(id)]); });
    return tokens;
  }

  // The token ids of `text`, without special tokens added.
  [[nodiscard]] std::vector<std::int32_t> tokenize_ids(std::string_view text) const {
    std::vector<std::int32_t> ids;
    for_each_piece(text, [&](std::int32_t id) { ids.push_back(id); });
    return ids;
  }

  // [CLS] A [SEP] (B [SEP]), with token types 0 for A (and its [CLS], [SEP]) and 1 for B.
  [[nodiscard]] Encoding encode(std::string_view text_a, std::optional<std::string_view> text_b,
                                const EncodeOptions& options = {}) const {
    Encoding e = build(tokenize_ids(text_a), text_b ? std::optional(tokenize_ids(*text_b)) : std::nullopt, options);
    if (options.padding == Padding::MaxLength) pad_to(e, options.max_length);
    return e;
  }
  [[nodiscard]] Encoding encode(std::string_view text, const EncodeOptions& options = {}) const {
    return encode(text, std::nullopt, options);
  }

  [[nodiscard]] BatchEncoding encode_batch(std::span<const std::string> texts,
                                           const EncodeOptions& options = {}) const {
    std::vector<Encoding> rows;
    rows.reserve(texts.size());
    for (const auto& t : texts) rows.push_back(build(tokenize_ids(t), std::nullopt, options));
    return stack(std::move(rows), options);
  }
  [[nodiscard]] BatchEncoding encode_batch(std::span<const std::string> texts_a, std::span<const std::string> texts_b,
                                           const EncodeOptions& options = {}) const {
    require(texts_a.size() == texts_b.size(), "WordPieceTokenizer", "encode_batch got ", texts_a.size(),
            " first texts but ", texts_b.size(), " second texts");
    std::vector<Encoding> rows;
    rows.reserve(texts_a.size());
    for (std::size_t i = 0; i < texts_a.size(); ++i)
      rows.push_back(build(tokenize_ids(texts_a[i]), tokenize_ids(texts_b[i]), options));
    return stack(std::move(rows), options);
  }
  [[nodiscard]] BatchEncoding encode_batch(const std::vector<std::string>& texts,
                                           const EncodeOptions& options = {}) const {
    return encode_batch(std::span<const std::string>(texts), options);
  }
  [[nodiscard]] BatchEncoding encode_batch(const std::vector<std::string>& texts_a,
                                           const std::vector<std::string>& texts_b,
                                           const EncodeOptions& options = {}) const {
    return encode_batch(std::span<const std::string>(texts_a), std::span<const std::string>(texts_b), options);
  }

  // As BertTokenizer.decode(): tokens joined by spaces, " ##" removed, stripped, then HF's
  // clean_up_tokenization (" ." -> "." and so on).
  [[nodiscard]] std::string decode(std::span<const std::int32_t> ids, const DecodeOptions& options = {}) const {
    std::string text;
    bool first = true;
    for (const std::int32_t id : ids) {
      const std::string& token = id_to_token(id);
      if (options.skip_special_tokens && is_special_id(id)) continue;
      if (!first) text += ' ';
      text += token;
      first = false;
    }
    text = replace_all(text, " ##", "");
    const std::u32string u = unicode::decode_utf8(text, "WordPieceTokenizer::decode");
    std::size_t b = 0, e = u.size();
    while (b < e && unicode::is_python_space(u[b])) ++b;
    while (e > b && unicode::is_python_space(u[e - 1])) --e;
    text = unicode::encode_utf8(std::u32string_view(u).substr(b, e - b));
    if (options.clean_up_tokenization_spaces) text = clean_up_tokenization(std::move(text));
    return text;
  }
  [[nodiscard]] std::string decode(const std::vector<std::int32_t>& ids, const DecodeOptions& options = {}) const {
    return decode(std::span<const std::int32_t>(ids), options);
  }

 private:
  WordPieceTokenizer(std::vector<std::string> tokens, WordPieceOptions options, const std::string& context)
      : options_(std::move(options)), vocab_(std::move(tokens)) {
    require(!vocab_.empty(), context, "the vocabulary is empty");
    require(vocab_.size() <= static_cast<std::size_t>(INT32_MAX), context,
            "the vocabulary has more than 2^31 - 1 tokens");
    require(options_.max_input_chars_per_word > 0, context, "max_input_chars_per_word must be positive");
    ids_.reserve(vocab_.size());
    for (std::size_t i = 0; i < vocab_.size(); ++i) ids_[vocab_[i]] = static_cast<std::int32_t>(i);
    const std::string* names[5] = {&options_.cls_token, &options_.sep_token, &options_.pad_token, &options_.unk_token,
                                   &options_.mask_token};
    for (int k = 0; k < 5; ++k) {
      const auto id = token_to_id(*names[k]);
      require(id.has_value(), context, "the special token ", *names[k], " is not in the vocabulary");
      require(!names[k]->empty(), context, "a special token is empty");
      special_ids_[k] = *id;
      specials_.push_back(unicode::decode_utf8(*names[k], context));
    }
  }

  [[nodiscard]] bool is_special_id(std::int32_t id) const {
    return std::find(std::begin(special_ids_), std::end(special_ids_), id) != std::end(special_ids_);
  }
  [[nodiscard]] bool is_special(std::u32string_view word) const {
    return std::find(specials_.begin(), specials_.end(), word) != specials_.end();
  }

  [[nodiscard]] static bool is_chinese_char(char32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
  }
  [[nodiscard]] static bool is_punctuation(char32_t c) {
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126) ||
           unicode::is_category_p(c);
  }

  // Calls f(word, special) for every basic token of `text` in order; special tokens found in the
  // text (HF's added-token split) come through whole with special = true.
  template <class F>
  void for_each_word(std::string_view text, F&& f) const {
    const std::u32string u = unicode::decode_utf8(text, "WordPieceTokenizer");
    const std::u32string_view all(u);
    std::size_t segment = 0;
    for (std::size_t i = 0; i < all.size();) {
      std::size_t match = 0;
      for (const auto& s : specials_)
        if (s.size() > match && all.substr(i, s.size()) == s) match = s.size();
      if (!match) {
        ++i;
        continue;
      }
      basic_words(all.substr(segment, i - segment), f);
      f(all.substr(i, match), true);
      i += match;
      segment = i;
    }
    basic_words(all.substr(segment), f);
  }

  // BasicTokenizer.tokenize on one piece of text free of special tokens.
  template <class F>
  void basic_words(std::u32string_view text, F& f) const {
    if (text.empty()) return;
    std::u32string clean;
    clean.reserve(text.size());
    for (const char32_t c : text) {
      if (c == 0 || c == 0xFFFD) continue;
      if (c == U' ' || c == U'\t' || c == U'\n' || c == U'\r' || unicode::is_category_zs(c)) {
        clean += U' ';
      } else if (unicode::is_category_c(c)) {
        continue;
      } else if (options_.tokenize_chinese_chars && is_chinese_char(c)) {
        clean += U' ';
        clean += c;
        clean += U' ';
      } else {
        clean += c;
      }
    }
    const std::u32string normalized = unicode::nfc(clean);
    const bool strip = options_.strip_accents.value_or(options_.lower_case);
    std::size_t i = 0;
    while (i < normalized.size()) {
      while (i < normalized.size() && unicode::is_python_space(normalized[i])) ++i;
      std::size_t j = i;
      while (j < normalized.size() && !unicode::is_python_space(normalized[j])) ++j;
      if (j == i) break;
      const std::u32string_view word = std::u32string_view(normalized).substr(i, j - i);
      i = j;
      if (is_special(word)) {  // never_split: kept as it is
        f(word, true);
        continue;
      }
      std::u32string w(word);
      if (options_.lower_case) w = unicode::python_lower(w);
      if (strip) {
        std::u32string kept;
        for (const char32_t c : unicode::nfd(w))
          if (!unicode::is_category_mn(c)) kept += c;
        w = std::move(kept);
      }
      // Every punctuation character stands alone.
      std::size_t start = 0;
      for (std::size_t k = 0; k < w.size(); ++k) {
        if (!is_punctuation(w[k])) continue;
        if (k > start) f(std::u32string_view(w).substr(start, k - start), false);
        f(std::u32string_view(w).substr(k, 1), false);
        start = k + 1;
      }
      if (start < w.size()) f(std::u32string_view(w).substr(start), false);
    }
  }

  // Calls f(id) for every WordPiece token of `text`.
  template <class F>
  void for_each_piece(std::string_view text, F&& f) const {
    std::string utf8, key;
    std::vector<std::size_t> offsets;
    std::vector<std::int32_t> pieces;
    for_each_word(text, [&](std::u32string_view word, bool special) {
      if (special) {
        if (const auto id = token_to_id(unicode::encode_utf8(word))) {
          f(*id);
          return;
        }
      }
      if (word.size() > options_.max_input_chars_per_word) {
        f(unk_id());
        return;
      }
      utf8.clear();
      offsets.clear();
      for (const char32_t c : word) {
        offsets.push_back(utf8.size());
        unicode::append_utf8(c, utf8);
      }
      offsets.push_back(utf8.size());
      const std::size_t n = word.size();
      pieces.clear();
      bool bad = false;
      for (std::size_t start = 0; start < n && !bad;) {
        std::size_t end = n;
        std::optional<std::int32_t> found;
        for (; end > start; --end) {
          key.assign(start > 0 ? "##" : "");
          key.append(utf8, offsets[start], offsets[end] - offsets[start]);
          const auto it = ids_.find(key);
          if (it != ids_.end()) {
            found = it->second;
            break;
          }
        }
        if (!found) {
          bad = true;
        } else {
          pieces.push_back(*found);
          start = end;
        }
      }
      if (bad) {
        f(unk_id());
      } else {
        for (const std::int32_t id : pieces) f(id);
      }
    });
  }

  // Truncation (longest_first) and special tokens; no padding.
  [[nodiscard]] Encoding build(std::vector<std::int32_t> a, std::optional<std::vector<std::int32_t>> b,
                               const EncodeOptions& options) const {
    const std::size_t specials = b ? 3 : 2;
    const std::size_t total = a.size() + (b ? b->size() : 0) + specials;
    if (options.truncation && total > options.max_length) {
      require(options.max_length >= specials, "WordPieceTokenizer", "max_length ", options.max_length,
              " leaves no room: ", b ? "a pair needs" : "a single sequence needs", " ", specials, " special tokens");
      const std::size_t remove = total - options.max_length;
      if (!b) {
        a.resize(a.size() - remove);
      } else {
        // transformers' truncate_sequences, LONGEST_FIRST with a pair.
        const std::size_t la = a.size(), lb = b->size();
        const std::size_t first_remove = std::min(la > lb ? la - lb : lb - la, remove);
        const std::size_t second_remove = remove - first_remove;
        std::size_t from_a = 0, from_b = 0;
        if (la > lb) {
          from_a = first_remove + second_remove / 2;
          from_b = second_remove - second_remove / 2;
        } else {
          from_a = second_remove / 2;
          from_b = first_remove + second_remove - second_remove / 2;
        }
        a.resize(la - from_a);
        b->resize(lb - from_b);
      }
    }
    Encoding e;
    e.input_ids.push_back(cls_id());
    e.input_ids.insert(e.input_ids.end(), a.begin(), a.end());
    e.input_ids.push_back(sep_id());
    e.token_type_ids.assign(e.input_ids.size(), 0);
    if (b) {
      e.input_ids.insert(e.input_ids.end(), b->begin(), b->end());
      e.input_ids.push_back(sep_id());
      e.token_type_ids.resize(e.input_ids.size(), 1);
    }
    e.attention_mask.assign(e.input_ids.size(), 1);
    return e;
  }

  void pad_to(Encoding& e, std::size_t length) const {
    if (e.input_ids.size() >= length) return;
    e.input_ids.resize(length, pad_id());
    e.token_type_ids.resize(length, 0);
    e.attention_mask.resize(length, 0);
  }

  [[nodiscard]] BatchEncoding stack(std::vector<Encoding> rows, const EncodeOptions& options) const {
    std::size_t longest = 0;
    for (const auto& r : rows) longest = std::max(longest, r.input_ids.size());
    std::size_t length = longest;
    if (options.padding == Padding::MaxLength) {
      require(longest <= options.max_length, "WordPieceTokenizer", "encode_batch: a sequence of ", longest,
              " tokens exceeds max_length ", options.max_length,
              " (truncation is off), so rows cannot be padded to it");
      length = options.max_length;
    }
    for (std::size_t i = 0; i < rows.size(); ++i) {
      require(options.padding != Padding::None || rows[i].input_ids.size() == longest, "WordPieceTokenizer",
              "encode_batch without padding needs equal lengths, but row ", i, " has ", rows[i].input_ids.size(),
              " tokens and another ", longest, " (use Padding::Longest)");
      pad_to(rows[i], length);
    }
    const auto to_tensor = [&](std::vector<std::int32_t> Encoding::*field) {
      std::vector<std::int32_t> flat;
      flat.reserve(rows.size() * length);
      for (const auto& r : rows) flat.insert(flat.end(), (r.*field).begin(), (r.*field).end());
      return Tensor<std::int32_t>::from_host(Shape{static_cast<index_t>(rows.size()), static_cast<index_t>(length)},
                                             flat);
    };
    return {to_tensor(&Encoding::input_ids), to_tensor(&Encoding::token_type_ids),
            to_tensor(&Encoding::attention_mask)};
  }

  WordPieceOptions options_;
  std::vector<std::string> vocab_;
  std::unordered_map<std::string, std::int32_t> ids_;
  std::int32_t special_ids_[5] = {};  // cls, sep, pad, unk, mask
  std::vector<std::u32string> specials_;
};

}  // namespace nexa
