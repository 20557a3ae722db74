// doctest driver for the multi-process tests: every rank runs every test case under one
// MpiSession. A failure on any rank makes that rank exit non-zero, and mpirun then fails.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "nexa/dist/mpi_comm.hpp"

int main(int argc, char** argv) {
  nexa::dist::MpiSession session(argc, argv);
  doctest::Context context(argc, argv);
  return context.run();
}
