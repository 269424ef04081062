# tests/samples/check_story.cmake: runs a story program of samples/ and checks that it exits 0 and
# prints a line matching PATTERN whose number (the regex's one group) lies in [MIN, MAX]; the same
# for PATTERN2, MIN2, MAX2 when given. Used by samples/CMakeLists.txt.
# cmake -DPROGRAM=... "-DARGS=a;b" "-DPATTERN=accuracy ([0-9.]+)" -DMIN=0 -DMAX=1 -P check_story.cmake
execute_process(COMMAND ${PROGRAM} ${ARGS} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} exited with ${rc}: ${err}")
endif()
foreach(k "" 2)
  if(NOT DEFINED PATTERN${k})
    continue()
  endif()
  string(REGEX MATCH "${PATTERN${k}}" line "${out}")
  if(NOT line)
    message(FATAL_ERROR "no line matches '${PATTERN${k}}'")
  endif()
  set(value "${CMAKE_MATCH_1}")
  if(value LESS MIN${k} OR value GREATER MAX${k}) # compared as numbers
    message(FATAL_ERROR "'${line}': ${value} is outside [${MIN${k}}, ${MAX${k}}]")
  endif()
  message("ok: '${line}'")
endforeach()
