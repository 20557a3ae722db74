// Compiles nexa/core/half.hpp on its own: the header includes everything it uses.
#include "nexa/core/half.hpp"
