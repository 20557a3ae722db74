// MpiComm's collectives against what they must compute, on every rank, with sizes that do not
// divide evenly (and zero) so that uneven shares and empty blocks are exercised.
#include <doctest/doctest.h>

#include <cstdint>
#include <numeric>
#include <vector>

#include "nexa/dist/mpi_comm.hpp"
#include "nexa/dist/no_comm.hpp"

using nexa::index_t;
using nexa::dist::MpiComm;

namespace {
// A value only (rank, i) produces, exact in float.
double value_of(int rank, index_t i) { return static_cast<double>(rank * 1000 + i % 997) * 0.25; }
}  // namespace

TEST_CASE("all_reduce_sum sums in rank order, identically on every rank, in place too") {
  MpiComm comm;
  for (index_t n : {0, 1, 5, 1000, 4099}) {
    CAPTURE(n);
    std::vector<float> x(static_cast<std::size_t>(n)), want(x.size());
    for (index_t i = 0; i < n; ++i) {
      x[static_cast<std::size_t>(i)] = static_cast<float>(value_of(comm.rank(), i));
      float acc = static_cast<float>(value_of(0, i));
      for (int r = 1; r < comm.size(); ++r) acc += static_cast<float>(value_of(r, i));
      want[static_cast<std::size_t>(i)] = acc;
    }
    std::vector<float> out(x.size(), -1.0f);
    comm.all_reduce_sum(x.data(), out.data(), n);
    CHECK(out == want);
    comm.all_reduce_sum(x.data(), x.data(), n);
    CHECK(x == want);
  }
}

TEST_CASE("reduce_scatter_sum gives each rank the sum of its block") {
  MpiComm comm;
  const index_t n = 7;
  std::vector<double> send(static_cast<std::size_t>(n * comm.size()));
  for (index_t i = 0; i < n * comm.size(); ++i) send[static_cast<std::size_t>(i)] = value_of(comm.rank(), i);
  std::vector<double> got(static_cast<std::size_t>(n));
  comm.reduce_scatter_sum(send.data(), got.data(), n);
  for (index_t i = 0; i < n; ++i) {
    double want = 0;
    for (int r = 0; r < comm.size(); ++r) want += value_of(r, comm.rank() * n + i);
    CHECK(got[static_cast<std::size_t>(i)] == want);
  }
}

TEST_CASE("all_gather concatenates in rank order; broadcast copies the root") {
  MpiComm comm;
  const std::int32_t mine[3] = {comm.rank(), comm.rank() * 2, -comm.rank()};
  std::vector<std::int32_t> all(static_cast<std::size_t>(3 * comm.size()));
  comm.all_gather(mine, 3, all.data());
  for (int r = 0; r < comm.size(); ++r) {
    CHECK(all[static_cast<std::size_t>(3 * r)] == r);
    CHECK(all[static_cast<std::size_t>(3 * r + 2)] == -r);
  }
  const int root = comm.size() - 1;
  std::vector<double> data(4, comm.rank() == root ? 42.0 : 0.0);
  comm.broadcast(data.data(), 4, root);
  CHECK(data == std::vector<double>(4, 42.0));
}

TEST_CASE("all_to_allv sends each rank its block, with empty blocks") {
  MpiComm comm;
  const int p = comm.size(), me = comm.rank();
  // Rank s sends (s + d) % 3 elements to rank d, each equal to 100 s + d.
  std::vector<index_t> send_counts(static_cast<std::size_t>(p)), recv_counts(static_cast<std::size_t>(p));
  std::vector<float> send;
  for (int d = 0; d < p; ++d) {
    send_counts[static_cast<std::size_t>(d)] = (me + d) % 3;
    recv_counts[static_cast<std::size_t>(d)] = (d + me) % 3;
    send.insert(send.end(), static_cast<std::size_t>((me + d) % 3), static_cast<float>(100 * me + d));
  }
  std::vector<float> recv(static_cast<std::size_t>(std::accumulate(recv_counts.begin(), recv_counts.end(), index_t{0})),
                          -1.0f);
  comm.all_to_allv(send.data(), send_counts, recv.data(), recv_counts);
  std::vector<float> want;
  for (int s = 0; s < p; ++s) want.insert(want.end(), static_cast<std::size_t>((s + me) % 3), float(100 * s + me));
  CHECK(recv == want);
}

TEST_CASE("bad arguments raise nexa::Error naming MpiComm and the counts") {
  MpiComm comm;
  std::vector<index_t> one(1, 0);
  float x = 0;
  if (comm.size() != 1) {
    CHECK_THROWS_WITH_AS(comm.all_to_allv(&x, one, &x, one), doctest::Contains("expects"), nexa::Error);
  }
  CHECK_THROWS_WITH_AS(comm.broadcast(&x, 1, comm.size()), doctest::Contains("broadcast root"), nexa::Error);
  std::vector<index_t> negative(static_cast<std::size_t>(comm.size()), -1);
  CHECK_THROWS_WITH_AS(comm.all_to_allv(&x, negative, &x, negative), doctest::Contains("non-negative"), nexa::Error);
}

TEST_CASE("NoComm is the one-rank communicator") {
  nexa::dist::NoComm comm;
  std::vector<float> a{1, 2, 3}, b(3);
  comm.all_reduce_sum(a.data(), b.data(), 3);
  CHECK(b == a);
  std::vector<index_t> counts{3};
  comm.all_to_allv(a.data(), counts, b.data(), counts);
  CHECK(b == a);
}
