// The Boost.Test module entry point shared by every test executable.
#define BOOST_TEST_MODULE gptx
#include <boost/test/unit_test.hpp>
