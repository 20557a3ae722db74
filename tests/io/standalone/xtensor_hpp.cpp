// Compiles nexa/io/xtensor.hpp on its own: the header includes everything it uses.
#include "nexa/io/xtensor.hpp"
