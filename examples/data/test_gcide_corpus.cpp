// Tests of the GCIDE domain corpus (gcide_corpus.hpp): parsing hand-written entries in the
// package's format, labels, cleaning, JSON lines, the dictd index and dictzip reading, the
// split, and (where the Debian package dict-gcide is installed) the real corpus.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <zlib.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "gcide_corpus.hpp"
#include "nexa/io/json.hpp"

namespace {

const std::filesystem::path kDictDir = "/usr/share/dictd";
const bool kHaveGcide =
    std::filesystem::exists(kDictDir / "gcide.index") && std::filesystem::exists(kDictDir / "gcide.dict.dz");

// A multi-sense article: numbered senses with their own labels (one in umlaut markup), a Note
// and a quotation (skipped), an unlabelled sense, a two-domain sense, and phrase sub-entries.
constexpr std::string_view kTooth =
    "Tooth \\Tooth\\ (t[=oo]th), n.; pl. {Teeth} (t[=e]th). [OE.\n"
    "   toth, AS. t[=o][eth]. See {Dent}.]\n"
    "   1. (Anat.) One of the hard, bony appendages which are borne\n"
    "      on the jaws. --Shak.\n"
    "      [1913 Webster]\n"
    "\n"
    "   Note: The hard parts of teeth are (Chem.) dentine.\n"
    "         [1913 Webster]\n"
    "\n"
    "               How sharper than a serpent's tooth it is\n"
    "               To have a thankless child!         --Shak.\n"
    "         [1913 Webster]\n"
    "\n"
    "   2. Fig.: Taste; palate.\n"
    "      [1913 Webster]\n"
    "\n"
    "   3. (Zo[\"o]l.) Any hard calcareous organ found in the mouth\n"
    "      of various invertebrates; as, the teeth of a mollusk.\n"
    "      [1913 Webster]\n"
    "\n"
    "   4. (Chem. & Physics) A sense that names two domains.\n"
    "      [1913 Webster]\n"
    "\n"
    "   {Tooth coralline} (Zool.), any sertularian hydroid.\n"
    "\n"
    "   {Tooth rash}. (Med.) See {Red-gum}, 1.\n"
    "      [1913 Webster]\n";

// The header's label (after a two-line etymology) applies to the lettered sub-senses.
constexpr std::string_view kAcerose =
    "Acerose \\Ac\"er*ose`\\, a. [(a) L. acerosus chaffy; (b) as if fr. L.\n"
    "   acus needle: cf. F. ac['e]reux.] (Bot.)\n"
    "   (a) Having the nature of chaff; chaffy.\n"
    "   (b) Needle-shaped (F. ac['e]reux), as the leaf of the pine.\n"
    "       [1913 Webster]\n";

// The label on a line of its own, in umlaut markup; a bracketed note inside the definition.
constexpr std::string_view kWistit =
    "Wistit \\Wis\"tit\\, n. [Prob. from native name: cf. F. ouistiti.]\n"
    "   (Zo[\"o]l.)\n"
    "   A small South American monkey; a marmoset. [Written also\n"
    "   {wistiti}, and {ouistiti}.]\n"
    "   [1913 Webster]\n";

// A numbered sense of another field is not labelled by the article's header; an article that
// the package's conversion starts after a source line's bracket is read as one of its own.
constexpr std::string_view kFoot =
    "Foot \\Foot\\, n. (Zool.)\n"
    "   1. The muscular locomotive organ of a mollusk.\n"
    "      [1913 Webster]\n"
    "\n"
    "   2. (Naut.) The lower edge of a sail.\n"
    "      [1913 Webster] Ilmenite \\Il\"men*ite\\, n. [So called from\n"
    "   Ilmen, a branch of the Ural Mountains.] (Min.)\n"
    "   Titanic iron. See {Menaccanite}.\n"
    "   [1913 Webster]\n";

std::vector<gcide::Sample> parse(std::string_view article, gcide::ParseStats& stats) {
  return gcide::parse_article(article, stats);
}

// A gzip stream of `text` (one member).
std::string gzip(std::string_view text) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&zs, static_cast<uLong>(text.size())) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  zs.avail_in = static_cast<uInt>(text.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// A dictd base64 number.
std::string dictd_number(std::uint64_t v) {
  constexpr std::string_view digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  do {
    out.insert(out.begin(), digits[v % 64]);
    v /= 64;
  } while (v != 0);
  return out;
}

// A string member of a JSON object ("" when missing or not a string).
std::string field(const nexa::json::Value& v, std::string_view key) {
  const nexa::json::Value* m = v.find(key);
  return m != nullptr && m->is_string() ? m->string : std::string();
}

bool contains_tag(std::string_view text) {
  for (const gcide::Domain d : gcide::kDomains) {
    if (text.find(gcide::domain_tag(d)) != std::string_view::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("gcide: field labels, any spelling") {
  using gcide::Domain;
  CHECK(gcide::label_domain("Zool.") == Domain::BIO);
  CHECK(gcide::label_domain("Zo[\"o]l.") == Domain::BIO);
  CHECK(gcide::label_domain("Zool") == Domain::BIO);
  CHECK(gcide::label_domain("Zoology") == Domain::BIO);
  CHECK(gcide::label_domain("Bot.") == Domain::BIO);
  CHECK(gcide::label_domain("Physiol.") == Domain::BIO);
  CHECK(gcide::label_domain("Physics") == Domain::PHYS);
  CHECK(gcide::label_domain("Astron.") == Domain::PHYS);
  CHECK(gcide::label_domain("Elec.") == Domain::PHYS);
  CHECK(gcide::label_domain("Opt.") == Domain::PHYS);
  CHECK(gcide::label_domain("Chem.") == Domain::MAT);
  CHECK(gcide::label_domain("Crystallog.") == Domain::MAT);
  CHECK(gcide::label_domain("Min.") == Domain::MAT);
  CHECK(gcide::label_domain("Metal.") == Domain::MAT);
  CHECK(gcide::label_domain("Med.") == Domain::MED);
  CHECK_FALSE(gcide::label_domain("Naut.").has_value());
  CHECK_FALSE(gcide::label_domain("Geol.").has_value());
  CHECK(gcide::domain_label_group("Bot. & Zool.") == std::vector<Domain>{Domain::BIO, Domain::BIO});
  CHECK(gcide::domain_label_group("Chem., Biochem.") == std::vector<Domain>{Domain::MAT});  // other fields ignored
  CHECK(gcide::domain_label_group("Arch. & Engin.").empty());
  CHECK(gcide::domain_label_group("Tenebrio molitor").empty());
}

TEST_CASE("gcide: a multi-sense article: labels, inheritance, ambiguity, markup") {
  gcide::ParseStats stats;
  const auto samples = parse(kTooth, stats);
  REQUIRE(samples.size() == 4);
  CHECK(samples[0].headword == "Tooth");
  CHECK(samples[0].domain == gcide::Domain::BIO);
  CHECK(samples[0].text == "One of the hard, bony appendages which are borne on the jaws.");
  CHECK(samples[1].domain == gcide::Domain::BIO);  // (Zo["o]l.)
  CHECK(samples[1].text ==
        "Any hard calcareous organ found in the mouth of various invertebrates; as, the teeth of a "
        "mollusk.");
  CHECK(samples[2].domain == gcide::Domain::BIO);
  CHECK(samples[2].text == "Tooth coralline, any sertularian hydroid.");
  CHECK(samples[3].domain == gcide::Domain::MED);
  CHECK(samples[3].text == "Tooth rash. See Red-gum, 1.");
  CHECK(stats.articles == 1);
  CHECK(stats.ambiguous == 1);  // 4. (Chem. & Physics)
  CHECK(stats.ambiguous_pairs.at("PHYS+MAT") == 1);
  CHECK(stats.unlabelled == 1);  // 2. Fig.: Taste
  for (const auto& s : samples) {
    CHECK(s.text.find("Webster") == std::string::npos);
    CHECK(s.text.find("Shak") == std::string::npos);
    CHECK(s.text.find("dentine") == std::string::npos);    // the Note
    CHECK(s.text.find("thankless") == std::string::npos);  // the quotation
    CHECK(s.text.find('{') == std::string::npos);
    CHECK(s.text.find('(') == std::string::npos);
  }
}

TEST_CASE("gcide: the header's label, lettered sub-senses, accents in UTF-8") {
  gcide::ParseStats stats;
  const auto samples = parse(kAcerose, stats);
  REQUIRE(samples.size() == 2);
  CHECK(samples[0].headword == "Acerose");
  CHECK(samples[0].domain == gcide::Domain::BIO);
  CHECK(samples[0].text == "Having the nature of chaff; chaffy.");
  CHECK(samples[1].domain == gcide::Domain::BIO);
  CHECK(samples[1].text == "Needle-shaped (F. ac\xC3\xA9reux), as the leaf of the pine.");
}

TEST_CASE("gcide: a label on its own line, bracketed notes stripped") {
  gcide::ParseStats stats;
  const auto samples = parse(kWistit, stats);
  REQUIRE(samples.size() == 1);
  CHECK(samples[0].headword == "Wistit");
  CHECK(samples[0].domain == gcide::Domain::BIO);
  CHECK(samples[0].text == "A small South American monkey; a marmoset.");
}

TEST_CASE("gcide: another field's label stops inheritance; an article after a source line") {
  gcide::ParseStats stats;
  const auto samples = parse(kFoot, stats);
  REQUIRE(samples.size() == 2);
  CHECK(samples[0].headword == "Foot");
  CHECK(samples[0].domain == gcide::Domain::BIO);
  CHECK(samples[0].text == "The muscular locomotive organ of a mollusk.");
  CHECK(samples[1].headword == "Ilmenite");
  CHECK(samples[1].domain == gcide::Domain::MAT);
  CHECK(samples[1].text == "Titanic iron. See Menaccanite.");
  CHECK(stats.articles == 2);
  CHECK(stats.unlabelled == 1);  // 2. (Naut.)
}

TEST_CASE("gcide: cleaning") {
  CHECK(gcide::convert_accents("Zo[\"o]l. [ae]on [,c]a [~n] 30[deg] [alpha]") ==
        "Zo\xC3\xB6l. \xC3\xA6on \xC3\xA7"
        "a \xC3\xB1 30\xC2\xB0 \xCE\xB1");
  CHECK(gcide::convert_accents("[Obs.] [R.]") == "[Obs.] [R.]");
  const auto c =
      gcide::clean_definition("(Physics) A unit of conductance; -- the inverse of\nthe {abohm}. [R.] --Ure.");
  CHECK(c.text == "A unit of conductance; -- the inverse of the abohm.");
  CHECK(c.domains == std::set<gcide::Domain>{gcide::Domain::PHYS});
  // A stray Windows-1252 byte becomes valid UTF-8.
  CHECK(gcide::repair_utf8("market\x92s") == "market\xE2\x80\x99s");
  CHECK(nexa::json::is_valid_utf8(gcide::clean_definition("fa\xe7"
                                                          "ade")
                                      .text));
}

TEST_CASE("gcide: JSON lines escape quotes, backslashes and control characters, pass UTF-8 through") {
  gcide::Sample s{"Say \"hi\" \\ back", gcide::Domain::PHYS, "tab\there \"q\" back\\slash \x01 nl\n Zo\xC3\xB6l"};
  const std::string line = gcide::to_json_line(s);
  CHECK(line.find('\n') == std::string::npos);
  CHECK(line.find("\\\"hi\\\"") != std::string::npos);
  CHECK(line.find("\\\\ back") != std::string::npos);
  CHECK(line.find("\\t") != std::string::npos);
  CHECK(line.find("\\u0001") != std::string::npos);
  CHECK(line.find("Zo\xC3\xB6l") != std::string::npos);
  const nexa::json::Value v = nexa::json::parse(line);
  CHECK(field(v, "headword") == s.headword);
  CHECK(field(v, "domain") == "PHYS");
  CHECK(field(v, "text") == s.text);
  CHECK(field(v, "tagged") == "[PHYS] " + s.text);
  CHECK_FALSE(contains_tag(field(v, "text")));
}

TEST_CASE("gcide: dictd numbers, the index, gzip") {
  CHECK(gcide::decode_dictd_number("BQ+") == 5182);
  CHECK(gcide::decode_dictd_number("A") == 0);
  CHECK(gcide::decode_dictd_number("/") == 63);
  CHECK_THROWS_AS((void)gcide::decode_dictd_number("B!"), nexa::Error);
  const auto entries = gcide::parse_index("Zoa\tCYUXh\tEp\nZodiacal light\tCYQC6\tJ3\n");
  REQUIRE(entries.size() == 2);
  CHECK(entries[1].headword == "Zodiacal light");
  CHECK(entries[1].offset == gcide::decode_dictd_number("CYQC6"));
  CHECK_THROWS_AS((void)gcide::parse_index("no tabs here\n"), nexa::Error);
  const std::string text = "two members of a dictzip-like file\n";
  CHECK(gcide::gunzip(gzip(text)) == text);
  CHECK(gcide::gunzip(gzip(text) + gzip(text)) == text + text);
  CHECK_THROWS_AS((void)gcide::gunzip(std::string(40, 'x')), nexa::Error);
}

TEST_CASE("gcide: a missing package is a clear error") {
  try {
    (void)gcide::build_corpus(std::filesystem::path("/nonexistent/dictd"));
    FAIL("no error");
  } catch (const nexa::Error& e) {
    CHECK(std::string(e.what()).find("dict-gcide") != std::string::npos);
  }
}

TEST_CASE("gcide: the split is deterministic, case-blind and about 80/10/10") {
  CHECK(gcide::split_of("Tooth") == gcide::split_of("tooth"));
  CHECK(gcide::split_of("TOOTH") == gcide::split_of("tooth"));
  CHECK(gcide::fnv1a64("") == 14695981039346656037ull);
  CHECK(gcide::fnv1a64("a") == 0xaf63dc4c8601ec8cull);  // the FNV-1a 64 test vector
  std::size_t n[3] = {};
  for (int i = 0; i < 20000; ++i) {
    const std::string w = "word" + std::to_string(i);
    const gcide::Split s = gcide::split_of(w);
    CHECK(s == gcide::split_of(w));
    ++n[static_cast<std::size_t>(s)];
  }
  CHECK(n[0] > 15600);
  CHECK(n[0] < 16400);
  CHECK(n[1] > 1800);
  CHECK(n[1] < 2200);
  CHECK(n[2] > 1800);
  CHECK(n[2] < 2200);
}

TEST_CASE("gcide: a corpus from a small dictd dictionary; one headword never in two splits") {
  // Articles separated by blank lines as in gcide.dict, one index line per article and a
  // second index word for one of them (phrases point at their article too).
  const std::vector<std::string_view> articles = {kTooth, kAcerose, kWistit, kFoot, kWistit};
  std::string dict;
  std::string index = "00-database-info\tA\tB\n";
  for (const std::string_view a : articles) {
    index += "w\t" + dictd_number(dict.size()) + "\t" + dictd_number(a.size()) + "\n";
    index += "w2\t" + dictd_number(dict.size()) + "\t" + dictd_number(a.size()) + "\n";
    dict += a;
    dict += "\n";
  }
  const gcide::Corpus corpus = gcide::build_corpus(index, dict);
  CHECK(corpus.stats.articles == 6);
  CHECK(corpus.samples.size() == 4 + 2 + 1 + 2);
  CHECK(corpus.stats.duplicates == 1);  // the second Wistit
  const gcide::Counts counts = gcide::count_samples(corpus.samples);
  std::size_t total = 0;
  for (const auto& row : counts) {
    for (const std::size_t c : row) total += c;
  }
  CHECK(total == corpus.samples.size());
  std::map<std::string, gcide::Split> split_of;
  for (const auto& s : corpus.samples) {
    const auto [it, fresh] = split_of.emplace(gcide::lower_ascii(s.headword), gcide::split_of(s.headword));
    CHECK(it->second == gcide::split_of(s.headword));
  }
  const std::string bad_index = "w\t" + dictd_number(dict.size()) + "\tB\n";
  CHECK_THROWS_AS((void)gcide::build_corpus(bad_index, dict), nexa::Error);
}

TEST_CASE("gcide: the real corpus (Debian package dict-gcide)" * doctest::skip(!kHaveGcide)) {
  const gcide::Corpus corpus = gcide::build_corpus(kDictDir);
  const gcide::Counts counts = gcide::count_samples(corpus.samples);
  const std::size_t expected[gcide::kNumDomains] = {1400, 20000, 4800, 2600};  // PHYS BIO MAT MED
  for (std::size_t d = 0; d < gcide::kNumDomains; ++d) {
    const std::size_t total = counts[d][0] + counts[d][1] + counts[d][2];
    INFO(gcide::domain_name(gcide::kDomains[d]), ": ", total, " samples");
    CHECK(static_cast<double>(total) > 0.6 * static_cast<double>(expected[d]));
    CHECK(static_cast<double>(total) < 1.4 * static_cast<double>(expected[d]));
    // Validation and test hold about a tenth each.
    CHECK(static_cast<double>(counts[d][1]) > 0.06 * static_cast<double>(total));
    CHECK(static_cast<double>(counts[d][2]) > 0.06 * static_cast<double>(total));
  }
  CHECK(corpus.stats.ambiguous > 0);
  CHECK(corpus.stats.ambiguous < 1000);
  std::map<std::string, gcide::Split> split_of;
  std::size_t bad_tag = 0, bad_utf8 = 0, bad_json = 0, empty = 0, leaked = 0;
  for (const gcide::Sample& s : corpus.samples) {
    if (contains_tag(s.text)) ++bad_tag;
    if (!nexa::json::is_valid_utf8(s.text) || !nexa::json::is_valid_utf8(s.headword)) ++bad_utf8;
    if (s.text.empty() || s.headword.empty()) ++empty;
    if (s.text.find("[1913 Webster]") != std::string::npos || s.text.find('\\') != std::string::npos) ++leaked;
    const auto [it, fresh] = split_of.emplace(gcide::lower_ascii(s.headword), gcide::split_of(s.headword));
    if (it->second != gcide::split_of(s.headword)) FAIL("headword ", s.headword, " in two splits");
  }
  CHECK(bad_tag == 0);
  CHECK(bad_utf8 == 0);
  CHECK(empty == 0);
  CHECK(leaked == 0);
  // Every 50th sample written as a JSON line reads back.
  for (std::size_t i = 0; i < corpus.samples.size(); i += 50) {
    const gcide::Sample& s = corpus.samples[i];
    const nexa::json::Value v = nexa::json::parse(gcide::to_json_line(s));
    if (field(v, "text") != s.text || field(v, "tagged") != gcide::tagged_text(s)) ++bad_json;
  }
  CHECK(bad_json == 0);
  MESSAGE("GCIDE corpus: PHYS ", counts[0][0] + counts[0][1] + counts[0][2], ", BIO ",
          counts[1][0] + counts[1][1] + counts[1][2], ", MAT ", counts[2][0] + counts[2][1] + counts[2][2], ", MED ",
          counts[3][0] + counts[3][1] + counts[3][2], "; ", corpus.stats.ambiguous, " ambiguous dropped");
}
