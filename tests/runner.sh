# runner.sh — sourced by the shell test runners (tests/integration/run.sh, tests/stress/run.sh):
# the PASS/FAIL lines, their tally, and the closing line CI reads ("N passed, N failed").

passed=0
failed=0

pass() { echo "PASS $1"; passed=$((passed + 1)); }

# fail NAME REASON [OUTPUT]: with OUTPUT, its tail, indented, for whoever reads the log
fail() {
    echo "FAIL $1: $2"
    failed=$((failed + 1))
    if [ -n "${3:-}" ] && [ -s "$3" ]; then tail -n 20 "$3" | sed 's/^/    | /'; fi
}

# why a command (run under timeout) ended with status $1
status_text() {
    case $1 in
        124) echo "timed out" ;;
        137) echo "killed (SIGKILL, after the timeout)" ;;
        1[2-9][0-9]|2[0-5][0-9]) echo "killed by signal $(($1 - 128)) (SIG$(kill -l $(($1 - 128)) 2>/dev/null))" ;;
        *) echo "exit status $1" ;;
    esac
}

# the closing line; the runner's exit status
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
