# Tests of how people adopt gptx: the single header is fresh and works, and a consumer project
find_package(Boost 1.74 REQUIRED COMPONENTS unit_test_framework)
# builds with find_package, add_subdirectory and FetchContent.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  add_test(NAME single_header_is_fresh
    COMMAND ${CMAKE_COMMAND} -DPYTHON=${Python3_EXECUTABLE} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
            -DOUT=${PROJECT_BINARY_DIR}/single_header_check.hpp
            -P ${PROJECT_SOURCE_DIR}/cmake/check_single_header.cmake)
  set_tests_properties(single_header_is_fresh PROPERTIES LABELS unit)
  # The rooms' one rule (docs/ARCHITECTURE.md): every include points to the same or an earlier room.
  add_test(NAME include_rooms_point_down
    COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tools/check_rooms.py ${PROJECT_SOURCE_DIR})
  set_tests_properties(include_rooms_point_down PROPERTIES LABELS unit)
endif()

# A representative part of the suite and one sample, compiled against the single header only.
add_executable(test_single_header
  ${PROJECT_SOURCE_DIR}/tests/core/test_core.cpp ${PROJECT_SOURCE_DIR}/tests/nn/test_heads.cpp
  ${PROJECT_SOURCE_DIR}/tests/train/test_trainer.cpp ${PROJECT_SOURCE_DIR}/tests/train/test_run_loop.cpp)
target_include_directories(test_single_header PRIVATE ${PROJECT_SOURCE_DIR}/single_include
  ${PROJECT_SOURCE_DIR}/tests)
target_compile_features(test_single_header PRIVATE cxx_std_20)
target_link_libraries(test_single_header PRIVATE gptx_test_main xsimd nlohmann_json::nlohmann_json
  gptx_project_flags)
if(OpenMP_CXX_FOUND)
  target_link_libraries(test_single_header PRIVATE OpenMP::OpenMP_CXX)
endif()
target_compile_definitions(test_single_header PRIVATE GPTX_TEST_DATA_DIR="${GPTX_DATA_DIR}")
add_test(NAME single_header COMMAND test_single_header)
# Label amalgamation: the sanitizer preset leaves it out (its code is the rooms' code, which that
# build runs already; building it there cost about 40 s of CI).
set_tests_properties(single_header PROPERTIES LABELS "unit;amalgamation"
  ENVIRONMENT "GPTX_NUM_THREADS=2")

add_executable(hello_single_header ${PROJECT_SOURCE_DIR}/samples/hello_gptx.cpp)
target_include_directories(hello_single_header PRIVATE ${PROJECT_SOURCE_DIR}/single_include)
target_compile_features(hello_single_header PRIVATE cxx_std_20)
target_link_libraries(hello_single_header PRIVATE xsimd nlohmann_json::nlohmann_json gptx_project_flags)
if(OpenMP_CXX_FOUND)
  target_link_libraries(hello_single_header PRIVATE OpenMP::OpenMP_CXX)
endif()

# Consumer projects, configured and built by CTest (each is a small, separate CMake build).
set(_consumer ${PROJECT_SOURCE_DIR}/tests/consumer)
set(_work ${PROJECT_BINARY_DIR}/consumer)
add_test(NAME consumer_install
  COMMAND ${CMAKE_COMMAND} --install ${PROJECT_BINARY_DIR} --prefix ${_work}/prefix)
add_test(NAME consumer_find_package
  COMMAND ${CMAKE_CTEST_COMMAND} --build-and-test ${_consumer} ${_work}/find_package
          --build-generator ${CMAKE_GENERATOR} --build-options -DGPTX_MODE=find_package
          -DCMAKE_PREFIX_PATH=${_work}/prefix --test-command consumer)
set_tests_properties(consumer_find_package PROPERTIES DEPENDS consumer_install)
add_test(NAME consumer_add_subdirectory
  COMMAND ${CMAKE_CTEST_COMMAND} --build-and-test ${_consumer} ${_work}/add_subdirectory
          --build-generator ${CMAKE_GENERATOR} --build-options -DGPTX_MODE=add_subdirectory
          -DGPTX_SOURCE=${PROJECT_SOURCE_DIR} --test-command consumer)
add_test(NAME consumer_fetchcontent
  COMMAND ${CMAKE_CTEST_COMMAND} --build-and-test ${_consumer} ${_work}/fetchcontent
          --build-generator ${CMAKE_GENERATOR} --build-options -DGPTX_MODE=fetchcontent
          -DGPTX_SOURCE=${PROJECT_SOURCE_DIR} --test-command consumer)
set_tests_properties(consumer_install consumer_find_package consumer_add_subdirectory
  consumer_fetchcontent PROPERTIES LABELS slow)
