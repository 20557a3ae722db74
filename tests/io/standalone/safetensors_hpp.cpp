// Compiles nexa/io/safetensors.hpp on its own: the header includes everything it uses.
#include "nexa/io/safetensors.hpp"
