// Compiles nexa/io/npy.hpp on its own: the header includes everything it uses.
#include "nexa/io/npy.hpp"
