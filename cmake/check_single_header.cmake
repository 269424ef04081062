# Fails when single_include/gptx/gptx.hpp differs from what tools/amalgamate.py makes now.
execute_process(COMMAND ${PYTHON} ${SOURCE_DIR}/tools/amalgamate.py --output ${OUT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "tools/amalgamate.py failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${OUT}
  ${SOURCE_DIR}/single_include/gptx/gptx.hpp RESULT_VARIABLE diff)
if(NOT diff EQUAL 0)
  message(FATAL_ERROR "single_include/gptx/gptx.hpp is stale: run tools/amalgamate.py and commit it")
endif()
