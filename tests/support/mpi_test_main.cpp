// doctest driver for the multi-process tests: every rank runs every test case under one
// MpiSession.
//
// A failure must end the whole job, not hang it: doctest catches a failed REQUIRE or an
// unexpected exception and moves on to the next test case, while the other ranks may be waiting
// in a collective this rank skipped. So a listener ends the job with MPI_Abort as soon as doctest
// has reported such a failure (at the end of that test case). A failed CHECK does not change the
// control flow, so the ranks stay in step and the run goes on; at the end, a rank with any
// failure calls MPI_Abort instead of MPI_Finalize, so mpirun fails. ctest's TIMEOUT
// (nexa_add_mpi_test) catches the remaining hangs, e.g. a collective that one rank left early.
//
// The test cases "mpi driver self-test: ..." below fail on purpose on rank 1; they are skipped
// unless run with --no-skip (tests/CMakeLists.txt runs them and expects the abort).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <stdexcept>

#include "nexa/dist/mpi_comm.hpp"

namespace {

// Says why on stderr (tests/CMakeLists.txt's self-tests look for this line: OpenMPI's own abort
// message can be lost when another rank has already finalised) and ends the job.
[[noreturn]] void abort_job(const char* why) {
  int rank = -1;
  (void)MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  std::cout.flush();
  std::cerr.flush();
  std::fprintf(stderr, "nexa mpi test driver: rank %d %s, aborting the job\n", rank, why);
  std::fflush(nullptr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();  // MPI_Abort does not return; this is for the compiler
}

struct AbortOnFatalFailure : doctest::IReporter {
  explicit AbortOnFatalFailure(const doctest::ContextOptions&) {}

  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData&) override {}
  // Listeners see each event before the console reporter does; the next event comes after the
  // failure was printed, so the abort waits for it.
  void test_case_reenter(const doctest::TestCaseData&) override { abort_if_fatal(); }
  void test_case_end(const doctest::CurrentTestCaseStats& stats) override {
    using namespace doctest::TestCaseFailureReason;
    if (stats.failure_flags & (Exception | Crash | TooManyFailedAsserts)) fatal_ = true;
    abort_if_fatal();
  }
  void test_case_exception(const doctest::TestCaseException&) override { fatal_ = true; }
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData& data) override {
    if (data.m_failed && (data.m_at & doctest::assertType::is_require)) fatal_ = true;
  }
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}

 private:
  void abort_if_fatal() const {
    if (fatal_) abort_job("had a failed REQUIRE, an exception or a crash");
  }
  bool fatal_ = false;
};

}  // namespace

REGISTER_LISTENER("nexa_mpi_abort", 1, AbortOnFatalFailure);

// Each leaves rank 0 in a barrier that rank 1 never reaches: without the abort the job hangs.
TEST_CASE("mpi driver self-test: a failed REQUIRE on one rank aborts the job" * doctest::skip()) {
  nexa::dist::MpiComm comm;
  REQUIRE(comm.size() >= 2);
  REQUIRE(comm.rank() != 1);
  comm.barrier();
}

TEST_CASE("mpi driver self-test: an exception on one rank aborts the job" * doctest::skip()) {
  nexa::dist::MpiComm comm;
  REQUIRE(comm.size() >= 2);
  if (comm.rank() == 1) throw std::runtime_error("self-test exception on rank 1");
  comm.barrier();
}

// A failed CHECK keeps the ranks in step; the failure shows in mpirun's exit status at the end.
TEST_CASE("mpi driver self-test: a failed CHECK on one rank fails the job" * doctest::skip()) {
  nexa::dist::MpiComm comm;
  REQUIRE(comm.size() >= 2);
  CHECK(comm.rank() != 1);
  comm.barrier();
}

int main(int argc, char** argv) {
  int failed = 0;
  {
    nexa::dist::MpiSession session(argc, argv);
    doctest::Context context(argc, argv);
    failed = context.run();
    if (context.shouldExit()) return failed;
    // MPI_Finalize would wait for ranks that passed; mpirun must see this one fail.
    if (failed != 0) abort_job("had failures");
  }
  return 0;
}
