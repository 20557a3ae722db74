// Compiles nexa/io/json.hpp on its own: the header includes everything it uses.
#include "nexa/io/json.hpp"
