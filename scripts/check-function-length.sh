#!/usr/bin/env bash
# Lists the functions longer than MAX_LINES (default 80) in the tracked *.c files under the
# directories given (default: common net agent provisioner), longest first, and exits 1 when there
# is one. A function is counted from the line that starts its definition (a line beginning
# with its type and name, not ending in ';') to its closing '}' in column 1; data tables are
# not functions and are not counted.
set -euo pipefail

NIXPROV_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$NIXPROV_SRC"

MAX_LINES=${MAX_LINES:-80}
dirs=("$@")
((${#dirs[@]} > 0)) || dirs=(common net agent provisioner)

mapfile -d '' files < <(git ls-files -z -- "${dirs[@]/%//*.c}")
((${#files[@]} > 0)) || exit 0

long=$(awk -v max="$MAX_LINES" '
        FNR == 1 { start = 0 }
        /^[A-Za-z_][A-Za-z0-9_ *]*\(/ && !/;[ \t]*$/ && !/^(typedef|return|if|for|while|switch) / {
                start = FNR
                head = $0
                sub(/\(.*/, "", head)
                n = split(head, words, /[ *]+/)
                name = words[n]
                next
        }
        /^}/ && start {
                if (FNR - start + 1 > max)
                        printf "%d %s:%d %s\n", FNR - start + 1, FILENAME, start, name
                start = 0
        }
' "${files[@]}" | sort -rn)

if [ -n "$long" ]; then
        echo "check-function-length: functions over $MAX_LINES lines (lines, file:line, name):" >&2
        printf '%s\n' "$long" | sed 's/^/  /' >&2
        exit 1
fi
echo "check-function-length: no function over $MAX_LINES lines in ${dirs[*]}"
