# floe's copy of Catch2 v2's CatchAddTests.cmake (Debian's catch2 2.13; BSD 3-Clause, see
# https://cmake.org/licensing), run by catch_discover_tests() after floe_tests is built: it
# asks the binary for its test names and writes the add_test() calls ctest reads.
#
# The one change: Catch2's script splits the binary's output into a CMake list, so a test
# name with a semicolon ("a; b") became two ctest tests, "a" and " b", each of which ran no
# test case at all and passed. Here the output is cut at line ends only, and every name is
# registered whole. (The tests section of CMakeLists.txt also passes `--warn NoTests`, so that
# a registered name that matches no test case fails instead of passing.)
#
# Reads the variables catch_discover_tests() passes: TEST_EXECUTABLE, TEST_EXECUTOR,
# TEST_WORKING_DIR, TEST_SPEC, TEST_EXTRA_ARGS, TEST_PROPERTIES, TEST_PREFIX, TEST_SUFFIX,
# CTEST_FILE (TEST_REPORTER and TEST_OUTPUT_* are not used by floe and are refused).

set(prefix "${TEST_PREFIX}")
set(suffix "${TEST_SUFFIX}")
set(spec ${TEST_SPEC})
set(extra_args ${TEST_EXTRA_ARGS})
set(properties ${TEST_PROPERTIES})
set(script)

if(TEST_REPORTER OR TEST_OUTPUT_DIR)
  message(FATAL_ERROR "tests/catch_add_tests.cmake: REPORTER and OUTPUT_DIR are not supported")
endif()

function(add_command NAME)
  set(_args "")
  # ARGV* rather than ARGN: ARGN would split an argument that holds a semicolon
  math(EXPR _last_arg ${ARGC}-1)
  foreach(_n RANGE 1 ${_last_arg})
    set(_arg "${ARGV${_n}}")
    if(_arg MATCHES "[^-./:a-zA-Z0-9_]")
      set(_args "${_args} [==[${_arg}]==]")  # a bracket argument: taken whole, never split
    else()
      set(_args "${_args} ${_arg}")
    endif()
  endforeach()
  set(script "${script}${NAME}(${_args})\n" PARENT_SCOPE)
endfunction()

if(NOT EXISTS "${TEST_EXECUTABLE}")
  message(FATAL_ERROR "Specified test executable '${TEST_EXECUTABLE}' does not exist")
endif()
execute_process(
  COMMAND ${TEST_EXECUTOR} "${TEST_EXECUTABLE}" ${spec} --list-test-names-only
  OUTPUT_VARIABLE output
  RESULT_VARIABLE result
  WORKING_DIRECTORY "${TEST_WORKING_DIR}"
)
# --list-test-names-only exits with the number of tests it listed
if(${result} EQUAL 0)
  message(WARNING "Test executable '${TEST_EXECUTABLE}' contains no tests matching ${spec}")
elseif(${result} LESS 0)
  message(FATAL_ERROR "Error running test executable '${TEST_EXECUTABLE}':\n"
                      "  Result: ${result}\n  Output: ${output}\n")
endif()

# One test name a line, cut without CMake lists (a name may hold ';', '[' or ']').
while(NOT output STREQUAL "")
  string(FIND "${output}" "\n" end)
  if(end EQUAL -1)
    set(test "${output}")
    set(output "")
  else()
    string(SUBSTRING "${output}" 0 ${end} test)
    math(EXPR end "${end} + 1")
    string(SUBSTRING "${output}" ${end} -1 output)
  endif()
  if(test STREQUAL "")
    continue()
  endif()
  # The name as a Catch2 test spec: these characters would be parsed by Catch2
  set(test_name "${test}")
  foreach(char , [ ])
    string(REPLACE "${char}" "\\${char}" test_name "${test_name}")
  endforeach()
  add_command(add_test "${prefix}${test}${suffix}" ${TEST_EXECUTOR} "${TEST_EXECUTABLE}" "${test_name}" ${extra_args})
  add_command(set_tests_properties "${prefix}${test}${suffix}" PROPERTIES WORKING_DIRECTORY "${TEST_WORKING_DIR}"
              ${properties})
endwhile()

file(WRITE "${CTEST_FILE}" "${script}")
