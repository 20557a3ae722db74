// The WordNet out-of-domain evaluation set (examples/data/wordnet_domains.hpp) on hand-written
// data.* lines in WordNet 3.0's format, and on the installed package where there is one.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "../data/wordnet_domains.hpp"

namespace {

// A licence header line, topic synsets, and synsets pointing at them (";c").
const char* const kNoun =
    "  1 This software and database is being provided to you, the LICENSEE, by\n"
    "06090869 09 n 02 physics 0 natural_philosophy 0 001 @ 06000400 n 0000 | the science of matter and energy\n"
    "06066555 09 n 01 botany 0 000 | the branch of biology that studies plants\n"
    "06084469 09 n 01 chemistry 0 000 | the science of matter\n"
    "08441203 14 n 01 law 0 000 | the collection of rules\n"
    "11515051 19 n 01 tension 0 004 @ 11514805 n 0000 ;c 06090869 n 0000 + 01572746 v 0102 + 00536304 v 0101 | "
    "(physics) a stress that produces an elongation of an elastic physical body; \"the direction of maximum "
    "tension\"  \n"
    "11111111 03 n 01 pollen_tube 0 002 ;c 06066555 n 0000 ;c 06090869 n 0000 | a tube, in both fields\n"
    "22222222 03 n 01 tort 0 001 ;c 08441203 n 0000 | a wrongful act\n"
    "33333333 03 n 01 acid_test 0 001 ;c 06084469 n 0000 | \"only an example\"\n";
const char* const kVerb =
    "00445940 30 v 02 crystallize 1 crystallise 1 002 > 00443670 v 0000 ;c 06084469 n 0000 02 + 08 00 + 11 00 | "
    "cause to form crystals   or assume crystalline form; \"crystallize minerals\"\n";
const char* const kAdj = "00014358 00 s 02 leafy(a) 0 galore(ip) 0 001 ;c 06066555 n 0000 | having leaves\n";
const char* const kAdv = "";

std::vector<wordnet::DataFile> files() {
  return {{"data.noun", kNoun}, {"data.verb", kVerb}, {"data.adj", kAdj}, {"data.adv", kAdv}};
}

}  // namespace

TEST_CASE("mapping table") {
  CHECK(wordnet::domain_of_topic("physics") == wordnet::Domain::PHYS);
  CHECK(wordnet::domain_of_topic("electricity") == wordnet::Domain::PHYS);
  CHECK(wordnet::domain_of_topic("botany") == wordnet::Domain::BIO);
  CHECK(wordnet::domain_of_topic("crystallography") == wordnet::Domain::MAT);
  CHECK(wordnet::domain_of_topic("medicine") == wordnet::Domain::MED);
  CHECK_FALSE(wordnet::domain_of_topic("law").has_value());
  CHECK_FALSE(wordnet::domain_of_topic("biochemistry").has_value());
  CHECK_FALSE(wordnet::domain_of_topic("plant").has_value());
}

TEST_CASE("one synset line") {
  const wordnet::Synset s = wordnet::parse_synset_line(
      "11515051 19 n 01 tension 0 004 @ 11514805 n 0000 ;c 06090869 n 0000 + 01572746 v 0102 + 00536304 v 0101 | "
      "(physics) a stress",
      7);
  CHECK(s.offset == "11515051");
  CHECK(s.pos == 'n');
  CHECK(s.words == std::vector<std::string>{"tension"});
  REQUIRE(s.pointers.size() == 4);
  CHECK(s.pointers[1].symbol == ";c");
  CHECK(s.pointers[1].offset == "06090869");
  CHECK(s.pointers[1].pos == 'n');
  CHECK(s.gloss == "(physics) a stress");
  CHECK_THROWS_WITH(static_cast<void>(wordnet::parse_synset_line("11515051 19 n 0x tension 0 000 | x", 7)),
                    doctest::Contains("line 7: bad word count"));
  CHECK_THROWS_WITH(static_cast<void>(wordnet::parse_synset_line("11515051 19 n 01 tension 0 002 @ 1 n 0000 | x", 9)),
                    doctest::Contains("line 9: truncated pointer list"));
}

TEST_CASE("headwords and definitions") {
  CHECK(wordnet::headword_of("natural_philosophy") == "natural philosophy");
  CHECK(wordnet::headword_of("galore(ip)") == "galore");
  CHECK(wordnet::headword_of("leafy(a)") == "leafy");
  CHECK(wordnet::definition_of("(physics) a stress; \"an example\"; \"another\"") == "a stress");
  CHECK(wordnet::definition_of("(biology) (botany) the  basic\tunit;  ") == "the basic unit");
  CHECK(wordnet::definition_of("a unit (as of work); used in physics; \"x\"") ==
        "a unit (as of work); used in physics");
  CHECK(wordnet::definition_of("\"only an example\"").empty());
}

TEST_CASE("the evaluation set from hand-written files") {
  const wordnet::EvalSet set = wordnet::build_eval_set(files());
  REQUIRE(set.samples.size() == 3);
  CHECK(set.samples[0].headword == "tension");
  CHECK(set.samples[0].domain == wordnet::Domain::PHYS);
  CHECK(set.samples[0].text == "a stress that produces an elongation of an elastic physical body");
  CHECK(set.samples[0].topic == "physics");
  CHECK(set.samples[0].synset == "n11515051");
  CHECK(set.samples[1].headword == "crystallize");
  CHECK(set.samples[1].domain == wordnet::Domain::MAT);
  CHECK(set.samples[1].text == "cause to form crystals or assume crystalline form");
  CHECK(set.samples[2].headword == "leafy");
  CHECK(set.samples[2].domain == wordnet::Domain::BIO);
  CHECK(set.samples[2].synset == "a00014358");
  CHECK(set.stats.synsets == 10);
  CHECK(set.stats.with_topic == 6);
  CHECK(set.stats.in_table == 5);
  CHECK(set.stats.ambiguous == 1);  // pollen tube: botany and physics
  CHECK(set.stats.empty == 1);      // acid test: an example only
  CHECK(set.stats.label_removed == 1);
  CHECK(wordnet::to_json_line(set.samples[0]) ==
        "{\"headword\": \"tension\", \"domain\": \"PHYS\", \"text\": \"a stress that produces an elongation of an "
        "elastic physical body\", \"topic\": \"physics\", \"synset\": \"n11515051\"}");
  const auto counts = wordnet::count_samples(set.samples);
  CHECK(counts[0] == 1);
  CHECK(counts[1] == 1);
  CHECK(counts[2] == 1);
  CHECK(counts[3] == 0);
}

TEST_CASE("errors") {
  std::vector<wordnet::DataFile> f = files();
  f[1].text = "00445940 30 v 01 crystallize 1 001 ;c 99999999 n 0000 | x\n";
  CHECK_THROWS_WITH(static_cast<void>(wordnet::build_eval_set(f)), doctest::Contains("is not in data.noun"));
  f[1].text = "garbage\n";
  CHECK_THROWS_WITH(static_cast<void>(wordnet::build_eval_set(f)), doctest::Contains("data.verb: wordnet: line 1"));
  CHECK_THROWS_WITH(static_cast<void>(wordnet::build_eval_set(std::filesystem::path("/no/such/wordnet"))),
                    doctest::Contains("install the Debian package wordnet-base"));
}

TEST_CASE("the installed package (wordnet-base)") {
  const std::filesystem::path dir = "/usr/share/wordnet";
  if (!std::filesystem::exists(dir / "data.noun")) {
    MESSAGE("wordnet-base is not installed: skipped");
    return;
  }
  const wordnet::EvalSet set = wordnet::build_eval_set(dir);
  const auto counts = wordnet::count_samples(set.samples);
  // WordNet 3.0 (Debian wordnet-base 1:3.0): 304 PHYS, 576 BIO, 221 MAT, 243 MED glosses.
  CHECK(counts[0] > 200);
  CHECK(counts[1] > 400);
  CHECK(counts[2] > 150);
  CHECK(counts[3] > 150);
  for (const wordnet::Sample& s : set.samples) {
    CHECK_FALSE(s.text.empty());
    CHECK(s.text.front() != '(');
  }
}
