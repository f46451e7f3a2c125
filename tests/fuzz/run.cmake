# ctest's brief fuzzing run: fresh seeds, then libFuzzer with a fixed seed for SECONDS.
#   cmake -DFUZZ=<fuzz_decoders> -DWORK=<dir> -DSECONDS=30 -P run.cmake
# Fails on a crash, a sanitizer report, a leak, an input taking over 10 s, an allocation
# over 256 MiB or 2 GiB of memory in all; the input is then in WORK/findings.
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/corpus ${WORK}/findings)
execute_process(COMMAND ${FUZZ} --write-seeds=${WORK}/corpus RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fuzz_decoders --write-seeds failed (${rc})")
endif()
execute_process(COMMAND ${FUZZ} -seed=1 -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256
                        -print_funcs=0 -print_final_stats=1 -artifact_prefix=${WORK}/findings/ ${WORK}/corpus
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(GLOB found ${WORK}/findings/*)
  message(FATAL_ERROR "fuzz_decoders found a problem (${rc}): ${found}\nReplay it: ${FUZZ} <file>")
endif()
