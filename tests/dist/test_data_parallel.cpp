// GradientSync and broadcast_parameters: a data-parallel training step on an MoE layer (each rank
// on its share of an 11-row batch) gives the gradients and AdamW-updated weights of one process
// on the whole batch, and identical replicas on every rank.
#include "nexa/dist/data_parallel.hpp"

#include <doctest/doctest.h>

#include "data_parallel_support.hpp"
#include "nexa/dist/mpi_comm.hpp"
#include "nexa/dist/no_comm.hpp"
#include "nexa/train/adamw.hpp"

using nexa::dist::GradientSync;
using nexa::dist::MpiComm;
using nexa::dist::share_of;
using namespace nexa_test;

TEST_CASE_TEMPLATE("GradientSync: data-parallel gradients and AdamW steps equal one process on the whole batch", T,
                   float, double) {
  MpiComm comm;
  const int ranks = comm.size();
  const nexa::train::AdamWConfig adamw{.lr = 1e-2, .weight_decay = 0.1};
  // 256 bytes: several buckets, tensors split across them; the default: one bucket per type.
  for (std::size_t bucket_bytes : {std::size_t{256}, nexa::dist::default_bucket_bytes}) {
    CAPTURE(bucket_bytes);
    // Each rank starts from another initialisation; rank 0's is broadcast.
    Model<T> replica = make_model<T>(100 + static_cast<std::uint64_t>(comm.rank()));
    nexa::dist::broadcast_parameters(replica, comm);
    Model<T> whole = make_model<T>(100);
    REQUIRE(all_values(replica) == all_values(whole));

    GradientSync sync(replica, comm, bucket_bytes);
    CHECK(sync.num_elements() == nexa::train::AdamW(whole).num_elements());
    if (bucket_bytes == 256) CHECK(sync.num_buckets() > 1);
    nexa::train::AdamW opt_replica(replica, adamw), opt_whole(whole, adamw);
    for (std::uint64_t step = 0; step < 3; ++step) {
      CAPTURE(step);
      const Batch<T> batch = make_batch<T>(7 + step);
      opt_replica.zero_grad();
      opt_whole.zero_grad();
      accumulate_gradients(replica, batch, share_of(global_rows, ranks, comm.rank()), ranks);
      accumulate_gradients(whole, batch, {0, global_rows}, 1);
      sync.average_gradients();
      CHECK(max_rel_error(trainable(replica, true), trainable(whole, true)) < tolerance<T>());
      CHECK(identical_on_all_ranks(comm, all_values(replica)));

      opt_replica.step();
      opt_whole.step();
      CHECK(max_rel_error(trainable(replica, false), trainable(whole, false)) < tolerance<T>());
      CHECK(identical_on_all_ranks(comm, all_values(replica)));
    }
  }
}

TEST_CASE("GradientSync on one rank leaves the gradients bitwise unchanged") {
  nexa::dist::NoComm comm;
  Model<float> model = make_model<float>(3);
  accumulate_gradients(model, make_batch<float>(4), {0, global_rows}, 1);
  const auto before = trainable(model, true);
  GradientSync sync(model, comm, 100);
  sync.average_gradients();
  CHECK(trainable(model, true) == before);
}

TEST_CASE("GradientSync and broadcast_parameters: mismatched parameters raise nexa::Error on every rank") {
  MpiComm comm;
  Model<float> model = make_model<float>(1);
  CHECK_THROWS_WITH_AS(GradientSync(model, comm, 4), doctest::Contains("bucket_bytes must hold"), nexa::Error);
  CHECK_THROWS_WITH_AS(nexa::dist::broadcast_parameters(model, comm, comm.size()),
                       doctest::Contains("root must be in [0, "), nexa::Error);
  if (comm.size() == 1) return;

  // Settings that differ by rank raise on every rank, before any range check: rank 0 asks for
  // 256-byte buckets and the others for the default (the collectives would not match), then
  // rank 0 alone passes an invalid size (checked on rank 0 only, the others would hang).
  const std::string bucket_mismatch = "GradientSync: every rank must use the same bucket_bytes: expected ";
  CHECK_THROWS_WITH_AS(GradientSync(model, comm, comm.rank() == 0 ? 256 : nexa::dist::default_bucket_bytes),
                       doctest::Contains((bucket_mismatch + "256 as on rank 0, got 26214400 on rank 1").c_str()),
                       nexa::Error);
  CHECK_THROWS_WITH_AS(GradientSync(model, comm, comm.rank() == 0 ? 4 : nexa::dist::default_bucket_bytes),
                       doctest::Contains(bucket_mismatch.c_str()), nexa::Error);
  CHECK_THROWS_WITH_AS(nexa::dist::broadcast_parameters(model, comm, comm.rank() == 0 ? comm.size() : 0),
                       doctest::Contains("broadcast_parameters: every rank must use the same root"), nexa::Error);

  // The last rank freezes the router: its trainable set differs.
  Model<float> frozen_router = make_model<float>(1);
  if (comm.rank() == comm.size() - 1) frozen_router.router.weight.set_trainable(false);
  CHECK_THROWS_WITH_AS(GradientSync(frozen_router, comm),
                       doctest::Contains("GradientSync: every rank must hold the same trainable parameters"),
                       nexa::Error);
  // Trainable or not, broadcast_parameters sees the same tensors: that is fine.
  CHECK_NOTHROW(nexa::dist::broadcast_parameters(frozen_router, comm));

  // The same counts but another shape: the last rank holds one expert weight transposed.
  Model<double> transposed = make_model<double>(1);
  if (comm.rank() == comm.size() - 1) {
    nexa::Param<double>& wi = transposed.experts[0].wi;
    wi = nexa::Param<double>(nexa::Tensor<double>({wi.value.dim(1), wi.value.dim(0)}));
  }
  const std::string expected = "on rank " + std::to_string(comm.size() - 1) + " with other names or shapes";
  CHECK_THROWS_WITH_AS(nexa::dist::broadcast_parameters(transposed, comm), doctest::Contains(expected.c_str()),
                       nexa::Error);
}
