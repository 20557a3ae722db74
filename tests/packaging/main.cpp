// Linked with one object file per public header (see CMakeLists.txt): reaching main() means every
// header compiled on its own and no two headers' objects define the same symbol.
#include <cstdio>

int main() {
  std::printf("%d headers compile on their own\n", NEXA_HEADER_COUNT);
  return 0;
}
