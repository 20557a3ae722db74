// The naive Bayes baseline of issue 7's routing CLI on a tiny hand-made corpus whose posteriors
// are computed by hand, its metrics, and its JSON-lines reader on malformed lines.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "naive_bayes.hpp"

namespace {

// Two classes, alpha 1:
//   A: "ball goal", "Ball!"   -> ball 2, goal 1: 3 tokens, 2 documents
//   B: "cell"                 -> cell 1:         1 token,  1 document
// Vocabulary {ball, goal, cell}: |V| = 3. Priors 2/3, 1/3.
//   P(ball|A) = 3/6, P(goal|A) = 2/6, P(cell|A) = 1/6
//   P(ball|B) = 1/4, P(goal|B) = 1/4, P(cell|B) = 2/4
nb::Model tiny_model() {
  const std::vector<nb::LabelledText> data = {{"ball goal", 0}, {"Ball!", 0}, {"cell", 1}};
  return nb::train(data, {"A", "B"}, 1.0);
}

}  // namespace

TEST_CASE("tokenize: lower-cased runs of letters and digits, UTF-8 kept inside words") {
  const std::vector<std::string> want = {"the", "h2o", "molecule", "zoöl", "x", "10", "3"};
  CHECK(nb::tokenize("The H2O-molecule (Zoöl.) x=10^3") == want);
  CHECK(nb::tokenize("").empty());
  CHECK(nb::tokenize(" ,;()! ").empty());
}

TEST_CASE("training counts") {
  const nb::Model m = tiny_model();
  CHECK(m.num_classes() == 2);
  CHECK(m.vocabulary_size() == 3);
  CHECK(m.documents == std::vector<std::size_t>{2, 1});
  CHECK(m.tokens == std::vector<std::size_t>{3, 1});
  CHECK(m.counts.at("ball") == std::vector<std::size_t>{2, 0});
  CHECK(nb::majority_class(m) == 0);
}

TEST_CASE("posteriors computed by hand") {
  const nb::Model m = tiny_model();
  SUBCASE("ball cell: A 2/3*3/6*1/6 = 1/18, B 1/3*1/4*2/4 = 1/24 -> 4/7, 3/7") {
    const nb::Prediction p = nb::predict(m, "ball cell");
    CHECK(p.label == 0);
    CHECK(p.known_tokens == 2);
    CHECK(p.probs[0] == doctest::Approx(4.0 / 7.0).epsilon(1e-12));
    CHECK(p.probs[1] == doctest::Approx(3.0 / 7.0).epsilon(1e-12));
    CHECK(p.log_scores[0] == doctest::Approx(std::log(1.0 / 18.0)).epsilon(1e-12));
    CHECK(p.log_scores[1] == doctest::Approx(std::log(1.0 / 24.0)).epsilon(1e-12));
  }
  SUBCASE("Cell, CELL! (case and punctuation): A 2/3*(1/6)^2 = 1/54, B 1/3*(2/4)^2 = 1/12 -> 2/11, 9/11") {
    const nb::Prediction p = nb::predict(m, "Cell, CELL!");
    CHECK(p.label == 1);
    CHECK(p.probs[0] == doctest::Approx(2.0 / 11.0).epsilon(1e-12));
    CHECK(p.probs[1] == doctest::Approx(9.0 / 11.0).epsilon(1e-12));
  }
  SUBCASE("unknown words only: the priors") {
    const nb::Prediction p = nb::predict(m, "quark gluon");
    CHECK(p.known_tokens == 0);
    CHECK(p.label == 0);
    CHECK(p.probs[0] == doctest::Approx(2.0 / 3.0).epsilon(1e-12));
    CHECK(p.probs[1] == doctest::Approx(1.0 / 3.0).epsilon(1e-12));
  }
  SUBCASE("a long text does not underflow: log space") {
    std::string text;
    for (int i = 0; i < 2000; ++i) text += "cell goal ";
    const nb::Prediction p = nb::predict(m, text);
    // Per pair: A 1/6*2/6 = 1/18, B 2/4*1/4 = 1/8: B wins by (18/8)^2000.
    CHECK(p.label == 1);
    CHECK(p.probs[1] == doctest::Approx(1.0));
    CHECK(std::isfinite(p.log_scores[0]));
  }
}

TEST_CASE("alpha changes the smoothing") {
  const std::vector<nb::LabelledText> data = {{"ball goal", 0}, {"Ball!", 0}, {"cell", 1}};
  const nb::Model m = nb::train(data, {"A", "B"}, 0.5);
  // P(cell|A) = 0.5/(3+1.5) = 1/9, P(cell|B) = 1.5/(1+1.5) = 3/5: A 2/3*1/9 = 2/27, B 1/3*3/5 = 1/5.
  const nb::Prediction p = nb::predict(m, "cell");
  CHECK(p.probs[1] == doctest::Approx((1.0 / 5.0) / (1.0 / 5.0 + 2.0 / 27.0)).epsilon(1e-12));
}

TEST_CASE("training errors") {
  CHECK_THROWS_WITH(static_cast<void>(nb::train({{"x", 0}}, {"A", "B"})),
                    doctest::Contains("no training document for label 'B'"));
  CHECK_THROWS_WITH(static_cast<void>(nb::train({{"x", 2}}, {"A", "B"})), doctest::Contains("out of range"));
  CHECK_THROWS_WITH(static_cast<void>(nb::train({{"x", 0}}, {"A"}, 0.0)), doctest::Contains("alpha"));
}

TEST_CASE("metrics") {
  // 3 classes; truth 5 x P, 3 x B, 2 x M.
  const std::vector<std::string> labels = {"P", "B", "M"};
  const std::vector<std::size_t> truth = {0, 0, 0, 0, 0, 1, 1, 1, 2, 2};
  const std::vector<std::size_t> predicted = {0, 0, 0, 1, 2, 1, 1, 0, 2, 2};
  const nb::Evaluation e = nb::evaluate(labels, truth, predicted);
  const std::vector<std::vector<std::size_t>> want = {{3, 1, 1}, {1, 2, 0}, {0, 0, 2}};
  CHECK(e.counts == want);
  CHECK(e.total() == 10);
  CHECK(e.correct() == 7);
  CHECK(e.accuracy() == doctest::Approx(0.7));
  CHECK(e.support(0) == 5);
  CHECK(e.class_accuracy(0) == doctest::Approx(0.6));
  CHECK(e.class_accuracy(1) == doctest::Approx(2.0 / 3.0));
  CHECK(e.class_accuracy(2) == doctest::Approx(1.0));
  CHECK(e.macro_accuracy() == doctest::Approx((0.6 + 2.0 / 3.0 + 1.0) / 3.0));
  CHECK(e.constant_accuracy(0) == doctest::Approx(0.5));

  SUBCASE("a class without samples: NaN recall, left out of the macro average") {
    const nb::Evaluation f = nb::evaluate(labels, {0, 0, 1}, {0, 1, 1});
    CHECK(std::isnan(f.class_accuracy(2)));
    CHECK(f.macro_accuracy() == doctest::Approx((0.5 + 1.0) / 2.0));
  }
  SUBCASE("an empty set") {
    const nb::Evaluation f = nb::evaluate(labels, {}, {});
    CHECK(std::isnan(f.accuracy()));
    CHECK(std::isnan(f.macro_accuracy()));
  }
  SUBCASE("the table: a row per true class, a column per prediction") {
    CHECK(e.table("confusion") ==
          "confusion\n"
          "            P      B      M\n"
          "P           3      1      1\n"
          "B           1      2      0\n"
          "M           0      0      2\n");
  }
  CHECK_THROWS_WITH(static_cast<void>(nb::evaluate(labels, {0}, {})), doctest::Contains("predictions"));
  CHECK_THROWS_WITH(static_cast<void>(nb::evaluate(labels, {0}, {3})), doctest::Contains("out of range"));
}

TEST_CASE("evaluate a model") {
  const nb::Model m = tiny_model();
  const nb::Evaluation e = nb::evaluate(m, {{"ball", 0}, {"cell", 1}, {"cell cell", 0}});
  CHECK(e.counts == std::vector<std::vector<std::size_t>>{{1, 1}, {0, 1}});
}

TEST_CASE("JSON lines: malformed lines are reported by line number and skipped") {
  const std::vector<std::string> labels = {"PHYS", "BIO", "MAT"};
  const std::string data =
      "{\"headword\": \"acid\", \"domain\": \"MAT\", \"text\": \"a sour compound\"}\n"   // 1
      "\n"                                                                               // 2: blank
      "{\"domain\": \"BIO\", \"text\": \"a small plant\"\n"                              // 3: bad JSON
      "[1, 2]\n"                                                                         // 4: not an object
      "{\"domain\": \"BIO\"}\n"                                                          // 5: no text
      "{\"domain\": 7, \"text\": \"x\"}\n"                                               // 6: domain not a string
      "{\"domain\": \"MED\", \"text\": \"a remedy\"}\n"                                  // 7: unknown domain
      "{\"domain\": \"PHYS\", \"text\": \"a lens\", \"tagged\": \"[PHYS] a lens\"}\r\n"  // 8: CRLF
      "{\"domain\": \"BIO\", \"text\": \"the last line\"}";                              // 9: no newline
  const nb::ReadResult r = nb::read_jsonl(data, "f.jsonl", labels);
  CHECK(r.lines == 8);
  REQUIRE(r.samples.size() == 3);
  CHECK(r.samples[0].text == "a sour compound");
  CHECK(r.samples[0].label == 2);
  CHECK(r.samples[1].text == "a lens");
  CHECK(r.samples[1].label == 0);
  CHECK(r.samples[2].label == 1);
  REQUIRE(r.errors.size() == 5);
  CHECK(r.errors[0].find("f.jsonl:3: invalid JSON") == 0);
  CHECK(r.errors[1] == "f.jsonl:4: not a JSON object");
  CHECK(r.errors[2] == "f.jsonl:5: no string field \"text\"");
  CHECK(r.errors[3] == "f.jsonl:6: no string field \"domain\"");
  CHECK(r.errors[4] == "f.jsonl:7: unknown domain 'MED' (expected PHYS, BIO or MAT)");
}
