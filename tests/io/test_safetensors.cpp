#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "io/io_test_util.hpp"
#include "nexa/io/safetensors.hpp"
#include "nexa/nn/linear.hpp"

using nexa::Dtype;
using nexa::Tensor;
using nexa::testing::craft_safetensors;
using nexa::testing::read_bytes;
using nexa::testing::TempDir;
using nexa::testing::write_bytes;

namespace {

// A small composite: two Linears (one with bias), a free parameter and a frozen one.
template <class T = float>
struct TwoLayer {
  nexa::Linear<T> fc1;
  nexa::Linear<T> fc2;
  nexa::Param<T> scale;
  nexa::Param<T> table;

  explicit TwoLayer(nexa::Rng& rng)
      : fc1({.in_features = 4, .out_features = 3, .bias = true}, rng),
        fc2({.in_features = 3, .out_features = 2}, rng),
        scale(Tensor<T>::randn({2}, rng)),
        table(Tensor<T>::randn({2, 2, 3}, rng), /*is_trainable=*/false) {}

  template <class F>
  void visit_params(F&& f, const std::string& prefix = "") {
    fc1.visit_params(f, nexa::join_name(prefix, "fc1"));
    fc2.visit_params(f, nexa::join_name(prefix, "fc2"));
    f(nexa::join_name(prefix, "scale"), scale);
    f(nexa::join_name(prefix, "table"), table);
  }
};

// Bitwise equality of every parameter of two modules of the same type.
template <class M>
bool params_bitwise_equal(M& a, M& b) {
  std::vector<std::vector<unsigned char>> bytes_a, bytes_b;
  auto collect = [](std::vector<std::vector<unsigned char>>& out) {
    return [&out](const std::string&, auto& p) {
      const auto* data = reinterpret_cast<const unsigned char*>(p.value.data());
      out.emplace_back(data, data + p.value.numel() * static_cast<nexa::index_t>(sizeof(*p.value.data())));
    };
  };
  a.visit_params(collect(bytes_a));
  b.visit_params(collect(bytes_b));
  return bytes_a == bytes_b;
}

// A module whose parameter list is chosen by the test.
struct Bag {
  std::vector<std::pair<std::string, nexa::Param<float>>> params;
  template <class F>
  void visit_params(F&& f) {
    for (auto& [name, p] : params) f(name, p);
  }
};

Bag bag(std::initializer_list<std::pair<std::string, nexa::Shape>> entries) {
  Bag b;
  for (const auto& [name, shape] : entries) b.params.emplace_back(name, nexa::Param<float>(Tensor<float>(shape)));
  return b;
}

std::string f32_bytes(std::initializer_list<float> values) {
  std::string out;
  for (float v : values) {
    const auto u = std::bit_cast<std::uint32_t>(v);
    for (int k = 0; k < 4; ++k) out += static_cast<char>((u >> (8 * k)) & 0xFF);
  }
  return out;
}

// A module nested under a prefix.
struct Outer {
  TwoLayer<float> inner;
  template <class F>
  void visit_params(F&& f) {
    inner.visit_params(f, "encoder");
  }
};

// The first visit (header) succeeds, the second (data) throws at the third parameter.
struct Flaky {
  TwoLayer<float>& inner;
  int visits = 0;
  template <class F>
  void visit_params(F&& f) {
    ++visits;
    int count = 0;
    inner.visit_params([&](const std::string& name, auto& p) {
      if (visits == 2 && ++count == 3) throw std::runtime_error("device lost");
      f(name, p);
    });
  }
};

// Reports different parameters on its second visit.
struct Shifty {
  int visits = 0;
  nexa::Param<float> a{Tensor<float>({2})};
  nexa::Param<float> b{Tensor<float>({3})};
  template <class F>
  void visit_params(F&& f) {
    f(++visits == 1 ? "a" : "renamed", a);
    f("b", b);
  }
};
}  // namespace

TEST_CASE("safetensors: Linear<float> saved and loaded is bitwise identical") {
  TempDir dir;
  nexa::Rng rng(7);
  nexa::Linear<float> saved({.in_features = 5, .out_features = 4, .bias = true}, rng);
  const auto path = dir / "linear.safetensors";
  nexa::save_safetensors(saved, path);

  nexa::Rng other(99);
  nexa::Linear<float> loaded({.in_features = 5, .out_features = 4, .bias = true}, other);
  CHECK(!params_bitwise_equal(saved, loaded));
  nexa::load_safetensors(loaded, path);
  CHECK(params_bitwise_equal(saved, loaded));

  // The file itself: 8-byte length, header padded to a multiple of 8, F32 data.
  const std::string bytes = read_bytes(path);
  std::uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<std::size_t>(k)]);
  CHECK(n % 8 == 0);
  CHECK(bytes.size() == 8 + n + (4 * 5 + 4) * 4);
  CHECK(bytes.substr(8, 1) == "{");
  nexa::SafetensorsReader reader(path);
  CHECK(reader.names() == std::vector<std::string>{"bias", "weight"});
  CHECK(reader.info("weight").dtype == Dtype::F32);
  CHECK(reader.info("weight").shape == nexa::Shape{4, 5});
  CHECK(reader.metadata().empty());
}

TEST_CASE("safetensors: a composite module round-trips, with prefixes, metadata and frozen params") {
  TempDir dir;
  nexa::Rng rng(1);
  TwoLayer<float> saved(rng);
  const auto path = dir / "model.safetensors";
  const nexa::SafetensorsMetadata metadata{{"format", "pt"}, {"note", "quote \" backslash \\ newline \n caf\xC3\xA9"}};
  nexa::save_safetensors(saved, path, Dtype::F32, metadata);

  nexa::Rng other(2);
  TwoLayer<float> loaded(other);
  nexa::load_safetensors(loaded, path);
  CHECK(params_bitwise_equal(saved, loaded));
  CHECK(!loaded.table.trainable);  // loading changes values only

  nexa::SafetensorsReader reader(path);
  CHECK(reader.metadata() == metadata);
  CHECK(reader.names() == std::vector<std::string>{"fc1.bias", "fc1.weight", "fc2.weight", "scale", "table"});
  CHECK(reader.info("table").shape == nexa::Shape{2, 2, 3});
  // Data is laid out in visit order.
  CHECK(reader.info("fc1.weight").begin == 0);
  CHECK(reader.info("fc1.bias").begin == 48);

  // A module nested under a prefix reads the same names.
  Outer outer{TwoLayer<float>(other)};
  nexa::save_safetensors(outer, dir / "outer.safetensors");
  CHECK(nexa::SafetensorsReader(dir / "outer.safetensors").contains("encoder.fc1.weight"));
  nexa::load_safetensors(outer, dir / "outer.safetensors");
}

TEST_CASE("safetensors: dtypes convert on save and load") {
  TempDir dir;
  nexa::Rng rng(5);
  TwoLayer<double> d(rng);

  // F64 keeps doubles exactly.
  nexa::save_safetensors(d, dir / "f64.safetensors", Dtype::F64);
  nexa::Rng other(6);
  TwoLayer<double> d2(other);
  nexa::load_safetensors(d2, dir / "f64.safetensors");
  CHECK(params_bitwise_equal(d, d2));

  // Doubles saved as F32 load into a float module as static_cast<float>.
  nexa::save_safetensors(d, dir / "f32.safetensors", Dtype::F32);
  TwoLayer<float> f(other);
  nexa::load_safetensors(f, dir / "f32.safetensors");
  for (nexa::index_t i = 0; i < d.fc1.weight.numel(); ++i)
    CHECK(f.fc1.weight.value.data()[i] == static_cast<float>(d.fc1.weight.value.data()[i]));

  // F16 and BF16: each value is the 16-bit rounding of the float, and a second save/load is lossless.
  for (const Dtype dt : {Dtype::F16, Dtype::BF16}) {
    INFO(nexa::dtype_name(dt));
    const auto path = dir / "half.safetensors";
    nexa::save_safetensors(f, path, dt);
    CHECK(nexa::SafetensorsReader(path).info("fc1.weight").dtype == dt);
    TwoLayer<float> h(other);
    nexa::load_safetensors(h, path);
    for (nexa::index_t i = 0; i < f.fc1.weight.numel(); ++i) {
      const float x = f.fc1.weight.value.data()[i];
      const float expected =
          dt == Dtype::F16 ? static_cast<float>(nexa::half(x)) : static_cast<float>(nexa::bfloat16(x));
      CHECK(h.fc1.weight.value.data()[i] == expected);
    }
    nexa::save_safetensors(h, path, dt);
    TwoLayer<double> hd(other);
    nexa::load_safetensors(hd, path);  // F16/BF16 -> double
    for (nexa::index_t i = 0; i < h.fc1.weight.numel(); ++i)
      CHECK(hd.fc1.weight.value.data()[i] == static_cast<double>(h.fc1.weight.value.data()[i]));
    // Saving an F16/BF16-rounded module again as F16/BF16 gives the same file.
    const std::string first = read_bytes(path);
    nexa::save_safetensors(hd, path, dt);
    CHECK(read_bytes(path) == first);
  }
  NEXA_CHECK_ERROR_CONTAINS(nexa::save_safetensors(f, dir / "x.safetensors", Dtype::I32), "safetensors",
                            "x.safetensors", "cannot save parameters as I32");
}

TEST_CASE("safetensors: read_safetensors / write_safetensors handle arbitrary tensors") {
  TempDir dir;
  std::map<std::string, nexa::TensorData> tensors;
  nexa::Rng rng(3);
  const auto w = Tensor<float>::randn({3, 4}, rng);
  tensors["w"] = nexa::TensorData::from_tensor(w);
  tensors["w16"] = nexa::TensorData::from_tensor(w, Dtype::F16);
  CHECK(nexa::TensorData::from_tensor(Tensor<float>(w).view()).bytes == tensors["w"].bytes);  // mutable view
  tensors["ids"] = {Dtype::I64, {2}, std::vector<std::byte>(16, std::byte{7})};
  tensors["mask"] = {Dtype::BOOL, {3}, {std::byte{1}, std::byte{0}, std::byte{1}}};
  tensors["scalar"] = nexa::TensorData::from_tensor(Tensor<double>::full(nexa::Shape{}, 2.5));
  tensors["empty"] = {Dtype::BF16, {0, 5}, {}};
  const nexa::SafetensorsMetadata meta{{"k", "v"}};
  const auto path = dir / "raw.safetensors";
  nexa::write_safetensors(path, tensors, meta);

  const nexa::SafetensorsFile back = nexa::read_safetensors(path);
  CHECK(back.metadata == meta);
  REQUIRE(back.tensors.size() == tensors.size());
  for (const auto& [name, t] : tensors) {
    const std::string param_name = name;  // clang cannot capture a structured binding
    INFO(param_name);
    const auto& b = back.tensors.at(name);
    CHECK(b.dtype == t.dtype);
    CHECK(b.shape == t.shape);
    CHECK(b.bytes == t.bytes);
  }
  const auto w_back = back.tensors.at("w").to_tensor<float>();
  CHECK(std::memcmp(w_back.data(), w.data(), 12 * sizeof(float)) == 0);
  CHECK(back.tensors.at("scalar").to_tensor<float>()() == 2.5f);
  CHECK(back.tensors.at("w16").to_tensor<float>()(1, 2) == static_cast<float>(nexa::half(w(1, 2))));
  NEXA_CHECK_ERROR_CONTAINS((void)back.tensors.at("ids").to_tensor<float>(), "cannot convert a I64 tensor");

  // Per-tensor access without reading the whole file.
  nexa::SafetensorsReader reader(path);
  CHECK(reader.read_tensor<double>("w")(2, 3) == static_cast<double>(w(2, 3)));
  CHECK(reader.read("mask").bytes == tensors["mask"].bytes);
  NEXA_CHECK_ERROR_CONTAINS((void)reader.read("nope"), "raw.safetensors", "no tensor named \"nope\"");
  Tensor<float> wrong({4, 3});
  NEXA_CHECK_ERROR_CONTAINS(reader.read_into("w", wrong.view()), "shape expected [4, 3], got [3, 4]");

  // Inconsistent TensorData is refused before anything is written.
  tensors["bad"] = {Dtype::F32, {2}, std::vector<std::byte>(4)};
  NEXA_CHECK_ERROR_CONTAINS(nexa::write_safetensors(dir / "bad.safetensors", tensors), "tensor \"bad\"",
                            "needs 8 bytes, got 4");
  CHECK(!std::filesystem::exists(dir / "bad.safetensors"));
}

#ifdef NEXA_FIXTURE_DIR
TEST_CASE("safetensors: reads a file written by the Python safetensors library exactly") {
  const std::filesystem::path path = std::filesystem::path(NEXA_FIXTURE_DIR) / "io" / "reference.safetensors";
  REQUIRE(std::filesystem::exists(path));
  const nexa::SafetensorsFile file = nexa::read_safetensors(path);
  CHECK(file.metadata.at("note") == "quote \" backslash \\ newline \n tab \t caf\xC3\xA9");
  CHECK(file.tensors.size() == 10);

  const auto weight = file.tensors.at("dense.weight").to_tensor<float>();
  CHECK(weight.shape() == nexa::Shape{2, 3});
  const float expected_w[] = {0.5f, -1.25f, 3.0f, -0.0f, std::numeric_limits<float>::denorm_min(), 65504.0f};
  for (int i = 0; i < 6; ++i)
    CHECK(std::bit_cast<std::uint32_t>(weight.data()[i]) == std::bit_cast<std::uint32_t>(expected_w[i]));

  const auto hv = file.tensors.at("half.values").to_tensor<float>();
  const float inf = std::numeric_limits<float>::infinity();
  const float expected_h[] = {0.0f, -0.0f, 1.0f, -2.0f, 65504.0f, 0x1p-24f, 0x1p-14f, inf};
  for (int i = 0; i < 8; ++i)
    CHECK(std::bit_cast<std::uint32_t>(hv.data()[i]) == std::bit_cast<std::uint32_t>(expected_h[i]));

  const auto bv = file.tensors.at("bf16.values").to_tensor<double>();
  CHECK(bv.shape() == nexa::Shape{2, 2});
  CHECK(bv(0, 0) == 1.0);
  CHECK(bv(0, 1) == -3.5);
  CHECK(bv(1, 0) == std::ldexp(1.0, 100));
  CHECK(bv(1, 1) == 0.15625);

  // numpy's float32 -> float16 rounding and an independent float32 -> bfloat16 rounding agree with nexa's.
  std::vector<std::uint32_t> src;
  for (std::uint32_t k = 0; k < 64; ++k) src.push_back(0x33000000u + k * 0x00AB3711u);
  for (std::uint32_t b : {0x3F808000u, 0x3F818000u, 0x3F808001u, 0x3F807FFFu, 0x3F801000u, 0x3F803000u, 0x3F801001u,
                          0x33000000u, 0x33000001u, 0x33C00000u, 0x477FF000u, 0x477FEFFFu})
    src.push_back(b);
  const auto& hr = file.tensors.at("half.rounded");
  const auto& br = file.tensors.at("bf16.rounded");
  REQUIRE(hr.shape == nexa::Shape{static_cast<nexa::index_t>(src.size())});
  REQUIRE(br.bytes.size() == 2 * src.size());
  for (std::size_t i = 0; i < src.size(); ++i) {
    INFO("float bits ", src[i]);
    const float x = std::bit_cast<float>(src[i]);
    CHECK(nexa::detail::load_le<std::uint16_t>(hr.bytes.data() + 2 * i) == nexa::float_to_half_bits(x));
    CHECK(nexa::detail::load_le<std::uint16_t>(br.bytes.data() + 2 * i) == nexa::float_to_bfloat16_bits(x));
  }

  const auto dv = file.tensors.at("double.values").to_tensor<double>();
  CHECK(dv(0) == 0.1);
  CHECK(dv(1) == -1e300);
  const auto& ids = file.tensors.at("ids");
  CHECK(ids.dtype == Dtype::I64);
  CHECK(static_cast<std::int64_t>(nexa::detail::load_le<std::uint64_t>(ids.bytes.data() + 8)) == -2);
  CHECK(file.tensors.at("scalar").shape == nexa::Shape{});
  CHECK(file.tensors.at("scalar").to_tensor<float>()() == 7.0f);
  CHECK(file.tensors.at("empty").shape == nexa::Shape{0, 4});
  CHECK(file.tensors.at("empty").bytes.empty());

  // Load into a module (the other tensors are ignored with strict = false, refused otherwise).
  Bag m = bag({{"dense.weight", {2, 3}}, {"dense.bias", {3}}});
  NEXA_CHECK_ERROR_CONTAINS(nexa::load_safetensors(m, path), "unexpected tensors (8): ", "\"ids\"", "\"half.values\"");
  nexa::load_safetensors(m, path, /*strict=*/false);
  CHECK(m.params[0].second.value(1, 2) == 65504.0f);
  CHECK(m.params[1].second.value(2) == 0.25f);

  // Writing the same tensors and metadata with nexa reproduces the reference file byte for byte.
  TempDir dir;
  nexa::write_safetensors(dir / "rewritten.safetensors", file);
  CHECK(read_bytes(dir / "rewritten.safetensors") == read_bytes(path));
}
#endif

TEST_CASE("safetensors: malformed files raise nexa::Error naming the file and the problem") {
  TempDir dir;
  const auto path = dir / "bad.safetensors";
  auto load_file = [&](const std::string& bytes) {
    write_bytes(path, bytes);
    (void)nexa::read_safetensors(path);
  };
  const std::string good_header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string good_data = f32_bytes({1.0f, 2.0f});
  load_file(craft_safetensors(good_header, good_data));  // the baseline is fine

  SUBCASE("file shorter than the header length") {
    NEXA_CHECK_ERROR_CONTAINS(load_file(""), "safetensors: ", path.string(), "file truncated: 0 bytes");
    NEXA_CHECK_ERROR_CONTAINS(load_file(std::string("\x08\x00\x00", 3)), "file truncated: 3 bytes");
  }
  SUBCASE("truncated at every length") {
    const std::string full = craft_safetensors(good_header, good_data);
    for (std::size_t len = 0; len < full.size(); ++len) {
      INFO("length ", len);
      (void)nexa::testing::error_of([&] { load_file(full.substr(0, len)); });
    }
  }
  SUBCASE("header length past the end of the file") {
    const std::string n = std::to_string(good_header.size());
    const std::string expected =
        "header length " + std::to_string(good_header.size() + 100) + " runs past the end of the file (" + n;
    NEXA_CHECK_ERROR_CONTAINS(load_file(craft_safetensors(good_header, "", good_header.size() + 100)), path.string(),
                              expected);
  }
  SUBCASE("header length absurdly large") {
    NEXA_CHECK_ERROR_CONTAINS(load_file(craft_safetensors(good_header, good_data, std::uint64_t{1} << 63)),
                              "header length 9223372036854775808 exceeds the limit of 100000000 bytes");
    NEXA_CHECK_ERROR_CONTAINS(load_file(craft_safetensors(good_header, good_data, ~std::uint64_t{0})),
                              "exceeds the limit");
  }
  SUBCASE("invalid JSON") {
    NEXA_CHECK_ERROR_CONTAINS(load_file(craft_safetensors(R"({"a":{"dtype":"F32",)", "")), path.string(),
                              "invalid JSON at byte");
    const std::string at = "invalid JSON at byte " + std::to_string(good_header.size()) + ":";
    NEXA_CHECK_ERROR_CONTAINS(load_file(craft_safetensors(good_header + "x", good_data)), at, "trailing");
    NEXA_CHECK_ERROR_CONTAINS(load_file(craft_safetensors(R"({"a":true})", "")), "invalid JSON");
    NEXA_CHECK_ERROR_CONTAINS(load_file(craft_safetensors("[1,2]", "")), "header does not start with '{'");
    NEXA_CHECK_ERROR_CONTAINS(load_file(craft_safetensors(" {}", "")), "header does not start with '{'");
    NEXA_CHECK_ERROR_CONTAINS(load_file(craft_safetensors("{\"a\xFF\":1}", "")), "not valid UTF-8");
    NEXA_CHECK_ERROR_CONTAINS(
        load_file(craft_safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{}})", good_data)),
        "duplicate key \"a\"");
  }
  SUBCASE("header schema") {
    NEXA_CHECK_ERROR_CONTAINS(load_file(craft_safetensors(R"({"a":[1]})", "")), "tensor \"a\" must be an object");
    NEXA_CHECK_ERROR_CONTAINS(load_file(craft_safetensors(R"({"a":{"dtype":"F32","shape":[2]}})", "")),
                              "needs \"dtype\", \"shape\" and \"data_offsets\"");
    NEXA_CHECK_ERROR_CONTAINS(
        load_file(craft_safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", good_data)),
        "data_offsets must be an array of two integers");
    NEXA_CHECK_ERROR_CONTAINS(
        load_file(craft_safetensors(R"({"a":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", good_data)),
        "shape must be an array");
    NEXA_CHECK_ERROR_CONTAINS(
        load_file(craft_safetensors(R"({"a":{"dtype":"F32","shape":[[2]],"data_offsets":[0,8]}})", good_data)),
        "shape extent must be a non-negative integer");
    NEXA_CHECK_ERROR_CONTAINS(
        load_file(craft_safetensors(R"({"a":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,8]}})",
                                    good_data)),
        "shape extent 9223372036854775808 is too large");
    NEXA_CHECK_ERROR_CONTAINS(load_file(craft_safetensors(R"({"__metadata__":{"k":1}})", "")),
                              "__metadata__ entry \"k\" must be a string");
    NEXA_CHECK_ERROR_CONTAINS(load_file(craft_safetensors(R"({"__metadata__":[]})", "")),
                              "__metadata__ must be an object");
  }
  SUBCASE("unknown dtype") {
    NEXA_CHECK_ERROR_CONTAINS(
        load_file(craft_safetensors(R"({"a":{"dtype":"F128","shape":[2],"data_offsets":[0,8]}})", good_data)),
        path.string(), "tensor \"a\" has unknown dtype \"F128\"");
  }
  SUBCASE("data_offsets out of range") {
    NEXA_CHECK_ERROR_CONTAINS(
        load_file(craft_safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}})", good_data)),
        path.string(), "tensor \"a\" data_offsets [0, 12] run past the end of the data buffer (8 bytes)");
    NEXA_CHECK_ERROR_CONTAINS(
        load_file(craft_safetensors(
            R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551615,18446744073709551615]}})",
            good_data)),
        "run past the end of the data buffer");
    NEXA_CHECK_ERROR_CONTAINS(
        load_file(craft_safetensors(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", good_data)),
        "data_offsets [8, 0] are reversed");
  }
  SUBCASE("offsets overlapping") {
    const std::string h =
        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
    NEXA_CHECK_ERROR_CONTAINS(load_file(craft_safetensors(h, f32_bytes({1, 2, 3}))), path.string(),
                              "tensor \"b\" data_offsets [4, 12] overlap tensor \"a\" ending at 8");
    const std::string same =
        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    NEXA_CHECK_ERROR_CONTAINS(load_file(craft_safetensors(same, good_data)), "overlap tensor \"a\"");
  }
  SUBCASE("offsets not covering the buffer") {
    const std::string gap =
        R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
    NEXA_CHECK_ERROR_CONTAINS(load_file(craft_safetensors(gap, f32_bytes({1, 2, 3}))),
                              "data buffer bytes [4, 8) belong to no tensor (gap before tensor \"b\")");
    const std::string late = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
    NEXA_CHECK_ERROR_CONTAINS(load_file(craft_safetensors(late, good_data)), "bytes [0, 4) belong to no tensor");
    NEXA_CHECK_ERROR_CONTAINS(load_file(craft_safetensors(good_header, good_data + "xxxx")),
                              "the tensors cover 8 bytes but the data buffer holds 12 bytes");
    NEXA_CHECK_ERROR_CONTAINS(load_file(craft_safetensors("{}", "abcd")), "cover 0 bytes but the data buffer holds 4");
  }
  SUBCASE("byte count does not match dtype size * numel") {
    NEXA_CHECK_ERROR_CONTAINS(
        load_file(craft_safetensors(R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,8]}})", good_data)),
        "tensor \"a\" holds 8 bytes but dtype F16 and shape [2] need 4");
    NEXA_CHECK_ERROR_CONTAINS(
        load_file(craft_safetensors(R"({"a":{"dtype":"F64","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})",
                                    good_data)),
        "has too many elements");
  }
  SUBCASE("not a file") {
    NEXA_CHECK_ERROR_CONTAINS((void)nexa::read_safetensors(dir / "missing.safetensors"), "missing.safetensors",
                              "does not exist");
    NEXA_CHECK_ERROR_CONTAINS((void)nexa::read_safetensors(dir.path()), "not a regular file");
  }
  SUBCASE("random corruption never crashes") {
    const std::string full = craft_safetensors(
        R"({"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[1,2],"data_offsets":[8,12]}})",
        good_data + "abcd");
    load_file(full);
    std::uint64_t state = 12345;
    int errors = 0;
    for (int trial = 0; trial < 3000; ++trial) {
      std::string bytes = full;
      for (int flips = 0; flips < 1 + trial % 3; ++flips) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        const std::size_t at = static_cast<std::size_t>((state >> 33) % bytes.size());
        bytes[at] = static_cast<char>(state >> 17);
      }
      write_bytes(path, bytes);
      try {
        (void)nexa::read_safetensors(path);
      } catch (const nexa::Error&) {
        ++errors;
      }
    }
    CHECK(errors > 2000);
  }
}

TEST_CASE("safetensors: loading checks names, shapes and dtypes against the module before writing anything") {
  TempDir dir;
  const auto path = dir / "m.safetensors";
  Bag saved = bag({{"a", {2, 3}}, {"b", {4}}, {"c", {1}}, {"d", {2}}});
  for (auto& [name, p] : saved.params) p.value = Tensor<float>::full(p.value.shape(), 1.5f);
  nexa::save_safetensors(saved, path);

  SUBCASE("shape mismatch lists name, expected and actual shapes") {
    Bag m = bag({{"a", {3, 2}}, {"b", {4}}, {"c", {1}}, {"d", {2}}});
    NEXA_CHECK_ERROR_CONTAINS(nexa::load_safetensors(m, path), "safetensors: ", path.string(),
                              "\"a\" shape expected [3, 2], got [2, 3]");
    CHECK(m.params[1].second.value(0) == 0.0f);  // nothing was loaded
  }
  SUBCASE("missing tensors are all listed") {
    Bag m = bag({{"a", {2, 3}}, {"x", {1}}, {"b", {4}}, {"y.z", {2}}, {"c", {1}}, {"d", {2}}});
    NEXA_CHECK_ERROR_CONTAINS(nexa::load_safetensors(m, path), "missing tensors (2): \"x\", \"y.z\"");
    CHECK(m.params[0].second.value(0, 0) == 0.0f);
  }
  SUBCASE("unexpected tensors are listed when strict, ignored otherwise") {
    Bag m = bag({{"a", {2, 3}}, {"c", {1}}});
    NEXA_CHECK_ERROR_CONTAINS(nexa::load_safetensors(m, path), "unexpected tensors (2): \"b\", \"d\"",
                              "strict = false");
    CHECK(m.params[0].second.value(0, 0) == 0.0f);
    nexa::load_safetensors(m, path, /*strict=*/false);
    CHECK(m.params[0].second.value(1, 2) == 1.5f);
    CHECK(m.params[1].second.value(0) == 1.5f);
  }
  SUBCASE("every problem in one message") {
    Bag m = bag({{"a", {2, 2}}, {"x", {1}}, {"b", {4}}});
    NEXA_CHECK_ERROR_CONTAINS(nexa::load_safetensors(m, path), "missing tensors (1): \"x\"",
                              "\"a\" shape expected [2, 2], got [2, 3]", "unexpected tensors", "\"c\", \"d\"");
  }
  SUBCASE("a dtype that does not convert to floating point") {
    std::map<std::string, nexa::TensorData> t;
    t["a"] = {Dtype::I32, {2}, std::vector<std::byte>(8)};
    nexa::write_safetensors(path, t);
    Bag m = bag({{"a", {2}}});
    NEXA_CHECK_ERROR_CONTAINS(nexa::load_safetensors(m, path), "\"a\" dtype I32 does not convert to floating point");
  }
  SUBCASE("the file changing between checks and reads is still caught") {
    Bag m = bag({{"a", {2, 3}}, {"b", {4}}, {"c", {1}}, {"d", {2}}});
    nexa::SafetensorsReader reader(path);
    const std::string bytes = read_bytes(path);
    write_bytes(path, bytes.substr(0, bytes.size() - 4));  // truncated behind the reader's back
    NEXA_CHECK_ERROR_CONTAINS(reader.read_into("d", m.params[3].second.value.view()), "reading tensor \"d\"", "failed");
  }
}

TEST_CASE("safetensors: saving is atomic; a failed save leaves the previous file intact") {
  TempDir dir;
  const auto path = dir / "ckpt.safetensors";
  nexa::Rng rng(11);
  TwoLayer<float> model(rng);
  nexa::save_safetensors(model, path);
  const std::string previous = read_bytes(path);
  REQUIRE(dir.entries() == 1);

  SUBCASE("the module throws half-way through writing the data") {
    nexa::Rng other(12);
    TwoLayer<float> changed(other);
    Flaky flaky{changed};
    CHECK_THROWS_WITH_AS(nexa::save_safetensors(flaky, path), "device lost", std::runtime_error);
    CHECK(flaky.visits == 2);
    CHECK(read_bytes(path) == previous);
    CHECK(dir.entries() == 1);  // the temporary was removed
  }
  SUBCASE("the module's parameters change between the two visits") {
    Shifty shifty;
    NEXA_CHECK_ERROR_CONTAINS(nexa::save_safetensors(shifty, path), "parameters changed between the two visits");
    CHECK(read_bytes(path) == previous);
    CHECK(dir.entries() == 1);
  }
  SUBCASE("invalid parameter names are refused before writing") {
    Bag dup = bag({{"a", {1}}, {"a", {2}}});
    NEXA_CHECK_ERROR_CONTAINS(nexa::save_safetensors(dup, path), "two parameters named \"a\"");
    Bag reserved = bag({{"__metadata__", {1}}});
    NEXA_CHECK_ERROR_CONTAINS(nexa::save_safetensors(reserved, path), "cannot be named \"__metadata__\"");
    Bag utf = bag({{"bad\xFF", {1}}});
    NEXA_CHECK_ERROR_CONTAINS(nexa::save_safetensors(utf, path), "is not valid UTF-8");
    CHECK(read_bytes(path) == previous);
    CHECK(dir.entries() == 1);
  }
  SUBCASE("the temporary cannot be created") {
    NEXA_CHECK_ERROR_CONTAINS(nexa::save_safetensors(model, dir / "no_such_dir" / "x.safetensors"),
                              "safetensors: ", "no_such_dir", "cannot create temporary file");
  }
  SUBCASE("the rename fails (the target is a non-empty directory)") {
    const auto target = dir / "occupied";
    std::filesystem::create_directories(target / "child");
    NEXA_CHECK_ERROR_CONTAINS(nexa::save_safetensors(model, target), "occupied", "cannot rename");
    CHECK(std::filesystem::is_directory(target / "child"));
    CHECK(dir.entries() == 2);  // ckpt.safetensors and occupied/, no temporary
  }
  SUBCASE("a successful save replaces the file") {
    nexa::Rng other(13);
    TwoLayer<float> changed(other);
    nexa::save_safetensors(changed, path);
    CHECK(read_bytes(path) != previous);
    CHECK(dir.entries() == 1);
  }
}
