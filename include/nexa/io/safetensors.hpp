#pragma once
// safetensors checkpoints (https://github.com/huggingface/safetensors).
//
// Layout: an 8-byte little-endian header length N, N bytes of JSON
//   {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...}
// padded with spaces to a multiple of 8, then the data buffer; offsets are relative to the buffer,
// the tensors tile it exactly (no gaps, no overlaps) and each holds numel * dtype size bytes.
//
// High level, for any module with visit_params(f) calling f(name, Param<T, D>&):
//   save_safetensors(module, path, Dtype::F32, metadata);   // atomic: temp file + rename
//   load_safetensors(module, path, strict);                 // converts the file dtype to T
// Low level, for arbitrary tensors (upcycling, checkpoint surgery):
//   SafetensorsReader (validated header, per-tensor reads), read_safetensors, write_safetensors.
//
// Every malformation raises nexa::Error "safetensors: <path>: <what>"; no read goes outside the
// file, and nothing is allocated beyond what the file's size allows.
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "nexa/core/error.hpp"
#include "nexa/core/param.hpp"
#include "nexa/core/shape.hpp"
#include "nexa/core/tensor.hpp"
#include "nexa/io/dtype.hpp"
#include "nexa/io/file.hpp"
#include "nexa/io/json.hpp"

namespace nexa {

using SafetensorsMetadata = std::map<std::string, std::string>;

// Where one tensor lives in a file: byte offsets [begin, end) relative to the data buffer.
struct TensorInfo {
  Dtype dtype = Dtype::F32;
  Shape shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
  [[nodiscard]] std::uint64_t nbytes() const { return end - begin; }
};

// One tensor's raw contents: little-endian elements of `dtype`, row-major.
struct TensorData {
  Dtype dtype = Dtype::F32;
  Shape shape;
  std::vector<std::byte> bytes;

  // Encodes a float/double tensor as `dtype` (F64, F32, F16 or BF16), rounding to nearest even.
  template <class T>
  [[nodiscard]] static TensorData from_tensor(TensorView<T, cpu> v, Dtype dtype = dtype_of<std::remove_const_t<T>>) {
    static_assert(std::is_floating_point_v<std::remove_const_t<T>>,
                  "nexa::TensorData::from_tensor: T must be float or double");
    require(is_float_dtype(dtype), "safetensors", "cannot encode a floating-point tensor as ", dtype,
            " (supported: F64, F32, F16, BF16)");
    TensorData d{dtype, v.shape(), {}};
    const auto n = static_cast<std::size_t>(v.numel());
    d.bytes.resize(n * dtype_size(dtype));
    encode_elements(dtype, v.data(), d.bytes.data(), n);
    return d;
  }
  template <class T>
  [[nodiscard]] static TensorData from_tensor(const Tensor<T, cpu>& t, Dtype dtype = dtype_of<T>) {
    return from_tensor(t.cview(), dtype);
  }

  // Decodes into a float/double tensor; the dtype must be F64, F32, F16 or BF16.
  template <class T>
  [[nodiscard]] Tensor<T, cpu> to_tensor() const {
    static_assert(std::is_floating_point_v<T>, "nexa::TensorData::to_tensor: T must be float or double");
    require(is_float_dtype(dtype), "safetensors", "cannot convert a ", dtype, " tensor to floating point");
    const std::size_t n = check_size();
    auto t = Tensor<T, cpu>::uninitialized(shape);
    decode_elements(dtype, bytes.data(), t.data(), n);
    return t;
  }

  // Element count, after checking that `bytes` holds exactly numel * dtype size bytes.
  std::size_t check_size() const;
};

struct SafetensorsFile {
  std::map<std::string, TensorData> tensors;
  SafetensorsMetadata metadata;
};

namespace detail {

inline constexpr std::uint64_t safetensors_max_header = 100'000'000;  // the reference's limit
inline constexpr std::string_view safetensors_metadata_key = "__metadata__";

// numel * elem_size with overflow checks; nothing when the product does not fit.
inline bool checked_nbytes(const Shape& shape, std::size_t elem_size, std::uint64_t& out) {
  std::uint64_t n = 1;
  for (index_t d : shape.dims()) {
    if (d < 0) return false;
    const auto u = static_cast<std::uint64_t>(d);
    if (u != 0 && n > static_cast<std::uint64_t>(std::numeric_limits<index_t>::max()) / u) return false;
    n *= u;
  }
  if (n > std::numeric_limits<std::uint64_t>::max() / elem_size) return false;
  out = n * elem_size;
  return true;
}

// Checks the name of a tensor that is about to be written.
inline void check_tensor_name(const std::string& name, const std::string& context) {
  require(name != safetensors_metadata_key, context, "a tensor cannot be named \"__metadata__\"");
  require(json::is_valid_utf8(name), context, "tensor name ", json::quote(name), " is not valid UTF-8");
}

inline void check_metadata(const SafetensorsMetadata& metadata, const std::string& context) {
  for (const auto& [key, value] : metadata) {
    require(json::is_valid_utf8(key) && json::is_valid_utf8(value), context, "metadata entry ", json::quote(key),
            " is not valid UTF-8");
  }
}

struct HeaderEntry {
  std::string name;
  TensorInfo info;
};

// The padded header (without the 8-byte length): __metadata__ first, then the tensors in the
// given order, compact, as the reference writes it.
inline std::string safetensors_header_json(const std::vector<HeaderEntry>& entries,
                                           const SafetensorsMetadata& metadata) {
  std::string out = "{";
  bool first = true;
  if (!metadata.empty()) {
    out += json::quote(safetensors_metadata_key);
    out += ":{";
    for (const auto& [key, value] : metadata) {
      if (!first) out += ',';
      first = false;
      out += json::quote(key);
      out += ':';
      out += json::quote(value);
    }
    out += '}';
    first = false;
  }
  for (const auto& e : entries) {
    if (!first) out += ',';
    first = false;
    out += json::quote(e.name);
    out += ":{\"dtype\":\"";
    out += dtype_name(e.info.dtype);
    out += "\",\"shape\":[";
    for (std::size_t i = 0; i < e.info.shape.dims().size(); ++i) {
      if (i) out += ',';
      out += std::to_string(e.info.shape.dims()[i]);
    }
    out += "],\"data_offsets\":[";
    out += std::to_string(e.info.begin);
    out += ',';
    out += std::to_string(e.info.end);
    out += "]}";
  }
  out += '}';
  out.append((8 - out.size() % 8) % 8, ' ');
  return out;
}

inline void write_header_length(AtomicFileWriter& file, std::uint64_t n) {
  std::byte le[8];
  store_le(le, n);
  file.write(le, 8);
}

// A safetensors header holds only objects, arrays, strings and non-negative integers below 2^64.
// nexa::json reads all of JSON, so check_header_grammar rejects the rest (null, true, false,
// negative, fractional, exponent or wider numbers) in the parser's own error format, "<context>:
// invalid JSON at byte <offset>: <what>". `text` is the parsed header; the parser bounds the depth.
[[noreturn]] inline void reject_header_value(const json::Value& v, std::string_view context, std::string_view what) {
  throw Error(concat(context, ": invalid JSON at byte ", v.offset, ": ", what,
                     " (a safetensors header holds only objects, arrays, strings and non-negative integers)"));
}

inline void check_header_grammar(const json::Value& v, std::string_view text, std::string_view context) {
  switch (v.kind) {
    case json::Value::Kind::Null:
      reject_header_value(v, context, "unsupported value null");
    case json::Value::Kind::Bool:
      reject_header_value(v, context, v.boolean ? "unsupported value true" : "unsupported value false");
    case json::Value::Kind::Integer:
      if (v.negative) reject_header_value(v, context, "negative numbers are not supported");
      return;
    case json::Value::Kind::Float: {
      const std::size_t end = text.find_first_not_of("+-0123456789.eE", v.offset);
      const std::string_view literal = text.substr(v.offset, end - v.offset);
      if (literal.front() == '-') reject_header_value(v, context, "negative numbers are not supported");
      reject_header_value(v, context,
                          literal.find_first_of(".eE") == std::string_view::npos
                              ? "integer too large"
                              : "fractional or exponent numbers are not supported");
    }
    case json::Value::Kind::String:
      return;
    case json::Value::Kind::Array:
      for (const auto& item : v.array) check_header_grammar(item, text, context);
      return;
    case json::Value::Kind::Object:
      for (const auto& member : v.object) check_header_grammar(member.second, text, context);
      return;
  }
}

// Reads an unsigned integer member that must fit in `max`.
inline std::uint64_t header_integer(const json::Value& v, const std::string& context, std::string_view what,
                                    std::uint64_t max) {
  require(v.is_uint64(), context, what, " must be a non-negative integer, got a ",
          v.is_integer() ? "negative integer" : json::kind_name(v.kind));
  require(v.integer <= max, context, what, " ", v.integer, " is too large");
  return v.integer;
}

}  // namespace detail

inline std::size_t TensorData::check_size() const {
  std::uint64_t expected = 0;
  require(detail::checked_nbytes(shape, dtype_size(dtype), expected), "safetensors", "shape ", shape,
          " is invalid or too large");
  require(expected == bytes.size(), "safetensors", "a ", dtype, " tensor of shape ", shape, " needs ", expected,
          " bytes, got ", bytes.size());
  return static_cast<std::size_t>(expected / dtype_size(dtype));
}

// Opens a safetensors file and validates its whole header against the file size; tensors are
// then read one at a time, so a large checkpoint is never held in memory at once.
class SafetensorsReader {
 public:
  explicit SafetensorsReader(const std::filesystem::path& path)
      : path_(path), context_(detail::io_context("safetensors", path)), file_(path, context_) {
    parse_header();
  }

  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  [[nodiscard]] const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  [[nodiscard]] const SafetensorsMetadata& metadata() const { return metadata_; }
  [[nodiscard]] bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  [[nodiscard]] std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& entry : tensors_) out.push_back(entry.first);
    return out;
  }
  // Absolute file offset of the data buffer (8 + header length).
  [[nodiscard]] std::uint64_t data_start() const { return data_start_; }

  [[nodiscard]] const TensorInfo& info(const std::string& name) const {
    const auto it = tensors_.find(name);
    require(it != tensors_.end(), context_, "no tensor named ", json::quote(name));
    return it->second;
  }

  // The raw bytes of one tensor.
  [[nodiscard]] TensorData read(const std::string& name) {
    const TensorInfo& ti = info(name);
    TensorData d{ti.dtype, ti.shape, {}};
    d.bytes.resize(static_cast<std::size_t>(ti.nbytes()));
    file_.read(data_start_ + ti.begin, d.bytes.data(), ti.nbytes(), detail::concat("tensor ", json::quote(name)));
    return d;
  }

  // Reads one float-dtype tensor into `dst` (float or double) of the same shape, converting.
  template <class T>
  void read_into(const std::string& name, TensorView<T, cpu> dst) {
    static_assert(std::is_floating_point_v<T>, "nexa::SafetensorsReader::read_into: T must be float or double");
    const TensorInfo& ti = info(name);
    require(is_float_dtype(ti.dtype), context_, "tensor ", json::quote(name), " has dtype ", ti.dtype,
            ", which does not convert to floating point");
    require(ti.shape == dst.shape(), context_, "tensor ", json::quote(name), " shape expected ", dst.shape(), ", got ",
            ti.shape);
    const auto n = static_cast<std::size_t>(dst.numel());
    const std::string what = detail::concat("tensor ", json::quote(name));
    if (ti.dtype == dtype_of<T> && std::endian::native == std::endian::little) {
      file_.read(data_start_ + ti.begin, dst.data(), ti.nbytes(), what);
    } else {
      std::vector<std::byte> scratch(static_cast<std::size_t>(ti.nbytes()));
      file_.read(data_start_ + ti.begin, scratch.data(), ti.nbytes(), what);
      decode_elements(ti.dtype, scratch.data(), dst.data(), n);
    }
  }

  template <class T>
  [[nodiscard]] Tensor<T, cpu> read_tensor(const std::string& name) {
    auto t = Tensor<T, cpu>::uninitialized(info(name).shape);
    read_into(name, t.view());
    return t;
  }

 private:
  void parse_header() {
    const std::uint64_t size = file_.size();
    require(size >= 8, context_, "file truncated: ", size, " bytes, shorter than the 8-byte header length");
    std::byte le[8];
    file_.read(0, le, 8, "the header length");
    const auto n = detail::load_le<std::uint64_t>(le);
    require(n <= detail::safetensors_max_header, context_, "header length ", n, " exceeds the limit of ",
            detail::safetensors_max_header, " bytes");
    require(n <= size - 8, context_, "header length ", n, " runs past the end of the file (", size - 8,
            " bytes follow the length)");
    require(n >= 2, context_, "header length ", n, " is too small for a JSON object");
    std::string text(static_cast<std::size_t>(n), '\0');
    file_.read(8, text.data(), n, "the header");
    require(text.front() == '{', context_, "header does not start with '{'");
    data_start_ = 8 + n;
    const std::uint64_t buffer_size = size - data_start_;

    const std::string header_context = context_ + ": header";
    const json::Value root = json::parse(text, header_context);
    detail::check_header_grammar(root, text, header_context);
    require(root.is_object(), context_, "header must be a JSON object");

    struct Span {
      std::uint64_t begin, end;
      const std::string* name;
    };
    std::vector<Span> spans;
    for (const auto& [name, v] : root.object) {
      if (name == detail::safetensors_metadata_key) {
        require(v.is_object(), context_, "__metadata__ must be an object of strings, got a ", json::kind_name(v.kind));
        for (const auto& [key, value] : v.object) {
          require(value.is_string(), context_, "__metadata__ entry ", json::quote(key), " must be a string, got a ",
                  json::kind_name(value.kind));
          metadata_.emplace(key, value.string);
        }
        continue;
      }
      const std::string where = detail::concat("tensor ", json::quote(name));
      require(v.is_object(), context_, where, " must be an object, got a ", json::kind_name(v.kind));
      const json::Value* dtype = v.find("dtype");
      const json::Value* shape = v.find("shape");
      const json::Value* offsets = v.find("data_offsets");
      require(dtype && shape && offsets, context_, where, " needs \"dtype\", \"shape\" and \"data_offsets\"");
      require(dtype->is_string(), context_, where, ": dtype must be a string");
      const auto parsed = parse_dtype(dtype->string);
      require(parsed.has_value(), context_, where, " has unknown dtype ", json::quote(dtype->string));
      require(shape->is_array(), context_, where, ": shape must be an array of integers");
      std::vector<index_t> dims;
      for (const auto& d : shape->array) {
        dims.push_back(static_cast<index_t>(detail::header_integer(
            d, context_, where + " shape extent", static_cast<std::uint64_t>(std::numeric_limits<index_t>::max()))));
      }
      require(offsets->is_array() && offsets->array.size() == 2, context_, where,
              ": data_offsets must be an array of two integers");
      TensorInfo ti{*parsed, Shape(std::move(dims)), 0, 0};
      ti.begin = detail::header_integer(offsets->array[0], context_, where + " data_offsets[0]",
                                        std::numeric_limits<std::uint64_t>::max());
      ti.end = detail::header_integer(offsets->array[1], context_, where + " data_offsets[1]",
                                      std::numeric_limits<std::uint64_t>::max());
      require(ti.begin <= ti.end, context_, where, " data_offsets [", ti.begin, ", ", ti.end, "] are reversed");
      require(ti.end <= buffer_size, context_, where, " data_offsets [", ti.begin, ", ", ti.end,
              "] run past the end of the data buffer (", buffer_size, " bytes)");
      std::uint64_t expected = 0;
      require(detail::checked_nbytes(ti.shape, dtype_size(ti.dtype), expected), context_, where, " shape ", ti.shape,
              " has too many elements");
      require(expected == ti.nbytes(), context_, where, " holds ", ti.nbytes(), " bytes but dtype ", ti.dtype,
              " and shape ", ti.shape, " need ", expected);
      const auto [it, inserted] = tensors_.emplace(name, std::move(ti));
      spans.push_back({it->second.begin, it->second.end, &it->first});
    }

    // The tensors must tile the buffer: sorted by offset, each starts where the previous ended.
    std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
      if (a.begin != b.begin) return a.begin < b.begin;
      return a.end != b.end ? a.end < b.end : *a.name < *b.name;
    });
    std::uint64_t covered = 0;
    const std::string* previous = nullptr;
    for (const Span& s : spans) {
      require(s.begin >= covered, context_, "tensor ", json::quote(*s.name), " data_offsets [", s.begin, ", ", s.end,
              "] overlap tensor ", previous ? json::quote(*previous) : std::string("?"), " ending at ", covered);
      require(s.begin == covered, context_, "data buffer bytes [", covered, ", ", s.begin,
              ") belong to no tensor (gap before tensor ", json::quote(*s.name), ")");
      covered = s.end;
      previous = s.name;
    }
    require(covered == buffer_size, context_, "the tensors cover ", covered, " bytes but the data buffer holds ",
            buffer_size, " bytes");
  }

  std::filesystem::path path_;
  std::string context_;
  detail::InputFile file_;
  std::uint64_t data_start_ = 0;
  std::map<std::string, TensorInfo> tensors_;
  SafetensorsMetadata metadata_;
};

// Reads every tensor of a file into memory.
[[nodiscard]] inline SafetensorsFile read_safetensors(const std::filesystem::path& path) {
  SafetensorsReader reader(path);
  SafetensorsFile out;
  out.metadata = reader.metadata();
  for (const auto& entry : reader.tensors()) out.tensors.emplace(entry.first, reader.read(entry.first));
  return out;
}

// Writes tensors (any dtype) atomically. The layout matches the reference writer: data sorted
// by descending dtype then name, __metadata__ first, header padded to 8 bytes.
inline void write_safetensors(const std::filesystem::path& path, const std::map<std::string, TensorData>& tensors,
                              const SafetensorsMetadata& metadata = {}) {
  const std::string context = detail::io_context("safetensors", path);
  detail::check_metadata(metadata, context);
  std::vector<std::pair<const std::string*, const TensorData*>> order;
  for (const auto& [name, data] : tensors) {
    detail::check_tensor_name(name, context);
    std::uint64_t expected = 0;
    require(detail::checked_nbytes(data.shape, dtype_size(data.dtype), expected), context, "tensor ", json::quote(name),
            " shape ", data.shape, " is invalid");
    require(expected == data.bytes.size(), context, "tensor ", json::quote(name), " of dtype ", data.dtype,
            " and shape ", data.shape, " needs ", expected, " bytes, got ", data.bytes.size());
    order.emplace_back(&name, &data);
  }
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.second->dtype > b.second->dtype; });
  std::vector<detail::HeaderEntry> entries;
  std::uint64_t offset = 0;
  for (const auto& [name, data] : order) {
    entries.push_back({*name, {data->dtype, data->shape, offset, offset + data->bytes.size()}});
    offset += data->bytes.size();
  }
  const std::string header = detail::safetensors_header_json(entries, metadata);
  detail::AtomicFileWriter file(path, context);
  detail::write_header_length(file, header.size());
  file.write(header);
  for (const auto& entry : order) file.write(entry.second->bytes.data(), entry.second->bytes.size());
  file.commit();
}

inline void write_safetensors(const std::filesystem::path& path, const SafetensorsFile& contents) {
  write_safetensors(path, contents.tensors, contents.metadata);
}

namespace detail {
// What is wrong when matching a file's tensors to a module's parameters, collected in full so that
// one nexa::Error lists it all: "<head>; missing tensors (2): "a", "b"; mismatched tensors (1):
// ...; unexpected tensors (1): "c" (load with strict = false to ignore them)". Shared by
// load_safetensors, load_bert and generate::load_int8_checkpoint.
struct LoadProblems {
  std::vector<std::string> missing, mismatched, duplicates, unexpected;

  // A file tensor meant for a parameter of `shape`: its shape, and a dtype that converts to floating point.
  void check_tensor(const std::string& file_name, const TensorInfo& info, const Shape& shape) {
    if (!(info.shape == shape))
      mismatched.push_back(concat(json::quote(file_name), " shape expected ", shape, ", got ", info.shape));
    if (!is_float_dtype(info.dtype))
      mismatched.push_back(concat(json::quote(file_name), " dtype ", info.dtype,
                                  " does not convert to floating point (expected F64, F32, F16 or BF16)"));
  }
  // Throws when anything was found; `head` starts the message.
  void throw_if_any(std::string_view head) const {
    if (missing.empty() && mismatched.empty() && duplicates.empty() && unexpected.empty()) return;
    std::string message(head);
    list(message, "missing tensors", missing, true, "");
    list(message, "mismatched tensors", mismatched, false, "");
    list(message, "tensors naming the same parameter", duplicates, false, "");
    list(message, "unexpected tensors", unexpected, true, " (load with strict = false to ignore them)");
    throw Error(message);
  }

 private:
  static void list(std::string& message, std::string_view title, const std::vector<std::string>& items, bool quote,
                   std::string_view note) {
    if (items.empty()) return;
    message += concat("; ", title, " (", items.size(), "): ");
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (i > 0) message += ", ";
      message += quote ? json::quote(items[i]) : items[i];
    }
    message += note;
  }
};
template <class P>
using param_scalar_t = typename std::remove_cvref_t<decltype(std::declval<P&>().value)>::value_type;
template <class P>
using param_device_t = typename std::remove_cvref_t<decltype(std::declval<P&>().value)>::device;
}  // namespace detail

// Saves every parameter of `model` (as named by visit_params, data in visit order) as `dtype`
// (F32 by default; F64, F16 and BF16 too). The module is visited twice, and parameters are
// converted one at a time, so no second copy of the model is held. The file is written to a
// temporary next to `path` and renamed over it at the end: if anything fails, a previous file
// at `path` is left as it was.
template <class Module>
void save_safetensors(Module& model, const std::filesystem::path& path, Dtype dtype = Dtype::F32,
                      const SafetensorsMetadata& metadata = {}) {
  const std::string context = detail::io_context("safetensors", path);
  require(is_float_dtype(dtype), context, "cannot save parameters as ", dtype, " (supported: F64, F32, F16, BF16)");
  detail::check_metadata(metadata, context);

  std::vector<detail::HeaderEntry> entries;
  std::set<std::string> names;
  std::uint64_t offset = 0;
  model.visit_params([&](const std::string& name, auto& p) {
    static_assert(std::is_floating_point_v<detail::param_scalar_t<decltype(p)>>,
                  "nexa::save_safetensors: parameters must hold float or double");
    detail::check_tensor_name(name, context);
    require(names.insert(name).second, context, "the module has two parameters named ", json::quote(name));
    const auto nbytes = static_cast<std::uint64_t>(p.value.numel()) * dtype_size(dtype);
    entries.push_back({name, {dtype, p.value.shape(), offset, offset + nbytes}});
    offset += nbytes;
  });
  const std::string header = detail::safetensors_header_json(entries, metadata);

  detail::AtomicFileWriter file(path, context);
  detail::write_header_length(file, header.size());
  file.write(header);
  std::size_t index = 0;
  std::vector<std::byte> scratch;
  model.visit_params([&](const std::string& name, auto& p) {
    using T = detail::param_scalar_t<decltype(p)>;
    using D = detail::param_device_t<decltype(p)>;
    require(index < entries.size() && entries[index].name == name && entries[index].info.shape == p.value.shape(),
            context, "the module's parameters changed between the two visits (at ", json::quote(name), ")");
    ++index;
    const auto n = static_cast<std::size_t>(p.value.numel());
    if constexpr (std::is_same_v<D, cpu>) {
      if (dtype == dtype_of<T> && std::endian::native == std::endian::little) {
        file.write(p.value.data(), n * sizeof(T));
        return;
      }
      scratch.resize(n * dtype_size(dtype));
      encode_elements(dtype, p.value.data(), scratch.data(), n);
    } else {
      const std::vector<T> host = p.value.to_host();
      scratch.resize(n * dtype_size(dtype));
      encode_elements(dtype, host.data(), scratch.data(), n);
    }
    file.write(scratch.data(), scratch.size());
  });
  require(index == entries.size(), context, "the module's parameters changed between the two visits (", entries.size(),
          " then ", index, ")");
  file.commit();
}

// Loads every parameter of `model` from `path`, converting the file's dtype (F64, F32, F16,
// BF16) to the parameter's scalar type. Everything is checked before any parameter is written:
// one error lists all missing tensors, all shape and dtype mismatches and, when `strict`, all
// tensors in the file that the module does not have.
template <class Module>
void load_safetensors(Module& model, const std::filesystem::path& path, bool strict = true) {
  SafetensorsReader reader(path);
  const std::string context = detail::io_context("safetensors", path);
  detail::LoadProblems problems;
  std::set<std::string> seen;
  model.visit_params([&](const std::string& name, auto& p) {
    static_assert(std::is_floating_point_v<detail::param_scalar_t<decltype(p)>>,
                  "nexa::load_safetensors: parameters must hold float or double");
    seen.insert(name);
    const auto it = reader.tensors().find(name);
    if (it == reader.tensors().end()) {
      problems.missing.push_back(name);
      return;
    }
    problems.check_tensor(name, it->second, p.value.shape());
  });
  if (strict) {
    for (const auto& entry : reader.tensors())
      if (!seen.count(entry.first)) problems.unexpected.push_back(entry.first);
  }
  problems.throw_if_any(detail::concat(context, ": cannot load into the module"));
  model.visit_params([&](const std::string& name, auto& p) {
    using T = detail::param_scalar_t<decltype(p)>;
    using D = detail::param_device_t<decltype(p)>;
    if constexpr (std::is_same_v<D, cpu>) {
      reader.read_into(name, p.value.view());
    } else {
      auto host = reader.read_tensor<T>(name);
      detail::Transfer<D>::from_host(p.value.data(), host.data(), static_cast<std::size_t>(host.numel()));
    }
  });
}

}  // namespace nexa
