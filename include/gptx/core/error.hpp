// gptx/core/error.hpp: the one exception type gptx throws, and a check macro.
// Tested by the error cases in every room's tests (each check's exact what()).
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace gptx {

// Every user-facing failure is a gptx::error whose what() is one line naming the culprit.
class error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Args> [[noreturn]] void fail(const Args&... args) {
    std::ostringstream os;
    (os << ... << args);
    throw error(os.str());
}
} // namespace detail

} // namespace gptx

#define GPTX_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ::gptx::detail::fail(__VA_ARGS__);                                                     \
    } while (0)
