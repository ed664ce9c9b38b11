// gtest main for refbus: libsodium is initialized once, before any test thread starts.
#include <gtest/gtest.h>

#include <cstdio>

#include "keys/secret.h"

int main(int argc, char** argv) {
  if (!refbus::keys::InitSodium().ok()) {
    std::fprintf(stderr, "libsodium failed to initialize\n");
    return 1;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
