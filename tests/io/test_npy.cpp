#include <doctest/doctest.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>

#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include "io/io_test_util.hpp"
#include "nexa/io/npy.hpp"
#include "nexa/io/xtensor.hpp"

using nexa::Shape;
using nexa::Tensor;
using nexa::testing::read_bytes;
using nexa::testing::TempDir;
using nexa::testing::write_bytes;

namespace {

template <class T>
bool same_bits(const Tensor<T>& a, const Tensor<T>& b) {
  return a.shape() == b.shape() &&
         (a.numel() == 0 || std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.numel()) * sizeof(T)) == 0);
}

// An .npy file (format 1.0) with the given header dictionary, padded as numpy pads it.
std::string craft_npy(const std::string& dict, const std::string& data, char major = 1) {
  std::string header = dict;
  const std::size_t preamble = major == 1 ? 10 : 12;
  while ((preamble + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out("\x93NUMPY", 6);
  out += major;
  out += '\0';
  const std::size_t n = header.size();
  out += static_cast<char>(n & 0xFF);
  out += static_cast<char>((n >> 8) & 0xFF);
  if (major != 1) out += std::string(2, '\0');
  return out + header + data;
}

}  // namespace

TEST_CASE("npy: save and load round-trip float, double and integer tensors") {
  TempDir dir;
  nexa::Rng rng(1);
  const auto f = Tensor<float>::randn({3, 4, 5}, rng);
  nexa::save_npy(dir / "f.npy", f);
  CHECK(same_bits(nexa::load_npy<float>(dir / "f.npy"), f));

  const auto d = Tensor<double>::randn({7}, rng);
  nexa::save_npy(dir / "d.npy", d.cview());
  CHECK(same_bits(nexa::load_npy<double>(dir / "d.npy"), d));

  const auto i = Tensor<std::int32_t>::from_host({2, 2}, {1, -2, 3, std::numeric_limits<std::int32_t>::min()});
  nexa::save_npy(dir / "i.npy", i);
  CHECK(same_bits(nexa::load_npy<std::int32_t>(dir / "i.npy"), i));

  const auto u = Tensor<std::uint8_t>::from_host({3}, {0, 128, 255});
  nexa::save_npy(dir / "u.npy", u);
  CHECK(same_bits(nexa::load_npy<std::uint8_t>(dir / "u.npy"), u));

  const auto scalar = Tensor<float>::full(Shape{}, 4.5f);
  nexa::save_npy(dir / "s.npy", scalar);
  const auto s = nexa::load_npy<float>(dir / "s.npy");
  CHECK(s.shape() == Shape{});
  CHECK(s() == 4.5f);

  const Tensor<float> empty({0, 3});
  nexa::save_npy(dir / "e.npy", empty);
  CHECK(nexa::load_npy<float>(dir / "e.npy").shape() == Shape{0, 3});

  // The written header is what numpy writes.
  CHECK(nexa::testing::contains(read_bytes(dir / "f.npy"),
                                "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4, 5), }"));
}

TEST_CASE("npy: float32 and float64 files convert; other dtypes must match") {
  TempDir dir;
  const auto d = Tensor<double>::from_host({2}, {0.1, -3.0});
  nexa::save_npy(dir / "d.npy", d);
  const auto as_float = nexa::load_npy<float>(dir / "d.npy");
  CHECK(as_float(0) == 0.1f);
  CHECK(as_float(1) == -3.0f);
  const auto f = Tensor<float>::from_host({2}, {0.1f, 2.0f});
  nexa::save_npy(dir / "f.npy", f);
  CHECK(nexa::load_npy<double>(dir / "f.npy")(0) == static_cast<double>(0.1f));

  const auto i = Tensor<std::int64_t>::from_host({1}, {5});
  nexa::save_npy(dir / "i.npy", i);
  NEXA_CHECK_ERROR_CONTAINS((void)nexa::load_npy<float>(dir / "i.npy"), "npy: ", "i.npy",
                            "dtype '<i8' does not match the tensor's '<f4'");
  NEXA_CHECK_ERROR_CONTAINS((void)nexa::load_npy<std::int32_t>(dir / "f.npy"), "dtype '<f4' does not match");
}

#ifdef NEXA_FIXTURE_DIR
TEST_CASE("npy: reads files written by numpy, C and Fortran order") {
  const std::filesystem::path fixtures = std::filesystem::path(NEXA_FIXTURE_DIR) / "io";
  const auto a = nexa::load_npy<float>(fixtures / "reference_f4.npy");
  REQUIRE(a.shape() == Shape{2, 3});
  const float expected[] = {0.5f, -1.25f, 3.0f, 4.0f, std::numeric_limits<float>::denorm_min(), -0.0f};
  for (int k = 0; k < 6; ++k)
    CHECK(std::bit_cast<std::uint32_t>(a.data()[k]) == std::bit_cast<std::uint32_t>(expected[k]));

  // np.arange(6).reshape(3, 2) / 8 stored column-major: nexa gives it back row-major.
  const auto b = nexa::load_npy<double>(fixtures / "reference_f8_fortran.npy");
  REQUIRE(b.shape() == Shape{3, 2});
  for (int k = 0; k < 6; ++k) CHECK(b.data()[k] == k / 8.0);
}
#endif

TEST_CASE("npy: headers whose length has a byte >= 0x80 load (xtensor 0.24 misreads them)") {
  TempDir dir;
  // numpy pads big headers to 0xB6 bytes (10 + 182 = 192): the low byte has its top bit set.
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }";
  dict += std::string(150, ' ');
  const std::string data = std::string("\x00\x00\x80\x3f\x00\x00\x00\x40", 8);  // 1.0f, 2.0f
  const std::string file = craft_npy(dict, data);
  REQUIRE(static_cast<unsigned char>(file[8]) >= 0x80);
  write_bytes(dir / "big.npy", file);
  const auto t = nexa::load_npy<float>(dir / "big.npy");
  CHECK(t.shape() == Shape{1, 2});
  CHECK(t(0, 1) == 2.0f);
  // Format 2.0 too.
  write_bytes(dir / "v2.npy", craft_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", data, 2));
  CHECK(nexa::load_npy<float>(dir / "v2.npy")(1) == 2.0f);
}

TEST_CASE("npy: malformed files raise nexa::Error") {
  TempDir dir;
  const auto path = dir / "bad.npy";
  nexa::save_npy(path, Tensor<float>::from_host({2, 2}, {1, 2, 3, 4}));
  const std::string good = read_bytes(path);
  auto load = [&](const std::string& bytes) {
    write_bytes(path, bytes);
    (void)nexa::load_npy<float>(path);
  };
  for (std::size_t len = 0; len < good.size(); ++len) {
    INFO("truncated to ", len);
    (void)nexa::testing::error_of([&] { load(good.substr(0, len)); });
  }
  NEXA_CHECK_ERROR_CONTAINS(load(good.substr(0, good.size() - 1)), "npy: ", path.string(), "file truncated",
                            "needs 16 data bytes");
  std::string bad_magic = good;
  bad_magic[1] = 'X';
  NEXA_CHECK_ERROR_CONTAINS(load(bad_magic), "bad magic");
  std::string bad_version = good;
  bad_version[6] = 9;
  NEXA_CHECK_ERROR_CONTAINS(load(bad_version), "unsupported npy format version 9.0");
  const std::string data(16, '\0');
  NEXA_CHECK_ERROR_CONTAINS(load(craft_npy("{'descr': '<f4', 'shape': (2, 2), }", data)), "no 'fortran_order' key");
  NEXA_CHECK_ERROR_CONTAINS(load(craft_npy("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (4,), }", data)),
                            "invalid fortran_order");
  NEXA_CHECK_ERROR_CONTAINS(load(craft_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (x,), }", data)),
                            "invalid shape");
  NEXA_CHECK_ERROR_CONTAINS(
      load(craft_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 8), }", data)),
      "too many elements");
  NEXA_CHECK_ERROR_CONTAINS(load(craft_npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }", data)),
                            "unsupported descr");
  NEXA_CHECK_ERROR_CONTAINS(load(craft_npy("{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }", data)),
                            "dtype '>f4' does not match");
  // Keys out of numpy's order: nexa accepts the header, xtensor refuses it; still a nexa::Error.
  NEXA_CHECK_ERROR_CONTAINS(load(craft_npy("{'shape': (4,), 'fortran_order': False, 'descr': '<f4', }", data)),
                            "npy: ", "header keys in wrong order");
  NEXA_CHECK_ERROR_CONTAINS((void)nexa::load_npy<float>(dir / "missing.npy"), "does not exist");
}

TEST_CASE("npy: saving is atomic") {
  TempDir dir;
  const auto path = dir / "a.npy";
  nexa::save_npy(path, Tensor<float>::full({2}, 1.0f));
  const std::string previous = read_bytes(path);
  NEXA_CHECK_ERROR_CONTAINS(nexa::save_npy(dir / "missing_dir" / "a.npy", Tensor<float>({1})),
                            "cannot create temporary file");
  std::filesystem::create_directories(dir / "occupied" / "child");
  NEXA_CHECK_ERROR_CONTAINS(nexa::save_npy(dir / "occupied", Tensor<float>({1})), "cannot rename");
  CHECK(read_bytes(path) == previous);
  CHECK(dir.entries() == 2);
}

TEST_CASE("xtensor: Tensor <-> xarray conversions") {
  nexa::Rng rng(2);
  auto t = Tensor<float>::randn({2, 3}, rng);

  xt::xarray<float> a = nexa::to_xarray(t);
  REQUIRE(a.shape().size() == 2);
  CHECK(a.shape()[0] == 2);
  CHECK(a.shape()[1] == 3);
  CHECK(a(1, 2) == t(1, 2));
  a(0, 0) = 100.0f;  // a copy
  CHECK(t(0, 0) != 100.0f);

  const auto back = nexa::from_xarray(a);
  CHECK(back.shape() == Shape{2, 3});
  CHECK(back(0, 0) == 100.0f);
  CHECK(back(1, 1) == t(1, 1));

  // Expressions, views and column-major arrays evaluate into row-major tensors.
  const auto doubled = nexa::from_xarray(a * 2.0f);
  CHECK(doubled(1, 2) == 2.0f * t(1, 2));
  const auto transposed = nexa::from_xarray(xt::transpose(a));
  CHECK(transposed.shape() == Shape{3, 2});
  CHECK(transposed(2, 1) == t(1, 2));
  const auto column = nexa::from_xarray(xt::view(a, xt::all(), 1));
  CHECK(column.shape() == Shape{2});
  CHECK(column(1) == t(1, 1));
  xt::xarray<double, xt::layout_type::column_major> cm = {{1.0, 2.0}, {3.0, 4.0}};
  const auto from_cm = nexa::from_xarray(cm);
  CHECK(from_cm.data()[1] == 2.0);
  CHECK(from_cm(1, 0) == 3.0);
  const auto scalar = nexa::from_xarray(xt::xarray<int>(7));
  CHECK(scalar.shape() == Shape{});
  CHECK(scalar() == 7);
  const auto empty = nexa::from_xarray(xt::xarray<float>::from_shape({0, 4}));
  CHECK(empty.shape() == Shape{0, 4});
}

TEST_CASE("xtensor: xt_adapt views a tensor without copying") {
  nexa::Rng rng(3);
  auto t = Tensor<double>::randn({3, 4}, rng);
  auto view = nexa::xt_adapt(t);
  CHECK(view.data() == t.data());
  CHECK(view.shape()[1] == 4);
  view(2, 3) = 42.0;  // writes through
  CHECK(t(2, 3) == 42.0);
  view += 1.0;
  CHECK(t(2, 3) == 43.0);
  CHECK(xt::sum(nexa::xt_adapt(t.cview()))() == doctest::Approx(xt::sum(view)()));

  const Tensor<double>& ct = t;
  auto cview = nexa::xt_adapt(ct);  // read-only
  CHECK(cview(2, 3) == 43.0);
  static_assert(std::is_const_v<std::remove_reference_t<decltype(*cview.data())>>);

  // A row slice of a tensor is still contiguous: adapting it sees the rows in place.
  auto rows = nexa::xt_adapt(t.view().slice_rows(1, 3));
  CHECK(rows.shape()[0] == 2);
  rows(1, 3) = -1.0;
  CHECK(t(2, 3) == -1.0);
}
