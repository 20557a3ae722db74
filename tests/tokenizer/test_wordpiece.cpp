// WordPieceTokenizer: a hand-written vocabulary (greedy longest match, "##" pieces, [UNK] rules,
// truncation, padding, errors), then the all-MiniLM-L6-v2 vocabulary against Hugging Face's slow
// BertTokenizer (tests/fixtures/tokenizer/expected.json, written by make_fixtures.py).
#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nexa/io/wordpiece.hpp"
#include "tokenizer/tokenizer_test_util.hpp"

using nexa::EncodeOptions;
using nexa::Padding;
using nexa::WordPieceTokenizer;
using namespace nexa::tokenizer_testing;
namespace json = nexa::json;
using Ids = std::vector<std::int32_t>;
using Tokens = std::vector<std::string>;

namespace {

const Tokens tiny_vocab = {
    "[PAD]", "[UNK]", "[CLS]",  "[SEP]", "[MASK]",                    // 0-4
    "un",    "##aff", "##able", "a",     "##a",    "##aa",  "hello",  // 5-11
    "world", ",",     "!",      "run",   "##n",    "##ing", "中",     // 12-18
    "文",    "cafe",  "b",      "##b",   "c",      "x",     "unaff",  // 19-25
};

WordPieceTokenizer tiny(nexa::WordPieceOptions options = {}) {
  return WordPieceTokenizer::from_vocab(tiny_vocab, options);
}

Ids row(const nexa::Tensor<std::int32_t>& t, nexa::index_t r) {
  Ids out;
  for (nexa::index_t c = 0; c < t.dim(1); ++c) out.push_back(t(r, c));
  return out;
}

}  // namespace

TEST_CASE("wordpiece: greedy longest match first with ## continuations") {
  const WordPieceTokenizer tok = tiny();
  CHECK(tok.vocab_size() == tiny_vocab.size());
  CHECK(tok.cls_id() == 2);
  CHECK(tok.sep_id() == 3);
  CHECK(tok.pad_id() == 0);
  CHECK(tok.unk_id() == 1);
  CHECK(tok.mask_id() == 4);
  // "unaff" is in the vocabulary, so the longest first piece wins over "un" + "##aff".
  CHECK(tok.tokenize("unaffable") == Tokens{"unaff", "##able"});
  CHECK(tok.tokenize("aaaaa") == Tokens{"a", "##aa", "##aa"});
  CHECK(tok.tokenize("aaaa") == Tokens{"a", "##aa", "##a"});
  CHECK(tok.tokenize("runnning") == Tokens{"run", "##n", "##n", "##ing"});
  CHECK(tok.tokenize("Hello, WORLD!") == Tokens{"hello", ",", "world", "!"});
  CHECK(tok.tokenize("  hello\t\nworld  ") == Tokens{"hello", "world"});
  CHECK(tok.tokenize("中文") == Tokens{"中", "文"});
  CHECK(tok.tokenize("x中x") == Tokens{"x", "中", "x"});
  CHECK(tok.tokenize("CAF\xC3\x89") == Tokens{"cafe"});  // lower-cased and accent stripped
  CHECK(tok.tokenize("") == Tokens{});
  CHECK(tok.tokenize(" \t\n ") == Tokens{});
  CHECK(tok.tokenize_ids("unaffable world") == Ids{25, 7, 12});
}

TEST_CASE("wordpiece: [UNK] for an unmatched piece or an over-long word") {
  const WordPieceTokenizer tok = tiny();
  CHECK(tok.tokenize("unaffablez") == Tokens{"[UNK]"});  // the whole word, not just its tail
  CHECK(tok.tokenize("zzz hello") == Tokens{"[UNK]", "hello"});
  CHECK(tok.tokenize("\xF0\x9F\xA4\x96") == Tokens{"[UNK]"});
  CHECK(tok.tokenize(std::string(100, 'a')).size() == 51);  // a, ##aa * 49, ##a
  CHECK(tok.tokenize(std::string(101, 'a')) == Tokens{"[UNK]"});
  const WordPieceTokenizer short_words = tiny({.max_input_chars_per_word = 3});
  CHECK(short_words.tokenize("aaa") == Tokens{"a", "##aa"});
  CHECK(short_words.tokenize("aaaa b") == Tokens{"[UNK]", "b"});
  CHECK(short_words.tokenize("\xC3\xA1\xC3\xA1\xC3\xA1") == Tokens{"a", "##aa"});  // counts code points
}

TEST_CASE("wordpiece: special tokens in the text stay whole") {
  const WordPieceTokenizer tok = tiny();
  CHECK(tok.tokenize("hello[MASK]world") == Tokens{"hello", "[MASK]", "world"});
  CHECK(tok.tokenize("[CLS] a [SEP]") == Tokens{"[CLS]", "a", "[SEP]"});
  CHECK(tok.tokenize("[[SEP]]") == Tokens{"[UNK]", "[SEP]", "[UNK]"});  // "[" and "]" are not in the vocab
  CHECK(tok.tokenize("[mask]") == Tokens{"[UNK]", "[UNK]", "[UNK]"});   // case matters
  CHECK(tok.tokenize("[MA\xE2\x80\x8BSK]") == Tokens{"[MASK]"});        // the zero-width space goes first, as in HF
  CHECK(tok.basic_tokenize("Hello[SEP] B\xC3\xA9!") == Tokens{"hello", "[SEP]", "be", "!"});
}

TEST_CASE("wordpiece: options") {
  const WordPieceTokenizer cased = tiny({.lower_case = false});
  CHECK(cased.tokenize("hello Hello caf\xC3\xA9") == Tokens{"hello", "[UNK]", "[UNK]"});
  const WordPieceTokenizer stripped = tiny({.lower_case = false, .strip_accents = true});
  CHECK(stripped.tokenize("caf\xC3\xA9") == Tokens{"cafe"});
  const WordPieceTokenizer accents = tiny({.lower_case = true, .strip_accents = false});
  CHECK(accents.tokenize("CAF\xC3\x89") == Tokens{"[UNK]"});
  const WordPieceTokenizer no_cjk = tiny({.tokenize_chinese_chars = false});
  CHECK(no_cjk.tokenize("中文") == Tokens{"[UNK]"});
}

TEST_CASE("wordpiece: encode adds [CLS]/[SEP], truncates longest_first and pads") {
  const WordPieceTokenizer tok = tiny();
  nexa::Encoding e = tok.encode("hello world");
  CHECK(e.input_ids == Ids{2, 11, 12, 3});
  CHECK(e.token_type_ids == Ids{0, 0, 0, 0});
  CHECK(e.attention_mask == Ids{1, 1, 1, 1});
  e = tok.encode("hello", "world !");
  CHECK(e.input_ids == Ids{2, 11, 3, 12, 14, 3});
  CHECK(e.token_type_ids == Ids{0, 0, 0, 1, 1, 1});
  e = tok.encode("hello", std::string_view(""));
  CHECK(e.input_ids == Ids{2, 11, 3, 3});
  CHECK(e.token_type_ids == Ids{0, 0, 0, 1});

  // Single sequence: cut from the end.
  e = tok.encode("a b c x hello world", {.max_length = 5});
  CHECK(e.input_ids == Ids{2, 8, 21, 23, 3});
  // Pair, A longer: A loses first_remove = 4 to reach B's length, then the odd one goes to B.
  e = tok.encode("a a a a a a a", "b b b", {.max_length = 8});  // 7 + 3 + 3 = 13: remove 5
  CHECK(e.input_ids == Ids{2, 8, 8, 8, 3, 21, 21, 3});
  // Equal lengths: B loses the odd one (ceil), A floor.
  e = tok.encode("a a a a a a", "b b b b b b", {.max_length = 8});  // 15 -> 8: remove 7
  CHECK(e.input_ids == Ids{2, 8, 8, 8, 3, 21, 21, 3});
  // B longer: B loses first_remove, then the rest is shared with B taking the ceil.
  e = tok.encode("a a a", "b b b b b b b b", {.max_length = 8});  // 14 -> 8: remove 6
  CHECK(e.input_ids == Ids{2, 8, 8, 8, 3, 21, 21, 3});
  e = tok.encode("a a", "b b b b", {.max_length = 8, .truncation = false});
  CHECK(e.input_ids.size() == 9);
  // Padding to max_length with [PAD], type 0, attention 0.
  e = tok.encode("hello", "world", {.max_length = 8, .padding = Padding::MaxLength});
  CHECK(e.input_ids == Ids{2, 11, 3, 12, 3, 0, 0, 0});
  CHECK(e.token_type_ids == Ids{0, 0, 0, 1, 1, 0, 0, 0});
  CHECK(e.attention_mask == Ids{1, 1, 1, 1, 1, 0, 0, 0});
  CHECK(contains(error_message([&] { (void)tok.encode("a", "b", {.max_length = 2}); }), "max_length 2"));
  CHECK(tok.encode("", {.max_length = 2}).input_ids == Ids{2, 3});
}

TEST_CASE("wordpiece: encode_batch pads to the longest or to max_length") {
  const WordPieceTokenizer tok = tiny();
  const std::vector<std::string> texts = {"hello world", "a", ""};
  nexa::BatchEncoding b = tok.encode_batch(texts);
  REQUIRE(b.input_ids.shape() == nexa::Shape{3, 4});
  CHECK(row(b.input_ids, 0) == Ids{2, 11, 12, 3});
  CHECK(row(b.input_ids, 1) == Ids{2, 8, 3, 0});
  CHECK(row(b.input_ids, 2) == Ids{2, 3, 0, 0});
  CHECK(row(b.attention_mask, 1) == Ids{1, 1, 1, 0});
  CHECK(row(b.token_type_ids, 2) == Ids{0, 0, 0, 0});

  b = tok.encode_batch(texts, {.max_length = 6, .padding = Padding::MaxLength});
  REQUIRE(b.input_ids.shape() == nexa::Shape{3, 6});
  CHECK(row(b.input_ids, 0) == Ids{2, 11, 12, 3, 0, 0});
  b = tok.encode_batch(texts, {.max_length = 3, .padding = Padding::MaxLength});
  REQUIRE(b.input_ids.shape() == nexa::Shape{3, 3});
  CHECK(row(b.input_ids, 0) == Ids{2, 11, 3});

  const std::vector<std::string> second = {"a", "b b", "x"};
  b = tok.encode_batch(texts, second);
  REQUIRE(b.input_ids.shape() == nexa::Shape{3, 6});
  CHECK(row(b.input_ids, 0) == Ids{2, 11, 12, 3, 8, 3});
  CHECK(row(b.token_type_ids, 0) == Ids{0, 0, 0, 0, 1, 1});
  CHECK(row(b.input_ids, 2) == Ids{2, 3, 24, 3, 0, 0});
  CHECK(row(b.token_type_ids, 2) == Ids{0, 0, 1, 1, 0, 0});
  CHECK(row(b.attention_mask, 2) == Ids{1, 1, 1, 1, 0, 0});

  CHECK(tok.encode_batch(std::vector<std::string>{}).input_ids.shape() == nexa::Shape{0, 0});
  CHECK(tok.encode_batch({"a", "b"}, {.padding = Padding::None}).input_ids.shape() == nexa::Shape{2, 3});
  CHECK(contains(error_message([&] { (void)tok.encode_batch(texts, {.padding = Padding::None}); }),
                 "needs equal lengths"));
  CHECK(contains(error_message([&] {
                   (void)tok.encode_batch(texts, {.max_length = 3, .truncation = false, .padding = Padding::MaxLength});
                 }),
                 "exceeds max_length 3"));
  CHECK(contains(error_message([&] { (void)tok.encode_batch(texts, {"a"}); }), "3 first texts but 1 second"));
}

TEST_CASE("wordpiece: decode, token_to_id, id_to_token") {
  const WordPieceTokenizer tok = tiny();
  CHECK(tok.decode(Ids{2, 5, 6, 7, 13, 12, 14, 3, 0}) == "[CLS] unaffable, world! [SEP] [PAD]");
  CHECK(tok.decode(Ids{2, 5, 6, 7, 13, 12, 14, 3, 0}, {.skip_special_tokens = true}) == "unaffable, world!");
  CHECK(tok.decode(Ids{11, 13, 12}, {.clean_up_tokenization_spaces = false}) == "hello , world");
  CHECK(tok.decode(Ids{}) == "");
  CHECK(tok.token_to_id("##able") == 7);
  CHECK(tok.token_to_id("nope") == std::nullopt);
  CHECK(tok.id_to_token(11) == "hello");
  CHECK(contains(error_message([&] { (void)tok.id_to_token(26); }), "id 26 is outside the vocabulary [0, 26)"));
  CHECK(contains(error_message([&] { (void)tok.id_to_token(-1); }), "id -1"));
  CHECK(contains(error_message([&] { (void)tok.decode(Ids{1, 99}); }), "id 99"));
}

TEST_CASE("wordpiece: vocabulary files and errors") {
  TempDir dir;
  std::string crlf;
  for (const auto& t : tiny_vocab) crlf += t + "\r\n";
  write_text(dir / "crlf.txt", crlf);
  const WordPieceTokenizer tok = WordPieceTokenizer::from_vocab_file(dir / "crlf.txt");
  CHECK(tok.vocab_size() == tiny_vocab.size());
  CHECK(tok.tokenize("unaffable") == Tokens{"unaff", "##able"});

  // No trailing newline, an old-Mac "\r", an empty line (an empty token keeps its id).
  write_text(dir / "mixed.txt", "[PAD]\n[UNK]\r[CLS]\n\n[SEP]\n[MASK]\nhi");
  const WordPieceTokenizer mixed = WordPieceTokenizer::from_vocab_file(dir / "mixed.txt");
  CHECK(mixed.vocab_size() == 7);
  CHECK(mixed.sep_id() == 4);
  CHECK(mixed.token_to_id("hi") == 6);
  CHECK(mixed.token_to_id("") == 3);

  const auto missing = dir / "missing.txt";
  std::string msg = error_message([&] { (void)WordPieceTokenizer::from_vocab_file(missing); });
  CHECK(contains(msg, missing.string()));
  CHECK(contains(msg, "does not exist"));
  write_text(dir / "empty.txt", "");
  msg = error_message([&] { (void)WordPieceTokenizer::from_vocab_file(dir / "empty.txt"); });
  CHECK(contains(msg, (dir / "empty.txt").string()));
  CHECK(contains(msg, "the vocabulary is empty"));
  write_text(dir / "nomask.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n");
  msg = error_message([&] { (void)WordPieceTokenizer::from_vocab_file(dir / "nomask.txt"); });
  CHECK(contains(msg, (dir / "nomask.txt").string()));
  CHECK(contains(msg, "the special token [MASK] is not in the vocabulary"));
  write_text(dir / "bad.txt", "[PAD]\n\xC3(\n");
  msg = error_message([&] { (void)WordPieceTokenizer::from_vocab_file(dir / "bad.txt"); });
  CHECK(contains(msg, "invalid UTF-8 at byte 6"));
  CHECK(contains(error_message([] { (void)WordPieceTokenizer::from_vocab({}); }), "the vocabulary is empty"));
  CHECK(contains(error_message([] { (void)tiny({.unk_token = "<unk>"}); }), "<unk> is not in the vocabulary"));

  CHECK(contains(error_message([&] { (void)tok.tokenize("ok \xC3\x28"); }), "invalid UTF-8 at byte 3"));
  CHECK(contains(error_message([&] { (void)tok.encode("fine", "\xFF"); }), "invalid UTF-8 at byte 0"));
  CHECK(contains(error_message([&] { (void)tok.tokenize("\xE2\x82"); }), "invalid UTF-8 at byte 0"));
}

// ---- all-MiniLM-L6-v2 against Hugging Face ----------------------------------------------------

namespace {

// The MiniLM tokenizer, or nullopt after a MESSAGE saying how to get the checkpoint.
std::optional<WordPieceTokenizer> minilm(bool lower_case = true) {
  const auto dir = minilm_dir();
  if (!dir) {
    MESSAGE(
        "skipped: all-MiniLM-L6-v2's vocab.txt not found in $NEXA_MINILM_DIR or "
        "$HOME/.cache/nexa/all-MiniLM-L6-v2; run scripts/fetch-minilm.sh to fetch it");
    return std::nullopt;
  }
  return WordPieceTokenizer::from_vocab_file(*dir / "vocab.txt", {.lower_case = lower_case});
}

const json::Value& expected() {
  static const json::Value v = load_json(fixture_dir() / "expected.json");
  return v;
}

void check_encoding(const nexa::Encoding& e, const json::Value& want) {
  CHECK(e.input_ids == int_array(member(want, "input_ids")));
  CHECK(e.token_type_ids == int_array(member(want, "token_type_ids")));
  CHECK(e.attention_mask == int_array(member(want, "attention_mask")));
}

void check_batch(const nexa::Tensor<std::int32_t>& t, const json::Value& want) {
  REQUIRE(t.dim(0) == static_cast<nexa::index_t>(want.array.size()));
  for (std::size_t r = 0; r < want.array.size(); ++r)
    CHECK(row(t, static_cast<nexa::index_t>(r)) == int_array(want.array[r]));
}

Padding padding_of(const json::Value& v) {
  const std::string& p = member(v, "padding").string;
  if (p == "max_length") return Padding::MaxLength;
  if (p == "longest") return Padding::Longest;
  return Padding::None;
}

}  // namespace

TEST_CASE("wordpiece: MiniLM vocab, single texts match Hugging Face") {
  const auto tok = minilm();
  if (!tok) return;
  const json::Value& fx = expected();
  CHECK(tok->vocab_size() == member(fx, "vocab_size").integer);
  const json::Value& ids = member(fx, "special_ids");
  CHECK(tok->cls_id() == static_cast<std::int32_t>(member(ids, "cls").integer));
  CHECK(tok->sep_id() == static_cast<std::int32_t>(member(ids, "sep").integer));
  CHECK(tok->pad_id() == static_cast<std::int32_t>(member(ids, "pad").integer));
  CHECK(tok->unk_id() == static_cast<std::int32_t>(member(ids, "unk").integer));
  CHECK(tok->mask_id() == static_cast<std::int32_t>(member(ids, "mask").integer));
  const json::Value& single = member(fx, "single");
  REQUIRE(single.array.size() > 30);
  for (const auto& c : single.array) {
    const std::string& text = member(c, "text").string;
    CAPTURE(text);
    CHECK(tok->tokenize(text) == string_array(member(c, "tokens")));
    check_encoding(tok->encode(text), c);
  }
  for (const auto& c : member(fx, "truncated").array) {
    const std::string& text = member(c, "text").string;
    CAPTURE(text);
    check_encoding(tok->encode(text, {.max_length = member(c, "max_length").integer}), c);
  }
}

TEST_CASE("wordpiece: MiniLM vocab, cased (do_lower_case=False) matches Hugging Face") {
  const auto tok = minilm(false);
  if (!tok) return;
  for (const auto& c : member(expected(), "cased").array) {
    const std::string& text = member(c, "text").string;
    CAPTURE(text);
    CHECK(tok->tokenize(text) == string_array(member(c, "tokens")));
  }
}

TEST_CASE("wordpiece: MiniLM vocab, pairs, truncation and padding match Hugging Face") {
  const auto tok = minilm();
  if (!tok) return;
  for (const auto& c : member(expected(), "pairs").array) {
    const std::string& a = member(c, "a").string;
    const std::string& b = member(c, "b").string;
    const auto n = member(c, "max_length").integer;
    CAPTURE(a);
    CAPTURE(b);
    CAPTURE(n);
    check_encoding(tok->encode(a, b, {.max_length = n, .truncation = true, .padding = padding_of(c)}), c);
  }
}

TEST_CASE("wordpiece: MiniLM vocab, batches and decode match Hugging Face") {
  const auto tok = minilm();
  if (!tok) return;
  for (const auto& c : member(expected(), "batches").array) {
    const EncodeOptions options{.max_length = member(c, "max_length").integer, .padding = padding_of(c)};
    const Tokens texts = string_array(member(c, "texts"));
    const std::string& padding = member(c, "padding").string;
    CAPTURE(padding);
    const nexa::BatchEncoding b = c.find("texts_b")
                                      ? tok->encode_batch(texts, string_array(member(c, "texts_b")), options)
                                      : tok->encode_batch(texts, options);
    check_batch(b.input_ids, member(c, "input_ids"));
    check_batch(b.token_type_ids, member(c, "token_type_ids"));
    check_batch(b.attention_mask, member(c, "attention_mask"));
  }
  for (const auto& c : member(expected(), "decode").array) {
    const Ids ids = int_array(member(c, "ids"));
    const bool skip = member(c, "skip_special_tokens").integer != 0;
    CHECK(tok->decode(ids, {.skip_special_tokens = skip}) == member(c, "text").string);
  }
}
