// Compiles nexa/io/dtype.hpp on its own: the header includes everything it uses.
#include "nexa/io/dtype.hpp"
