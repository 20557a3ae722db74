// Compiles nexa/io/file.hpp on its own: the header includes everything it uses.
#include "nexa/io/file.hpp"
