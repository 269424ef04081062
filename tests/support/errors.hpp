// tests/support/errors.hpp: the message of the gptx::error a call throws, for tests of the
// one-line error contract.
#pragma once
#include <string>

#include <gptx/core/error.hpp>

namespace gptx::test {

// The what() of the gptx::error thrown by f, or "<no error>" when f returns normally (another
// exception type propagates and fails the test case).
template <class F> std::string error_of(F&& f) {
    try {
        f();
    } catch (const gptx::error& e) {
        return e.what();
    }
    return "<no error>";
}

} // namespace gptx::test
