#!/usr/bin/env bash
# Checks that every tracked C source and header is formatted as .clang-format says.
# Prints the files that are not and exits 1; exits 0 when all are. Changes nothing:
# `clang-format -i FILE` formats one.
set -euo pipefail

NIXPROV_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$NIXPROV_SRC"

CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
if ! command -v "$CLANG_FORMAT" >/dev/null; then
        echo "check-format: $CLANG_FORMAT not found (scripts/setup.sh installs it)" >&2
        exit 2
fi

unformatted=()
while IFS= read -r -d '' file; do
        if ! "$CLANG_FORMAT" --dry-run --Werror "$file" >/dev/null 2>&1; then
                unformatted+=("$file")
        fi
done < <(git ls-files -z -- '*.c' '*.h')

if ((${#unformatted[@]} > 0)); then
        echo "check-format: ${#unformatted[@]} file(s) differ from .clang-format:" >&2
        printf '  %s\n' "${unformatted[@]}" >&2
        exit 1
fi
echo "check-format: every tracked *.c and *.h is formatted"
