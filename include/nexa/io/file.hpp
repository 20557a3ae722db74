#pragma once
// File helpers shared by the I/O formats:
//  - AtomicFileWriter writes to a fresh temporary file next to the target and renames it over
//    the target only on commit(), so a failure (an exception mid-way, a full disk) never
//    damages the previous file; the temporary is removed when the writer is destroyed
//    uncommitted.
//  - InputFile: a binary input file whose reads are bounds-checked against its size.
// Errors are nexa::Error whose message starts with the caller's context ("npy: <path>: ...").
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "nexa/core/error.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <unistd.h>
#define NEXA_IO_POSIX 1
#endif

namespace nexa::detail {

// "<module>: <path>", the start of every I/O error message (require() appends ": ").
inline std::string io_context(std::string_view module, const std::filesystem::path& path) {
  return concat(module, ": ", path.string());
}

inline std::string errno_message(int err) { return std::error_code(err, std::generic_category()).message(); }

class AtomicFileWriter {
 public:
  AtomicFileWriter(std::filesystem::path target, std::string context)
      : target_(std::move(target)), context_(std::move(context)) {
    require(!target_.filename().empty(), context_, "the target has no file name");
    // The temporary's name is random so that concurrent writers to one target do not collide;
    // "x" makes fopen fail rather than reuse an existing file.
    std::random_device device;
    const std::uint64_t tag = (static_cast<std::uint64_t>(device()) << 32) ^ device();
    constexpr char hex[] = "0123456789abcdef";
    std::string suffix = ".tmp.";
    for (int k = 0; k < 16; ++k) suffix += hex[(tag >> (4 * k)) & 0xF];
    temp_ = target_;
    temp_ += suffix;
#if defined(_WIN32)
    file_ = ::_wfopen(temp_.c_str(), L"wbx");
#else
    file_ = std::fopen(temp_.c_str(), "wbx");
#endif
    if (!file_) {
      const int err = errno;
      throw Error(concat(context_, ": cannot create temporary file ", temp_.string(), ": ", errno_message(err)));
    }
  }
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  ~AtomicFileWriter() {
    if (file_) std::fclose(file_);
    if (!committed_) {
      std::error_code ignored;
      std::filesystem::remove(temp_, ignored);
    }
  }

  [[nodiscard]] const std::filesystem::path& temp_path() const { return temp_; }
  [[nodiscard]] std::uint64_t bytes_written() const { return written_; }

  void write(const void* data, std::size_t n) {
    require(file_ != nullptr && !committed_, context_, "write after commit");
    if (n == 0) return;
    if (std::fwrite(data, 1, n, file_) != n) {
      const int err = errno;
      throw Error(
          concat(context_, ": writing ", temp_.string(), " failed after ", written_, " bytes: ", errno_message(err)));
    }
    written_ += n;
  }
  void write(std::string_view s) { write(s.data(), s.size()); }

  // Flushes the data to disk, then renames the temporary over the target.
  void commit() {
    require(file_ != nullptr && !committed_, context_, "commit called twice");
    bool ok = std::fflush(file_) == 0;
    int err = ok ? 0 : errno;
#if defined(NEXA_IO_POSIX)
    if (ok && ::fsync(::fileno(file_)) != 0) ok = false, err = errno;
#endif
    if (std::fclose(file_) != 0 && ok) ok = false, err = errno;
    file_ = nullptr;
    if (!ok) throw Error(concat(context_, ": flushing ", temp_.string(), " failed: ", errno_message(err)));
    std::error_code ec;
    std::filesystem::rename(temp_, target_, ec);
    if (ec) throw Error(concat(context_, ": cannot rename ", temp_.string(), " over the target: ", ec.message()));
    committed_ = true;
#if defined(NEXA_IO_POSIX)
    // Make the rename itself durable; failure here cannot undo it, so it is not reported.
    const std::filesystem::path dir = target_.has_parent_path() ? target_.parent_path() : ".";
    const int fd = ::open(dir.c_str(), O_RDONLY);
    if (fd >= 0) {
      (void)::fsync(fd);
      ::close(fd);
    }
#endif
  }

 private:
  std::filesystem::path target_;
  std::string context_;
  std::filesystem::path temp_;
  std::FILE* file_ = nullptr;
  std::uint64_t written_ = 0;
  bool committed_ = false;
};

// A regular file opened for binary reading; every read checks that the bytes exist.
class InputFile {
 public:
  InputFile(const std::filesystem::path& path, std::string context) : context_(std::move(context)) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    require(!ec && std::filesystem::exists(status), context_, "cannot open: the file does not exist");
    require(std::filesystem::is_regular_file(status), context_, "cannot open: not a regular file");
    in_.open(path, std::ios::binary);
    require(in_.is_open(), context_, "cannot open the file for reading");
    in_.seekg(0, std::ios::end);
    const std::streamoff end = in_.tellg();
    require(in_.good() && end >= 0, context_, "cannot determine the file size");
    size_ = static_cast<std::uint64_t>(end);
  }

  [[nodiscard]] std::uint64_t size() const { return size_; }
  [[nodiscard]] const std::string& context() const { return context_; }

  // Reads n bytes at `offset` into dst; `what` names them in the error message.
  void read(std::uint64_t offset, void* dst, std::uint64_t n, std::string_view what) {
    require(offset <= size_ && n <= size_ - offset, context_, "file truncated: ", what, " needs bytes [", offset, ", ",
            offset + n, ") but the file has ", size_, " bytes");
    if (n == 0) return;
    in_.clear();
    in_.seekg(static_cast<std::streamoff>(offset));
    in_.read(static_cast<char*>(dst), static_cast<std::streamsize>(n));
    require(in_.good() && static_cast<std::uint64_t>(in_.gcount()) == n, context_, "reading ", what, " (", n,
            " bytes at offset ", offset, ") failed");
  }

 private:
  std::string context_;
  std::ifstream in_;
  std::uint64_t size_ = 0;
};

}  // namespace nexa::detail
