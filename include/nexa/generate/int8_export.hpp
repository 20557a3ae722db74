#pragma once
// int8 export of a checkpoint for inference: weight-only, symmetric, one absmax per output row
// (quant/int8.hpp, the format bitsandbytes' int8_vectorwise_quant produces), stored in safetensors.
//
// One quantised weight `<name>` [out, in] (as Linear stores it) is two tensors:
//   <name>.qweight  I8  [out, in]  codes in [-127, 127]
//   <name>.absmax   F32 [out]      w' = code * absmax / 127 (step absmax / 127; a zero row: 0)
//
//   save_int8(tensors, name, q) / load_int8(tensors or reader, name)    one weight, validated on load
//   save_int8_checkpoint(model, path, metadata, select)                 a whole module: the selected
//       parameters (by default every rank-2 "*.weight") quantised, every other one F32; returns
//       the sizes (int8 file tensors against fp32) and the weights' relative quantisation error
//   load_int8_checkpoint(model, path, strict)                           the reverse, dequantising
//       into the module's float parameters (a dense fp32 model with the int8 weights' values)
// To run on the int8 codes without a dense copy, multiply with quant::gemm_x_wt<quant::Int8>
// (quant/quantized_gemm.hpp), which dequantises a tile of rows at a time, or QuantizedLinear<Int8>.
//
// Loading checks dtypes, that the codes' rows match the absmax's length, that absmax is finite
// and >= 0 and codes are never -128; problems raise nexa::Error naming the tensor.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "nexa/core/error.hpp"
#include "nexa/core/shape.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/io/dtype.hpp"
#include "nexa/io/json.hpp"
#include "nexa/io/safetensors.hpp"
#include "nexa/quant/int8.hpp"

namespace nexa::generate {

inline std::string int8_codes_name(const std::string& name) { return name + ".qweight"; }
inline std::string int8_absmax_name(const std::string& name) { return name + ".absmax"; }

// Bytes of the int8 form (codes + float absmax) against the same tensor in fp32.
struct Int8Size {
  std::size_t int8_bytes = 0;
  std::size_t fp32_bytes = 0;
  [[nodiscard]] double ratio() const {
    return fp32_bytes ? static_cast<double>(int8_bytes) / static_cast<double>(fp32_bytes) : 0.0;
  }
};

[[nodiscard]] inline Int8Size int8_size(const quant::Int8Tensor& q) {
  return {q.bytes(), static_cast<std::size_t>(q.numel()) * sizeof(float)};
}

namespace detail {

inline void check_int8_tensor(const quant::Int8Tensor& q, const std::string& name, const char* what) {
  require(q.shape.rank() >= 1 && static_cast<index_t>(q.codes.size()) == q.shape.numel() &&
              static_cast<index_t>(q.absmax.size()) == q.shape.rows(),
          what, "weight ", json::quote(name), " of shape ", q.shape, " needs ", q.shape.numel(), " codes and ",
          q.shape.rank() >= 1 ? q.shape.rows() : 0, " absmax values, has ", q.codes.size(), " and ", q.absmax.size());
}

inline quant::Int8Tensor int8_from_data(const TensorData& codes, const TensorData& absmax, const std::string& name,
                                        const std::string& context) {
  const std::string cn = int8_codes_name(name), an = int8_absmax_name(name);
  require(codes.dtype == Dtype::I8, context, "tensor ", json::quote(cn), " dtype expected I8, got ", codes.dtype);
  require(absmax.dtype == Dtype::F32, context, "tensor ", json::quote(an), " dtype expected F32, got ", absmax.dtype);
  require(codes.shape.rank() >= 1, context, "tensor ", json::quote(cn), " must have rank >= 1, got shape ",
          codes.shape);
  require(absmax.shape == Shape{codes.shape.rows()}, context, "tensor ", json::quote(an), " shape expected ",
          Shape{codes.shape.rows()}, " (one per row of ", json::quote(cn), ", shape ", codes.shape, "), got ",
          absmax.shape);
  codes.check_size();
  const auto am = absmax.to_tensor<float>();
  auto c = Tensor<std::int8_t, cpu>::uninitialized(codes.shape);
  if (!codes.bytes.empty()) std::memcpy(c.data(), codes.bytes.data(), codes.bytes.size());
  try {
    return quant::int8_from_codes(c.cview(), am.cview());
  } catch (const Error& e) {
    throw Error(nexa::detail::concat(context, ": weight ", json::quote(name), ": ", e.what()));
  }
}

}  // namespace detail

// Adds <name>.qweight and <name>.absmax to `tensors`; either name already present raises.
inline void save_int8(std::map<std::string, TensorData>& tensors, const std::string& name, const quant::Int8Tensor& q) {
  constexpr const char* what = "generate::save_int8";
  detail::check_int8_tensor(q, name, what);
  const std::string cn = int8_codes_name(name), an = int8_absmax_name(name);
  require(!tensors.count(cn) && !tensors.count(an), what, "tensor ", json::quote(cn), " or ", json::quote(an),
          " is already in the map");
  TensorData codes{Dtype::I8, q.shape, std::vector<std::byte>(q.codes.size())};
  if (!q.codes.empty()) std::memcpy(codes.bytes.data(), q.codes.data(), q.codes.size());
  const TensorView<const float, cpu> am(q.absmax.data(), Shape{static_cast<index_t>(q.absmax.size())});
  tensors.emplace(cn, std::move(codes));
  tensors.emplace(an, TensorData::from_tensor(am, Dtype::F32));
}

// Reads <name>.qweight and <name>.absmax back, validated.
[[nodiscard]] inline quant::Int8Tensor load_int8(const std::map<std::string, TensorData>& tensors,
                                                 const std::string& name) {
  constexpr const char* what = "generate::load_int8";
  const std::string cn = int8_codes_name(name), an = int8_absmax_name(name);
  const auto c = tensors.find(cn), a = tensors.find(an);
  require(c != tensors.end(), what, "no tensor named ", json::quote(cn));
  require(a != tensors.end(), what, "no tensor named ", json::quote(an));
  return detail::int8_from_data(c->second, a->second, name, what);
}

[[nodiscard]] inline quant::Int8Tensor load_int8(SafetensorsReader& reader, const std::string& name) {
  const std::string context = nexa::detail::io_context("safetensors", reader.path());
  const std::string cn = int8_codes_name(name), an = int8_absmax_name(name);
  require(reader.contains(cn), context, "no tensor named ", json::quote(cn));
  require(reader.contains(an), context, "no tensor named ", json::quote(an));
  return detail::int8_from_data(reader.read(cn), reader.read(an), name, context);
}

// What save_int8_checkpoint wrote.
struct Int8ExportReport {
  index_t parameters = 0;            // elements of all parameters
  index_t quantized_parameters = 0;  // elements stored as int8
  index_t quantized_tensors = 0;     // weights stored as int8
  std::size_t fp32_bytes = 0;        // every parameter as F32
  std::size_t export_bytes = 0;      // the exported tensors' data (codes + absmax + the F32 rest)
  double weight_sq_error = 0.0;      // sum of (w - w')^2 over the quantised weights, in double
  double weight_sq_norm = 0.0;       // sum of w^2 over the same weights
  [[nodiscard]] double ratio() const {
    return fp32_bytes ? static_cast<double>(export_bytes) / static_cast<double>(fp32_bytes) : 0.0;
  }
  // ||W - W'|| / ||W|| over all quantised weights together (0 when there are none).
  [[nodiscard]] double weight_rel_error() const {
    return weight_sq_norm > 0.0 ? std::sqrt(weight_sq_error / weight_sq_norm) : 0.0;
  }
};

// The default choice of weights to quantise: rank-2 parameters named "weight" or "*.weight"
// (Linear and Embedding weights; norms and biases stay F32).
struct Int8SelectMatrices {
  bool operator()(const std::string& name, const Shape& shape) const {
    constexpr std::string_view suffix = ".weight";
    const bool named = name == "weight" || (name.size() >= suffix.size() &&
                                            name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0);
    return named && shape.rank() == 2 && shape.numel() > 0;
  }
};

// Writes `module`'s parameters (CPU, float) to `path` atomically: select(name, shape) ones as
// int8 pairs, the rest F32 under their own names. The exported tensors are built in memory first.
template <class Module, class Select = Int8SelectMatrices>
Int8ExportReport save_int8_checkpoint(Module& model, const std::filesystem::path& path,
                                      const SafetensorsMetadata& metadata = {}, Select select = {}) {
  const std::string context = nexa::detail::io_context("safetensors", path);
  std::map<std::string, TensorData> tensors;
  Int8ExportReport report;
  model.visit_params([&](const std::string& name, auto& p) {
    using T = nexa::detail::param_scalar_t<decltype(p)>;
    using D = nexa::detail::param_device_t<decltype(p)>;
    static_assert(std::is_same_v<T, float> && std::is_same_v<D, cpu>,
                  "nexa::generate::save_int8_checkpoint: parameters must be float on the CPU");
    require(!tensors.count(name) && !tensors.count(int8_codes_name(name)), context,
            "the module has two parameters named ", json::quote(name));
    const index_t n = p.value.numel();
    report.parameters += n;
    report.fp32_bytes += static_cast<std::size_t>(n) * sizeof(float);
    if (select(name, p.value.shape())) {
      const auto q = [&] {
        try {
          return quant::int8_quantize(p.value.cview());
        } catch (const Error& e) {  // a non-finite weight: say which parameter
          throw Error(nexa::detail::concat(context, ": weight ", json::quote(name), ": ", e.what()));
        }
      }();
      const index_t rows = q.shape.rows(), cols = q.shape.cols();
      std::vector<float> row(static_cast<std::size_t>(cols));
      for (index_t r = 0; r < rows; ++r) {
        quant::int8_dequantize_rows(q, r, r + 1, row.data());
        for (index_t c = 0; c < cols; ++c) {
          const double w = p.value.data()[r * cols + c], e = w - static_cast<double>(row[static_cast<std::size_t>(c)]);
          report.weight_sq_error += e * e;
          report.weight_sq_norm += w * w;
        }
      }
      save_int8(tensors, name, q);
      report.quantized_parameters += n;
      ++report.quantized_tensors;
      report.export_bytes += q.bytes();
    } else {
      tensors.emplace(name, TensorData::from_tensor(p.value.cview(), Dtype::F32));
      report.export_bytes += static_cast<std::size_t>(n) * sizeof(float);
    }
  });
  write_safetensors(path, tensors, metadata);
  return report;
}

// Loads a file written by save_int8_checkpoint (or a plain F32/F16/BF16 one) into `module`'s float
// parameters: <name>.qweight / <name>.absmax pairs are dequantised, other parameters read as
// <name>. Everything is read and checked before any parameter is written; `strict` also rejects
// tensors the module does not use.
template <class Module>
void load_int8_checkpoint(Module& model, const std::filesystem::path& path, bool strict = true) {
  SafetensorsReader reader(path);
  const std::string context = nexa::detail::io_context("safetensors", path);
  nexa::detail::LoadProblems problems;
  std::set<std::string> used;
  std::map<std::string, quant::Int8Tensor> quantized;
  model.visit_params([&](const std::string& name, auto& p) {
    using T = nexa::detail::param_scalar_t<decltype(p)>;
    using D = nexa::detail::param_device_t<decltype(p)>;
    static_assert(std::is_same_v<T, float> && std::is_same_v<D, cpu>,
                  "nexa::generate::load_int8_checkpoint: parameters must be float on the CPU");
    const std::string cn = int8_codes_name(name);
    if (reader.contains(cn)) {
      used.insert(cn);
      used.insert(int8_absmax_name(name));
      auto q = load_int8(reader, name);
      if (!(q.shape == p.value.shape()))
        problems.mismatched.push_back(
            nexa::detail::concat(json::quote(cn), " shape expected ", p.value.shape(), ", got ", q.shape));
      quantized.emplace(name, std::move(q));
    } else if (reader.contains(name)) {
      used.insert(name);
      problems.check_tensor(name, reader.info(name), p.value.shape());
    } else {
      problems.missing.push_back(name);
    }
  });
  if (strict) {
    for (const auto& entry : reader.tensors())
      if (!used.count(entry.first)) problems.unexpected.push_back(entry.first);
  }
  problems.throw_if_any(nexa::detail::concat(context, ": cannot load the int8 checkpoint"));
  model.visit_params([&](const std::string& name, auto& p) {
    const auto it = quantized.find(name);
    if (it != quantized.end()) {
      quant::int8_dequantize_rows(it->second, 0, it->second.shape.rows(), p.value.data());
    } else {
      reader.read_into(name, p.value.view());
    }
  });
}

}  // namespace nexa::generate
