// Compiles nexa/io/wordpiece.hpp on its own: the header includes everything it uses.
#include "nexa/io/wordpiece.hpp"
