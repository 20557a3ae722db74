// Unit tests of examples/common/lm_data.hpp, the NEXA-MOE demo trainer's data: corpus lines
// (good and malformed), the compact vocabulary on a hand-made WordPiece vocabulary (order,
// min_count, max_size, [UNK], decode, save and load, corrupt files), sequence layout with and
// without the tag, truncation, batch ids / targets / mask, and seeded shuffling and bucketing.
// With NEXA_GCIDE_CORPUS_DIR set to a corpus built by nexa-gcide-corpus and the MiniLM vocabulary
// at NEXA_MINILM_DIR (or ~/.cache/nexa/all-MiniLM-L6-v2), it also prints the real vocabulary
// sizes and tokens per definition; otherwise that test says it skipped.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "lm_data.hpp"

namespace fs = std::filesystem;

namespace {

// A fresh directory under the system's temporary directory, removed at the end.
struct TempDir {
  fs::path path;
  explicit TempDir(std::string_view name) {
    path = fs::temp_directory_path() / (std::string("nexa_test_lm_data_") + std::string(name));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

void write(const fs::path& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary);
  out << data;
}

// WordPiece ids: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4, the 5, cat 6, dog 7, ##s 8, run 9,
// ##ning 10, . 11, , 12, a 13, bird 14, fish 15.
constexpr std::string_view kWordPieceVocab =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\ndog\n##s\nrun\n##ning\n.\n,\na\nbird\nfish\n";

nexa::WordPieceTokenizer tiny_wordpiece(const TempDir& dir) {
  write(dir.path / "vocab.txt", kWordPieceVocab);
  return nexa::WordPieceTokenizer::from_vocab_file(dir.path / "vocab.txt");
}

std::vector<lm_data::Sample> tiny_train() {
  return {{"cat", 1, "The cats run."}, {"dog", 1, "A dog, the dog."}, {"run", 0, "Running cats!"}};
}

std::vector<std::string> tokens_of(const lm_data::Vocab& v) {
  std::vector<std::string> out;
  for (std::int32_t i = 0; i < v.size(); ++i) out.emplace_back(v.token(i));
  return out;
}

std::string error_of(const auto& f) {
  try {
    f();
  } catch (const nexa::Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("corpus lines: fields, domains, blank lines and malformed lines") {
  const std::string good =
      "{\"headword\": \"Quartz\", \"domain\": \"MAT\", \"text\": \"A mineral.\", \"tagged\": \"[MAT] A mineral.\"}\n"
      "\n"
      "{\"headword\": \"Lens\", \"domain\": \"PHYS\", \"text\": \"A glass.\"}\r\n"
      "{\"headword\": \"Fever\", \"domain\": \"MED\", \"text\": \"Heat.\"}\n"
      "{\"headword\": \"Cat\", \"domain\": \"BIO\", \"text\": \"An animal.\"}";
  const auto s = lm_data::parse_split(good, "x.jsonl");
  REQUIRE(s.size() == 4);
  CHECK(s[0].headword == "Quartz");
  CHECK(s[0].domain == 2);
  CHECK(s[0].text == "A mineral.");
  CHECK(s[1].domain == 0);
  CHECK(s[2].domain == 3);
  CHECK(s[3].domain == 1);
  CHECK(s[3].text == "An animal.");

  const std::string bad_json = "{\"headword\": \"a\", \"domain\": \"BIO\", \"text\": \"t\"}\n{\"headword\": \n";
  const std::string json_error = error_of([&] { (void)lm_data::parse_split(bad_json, "c.jsonl"); });
  CHECK(json_error == "lm_data: c.jsonl:2: invalid JSON at byte 13: expected a value, got the end of the text");
  const std::string no_text = "\n\n{\"headword\": \"a\", \"domain\": \"BIO\"}\n";
  CHECK(error_of([&] { (void)lm_data::parse_split(no_text, "c.jsonl"); }) ==
        "lm_data: c.jsonl:3: no string field \"text\"");
  const std::string bad_domain = "{\"headword\": \"a\", \"domain\": \"GEO\", \"text\": \"t\"}\n";
  CHECK(error_of([&] { (void)lm_data::parse_split(bad_domain, "c.jsonl"); }) ==
        "lm_data: c.jsonl:1: unknown domain 'GEO' (expected PHYS, BIO, MAT or MED)");
  CHECK(error_of([&] { (void)lm_data::parse_split("[1, 2]\n", "c.jsonl"); }) ==
        "lm_data: c.jsonl:1: not a JSON object");

  TempDir dir("read");
  write(dir.path / "train.jsonl", good);
  CHECK(lm_data::read_split(dir.path / "train.jsonl").size() == 4);
  CHECK(contains(error_of([&] { (void)lm_data::read_split(dir.path / "missing.jsonl"); }), "cannot open"));
}

TEST_CASE("compact vocabulary: order, min_count, max_size, [UNK], encode and decode") {
  TempDir dir("vocab");
  const auto wp = tiny_wordpiece(dir);
  const auto train = tiny_train();

  const auto v = lm_data::Vocab::build(wp, train);
  // Counts: the 2, cat 2, dog 2, ##s 2, run 2, . 2 (by WordPiece id), then ##ning 1, , 1, a 1;
  // "!" is WordPiece's [UNK], never an entry.
  const std::vector<std::string> expected = {"[PAD]", "[UNK]", "[BOS]",  "[EOS]", "[PHYS]", "[BIO]",
                                             "[MAT]", "[MED]", "the",    "cat",   "dog",    "##s",
                                             "run",   ".",     "##ning", ",",     "a"};
  CHECK(tokens_of(v) == expected);
  CHECK(v.size() == 17);
  CHECK(v.counts() == std::vector<std::size_t>{2, 2, 2, 2, 2, 2, 1, 1, 1});
  CHECK(v.wordpiece_id(8) == 5);
  CHECK(v.id_of("[MAT]") == 6);
  CHECK(v.id_of("cat") == 9);
  CHECK_FALSE(v.id_of("bird").has_value());
  CHECK(lm_data::tag_id(0) == 4);
  CHECK(lm_data::tag_id(3) == 7);

  CHECK(v.encode("The cats run.") == std::vector<std::int32_t>{8, 9, 11, 12, 13});
  // fish, bird: in WordPiece but not seen in training; "!" and "zebra": not in WordPiece.
  CHECK(v.encode("Fish cats! Bird zebra") == std::vector<std::int32_t>{1, 9, 11, 1, 1, 1});
  CHECK(v.encode("RUNNING, a dog") == std::vector<std::int32_t>{12, 14, 15, 16, 10});

  const std::vector<std::int32_t> seq = {2, 4, 8, 9, 11, 12, 14, 13, 3, 0, 0};
  CHECK(v.decode(seq) == "the cats running.");
  CHECK(v.decode(seq, false) == "[BOS] [PHYS] the cats running. [EOS] [PAD] [PAD]");
  CHECK(v.decode(std::vector<std::int32_t>{1, 11, 10, 15, 8}) == "[UNK]s dog, the");
  CHECK(v.decode(v.encode("the birds run, a fish.")) == "the [UNK]s run, a [UNK].");
  CHECK(v.decode(v.encode("the dog running, a cat.")) == "the dog running, a cat.");
  CHECK(contains(error_of([&] { (void)v.decode(std::vector<std::int32_t>{17}); }), "outside the vocabulary"));

  const auto v2 = lm_data::Vocab::build(wp, train, {.min_count = 2});
  CHECK(v2.size() == 14);
  CHECK(v2.encode("a dog") == std::vector<std::int32_t>{1, 10});
  const auto v3 = lm_data::Vocab::build(wp, train, {.max_size = 10});
  CHECK(tokens_of(v3).back() == "cat");
  CHECK(v3.size() == 10);
  CHECK_THROWS_AS((void)lm_data::Vocab::build(wp, train, {.min_count = 0}), nexa::Error);
  CHECK_THROWS_AS((void)lm_data::Vocab::build(wp, train, {.max_size = 7}), nexa::Error);
}

TEST_CASE("compact vocabulary: save, load, and corrupt files") {
  TempDir dir("save");
  const auto wp = tiny_wordpiece(dir);
  const auto v = lm_data::Vocab::build(wp, tiny_train());
  const fs::path file = dir.path / "compact.txt";
  v.save(file);
  CHECK_FALSE(fs::exists(dir.path / "compact.txt.tmp"));
  const auto loaded = lm_data::Vocab::load(file, wp);
  CHECK(tokens_of(loaded) == tokens_of(v));
  CHECK(loaded.encode("the cats, a bird") == v.encode("the cats, a bird"));
  CHECK(loaded.counts().empty());

  const std::string specials = "[PAD]\n[UNK]\n[BOS]\n[EOS]\n[PHYS]\n[BIO]\n[MAT]\n[MED]\n";
  CHECK(lm_data::Vocab::load((write(file, specials), file), wp).size() == 8);
  const auto load_error = [&](std::string_view data) {
    write(file, data);
    return error_of([&] { (void)lm_data::Vocab::load(file, wp); });
  };
  const std::string f = file.string();
  CHECK(load_error("") == "lm_data: " + f + ": empty vocabulary file");
  CHECK(load_error(specials + "the\ncat") == "lm_data: " + f + ": the last line has no newline (truncated file?)");
  CHECK(load_error("[PAD]\n[BOS]\n") == "lm_data: " + f + ":2: expected the special token [UNK], got '[BOS]'");
  CHECK(load_error("[PAD]\n[UNK]\n") == "lm_data: " + f + ": 2 lines, fewer than the 8 special tokens");
  CHECK(load_error(specials + "the\nzebra\n") == "lm_data: " + f + ":10: 'zebra' is not in the WordPiece vocabulary");
  CHECK(load_error(specials + "the\n\ncat\n") == "lm_data: " + f + ":10: empty line");
  CHECK(load_error(specials + "the\ncat\nthe\n") == "lm_data: " + f + ":11: 'the' appears twice");
  CHECK(load_error(specials + "[CLS]\n") ==
        "lm_data: " + f + ":9: '[CLS]' is a WordPiece special token, not a vocabulary entry");
  CHECK(load_error(specials + "the\r\n") == "lm_data: " + f + ":9: carriage return in a token");
  CHECK(contains(load_error(specials + "\xff\n"), "not valid UTF-8"));
}

TEST_CASE("sequences: layout with and without the tag, truncation") {
  const std::vector<std::int32_t> tokens = {8, 9, 10, 11, 12};
  const auto train = lm_data::make_sequence(tokens, 1, {.with_tag = true});
  CHECK(train.ids == std::vector<std::int32_t>{2, 5, 8, 9, 10, 11, 12, 3});
  CHECK(train.domain == 1);
  CHECK(train.tagged);
  CHECK_FALSE(train.truncated);
  const auto eval = lm_data::make_sequence(tokens, 2);
  CHECK(eval.ids == std::vector<std::int32_t>{2, 8, 9, 10, 11, 12, 3});
  CHECK_FALSE(eval.tagged);

  const auto cut = lm_data::make_sequence(tokens, 0, {.max_len = 5, .with_tag = true});
  CHECK(cut.ids == std::vector<std::int32_t>{2, 4, 8, 9, 3});
  CHECK(cut.truncated);
  const auto cut_eval = lm_data::make_sequence(tokens, 0, {.max_len = 5});
  CHECK(cut_eval.ids == std::vector<std::int32_t>{2, 8, 9, 10, 3});
  const auto exact = lm_data::make_sequence(tokens, 0, {.max_len = 7});
  CHECK_FALSE(exact.truncated);
  CHECK(exact.ids.size() == 7);
  const auto empty = lm_data::make_sequence({}, 3, {.max_len = 3, .with_tag = true});
  CHECK(empty.ids == std::vector<std::int32_t>{2, 7, 3});
  CHECK(error_of([&] { (void)lm_data::make_sequence(tokens, 0, {.max_len = 2, .with_tag = true}); }) ==
        "lm_data: max_len 2 leaves no room: a sequence with its tag needs 3 ids besides its text");
  CHECK_THROWS_AS((void)lm_data::make_sequence(tokens, 4), nexa::Error);

  TempDir dir("seq");
  const auto v = lm_data::Vocab::build(tiny_wordpiece(dir), tiny_train());
  const auto seqs = lm_data::make_sequences(v, tiny_train(), {.max_len = 64, .with_tag = true});
  REQUIRE(seqs.size() == 3);
  CHECK(seqs[2].ids == std::vector<std::int32_t>{2, 4, 12, 14, 9, 11, 1, 3});
  CHECK(v.decode(seqs[0].ids) == "the cats run.");
}

TEST_CASE("batches: padding, next-token targets, mask, domains and counts") {
  const std::vector<lm_data::Sequence> seqs = {
      lm_data::make_sequence(std::vector<std::int32_t>{8, 9}, 1, {.with_tag = true}),
      lm_data::make_sequence(std::vector<std::int32_t>{10, 11, 12, 13}, 2, {.with_tag = true}),
      lm_data::make_sequence(std::vector<std::int32_t>{8}, 0)};
  const std::vector<std::size_t> idx = {0, 1, 2};
  const auto b = lm_data::make_batch(seqs, idx);
  CHECK(b.ids.shape() == nexa::Shape{3, 7});
  CHECK(b.targets.shape() == nexa::Shape{3, 7});
  CHECK(b.mask.shape() == nexa::Shape{3, 7});
  constexpr std::int32_t I = lm_data::kIgnore;
  CHECK(b.ids.to_host() == std::vector<std::int32_t>{2, 5, 8,  9,  3,  0,  0,  //
                                                     2, 6, 10, 11, 12, 13, 3,  //
                                                     2, 8, 3,  0,  0,  0,  0});
  CHECK(b.targets.to_host() == std::vector<std::int32_t>{I, 8,  9,  3,  I,  I, I,  //
                                                         I, 10, 11, 12, 13, 3, I,  //
                                                         8, 3,  I,  I,  I,  I, I});
  CHECK(b.mask.to_host() == std::vector<std::int32_t>{1, 1, 1, 1, 1, 0, 0,  //
                                                      1, 1, 1, 1, 1, 1, 1,  //
                                                      1, 1, 1, 0, 0, 0, 0});
  CHECK(b.domains == std::vector<std::int32_t>{1, 2, 0});
  CHECK(b.lengths == std::vector<std::int32_t>{5, 7, 3});
  CHECK(b.tokens == 15);
  CHECK(b.target_tokens == 3 + 5 + 2);
  CHECK(b.size() == 3);
  CHECK(lm_data::kIgnore == -100);

  const auto with_tag_loss = lm_data::make_batch(seqs, idx, true);
  CHECK(with_tag_loss.targets(0, 0) == 5);
  CHECK(with_tag_loss.target_tokens == 12);

  const std::vector<std::size_t> one = {2};
  const auto single = lm_data::make_batch(seqs, one);
  CHECK(single.ids.shape() == nexa::Shape{1, 3});
  CHECK(single.indices == std::vector<std::size_t>{2});
  CHECK_THROWS_AS((void)lm_data::make_batch(seqs, std::vector<std::size_t>{}), nexa::Error);
  CHECK_THROWS_AS((void)lm_data::make_batch(seqs, std::vector<std::size_t>{3}), nexa::Error);
}

namespace {

// 103 sequences of lengths 3 to 40, a pseudo-random pattern.
std::vector<lm_data::Sequence> many_sequences() {
  std::vector<lm_data::Sequence> seqs;
  for (std::int32_t i = 0; i < 103; ++i) {
    const std::vector<std::int32_t> tokens(static_cast<std::size_t>((i * 37) % 38 + 1), 8 + i % 5);
    seqs.push_back(lm_data::make_sequence(tokens, i % 3));
  }
  return seqs;
}

std::size_t padding_of(const lm_data::Batcher& b, std::uint64_t epoch) {
  std::size_t pad = 0;
  for (const auto& idx : b.epoch(epoch)) {
    const auto batch = b.batch(idx);
    pad += static_cast<std::size_t>(batch.ids.numel()) - batch.tokens;
  }
  return pad;
}

}  // namespace

TEST_CASE("batcher: seeded shuffling, every sequence once, drop_last, bucketing") {
  const auto seqs = many_sequences();
  const lm_data::Batcher a(seqs, {.batch_size = 8, .seed = 1});
  const lm_data::Batcher a2(seqs, {.batch_size = 8, .seed = 1});
  const lm_data::Batcher c(seqs, {.batch_size = 8, .seed = 2});
  const auto e0 = a.epoch(0);
  CHECK(e0 == a2.epoch(0));
  CHECK(e0 == a.epoch(0));
  CHECK(e0 != c.epoch(0));
  CHECK(e0 != a.epoch(1));
  REQUIRE(e0.size() == 13);
  CHECK(a.batches_per_epoch() == 13);
  CHECK(e0.back().size() == 7);
  std::set<std::size_t> seen;
  for (const auto& batch : e0)
    for (const std::size_t i : batch) seen.insert(i);
  CHECK(seen.size() == 103);
  CHECK(*seen.rbegin() == 102);

  const lm_data::Batcher ordered(seqs, {.batch_size = 8, .shuffle = false});
  CHECK(ordered.epoch(0)[0] == std::vector<std::size_t>{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK(ordered.epoch(5) == ordered.epoch(0));
  const lm_data::Batcher dropped(seqs, {.batch_size = 8, .seed = 1, .drop_last = true});
  CHECK(dropped.epoch(0).size() == 12);
  CHECK(dropped.batches_per_epoch() == 12);
  CHECK(dropped.epoch(0).back().size() == 8);

  const lm_data::Batcher bucketed(seqs, {.batch_size = 8, .seed = 1, .bucket = 4});
  const auto be = bucketed.epoch(0);
  CHECK(be == lm_data::Batcher(seqs, {.batch_size = 8, .seed = 1, .bucket = 4}).epoch(0));
  CHECK(be != lm_data::Batcher(seqs, {.batch_size = 8, .seed = 2, .bucket = 4}).epoch(0));
  std::set<std::size_t> bseen;
  for (const auto& batch : be)
    for (const std::size_t i : batch) bseen.insert(i);
  CHECK(bseen.size() == 103);
  const std::size_t plain = padding_of(a, 0), sorted = padding_of(bucketed, 0);
  CHECK(sorted * 2 < plain);
  std::printf("padding per epoch (103 sequences, batch 8): shuffled %zu, bucketed x4 %zu\n", plain, sorted);

  CHECK_THROWS_AS(lm_data::Batcher(seqs, {.batch_size = 0}), nexa::Error);
  const auto p = lm_data::permutation(10, 7, 0);
  CHECK(std::set<std::size_t>(p.begin(), p.end()).size() == 10);
  CHECK(p == lm_data::permutation(10, 7, 0));
}

TEST_CASE("length statistics") {
  const auto s = lm_data::length_stats({5, 1, 3, 2, 4, 10, 6, 7, 8, 9});
  CHECK(s.count == 10);
  CHECK(s.mean == doctest::Approx(5.5));
  CHECK(s.min == 1);
  CHECK(s.median == 5);
  CHECK(s.p95 == 10);
  CHECK(s.max == 10);
  CHECK(lm_data::length_stats({}).count == 0);
}

TEST_CASE("the GCIDE corpus with the MiniLM vocabulary (NEXA_GCIDE_CORPUS_DIR)") {
  const char* corpus_env = std::getenv("NEXA_GCIDE_CORPUS_DIR");
  const char* minilm_env = std::getenv("NEXA_MINILM_DIR");
  const char* home = std::getenv("HOME");
  const fs::path minilm = minilm_env != nullptr && *minilm_env != '\0' ? fs::path(minilm_env)
                          : home != nullptr                            ? fs::path(home) / ".cache/nexa/all-MiniLM-L6-v2"
                                                                       : fs::path();
  if (corpus_env == nullptr || *corpus_env == '\0' || !fs::exists(fs::path(corpus_env) / "train.jsonl") ||
      !fs::exists(minilm / "vocab.txt")) {
    std::printf("skipped: needs NEXA_GCIDE_CORPUS_DIR (a nexa-gcide-corpus output) and %s\n",
                (minilm / "vocab.txt").string().c_str());
    return;
  }
  const fs::path corpus(corpus_env);
  const auto wp = nexa::WordPieceTokenizer::from_vocab_file(minilm / "vocab.txt");
  const auto train = lm_data::read_split(corpus / "train.jsonl");
  const auto valid = lm_data::read_split(corpus / "valid.jsonl");
  const auto v1 = lm_data::Vocab::build(wp, train);
  std::size_t at_least_2 = 0;
  for (const std::size_t c : v1.counts()) at_least_2 += c >= 2 ? 1 : 0;
  CHECK(v1.size() > 1000);
  CHECK(v1.size() < static_cast<std::int32_t>(wp.vocab_size()));
  TempDir dir("real");
  v1.save(dir.path / "compact.txt");
  CHECK(lm_data::Vocab::load(dir.path / "compact.txt", wp).size() == v1.size());

  std::vector<std::size_t> lengths;
  std::size_t total = 0, unk1 = 0, unk2 = 0;
  const std::int32_t size2 = lm_data::kNumSpecials + static_cast<std::int32_t>(at_least_2);
  for (const auto& s : valid) {
    const auto ids = v1.encode(s.text);
    lengths.push_back(ids.size());
    total += ids.size();
    for (const std::int32_t id : ids) {
      unk1 += id == lm_data::kUnk ? 1 : 0;
      unk2 += id == lm_data::kUnk || id >= size2 ? 1 : 0;  // ids are by descending count
    }
  }
  CHECK(lm_data::Vocab::build(wp, train, {.min_count = 2}).size() == size2);
  std::vector<std::size_t> train_lengths;
  for (const auto& s : train) train_lengths.push_back(v1.encode(s.text).size());
  const auto st = lm_data::length_stats(train_lengths);
  const auto sv = lm_data::length_stats(lengths);
  std::size_t over = 0;
  for (const std::size_t n : train_lengths) over += n + 3 > 64 ? 1 : 0;
  std::printf("GCIDE corpus %s, WordPiece %zu tokens\n", corpus.string().c_str(), wp.vocab_size());
  std::printf("compact vocabulary (specials included): min_count 1: %d, min_count 2: %d\n", v1.size(), size2);
  std::printf("tokens per definition, train (%zu): mean %.2f, median %zu, p95 %zu, max %zu\n", st.count, st.mean,
              st.median, st.p95, st.max);
  std::printf("tokens per definition, valid (%zu): mean %.2f, median %zu, p95 %zu, max %zu\n", sv.count, sv.mean,
              sv.median, sv.p95, sv.max);
  std::printf("valid tokens mapped to [UNK]: min_count 1: %.3f%%, min_count 2: %.3f%%\n",
              100.0 * static_cast<double>(unk1) / static_cast<double>(total),
              100.0 * static_cast<double>(unk2) / static_cast<double>(total));
  std::printf("train definitions truncated at max_len 64 with the tag: %zu of %zu\n", over, train.size());
}
