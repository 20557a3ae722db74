// nexa-spec's pieces: MGF parsing and its errors, peak selection and bins, masking, batches, the
// split, the baselines, and a checkpoint round trip of the encoder.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <filesystem>
#include <random>
#include <set>
#include <string>

#include "mgf.hpp"
#include "nexa/io/safetensors.hpp"
#include "peaks.hpp"

using nexa::index_t;
using namespace nexa_spec;

namespace {

constexpr const char* kTwoSpectra =
    "# a comment\n"
    "MASS=Monoisotopic\n"
    "BEGIN IONS\n"
    "TITLE=first spectrum\n"
    "PEPMASS=457.72 1234.5\n"
    "CHARGE=2+\n"
    "RTINSECONDS=1503.9\n"
    "147.29 3.4\n"
    "175.119\t20\n"
    "300.5 10 1\n"
    "END IONS\n"
    "\n"
    "BEGIN IONS\r\n"
    "TITLE=second\r\n"
    "110.07 0.30\r\n"
    "END IONS\r\n";

std::string error_of(const std::string& text) {
  try {
    (void)parse_mgf(text, "bad.mgf");
  } catch (const nexa::Error& e) {
    return e.what();
  }
  return "";
}

Spectrum spectrum(std::vector<double> mz, std::vector<double> intensity) {
  return Spectrum{.source = "t.mgf", .title = "s", .precursor_mz = 500, .charge = 2, .mz = mz, .intensity = intensity};
}

}  // namespace

TEST_CASE("parse_mgf: spectra, precursor, charge, peaks; global lines, comments and CRLF") {
  const auto s = parse_mgf(kTwoSpectra, "two.mgf");
  REQUIRE(s.size() == 2);
  CHECK(s[0].title == "first spectrum");
  CHECK(s[0].source == "two.mgf");
  CHECK(s[0].precursor_mz == doctest::Approx(457.72));
  CHECK(s[0].charge == 2);
  CHECK(s[0].mz == std::vector<double>{147.29, 175.119, 300.5});
  CHECK(s[0].intensity == std::vector<double>{3.4, 20, 10});
  CHECK(s[1].title == "second");
  CHECK(s[1].precursor_mz == 0);
  CHECK(s[1].charge == 0);
  CHECK(s[1].mz.size() == 1);
}

TEST_CASE("parse_mgf: malformed input names the file and the line") {
  CHECK(error_of("BEGIN IONS\n100.0 abc\nEND IONS\n") ==
        "mgf: bad.mgf:2: expected a peak 'm/z intensity', got '100.0 abc'");
  CHECK(error_of("BEGIN IONS\n100.0\nEND IONS\n").find("bad.mgf:2: expected a peak") != std::string::npos);
  CHECK(error_of("BEGIN IONS\n100 1 2 3\nEND IONS\n").find("bad.mgf:2:") != std::string::npos);
  CHECK(error_of("BEGIN IONS\n-5 1\nEND IONS\n").find("bad.mgf:2: m/z and intensity must be non-negative") !=
        std::string::npos);
  CHECK(error_of("BEGIN IONS\n100 nan\nEND IONS\n").find("bad.mgf:2:") != std::string::npos);
  CHECK(error_of("BEGIN IONS\nBEGIN IONS\n").find("bad.mgf:2: BEGIN IONS inside the spectrum that began on line 1") !=
        std::string::npos);
  CHECK(error_of("END IONS\n") == "mgf: bad.mgf:1: END IONS without BEGIN IONS");
  CHECK(error_of("BEGIN IONS\n100 1\n") == "mgf: bad.mgf: the spectrum that began on line 1 has no END IONS");
  CHECK(error_of("BEGIN IONS\nPEPMASS=heavy\nEND IONS\n").find("bad.mgf:2: PEPMASS expects") != std::string::npos);
  CHECK(error_of("BEGIN IONS\njunk line\nEND IONS\n").find("bad.mgf:2:") != std::string::npos);
  CHECK(error_of("stray text\n").find("bad.mgf:1: expected BEGIN IONS") != std::string::npos);
  CHECK_THROWS_AS((void)read_mgf("/nonexistent/file.mgf"), nexa::Error);
}

TEST_CASE("bins: 1 Da m/z bins clamped to the range; intensity bins are halvings of the base peak") {
  const Binning b{.mz_bin_width = 1.0, .mz_bins = 2048, .intensity_bins = 8};
  CHECK(mz_bin(0.2, b) == 0);
  CHECK(mz_bin(147.29, b) == 147);
  CHECK(mz_bin(5000.0, b) == 2047);
  CHECK(mz_bin(10.5, {.mz_bin_width = 0.5, .mz_bins = 100}) == 21);
  CHECK(intensity_bin(1.0, b) == 0);
  CHECK(intensity_bin(0.5, b) == 1);
  CHECK(intensity_bin(0.49, b) == 1);
  CHECK(intensity_bin(0.26, b) == 1);
  CHECK(intensity_bin(0.25, b) == 2);
  CHECK(intensity_bin(1e-6, b) == 7);
  CHECK(intensity_bin(0.0, b) == 7);
}

TEST_CASE("select_peaks: the most intense peaks, sorted by m/z, relative to the base peak") {
  const Binning b;
  const Peaks p = select_peaks(spectrum({300, 100, 200, 400, 150}, {5, 40, 0, 10, 20}), 3, b);
  CHECK(p.id == "t.mgf:s");
  CHECK(p.precursor_mz == 500);
  CHECK(p.mz == std::vector<double>{100, 150, 400});  // 200 has no intensity; 300 is the weakest left
  CHECK(p.relative == std::vector<double>{1.0, 0.5, 0.25});
  CHECK(p.mz_bins == std::vector<std::int32_t>{100, 150, 400});
  CHECK(p.intensity_bins == std::vector<std::int32_t>{0, 1, 2});
  CHECK(select_peaks(spectrum({}, {}), 3, b).size() == 0);
  CHECK_THROWS_AS((void)select_peaks(spectrum({1}, {1}), 0, b), nexa::Error);
}

TEST_CASE("choose_masked: round(fraction * n) distinct sorted peaks, at least one, deterministic by seed") {
  std::mt19937_64 a(7), b(7);
  const auto m = choose_masked(100, 0.15, a);
  CHECK(m.size() == 15);
  CHECK(std::set<index_t>(m.begin(), m.end()).size() == 15);
  CHECK(std::is_sorted(m.begin(), m.end()));
  CHECK(m.front() >= 0);
  CHECK(m.back() < 100);
  CHECK(choose_masked(100, 0.15, b) == m);
  CHECK(choose_masked(3, 0.15, a).size() == 1);
  CHECK(choose_masked(0, 0.15, a).empty());
  // Over many draws every position gets masked about equally often.
  std::vector<int> hits(10, 0);
  for (int i = 0; i < 2000; ++i)
    for (const index_t j : choose_masked(10, 0.2, a)) ++hits[static_cast<std::size_t>(j)];
  for (const int h : hits) CHECK(std::abs(h - 400) < 80);
}

TEST_CASE("make_batch: [CLS] [PREC] peaks, masked tokens hidden, padding, global flags, targets") {
  const Binning bins;
  const Peaks p1 = select_peaks(spectrum({100, 150, 400}, {40, 20, 10}), 10, bins);
  const Peaks p2 = select_peaks(spectrum({120}, {5}), 10, bins);
  const Batch batch = make_batch({&p1, &p2}, {{1}, {}});
  const auto& t = batch.tokens;
  REQUIRE(t.mz.shape() == nexa::Shape{2, 5});
  CHECK(t.type.to_host() == std::vector<std::int32_t>{kCls, kPrecursor, kPeak, kMask, kPeak,  //
                                                      kCls, kPrecursor, kPeak, kPeak, kPeak});
  CHECK(t.padding.to_host() == std::vector<std::int32_t>{1, 1, 1, 1, 1, 1, 1, 1, 0, 0});
  CHECK(t.global.to_host() == std::vector<std::int32_t>{1, 1, 0, 0, 0, 1, 1, 0, 0, 0});
  CHECK(t.mz.data()[1] == 500.f);  // [PREC] carries the precursor m/z
  CHECK(t.mz.data()[2] == 100.f);
  CHECK(t.mz.data()[3] == 0.f);  // masked: no m/z, no intensity
  CHECK(t.intensity.data()[3] == 0.f);
  CHECK(t.intensity.data()[2] == 1.f);
  CHECK(t.intensity.data()[4] == doctest::Approx(0.5));  // sqrt(10 / 40)
  CHECK(t.masked == std::vector<index_t>{3});
  CHECK(batch.mz_targets == std::vector<std::int32_t>{150});
  CHECK(batch.intensity_targets == std::vector<std::int32_t>{1});
  CHECK_THROWS_AS((void)make_batch({&p1}, {{3}}), nexa::Error);
  CHECK_THROWS_AS((void)make_batch({&p1}, {}), nexa::Error);
}

TEST_CASE("split by spectrum id: deterministic, about one in N") {
  const Binning b;
  int valid = 0;
  for (int i = 0; i < 1000; ++i) {
    Spectrum s = spectrum({100}, {1});
    s.title = "scan=" + std::to_string(i);
    const Peaks p = select_peaks(s, 5, b);
    CHECK(is_validation(p, 10) == is_validation(select_peaks(s, 5, b), 10));
    valid += is_validation(p, 10);
  }
  CHECK(valid > 60);
  CHECK(valid < 140);
}

TEST_CASE("baselines: the most frequent bins of the training peaks; the neighbour midpoint") {
  const Binning b;
  const Peaks p1 = select_peaks(spectrum({100.2, 101.7, 300}, {40, 10, 40}), 10, b);
  const Peaks p2 = select_peaks(spectrum({100.9, 200}, {8, 16}), 10, b);
  const FrequencyBaseline f = FrequencyBaseline::fit({&p1, &p2}, b);
  CHECK(f.mz == 100);                                     // 100.2 and 100.9
  CHECK(f.intensity == 0);                                // 1.0 (twice) and 1.0: three base peaks against 0.25 and 0.5
  const auto mid = neighbour_midpoint(p1, {1}, 1, f, b);  // between 100.2 and 300
  CHECK(mid.mz == 200);
  CHECK(mid.intensity == 0);                              // mean of 1.0 and 1.0
  const auto end = neighbour_midpoint(p1, {2}, 2, f, b);  // only 101.7 on its left
  CHECK(end.mz == 101);
  CHECK(end.intensity == 2);
  const auto none = neighbour_midpoint(p2, {0, 1}, 0, f, b);
  CHECK(none.mz == f.mz);
  Accuracy a;
  a.add(100, 100, 0, 1);
  a.add(100, 101, 1, 1);
  a.add(100, 150, 2, 1);
  CHECK(a.mz_acc() == doctest::Approx(1.0 / 3));
  CHECK(a.mz_within1_acc() == doctest::Approx(2.0 / 3));
  CHECK(a.intensity_acc() == doctest::Approx(1.0 / 3));
}

TEST_CASE("the encoder's checkpoint reloads to the same predictions") {
  const Binning bins{.mz_bins = 64, .intensity_bins = 4};
  const nexa::SpecEncoderConfig config{.embedding = {.d_model = 8, .frequencies = 4, .token_types = kTokenTypes},
                                       .layers = 1,
                                       .heads = 2,
                                       .d_ff = 16,
                                       .mz_bins = bins.mz_bins,
                                       .intensity_bins = bins.intensity_bins};
  nexa::Rng rng_a(1), rng_b(2);
  nexa::SpecEncoder<> a(config, rng_a), b(config, rng_b);
  a.set_training(false);
  b.set_training(false);
  const Peaks p = select_peaks(spectrum({10, 20.5, 33, 47}, {4, 8, 2, 1}), 10, bins);
  const Batch batch = make_batch({&p}, {{0, 2}});
  const auto path = std::filesystem::temp_directory_path() / "nexa_spec_test_checkpoint.safetensors";
  nexa::save_safetensors(a, path);
  nexa::load_safetensors(b, path);
  std::filesystem::remove(path);
  nexa::SpecEncoder<>::Cache ca, cb;
  const auto la = a.forward(batch.tokens, ca), lb = b.forward(batch.tokens, cb);
  CHECK(la.mz.to_host() == lb.mz.to_host());
  CHECK(la.intensity.to_host() == lb.intensity.to_host());
}
