// A user's .cu file includes the umbrella header after the CUDA backend: nvcc must compile every
// header it pulls in (nvcc rejects, for one, a variable named `module` at the start of a
// statement, error #3189, which g++ accepts).
#include "nexa/backend/cuda.hpp"
#include "nexa/moe.hpp"
