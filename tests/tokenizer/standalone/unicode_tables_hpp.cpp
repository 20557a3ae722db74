// Compiles nexa/io/unicode_tables.hpp on its own: the header includes everything it uses.
#include "nexa/io/unicode_tables.hpp"
