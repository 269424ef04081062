// The translation unit that builds the test rooms' precompiled header (tests/CMakeLists.txt).
