// MpiComm's collectives against what they must compute, on every rank, with sizes that do not
// divide evenly (and zero) so that uneven shares and empty blocks are exercised.
#include <doctest/doctest.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "nexa/core/half.hpp"
#include "nexa/dist/mpi_comm.hpp"
#include "nexa/dist/no_comm.hpp"

using nexa::index_t;
using nexa::dist::MpiComm;

namespace {
// A value only (rank, i) produces, exact in float.
double value_of(int rank, index_t i) { return static_cast<double>(rank * 1000 + i % 997) * 0.25; }

// Values whose float sum depends on the order of the ranks: with 1e8 and -1e8 among them, a 1
// added before the large terms is absorbed and one added after survives.
float order_sensitive(int rank, index_t i) {
  constexpr float table[] = {1.0f, 1e8f, -1e8f, 1.0f, 3.0f, -1e8f};
  return table[static_cast<std::size_t>((rank + i) % 6)];
}

// Whether every rank holds bitwise the same n values as rank 0.
template <class T>
bool identical_on_all_ranks(MpiComm& comm, const std::vector<T>& values) {
  std::vector<T> all(values.size() * static_cast<std::size_t>(comm.size()));
  comm.all_gather(values.data(), static_cast<index_t>(values.size()), all.data());
  for (int r = 1; r < comm.size(); ++r)
    if (std::memcmp(all.data(), all.data() + values.size() * static_cast<std::size_t>(r), values.size() * sizeof(T)))
      return false;
  return true;
}
}  // namespace

TEST_CASE("all_reduce_sum and reduce_scatter_sum add in rank order where the order changes the float result") {
  MpiComm comm;
  const int p = comm.size();
  const index_t n = 4099;
  std::vector<float> x(static_cast<std::size_t>(n)), want(x.size());
  bool order_matters = false;  // another order gives other bits somewhere (needs 3 or more ranks)
  for (index_t i = 0; i < n; ++i) {
    x[static_cast<std::size_t>(i)] = order_sensitive(comm.rank(), i);
    float acc = order_sensitive(0, i), reverse = order_sensitive(p - 1, i);
    for (int r = 1; r < p; ++r) acc += order_sensitive(r, i);
    for (int r = p - 2; r >= 0; --r) reverse += order_sensitive(r, i);
    want[static_cast<std::size_t>(i)] = acc;
    order_matters = order_matters || std::memcmp(&acc, &reverse, sizeof acc) != 0;
  }
  CHECK(order_matters == (p >= 3));
  std::vector<float> out(x.size(), -1.0f);
  comm.all_reduce_sum(x.data(), out.data(), n);
  CHECK(std::memcmp(out.data(), want.data(), out.size() * sizeof(float)) == 0);
  CHECK(identical_on_all_ranks(comm, out));

  // reduce_scatter_sum: block r of every rank's send is elements [r * m, (r + 1) * m).
  const index_t m = 37;
  std::vector<float> send(static_cast<std::size_t>(m * p)), got(static_cast<std::size_t>(m));
  for (index_t i = 0; i < m * p; ++i) send[static_cast<std::size_t>(i)] = order_sensitive(comm.rank(), i);
  comm.reduce_scatter_sum(send.data(), got.data(), m);
  for (index_t i = 0; i < m; ++i) {
    const index_t at = comm.rank() * m + i;
    float acc = order_sensitive(0, at);
    for (int r = 1; r < p; ++r) acc += order_sensitive(r, at);
    CHECK(std::memcmp(&got[static_cast<std::size_t>(i)], &acc, sizeof acc) == 0);
  }
}

TEST_CASE("reduce_scatter_sum of empty blocks; int64 and bfloat16 through all_gather and all_to_allv") {
  MpiComm comm;
  const int p = comm.size(), me = comm.rank();
  std::vector<double> none;
  CHECK_NOTHROW(comm.reduce_scatter_sum(none.data(), none.data(), 0));
  std::vector<std::int64_t> sums(1);
  const std::int64_t big = std::int64_t{1} << 40;  // beyond int32
  std::int64_t mine = big + me;
  comm.all_reduce_sum(&mine, sums.data(), 1);
  CHECK(sums[0] == big * p + std::int64_t{p} * (p - 1) / 2);

  // all_gather: two values per rank.
  const std::int64_t pair[2] = {big * (me + 1), -me};
  std::vector<std::int64_t> pairs(static_cast<std::size_t>(2 * p));
  comm.all_gather(pair, 2, pairs.data());
  const nexa::bfloat16 halves[2] = {nexa::bfloat16(0.5f * static_cast<float>(me) - 3.0f), nexa::bfloat16(1e30f)};
  std::vector<nexa::bfloat16> all_halves(static_cast<std::size_t>(2 * p));
  comm.all_gather(halves, 2, all_halves.data());
  for (int r = 0; r < p; ++r) {
    const auto at = static_cast<std::size_t>(2 * r);
    CHECK(pairs[at] == big * (r + 1));
    CHECK(pairs[at + 1] == -r);
    CHECK(all_halves[at].bits() == nexa::bfloat16(0.5f * static_cast<float>(r) - 3.0f).bits());
    CHECK(all_halves[at + 1].bits() == nexa::bfloat16(1e30f).bits());
  }

  // all_to_allv: rank s sends d + 1 elements to rank d, valued big * s + d (bfloat16: s - d).
  std::vector<index_t> send_counts(static_cast<std::size_t>(p)), recv_counts(static_cast<std::size_t>(p));
  std::vector<std::int64_t> send64, want64;
  std::vector<nexa::bfloat16> send16, want16;
  for (int d = 0; d < p; ++d) {
    send_counts[static_cast<std::size_t>(d)] = d + 1;
    recv_counts[static_cast<std::size_t>(d)] = me + 1;
    send64.insert(send64.end(), static_cast<std::size_t>(d + 1), big * me + d);
    send16.insert(send16.end(), static_cast<std::size_t>(d + 1), nexa::bfloat16(static_cast<float>(me - d)));
    want64.insert(want64.end(), static_cast<std::size_t>(me + 1), big * d + me);
    want16.insert(want16.end(), static_cast<std::size_t>(me + 1), nexa::bfloat16(static_cast<float>(d - me)));
  }
  std::vector<std::int64_t> recv64(want64.size(), -1);
  std::vector<nexa::bfloat16> recv16(want16.size(), nexa::bfloat16(-1.0f));
  comm.all_to_allv(send64.data(), send_counts, recv64.data(), recv_counts);
  comm.all_to_allv(send16.data(), send_counts, recv16.data(), recv_counts);
  CHECK(recv64 == want64);
  CHECK(std::memcmp(recv16.data(), want16.data(), recv16.size() * sizeof(nexa::bfloat16)) == 0);
}

TEST_CASE("a bad count on one rank raises nexa::Error on every rank, and the communicator still works") {
  MpiComm comm;
  const int p = comm.size(), me = comm.rank();
  std::vector<index_t> zeros(static_cast<std::size_t>(p), 0), bad = zeros;
  // Rank p - 1 alone passes a negative count; the others' counts are fine.
  if (me == p - 1) bad[0] = -1;
  float x = 0;
  const std::string expected =
      me == p - 1 ? std::string("must be non-negative") : "invalid counts on rank " + std::to_string(p - 1);
  CHECK_THROWS_WITH_AS(comm.all_to_allv(&x, bad, &x, zeros), doctest::Contains(expected.c_str()), nexa::Error);
  // Too many counts on rank 0 only.
  std::vector<index_t> more(static_cast<std::size_t>(me == 0 ? p + 1 : p), 0);
  const std::string expected_more = me == 0 ? std::string("expects") : std::string("invalid counts on rank 0");
  CHECK_THROWS_WITH_AS(comm.all_to_allv(&x, more, &x, more), doctest::Contains(expected_more.c_str()), nexa::Error);
  // Then a valid exchange.
  std::vector<index_t> ones(static_cast<std::size_t>(p), 1);
  std::vector<float> send(static_cast<std::size_t>(p), static_cast<float>(me)), recv(send.size(), -1.0f);
  comm.all_to_allv(send.data(), ones, recv.data(), ones);
  for (int r = 0; r < p; ++r) CHECK(recv[static_cast<std::size_t>(r)] == static_cast<float>(r));
}

TEST_CASE("reductions over more elements than MPI's int counts raise on every rank before allocating") {
  MpiComm comm;
  float x = 0;
  const index_t too_many = index_t{INT_MAX} + 1;
  CHECK_THROWS_WITH_AS(comm.all_reduce_sum(&x, &x, too_many), doctest::Contains("all_reduce_sum must be in [0, "),
                       nexa::Error);
  CHECK_THROWS_WITH_AS(comm.reduce_scatter_sum(&x, &x, too_many),
                       doctest::Contains("reduce_scatter_sum must be in [0, "), nexa::Error);
  CHECK_THROWS_AS(comm.all_reduce_sum(&x, &x, -1), nexa::Error);
  // n fits, but size() blocks of the largest share do not: the same decision on every rank.
  if (comm.size() >= 2)
    CHECK_THROWS_WITH_AS(comm.all_reduce_sum(&x, &x, index_t{INT_MAX}), doctest::Contains("blocks of"), nexa::Error);
  comm.barrier();
}

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
