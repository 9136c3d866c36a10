# Sourced by .ci/run, tests/run and tests/vm/run: time each phase of a run and print the table.
#   phase NAME CMD...   run CMD; its wall time is recorded as NAME (in $LVS_PHASES, when set);
#                       returns CMD's status. Call it as a statement, never in a condition
#                       (`phase ... || x`): bash then ignores `set -e` inside CMD.
#   phase_table         print the recorded phases and their total
# The file is shared by the scripts of one run (.ci/run exports LVS_PHASES), so the table at
# the end of .ci/run holds the phases of tests/run and tests/vm/run too.
phase() {
    local name=$1 t0 rc errexit=""; shift
    t0=$(date +%s.%N)
    # In a subshell with errexit on: a function run as `f || rc=$?` would have `set -e`
    # ignored inside it, and its first failing command would not stop it.
    [[ $- == *e* ]] && errexit=1
    set +e
    (set -e; LVS_PHASE_DEPTH=$((${LVS_PHASE_DEPTH:-0} + 1)) "$@")
    rc=$?
    [ -z "$errexit" ] || set -e
    phase_record "$name" "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b-a}')" "$rc"
    return $rc
}
# phase_record NAME SECONDS EXIT: a phase timed by its caller (a VM suite and its retries).
phase_record() {
    [ -n "${LVS_PHASES:-}" ] || return 0
    printf '%s\t%s\t%s\t%s\n' "${LVS_PHASE_DEPTH:-0}" "$1" "$2" "$3" >> "$LVS_PHASES"
}
phase_table() {
    [ -s "${LVS_PHASES:-}" ] || return 0
    echo "ci: phase                                    seconds  exit"
    # Nested phases (tests/run's, tests/vm/run's) are indented under the one that ran them;
    # each script appends when its phase ends, so a nested phase is listed before its parent.
    awk -F'\t' '{printf "ci: %-*s%-*s %8.1f  %s\n", 2*$1, "", 40-2*$1, $2, $3, $4}' "$LVS_PHASES"
}
